/* engine/page_hash.c - XXH3 page hashes and the all-zero check.
 * Both read memory another thread may be writing; callers treat a result as a snapshot of
 * some moment during the call, never as a consistent view of the page. */
#include <string.h>

#include <xxhash.h>

#include "engine/page_hash.h"

uint64_t page_hash(const void *page, size_t len)
{
	return XXH3_64bits(page, len);
}

/* OR-ing 64 bytes before branching lets the compiler vectorize and keeps one branch per cache
 * line; memcpy loads avoid alignment assumptions and compile to plain loads. */
int page_is_zero(const void *page, size_t len)
{
	const unsigned char *p = page;
	size_t i = 0;

	for (; i + 64 <= len; i += 64) {
		uint64_t w[8], acc = 0;

		memcpy(w, p + i, sizeof(w));
		for (int k = 0; k < 8; k++)
			acc |= w[k];
		if (acc)
			return 0;
	}
	for (; i < len; i++)
		if (p[i])
			return 0;
	return 1;
}
