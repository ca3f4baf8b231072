/* SPDX-License-Identifier: MIT */
/* auto on a guest that writes nothing: pre-copy converges after the bulk round with nothing
 * left, so auto picks pre-copy (the source keeps a whole copy until the switchover, so a
 * failure costs nothing) and one live round suffices. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "integration/engine_harness.h"

static void test_auto_picks_precopy_for_idle_guest(void **state)
{
	struct rmig_stats st = {.struct_size = sizeof(st)};
	struct harness h;

	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	harness_init(&h, harness_transport, 64u << 20, 7);
	h.params.field_mask = RMIG_PARAM_METHOD;
	h.params.method = RMIG_METHOD_AUTO;
	harness_sessions(&h);
	harness_run(&h);

	assert_int_equal(h.src_ret, 0);
	assert_int_equal(h.dst_ret, 0);
	assert_int_equal(rmig_session_stats(h.src, &st), 0);
	print_message("%s\n", rmig_session_method_reason(h.src));
	assert_int_equal(st.method, RMIG_METHOD_AUTO);
	assert_int_equal(st.method_used, RMIG_METHOD_PRECOPY);
	assert_int_equal(st.auto_dirty_pages_rate, 0);
	assert_non_null(strstr(rmig_session_method_reason(h.src), "auto chose precopy"));
	assert_int_equal(st.rounds, 1);
	assert_int_equal(st.postcopy_pages, 0);
	assert_int_equal(st.pages_sent_max, 1);
	assert_memory_equal(h.src_ram, h.dst_ram, h.src_length);
	harness_fini(&h);
}

HARNESS_MAIN(cmocka_unit_test(test_auto_picks_precopy_for_idle_guest))
