/* SPDX-License-Identifier: MIT */
/* engine/dirty_hash.c - the dirty source for memory rmig can read but not track (an unmodified
 * QEMU's shared memory backend): start hashes every page with XXH3, each sync hashes again and
 * reports the pages whose hash changed, keeping the new hash as the next baseline. Pages in
 * holes of the tmpfs file behind the memory (config.holes) hash as zero pages without being
 * read: never-written RAM costs a lseek, not a read (and a page allocated to read it).
 *
 * Hash races. Another process writes these pages while they are hashed and while the engine
 * reads them to send, without any ordering with us, so:
 * - a page hashed half-way through a write gets a hash of bytes that never existed as a whole;
 *   it differs from the baseline, so the page is reported and read again after this sync; the
 *   rest of the write changes the page away from that torn hash, so the next sync reports it
 *   again: a torn read costs a resend, never a lost page;
 * - the one case a hash cannot see is a page that changes between our hashing and the engine's
 *   read (A hashed, B sent) and later returns to exactly the hashed bytes (A again): A matches
 *   the baseline and is not reported, while the destination holds B. No source-side check can
 *   see this (with RDMA the NIC reads the page, so the source never knows which bytes left);
 *   this is why a migration tracked by hashes ends, with the VM paused, by comparing these
 *   source hashes with hashes the destination computes over what landed and resending the
 *   pages that differ (engine/verify.c), so what lands is exactly what the source holds. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>

#include "engine/bitmap.h"
#include "engine/dirty_impl.h"
#include "engine/holes.h"
#include "engine/page_hash.h"

/* Below this many pages a sync stays on one thread: starting threads would cost more than
 * they save. */
#define DIRTY_HASH_PARALLEL_MIN_PAGES 8192u

struct dirty_hash {
	struct dirty_source source;
	uint64_t *hashes;   /* per page: the hash at start or at the last sync */
	uint64_t zero_hash; /* of a zero page: what a page in a hole of the file hashes to */
	unsigned threads;   /* a sync may use this many */
};

/* One thread's share of a sync: pages [first, end), whole bitmap words, so that no two
 * threads write the same word of the caller's bitmap. */
struct dirty_hash_slice {
	struct dirty_hash *h;
	uint64_t *bitmap; /* NULL at start: only the baseline */
	size_t first, end;
	size_t reported;
	pthread_t thread;
	int started;
};

static void dirty_hash_slice_run(struct dirty_hash_slice *slice)
{
	const unsigned char *addr = slice->h->source.config.addr;
	size_t page_size = slice->h->source.config.page_size;
	uint64_t *hashes = slice->h->hashes;
	const struct holes *holes = slice->h->source.config.holes;
	struct holes_cursor cursor;

	holes_cursor_init(&cursor);
	for (size_t page = slice->first; page < slice->end; page++) {
		uint64_t hash = holes_page(holes, &cursor, page)
					? slice->h->zero_hash
					: page_hash(addr + page * page_size, page_size);

		if (!slice->bitmap) {
			hashes[page] = hash;
		} else if (hash != hashes[page]) {
			hashes[page] = hash;
			bitmap_set(slice->bitmap, page);
			slice->reported++;
		}
	}
}

static void *dirty_hash_slice_main(void *arg)
{
	dirty_hash_slice_run(arg);
	return NULL;
}

/* Hash every page (into the baseline, and into bitmap when given) on up to h->threads
 * threads; a thread that cannot start leaves its slice to this one. Returns pages reported. */
static size_t dirty_hash_pass(struct dirty_hash *h, uint64_t *bitmap)
{
	struct dirty_hash_slice slices[DIRTY_HASH_THREADS_MAX];
	size_t npages = h->source.npages, per, reported = 0;
	unsigned n = h->threads;

	if (n < 1 || npages < DIRTY_HASH_PARALLEL_MIN_PAGES)
		n = 1;
	per = (npages / n + 63u) & ~(size_t)63u;
	for (unsigned i = 0; i < n; i++) {
		size_t first = (size_t)i * per;

		slices[i] = (struct dirty_hash_slice){
			.h = h,
			.bitmap = bitmap,
			.first = first < npages ? first : npages,
			.end = first + per < npages && i + 1 < n ? first + per : npages,
		};
	}
	for (unsigned i = 1; i < n; i++)
		slices[i].started = pthread_create(&slices[i].thread, NULL, dirty_hash_slice_main,
						   &slices[i]) == 0;
	dirty_hash_slice_run(&slices[0]);
	for (unsigned i = 1; i < n; i++) {
		if (slices[i].started)
			pthread_join(slices[i].thread, NULL);
		else
			dirty_hash_slice_run(&slices[i]);
	}
	for (unsigned i = 0; i < n; i++)
		reported += slices[i].reported;
	return reported;
}

static int dirty_hash_start(struct dirty_source *source)
{
	dirty_hash_pass(dirty_container_of(source, struct dirty_hash, source), NULL);
	return 0;
}

static int dirty_hash_sync(struct dirty_source *source, uint64_t *bitmap)
{
	size_t reported =
		dirty_hash_pass(dirty_container_of(source, struct dirty_hash, source), bitmap);

	return reported > INT_MAX ? INT_MAX : (int)reported;
}

const uint64_t *dirty_hash_page_hashes(const struct dirty_source *source)
{
	return dirty_container_of(source, struct dirty_hash, source)->hashes;
}

void dirty_hash_set_threads(struct dirty_source *source, unsigned threads)
{
	struct dirty_hash *h = dirty_container_of(source, struct dirty_hash, source);

	if (threads < 1)
		threads = 1;
	h->threads = threads > DIRTY_HASH_THREADS_MAX ? DIRTY_HASH_THREADS_MAX : threads;
}

static int dirty_hash_stop(struct dirty_source *source)
{
	(void)source;
	return 0;
}

static void dirty_hash_destroy(struct dirty_source *source)
{
	struct dirty_hash *h = dirty_container_of(source, struct dirty_hash, source);

	free(h->hashes);
	free(h);
}

static const struct dirty_source_ops dirty_hash_ops = {
	.start = dirty_hash_start,
	.sync = dirty_hash_sync,
	.stop = dirty_hash_stop,
	.destroy = dirty_hash_destroy,
};

int dirty_hash_create(const struct dirty_source_config *config, struct dirty_source **source_p)
{
	struct dirty_hash *h = calloc(1, sizeof(*h));

	if (!h)
		return -ENOMEM;
	dirty_source_init(&h->source, &dirty_hash_ops, DIRTY_KIND_HASH, config);
	h->threads = 1;
	h->zero_hash = page_hash_zero(h->source.config.page_size);
	h->hashes = calloc(h->source.npages, sizeof(*h->hashes));
	if (!h->hashes) {
		free(h);
		return -ENOMEM;
	}
	*source_p = &h->source;
	return 0;
}
