/* SPDX-License-Identifier: MIT */
/* A page written after the bulk round sent it is found dirty by the next sync and sent again,
 * and the destination ends with its new content. Nothing else writes, so exactly the pages the
 * test dirtied are sent twice. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "integration/engine_harness.h"

#define DIRTIED_EARLY 0u   /* in the first batch, written while round 1 is still running */
#define DIRTIED_LATE 1000u /* written at the end of round 1 */

static void dirty_during_round(struct harness *h, uint32_t event, const struct rmig_stats *st)
{
	if (st->round != 1)
		return;
	if (event == RMIG_EVENT_PROGRESS && st->pages_sent > DIRTIED_EARLY)
		harness_page_write(h, DIRTIED_EARLY, 0xfeedull);
	if (event == RMIG_EVENT_ROUND_END)
		harness_page_write(h, DIRTIED_LATE, 0xbeefull);
}

static void test_precopy_resends_page_dirtied_during_round(void **state)
{
	struct rmig_stats st = {.struct_size = sizeof(st)};
	const uint8_t *sends;
	struct harness h;

	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	harness_init(&h, harness_transport, 64u << 20, 0);
	h.on_progress = dirty_during_round;
	harness_sessions(&h);
	harness_run(&h);

	assert_int_equal(h.src_ret, 0);
	assert_int_equal(h.dst_ret, 0);
	sends = harness_send_counts(&h);
	assert_int_equal(sends[DIRTIED_EARLY], 2);
	assert_int_equal(sends[DIRTIED_LATE], 2);
	assert_int_equal(sends[DIRTIED_LATE + 1], 1);
	assert_int_equal(rmig_session_stats(h.src, &st), 0);
	assert_int_equal(st.pages_sent_multiple, 2);
	/* The dirty log, not the verification safety net, carried the changes. */
	assert_int_equal(st.pages_mismatched, 0);
	assert_int_equal(st.pages_sent_histogram[1], 2);
	assert_int_equal(st.pages_sent_histogram[0], harness_pages(&h) - 2);
	assert_memory_equal(h.src_ram + DIRTIED_EARLY * HARNESS_PAGE,
			    h.dst_ram + DIRTIED_EARLY * HARNESS_PAGE, HARNESS_PAGE);
	assert_memory_equal(h.src_ram + DIRTIED_LATE * HARNESS_PAGE,
			    h.dst_ram + DIRTIED_LATE * HARNESS_PAGE, HARNESS_PAGE);
	assert_memory_equal(h.src_ram, h.dst_ram, h.src_length);
	harness_fini(&h);
}

HARNESS_MAIN(cmocka_unit_test(test_precopy_resends_page_dirtied_during_round))
