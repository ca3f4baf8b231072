/* SPDX-License-Identifier: MIT */
/* A guest that dirties more each round than the downtime target allows never converges: the
 * QEMU policy pauses it after max_rounds, and so does the Xen policy (which also has its own
 * "few dirty pages" exit, checked here too). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "integration/engine_harness.h"

/* every round 4 MiB, far over a 1 ms target even at the 400 MiB/s cap (10 ms); the guest is
 * 16 MiB so the five runs stay cheap over rxe under TCG on a loaded host */
#define DIRTIED 1000u

static void dirty_every_round(struct harness *h, uint32_t event, const struct rmig_stats *st)
{
	(void)st;
	if (event == RMIG_EVENT_ROUND_END) {
		for (size_t p = 0; p < DIRTIED; p++)
			harness_page_write(h, p, 0x77ull + st->round);
	}
}

static void dirty_a_few_pages(struct harness *h, uint32_t event, const struct rmig_stats *st)
{
	(void)st;
	if (event == RMIG_EVENT_ROUND_END) {
		for (size_t p = 0; p < 10; p++)
			harness_page_write(h, p * 7, 0x99ull + st->round);
	}
}

static void run_policy(uint32_t policy, uint32_t max_rounds, harness_progress_fn dirty,
		       struct rmig_stats *st)
{
	struct rmig_round_stats r = {.struct_size = sizeof(r)};
	struct harness h;

	harness_init(&h, harness_transport, 16u << 20, 0);
	h.params.field_mask = RMIG_PARAM_POLICY | RMIG_PARAM_DOWNTIME_MS |
			      RMIG_PARAM_BANDWIDTH_LIMIT | RMIG_PARAM_MAX_ROUNDS;
	h.params.policy = policy;
	h.params.downtime_ms = 1;
	h.params.bandwidth_limit = 400ull << 20;
	h.params.max_rounds = max_rounds;
	h.on_progress = dirty;
	harness_sessions(&h);
	harness_run(&h);
	assert_int_equal(h.src_ret, 0);
	assert_int_equal(h.dst_ret, 0);
	st->struct_size = sizeof(*st);
	assert_int_equal(rmig_session_stats(h.src, st), 0);
	/* The round after the last live one ran with the VM paused. */
	assert_int_equal(rmig_session_round_stats(h.src, st->rounds + 1, &r), 0);
	assert_int_equal(r.paused, 1);
	assert_memory_equal(h.src_ram, h.dst_ram, h.src_length);
	harness_fini(&h);
}

static void test_stop_respects_round_limit_when_not_converging(void **state)
{
	struct rmig_stats st;

	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	run_policy(RMIG_POLICY_QEMU, 4, dirty_every_round, &st);
	assert_int_equal(st.rounds, 4);
	assert_int_equal(st.stop_reason, RMIG_STOP_MAX_ROUNDS);
	assert_true(st.projected_downtime_ms > 1);
}

static void test_stop_xen_policy_round_limit_and_few_dirty_pages(void **state)
{
	struct rmig_stats st;

	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	run_policy(RMIG_POLICY_XEN, 3, dirty_every_round, &st);
	assert_int_equal(st.rounds, 3);
	assert_int_equal(st.stop_reason, RMIG_STOP_MAX_ROUNDS);

	run_policy(RMIG_POLICY_XEN, 30, dirty_a_few_pages, &st);
	assert_int_equal(st.rounds, 1);
	assert_int_equal(st.stop_reason, RMIG_STOP_FEW_DIRTY);
}

HARNESS_MAIN(cmocka_unit_test(test_stop_respects_round_limit_when_not_converging),
	     cmocka_unit_test(test_stop_xen_policy_round_limit_and_few_dirty_pages))
