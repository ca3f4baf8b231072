/* SPDX-License-Identifier: MIT */
/* TSMC crosses every page at most twice: stage 1 sends all RAM, stage 2 the pages stage 1 left
 * dirty, stage 3 (after the destination resumed) the pages written since. The guest here, seen
 * through the hypervisor's dirty log, rewrites a hot page before every sync of the log (so it
 * is dirty in both stages), writes a page once at the end of stage 1 and one page during stage
 * 2; a pre-copy would send the hot page in every round. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "integration/engine_harness.h"

#define RAM (64u << 20)
#define HOT_PAGE 5u
#define STAGE1_PAGE 3000u /* written once, after stage 1 sent it */
#define STAGE2_PAGE 9000u /* written once, during stage 2 */

struct dirty_log {
	uint64_t bits[RAM / HARNESS_PAGE / 64];
	unsigned syncs;
	int stage2_written;
};

static void mark(struct harness *h, struct dirty_log *log, size_t page, uint64_t tag)
{
	harness_page_write(h, page, tag);
	log->bits[page / 64] |= 1ull << (page % 64);
}

static void write_during_stages(struct harness *h, uint32_t event, const struct rmig_stats *st)
{
	struct dirty_log *log = h->user;

	if (event == RMIG_EVENT_ROUND_END && st->round == 1)
		mark(h, log, STAGE1_PAGE, 0x5151ull);
	if (event == RMIG_EVENT_PROGRESS && st->round == 2 && !log->stage2_written) {
		mark(h, log, STAGE2_PAGE, 0x5252ull);
		log->stage2_written = 1;
	}
}

static int report_dirty_log(struct harness *h, uint32_t region_id, uint64_t *bitmap, size_t npages)
{
	struct dirty_log *log = h->user;

	(void)region_id;
	/* The guest keeps rewriting its hot page until it is paused. */
	if (!atomic_load(&h->src_paused))
		mark(h, log, HOT_PAGE, 0x4040ull + log->syncs);
	log->syncs++;
	for (size_t w = 0; w < (npages + 63) / 64; w++) {
		bitmap[w] = log->bits[w];
		log->bits[w] = 0;
	}
	return 0;
}

static void test_tsmc_sends_no_page_more_than_twice(void **state)
{
	static struct dirty_log log;
	struct rmig_stats st = {.struct_size = sizeof(st)};
	const uint8_t *sends;
	struct harness h;

	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	memset(&log, 0, sizeof(log));
	harness_init(&h, harness_transport, RAM, 0);
	h.user = &log;
	h.on_progress = write_during_stages;
	h.on_dirty_sync = report_dirty_log;
	h.params.field_mask = RMIG_PARAM_METHOD;
	h.params.method = RMIG_METHOD_TSMC;
	harness_sessions(&h);
	harness_run(&h);

	assert_int_equal(h.src_ret, 0);
	assert_int_equal(h.dst_ret, 0);
	assert_true(log.stage2_written);
	assert_int_equal(rmig_session_stats(h.src, &st), 0);
	assert_int_equal(st.method_used, RMIG_METHOD_TSMC);
	assert_int_equal(st.rounds, 2);
	assert_true(st.pages_sent_max <= 2);
	assert_int_equal(st.pages_sent_histogram[2], 0);
	assert_int_equal(st.pages_sent_histogram[3], 0);
	sends = harness_send_counts(&h);
	for (size_t p = 0; p < harness_pages(&h); p++)
		assert_true(sends[p] <= 2);
	/* Each written page crossed exactly twice; the hot one second after resume. */
	assert_int_equal(sends[HOT_PAGE], 2);
	assert_int_equal(sends[STAGE1_PAGE], 2);
	assert_int_equal(sends[STAGE2_PAGE], 2);
	assert_int_equal(sends[STAGE2_PAGE + 1], 1);
	assert_true(st.postcopy_pages >= 2);
	assert_memory_equal(h.src_ram, h.dst_ram, h.src_length);
	harness_fini(&h);
}

HARNESS_MAIN(cmocka_unit_test(test_tsmc_sends_no_page_more_than_twice))
