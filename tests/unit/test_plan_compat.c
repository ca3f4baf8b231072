/* SPDX-License-Identifier: MIT */
/* tests/unit/test_plan_compat.c - programs linked against librmig.so.1 before the planner moved
 * to librmig-plan.so.1 still plan: librmig's rmig_plan_*@RMIG_1.0 forward to the new library.
 * argv[1] is librmig.so.1; LD_LIBRARY_PATH finds librmig-plan.so.1. */
#include <dlfcn.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rmig-plan.h"

static const char *librmig_path;

static void *old_symbol(const char *name)
{
	static void *library;
	void *fn;

	if (!library)
		library = dlopen(librmig_path, RTLD_NOW | RTLD_LOCAL);
	if (!library)
		fail_msg("dlopen %s: %s", librmig_path, dlerror());
	fn = dlvsym(library, name, "RMIG_1.0");
	if (!fn)
		fail_msg("librmig exports no %s@RMIG_1.0", name);
	return fn;
}

#define SNAPSHOT                                                                                   \
	"{\"bandwidth\": 1e9, \"hosts\": ["                                                        \
	"{\"id\": \"h1\", \"cpu_capacity\": 10, \"memory_bytes\": 68719476736},"                   \
	"{\"id\": \"h2\", \"cpu_capacity\": 10, \"memory_bytes\": 68719476736}],"                  \
	" \"vms\": [{\"id\": \"vm1\", \"host\": \"h1\", \"memory_bytes\": 1073741824, \"cpu\": 2," \
	" \"dirty_pages_rate\": 100}]}"

static void test_old_names_plan_through_the_planner_library(void **state)
{
	int (*from_json)(const char *, const struct rmig_plan_params *, rmig_plan_t **);
	int (*move_count)(const rmig_plan_t *);
	int (*unplaced_count)(const rmig_plan_t *);
	int (*to_table)(const rmig_plan_t *, char **);
	void (*destroy)(rmig_plan_t *);
	rmig_plan_t *plan = NULL;
	char *table = NULL;

	(void)state;
	*(void **)&from_json = old_symbol("rmig_plan_from_json");
	*(void **)&move_count = old_symbol("rmig_plan_move_count");
	*(void **)&unplaced_count = old_symbol("rmig_plan_unplaced_count");
	*(void **)&to_table = old_symbol("rmig_plan_to_table");
	*(void **)&destroy = old_symbol("rmig_plan_destroy");

	assert_int_equal(from_json(SNAPSHOT, NULL, &plan), 0);
	assert_non_null(plan);
	/* Nothing is overloaded: no move, nothing unplaced, and a table naming both hosts. */
	assert_int_equal(move_count(plan), 0);
	assert_int_equal(unplaced_count(plan), 0);
	assert_int_equal(to_table(plan, &table), 0);
	assert_non_null(strstr(table, "h1"));
	assert_non_null(strstr(table, "h2"));
	free(table);
	destroy(plan);
}

static void test_old_names_return_the_planner_errors(void **state)
{
	int (*from_json)(const char *, const struct rmig_plan_params *, rmig_plan_t **);
	int (*move_count)(const rmig_plan_t *);
	rmig_plan_t *plan = NULL;

	(void)state;
	*(void **)&from_json = old_symbol("rmig_plan_from_json");
	*(void **)&move_count = old_symbol("rmig_plan_move_count");
	assert_int_equal(from_json("{\"hosts\": ", NULL, &plan), -EINVAL);
	assert_null(plan);
	assert_int_equal(move_count(NULL), -EINVAL);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_old_names_plan_through_the_planner_library),
		cmocka_unit_test(test_old_names_return_the_planner_errors),
	};

	if (argc < 2) {
		fprintf(stderr, "usage: %s LIBRMIG.so.1\n", argv[0]);
		return 2;
	}
	librmig_path = argv[1];
	return cmocka_run_group_tests(tests, NULL, NULL);
}
