/* The cost model's choice as auto uses it: restricted to what the destination can run, by
 * projected total time within the family auto prefers, and refusing an empty choice. 1 GiB of
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_choice_without_postcopy_stays_in_precopy_family),
		cmocka_unit_test(test_choice_fills_every_projection),
		cmocka_unit_test(test_choice_takes_best_of_postcopy_family),
		cmocka_unit_test(test_choice_refuses_empty_mask),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
