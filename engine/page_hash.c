/* SPDX-License-Identifier: MIT */
/* engine/page_hash.c - XXH3 page hashes and the all-zero check.
 * Both read memory another thread may be writing; callers treat a result as a snapshot of
 * some moment during the call, never as a consistent view of the page. */
#include <string.h>

#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>
#ifdef RMIG_HAVE_XXH3_DISPATCH
#include <pthread.h>
#include <xxh_x86dispatch.h>
#endif

#include "engine/page_hash.h"

#ifdef RMIG_HAVE_XXH3_DISPATCH
static pthread_once_t page_hash_once = PTHREAD_ONCE_INIT;

/* The dispatcher picks its code on its first call and keeps the choice in a global: make that
 * call once, before threads hash at the same time. */
static void page_hash_dispatch_init(void)
{
	static const unsigned char probe[64];

	(void)XXH3_64bits_dispatch(probe, sizeof(probe));
}
#endif

uint64_t page_hash(const void *page, size_t len)
{
#ifdef RMIG_HAVE_XXH3_DISPATCH
	/* The same value as XXH3_64bits(), with the widest vector unit this CPU has. */
	pthread_once(&page_hash_once, page_hash_dispatch_init);
	return XXH3_64bits_dispatch(page, len);
#else
	return XXH3_64bits(page, len);
#endif
}

uint64_t page_hash_zero(size_t len)
{
	static const unsigned char zero[4096];
	XXH3_state_t state;

	if (len <= sizeof(zero))
		return page_hash(zero, len);
	XXH3_64bits_reset(&state);
	for (size_t done = 0; done < len; done += sizeof(zero))
		XXH3_64bits_update(&state, zero,
				   len - done < sizeof(zero) ? len - done : sizeof(zero));
	return XXH3_64bits_digest(&state);
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
