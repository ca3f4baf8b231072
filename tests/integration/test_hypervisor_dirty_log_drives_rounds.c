/* SPDX-License-Identifier: MIT */
/* With the hypervisor's dirty log (the dirty_sync callback, as QEMU or Xen would pass KVM's
 * dirty bitmap through), exactly the pages it reports are sent again; the destination ends
 * identical. Here the "hypervisor" is the test, which knows what it wrote. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "integration/engine_harness.h"

#define WRITTEN_FIRST 40u
#define WRITTEN_COUNT 300u

struct dirty_log {
	uint64_t bits[(64u << 20) / HARNESS_PAGE / 64];
	unsigned syncs;
	uint32_t region_id;
	size_t npages;
};

static void write_after_round_one(struct harness *h, uint32_t event, const struct rmig_stats *st)
{
	struct dirty_log *log = h->user;

	if (event != RMIG_EVENT_ROUND_END || st->round != 1)
		return;
	for (size_t p = WRITTEN_FIRST; p < WRITTEN_FIRST + WRITTEN_COUNT; p++) {
		harness_page_write(h, p, 0xabcdull);
		log->bits[p / 64] |= 1ull << (p % 64);
	}
}

static int report_dirty_log(struct harness *h, uint32_t region_id, uint64_t *bitmap, size_t npages)
{
	struct dirty_log *log = h->user;

	log->syncs++;
	log->region_id = region_id;
	log->npages = npages;
	for (size_t w = 0; w < (npages + 63) / 64; w++) {
		assert_int_equal(bitmap[w], 0); /* rmig hands over a zeroed bitmap */
		bitmap[w] = log->bits[w];
		log->bits[w] = 0;
	}
	return 0;
}

static void test_hypervisor_dirty_log_drives_rounds(void **state)
{
	static struct dirty_log log;
	struct rmig_stats st = {.struct_size = sizeof(st)};
	struct harness h;

	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	harness_init(&h, harness_transport, 64u << 20, 0);
	h.user = &log;
	h.on_progress = write_after_round_one;
	h.on_dirty_sync = report_dirty_log;
	harness_sessions(&h);
	harness_run(&h);

	assert_int_equal(h.src_ret, 0);
	assert_int_equal(h.dst_ret, 0);
	assert_true(log.syncs >= 2);
	assert_int_equal(log.region_id, HARNESS_REGION_ID);
	assert_int_equal(log.npages, harness_pages(&h));
	assert_int_equal(rmig_session_stats(h.src, &st), 0);
	assert_int_equal(st.dirty_source, RMIG_DIRTY_HYPERVISOR);
	assert_int_equal(st.pages_sent_multiple, WRITTEN_COUNT);
	assert_int_equal(st.pages_mismatched, 0);
	assert_memory_equal(h.src_ram, h.dst_ram, h.src_length);
	harness_fini(&h);
}

HARNESS_MAIN(cmocka_unit_test(test_hypervisor_dirty_log_drives_rounds))
