/* SPDX-License-Identifier: MIT */
/* The hypervisor's dirty log may hold writes from long before the migration (since boot, or
 * since its own last harvest). rmig's first dirty_sync call, made when tracking starts and
 * before any page is read, starts the log: what it reports is dropped, because the bulk round
 * sends every page anyway. Here the log reports every page on its first call and nothing after
 * (an idle guest): the migration must send each page once, find nothing dirty after the bulk
 * round, and measure no dirty rate. Before, the first report was taken as writes made during
 * the bulk round and every page crossed twice. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "integration/engine_harness.h"

#define RAM (8u << 20)

struct boot_log {
	int calls;
	uint64_t pages_sent_at_first_call;
};

static int log_since_boot(struct harness *h, uint32_t region_id, uint64_t *bitmap, size_t npages)
{
	struct boot_log *log = h->user;
	struct rmig_stats st = {.struct_size = sizeof(st)};

	(void)region_id;
	if (log->calls++ == 0) {
		assert_int_equal(rmig_session_stats(h->src, &st), 0);
		log->pages_sent_at_first_call = st.pages_sent;
		for (size_t w = 0; w < (npages + 63) / 64; w++)
			bitmap[w] = ~0ull;
	}
	return 0;
}

static void test_first_dirty_sync_drops_writes_before_start(void **state)
{
	struct rmig_stats st = {.struct_size = sizeof(st)};
	struct boot_log log = {.pages_sent_at_first_call = ~0ull};
	struct harness h;

	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	harness_init(&h, harness_transport, RAM, 0);
	h.user = &log;
	h.on_dirty_sync = log_since_boot;
	h.params.field_mask = RMIG_PARAM_METHOD;
	h.params.method = RMIG_METHOD_PRECOPY;
	harness_sessions(&h);
	harness_run(&h);

	assert_int_equal(h.src_ret, 0);
	assert_int_equal(h.dst_ret, 0);
	assert_int_equal(rmig_session_stats(h.src, &st), 0);
	assert_true(log.calls >= 2);
	/* the first call came before any page was sent */
	assert_int_equal(log.pages_sent_at_first_call, 0);
	/* every page once: the writes since boot were not taken as dirtied during the round */
	assert_int_equal(st.pages_sent, harness_pages(&h));
	assert_int_equal(st.pages_sent_max, 1);
	assert_int_equal(st.dirty_source, RMIG_DIRTY_HYPERVISOR);
	assert_int_equal(rmig_region_dirty_source(h.src, h.src_region_id), RMIG_DIRTY_HYPERVISOR);
	assert_memory_equal(h.src_ram, h.dst_ram, h.src_length);
	harness_fini(&h);
}

HARNESS_MAIN(cmocka_unit_test(test_first_dirty_sync_drops_writes_before_start))
