/* SPDX-License-Identifier: MIT */
/* engine/planner/planner_cost.c - rmig_plan_cost_project(): the engine's cost model
 * (engine/cost_model.c) for programs outside the library, such as rmig-bench's model-against-
 * measured table. Checks the caller's structs and forwards. */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "bindings/rmig_export.h"
#include "engine/cost_model.h"
#include "rmig-plan.h"

RMIG_EXPORT int rmig_plan_cost_project(const struct rmig_plan_cost_input *input, const char *method,
				       struct rmig_plan_cost *cost)
{
	struct rmig_plan_cost_input in = {0};
	struct cost_model_input model;
	struct cost_projection p;
	struct rmig_plan_cost out = {0};
	uint32_t cost_method;
	int ret;

	if (!input || !method || !cost ||
	    input->struct_size < offsetof(struct rmig_plan_cost_input, zero_fraction) ||
	    cost->struct_size < offsetof(struct rmig_plan_cost, total_seconds))
		return -EINVAL;
	memcpy(&in, input, input->struct_size < sizeof(in) ? input->struct_size : sizeof(in));
	if (!strcmp(method, "precopy"))
		method = "precopy-qemu";
	if (cost_method_from_name(method, &cost_method))
		return -EINVAL;
	model = (struct cost_model_input){
		.ram_bytes = in.ram_bytes,
		.page_size = in.page_size,
		.dirty_pages_rate = in.dirty_pages_rate,
		.working_set_bytes = in.working_set_bytes,
		.bandwidth = in.bandwidth,
		.zero_fraction = in.zero_fraction,
		.device_state_bytes = in.device_state_bytes,
		.downtime_ms = in.downtime_ms,
		.max_rounds = in.max_rounds,
		.fault_latency_us = in.fault_latency_us,
		.access_run_pages = in.access_run_pages,
		.pause_seconds = in.pause_seconds,
	};
	ret = cost_model_project(&model, cost_method, &p);
	if (ret)
		return ret;
	out = (struct rmig_plan_cost){
		.struct_size = cost->struct_size,
		.rounds = p.rounds,
		.converges = p.converges,
		.total_seconds = p.total_seconds,
		.downtime_seconds = p.downtime_seconds,
		.stall_seconds = p.stall_seconds,
		.bytes = p.bytes,
	};
	memcpy(cost, &out, cost->struct_size < sizeof(out) ? cost->struct_size : sizeof(out));
	return 0;
}
