/* SPDX-License-Identifier: MIT */
/* Zero pages cross as data-less markers: the page payload on the wire is exactly the non-zero
 * pages, and the destination (which starts as garbage) still ends with zeroes there. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "integration/engine_harness.h"

static void test_zero_pages_not_sent_as_data(void **state)
{
	struct rmig_stats st = {.struct_size = sizeof(st)};
	struct rmig_transport_stats ts = {.struct_size = sizeof(ts)};
	static const unsigned char zero[HARNESS_PAGE];
	struct harness h;
	size_t pages, zero_pages;

	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	harness_init(&h, harness_transport, 64u << 20, 3); /* every third page zero */
	pages = harness_pages(&h);
	zero_pages = (pages + 2) / 3;
	harness_sessions(&h);
	harness_run(&h);

	assert_int_equal(h.src_ret, 0);
	assert_int_equal(h.dst_ret, 0);
	assert_int_equal(rmig_session_stats(h.src, &st), 0);
	assert_int_equal(st.zero_pages, zero_pages);
	assert_int_equal(st.pages_sent, pages);
	assert_int_equal(st.data_bytes, (pages - zero_pages) * HARNESS_PAGE);
	/* What the transport itself counts as page payload. */
	assert_int_equal(rmig_session_transport_stats(h.src, &ts), 0);
	assert_int_equal(ts.data_bytes_sent, (pages - zero_pages) * HARNESS_PAGE);
	for (size_t p = 0; p < pages; p += 3)
		assert_memory_equal(h.dst_ram + p * HARNESS_PAGE, zero, HARNESS_PAGE);
	assert_memory_equal(h.src_ram, h.dst_ram, h.src_length);
	harness_fini(&h);
}

HARNESS_MAIN(cmocka_unit_test(test_zero_pages_not_sent_as_data))
