/* SPDX-License-Identifier: MIT */
/* engine/batch.h - batches of page runs built from dirty bitmaps (contiguous dirty pages
 * coalesced, zero pages as data-less markers) and the pipeline that posts them on a sender
 * thread, so the next batch is built while the previous one is on the wire. */
#ifndef RMIG_ENGINE_BATCH_H
#define RMIG_ENGINE_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "engine/region.h"
#include "transport/transport.h"

/* A run carries at most this much data; longer dirty stretches become several runs. */
#define BATCH_RUN_MAX_BYTES (4ull << 20)
/* A batch carries at most this much data (and TRANSPORT_BATCH_MAX_RUNS runs). */
#define BATCH_MAX_BYTES (16ull << 20)
/* Batches built ahead of the one on the wire. */
#define BATCH_PIPELINE_DEPTH 4u

struct batch {
	uint64_t id;
	size_t nruns;
	uint64_t pages;
	uint64_t zero_pages;
	uint64_t data_bytes;
	struct transport_run runs[TRANSPORT_BATCH_MAX_RUNS];
};

/* Where batch_build continues: region index and page within it. */
struct batch_cursor {
	size_t region;
	size_t page;
};

/* Move pages whose bit is set in the regions' dirty bitmaps, from cursor on, into b: clears
 * those bits and counts each page in its region's send_count (saturating at 255). Pages that
 * read as all zeroes become TRANSPORT_RUN_ZERO runs. Returns 1 when b holds runs, 0 when every
 * bitmap is exhausted. */
int batch_build(struct session_region *regions, size_t nregions, struct batch_cursor *cursor,
		struct batch *b);
/* batch_build() with at most max_bytes of data (at least one page) in b. */
int batch_build_limited(struct session_region *regions, size_t nregions,
			struct batch_cursor *cursor, struct batch *b, uint64_t max_bytes);

/* Number of set bits over the regions' dirty bitmaps. */
uint64_t batch_dirty_pages(const struct session_region *regions, size_t nregions);

struct batch_pipeline;

/* bandwidth_limit: bytes per second, 0 for no cap. */
int batch_pipeline_create(struct transport_conn *conn, uint64_t bandwidth_limit,
			  struct batch_pipeline **pipeline_p);
/* Stop the sender thread (after abandoning whatever is queued) and free. */
void batch_pipeline_destroy(struct batch_pipeline *pipeline);
/* A free batch to build into; blocks while all are queued. -errno once posting failed. */
int batch_pipeline_acquire(struct batch_pipeline *pipeline, struct batch **batch_p);
/* Queue b (from acquire) for posting; it gets the next batch id. */
void batch_pipeline_submit(struct batch_pipeline *pipeline, struct batch *b);
/* Give back a batch from acquire unused. */
void batch_pipeline_release(struct batch_pipeline *pipeline, struct batch *b);
/* Wait until everything queued is posted and the transport flushed. 0 or the first error. */
int batch_pipeline_drain(struct batch_pipeline *pipeline, int timeout_ms);
/* Drop what is queued and not yet posted. */
void batch_pipeline_abandon(struct batch_pipeline *pipeline);
/* Post-copy recovery: drop what is queued, forget the old connection's error, post on conn from
 * now on. */
void batch_pipeline_rebind(struct batch_pipeline *pipeline, struct transport_conn *conn);
/* Restart the bandwidth pacing clock (at the start of a round). */
void batch_pipeline_pace_reset(struct batch_pipeline *pipeline);

#endif /* RMIG_ENGINE_BATCH_H */
