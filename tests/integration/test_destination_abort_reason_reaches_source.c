/* SPDX-License-Identifier: MIT */
/* A destination that gives up mid-round (here: cancelled, as a hypervisor does when its own VM
 * goes away) sends its reason in an ABORT and closes. The source, busy sending pages, may see
 * its sends fail on the closed connection before it reads anything: it must still report the
 * destination's reason, which arrived before the close, and not just "the peer closed the
 * connection". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "integration/engine_harness.h"

static void cancel_destination_in_round_one(struct harness *h, uint32_t event,
					    const struct rmig_stats *st)
{
	if (event == RMIG_EVENT_PROGRESS && st->round == 1 && st->pages_sent > 0)
		rmig_session_cancel(h->dst);
}

static void test_destination_abort_reason_reaches_source(void **state)
{
	struct rmig_stats st = {.struct_size = sizeof(st)};
	struct harness h;

	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	harness_init(&h, harness_transport, 64u << 20, 0);
	h.on_progress = cancel_destination_in_round_one;
	harness_sessions(&h);
	harness_writer_start(&h);
	harness_run(&h);

	assert_int_equal(h.dst_ret, -ECANCELED);
	assert_int_equal(h.src_ret, -ECONNABORTED);
	assert_non_null(strstr(rmig_last_error(h.src), "the destination"));
	assert_non_null(strstr(rmig_last_error(h.src), "aborted: the destination was cancelled"));
	assert_int_equal(rmig_session_stats(h.src, &st), 0);
	assert_int_equal(st.status, RMIG_STATUS_FAILED);
	assert_false(atomic_load(&h.dst_resumed));
	harness_fini(&h);
}

HARNESS_MAIN(cmocka_unit_test(test_destination_abort_reason_reaches_source))
