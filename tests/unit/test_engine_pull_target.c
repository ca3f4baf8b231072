/* SPDX-License-Identifier: MIT */
/* auto's pull target (the buffer the destination's test pulls read instead of guest RAM): both
 * sides derive its region id and length from the region table alone, the id never one a guest
 * region uses and the length one fault's pull. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>

#include "engine/postcopy.h"
#include "engine/session.h"
#include "rmig.h"

#define PAGE 4096u

static void test_pull_target_id_is_no_region_id(void **state)
{
	char *ram = aligned_alloc(PAGE, 4 * PAGE);
	rmig_session_t *s;

	(void)state;
	assert_non_null(ram);
	assert_int_equal(rmig_session_create(RMIG_ROLE_SOURCE, &s), 0);
	assert_int_equal(rmig_region_add(s, 7, ram, PAGE, PAGE), 0);
	assert_int_equal(session_pull_target_id(s), UINT32_MAX);
	/* the highest ids taken, out of order: the next one down that is free */
	assert_int_equal(rmig_region_add(s, UINT32_MAX - 1, ram + PAGE, PAGE, PAGE), 0);
	assert_int_equal(rmig_region_add(s, UINT32_MAX, ram + 2 * PAGE, PAGE, PAGE), 0);
	assert_int_equal(rmig_region_add(s, UINT32_MAX - 2, ram + 3 * PAGE, PAGE, PAGE), 0);
	assert_int_equal(session_pull_target_id(s), UINT32_MAX - 3);
	rmig_session_destroy(s);
	free(ram);
}

static void test_pull_target_is_one_fault_of_the_first_region(void **state)
{
	size_t big = (size_t)(POSTCOPY_FAULT_CLUSTER + 5) * PAGE;
	char *ram = aligned_alloc(PAGE, big + 2 * PAGE);
	rmig_session_t *s, *d;

	(void)state;
	assert_non_null(ram);
	assert_int_equal(rmig_session_create(RMIG_ROLE_SOURCE, &s), 0);
	assert_int_equal(rmig_region_add(s, 1, ram, big, PAGE), 0);
	assert_int_equal(session_pull_target_bytes(s), POSTCOPY_FAULT_CLUSTER * PAGE);
	/* a first region smaller than a fault: all of it */
	assert_int_equal(rmig_session_create(RMIG_ROLE_DESTINATION, &d), 0);
	assert_int_equal(rmig_region_add(d, 2, ram + big, 2 * PAGE, PAGE), 0);
	assert_int_equal(session_pull_target_bytes(d), 2 * PAGE);
	rmig_session_destroy(d);
	rmig_session_destroy(s);
	free(ram);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pull_target_id_is_no_region_id),
		cmocka_unit_test(test_pull_target_is_one_fault_of_the_first_region),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
