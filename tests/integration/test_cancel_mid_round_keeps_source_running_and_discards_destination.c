/* SPDX-License-Identifier: MIT */
/* Cancelling the source in the middle of a round: the VM is never paused there, the
 * destination is told, fails and never resumes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "integration/engine_harness.h"

static void cancel_in_round_one(struct harness *h, uint32_t event, const struct rmig_stats *st)
{
	if (event == RMIG_EVENT_PROGRESS && st->round == 1)
		rmig_session_cancel(h->src);
}

static void test_cancel_mid_round_keeps_source_running_and_discards_destination(void **state)
{
	struct rmig_stats src_st = {.struct_size = sizeof(src_st)};
	struct rmig_stats dst_st = {.struct_size = sizeof(dst_st)};
	struct harness h;

	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	harness_init(&h, harness_transport, 64u << 20, 0);
	/* Slow enough that round 1 is still running when the cancel lands. */
	h.params.field_mask = RMIG_PARAM_BANDWIDTH_LIMIT;
	h.params.bandwidth_limit = 32ull << 20;
	h.on_progress = cancel_in_round_one;
	harness_sessions(&h);
	harness_writer_start(&h);
	harness_run(&h);

	assert_int_equal(h.src_ret, -ECANCELED);
	assert_int_equal(rmig_session_stats(h.src, &src_st), 0);
	assert_int_equal(src_st.status, RMIG_STATUS_CANCELLED);
	assert_int_equal(src_st.round, 1);
	assert_true(src_st.pages_sent < harness_pages(&h));
	assert_false(atomic_load(&h.src_paused));
	assert_true(atomic_load(&h.writes) > 0);
	assert_non_null(strstr(rmig_last_error(h.src), "cancelled"));

	assert_int_equal(h.dst_ret, -ECONNABORTED);
	assert_false(atomic_load(&h.dst_resumed));
	assert_int_equal(rmig_session_stats(h.dst, &dst_st), 0);
	assert_int_equal(dst_st.status, RMIG_STATUS_FAILED);
	assert_non_null(strstr(rmig_last_error(h.dst), "aborted"));
	harness_fini(&h);
}

HARNESS_MAIN(cmocka_unit_test(test_cancel_mid_round_keeps_source_running_and_discards_destination))
