/* SPDX-License-Identifier: MIT */
/* auto measures the guest while the bulk round starts: a guest dirtying pages faster than the
 * link carries them cannot converge by pre-copy, so auto picks a method of the post-copy family,
 * says why, and the migration still ends byte-identical. The guest here, seen through the
 * hypervisor's dirty log, writes before every sync of the log twice as many pages (scattered
 * over its RAM) as the transport carried since the previous sync: its dirty rate is twice the
 * bandwidth by construction, on a fast host as under emulation, where a writer thread's rate
 * against a fixed link speed would depend on how fast the host runs it. The post-copy faults
 * are weighed by test pulls the destination timed on this connection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "engine/session.h"
#include "integration/engine_harness.h"
#include "transport/transport.h"

#define RAM (16u << 20)
#define DIRTY_PER_PAGE_SENT 2u

struct dirty_log {
	uint64_t bits[RAM / HARNESS_PAGE / 64];
	uint64_t sent_at_sync; /* page payload the transport had taken at the previous sync */
	uint64_t rng;
	uint64_t written;
};

static uint64_t next_random(uint64_t *state)
{
	*state ^= *state << 13;
	*state ^= *state >> 7;
	*state ^= *state << 17;
	return *state;
}

static int report_dirty_log(struct harness *h, uint32_t region_id, uint64_t *bitmap, size_t npages)
{
	struct dirty_log *log = h->user;
	struct transport_stats ts;
	uint64_t pages;

	(void)region_id;
	transport_stats_get(h->src->conn, &ts);
	pages = (ts.data_bytes_sent - log->sent_at_sync) / HARNESS_PAGE * DIRTY_PER_PAGE_SENT;
	log->sent_at_sync = ts.data_bytes_sent;
	for (uint64_t i = 0; !atomic_load(&h->src_paused) && i < pages; i++) {
		size_t page = (size_t)(next_random(&log->rng) % npages);

		harness_page_write(h, page, log->rng);
		log->bits[page / 64] |= 1ull << (page % 64);
		log->written++;
	}
	for (size_t w = 0; w < (npages + 63) / 64; w++) {
		bitmap[w] = log->bits[w];
		log->bits[w] = 0;
	}
	return 0;
}

static void test_auto_picks_postcopy_family_when_dirty_rate_exceeds_bandwidth(void **state)
{
	static struct dirty_log log;
	struct rmig_stats st = {.struct_size = sizeof(st)};
	struct harness h;
	const char *reason;

	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	memset(&log, 0, sizeof(log));
	log.rng = 88172645463325252ull;
	harness_init(&h, harness_transport, RAM, 0);
	h.user = &log;
	h.on_dirty_sync = report_dirty_log;
	h.params.field_mask = RMIG_PARAM_METHOD | RMIG_PARAM_BANDWIDTH_LIMIT;
	h.params.method = RMIG_METHOD_AUTO;
	/* slow enough that the bulk round is still running when auto has its samples */
	h.params.bandwidth_limit = 8u << 20;
	harness_sessions(&h);
	harness_run(&h);

	assert_int_equal(h.src_ret, 0);
	assert_int_equal(h.dst_ret, 0);
	assert_true(log.written > 0);
	assert_int_equal(rmig_session_stats(h.src, &st), 0);
	print_message("%s\n", rmig_session_method_reason(h.src));
	assert_int_equal(st.method, RMIG_METHOD_AUTO);
	assert_true(st.method_used == RMIG_METHOD_POSTCOPY || st.method_used == RMIG_METHOD_TSMC ||
		    st.method_used == RMIG_METHOD_HYBRID);
	assert_true(st.auto_dirty_pages_rate * HARNESS_PAGE > st.auto_bandwidth);
	/* faults weighed by pulls the destination timed on this connection */
	assert_true(st.auto_fault_latency_us > 0);
	assert_true(st.auto_projected_stall_ms > 0);
	reason = rmig_session_method_reason(h.src);
	assert_non_null(strstr(reason, "auto chose"));
	assert_non_null(strstr(reason, rmig_method_name(st.method_used)));
	assert_non_null(strstr(reason, "pulls timed at"));
	assert_memory_equal(h.src_ram, h.dst_ram, h.src_length);
	harness_fini(&h);
}

HARNESS_MAIN(cmocka_unit_test(test_auto_picks_postcopy_family_when_dirty_rate_exceeds_bandwidth))
