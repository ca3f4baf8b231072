/* SPDX-License-Identifier: MIT */
/* The per-round records add up to the session's totals: bytes on the wire, page transmissions,
 * zero markers and page payload (which also equals what the transport counted). */
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

HARNESS_MAIN(cmocka_unit_test(test_stats_bytes_equal_sum_over_rounds))
