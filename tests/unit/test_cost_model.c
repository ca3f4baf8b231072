/* SPDX-License-Identifier: MIT */
/* tests/unit/test_cost_model.c - the cost model against numbers worked out by hand: 1 GiB of
 * 4 KiB pages (262144 pages) over 1 GiB/s, so the bulk round takes exactly one second. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "engine/cost_model.h"
#include "rmig.h"

#define GIB 1073741824.0
#define MIB 1048576.0
#define EPS 1e-9

static struct cost_model_input gib_over_gibps(double dirty_pages_rate)
{
	struct cost_model_input input = {
		.ram_bytes = 1ull << 30,
		.page_size = 4096,
		.dirty_pages_rate = dirty_pages_rate,
		.bandwidth = GIB,
	};

	return input;
}

static void test_precopy_idle_guest_takes_one_round(void **state)
{
	struct cost_model_input input = gib_over_gibps(0.0);
	struct cost_projection p;

	(void)state;
	assert_int_equal(cost_model_project(&input, COST_METHOD_PRECOPY_QEMU, &p), 0);
	assert_int_equal(p.rounds, 1);
	assert_true(p.converges);
	assert_true(fabs(p.total_seconds - 1.0) < EPS);
	assert_true(fabs(p.downtime_seconds) < EPS);
	assert_true(fabs(p.bytes - GIB) < 1.0);
}

/* 65536 pages/s = 256 MiB/s, a quarter of the link: round 1 leaves 256 MiB (0.25 s), within
 * the default 300 ms, so the VM pauses after one round. */
static void test_precopy_qemu_stops_when_remaining_fits_target(void **state)
{
	struct cost_model_input input = gib_over_gibps(65536.0);
	struct cost_projection p;

	(void)state;
	assert_int_equal(cost_model_project(&input, COST_METHOD_PRECOPY_QEMU, &p), 0);
	assert_int_equal(p.rounds, 1);
	assert_true(p.converges);
	assert_true(fabs(p.downtime_seconds - 0.25) < EPS);
	assert_true(fabs(p.total_seconds - 1.25) < EPS);
	assert_true(fabs(p.bytes - 1.25 * GIB) < 1.0);
}

/* Target 100 ms: round 2 sends 256 MiB in 0.25 s, dirtying 16384 pages = 64 MiB = 62.5 ms. */
static void test_precopy_qemu_rounds_follow_geometric_series(void **state)
{
	struct cost_model_input input = gib_over_gibps(65536.0);
	struct cost_projection p;

	(void)state;
	input.downtime_ms = 100;
	assert_int_equal(cost_model_project(&input, COST_METHOD_PRECOPY_QEMU, &p), 0);
	assert_int_equal(p.rounds, 2);
	assert_true(fabs(p.downtime_seconds - 0.0625) < EPS);
	assert_true(fabs(p.total_seconds - (1.0 + 0.25 + 0.0625)) < EPS);
	assert_true(fabs(p.bytes - (GIB + 256 * MIB + 64 * MIB)) < 1.0);
}

/* Writing 524288 pages/s (twice the link) into a 32 MiB working set: every round, even the
 * 31.25 ms ones, dirties the whole set (8192 pages), so a 10 ms target is never met and
 * pre-copy runs to its round limit, resending the working set each time. */
static void test_precopy_working_set_cap_stops_at_round_limit(void **state)
{
	struct cost_model_input input = gib_over_gibps(524288.0);
	struct cost_projection p;

	(void)state;
	input.working_set_bytes = 32ull << 20;
	input.downtime_ms = 10;
	input.max_rounds = 5;
	assert_int_equal(cost_model_project(&input, COST_METHOD_PRECOPY_QEMU, &p), 0);
	assert_int_equal(p.rounds, 5);
	assert_false(p.converges);
	assert_true(fabs(p.downtime_seconds - 0.03125) < EPS);
	assert_true(fabs(p.bytes - (GIB + 4 * 32 * MIB + 32 * MIB)) < 1.0);
}

/* Below the link's rate the working set only caps the first round: 65536 pages/s dirty 8192
 * pages in round 1 (1 s) but 2048 in round 2 (31.25 ms), 8 MiB = 7.8 ms, within 10 ms. */
static void test_precopy_working_set_cap_then_geometric_shrink(void **state)
{
	struct cost_model_input input = gib_over_gibps(65536.0);
	struct cost_projection p;

	(void)state;
	input.working_set_bytes = 32ull << 20;
	input.downtime_ms = 10;
	assert_int_equal(cost_model_project(&input, COST_METHOD_PRECOPY_QEMU, &p), 0);
	assert_int_equal(p.rounds, 2);
	assert_true(p.converges);
	assert_true(fabs(p.downtime_seconds - 2048 * 4096.0 / GIB) < EPS);
	assert_true(fabs(p.bytes - (GIB + 32 * MIB + 8 * MIB)) < 1.0);
}

/* Same guest as the round-limit case: prediction holds the working set back once a round has
 * dirtied all of it, so it stops after the bulk round with the same downtime and 4 x 32 MiB
 * fewer bytes. */
static void test_predict_holds_back_saturated_working_set(void **state)
{
	struct cost_model_input input = gib_over_gibps(524288.0);
	struct cost_projection p;

	(void)state;
	input.working_set_bytes = 32ull << 20;
	input.downtime_ms = 10;
	input.max_rounds = 5;
	assert_int_equal(cost_model_project(&input, COST_METHOD_PREDICT, &p), 0);
	assert_int_equal(p.rounds, 1);
	assert_true(fabs(p.downtime_seconds - 0.03125) < EPS);
	assert_true(fabs(p.bytes - (GIB + 32 * MIB)) < 1.0);
}

/* Xen stops once 3x RAM has been sent when the guest dirties as fast as the link: 3 rounds of
 * 1 GiB, then the last 1 GiB with the VM paused. */
static void test_precopy_xen_stops_at_three_times_ram(void **state)
{
	struct cost_model_input input = gib_over_gibps(262144.0);
	struct cost_projection p;

	(void)state;
	assert_int_equal(cost_model_project(&input, COST_METHOD_PRECOPY_XEN, &p), 0);
	assert_int_equal(p.rounds, 3);
	assert_false(p.converges);
	assert_true(fabs(p.downtime_seconds - 1.0) < EPS);
	assert_true(fabs(p.bytes - 4 * GIB) < 1.0);
}

/* Xen converges when fewer than 50 pages are dirty: 1000 pages/s leaves 1000 after the bulk
 * round (1 s), 1000 * 4096 / 2^30 s later about 3.8 pages, under 50. */
static void test_precopy_xen_stops_when_few_pages_dirty(void **state)
{
	struct cost_model_input input = gib_over_gibps(1000.0);
	struct cost_projection p;

	(void)state;
	assert_int_equal(cost_model_project(&input, COST_METHOD_PRECOPY_XEN, &p), 0);
	assert_int_equal(p.rounds, 2);
	assert_true(p.converges);
	assert_true(fabs(p.bytes - (GIB + 1000 * 4096.0 + 1000 * 4096.0 / GIB * 1000 * 4096.0)) <
		    1.0);
}

/* Post-copy: RAM once, downtime only the device state (1 MiB = ~0.98 ms). */
static void test_postcopy_sends_ram_once_with_device_state_downtime(void **state)
{
	struct cost_model_input input = gib_over_gibps(262144.0);
	struct cost_projection p;

	(void)state;
	input.device_state_bytes = 1 << 20;
	assert_int_equal(cost_model_project(&input, COST_METHOD_POSTCOPY, &p), 0);
	assert_true(fabs(p.downtime_seconds - MIB / GIB) < EPS);
	assert_true(fabs(p.total_seconds - (1.0 + MIB / GIB)) < EPS);
	assert_true(fabs(p.bytes - (GIB + MIB)) < 1.0);
	assert_true(p.stall_seconds > 0.0);
}

/* TSMC with a 64 MiB working set at 65536 pages/s: stage 1 1 GiB (1 s) dirties the whole
 * working set (16384 pages), stage 2 sends it (62.5 ms) and dirties 4096 pages, which follow
 * post-copy (15.625 ms). No page crosses more than twice. */
static void test_tsmc_sends_ram_then_dirtied_then_postcopies_rest(void **state)
{
	struct cost_model_input input = gib_over_gibps(65536.0);
	struct cost_projection p;

	(void)state;
	input.working_set_bytes = 64ull << 20;
	assert_int_equal(cost_model_project(&input, COST_METHOD_TSMC, &p), 0);
	assert_int_equal(p.rounds, 2);
	assert_true(fabs(p.downtime_seconds) < EPS);
	assert_true(fabs(p.total_seconds - (1.0 + 0.0625 + 0.015625)) < EPS);
	assert_true(fabs(p.bytes - (GIB + 64 * MIB + 16 * MIB)) < 1.0);
	assert_true(p.bytes <= 2 * GIB);
}

static void test_hybrid_is_one_round_then_postcopy(void **state)
{
	struct cost_model_input input = gib_over_gibps(65536.0);
	struct cost_projection p;

	(void)state;
	assert_int_equal(cost_model_project(&input, COST_METHOD_HYBRID, &p), 0);
	assert_int_equal(p.rounds, 1);
	assert_true(fabs(p.total_seconds - 1.25) < EPS);
	assert_true(fabs(p.bytes - 1.25 * GIB) < 1.0);
}

/* Half of RAM zero: the bulk round carries half the data and takes half the time. */
static void test_zero_pages_cost_no_data(void **state)
{
	struct cost_model_input input = gib_over_gibps(0.0);
	struct cost_projection p;

	(void)state;
	input.zero_fraction = 0.5;
	assert_int_equal(cost_model_project(&input, COST_METHOD_PRECOPY_QEMU, &p), 0);
	assert_true(fabs(p.total_seconds - 0.5) < EPS);
	assert_true(fabs(p.bytes - 0.5 * GIB) < 1.0);
}

/* A 100 ms pause cost (final dirty-log pass, verification hashing): 65536 pages/s leaves
 * 256 MiB after round 1, 0.25 s to send + 0.1 s = 0.35 s, over the 300 ms target, so pre-copy
 * runs a second round (0.25 s, leaving 64 MiB: 62.5 ms + 100 ms). TSMC and hybrid pay the
 * pause, post-copy does not. */
static void test_pause_cost_adds_to_downtime_and_the_stop_rule(void **state)
{
	struct cost_model_input input = gib_over_gibps(65536.0);
	struct cost_projection p;

	(void)state;
	input.pause_seconds = 0.1;
	assert_int_equal(cost_model_project(&input, COST_METHOD_PRECOPY_QEMU, &p), 0);
	assert_int_equal(p.rounds, 2);
	assert_true(p.converges);
	assert_true(fabs(p.downtime_seconds - (0.0625 + 0.1)) < EPS);
	assert_true(fabs(p.total_seconds - (1.25 + 0.0625 + 0.1)) < EPS);
	assert_true(fabs(p.bytes - (1.25 + 0.0625) * GIB) < 1.0);
	assert_int_equal(cost_model_project(&input, COST_METHOD_HYBRID, &p), 0);
	assert_true(fabs(p.downtime_seconds - 0.1) < EPS);
	assert_true(fabs(p.total_seconds - 1.35) < EPS);
	assert_int_equal(cost_model_project(&input, COST_METHOD_TSMC, &p), 0);
	assert_true(fabs(p.downtime_seconds - 0.1) < EPS);
	assert_int_equal(cost_model_project(&input, COST_METHOD_POSTCOPY, &p), 0);
	assert_true(fabs(p.downtime_seconds) < EPS);
	assert_true(fabs(p.total_seconds - 1.0) < EPS);
	/* A pause longer than the target: pre-copy cannot meet it, whatever it sends. */
	input.pause_seconds = 0.4;
	assert_int_equal(cost_model_project(&input, COST_METHOD_PRECOPY_QEMU, &p), 0);
	assert_false(p.converges);
	input.pause_seconds = -0.1;
	assert_int_equal(cost_model_project(&input, COST_METHOD_PRECOPY_QEMU, &p), -EINVAL);
}

/* A guest writing single pages all over RAM as fast as the link carries (262144 pages/s):
 * taken as writes in order, every round redirties all of RAM and pre-copy never converges;
 * scattered, a round of t seconds covers 1 - e^-t of RAM (its rewrites land on pages already
 * dirty), so the rounds shrink 1 s, 0.632, 0.469, 0.374, 0.312 and the fifth leaves 0.268 s. */
static void test_scattered_writes_redirty_fewer_pages_than_they_write(void **state)
{
	struct cost_model_input input = gib_over_gibps(262144.0);
	struct cost_projection p;
	double t = 1.0, total = 0.0;

	(void)state;
	assert_int_equal(cost_model_project(&input, COST_METHOD_PRECOPY_QEMU, &p), 0);
	assert_false(p.converges);
	input.access_run_pages = 1.0;
	assert_int_equal(cost_model_project(&input, COST_METHOD_PRECOPY_QEMU, &p), 0);
	assert_true(p.converges);
	assert_int_equal(p.rounds, 5);
	for (int round = 0; round < 5; round++) {
		total += t;
		t = 1.0 - exp(-t);
	}
	assert_true(fabs(p.downtime_seconds - t) < 1e-6);
	assert_true(fabs(t - 0.268077) < 1e-6);
	assert_true(fabs(p.total_seconds - (total + t)) < 1e-6);
	/* Long runs are a guest going on in order: the linear count again. */
	input.access_run_pages = 1024.0;
	assert_int_equal(cost_model_project(&input, COST_METHOD_PRECOPY_QEMU, &p), 0);
	assert_false(p.converges);
}

static void test_auto_picks_precopy_when_it_converges(void **state)
{
	struct cost_model_input input = gib_over_gibps(65536.0);
	struct cost_projection p;

	(void)state;
	assert_int_equal(cost_model_choose_method(&input, &p), 0);
	assert_int_equal(p.method, COST_METHOD_PRECOPY_QEMU);
	assert_true(p.converges);
}

/* Dirtying faster than the link (300000 pages/s * 4 KiB > 1 GiB/s): pre-copy cannot converge,
 * auto falls back to the post-copy family. */
static void test_auto_falls_back_to_postcopy_when_dirty_rate_exceeds_bandwidth(void **state)
{
	struct cost_model_input input = gib_over_gibps(300000.0);
	struct cost_projection p;

	(void)state;
	assert_int_equal(cost_model_choose_method(&input, &p), 0);
	assert_true(p.method == COST_METHOD_TSMC || p.method == COST_METHOD_HYBRID ||
		    p.method == COST_METHOD_POSTCOPY);
	assert_true(p.downtime_seconds <= 0.3);
}

static void test_rejects_zero_bandwidth_and_bad_page_size(void **state)
{
	struct cost_model_input input = gib_over_gibps(0.0);
	struct cost_projection p;

	(void)state;
	input.bandwidth = 0.0;
	assert_int_equal(cost_model_project(&input, COST_METHOD_POSTCOPY, &p), -EINVAL);
	input = gib_over_gibps(0.0);
	input.page_size = 3000;
	assert_int_equal(cost_model_project(&input, COST_METHOD_POSTCOPY, &p), -EINVAL);
	input = gib_over_gibps(0.0);
	assert_int_equal(cost_model_project(&input, COST_METHOD_COUNT, &p), -EINVAL);
}

static void test_method_names_round_trip(void **state)
{
	uint32_t method;

	(void)state;
	for (uint32_t m = 0; m < COST_METHOD_COUNT; m++) {
		assert_int_equal(cost_method_from_name(cost_method_name(m), &method), 0);
		assert_int_equal(method, m);
	}
	assert_int_equal(cost_method_from_name("warp", &method), -EINVAL);
}

static void test_methods_map_to_engine_method_and_policy(void **state)
{
	uint32_t method, policy;

	(void)state;
	cost_method_to_engine(COST_METHOD_PRECOPY_XEN, &method, &policy);
	assert_int_equal(method, RMIG_METHOD_PRECOPY);
	assert_int_equal(policy, RMIG_POLICY_XEN);
	cost_method_to_engine(COST_METHOD_PRECOPY_QEMU, &method, &policy);
	assert_int_equal(method, RMIG_METHOD_PRECOPY);
	assert_int_equal(policy, RMIG_POLICY_QEMU);
	cost_method_to_engine(COST_METHOD_TSMC, &method, &policy);
	assert_int_equal(method, RMIG_METHOD_TSMC);
	cost_method_to_engine(COST_METHOD_HYBRID, &method, &policy);
	assert_int_equal(method, RMIG_METHOD_HYBRID);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_precopy_idle_guest_takes_one_round),
		cmocka_unit_test(test_precopy_qemu_stops_when_remaining_fits_target),
		cmocka_unit_test(test_precopy_qemu_rounds_follow_geometric_series),
		cmocka_unit_test(test_precopy_working_set_cap_stops_at_round_limit),
		cmocka_unit_test(test_precopy_working_set_cap_then_geometric_shrink),
		cmocka_unit_test(test_predict_holds_back_saturated_working_set),
		cmocka_unit_test(test_precopy_xen_stops_at_three_times_ram),
		cmocka_unit_test(test_precopy_xen_stops_when_few_pages_dirty),
		cmocka_unit_test(test_postcopy_sends_ram_once_with_device_state_downtime),
		cmocka_unit_test(test_tsmc_sends_ram_then_dirtied_then_postcopies_rest),
		cmocka_unit_test(test_hybrid_is_one_round_then_postcopy),
		cmocka_unit_test(test_zero_pages_cost_no_data),
		cmocka_unit_test(test_pause_cost_adds_to_downtime_and_the_stop_rule),
		cmocka_unit_test(test_scattered_writes_redirty_fewer_pages_than_they_write),
		cmocka_unit_test(test_auto_picks_precopy_when_it_converges),
		cmocka_unit_test(
			test_auto_falls_back_to_postcopy_when_dirty_rate_exceeds_bandwidth),
		cmocka_unit_test(test_rejects_zero_bandwidth_and_bad_page_size),
		cmocka_unit_test(test_method_names_round_trip),
		cmocka_unit_test(test_methods_map_to_engine_method_and_policy),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
