/* SPDX-License-Identifier: MIT */
/* engine/planner/planner_abi.c - the rmig_plan_* functions of the public ABI: a plan made from a
 * JSON cluster snapshot, read back move by move, as JSON or as a table. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bindings/rmig_export.h"
#include "engine/planner/planner.h"
#include "rmig-plan.h"
#include "transport/log.h"

/* The parsed snapshot stays with the plan: the plan's names point into it. */
struct rmig_plan {
	json_t *root;
	struct planner_cluster cluster;
	struct planner_plan *plan;
};

#define RMIG_PLAN_PARAM_ALL                                                                 \
	(RMIG_PLAN_PARAM_OVERLOAD | RMIG_PLAN_PARAM_THRESHOLD | RMIG_PLAN_PARAM_MAD_K |     \
	 RMIG_PLAN_PARAM_LR_SAFETY | RMIG_PLAN_PARAM_SELECT | RMIG_PLAN_PARAM_DOWNTIME_MS | \
	 RMIG_PLAN_PARAM_CONSOLIDATE)

static int rmig_plan_params_apply(const struct rmig_plan_params *in, struct planner_params *out)
{
	planner_params_init(out);
	if (!in)
		return 0;
	if (in->field_mask & ~RMIG_PLAN_PARAM_ALL) {
		rmig_log_error("plan: unknown field_mask bits 0x%llx",
			       (unsigned long long)(in->field_mask & ~RMIG_PLAN_PARAM_ALL));
		return -EINVAL;
	}
	if (in->field_mask & RMIG_PLAN_PARAM_OVERLOAD)
		out->overload = in->overload;
	if (in->field_mask & RMIG_PLAN_PARAM_THRESHOLD)
		out->threshold = in->threshold;
	if (in->field_mask & RMIG_PLAN_PARAM_MAD_K)
		out->mad_k = in->mad_k;
	if (in->field_mask & RMIG_PLAN_PARAM_LR_SAFETY)
		out->lr_safety = in->lr_safety;
	if (in->field_mask & RMIG_PLAN_PARAM_SELECT)
		out->select = in->select;
	if (in->field_mask & RMIG_PLAN_PARAM_DOWNTIME_MS)
		out->downtime_ms = in->downtime_ms;
	if (in->field_mask & RMIG_PLAN_PARAM_CONSOLIDATE)
		out->consolidate = in->consolidate != 0;
	if (out->overload > PLANNER_OVERLOAD_LR || out->select > PLANNER_SELECT_CORRELATION ||
	    !(out->threshold > 0.0 && out->threshold <= 1.0) || !(out->mad_k > 0.0) ||
	    !(out->lr_safety > 0.0)) {
		rmig_log_error(
			"plan: parameter out of range (overload %u, select %u, threshold %g, "
			"mad_k %g, lr_safety %g)",
			out->overload, out->select, out->threshold, out->mad_k, out->lr_safety);
		return -EINVAL;
	}
	return 0;
}

RMIG_EXPORT int rmig_plan_from_json(const char *json, const struct rmig_plan_params *params,
				    rmig_plan_t **plan_p)
{
	struct planner_params planner_params;
	struct rmig_plan *plan;
	json_error_t error;
	int ret;

	if (!json || !plan_p) {
		rmig_log_error("plan: no snapshot given");
		return -EINVAL;
	}
	ret = rmig_plan_params_apply(params, &planner_params);
	if (ret < 0)
		return ret;
	plan = calloc(1, sizeof(*plan));
	if (!plan)
		return -ENOMEM;
	plan->root = json_loads(json, JSON_REJECT_DUPLICATES, &error);
	if (!plan->root) {
		rmig_log_error("snapshot: line %d column %d: %s", error.line, error.column,
			       error.text);
		ret = -EINVAL;
		goto err_free_plan;
	}
	ret = planner_cluster_from_json(plan->root, &plan->cluster);
	if (ret < 0)
		goto err_decref_root;
	ret = planner_plan_create(&plan->cluster, &planner_params, &plan->plan);
	if (ret < 0)
		goto err_release_cluster;
	*plan_p = plan;
	return 0;

err_release_cluster:
	planner_cluster_release(&plan->cluster);
err_decref_root:
	json_decref(plan->root);
err_free_plan:
	free(plan);
	return ret;
}

RMIG_EXPORT void rmig_plan_destroy(rmig_plan_t *plan)
{
	if (!plan)
		return;
	planner_plan_destroy(plan->plan);
	planner_cluster_release(&plan->cluster);
	json_decref(plan->root);
	free(plan);
}

RMIG_EXPORT int rmig_plan_move_count(const rmig_plan_t *plan)
{
	if (!plan)
		return -EINVAL;
	return (int)plan->plan->move_count;
}

RMIG_EXPORT int rmig_plan_unplaced_count(const rmig_plan_t *plan)
{
	if (!plan)
		return -EINVAL;
	return (int)plan->plan->unplaced_count;
}

static uint64_t rmig_plan_us(double seconds)
{
	return (uint64_t)llround(seconds * 1e6);
}

RMIG_EXPORT int rmig_plan_move_get(const rmig_plan_t *plan, uint32_t index,
				   struct rmig_plan_move *move)
{
	struct rmig_plan_move out = {0};
	const struct planner_move *m;
	size_t size;

	if (!plan || !move || move->struct_size < 2 * sizeof(uint32_t))
		return -EINVAL;
	if (index >= plan->plan->move_count)
		return -ENOENT;
	m = &plan->plan->moves[index];
	out.struct_size = move->struct_size;
	cost_method_to_engine(m->cost.method, &out.method, &out.policy);
	out.reason = m->reason;
	out.rounds = m->cost.rounds;
	out.converges = m->cost.converges != 0;
	out.vm = plan->cluster.vms[m->vm].id;
	out.source = plan->cluster.hosts[m->source].id;
	out.destination = plan->cluster.hosts[m->destination].id;
	out.method_name = cost_method_name(m->cost.method);
	out.bytes = (uint64_t)llround(m->cost.bytes);
	out.total_time_us = rmig_plan_us(m->cost.total_seconds);
	out.downtime_us = rmig_plan_us(m->cost.downtime_seconds);
	out.stall_us = rmig_plan_us(m->cost.stall_seconds);
	size = move->struct_size < sizeof(out) ? move->struct_size : sizeof(out);
	memcpy(move, &out, size);
	return 0;
}

RMIG_EXPORT int rmig_plan_to_json(const rmig_plan_t *plan, char **json_p)
{
	json_t *root;
	char *text;
	int ret;

	if (!plan || !json_p)
		return -EINVAL;
	ret = planner_plan_to_json(plan->plan, &root);
	if (ret < 0)
		return ret;
	text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
	json_decref(root);
	if (!text)
		return -ENOMEM;
	*json_p = text;
	return 0;
}

RMIG_EXPORT int rmig_plan_to_table(const rmig_plan_t *plan, char **text_p)
{
	if (!plan || !text_p)
		return -EINVAL;
	return planner_plan_to_table(plan->plan, text_p);
}
