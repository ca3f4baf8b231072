/* SPDX-License-Identifier: MIT */
/* The per-round records add up to the session's totals: bytes on the wire, page transmissions,
 * zero markers and page payload (which also equals what the transport counted). A round read
 * while it runs reports its time and bytes so far. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "integration/engine_harness.h"

static void test_stats_bytes_equal_sum_over_rounds(void **state)
{
	struct rmig_stats st = {.struct_size = sizeof(st)};
	struct rmig_transport_stats ts = {.struct_size = sizeof(ts)};
	uint64_t bytes = 0, pages = 0, zero_pages = 0, data_bytes = 0;
	struct harness h;
	uint32_t round;

	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	harness_init(&h, harness_transport, 128u << 20, 4);
	h.params.field_mask = RMIG_PARAM_DOWNTIME_MS;
	h.params.downtime_ms = 5; /* a few rounds with the writer running */
	harness_sessions(&h);
	harness_writer_start(&h);
	harness_run(&h);

	assert_int_equal(h.src_ret, 0);
	assert_int_equal(rmig_session_stats(h.src, &st), 0);
	for (round = 0;; round++) {
		struct rmig_round_stats r = {.struct_size = sizeof(r)};

		if (rmig_session_round_stats(h.src, round, &r))
			break;
		assert_int_equal(r.round, round);
		assert_int_equal(r.paused, round == st.rounds + 1);
		bytes += r.bytes;
		pages += r.pages;
		zero_pages += r.zero_pages;
		data_bytes += r.data_bytes;
	}
	assert_int_equal(round, st.rounds + 2); /* setup, live rounds, the paused round */
	assert_true(st.bytes > st.data_bytes);
	assert_int_equal(bytes, st.bytes);
	assert_int_equal(pages, st.pages_sent);
	assert_int_equal(zero_pages, st.zero_pages);
	assert_int_equal(data_bytes, st.data_bytes);
	assert_int_equal(rmig_session_transport_stats(h.src, &ts), 0);
	assert_int_equal(data_bytes, ts.data_bytes_sent);
	assert_int_equal(bytes, ts.bytes_sent);
	harness_fini(&h);
}

struct open_round {
	uint64_t start_us; /* CLOCK_MONOTONIC, before the run */
	int samples;
	int too_long; /* a duration longer than the whole run so far */
	int bytes_seen;
	int bytes_beyond_total;
};

static void read_open_round(struct harness *h, uint32_t event, const struct rmig_stats *st)
{
	struct open_round *o = h->user;
	struct rmig_round_stats r = {.struct_size = sizeof(r)};
	struct rmig_stats now = {.struct_size = sizeof(now)};
	uint64_t elapsed;

	if (event != RMIG_EVENT_PROGRESS || st->round != 1)
		return;
	assert_int_equal(rmig_session_round_stats(h->src, 1, &r), 0);
	elapsed = harness_now_us() - o->start_us;
	assert_int_equal(rmig_session_stats(h->src, &now), 0);
	o->samples++;
	if (r.duration_us > elapsed)
		o->too_long = 1;
	if (r.bytes > 0)
		o->bytes_seen = 1;
	if (r.bytes > now.bytes)
		o->bytes_beyond_total = 1;
}

static void test_round_stats_of_running_round_report_so_far(void **state)
{
	struct open_round o = {0};
	struct harness h;

	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	harness_init(&h, harness_transport, 128u << 20, 4);
	h.user = &o;
	h.on_progress = read_open_round;
	harness_sessions(&h);
	o.start_us = harness_now_us();
	harness_run(&h);

	assert_int_equal(h.src_ret, 0);
	assert_true(o.samples > 0);
	assert_false(o.too_long);
	assert_true(o.bytes_seen);
	assert_false(o.bytes_beyond_total);
	harness_fini(&h);
}

HARNESS_MAIN(cmocka_unit_test(test_stats_bytes_equal_sum_over_rounds),
	     cmocka_unit_test(test_round_stats_of_running_round_report_so_far))
