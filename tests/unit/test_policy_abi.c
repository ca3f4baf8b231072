/* SPDX-License-Identifier: MIT */
/* rmig_policy_decide() (1.1): the stop rule a source session applies, asked for by a toolstack
 * that runs its own rounds (Xen's precopy_policy): its decisions, that they are the engine's,
 * and its argument checks. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "engine/policy.h"
#include "rmig.h"

static struct rmig_policy_input qemu_round(uint32_t round, uint64_t remaining, uint64_t bandwidth)
{
	struct rmig_policy_input in = {
		.struct_size = sizeof(in),
		.policy = RMIG_POLICY_QEMU,
		.round = round,
		.max_rounds = 30,
		.downtime_ms = 300,
		.dirty_pages = remaining / 4096,
		.remaining_bytes = remaining,
		.bandwidth = bandwidth,
		.ram_bytes = 128u << 20,
	};
	return in;
}

static struct rmig_policy_decision decide(const struct rmig_policy_input *in)
{
	struct rmig_policy_decision d = {.struct_size = sizeof(d)};

	assert_int_equal(rmig_policy_decide(in, &d), 0);
	return d;
}

/* Xen's round 3 left 1200 dirty pages (4.7 MiB) and the stream moved 20 MiB/s: 234 ms fits a
 * 300 ms target; at 10 MiB/s (469 ms) it does not, until the round limit. */
static void test_qemu_policy_stops_when_dirty_pages_fit_the_downtime_target(void **state)
{
	struct rmig_policy_input in = qemu_round(3, 1200ull * 4096, 20ull << 20);
	struct rmig_policy_decision d;

	(void)state;
	d = decide(&in);
	assert_int_equal(d.stop, 1);
	assert_int_equal(d.reason, RMIG_STOP_DOWNTIME);
	assert_int_equal(d.projected_downtime_ms, 234);

	in.bandwidth = 10ull << 20;
	d = decide(&in);
	assert_int_equal(d.stop, 0);
	assert_int_equal(d.reason, RMIG_STOP_NONE);
	assert_int_equal(d.projected_downtime_ms, 469);

	in.round = 30;
	d = decide(&in);
	assert_int_equal(d.stop, 1);
	assert_int_equal(d.reason, RMIG_STOP_MAX_ROUNDS);
}

/* Before anything was measured (Xen's first call, all of RAM dirty) nothing can be projected:
 * go on. */
static void test_qemu_policy_goes_on_while_bandwidth_is_unknown(void **state)
{
	struct rmig_policy_input in = qemu_round(0, 128u << 20, 0);
	struct rmig_policy_decision d;

	(void)state;
	d = decide(&in);
	assert_int_equal(d.stop, 0);
	assert_int_equal(d.projected_downtime_ms, UINT64_MAX);
}

/* The XEN policy: fewer than 50 dirty pages, 3x RAM sent, or the round limit. */
static void test_xen_policy_stops_on_its_classic_limits(void **state)
{
	struct rmig_policy_input in = qemu_round(2, 49ull * 4096, 1);
	struct rmig_policy_decision d;

	(void)state;
	in.policy = RMIG_POLICY_XEN;
	in.dirty_pages = 49;
	d = decide(&in);
	assert_int_equal(d.stop, 1);
	assert_int_equal(d.reason, RMIG_STOP_FEW_DIRTY);

	in.dirty_pages = 5000;
	in.remaining_bytes = 5000ull * 4096;
	d = decide(&in);
	assert_int_equal(d.stop, 0);

	in.bytes_sent = 3 * in.ram_bytes;
	d = decide(&in);
	assert_int_equal(d.stop, 1);
	assert_int_equal(d.reason, RMIG_STOP_SENT_LIMIT);

	in.bytes_sent = 0;
	in.max_rounds = 0; /* the policy's own 30 */
	in.round = 30;
	d = decide(&in);
	assert_int_equal(d.stop, 1);
	assert_int_equal(d.reason, RMIG_STOP_MAX_ROUNDS);
}

/* The answer is the engine's rule's, over a grid of rounds, dirty sets, rates, pause costs. */
static void test_answers_are_the_engine_policy_answers(void **state)
{
	static const uint64_t remaining[] = {0, 4096, 1u << 20, 50u << 20, 1ull << 33};
	static const uint64_t bandwidth[] = {0, 1, 5u << 20, 1ull << 30};
	static const uint64_t pause_us[] = {0, 700, 250000};
	unsigned checked = 0;

	(void)state;
	for (uint32_t policy = RMIG_POLICY_QEMU; policy <= RMIG_POLICY_XEN; policy++)
		for (uint32_t round = 0; round <= 31; round += 5)
			for (size_t r = 0; r < sizeof(remaining) / sizeof(*remaining); r++)
				for (size_t b = 0; b < sizeof(bandwidth) / sizeof(*bandwidth); b++)
					for (size_t p = 0; p < 3; p++) {
						struct rmig_policy_input in = {
							.struct_size = sizeof(in),
							.policy = policy,
							.round = round,
							.max_rounds = round % 2 ? 0 : 20,
							.downtime_ms = 300,
							.dirty_pages = remaining[r] / 4096,
							.remaining_bytes = remaining[r],
							.bandwidth = bandwidth[b],
							.bytes_sent = remaining[r] * round,
							.ram_bytes = 256u << 20,
							.pause_cost_us = pause_us[p],
						};
						struct policy_input engine = {
							.policy = policy,
							.round = round,
							.max_rounds = in.max_rounds,
							.downtime_ms = 300,
							.remaining_bytes = in.remaining_bytes,
							.dirty_pages = in.dirty_pages,
							.bandwidth = in.bandwidth,
							.bytes_sent = in.bytes_sent,
							.ram_bytes = in.ram_bytes,
							.pause_cost_us = in.pause_cost_us,
						};
						struct policy_decision want;
						struct rmig_policy_decision got = decide(&in);

						policy_decide(&engine, &want);
						assert_int_equal(got.stop, want.stop ? 1 : 0);
						assert_int_equal(got.reason, want.reason);
						assert_int_equal(got.projected_downtime_ms,
								 want.projected_downtime_ms);
						checked++;
					}
	assert_int_equal(checked, 2 * 7 * 5 * 4 * 3);
}

static void test_refuses_bad_arguments(void **state)
{
	struct rmig_policy_input in = qemu_round(1, 4096, 1u << 20);
	struct rmig_policy_decision d = {.struct_size = sizeof(d), .stop = 7};

	(void)state;
	assert_int_equal(rmig_policy_decide(NULL, &d), -EINVAL);
	assert_int_equal(rmig_policy_decide(&in, NULL), -EINVAL);
	in.struct_size = offsetof(struct rmig_policy_input, pause_cost_us);
	assert_int_equal(rmig_policy_decide(&in, &d), -EINVAL);
	in.struct_size = sizeof(in);
	in.policy = 2;
	assert_int_equal(rmig_policy_decide(&in, &d), -EINVAL);
	in.policy = RMIG_POLICY_QEMU;
	in.reserved = 1;
	assert_int_equal(rmig_policy_decide(&in, &d), -EINVAL);
	in.reserved = 0;
	d.struct_size = offsetof(struct rmig_policy_decision, reason);
	assert_int_equal(rmig_policy_decide(&in, &d), -EINVAL);
	assert_int_equal(d.stop, 7); /* outputs untouched on failure */
}

/* A caller whose decision struct holds only stop and reason gets those, nothing past them. */
static void test_fills_only_what_the_decision_struct_holds(void **state)
{
	struct rmig_policy_input in = qemu_round(2, 4096, 1u << 20);
	struct rmig_policy_decision d;

	(void)state;
	memset(&d, 0xa5, sizeof(d));
	d.struct_size = offsetof(struct rmig_policy_decision, reserved);
	assert_int_equal(rmig_policy_decide(&in, &d), 0);
	assert_int_equal(d.stop, 1);
	assert_int_equal(d.reason, RMIG_STOP_DOWNTIME);
	assert_int_equal(d.reserved, 0xa5a5a5a5u);
	assert_int_equal(d.projected_downtime_ms, 0xa5a5a5a5a5a5a5a5ull);
	assert_int_equal(d.struct_size, offsetof(struct rmig_policy_decision, reserved));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_qemu_policy_stops_when_dirty_pages_fit_the_downtime_target),
		cmocka_unit_test(test_qemu_policy_goes_on_while_bandwidth_is_unknown),
		cmocka_unit_test(test_xen_policy_stops_on_its_classic_limits),
		cmocka_unit_test(test_answers_are_the_engine_policy_answers),
		cmocka_unit_test(test_refuses_bad_arguments),
		cmocka_unit_test(test_fills_only_what_the_decision_struct_holds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
