/* Prediction pre-copy, seen through the hypervisor's dirty log: a page the guest rewrites before
 * every sync of the log is held back after its first resends and crosses only twice (bulk round
 * and final round), where a pre-copy would send it in every round; a page written once after
 * the bulk round is sent in the next live round, not held. A stream of pages written once each
 * keeps the rounds going. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "engine/session.h"
#include "integration/engine_harness.h"

#define RAM (64u << 20)
#define HOT_PAGE 5u
#define ONCE_PAGE 3000u
#define STREAM_FIRST 10000u
#define STREAM_PER_SYNC 100u
#define STREAM_SYNCS 30u

struct dirty_log {
	uint64_t bits[RAM / HARNESS_PAGE / 64];
	unsigned syncs;
};

static void mark(struct harness *h, struct dirty_log *log, size_t page, uint64_t tag)
{
	harness_page_write(h, page, tag);
	log->bits[page / 64] |= 1ull << (page % 64);
}

static void write_once_after_bulk_round(struct harness *h, uint32_t event,
					const struct rmig_stats *st)
{
	if (event == RMIG_EVENT_ROUND_END && st->round == 1)
		mark(h, h->user, ONCE_PAGE, 0x0ce0ull);
}

static int report_dirty_log(struct harness *h, uint32_t region_id, uint64_t *bitmap, size_t npages)
{
	struct dirty_log *log = h->user;

	(void)region_id;
	if (!atomic_load(&h->src_paused)) {
		mark(h, log, HOT_PAGE, 0x4040ull + log->syncs);
		for (size_t i = 0; log->syncs < STREAM_SYNCS && i < STREAM_PER_SYNC; i++)
			mark(h, log, STREAM_FIRST + log->syncs * STREAM_PER_SYNC + i, 0x5eedull);
	}
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
	struct rmig_session *source;
	struct harness h;

	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	memset(&log, 0, sizeof(log));
	harness_init(&h, harness_transport, RAM, 0);
	h.user = &log;
	h.on_progress = write_once_after_bulk_round;
	h.on_dirty_sync = report_dirty_log;
	h.params.field_mask = RMIG_PARAM_METHOD | RMIG_PARAM_POLICY | RMIG_PARAM_BANDWIDTH_LIMIT;
	h.params.method = RMIG_METHOD_PREDICT;
	h.params.policy = RMIG_POLICY_XEN;
	/* A bulk round of a quarter second: several samples of the log within it. */
	h.params.bandwidth_limit = 256u << 20;
	harness_sessions(&h);
	harness_run(&h);

	assert_int_equal(h.src_ret, 0);
	assert_int_equal(h.dst_ret, 0);
	assert_int_equal(rmig_session_stats(h.src, &st), 0);
	assert_int_equal(st.method_used, RMIG_METHOD_PREDICT);
	assert_true(st.rounds >= 3);
	source = h.src;
	/* bulk round, then held back to the final round */
	assert_int_equal(source->regions[0].send_count[HOT_PAGE], 2);
	/* bulk round, then the next live round: never held */
	assert_int_equal(source->regions[0].send_count[ONCE_PAGE], 2);
	assert_int_equal(st.pages_held, 1);
	assert_true(st.predict_hits >= 1);
	assert_true(st.predict_threshold >= 2);
	assert_memory_equal(h.src_ram, h.dst_ram, h.src_length);
	harness_fini(&h);
}

HARNESS_MAIN(cmocka_unit_test(test_predict_holds_rewritten_page_and_sends_page_written_once))
