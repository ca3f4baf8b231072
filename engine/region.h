/* SPDX-License-Identifier: MIT */
/* engine/region.h - one guest RAM region as the engine keeps it: where it is, its page size, and
 * the per-page state each role keeps of it (r->src on a source, r->dst on a destination). The
 * batch builder and the methods read regions without the rest of the session (session.h). */
#ifndef RMIG_ENGINE_REGION_H
#define RMIG_ENGINE_REGION_H

#include <stddef.h>
#include <stdint.h>

#include "engine/holes.h"

struct dirty_source;
struct predict;

/* What only a source keeps of a region (r->src). */
struct session_region_source {
	/* pages to send in the current round; after the verification, mismatches */
	uint64_t *dirty;
	/* how many times each page crossed (saturating); later methods read it */
	uint8_t *send_count;
	struct dirty_source *tracker;
	/* the tmpfs file behind the region, which says which pages were never written
	 * (engine/holes.h); NULL when the region is not one */
	struct holes *holes;
	/* the batch builder's cached answer about holes: good until this region's next dirty
	 * sync, which resets it (holes.h) */
	struct holes_cursor holes_cursor;
	/* enum rmig_dirty_source tracking this region once started (kept after the tracker
	 * goes), RMIG_DIRTY_AUTO before */
	uint32_t dirty_kind;
	/* post-copy tail: batches name the destination's staging region staging_id instead of
	 * id */
	int to_staging;
	uint32_t staging_id;
	/* predict and TSMC: pages written since they were sent, not yet planned */
	uint64_t *pending;
	uint64_t *held;	 /* predict: held back to the final round */
	uint64_t *fresh; /* one sample of the dirty log (scratch) */
	struct predict *predict;
	/* RMIG_VERIFY_SAMPLE: the pages the switchover compares (verify_source_plan()), NULL
	 * before */
	uint64_t *checked;
};

/* What only a destination keeps of a region (r->dst). */
struct session_region_dest {
	/* pages whose data (or zero marker) landed at least once */
	uint64_t *arrived;
	/* per page, the hash of what its last batch left there, taken when that batch
	 * committed; valid where `hashed` is set. Before the resume only rmig writes the guest
	 * RAM here, and each write is a batch whose commit rehashes its pages, so these stay the
	 * pages' current hashes and verification need not reread all RAM. */
	uint64_t *hashes;
	uint64_t *hashed;
	/* how a zero run is written where none of its pages arrived before: 0 memset, else the
	 * madvise() advice that leaves the pages reading zero without allocating them
	 * (MADV_REMOVE for shared memory, MADV_DONTNEED for private anonymous memory); see
	 * dest_zero_run() */
	int zero_advice;
	uint64_t zero_hash; /* page_hash_zero() of a page of this region */
	/* post-copy family: the staging area of this region, mapped and registered before the
	 * pause (postcopy_dest_prepare()) and taken over when post-copy is armed */
	void *staging;
	uint32_t staging_id;
	int staging_registered;
	/* method postcopy: the source lost its write access and the pages were discarded before
	 * the pause, as every page comes after the resume */
	int revoked;
};

struct session_region {
	uint32_t id;
	void *addr;
	size_t length;
	size_t page_size;
	unsigned page_shift;
	size_t npages;
	/* source: pages to deliver after resume, not yet pushed; destination: pages announced
	 * to come after resume */
	uint64_t *postcopy;
	struct session_region_source src; /* role RMIG_ROLE_SOURCE only */
	struct session_region_dest dst;	  /* role RMIG_ROLE_DESTINATION only */
};

#endif /* RMIG_ENGINE_REGION_H */
