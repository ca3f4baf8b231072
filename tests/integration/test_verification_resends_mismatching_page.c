/* SPDX-License-Identifier: MIT */
/* The race content hashing cannot see: a page changes after the tracker hashed it, is sent with
 * the new bytes, then goes back to the hashed bytes, so the next sync calls it clean while the
 * destination holds the intermediate bytes. The switchover's hash comparison finds it, resends
 * it and counts it; the VM resumes on identical memory. Tracking is by content hash here (the
 * other trackers would see the writes). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "integration/engine_harness.h"

/* In the last batch of the bulk round (batches carry 16 MiB, the region is 32 MiB). */
#define RACED 8000u

struct race {
	unsigned char original[HARNESS_PAGE];
	int changed;
};

static void change_and_restore(struct harness *h, uint32_t event, const struct rmig_stats *st)
{
	struct race *race = h->user;
	unsigned char *page = h->src_ram + RACED * HARNESS_PAGE;

	if (st->round != 1)
		return;
	/* After the first batch went out and before the one holding the page is built. */
	if (event == RMIG_EVENT_PROGRESS && !race->changed) {
		memcpy(race->original, page, HARNESS_PAGE);
		harness_page_write(h, RACED, 0x7ace0ull);
		race->changed = 1;
	}
	/* Sent with the changed bytes; back to the hashed ones before the next sync. */
	if (event == RMIG_EVENT_ROUND_END && race->changed == 1) {
		memcpy(page, race->original, HARNESS_PAGE);
		race->changed = 2;
	}
}

static void test_verification_resends_mismatching_page(void **state)
{
	struct rmig_stats st = {.struct_size = sizeof(st)};
	struct rmig_stats dst_st = {.struct_size = sizeof(dst_st)};
	struct race race = {0};
	struct harness h;

	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	harness_dirty_source = RMIG_DIRTY_HASH;
	harness_init(&h, harness_transport, 32u << 20, 0);
	h.user = &race;
	h.on_progress = change_and_restore;
	harness_sessions(&h);
	harness_run(&h);

	assert_int_equal(race.changed, 2);
	assert_int_equal(h.src_ret, 0);
	assert_int_equal(h.dst_ret, 0);
	assert_int_equal(rmig_session_stats(h.src, &st), 0);
	assert_int_equal(st.dirty_source, RMIG_DIRTY_HASH);
	assert_int_equal(st.pages_verified, harness_pages(&h));
	assert_int_equal(st.pages_mismatched, 1);
	assert_int_equal(st.pages_sent_multiple, 1);
	assert_int_equal(rmig_session_stats(h.dst, &dst_st), 0);
	assert_int_equal(dst_st.pages_mismatched, 1);
	assert_memory_equal(h.src_ram, h.dst_ram, h.src_length);
	assert_true(atomic_load(&h.dst_resumed));
	harness_fini(&h);
}

HARNESS_MAIN(cmocka_unit_test(test_verification_resends_mismatching_page))
