/* SPDX-License-Identifier: MIT */
/* bindings/xen/xen_policy.c: rmig's stop rule over libxc's pre-copy calls, as rmig-xen-save's
 * precopy_policy applies it. The calls come in libxc's order (xg_sr_save.c, send_memory_live):
 * before each iteration with the dirty count, after it with -1. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bindings/xen/xen_policy.h"

#define MIB (1ull << 20)
#define PAGES_OF(bytes) ((bytes) / XEN_POLICY_PAGE)

static struct xen_policy rule(uint32_t policy, uint32_t max_rounds)
{
	struct xen_policy p = {
		.policy = policy,
		.downtime_ms = 300,
		.max_rounds = max_rounds,
		.ram_bytes = 128 * MIB,
	};

	xen_policy_start(&p, 0, 0);
	return p;
}

static int step(struct xen_policy *p, uint32_t iteration, uint64_t written, int64_t dirty,
		uint64_t now_us, uint64_t carried, struct rmig_policy_decision *d)
{
	d->struct_size = sizeof(*d);
	return xen_policy_step(p, iteration, written, dirty, now_us, carried, d);
}

/* The first call (all of the physmap dirty, nothing measured) goes on; the first iteration's
 * bytes over its duration become the bandwidth. */
static void test_first_iteration_measures_the_stream(void **state)
{
	struct xen_policy p = rule(RMIG_POLICY_QEMU, 30);
	struct rmig_policy_decision d;

	(void)state;
	assert_int_equal(step(&p, 0, 0, 1044480, 1000000, 0, &d), 0);
	assert_int_equal(d.projected_downtime_ms, UINT64_MAX);
	/* 128 MiB crossed in 16 s: 8 MiB/s */
	assert_int_equal(step(&p, 1, 32768, -1, 17000000, 128 * MIB, &d), 0);
	assert_int_equal(p.bandwidth, 8 * MIB);
}

/* Before iteration 3, 400 dirty pages (1.6 MiB) cross in 195 ms at 8 MiB/s: stop. 2000 pages
 * (977 ms) do not. */
static void test_stops_when_the_dirty_count_fits_the_target(void **state)
{
	struct xen_policy p = rule(RMIG_POLICY_QEMU, 30);
	struct rmig_policy_decision d;

	(void)state;
	assert_int_equal(step(&p, 0, 0, 32768, 0, 0, &d), 0);
	assert_int_equal(step(&p, 1, 32768, -1, 16000000, 128 * MIB, &d), 0);
	assert_int_equal(step(&p, 1, 32768, 2000, 16100000, 128 * MIB, &d), 0);
	assert_int_equal(d.projected_downtime_ms, 977);
	assert_int_equal(step(&p, 2, 34768, -1, 17100000, 128 * MIB + 8 * MIB, &d), 0);
	assert_int_equal(step(&p, 2, 34768, 400, 17200000, 136 * MIB, &d), 1);
	assert_int_equal(d.reason, RMIG_STOP_DOWNTIME);
	assert_int_equal(d.projected_downtime_ms, 195);
}

/* A domU that dirties what the link carries: the round limit stops the loop after the
 * iteration that reaches it, where libxc's own rule (5 iterations) stops, without a log-dirty
 * harvest and one more live iteration. */
static void test_round_limit_stops_after_the_iteration_like_libxc(void **state)
{
	struct xen_policy p = rule(RMIG_POLICY_QEMU, 5);
	struct rmig_policy_decision d;
	uint64_t now = 0, carried = 0, written = 0;

	(void)state;
	assert_int_equal(step(&p, 0, 0, 32768, now, carried, &d), 0);
	for (uint32_t iteration = 1; iteration <= 5; iteration++) {
		uint64_t sent = iteration == 1 ? 32768 : 12000;

		now += 1000000 * sent / 2048; /* 8 MiB/s */
		carried += sent * XEN_POLICY_PAGE;
		written += sent;
		if (iteration < 5) {
			assert_int_equal(step(&p, iteration, written, -1, now, carried, &d), 0);
			assert_int_equal(step(&p, iteration, written, 12000, now, carried, &d), 0);
		} else {
			assert_int_equal(step(&p, iteration, written, -1, now, carried, &d), 1);
			assert_int_equal(d.reason, RMIG_STOP_MAX_ROUNDS);
		}
	}
}

/* After an iteration the dirty set is unknown; all of RAM bounds it: on a link that moves all
 * of RAM within the target, stop without another harvest. */
static void test_after_an_iteration_all_ram_bounds_the_dirty_set(void **state)
{
	struct xen_policy p = rule(RMIG_POLICY_QEMU, 30);
	struct rmig_policy_decision d;

	(void)state;
	p.ram_bytes = 64 * MIB;
	assert_int_equal(step(&p, 0, 0, PAGES_OF(64 * MIB), 0, 0, &d), 0);
	/* 64 MiB in 100 ms: 640 MiB/s, all RAM again would take 100 ms */
	assert_int_equal(step(&p, 1, PAGES_OF(64 * MIB), -1, 100000, 64 * MIB, &d), 1);
	assert_int_equal(d.reason, RMIG_STOP_DOWNTIME);
	assert_int_equal(d.projected_downtime_ms, 100);
}

/* The XEN policy: fewer than 50 dirty pages stops; the -1 call never counts as "few". */
static void test_xen_policy_stops_on_few_dirty_pages(void **state)
{
	struct xen_policy p = rule(RMIG_POLICY_XEN, 0);
	struct rmig_policy_decision d;

	(void)state;
	assert_int_equal(step(&p, 0, 0, 32768, 0, 0, &d), 0);
	assert_int_equal(step(&p, 1, 32768, -1, 16000000, 128 * MIB, &d), 0);
	assert_int_equal(step(&p, 1, 32768, 49, 16100000, 128 * MIB, &d), 1);
	assert_int_equal(d.reason, RMIG_STOP_FEW_DIRTY);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_first_iteration_measures_the_stream),
		cmocka_unit_test(test_stops_when_the_dirty_count_fits_the_target),
		cmocka_unit_test(test_round_limit_stops_after_the_iteration_like_libxc),
		cmocka_unit_test(test_after_an_iteration_all_ram_bounds_the_dirty_set),
		cmocka_unit_test(test_xen_policy_stops_on_few_dirty_pages),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
