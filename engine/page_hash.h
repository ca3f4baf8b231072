/* SPDX-License-Identifier: MIT */
/* engine/page_hash.h - page content checks shared by the hash dirty source, zero-page
 * detection in batches and end-of-migration verification. */
#ifndef RMIG_ENGINE_PAGE_HASH_H
#define RMIG_ENGINE_PAGE_HASH_H

#include <stddef.h>
#include <stdint.h>

/* XXH3_64bits of len bytes (seed 0): the same value on source and destination. */
uint64_t page_hash(const void *page, size_t len);
/* page_hash() of len zero bytes, without a page to read (the destination's discarded zero
 * pages stay unallocated): XXH3 streamed over a small zero buffer gives the same value. */
uint64_t page_hash_zero(size_t len);
/* 1 if all len bytes are zero, else 0. Any len; fastest when page is 8-byte aligned. */
int page_is_zero(const void *page, size_t len);

#endif /* RMIG_ENGINE_PAGE_HASH_H */
