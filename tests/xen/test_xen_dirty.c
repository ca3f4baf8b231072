/* SPDX-License-Identifier: MIT */
/* bindings/xen/xen_dirty.c: one log-dirty harvest of the whole guest, handed out to rmig's
 * regions as each asks. Each region gets exactly the frames of its range, at its own page
 * offsets; a region asking again triggers the next harvest, and what that harvest found for
 * the regions that had not asked yet waits for them: no bit is lost, none given twice. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "bindings/xen/xen_dirty.h"

#define FRAMES 1024u
#define WORD_BITS (sizeof(unsigned long) * CHAR_BIT)

static struct xen_own_ram_header *layout_two(void)
{
	struct xen_own_ram_header *h = calloc(1, sizeof(*h));

	assert_non_null(h);
	strcpy(h->name, "d");
	h->nranges = 2;
	h->ranges[0] = (struct xen_own_ram_range){.first = 0, .count = 100};
	h->ranges[1] = (struct xen_own_ram_range){.first = 200, .count = 130}; /* 200..329 */
	return h;
}

static void harvest_of(unsigned long *harvest, const uint64_t *frames, size_t n)
{
	memset(harvest, 0, xen_dirty_bitmap_bytes(FRAMES));
	for (size_t i = 0; i < n; i++)
		harvest[frames[i] / WORD_BITS] |= 1ul << (frames[i] % WORD_BITS);
}

static int bit(const uint64_t *bitmap, uint64_t i)
{
	return (int)(bitmap[i / 64] >> (i % 64) & 1u);
}

static size_t bits(const uint64_t *bitmap, size_t npages)
{
	size_t n = 0;

	for (size_t i = 0; i < npages; i++)
		n += (size_t)bit(bitmap, i);
	return n;
}

static void test_xen_dirty_hands_each_region_its_frames_once(void **state)
{
	struct xen_own_ram_header *h = layout_two();
	unsigned long harvest[FRAMES / WORD_BITS];
	uint64_t r0[2], r1[3];
	struct xen_dirty d;

	(void)state;
	assert_int_equal(xen_dirty_init(&d, h, FRAMES), 0);
	/* the first question of any region harvests */
	assert_true(xen_dirty_needs_harvest(&d, 0));
	assert_true(xen_dirty_needs_harvest(&d, 1));
	/* frames 5 and 99 are region 0's pages 5 and 99; 150 is in no region (a hole); 200 and
	 * 329 are region 1's pages 0 and 129 */
	harvest_of(harvest, (const uint64_t[]){5, 99, 150, 200, 329}, 5);
	assert_int_equal(xen_dirty_add_harvest(&d, harvest), 5);
	memset(r0, 0, sizeof(r0));
	xen_dirty_take(&d, 0, r0);
	assert_int_equal(bits(r0, 100), 2);
	assert_true(bit(r0, 5) && bit(r0, 99));
	/* region 1 has not asked since: no new harvest for it, its bits are waiting */
	assert_false(xen_dirty_needs_harvest(&d, 1));
	memset(r1, 0, sizeof(r1));
	xen_dirty_take(&d, 1, r1);
	assert_int_equal(bits(r1, 130), 2);
	assert_true(bit(r1, 0) && bit(r1, 129));
	/* asked again, nothing new taken: nothing twice */
	memset(r1, 0, sizeof(r1));
	xen_dirty_take(&d, 1, r1);
	assert_int_equal(bits(r1, 130), 0);
	xen_dirty_free(&d);
	free(h);
}

static void test_xen_dirty_keeps_bits_of_regions_that_have_not_asked(void **state)
{
	struct xen_own_ram_header *h = layout_two();
	unsigned long harvest[FRAMES / WORD_BITS];
	uint64_t r0[2], r1[3];
	struct xen_dirty d;

	(void)state;
	assert_int_equal(xen_dirty_init(&d, h, FRAMES), 0);
	harvest_of(harvest, (const uint64_t[]){5, 250}, 2);
	xen_dirty_add_harvest(&d, harvest);
	memset(r0, 0, sizeof(r0));
	xen_dirty_take(&d, 0, r0);
	/* region 0 asks again before region 1 asked at all: a new harvest (Xen cleared the
	 * first one's bits), which must not drop frame 250 (252 shares its bitmap word) */
	assert_true(xen_dirty_needs_harvest(&d, 0));
	harvest_of(harvest, (const uint64_t[]){6, 252}, 2);
	xen_dirty_add_harvest(&d, harvest);
	memset(r0, 0, sizeof(r0));
	xen_dirty_take(&d, 0, r0);
	assert_int_equal(bits(r0, 100), 1);
	assert_true(bit(r0, 6));
	memset(r1, 0, sizeof(r1));
	xen_dirty_take(&d, 1, r1);
	assert_int_equal(bits(r1, 130), 2);
	assert_true(bit(r1, 50) && bit(r1, 52));
	/* a frame written again between harvests is one dirty page, not two */
	harvest_of(harvest, (const uint64_t[]){7}, 1);
	xen_dirty_add_harvest(&d, harvest);
	xen_dirty_add_harvest(&d, harvest);
	memset(r0, 0, sizeof(r0));
	xen_dirty_take(&d, 0, r0);
	assert_int_equal(bits(r0, 100), 1);
	xen_dirty_free(&d);
	free(h);
}

static void test_xen_dirty_refuses_a_range_past_the_guest(void **state)
{
	struct xen_own_ram_header *h = layout_two();
	struct xen_dirty d;

	(void)state;
	assert_int_equal(xen_dirty_init(&d, h, 300), -EINVAL); /* region 1 ends at 330 */
	free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_xen_dirty_hands_each_region_its_frames_once),
		cmocka_unit_test(test_xen_dirty_keeps_bits_of_regions_that_have_not_asked),
		cmocka_unit_test(test_xen_dirty_refuses_a_range_past_the_guest),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
