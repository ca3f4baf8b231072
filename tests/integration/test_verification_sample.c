/* SPDX-License-Identifier: MIT */
/* RMIG_VERIFY_SAMPLE with the hypervisor's dirty log (the dirty_sync callback): with a log that
 * reports every write, the switchover compares the final round's pages and a sample, far fewer
 * than the RAM, and the destination ends identical; with a log that misses writes, the sample
 * finds them, every page is then compared and the missed ones resent (pre-copy) or delivered
 * after the resume (post-copy), and the destination again ends identical. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "integration/engine_harness.h"

#define RAM (128u << 20)
#define PAGES (RAM / HARNESS_PAGE)
/* The pages the guest writes with the VM paused: the final round's, a quarter of the RAM, more
 * than the sample (RMIG_VERIFY_SAMPLE_BYTES, 4096 pages here). */
#define FINAL_FIRST 1000u
#define FINAL_COUNT (PAGES / 4)
/* The log misses the writes to every MISSED_EVERY-th page: every run the sample draws holds
 * some. */
#define MISSED_EVERY 8u

struct dirty_log {
	uint64_t bits[PAGES / 64];
	int miss; /* after round 1, write every MISSED_EVERY-th page without logging it */
	int missed_written;
};

static void log_page(struct dirty_log *log, size_t p)
{
	log->bits[p / 64] |= 1ull << (p % 64);
}

static void write_after_round_one(struct harness *h, uint32_t event, const struct rmig_stats *st)
{
	struct dirty_log *log = h->user;

	if (event != RMIG_EVENT_ROUND_END || st->round != 1 || !log->miss || log->missed_written)
		return;
	for (size_t p = 0; p < PAGES; p += MISSED_EVERY)
		harness_page_write(h, p, 0x5a5a0000ull + p);
	log->missed_written = 1;
}

static void write_while_paused(struct harness *h)
{
	struct dirty_log *log = h->user;

	for (size_t p = FINAL_FIRST; p < FINAL_FIRST + FINAL_COUNT; p++) {
		harness_page_write(h, p, 0xf1a1ull);
		log_page(log, p);
	}
}

static int report_dirty_log(struct harness *h, uint32_t region_id, uint64_t *bitmap, size_t npages)
{
	struct dirty_log *log = h->user;

	(void)region_id;
	for (size_t w = 0; w < (npages + 63) / 64; w++) {
		bitmap[w] = log->bits[w];
		log->bits[w] = 0;
	}
	return 0;
}

static void migrate(struct harness *h, struct dirty_log *log, uint32_t method,
		    struct rmig_stats *st)
{
	HARNESS_SKIP_UNLESS_USABLE();
	harness_init(h, harness_transport, RAM, 0);
	h->user = log;
	h->on_progress = write_after_round_one;
	h->on_pause = write_while_paused;
	h->on_dirty_sync = report_dirty_log;
	h->params.field_mask |= RMIG_PARAM_VERIFY | RMIG_PARAM_METHOD;
	h->params.verify = RMIG_VERIFY_SAMPLE;
	h->params.method = method;
	harness_sessions(h);
	harness_run(h);

	assert_int_equal(h->src_ret, 0);
	assert_int_equal(h->dst_ret, 0);
	assert_int_equal(rmig_session_stats(h->src, st), 0);
	assert_int_equal(st->dirty_source, RMIG_DIRTY_HYPERVISOR);
	assert_memory_equal(h->src_ram, h->dst_ram, h->src_length);
	assert_true(atomic_load(&h->dst_resumed));
}

static void test_sample_compares_final_round_and_sample(void **state)
{
	static struct dirty_log log;
	struct rmig_stats st = {.struct_size = sizeof(st)}, dst = {.struct_size = sizeof(dst)};
	struct harness h;

	(void)state;
	memset(&log, 0, sizeof(log));
	migrate(&h, &log, RMIG_METHOD_PRECOPY, &st);
	assert_int_equal(st.pages_mismatched, 0);
	/* Every page of the final round, and a sample of at most 16 MiB besides. */
	assert_true(st.pages_verified >= FINAL_COUNT);
	assert_true(st.pages_verified <=
		    FINAL_COUNT + (RMIG_VERIFY_SAMPLE_BYTES / HARNESS_PAGE) + 16);
	/* The destination hashed and answered those pages and no others (not the pages between
	 * the sample's runs): what the pause spends on it follows the sample, not the RAM. */
	assert_int_equal(rmig_session_stats(h.dst, &dst), 0);
	assert_int_equal(dst.pages_verified, st.pages_verified);
	harness_fini(&h);
}

static void test_sample_finds_missed_writes_and_compares_every_page(void **state)
{
	static struct dirty_log log;
	struct rmig_stats st = {.struct_size = sizeof(st)};
	struct harness h;

	(void)state;
	memset(&log, 0, sizeof(log));
	log.miss = 1;
	migrate(&h, &log, RMIG_METHOD_PRECOPY, &st);
	assert_int_equal(log.missed_written, 1);
	assert_int_equal(st.pages_verified, PAGES);
	/* The missed pages the final round did not happen to send again. */
	assert_int_equal(st.pages_mismatched, PAGES / MISSED_EVERY - FINAL_COUNT / MISSED_EVERY);
	harness_fini(&h);
}

static void test_sample_finds_missed_writes_before_postcopy(void **state)
{
	static struct dirty_log log;
	struct rmig_stats st = {.struct_size = sizeof(st)};
	struct harness h;

	(void)state;
	memset(&log, 0, sizeof(log));
	log.miss = 1;
	migrate(&h, &log, RMIG_METHOD_HYBRID, &st);
	assert_int_equal(log.missed_written, 1);
	/* Found by the sample, then by the comparison of every page the destination keeps; they
	 * came after the resume with the final round's. */
	assert_int_equal(st.pages_mismatched, PAGES / MISSED_EVERY - FINAL_COUNT / MISSED_EVERY);
	assert_int_equal(st.pages_verified, PAGES - FINAL_COUNT);
	harness_fini(&h);
}

HARNESS_MAIN(cmocka_unit_test(test_sample_compares_final_round_and_sample),
	     cmocka_unit_test(test_sample_finds_missed_writes_and_compares_every_page),
	     cmocka_unit_test(test_sample_finds_missed_writes_before_postcopy))
