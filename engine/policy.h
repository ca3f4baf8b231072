/* SPDX-License-Identifier: MIT */
/* engine/policy.h - every rule that ends a live phase, as pure functions of numbers: the stop
 * policies (QEMU-style downtime projection, Xen-style limits), prediction pre-copy's settling,
 * the throttle, and when auto's probe has seen enough to choose. engine/stop.c feeds them the
 * session's measurements; tests feed them numbers. */
#ifndef RMIG_ENGINE_POLICY_H
#define RMIG_ENGINE_POLICY_H

#include <stdint.h>

/* Xen's classic limits. */
#define POLICY_XEN_MAX_ROUNDS 30u
#define POLICY_XEN_FEW_DIRTY_PAGES 50u
#define POLICY_XEN_SENT_FACTOR 3u

/* What a stop decision looks at, after round `round` and the dirty sync that followed it. */
struct policy_input {
	uint32_t policy; /* enum rmig_policy */
	uint32_t round;	 /* rounds completed while the VM ran (1 = the bulk round) */
	uint32_t max_rounds;
	uint32_t downtime_ms;	  /* target */
	uint64_t remaining_bytes; /* dirty now, would be sent with the VM paused */
	uint64_t dirty_pages;
	uint64_t bandwidth;  /* bytes per second measured over the last round */
	uint64_t bytes_sent; /* page data sent so far, all rounds */
	uint64_t ram_bytes;
	/* what the pause costs besides sending remaining_bytes (the final pass over the dirty
	 * log: a content-hash tracker rereads all RAM), microseconds */
	uint64_t pause_cost_us;
	/* what the pause does beside sending remaining_bytes (the verification's hashing of the
	 * source's pages, on a thread of its own from the final sync on), microseconds: it adds
	 * to the projection only as far as it outlasts the send */
	uint64_t overlap_cost_us;
	/* how long the guest took to dirty remaining_bytes (since the previous sync),
	 * microseconds; 0 when unknown (then a met target always stops) */
	uint64_t window_us;
	/* of remaining_bytes, those held back to the final round (prediction): another round
	 * does not send them */
	uint64_t held_bytes;
};

struct policy_decision {
	int stop;
	uint32_t reason; /* enum rmig_stop_reason */
	/* pause_cost_us + the longer of remaining_bytes / bandwidth and overlap_cost_us;
	 * UINT64_MAX when unknown */
	uint64_t projected_downtime_ms;
};

void policy_decide(const struct policy_input *in, struct policy_decision *out);

/* amount per second over duration_us (0 when the duration is 0). */
uint64_t policy_rate(uint64_t amount, uint64_t duration_us);

/* How far to throttle the guest (percent of vCPU time taken away) after a round in which it
 * dirtied dirty_bytes while bytes_sent went out, given the current throttle. QEMU's
 * auto-converge rule: when the guest dirties more than half of what is sent, two rounds in a
 * row (*strikes_p counts them), raise the throttle by 20 points, then 10, up to 99. */
uint32_t policy_throttle(uint64_t dirty_bytes, uint64_t bytes_sent, uint32_t current,
			 uint32_t *strikes_p);

/* Prediction pre-copy's own stop, on top of the policy's: once a round no longer shrinks what
 * the next must send (planned >= 4/5 of the previous round's plan; the guest dirties as fast as
 * the link drains, and what keeps coming back will be rewritten before the end anyway), more
 * rounds only resend it. 1 to stop when the projected downtime then fits the target. Never
 * before round 2 or without a previous plan (previous_pages == UINT64_MAX). */
int policy_predict_settled(uint32_t round, uint64_t planned_pages, uint64_t previous_pages,
			   uint64_t projected_downtime_ms, uint32_t downtime_ms);

/* auto: samples of the bulk round's dirty log it wants before it chooses. */
#define POLICY_PROBE_SAMPLES 4u

/* auto's probe has seen enough to choose (1): POLICY_PROBE_SAMPLES samples, or two once less
 * than half of RAM is left to send (the round ends before more could come). */
int policy_probe_enough(uint32_t samples, uint64_t left_bytes, uint64_t ram_bytes);

#endif /* RMIG_ENGINE_POLICY_H */
