/* SPDX-License-Identifier: MIT */
/* Page bitmaps: runs found by dirty_bitmap_next_run() across word boundaries, in the last
 * partial word and in empty bitmaps; counting, OR and ranges ignore bits past nbits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "engine/bitmap.h"

/* Runs as a plain bit-by-bit loop finds them, for comparison. */
static int naive_next_run(const uint64_t *bm, size_t nbits, size_t from, size_t *start_p,
			  size_t *len_p)
{
	size_t bit = from;

	while (bit < nbits && !bitmap_test(bm, bit))
		bit++;
	if (bit >= nbits)
		return 0;
	*start_p = bit;
	while (bit < nbits && bitmap_test(bm, bit))
		bit++;
	*len_p = bit - *start_p;
	return 1;
}

static void test_bitmap_words_rounds_up(void **state)
{
	(void)state;
	assert_int_equal(bitmap_words(0), 0);
	assert_int_equal(bitmap_words(1), 1);
	assert_int_equal(bitmap_words(64), 1);
	assert_int_equal(bitmap_words(65), 2);
	assert_int_equal(bitmap_words(262144), 4096);
}

static void test_bitmap_next_run_empty_bitmap_has_no_run(void **state)
{
	uint64_t bm[4] = {0};
	size_t start = 77, len = 77;

	(void)state;
	assert_int_equal(dirty_bitmap_next_run(bm, 256, 0, &start, &len), 0);
	assert_int_equal(dirty_bitmap_next_run(bm, 0, 0, &start, &len), 0);
	/* outputs untouched when there is no run */
	assert_int_equal(start, 77);
	assert_int_equal(len, 77);
}

static void test_bitmap_next_run_zero_bits_ignores_words(void **state)
{
	uint64_t bm[1] = {~UINT64_C(0)};
	size_t start, len;

	(void)state;
	assert_int_equal(dirty_bitmap_next_run(bm, 0, 0, &start, &len), 0);
}

static void test_bitmap_next_run_crosses_word_boundaries(void **state)
{
	uint64_t bm[4] = {0};
	size_t start, len;

	(void)state;
	bitmap_set_range(bm, 60, 140); /* 60..199: spans words 0, 1, 2 and 3 */
	assert_int_equal(dirty_bitmap_next_run(bm, 256, 0, &start, &len), 1);
	assert_int_equal(start, 60);
	assert_int_equal(len, 140);
	assert_int_equal(dirty_bitmap_next_run(bm, 256, 200, &start, &len), 0);
}

static void test_bitmap_next_run_ends_exactly_at_word_boundary(void **state)
{
	uint64_t bm[2] = {0};
	size_t start, len;

	(void)state;
	bitmap_set_range(bm, 0, 64);
	assert_int_equal(dirty_bitmap_next_run(bm, 128, 0, &start, &len), 1);
	assert_int_equal(start, 0);
	assert_int_equal(len, 64);
	assert_int_equal(dirty_bitmap_next_run(bm, 128, 64, &start, &len), 0);
}

static void test_bitmap_next_run_from_inside_a_run_starts_at_from(void **state)
{
	uint64_t bm[2] = {0};
	size_t start, len;

	(void)state;
	bitmap_set_range(bm, 10, 100);
	assert_int_equal(dirty_bitmap_next_run(bm, 128, 70, &start, &len), 1);
	assert_int_equal(start, 70);
	assert_int_equal(len, 40);
}

static void test_bitmap_next_run_stops_at_nbits_in_last_partial_word(void **state)
{
	uint64_t bm[2] = {0};
	size_t start, len;

	(void)state;
	/* nbits 100: bits 100..127 of word 1 are past the end, even if someone set them */
	bm[1] = ~UINT64_C(0);
	assert_int_equal(dirty_bitmap_next_run(bm, 100, 0, &start, &len), 1);
	assert_int_equal(start, 64);
	assert_int_equal(len, 36);
	assert_int_equal(dirty_bitmap_next_run(bm, 100, 100, &start, &len), 0);

	/* only garbage past the end: no run */
	bm[1] = ~UINT64_C(0) << 36;
	assert_int_equal(dirty_bitmap_next_run(bm, 100, 0, &start, &len), 0);
}

static void test_bitmap_next_run_full_bitmap_is_one_run(void **state)
{
	uint64_t bm[3];
	size_t start, len;

	(void)state;
	memset(bm, 0xff, sizeof(bm));
	assert_int_equal(dirty_bitmap_next_run(bm, 150, 0, &start, &len), 1);
	assert_int_equal(start, 0);
	assert_int_equal(len, 150);
}

static void test_bitmap_next_run_single_bits_at_word_edges(void **state)
{
	uint64_t bm[3] = {0};
	size_t start, len;

	(void)state;
	bitmap_set(bm, 63);
	bitmap_set(bm, 64);
	bitmap_set(bm, 127);
	bitmap_set(bm, 129);
	assert_int_equal(dirty_bitmap_next_run(bm, 192, 0, &start, &len), 1);
	assert_int_equal(start, 63);
	assert_int_equal(len, 2);
	assert_int_equal(dirty_bitmap_next_run(bm, 192, 65, &start, &len), 1);
	assert_int_equal(start, 127);
	assert_int_equal(len, 1);
	assert_int_equal(dirty_bitmap_next_run(bm, 192, 128, &start, &len), 1);
	assert_int_equal(start, 129);
	assert_int_equal(len, 1);
	assert_int_equal(dirty_bitmap_next_run(bm, 192, 130, &start, &len), 0);
}

static void test_bitmap_next_run_matches_bit_by_bit_scan_on_random_bitmaps(void **state)
{
	uint64_t seed = 12345;

	(void)state;
	for (int round = 0; round < 200; round++) {
		size_t nbits = 1 + (size_t)(seed % 700), words = bitmap_words(nbits), from = 0;
		uint64_t *bm = calloc(words, sizeof(uint64_t));
		size_t start, len, nstart, nlen, covered = 0;

		assert_non_null(bm);
		for (size_t w = 0; w < words; w++) {
			seed = seed * 6364136223846793005ull + 1442695040888963407ull;
			/* runs of varied lengths: sparse, dense and full words */
			bm[w] = round % 3 == 0 ? seed & (seed >> 7) : round % 3 == 1 ? seed : ~0ull;
		}
		for (;;) {
			int got = dirty_bitmap_next_run(bm, nbits, from, &start, &len);
			int want = naive_next_run(bm, nbits, from, &nstart, &nlen);

			assert_int_equal(got, want);
			if (!got)
				break;
			assert_int_equal(start, nstart);
			assert_int_equal(len, nlen);
			covered += len;
			from = start + len;
		}
		assert_int_equal(covered, bitmap_count(bm, nbits));
		free(bm);
	}
}

static void test_bitmap_count_ignores_bits_past_nbits(void **state)
{
	uint64_t bm[2] = {~UINT64_C(0), ~UINT64_C(0)};

	(void)state;
	assert_int_equal(bitmap_count(bm, 70), 70);
	assert_int_equal(bitmap_count(bm, 128), 128);
	assert_int_equal(bitmap_count(bm, 0), 0);
	assert_false(bitmap_empty(bm, 1));
	bm[0] = 0;
	bm[1] = ~UINT64_C(0) << 6;
	assert_true(bitmap_empty(bm, 70));
}

static void test_bitmap_set_test_clear_single_bits(void **state)
{
	uint64_t bm[2] = {0};

	(void)state;
	bitmap_set(bm, 64);
	assert_true(bitmap_test(bm, 64));
	assert_false(bitmap_test(bm, 63));
	assert_false(bitmap_test(bm, 65));
	assert_int_equal(bm[1], 1);
	bitmap_clear(bm, 64);
	assert_int_equal(bm[1], 0);
}

static void test_bitmap_or_returns_newly_set_bits_and_masks_the_tail(void **state)
{
	uint64_t dst[2] = {0x0f, 0}, src[2] = {0xff, ~UINT64_C(0)};

	(void)state;
	/* 4 new bits in word 0, 6 in word 1 (nbits 70), the rest of word 1 stays clear */
	assert_int_equal(bitmap_or(dst, src, 70), 4 + 6);
	assert_int_equal(dst[0], 0xff);
	assert_int_equal(dst[1], 0x3f);
	assert_int_equal(bitmap_or(dst, src, 70), 0);
	bitmap_andnot(dst, src, 70);
	assert_true(bitmap_empty(dst, 70));
}

static void test_bitmap_set_range_matches_single_sets(void **state)
{
	(void)state;
	for (size_t start = 0; start < 130; start += 7) {
		for (size_t len = 0; start + len <= 256; len += 13) {
			uint64_t a[4] = {0}, b[4] = {0};

			bitmap_set_range(a, start, len);
			for (size_t i = start; i < start + len; i++)
				bitmap_set(b, i);
			assert_memory_equal(a, b, sizeof(a));
		}
	}
}

static void test_bitmap_for_each_visits_set_bits_in_order_on_random_bitmaps(void **state)
{
	uint64_t seed = 777;

	(void)state;
	for (int round = 0; round < 200; round++) {
		size_t nbits = (size_t)(seed % 700), words = bitmap_words(nbits), bit, want = 0;
		uint64_t *bm = calloc(words + 1, sizeof(uint64_t));
		size_t visited = 0;

		assert_non_null(bm);
		for (size_t w = 0; w < words; w++) {
			seed = seed * 6364136223846793005ull + 1442695040888963407ull;
			bm[w] = round % 3 == 0 ? seed & (seed >> 9) : round % 3 == 1 ? seed : ~0ull;
		}
		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		/* bits past nbits are zero, as every bitmap function keeps them */
		if (nbits % 64)
			bm[words - 1] &= (UINT64_C(1) << (nbits % 64)) - 1;
		bitmap_for_each(bit, bm, nbits)
		{
			while (want < nbits && !bitmap_test(bm, want))
				want++;
			assert_int_equal(bit, want);
			want++;
			visited++;
		}
		assert_int_equal(visited, bitmap_count(bm, nbits));
		free(bm);
	}
}

static void test_bitmap_for_each_sees_later_words_changed_by_its_body(void **state)
{
	uint64_t bm[3] = {UINT64_C(1) << 3, 0, 0};
	size_t bit, seen[4], n = 0;

	(void)state;
	bitmap_for_each(bit, bm, 160)
	{
		assert_true(n < 4);
		seen[n++] = bit;
		if (bit == 3) {
			bitmap_clear(bm, 3);
			bitmap_set(bm, 5);   /* the word being walked: not seen */
			bitmap_set(bm, 100); /* a later word: seen */
			bitmap_set(bm, 150); /* a later word, but the walk breaks at 100 */
		}
		if (bit == 100)
			break;
	}
	assert_int_equal(n, 2);
	assert_int_equal(seen[0], 3);
	assert_int_equal(seen[1], 100);
}

static void test_bitmap_for_each_on_no_bits_visits_nothing(void **state)
{
	size_t bit, n = 0;

	(void)state;
	bitmap_for_each(bit, (const uint64_t *)NULL, 0) n++;
	assert_int_equal(n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bitmap_words_rounds_up),
		cmocka_unit_test(test_bitmap_next_run_empty_bitmap_has_no_run),
		cmocka_unit_test(test_bitmap_next_run_zero_bits_ignores_words),
		cmocka_unit_test(test_bitmap_next_run_crosses_word_boundaries),
		cmocka_unit_test(test_bitmap_next_run_ends_exactly_at_word_boundary),
		cmocka_unit_test(test_bitmap_next_run_from_inside_a_run_starts_at_from),
		cmocka_unit_test(test_bitmap_next_run_stops_at_nbits_in_last_partial_word),
		cmocka_unit_test(test_bitmap_next_run_full_bitmap_is_one_run),
		cmocka_unit_test(test_bitmap_next_run_single_bits_at_word_edges),
		cmocka_unit_test(test_bitmap_next_run_matches_bit_by_bit_scan_on_random_bitmaps),
		cmocka_unit_test(test_bitmap_count_ignores_bits_past_nbits),
		cmocka_unit_test(test_bitmap_set_test_clear_single_bits),
		cmocka_unit_test(test_bitmap_or_returns_newly_set_bits_and_masks_the_tail),
		cmocka_unit_test(test_bitmap_set_range_matches_single_sets),
		cmocka_unit_test(test_bitmap_for_each_visits_set_bits_in_order_on_random_bitmaps),
		cmocka_unit_test(test_bitmap_for_each_sees_later_words_changed_by_its_body),
		cmocka_unit_test(test_bitmap_for_each_on_no_bits_visits_nothing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
