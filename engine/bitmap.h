/* SPDX-License-Identifier: MIT */
/* engine/bitmap.h - page bitmaps: one bit per page, 64-bit words, bit i in word i / 64.
 * Bits past nbits in the last word are kept zero by every function here, so words can be
 * compared and OR-ed whole. */
#ifndef RMIG_ENGINE_BITMAP_H
#define RMIG_ENGINE_BITMAP_H

#include <stddef.h>
#include <stdint.h>

/* Words needed for nbits bits. */
size_t bitmap_words(size_t nbits);
void bitmap_set(uint64_t *bm, size_t bit);
int bitmap_test(const uint64_t *bm, size_t bit);
void bitmap_clear(uint64_t *bm, size_t bit);
/* Set bits among the first nbits. */
size_t bitmap_count(const uint64_t *bm, size_t nbits);

/* Next run of set bits starting at or after from: returns 1 and sets *start_p, *len_p (the run
 * ends at the first clear bit or at nbits); returns 0 when no set bit remains. */
int dirty_bitmap_next_run(const uint64_t *bm, size_t nbits, size_t from, size_t *start_p,
			  size_t *len_p);

/* Clear the first nbits bits. */
void bitmap_zero(uint64_t *bm, size_t nbits);
/* Set bits [start, start + len). */
void bitmap_set_range(uint64_t *bm, size_t start, size_t len);
/* dst |= src over nbits bits; returns the number of bits of src that were not already in dst. */
size_t bitmap_or(uint64_t *dst, const uint64_t *src, size_t nbits);
/* dst &= ~src over nbits bits. */
void bitmap_andnot(uint64_t *dst, const uint64_t *src, size_t nbits);
/* 1 if no bit among the first nbits is set. */
int bitmap_empty(const uint64_t *bm, size_t nbits);

/* The page number of the lowest set bit of `bits`, the value of word `word` (bits != 0). */
static inline size_t bitmap_word_first(size_t word, uint64_t bits)
{
	return word * 64u + (size_t)__builtin_ctzll(bits);
}

/* Set bits in increasing order, a word at a time; see bitmap_for_each(). */
struct bitmap_iter {
	const uint64_t *bm;
	size_t words;
	size_t word;
	uint64_t bits; /* what is left to visit of bm[word] */
};

static inline struct bitmap_iter bitmap_iter_start(const uint64_t *bm, size_t nbits)
{
	size_t words = bitmap_words(nbits);

	return (struct bitmap_iter){.bm = bm, .words = words, .bits = words ? bm[0] : 0};
}

static inline int bitmap_iter_next(struct bitmap_iter *it, size_t *bit_p)
{
	while (!it->bits) {
		if (++it->word >= it->words)
			return 0;
		it->bits = it->bm[it->word];
	}
	*bit_p = bitmap_word_first(it->word, it->bits);
	it->bits &= it->bits - 1;
	return 1;
}

/* bitmap_for_each() - run the statement that follows once per set bit of bm below nbits, with
 * the size_t `bit` set to it, in increasing order. Each word is read once, when the walk
 * reaches it: the body may change bm, but a change to the word being walked (or an earlier
 * one) is not seen, and one to a later word is. break and continue work as in any loop. */
#define bitmap_for_each(bit, bm, nbits)                                          \
	for (struct bitmap_iter bitmap_iter_ = bitmap_iter_start((bm), (nbits)); \
	     bitmap_iter_next(&bitmap_iter_, &(bit));)

#endif /* RMIG_ENGINE_BITMAP_H */
