/* SPDX-License-Identifier: MIT */
/* Post-copy's faults read the source's RAM by RDMA READ, which needs a memory registration; a
 * source whose regions are carried staged (rdma ?reg=copy here, as for memory the kernel will
 * not pin) has none. So auto, towards a destination that can post-copy, must leave the post-copy
 * family out and say why, where it would otherwise choose it (a guest dirtying twice what the
 * link carries), and still end byte-identical; and asking for post-copy outright must fail at
 * the start, naming the staged region, before the VM is paused. Over rdma with ?reg=copy at
 * both ends only (the testbed; label verbs): over loop, tcp and registered rdma the source's
 * RAM is readable. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdatomic.h>
#include <string.h>

#include "integration/engine_harness.h"

#define RAM (16u << 20)
#define DIRTY_PER_PAGE_SENT 2u

static void test_auto_leaves_postcopy_out_for_staged_source(void **state)
{
	struct harness_dirty_log log;
	struct rmig_stats st = {.struct_size = sizeof(st)};
	struct harness h;
	const char *reason;

	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	harness_init(&h, harness_transport, RAM, 0);
	harness_dirty_log_outpace(&h, &log, DIRTY_PER_PAGE_SENT);
	h.params.field_mask =
		RMIG_PARAM_METHOD | RMIG_PARAM_BANDWIDTH_LIMIT | RMIG_PARAM_MAX_ROUNDS;
	h.params.method = RMIG_METHOD_AUTO;
	/* as in test_auto_picks_postcopy_family_...: the bulk round still runs when auto has its
	 * samples; pre-copy cannot converge, so a few rounds bound it */
	h.params.bandwidth_limit = 8u << 20;
	h.params.max_rounds = 3;
	harness_sessions(&h);
	harness_run(&h);

	assert_int_equal(h.src_ret, 0);
	assert_int_equal(h.dst_ret, 0);
	assert_int_equal(rmig_session_stats(h.src, &st), 0);
	reason = rmig_session_method_reason(h.src);
	print_message("%s\n", reason);
	assert_int_equal(st.method, RMIG_METHOD_AUTO);
	/* the guest outruns the link: only post-copy's absence keeps auto on pre-copy */
	assert_true(st.auto_dirty_pages_rate * HARNESS_PAGE > st.auto_bandwidth);
	assert_true(st.method_used != RMIG_METHOD_POSTCOPY && st.method_used != RMIG_METHOD_TSMC &&
		    st.method_used != RMIG_METHOD_HYBRID);
	assert_int_equal(st.postcopy_pages, 0);
	assert_non_null(strstr(reason, "auto chose"));
	assert_non_null(strstr(reason, "(source memory staged)"));
	assert_memory_equal(h.src_ram, h.dst_ram, h.src_length);
	harness_fini(&h);
	harness_dirty_log_free(&log);
}

static void test_postcopy_asked_for_staged_source_fails_before_pausing(void **state)
{
	struct harness h;

	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	harness_init(&h, harness_transport, RAM, 0);
	h.params.field_mask = RMIG_PARAM_METHOD;
	h.params.method = RMIG_METHOD_POSTCOPY;
	harness_sessions(&h);
	harness_run(&h);

	print_message("source: %s\n", rmig_last_error(h.src));
	assert_int_equal(h.src_ret, -EOPNOTSUPP);
	assert_true(h.dst_ret < 0);
	assert_non_null(strstr(rmig_last_error(h.src), "region 1 is carried staged"));
	assert_false(atomic_load(&h.src_paused));
	assert_false(atomic_load(&h.dst_resumed));
	harness_fini(&h);
}

HARNESS_MAIN(cmocka_unit_test(test_auto_leaves_postcopy_out_for_staged_source),
	     cmocka_unit_test(test_postcopy_asked_for_staged_source_fails_before_pausing))
