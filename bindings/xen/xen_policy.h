/* SPDX-License-Identifier: MIT */
/* bindings/xen/xen_policy.h - rmig's stop rule over libxc's pre-copy iterations, as
 * rmig-xen-save's precopy_policy callback applies it: the stream's bandwidth per iteration, and
 * each of libxc's calls turned into a question for rmig_policy_decide(). No Xen header: the
 * unit test runs it without Xen. */
#ifndef RMIG_XEN_POLICY_H
#define RMIG_XEN_POLICY_H

#include <stdint.h>

#include "rmig.h"

#define XEN_POLICY_PAGE 4096ull

struct xen_policy {
	uint32_t policy; /* enum rmig_policy */
	uint32_t downtime_ms;
	uint32_t max_rounds;
	uint64_t ram_bytes;
	/* measured: */
	uint64_t iteration_start_us;
	uint64_t iteration_start_bytes;
	uint64_t bandwidth; /* bytes per second over the last iteration; 0 until one ended */
};

/* Start of the stream: the first iteration is timed from here. */
void xen_policy_start(struct xen_policy *p, uint64_t now_us, uint64_t carried);

/**
 * xen_policy_step() - one call of libxc's precopy_policy.
 * @iteration, @total_written, @dirty_count: libxc's precopy_stats (dirty_count -1: libxc asks
 *	after an iteration's pages went out, before its log-dirty harvest).
 * @now_us, @carried: the clock, and the stream's bytes rmig has taken so far.
 * @d: rmig's answer (d->struct_size set by the caller).
 *
 * Before an iteration (count known) the rule weighs the count and the iteration's timing
 * starts; after it the stream's bytes over its duration become the bandwidth, and the rule
 * weighs all of RAM as the bound of what is dirty (only the round limit, or a link that moves
 * all RAM within the target, stops there, as libxc's own rule stops after 5 iterations).
 *
 * Return: 1 stop and copy, 0 another iteration, -EINVAL when rmig refused the input.
 */
int xen_policy_step(struct xen_policy *p, uint32_t iteration, uint64_t total_written,
		    int64_t dirty_count, uint64_t now_us, uint64_t carried,
		    struct rmig_policy_decision *d);

#endif /* RMIG_XEN_POLICY_H */
