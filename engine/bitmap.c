/* SPDX-License-Identifier: MIT */
/* engine/bitmap.c - page bitmaps shared by dirty sources and the batch builder.
 * Runs are found a word at a time (ctz on the word, or on its complement for the run's end) so
 * walking a sparse 1 GiB bitmap touches 4 KiB of words, not 262144 bits. */
#include <string.h>

#include "engine/bitmap.h"

#define BITS_PER_WORD 64u

/* Bits of the last word that belong to the bitmap (all ones for a full word). */
static uint64_t bitmap_last_word_mask(size_t nbits)
{
	size_t tail = nbits % BITS_PER_WORD;

	return tail ? (UINT64_C(1) << tail) - 1 : ~UINT64_C(0);
}

size_t bitmap_words(size_t nbits)
{
	return nbits / BITS_PER_WORD + (nbits % BITS_PER_WORD != 0);
}

void bitmap_set(uint64_t *bm, size_t bit)
{
	bm[bit / BITS_PER_WORD] |= UINT64_C(1) << (bit % BITS_PER_WORD);
}

int bitmap_test(const uint64_t *bm, size_t bit)
{
	return (bm[bit / BITS_PER_WORD] >> (bit % BITS_PER_WORD)) & 1;
}

void bitmap_clear(uint64_t *bm, size_t bit)
{
	bm[bit / BITS_PER_WORD] &= ~(UINT64_C(1) << (bit % BITS_PER_WORD));
}

size_t bitmap_count(const uint64_t *bm, size_t nbits)
{
	size_t words = bitmap_words(nbits), n = 0;

	if (!words)
		return 0;
	for (size_t i = 0; i + 1 < words; i++)
		n += (size_t)__builtin_popcountll(bm[i]);
	return n + (size_t)__builtin_popcountll(bm[words - 1] & bitmap_last_word_mask(nbits));
}

/* First bit >= from whose value is `value` (1 or 0), or nbits if none. */
static size_t bitmap_find(const uint64_t *bm, size_t nbits, size_t from, int value)
{
	size_t word, words = bitmap_words(nbits);
	uint64_t bits;

	if (from >= nbits)
		return nbits;
	word = from / BITS_PER_WORD;
	bits = value ? bm[word] : ~bm[word];
	bits &= ~UINT64_C(0) << (from % BITS_PER_WORD);
	for (;;) {
		if (bits) {
			size_t bit = bitmap_word_first(word, bits);

			return bit < nbits ? bit : nbits;
		}
		if (++word >= words)
			return nbits;
		bits = value ? bm[word] : ~bm[word];
	}
}

int dirty_bitmap_next_run(const uint64_t *bm, size_t nbits, size_t from, size_t *start_p,
			  size_t *len_p)
{
	size_t start = bitmap_find(bm, nbits, from, 1), end;

	if (start >= nbits)
		return 0;
	end = bitmap_find(bm, nbits, start, 0);
	*start_p = start;
	*len_p = end - start;
	return 1;
}

void bitmap_zero(uint64_t *bm, size_t nbits)
{
	memset(bm, 0, bitmap_words(nbits) * sizeof(*bm));
}

void bitmap_set_range(uint64_t *bm, size_t start, size_t len)
{
	size_t end = start + len;

	while (start < end && start % BITS_PER_WORD) {
		bitmap_set(bm, start);
		start++;
	}
	while (end - start >= BITS_PER_WORD) {
		bm[start / BITS_PER_WORD] = ~UINT64_C(0);
		start += BITS_PER_WORD;
	}
	while (start < end) {
		bitmap_set(bm, start);
		start++;
	}
}

size_t bitmap_or(uint64_t *dst, const uint64_t *src, size_t nbits)
{
	size_t words = bitmap_words(nbits), added = 0;

	for (size_t i = 0; i < words; i++) {
		uint64_t s = src[i];

		if (i + 1 == words)
			s &= bitmap_last_word_mask(nbits);
		added += (size_t)__builtin_popcountll(s & ~dst[i]);
		dst[i] |= s;
	}
	return added;
}

void bitmap_andnot(uint64_t *dst, const uint64_t *src, size_t nbits)
{
	size_t words = bitmap_words(nbits);

	for (size_t i = 0; i < words; i++)
		dst[i] &= ~src[i];
}

int bitmap_empty(const uint64_t *bm, size_t nbits)
{
	size_t words = bitmap_words(nbits);

	if (!words)
		return 1;
	for (size_t i = 0; i + 1 < words; i++)
		if (bm[i])
			return 0;
	return !(bm[words - 1] & bitmap_last_word_mask(nbits));
}
