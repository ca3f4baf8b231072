/* SPDX-License-Identifier: MIT */
/* bindings/plan_compat.c - the planner's RMIG_1.0 names, which librmig.so.1 exported before the
 * planner became librmig-plan.so.1. A released node never changes, so librmig keeps them: each
 * loads librmig-plan.so.1 on first use and forwards to its RMIG_PLAN_1.0 function. librmig
 * itself links neither jansson nor the planner; a program that never plans never loads it.
 * Built into the shared library only (the static core's users link the planner directly). */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stddef.h>

#include "rmig-plan.h"
#include "rmig_export.h"
#include "transport/log.h"

#define PLAN_LIBRARY "librmig-plan.so.1"
#define PLAN_VERSION "RMIG_PLAN_1.0"

static struct {
	int (*from_json)(const char *, const struct rmig_plan_params *, rmig_plan_t **);
	int (*move_count)(const rmig_plan_t *);
	int (*unplaced_count)(const rmig_plan_t *);
	int (*move_get)(const rmig_plan_t *, uint32_t, struct rmig_plan_move *);
	int (*to_json)(const rmig_plan_t *, char **);
	int (*to_table)(const rmig_plan_t *, char **);
	void (*destroy)(rmig_plan_t *);
} plan_ops;
static int plan_ops_error;
static pthread_once_t plan_ops_once = PTHREAD_ONCE_INIT;

static void *plan_symbol(void *library, const char *name)
{
	void *fn = dlvsym(library, name, PLAN_VERSION);

	if (!fn)
		rmig_log_error("librmig: %s has no %s@%s", PLAN_LIBRARY, name, PLAN_VERSION);
	return fn;
}

static void plan_ops_load(void)
{
	void *library = dlopen(PLAN_LIBRARY, RTLD_NOW | RTLD_LOCAL);

	if (!library) {
		rmig_log_error("librmig: the planner moved to %s, which cannot be loaded: %s",
			       PLAN_LIBRARY, dlerror());
		plan_ops_error = -ENOENT;
		return;
	}
	*(void **)&plan_ops.from_json = plan_symbol(library, "rmig_plan_from_json");
	*(void **)&plan_ops.move_count = plan_symbol(library, "rmig_plan_move_count");
	*(void **)&plan_ops.unplaced_count = plan_symbol(library, "rmig_plan_unplaced_count");
	*(void **)&plan_ops.move_get = plan_symbol(library, "rmig_plan_move_get");
	*(void **)&plan_ops.to_json = plan_symbol(library, "rmig_plan_to_json");
	*(void **)&plan_ops.to_table = plan_symbol(library, "rmig_plan_to_table");
	*(void **)&plan_ops.destroy = plan_symbol(library, "rmig_plan_destroy");
	if (!plan_ops.from_json || !plan_ops.move_count || !plan_ops.unplaced_count ||
	    !plan_ops.move_get || !plan_ops.to_json || !plan_ops.to_table || !plan_ops.destroy)
		plan_ops_error = -ENOSYS;
}

/* 0 once every forward is resolved, else the load's error (logged once, where it happened). */
static int plan_ops_ready(void)
{
	pthread_once(&plan_ops_once, plan_ops_load);
	return plan_ops_error;
}

RMIG_EXPORT int rmig_plan_from_json(const char *json, const struct rmig_plan_params *params,
				    rmig_plan_t **plan_p)
{
	int ret = plan_ops_ready();

	return ret ? ret : plan_ops.from_json(json, params, plan_p);
}

RMIG_EXPORT int rmig_plan_move_count(const rmig_plan_t *plan)
{
	int ret = plan_ops_ready();

	return ret ? ret : plan_ops.move_count(plan);
}

RMIG_EXPORT int rmig_plan_unplaced_count(const rmig_plan_t *plan)
{
	int ret = plan_ops_ready();

	return ret ? ret : plan_ops.unplaced_count(plan);
}

RMIG_EXPORT int rmig_plan_move_get(const rmig_plan_t *plan, uint32_t index,
				   struct rmig_plan_move *move)
{
	int ret = plan_ops_ready();

	return ret ? ret : plan_ops.move_get(plan, index, move);
}

RMIG_EXPORT int rmig_plan_to_json(const rmig_plan_t *plan, char **json_p)
{
	int ret = plan_ops_ready();

	return ret ? ret : plan_ops.to_json(plan, json_p);
}

RMIG_EXPORT int rmig_plan_to_table(const rmig_plan_t *plan, char **text_p)
{
	int ret = plan_ops_ready();

	return ret ? ret : plan_ops.to_table(plan, text_p);
}

RMIG_EXPORT void rmig_plan_destroy(rmig_plan_t *plan)
{
	/* A plan exists only if from_json succeeded, so the forwards are resolved. */
	if (plan && !plan_ops_ready())
		plan_ops.destroy(plan);
}
