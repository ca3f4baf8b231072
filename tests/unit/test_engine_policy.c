/* SPDX-License-Identifier: MIT */
/* Stop policies: the QEMU projection (remaining / bandwidth plus the pause's own cost against
 * the downtime target, with a round bound) and Xen's limits (30 rounds, fewer than 50 dirty pages, 3x RAM sent), and the
 * auto-converge throttle steps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "engine/policy.h"
#include "rmig.h"

static struct policy_decision decide(struct policy_input in)
{
	struct policy_decision out;

	policy_decide(&in, &out);
	return out;
}

static void test_policy_qemu_stops_when_projection_fits_target(void **state)
{
	struct policy_input in = {.policy = RMIG_POLICY_QEMU,
				  .round = 1,
				  .max_rounds = 30,
				  .downtime_ms = 300,
				  .remaining_bytes = 100u << 20,
				  .bandwidth = 1000u << 20};
	struct policy_decision d;

	(void)state;
	d = decide(in); /* 100 MiB at 1000 MiB/s: 100 ms */
	assert_true(d.stop);
	assert_int_equal(d.reason, RMIG_STOP_DOWNTIME);
	assert_int_equal(d.projected_downtime_ms, 100);

	in.remaining_bytes = 400u << 20; /* 400 ms */
	d = decide(in);
	assert_false(d.stop);
	assert_int_equal(d.projected_downtime_ms, 400);

	in.bandwidth = 0; /* nothing measured yet: cannot project */
	d = decide(in);
	assert_false(d.stop);
}

/* The pause begins with one more pass over the dirty log (a hash tracker rereads all RAM):
 * its cost is part of the projection, so a small dirty set does not promise a downtime the
 * pause cannot keep. */
static void test_policy_qemu_projection_counts_the_pause_cost(void **state)
{
	struct policy_input in = {.policy = RMIG_POLICY_QEMU,
				  .round = 1,
				  .max_rounds = 30,
				  .downtime_ms = 100,
				  .remaining_bytes = 50u << 20,
				  .bandwidth = 1000u << 20,
				  .pause_cost_us = 60000};
	struct policy_decision d;

	(void)state;
	d = decide(in); /* 50 ms of pages + 60 ms of the final pass */
	assert_false(d.stop);
	assert_int_equal(d.projected_downtime_ms, 110);

	in.pause_cost_us = 40000;
	d = decide(in);
	assert_true(d.stop);
	assert_int_equal(d.projected_downtime_ms, 90);

	in.remaining_bytes = 0; /* nothing dirty: the pass alone */
	d = decide(in);
	assert_true(d.stop);
	assert_int_equal(d.projected_downtime_ms, 40);
}

/* The verification's hashing runs beside the final round's pages: the projection counts it
 * only where it outlasts them, and whole when nothing is left to send. */
static void test_policy_qemu_projection_overlaps_the_verification(void **state)
{
	struct policy_input in = {.policy = RMIG_POLICY_QEMU,
				  .round = 1,
				  .max_rounds = 30,
				  .downtime_ms = 70,
				  .remaining_bytes = 50u << 20,
				  .bandwidth = 1000u << 20,
				  .pause_cost_us = 10000,
				  .overlap_cost_us = 30000};
	struct policy_decision d;

	(void)state;
	d = decide(in); /* 10 ms of the final pass, then 50 ms of pages hiding 30 of hashing */
	assert_true(d.stop);
	assert_int_equal(d.projected_downtime_ms, 60);

	in.overlap_cost_us = 80000;	 /* the hashing outlasts the pages by 30 ms */
	in.remaining_bytes = 100u << 20; /* 100 ms of pages hide it again */
	d = decide(in);
	assert_false(d.stop);
	assert_int_equal(d.projected_downtime_ms, 110);

	in.remaining_bytes = 50u << 20;
	in.bandwidth = 0; /* nothing measured yet: cannot project */
	d = decide(in);
	assert_false(d.stop);
	assert_int_equal(d.projected_downtime_ms, UINT64_MAX);
}

/* A target below what the switchover's fixed work takes cannot be met by more rounds: once what
 * is left would cross within the hashing that runs beside it (or nothing is left), the pause is
 * as short as it gets, and rounds of a handful of pages would only run on to the limit. */
static void test_policy_qemu_stops_at_the_pause_floor(void **state)
{
	struct policy_input in = {.policy = RMIG_POLICY_QEMU,
				  .round = 3,
				  .max_rounds = 30,
				  .downtime_ms = 5,
				  .remaining_bytes = 4u << 20,
				  .bandwidth = 400u << 20,
				  .pause_cost_us = 200,
				  .overlap_cost_us = 6000};
	struct policy_decision d;

	(void)state;
	d = decide(in); /* 10 ms of pages: another round can shorten it */
	assert_false(d.stop);
	assert_int_equal(d.projected_downtime_ms, 10);

	in.remaining_bytes = 1u << 20; /* 2.5 ms of pages under 6 ms of hashing */
	d = decide(in);
	assert_true(d.stop);
	assert_int_equal(d.reason, RMIG_STOP_FLOOR);
	assert_int_equal(d.projected_downtime_ms, 6); /* 6.2 ms: above the target, at its floor */

	in.overlap_cost_us = 0; /* nothing to hide behind: 2.5 ms of pages fit the target */
	d = decide(in);
	assert_true(d.stop);
	assert_int_equal(d.reason, RMIG_STOP_DOWNTIME);

	in.remaining_bytes = 0; /* nothing left at all, the final pass alone over the target */
	in.pause_cost_us = 9000;
	d = decide(in);
	assert_true(d.stop);
	assert_int_equal(d.reason, RMIG_STOP_FLOOR);
	assert_int_equal(d.projected_downtime_ms, 9);

	in.remaining_bytes = 1u << 20;
	in.overlap_cost_us = 6000;
	in.bandwidth = 0; /* no rate yet: no floor known either */
	d = decide(in);
	assert_false(d.stop);
}

/* A met target still takes one more round when that round would halve the pause:
 * what is dirty after a long round (a large guest's bulk round) is far more than a short round
 * leaves, so the pause should not grow with how long the bulk round took. */
static void test_policy_qemu_shortens_the_pause_after_a_long_round(void **state)
{
	struct policy_input in = {.policy = RMIG_POLICY_QEMU,
				  .round = 1,
				  .max_rounds = 30,
				  .downtime_ms = 300,
				  .remaining_bytes = 8u << 20,
				  .bandwidth = 1u << 30,
				  .pause_cost_us = 200,
				  .overlap_cost_us = 3500,
				  .window_us = 250000};
	struct policy_decision d;

	(void)state;
	/* 7.8 ms of pages dirtied over 250 ms: a round of about 8 ms leaves about 0.25 ms of them,
	 * under the 3.5 ms of hashing, so the projection would fall from 8 to 3.7 ms */
	d = decide(in);
	assert_false(d.stop);
	assert_int_equal(d.projected_downtime_ms, 8);

	in.window_us = 10000; /* dirtied within 10 ms: a round of 8 ms would leave most of it */
	d = decide(in);
	assert_true(d.stop);
	assert_int_equal(d.reason, RMIG_STOP_DOWNTIME);

	in.window_us = 250000;
	in.round = 30; /* no round left to spend on it */
	d = decide(in);
	assert_true(d.stop);
	assert_int_equal(d.reason, RMIG_STOP_DOWNTIME);

	in.round = 1;
	in.window_us = 0; /* nothing known of the rate (rmig_policy_decide()): the target rules */
	assert_true(decide(in).stop);

	in.window_us = 250000;
	in.remaining_bytes = 2u << 20; /* 1.9 ms of pages, hidden by the hashing already */
	assert_true(decide(in).stop);

	in.remaining_bytes = 1u << 20; /* nothing hides them, but a round saves under 1 ms */
	in.overlap_cost_us = 0;
	in.pause_cost_us = 0;
	assert_true(decide(in).stop);

	in.remaining_bytes = 4u << 20; /* 3.9 ms: a round saves almost all of it */
	d = decide(in);
	assert_false(d.stop);
	assert_int_equal(d.projected_downtime_ms, 4);

	in.held_bytes = 3u << 20; /* unless most of it is held back to the final round anyway */
	assert_true(decide(in).stop);
	in.held_bytes = 1u << 20; /* 2.9 ms would still go, 1 ms stays: more than halved */
	assert_false(decide(in).stop);
}

static void test_policy_qemu_stops_at_round_limit(void **state)
{
	struct policy_input in = {.policy = RMIG_POLICY_QEMU,
				  .round = 5,
				  .max_rounds = 5,
				  .downtime_ms = 1,
				  .remaining_bytes = 1u << 30,
				  .bandwidth = 1u << 20};
	struct policy_decision d;

	(void)state;
	d = decide(in);
	assert_true(d.stop);
	assert_int_equal(d.reason, RMIG_STOP_MAX_ROUNDS);
	in.round = 4;
	assert_false(decide(in).stop);
}

static void test_policy_xen_limits(void **state)
{
	struct policy_input in = {.policy = RMIG_POLICY_XEN,
				  .round = 3,
				  .max_rounds = 0,
				  .dirty_pages = 49,
				  .bytes_sent = 1u << 30,
				  .ram_bytes = 1u << 30};
	struct policy_decision d;

	(void)state;
	d = decide(in);
	assert_true(d.stop);
	assert_int_equal(d.reason, RMIG_STOP_FEW_DIRTY);

	in.dirty_pages = 50;
	assert_false(decide(in).stop);

	in.bytes_sent = 3ull << 30;
	d = decide(in);
	assert_true(d.stop);
	assert_int_equal(d.reason, RMIG_STOP_SENT_LIMIT);

	in.bytes_sent = 1u << 30;
	in.round = 30; /* the Xen bound holds even when max_rounds asks for more */
	in.max_rounds = 100;
	d = decide(in);
	assert_true(d.stop);
	assert_int_equal(d.reason, RMIG_STOP_MAX_ROUNDS);
}

static void test_policy_throttle_after_two_rounds_of_fast_dirtying(void **state)
{
	uint32_t strikes = 0, percent = 0;

	(void)state;
	percent = policy_throttle(60, 100, percent, &strikes);
	assert_int_equal(percent, 0);
	percent = policy_throttle(60, 100, percent, &strikes);
	assert_int_equal(percent, 20);
	percent = policy_throttle(10, 100, percent, &strikes); /* keeping up: resets */
	percent = policy_throttle(60, 100, percent, &strikes);
	assert_int_equal(percent, 20);
	percent = policy_throttle(60, 100, percent, &strikes);
	assert_int_equal(percent, 30);
	for (int i = 0; i < 40; i++)
		percent = policy_throttle(60, 100, percent, &strikes);
	assert_int_equal(percent, 99);
}

/* Predict stops on its own once a round plans at least 4/5 of what the one before planned, and
 * only if the downtime then fits the target; never after the bulk round alone. */
static void test_policy_predict_settles_when_rounds_stop_shrinking(void **state)
{
	(void)state;
	assert_false(policy_predict_settled(1, 900, 1000, 100, 300));	    /* bulk round only */
	assert_false(policy_predict_settled(2, 900, UINT64_MAX, 100, 300)); /* no previous plan */
	assert_false(policy_predict_settled(2, 799, 1000, 100, 300));	    /* still shrinking */
	assert_true(policy_predict_settled(2, 800, 1000, 100, 300));
	assert_true(policy_predict_settled(3, 1200, 1000, 300, 300));  /* growing, fits */
	assert_false(policy_predict_settled(3, 1200, 1000, 301, 300)); /* does not fit */
}

/* auto chooses after POLICY_PROBE_SAMPLES samples, or after two when less than half of RAM is
 * left to send. */
static void test_policy_probe_enough_samples_or_half_of_ram_sent(void **state)
{
	(void)state;
	assert_false(policy_probe_enough(1, 0, 1000));
	assert_false(policy_probe_enough(2, 500, 1000));
	assert_true(policy_probe_enough(2, 499, 1000));
	assert_false(policy_probe_enough(POLICY_PROBE_SAMPLES - 1, 1000, 1000));
	assert_true(policy_probe_enough(POLICY_PROBE_SAMPLES, 1000, 1000));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_policy_qemu_stops_when_projection_fits_target),
		cmocka_unit_test(test_policy_qemu_projection_counts_the_pause_cost),
		cmocka_unit_test(test_policy_qemu_projection_overlaps_the_verification),
		cmocka_unit_test(test_policy_qemu_stops_at_the_pause_floor),
		cmocka_unit_test(test_policy_qemu_shortens_the_pause_after_a_long_round),
		cmocka_unit_test(test_policy_qemu_stops_at_round_limit),
		cmocka_unit_test(test_policy_xen_limits),
		cmocka_unit_test(test_policy_throttle_after_two_rounds_of_fast_dirtying),
		cmocka_unit_test(test_policy_predict_settles_when_rounds_stop_shrinking),
		cmocka_unit_test(test_policy_probe_enough_samples_or_half_of_ram_sent),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
