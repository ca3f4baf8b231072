/* SPDX-License-Identifier: MIT */
/* The destination answers the verification from hashes it took when batches committed. A page
 * that a later batch wrote again (new data, data over a zero page, a zero marker over data)
 * must be answered with the hash of what that later batch left: a hash kept from the first
 * arrival would differ from the source's, and the verification would resend the page (counted
 * as a mismatch) or, if the stale hash stayed, fail the migration. Here nothing races, so no
 * page may mismatch. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "integration/engine_harness.h"

#define ZERO_EVERY 8u
#define ZERO_TO_DATA 800u /* zero at start (800 % ZERO_EVERY == 0), data in the final round */
#define DATA_TO_DATA 801u /* data at start, other data in the final round */
#define DATA_TO_ZERO 802u /* data at start, a zero marker in the final round */

/* VM paused, before the final sync: these go in the final round's batches. */
static void rewrite_while_paused(struct harness *h)
{
	harness_page_write(h, ZERO_TO_DATA, 0x2e401ull);
	harness_page_write(h, DATA_TO_DATA, 0xda7a2ull);
	memset(h->src_ram + DATA_TO_ZERO * HARNESS_PAGE, 0, HARNESS_PAGE);
}

static void test_verification_rehashes_page_rewritten_by_later_batch(void **state)
{
	static const size_t pages[] = {ZERO_TO_DATA, DATA_TO_DATA, DATA_TO_ZERO};
	struct rmig_stats st = {.struct_size = sizeof(st)};
	struct rmig_stats dst_st = {.struct_size = sizeof(dst_st)};
	const uint8_t *sends;
	struct harness h;

	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	harness_init(&h, harness_transport, 32u << 20, ZERO_EVERY);
	h.on_pause = rewrite_while_paused;
	harness_sessions(&h);
	harness_run(&h);

	assert_int_equal(h.src_ret, 0);
	assert_int_equal(h.dst_ret, 0);
	sends = harness_send_counts(&h);
	for (size_t i = 0; i < sizeof(pages) / sizeof(pages[0]); i++) {
		assert_int_equal(sends[pages[i]], 2);
		assert_memory_equal(h.src_ram + pages[i] * HARNESS_PAGE,
				    h.dst_ram + pages[i] * HARNESS_PAGE, HARNESS_PAGE);
	}
	assert_int_equal(rmig_session_stats(h.src, &st), 0);
	assert_int_equal(st.pages_verified, harness_pages(&h));
	assert_int_equal(st.pages_mismatched, 0);
	assert_int_equal(st.pages_sent_multiple, sizeof(pages) / sizeof(pages[0]));
	assert_int_equal(rmig_session_stats(h.dst, &dst_st), 0);
	assert_int_equal(dst_st.pages_mismatched, 0);
	assert_memory_equal(h.src_ram, h.dst_ram, h.src_length);
	assert_true(atomic_load(&h.dst_resumed));
	harness_fini(&h);
}

HARNESS_MAIN(cmocka_unit_test(test_verification_rehashes_page_rewritten_by_later_batch))
