/* SPDX-License-Identifier: MIT */
/* QEMU policy: a met downtime target still takes one more round when that round would halve
 * the pause. The guest dirties 2000 pages over a long bulk round (64 MiB at 100 MiB/s, about
 * 640 ms): they would fit the 300 ms target, but a round of about 80 ms sends them and leaves
 * what the guest writes in that round, so the session goes on; that round leaves nothing, and
 * it stops. Before this rule the session stopped after the bulk round and paused for all 2000. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "integration/engine_harness.h"

#define BANDWIDTH (100ull << 20) /* bytes per second */
#define DIRTIED 2000u		 /* 7.8 MiB: about 80 ms at BANDWIDTH, under the 300 ms target */

static void dirty_after_round_one(struct harness *h, uint32_t event, const struct rmig_stats *st)
{
	if (event == RMIG_EVENT_ROUND_END && st->round == 1) {
		for (size_t p = 0; p < DIRTIED; p++)
			harness_page_write(h, p * 7, 0x4a1full);
	}
}

static void test_stop_takes_a_round_that_halves_the_pause(void **state)
{
	struct rmig_stats st = {.struct_size = sizeof(st)};
	struct rmig_round_stats r = {.struct_size = sizeof(r)};
	struct harness h;

	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	harness_init(&h, harness_transport, 64u << 20, 0);
	h.params.field_mask = RMIG_PARAM_POLICY | RMIG_PARAM_DOWNTIME_MS |
			      RMIG_PARAM_BANDWIDTH_LIMIT | RMIG_PARAM_MAX_ROUNDS;
	h.params.policy = RMIG_POLICY_QEMU;
	h.params.downtime_ms = 300;
	h.params.bandwidth_limit = BANDWIDTH;
	h.params.max_rounds = 10;
	h.on_progress = dirty_after_round_one;
	harness_sessions(&h);
	harness_run(&h);

	assert_int_equal(h.src_ret, 0);
	assert_int_equal(h.dst_ret, 0);
	assert_int_equal(rmig_session_stats(h.src, &st), 0);
	/* Round 2 carried the bulk round's leftovers although they fitted the target; the pause
	 * then had nothing to send. */
	assert_int_equal(st.rounds, 2);
	assert_int_equal(rmig_session_round_stats(h.src, 2, &r), 0);
	assert_int_equal(r.dirty_pages, DIRTIED);
	assert_int_equal(r.pages, DIRTIED);
	assert_int_equal(st.stop_reason, RMIG_STOP_DOWNTIME);
	assert_int_equal(rmig_session_round_stats(h.src, 3, &r), 0); /* the final round */
	assert_int_equal(r.pages, 0);
	assert_memory_equal(h.src_ram, h.dst_ram, h.src_length);
	harness_fini(&h);
}

HARNESS_MAIN(cmocka_unit_test(test_stop_takes_a_round_that_halves_the_pause))
