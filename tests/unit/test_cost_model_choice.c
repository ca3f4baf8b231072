/* SPDX-License-Identifier: MIT */
/* The cost model's choice as auto uses it: restricted to what the destination can run, by
 * projected total time within the family auto prefers, and refusing an empty choice; and the
 * post-copy stall it weighs, from the fault latency and write runs auto measures. 1 GiB of
 * 4 KiB pages over 1 GiB/s, as in test_cost_model.c. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "engine/cost_model.h"

#define GIB 1073741824.0
#define ALL ((1u << COST_METHOD_COUNT) - 1)
#define PRECOPY_FAMILY                                                        \
	((1u << COST_METHOD_PRECOPY_QEMU) | (1u << COST_METHOD_PRECOPY_XEN) | \
	 (1u << COST_METHOD_PREDICT))

static struct cost_model_input gib_over_gibps(double dirty_pages_rate)
{
	return (struct cost_model_input){
		.ram_bytes = 1ull << 30,
		.page_size = 4096,
		.dirty_pages_rate = dirty_pages_rate,
		.bandwidth = GIB,
	};
}

static void test_choice_without_postcopy_stays_in_precopy_family(void **state)
{
	struct cost_model_input input = gib_over_gibps(300000.0);
	struct cost_projection all[COST_METHOD_COUNT], p;

	(void)state;
	/* Unrestricted, this guest goes to the post-copy family... */
	assert_int_equal(cost_model_choose_among(&input, ALL, all, &p), 0);
	assert_false(PRECOPY_FAMILY & (1u << p.method));
	/* ...a destination that cannot post-copy leaves the lowest downtime of the rest. */
	assert_int_equal(cost_model_choose_among(&input, PRECOPY_FAMILY, all, &p), 0);
	assert_true(PRECOPY_FAMILY & (1u << p.method));
	for (uint32_t m = 0; m < COST_METHOD_COUNT; m++)
		if (PRECOPY_FAMILY & (1u << m))
			assert_true(p.downtime_seconds <= all[m].downtime_seconds);
}

static void test_choice_fills_every_projection(void **state)
{
	struct cost_model_input input = gib_over_gibps(65536.0);
	struct cost_projection all[COST_METHOD_COUNT], p, one;

	(void)state;
	assert_int_equal(cost_model_choose_among(&input, ALL, all, &p), 0);
	for (uint32_t m = 0; m < COST_METHOD_COUNT; m++) {
		assert_int_equal(cost_model_project(&input, m, &one), 0);
		assert_int_equal(all[m].method, m);
		assert_true(all[m].total_seconds == one.total_seconds);
	}
}

/* Among the post-copy family the lowest total time plus stall wins, not the first listed. */
static void test_choice_takes_best_of_postcopy_family(void **state)
{
	struct cost_model_input input = gib_over_gibps(300000.0);
	struct cost_projection all[COST_METHOD_COUNT], p;
	uint32_t family[] = {COST_METHOD_TSMC, COST_METHOD_HYBRID, COST_METHOD_POSTCOPY};

	(void)state;
	assert_int_equal(cost_model_choose_among(&input, ALL, all, &p), 0);
	for (size_t i = 0; i < 3; i++)
		assert_true(p.total_seconds + p.stall_seconds <=
			    all[family[i]].total_seconds + all[family[i]].stall_seconds);
}

static void test_choice_refuses_empty_mask(void **state)
{
	struct cost_model_input input = gib_over_gibps(0.0);
	struct cost_projection all[COST_METHOD_COUNT], p;

	(void)state;
	assert_int_equal(cost_model_choose_among(&input, 0, all, &p), -EINVAL);
	assert_int_equal(cost_model_choose_among(&input, 1u << COST_METHOD_COUNT, all, &p),
			 -EINVAL);
}

/* However slow a fault, the guest cannot wait longer than the tail takes to bring every page:
 * post-copy's 1 GiB crosses in 1 s at 1 GiB/s. */
static void test_stall_never_exceeds_the_tail(void **state)
{
	struct cost_model_input input = gib_over_gibps(300000.0);
	struct cost_projection p;

	(void)state;
	input.fault_latency_us = 10000.0;
	assert_int_equal(cost_model_project(&input, COST_METHOD_POSTCOPY, &p), 0);
	assert_true(p.stall_seconds > 0.5);
	assert_true(p.stall_seconds < 1.0);
	for (uint32_t m = COST_METHOD_TSMC; m <= COST_METHOD_HYBRID; m++) {
		assert_int_equal(cost_model_project(&input, m, &p), 0);
		assert_true(p.stall_seconds <= p.total_seconds);
	}
}

/* A fault measured at 1 ms stalls the guest far longer than the 50 us assumed without a
 * measurement. */
static void test_stall_follows_measured_fault_latency(void **state)
{
	struct cost_model_input input = gib_over_gibps(2000.0);
	struct cost_projection assumed, measured;

	(void)state;
	assert_int_equal(cost_model_project(&input, COST_METHOD_POSTCOPY, &assumed), 0);
	input.fault_latency_us = 1000.0;
	assert_int_equal(cost_model_project(&input, COST_METHOD_POSTCOPY, &measured), 0);
	/* 2000 pages touched while 1 GiB is pushed, half of them still missing: 1000 faults */
	assert_true(measured.stall_seconds > 0.4 && measured.stall_seconds < 0.6);
	assert_true(measured.stall_seconds > 5.0 * assumed.stall_seconds);
}

/* A guest writing in runs of 256 pages faults once per run (the push then follows it): the
 * same pages touched cost a 256th of the faults of scattered writes. */
static void test_stall_counts_runs_of_writes(void **state)
{
	struct cost_model_input input = gib_over_gibps(200.0);
	struct cost_projection scattered, runs;

	(void)state;
	input.fault_latency_us = 1000.0;
	assert_int_equal(cost_model_project(&input, COST_METHOD_POSTCOPY, &scattered), 0);
	input.access_run_pages = 256.0;
	assert_int_equal(cost_model_project(&input, COST_METHOD_POSTCOPY, &runs), 0);
	assert_true(runs.stall_seconds > 0.0);
	assert_true(runs.stall_seconds * 200.0 < scattered.stall_seconds);
	input.access_run_pages = -1.0;
	assert_int_equal(cost_model_project(&input, COST_METHOD_POSTCOPY, &runs), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_choice_without_postcopy_stays_in_precopy_family),
		cmocka_unit_test(test_choice_fills_every_projection),
		cmocka_unit_test(test_choice_takes_best_of_postcopy_family),
		cmocka_unit_test(test_choice_refuses_empty_mask),
		cmocka_unit_test(test_stall_never_exceeds_the_tail),
		cmocka_unit_test(test_stall_follows_measured_fault_latency),
		cmocka_unit_test(test_stall_counts_runs_of_writes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
