/* SPDX-License-Identifier: MIT */
/* Prediction pre-copy, seen through the hypervisor's dirty log: a page the guest rewrites before
 * every sync of the log is held back from its first plan on and crosses only twice (bulk round
 * and final round), where a pre-copy would send it in every round; a page written once after
 * the bulk round is sent in the next live round, not held. What keeps the live rounds going is
 * a shrinking stream of pages written once each at the end of rounds 1 to 3 (400, 200, 100:
 * each round sends less than four fifths of the one before, and at least Xen's 50 pages), so the
 * number of rounds follows from the rounds the guest sees end, not from how many syncs a round
 * of a given length holds: the test means the same on a fast host and under emulation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "integration/engine_harness.h"

#define RAM (64u << 20)
#define HOT_PAGE 5u
#define ONCE_PAGE 3000u
#define STREAM_FIRST 10000u
#define STREAM_ROUNDS 3u
/* Pages written once at the end of round r (1-based): STREAM_PAGES >> (r - 1). */
#define STREAM_PAGES 400u

struct dirty_log {
	uint64_t bits[RAM / HARNESS_PAGE / 64];
	unsigned syncs;
	size_t stream_next; /* the next stream page to write */
	size_t stream_last; /* the last one written */
};

static void mark(struct harness *h, struct dirty_log *log, size_t page, uint64_t tag)
{
	harness_page_write(h, page, tag);
	log->bits[page / 64] |= 1ull << (page % 64);
}

/* The guest, as the rounds end: the page written once after the bulk round, and each time a
 * fresh share of the stream, every page of it written once. */
static void write_at_round_end(struct harness *h, uint32_t event, const struct rmig_stats *st)
{
	struct dirty_log *log = h->user;

	if (event != RMIG_EVENT_ROUND_END || st->round < 1 || st->round > STREAM_ROUNDS)
		return;
	if (st->round == 1)
		mark(h, log, ONCE_PAGE, 0x0ce0ull);
	for (size_t i = 0; i < (STREAM_PAGES >> (st->round - 1)); i++) {
		log->stream_last = log->stream_next++;
		mark(h, log, log->stream_last, 0x5eedull + st->round);
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

static void test_predict_holds_rewritten_page_and_sends_page_written_once(void **state)
{
	static struct dirty_log log;
	struct rmig_stats st = {.struct_size = sizeof(st)};
	const uint8_t *sends;
	struct harness h;

	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	memset(&log, 0, sizeof(log));
	log.stream_next = STREAM_FIRST;
	harness_init(&h, harness_transport, RAM, 0);
	h.user = &log;
	h.on_progress = write_at_round_end;
	h.on_dirty_sync = report_dirty_log;
	h.params.field_mask = RMIG_PARAM_METHOD | RMIG_PARAM_POLICY | RMIG_PARAM_BANDWIDTH_LIMIT;
	h.params.method = RMIG_METHOD_PREDICT;
	h.params.policy = RMIG_POLICY_XEN;
	/* The bulk round lasts at least a quarter second, however fast the host: the hot page is
	 * seen written in at least one sample within it and in the one after it, so it has the
	 * two writes a hold needs by the first plan. A slower host only adds samples. */
	h.params.bandwidth_limit = 256u << 20;
	harness_sessions(&h);
	harness_run(&h);

	assert_int_equal(h.src_ret, 0);
	assert_int_equal(h.dst_ret, 0);
	assert_int_equal(rmig_session_stats(h.src, &st), 0);
	assert_int_equal(st.method_used, RMIG_METHOD_PREDICT);
	/* the bulk round, one round per share of the stream, then nothing left: Xen's few-dirty
	 * stop */
	assert_int_equal(st.rounds, STREAM_ROUNDS + 1);
	assert_int_equal(st.stop_reason, RMIG_STOP_FEW_DIRTY);
	sends = harness_send_counts(&h);
	/* bulk round, then held back to the final round through every live round */
	assert_int_equal(sends[HOT_PAGE], 2);
	/* bulk round, then the next live round: never held */
	assert_int_equal(sends[ONCE_PAGE], 2);
	assert_int_equal(sends[STREAM_FIRST], 2);
	assert_int_equal(sends[log.stream_last], 2);
	assert_int_equal(sends[log.stream_last + 1], 1);
	assert_int_equal(st.pages_held, 1);
	assert_true(st.predict_hits >= 1);
	assert_true(st.predict_threshold >= 2);
	assert_memory_equal(h.src_ram, h.dst_ram, h.src_length);
	harness_fini(&h);
}

HARNESS_MAIN(cmocka_unit_test(test_predict_holds_rewritten_page_and_sends_page_written_once))
