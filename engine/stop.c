/* SPDX-License-Identifier: MIT */
/* engine/stop.c - where the source's live phase decides to stop: stop_decide(), after each live
 * round of the pre-copy family. Every rule is a pure function in engine/policy.c; this file takes
 * the session's measurements to them:
 *  - the stop policy (policy_decide): QEMU's projected downtime (what is dirty now over the
 *    measured bandwidth, or the verification's hashing beside it where that takes longer,
 *    plus the final pass over the dirty log) against the target, or Xen's limits;
 *  - the throttle (policy_throttle), asked only while the policy says go on;
 *  - prediction pre-copy's settling (policy_predict_settled), when the policy says go on;
 *  - auto's probe (policy_probe_enough, asked by the sampler): when it has seen enough of the
 *    bulk round to choose; the choice itself is the cost model's (engine/methods/auto.c).
 * TSMC, hybrid and post-copy have no stop rule: their live phases are a fixed number of rounds. */
#include <errno.h>
#include <stdint.h>

#include "engine/policy.h"
#include "engine/session.h"
#include "engine/source.h"
#include "engine/verify.h"
#include "transport/log.h"

/* What the pause will cost besides the pages and the device state: one more pass over the
 * dirty log (a hash tracker rereads all RAM, however little is dirty), and the verification's
 * hashing of the pages no tracker keeps hashes of. */
uint64_t source_pause_cost_us(struct rmig_session *s)
{
	return s->src.sync_cost_us + verify_source_cost_us(s);
}

int stop_decide(struct rmig_session *s, const struct stop_round *round)
{
	struct rmig_round_stats last;
	struct policy_decision decision;
	struct policy_input in = {
		.policy = s->policy,
		.round = round->round,
		.max_rounds = s->params.max_rounds,
		.downtime_ms = s->params.downtime_ms,
		.dirty_pages = round->dirty_pages,
		/* The verification's hashing runs beside the final round's pages
		 * (verify_source_prehash_start()): it counts where it outlasts them. */
		.pause_cost_us = s->src.sync_cost_us,
		.overlap_cost_us = verify_source_cost_us(s),
		.window_us = round->since_sync_us,
	};
	uint64_t held = source_held_pages(s, &in.held_bytes);

	in.bandwidth = source_measure(s, round->dirty_pages, round->since_sync_us, &last);
	pthread_mutex_lock(&s->lock);
	in.bytes_sent = s->stats.data_bytes;
	in.ram_bytes = s->stats.ram_bytes;
	pthread_mutex_unlock(&s->lock);

	/* Held-back pages count towards what the pause will carry, not towards "dirty". */
	in.remaining_bytes = source_dirty_bytes(s);
	policy_decide(&in, &decision);
	if (!decision.stop && in.policy == RMIG_POLICY_QEMU &&
	    decision.projected_downtime_ms <= in.downtime_ms)
		rmig_log_info(
			"source: round %u: the target is met (%llu ms projected, %llu dirty pages "
			"over %.1f ms); one more round to shorten the pause",
			in.round, (unsigned long long)decision.projected_downtime_ms,
			(unsigned long long)in.dirty_pages, (double)in.window_us / 1000.0);

	pthread_mutex_lock(&s->lock);
	s->stats.remaining_bytes = in.remaining_bytes;
	s->stats.projected_downtime_ms = decision.projected_downtime_ms;
	s->stats.pages_held = held;
	if (decision.stop)
		s->stats.stop_reason = decision.reason;
	pthread_mutex_unlock(&s->lock);

	if (!decision.stop && (s->callbacks.field_mask & RMIG_CB_THROTTLE)) {
		uint32_t next = policy_throttle(in.remaining_bytes, last.data_bytes,
						s->src.throttle_percent, &s->src.throttle_strikes);

		if (next != s->src.throttle_percent) {
			int ret = s->callbacks.throttle(s->opaque, next);

			if (ret < 0)
				return session_fail(s, ret, "the throttle callback returned %d",
						    ret);
			s->src.throttle_percent = next;
		}
	}
	if (!decision.stop && round->settle &&
	    policy_predict_settled(round->round, round->dirty_pages, round->previous_pages,
				   decision.projected_downtime_ms, s->params.downtime_ms)) {
		decision.stop = 1;
		pthread_mutex_lock(&s->lock);
		s->stats.stop_reason = RMIG_STOP_DOWNTIME;
		pthread_mutex_unlock(&s->lock);
	}
	return decision.stop;
}
