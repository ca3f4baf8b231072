/* SPDX-License-Identifier: MIT */
/* engine/policy.c - every rule that ends a live phase (engine/policy.h), and the rate
 * arithmetic behind them. Where the session's numbers come from: engine/stop.c. */
#include "engine/policy.h"
#include "rmig.h"

uint64_t policy_rate(uint64_t amount, uint64_t duration_us)
{
	if (!duration_us)
		return 0;
	return (uint64_t)((double)amount * 1e6 / (double)duration_us);
}

static uint64_t policy_projected_ms(uint64_t remaining_bytes, uint64_t bandwidth,
				    uint64_t pause_cost_us, uint64_t overlap_cost_us)
{
	double send_us = 0;

	if (remaining_bytes && !bandwidth)
		return UINT64_MAX;
	if (remaining_bytes)
		send_us = (double)remaining_bytes * 1e6 / (double)bandwidth;
	if ((double)overlap_cost_us > send_us)
		send_us = (double)overlap_cost_us;
	return (uint64_t)((send_us + (double)pause_cost_us) / 1000.0 + 0.5);
}

/* Another round cannot lower the projection: nothing is left to send, or sending it would
 * take no longer than the hashing that runs beside it anyway. A target below that floor would
 * otherwise keep rounds of a handful of pages going to the round limit. */
static int policy_at_floor(const struct policy_input *in)
{
	if (!in->remaining_bytes)
		return 1;
	if (!in->bandwidth)
		return 0;
	return (double)in->remaining_bytes * 1e6 / (double)in->bandwidth <=
	       (double)in->overlap_cost_us;
}

/* The target is met, but one more round would still halve the projected pause (and cut it by a
 * millisecond at least). The guest dirtied what is left over window_us; a round that sends
 * it and syncs takes about send + sync, so at the same rate it leaves about
 * send x (send + sync) / window to send, besides the pages held back to the final round,
 * which no round sends. After a long round (the bulk round of a large guest)
 * that is a fraction of what is dirty now, and the pause no longer grows with how long the
 * bulk round took. Once rounds are as short as the window that fills them (a working set
 * rewritten as fast as it drains), the estimate stops shrinking and the rounds stop. */
static int policy_worth_another_round(const struct policy_input *in)
{
	double send_us, held_us, moving_us, next_send_us, now_us, next_us;
	uint64_t held = in->held_bytes < in->remaining_bytes ? in->held_bytes : in->remaining_bytes;

	if (!in->window_us || !in->bandwidth || !in->remaining_bytes)
		return 0;
	if (in->max_rounds && in->round >= in->max_rounds)
		return 0;
	send_us = (double)in->remaining_bytes * 1e6 / (double)in->bandwidth;
	held_us = (double)held * 1e6 / (double)in->bandwidth;
	moving_us = send_us - held_us;
	next_send_us = held_us +
		       moving_us * (moving_us + (double)in->pause_cost_us) / (double)in->window_us;
	now_us = (double)in->pause_cost_us +
		 (send_us > (double)in->overlap_cost_us ? send_us : (double)in->overlap_cost_us);
	next_us = (double)in->pause_cost_us + (next_send_us > (double)in->overlap_cost_us
						       ? next_send_us
						       : (double)in->overlap_cost_us);
	return next_us * 2 <= now_us && now_us - next_us >= 1000;
}

void policy_decide(const struct policy_input *in, struct policy_decision *out)
{
	uint32_t max_rounds = in->max_rounds;

	out->stop = 0;
	out->reason = RMIG_STOP_NONE;
	out->projected_downtime_ms = policy_projected_ms(in->remaining_bytes, in->bandwidth,
							 in->pause_cost_us, in->overlap_cost_us);

	if (in->policy == RMIG_POLICY_XEN) {
		if (!max_rounds || max_rounds > POLICY_XEN_MAX_ROUNDS)
			max_rounds = POLICY_XEN_MAX_ROUNDS;
		if (in->dirty_pages < POLICY_XEN_FEW_DIRTY_PAGES) {
			out->stop = 1;
			out->reason = RMIG_STOP_FEW_DIRTY;
		} else if (in->bytes_sent >= (uint64_t)POLICY_XEN_SENT_FACTOR * in->ram_bytes) {
			out->stop = 1;
			out->reason = RMIG_STOP_SENT_LIMIT;
		} else if (in->round >= max_rounds) {
			out->stop = 1;
			out->reason = RMIG_STOP_MAX_ROUNDS;
		}
		return;
	}
	/* QEMU: the pages dirty now would cross in remaining / bandwidth with the VM paused, after
	 * the final pass over the dirty log. */
	if (out->projected_downtime_ms <= in->downtime_ms) {
		if (!policy_worth_another_round(in)) {
			out->stop = 1;
			out->reason = RMIG_STOP_DOWNTIME;
		}
	} else if (policy_at_floor(in)) {
		out->stop = 1;
		out->reason = RMIG_STOP_FLOOR;
	} else if (max_rounds && in->round >= max_rounds) {
		out->stop = 1;
		out->reason = RMIG_STOP_MAX_ROUNDS;
	}
}

uint32_t policy_throttle(uint64_t dirty_bytes, uint64_t bytes_sent, uint32_t current,
			 uint32_t *strikes_p)
{
	if (dirty_bytes * 2 <= bytes_sent) {
		*strikes_p = 0;
		return current;
	}
	if (++*strikes_p < 2)
		return current;
	*strikes_p = 0;
	current += current ? 10u : 20u;
	return current > 99u ? 99u : current;
}

int policy_predict_settled(uint32_t round, uint64_t planned_pages, uint64_t previous_pages,
			   uint64_t projected_downtime_ms, uint32_t downtime_ms)
{
	if (round < 2 || previous_pages == UINT64_MAX || planned_pages * 5 < previous_pages * 4)
		return 0;
	return projected_downtime_ms <= downtime_ms;
}

int policy_probe_enough(uint32_t samples, uint64_t left_bytes, uint64_t ram_bytes)
{
	return samples >= POLICY_PROBE_SAMPLES || (samples >= 2 && left_bytes * 2 < ram_bytes);
}
