/* engine/dirty_hash.c - the dirty source for memory rmig can read but not track (an unmodified
 * QEMU's shared memory backend): start hashes every page with XXH3, each sync hashes again and
 * reports the pages whose hash changed, keeping the new hash as the next baseline.
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
#include <stdlib.h>

#include "engine/bitmap.h"
#include "engine/dirty_impl.h"
#include "engine/page_hash.h"

struct dirty_hash {
	struct dirty_source source;
	uint64_t *hashes; /* per page: the hash at start or at the last sync */
};

static int dirty_hash_start(struct dirty_source *source)
{
	struct dirty_hash *h = dirty_container_of(source, struct dirty_hash, source);
	const unsigned char *addr = source->config.addr;
	size_t page_size = source->config.page_size;

	for (size_t page = 0; page < source->npages; page++)
		h->hashes[page] = page_hash(addr + page * page_size, page_size);
	return 0;
}

static int dirty_hash_sync(struct dirty_source *source, uint64_t *bitmap)
{
	struct dirty_hash *h = dirty_container_of(source, struct dirty_hash, source);
	const unsigned char *addr = source->config.addr;
	size_t page_size = source->config.page_size, reported = 0;

	for (size_t page = 0; page < source->npages; page++) {
		uint64_t hash = page_hash(addr + page * page_size, page_size);

		if (hash != h->hashes[page]) {
			h->hashes[page] = hash;
			bitmap_set(bitmap, page);
			reported++;
		}
	}
	return reported > INT_MAX ? INT_MAX : (int)reported;
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
	h->hashes = calloc(h->source.npages, sizeof(*h->hashes));
	if (!h->hashes) {
		free(h);
		return -ENOMEM;
	}
	*source_p = &h->source;
	return 0;
}
