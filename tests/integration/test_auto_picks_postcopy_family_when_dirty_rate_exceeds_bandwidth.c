/* auto measures the guest while the bulk round starts: a guest dirtying pages much faster than
 * the link carries them (bandwidth capped at 8 MiB/s, a writer dirtying thousands of pages per
 * second) cannot converge by pre-copy, so auto picks a method of the post-copy family, says why,
 * and the migration still ends byte-identical. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "integration/engine_harness.h"

static void test_auto_picks_postcopy_family_when_dirty_rate_exceeds_bandwidth(void **state)
{
	struct rmig_stats st = {.struct_size = sizeof(st)};
	struct harness h;
	const char *reason;

	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	harness_init(&h, harness_transport, 32u << 20, 0);
	h.params.field_mask = RMIG_PARAM_METHOD | RMIG_PARAM_BANDWIDTH_LIMIT;
	h.params.method = RMIG_METHOD_AUTO;
	h.params.bandwidth_limit = 8u << 20;
	harness_sessions(&h);
	harness_writer_start(&h);
	harness_run(&h);

	assert_int_equal(h.src_ret, 0);
	assert_int_equal(h.dst_ret, 0);
	assert_int_equal(rmig_session_stats(h.src, &st), 0);
	print_message("%s\n", rmig_session_method_reason(h.src));
	assert_int_equal(st.method, RMIG_METHOD_AUTO);
	assert_true(st.method_used == RMIG_METHOD_POSTCOPY || st.method_used == RMIG_METHOD_TSMC ||
		    st.method_used == RMIG_METHOD_HYBRID);
	assert_true(st.auto_dirty_pages_rate * HARNESS_PAGE > st.auto_bandwidth);
	reason = rmig_session_method_reason(h.src);
	assert_non_null(strstr(reason, "auto chose"));
	assert_non_null(strstr(reason, rmig_method_name(st.method_used)));
	assert_memory_equal(h.src_ram, h.dst_ram, h.src_length);
	harness_fini(&h);
}

HARNESS_MAIN(cmocka_unit_test(test_auto_picks_postcopy_family_when_dirty_rate_exceeds_bandwidth))
