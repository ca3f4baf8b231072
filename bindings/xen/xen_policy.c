/* SPDX-License-Identifier: MIT */
/* bindings/xen/xen_policy.c - rmig's stop rule over libxc's pre-copy iterations
 * (xen_policy.h). */
#include <errno.h>

#include "bindings/xen/xen_policy.h"

void xen_policy_start(struct xen_policy *p, uint64_t now_us, uint64_t carried)
{
	p->iteration_start_us = now_us;
	p->iteration_start_bytes = carried;
}

int xen_policy_step(struct xen_policy *p, uint32_t iteration, uint64_t total_written,
		    int64_t dirty_count, uint64_t now_us, uint64_t carried,
		    struct rmig_policy_decision *d)
{
	struct rmig_policy_input in = {
		.struct_size = sizeof(in),
		.policy = p->policy,
		.round = iteration,
		.max_rounds = p->max_rounds,
		.downtime_ms = p->downtime_ms,
		.bytes_sent = total_written * XEN_POLICY_PAGE,
		.ram_bytes = p->ram_bytes,
	};
	int ret;

	if (dirty_count < 0) {
		uint64_t elapsed = now_us - p->iteration_start_us;

		if (now_us > p->iteration_start_us && carried > p->iteration_start_bytes)
			p->bandwidth = (uint64_t)((double)(carried - p->iteration_start_bytes) *
						  1e6 / (double)elapsed);
		in.dirty_pages = p->ram_bytes / XEN_POLICY_PAGE;
		in.remaining_bytes = p->ram_bytes;
	} else {
		in.dirty_pages = (uint64_t)dirty_count;
		in.remaining_bytes = (uint64_t)dirty_count * XEN_POLICY_PAGE;
		xen_policy_start(p, now_us, carried);
	}
	in.bandwidth = p->bandwidth;
	ret = rmig_policy_decide(&in, d);
	if (ret)
		return ret;
	return d->stop ? 1 : 0;
}
