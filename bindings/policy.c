/* SPDX-License-Identifier: MIT */
/* bindings/policy.c - rmig_policy_decide(): the engine's stop rule (engine/policy.c) offered to
 * a hypervisor that runs its own pre-copy rounds. Argument checks and field copies only, so
 * the rule a session applies and the one a toolstack asks for are the same code. */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "bindings/rmig_export.h"
#include "engine/policy.h"
#include "rmig.h"

#define POLICY_INPUT_1_1_SIZE (offsetof(struct rmig_policy_input, pause_cost_us) + sizeof(uint64_t))
#define POLICY_DECISION_MIN_SIZE (offsetof(struct rmig_policy_decision, reason) + sizeof(uint32_t))

RMIG_EXPORT int rmig_policy_decide(const struct rmig_policy_input *input,
				   struct rmig_policy_decision *decision)
{
	struct policy_input in;
	struct policy_decision out;
	struct rmig_policy_decision answer = {0};

	if (!input || !decision)
		return -EINVAL;
	if (input->struct_size < POLICY_INPUT_1_1_SIZE ||
	    decision->struct_size < POLICY_DECISION_MIN_SIZE)
		return -EINVAL;
	if (input->policy != RMIG_POLICY_QEMU && input->policy != RMIG_POLICY_XEN)
		return -EINVAL;
	if (input->reserved)
		return -EINVAL;
	in = (struct policy_input){
		.policy = input->policy,
		.round = input->round,
		.max_rounds = input->max_rounds,
		.downtime_ms = input->downtime_ms,
		.remaining_bytes = input->remaining_bytes,
		.dirty_pages = input->dirty_pages,
		.bandwidth = input->bandwidth,
		.bytes_sent = input->bytes_sent,
		.ram_bytes = input->ram_bytes,
		.pause_cost_us = input->pause_cost_us,
	};
	policy_decide(&in, &out);
	answer.struct_size = decision->struct_size < sizeof(answer) ? decision->struct_size
								    : (uint32_t)sizeof(answer);
	answer.stop = out.stop ? 1u : 0u;
	answer.reason = out.reason;
	answer.projected_downtime_ms = out.projected_downtime_ms;
	/* What fits: a caller's struct is never written past its struct_size. */
	memcpy((unsigned char *)decision + sizeof(uint32_t),
	       (const unsigned char *)&answer + sizeof(uint32_t),
	       answer.struct_size - sizeof(uint32_t));
	return 0;
}
