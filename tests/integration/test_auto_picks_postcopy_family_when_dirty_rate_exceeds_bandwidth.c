/* SPDX-License-Identifier: MIT */
/* auto measures the guest while the bulk round starts: a guest dirtying pages faster than the
 * link carries them cannot converge by pre-copy, so auto picks a method of the post-copy family,
 * says why, and the migration still ends byte-identical. The guest here, seen through the
 * hypervisor's dirty log, writes before every sync of the log twice as many pages (scattered
 * over its RAM) as the transport carried since the previous sync: its dirty rate is twice the
 * bandwidth by construction, on a fast host as under emulation, where a writer thread's rate
 * against a fixed link speed would depend on how fast the host runs it. The post-copy faults
 * are weighed by test pulls the destination timed on this connection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "integration/engine_harness.h"

#define RAM (16u << 20)
#define DIRTY_PER_PAGE_SENT 2u

static void test_auto_picks_postcopy_family_when_dirty_rate_exceeds_bandwidth(void **state)
{
	struct harness_dirty_log log;
	struct rmig_stats st = {.struct_size = sizeof(st)};
	struct harness h;
	const char *reason;

	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	harness_init(&h, harness_transport, RAM, 0);
	harness_dirty_log_outpace(&h, &log, DIRTY_PER_PAGE_SENT);
	h.params.field_mask = RMIG_PARAM_METHOD | RMIG_PARAM_BANDWIDTH_LIMIT;
	h.params.method = RMIG_METHOD_AUTO;
	/* slow enough that the bulk round is still running when auto has its samples */
	h.params.bandwidth_limit = 8u << 20;
	harness_sessions(&h);
	harness_run(&h);

	assert_int_equal(h.src_ret, 0);
	assert_int_equal(h.dst_ret, 0);
	assert_true(log.written > 0);
	assert_int_equal(rmig_session_stats(h.src, &st), 0);
	print_message("%s\n", rmig_session_method_reason(h.src));
	assert_int_equal(st.method, RMIG_METHOD_AUTO);
	assert_true(st.method_used == RMIG_METHOD_POSTCOPY || st.method_used == RMIG_METHOD_TSMC ||
		    st.method_used == RMIG_METHOD_HYBRID);
	assert_true(st.auto_dirty_pages_rate * HARNESS_PAGE > st.auto_bandwidth);
	/* faults weighed by pulls the destination timed on this connection */
	assert_true(st.auto_fault_latency_us > 0);
	assert_true(st.auto_projected_stall_ms > 0);
	reason = rmig_session_method_reason(h.src);
	assert_non_null(strstr(reason, "auto chose"));
	assert_non_null(strstr(reason, rmig_method_name(st.method_used)));
	assert_non_null(strstr(reason, "pulls timed at"));
	assert_memory_equal(h.src_ram, h.dst_ram, h.src_length);
	harness_fini(&h);
	harness_dirty_log_free(&log);
}

HARNESS_MAIN(cmocka_unit_test(test_auto_picks_postcopy_family_when_dirty_rate_exceeds_bandwidth))
