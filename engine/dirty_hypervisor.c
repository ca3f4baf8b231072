/* SPDX-License-Identifier: MIT */
/* engine/dirty_hypervisor.c - the dirty source a hypervisor feeds from KVM's dirty log or ring
 * or Xen's log-dirty: start makes the first call and drops what it reports (the log's start),
 * each sync asks the callback for a fresh bitmap and ORs it in. The
 * callback writes into a bitmap owned here, so bits it sets past npages never reach the
 * engine. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "engine/bitmap.h"
#include "engine/dirty_impl.h"
#include "transport/log.h"

struct dirty_hypervisor {
	struct dirty_source source;
	uint64_t *scratch;
};

/* Tracking starts with one call whose report is dropped: a hypervisor's log may hold writes
 * from before the migration (since boot, or since its own last harvest), and those pages are
 * all sent by the bulk round anyway. Every later call then reports exactly the writes since
 * the call before, which is what the rounds and auto's dirty rate need. */
static int dirty_hypervisor_start(struct dirty_source *source)
{
	struct dirty_hypervisor *h = dirty_container_of(source, struct dirty_hypervisor, source);
	const struct dirty_source_config *config = &source->config;
	int ret;

	bitmap_zero(h->scratch, source->npages);
	ret = config->hypervisor_sync(config->hypervisor_opaque, config->region_id, h->scratch,
				      source->npages);
	if (ret < 0)
		rmig_log_info("dirty: region %u: the hypervisor's first dirty_sync failed: %s",
			      config->region_id, strerror(-ret));
	return ret < 0 ? ret : 0;
}

static int dirty_hypervisor_sync(struct dirty_source *source, uint64_t *bitmap)
{
	struct dirty_hypervisor *h = dirty_container_of(source, struct dirty_hypervisor, source);
	const struct dirty_source_config *config = &source->config;
	size_t reported;
	int ret;

	bitmap_zero(h->scratch, source->npages);
	ret = config->hypervisor_sync(config->hypervisor_opaque, config->region_id, h->scratch,
				      source->npages);
	if (ret < 0) {
		rmig_log_error("dirty: region %u: the hypervisor's dirty_sync failed: %s",
			       config->region_id, strerror(-ret));
		return ret;
	}
	reported = bitmap_count(h->scratch, source->npages);
	bitmap_or(bitmap, h->scratch, source->npages);
	return reported > INT_MAX ? INT_MAX : (int)reported;
}

static int dirty_hypervisor_stop(struct dirty_source *source)
{
	(void)source;
	return 0;
}

static void dirty_hypervisor_destroy(struct dirty_source *source)
{
	struct dirty_hypervisor *h = dirty_container_of(source, struct dirty_hypervisor, source);

	free(h->scratch);
	free(h);
}

static const struct dirty_source_ops dirty_hypervisor_ops = {
	.start = dirty_hypervisor_start,
	.sync = dirty_hypervisor_sync,
	.stop = dirty_hypervisor_stop,
	.destroy = dirty_hypervisor_destroy,
};

int dirty_hypervisor_create(const struct dirty_source_config *config,
			    struct dirty_source **source_p)
{
	struct dirty_hypervisor *h = calloc(1, sizeof(*h));

	if (!h)
		return -ENOMEM;
	dirty_source_init(&h->source, &dirty_hypervisor_ops, DIRTY_KIND_HYPERVISOR, config);
	h->scratch = calloc(bitmap_words(h->source.npages), sizeof(uint64_t));
	if (!h->scratch) {
		free(h);
		return -ENOMEM;
	}
	*source_p = &h->source;
	return 0;
}
