/* SPDX-License-Identifier: MIT */
/* engine/source.h - the source side's parts the methods (engine/methods/) are built from: the
 * page sender (sender.c), rounds and their barrier, measurements, the pause, the device state and
 * the resume (source_rounds.c), the stop decision (stop.c), the sampler that reads the dirty log
 * between batches (sampler.c). None of these calls a method: a method calls them, and source.c
 * calls the method through its ops. */
#ifndef RMIG_ENGINE_SOURCE_H
#define RMIG_ENGINE_SOURCE_H

#include <stdint.h>

#include "engine/policy.h"
#include "engine/session.h"

struct batch_pipeline;

/* auto: samples of the probe before it decides (engine/policy.c: policy_probe_enough). */
#define SOURCE_PROBE_SAMPLES POLICY_PROBE_SAMPLES

/* What auto's probe measured over the bulk round's samples. */
struct source_probe {
	uint32_t samples;
	uint64_t pages_sum;    /* pages found over the samples */
	uint64_t runs_sum;     /* contiguous runs those pages formed */
	uint64_t interval_sum; /* their intervals */
	/* per region: each sample's pages, SOURCE_PROBE_SAMPLES bitmaps end to end */
	uint64_t **taken;
	int decided;
};

struct source_sched;
/* Called by source_sched_hook() once the probe has enough samples: decide, and return what the
 * hook returns (1 ends the round, for a method that pauses now; 0 goes on; -errno). */
typedef int (*source_probe_done_fn)(struct rmig_session *s, struct source_sched *sched);

/* The sampler's state over a round (source_sched_hook()'s argument). */
struct source_sched {
	int hold;  /* predict: hold pages back */
	int force; /* sample now, due or not */
	int quiet; /* the method needs no samples (auto chose pre-copy or hybrid) */
	struct source_probe *probe;
	source_probe_done_fn probe_done; /* with probe */
};

/* ---- source.c ---- */

/* Run the source's side of the session on the calling thread: 0 once the destination resumed
 * the VM and took every page, -errno (a failure before the resume leaves the VM running here). */
int source_run(struct rmig_session *s);

/* ---- sender.c ---- */

/* Called by source_send_pages() before each batch is built: 0 to go on, 1 to end the round
 * early (the pages still marked stay marked), -errno to fail. */
typedef int (*source_batch_hook_fn)(struct rmig_session *s, void *arg);
/* Send every page marked in the regions' dirty bitmaps (clearing them) and wait until the
 * transport has taken all of it. hook may be NULL. Returns 0, 1 when the hook ended the round
 * early, or -errno. */
int source_send_pages(struct rmig_session *s, struct batch_pipeline *pipeline,
		      source_batch_hook_fn hook, void *hook_arg);
uint64_t source_count(const uint64_t *bm, const struct session_region *r);
/* What the pages not yet delivered will cost to send: marked for this round, pending, held
 * back, or to come after resume. */
uint64_t source_dirty_bytes(struct rmig_session *s);
/* Pages held back to the final round, all regions; their bytes in *bytes_p. */
uint64_t source_held_pages(struct rmig_session *s, uint64_t *bytes_p);
/* Mark every page of every region for the next round. */
void source_mark_all_regions(struct rmig_session *s);

/* ---- source_rounds.c ---- */

/* Stop tracking and free the trackers. At the switchover this comes after the verification,
 * which reuses the hashes a hash tracker's last sync holds. */
void source_trackers_stop(struct rmig_session *s);
/* With the VM paused the host's cores are free for the final pass over the dirty log. */
void source_trackers_pause_threads(struct rmig_session *s);
/* OR every page written since the previous sync (and any written after its send that a sample
 * left pending) into the dirty bitmaps; returns the number of pages now marked dirty. */
int64_t source_sync(struct rmig_session *s);
/* One round: its record, the ROUND message, its pages, the barrier. Returns 0, 1 when the hook
 * ended it early (the barrier still ran), or -errno. */
int source_round(struct rmig_session *s, struct batch_pipeline *pipeline, uint32_t round,
		 uint32_t paused, uint64_t dirty_pages, source_batch_hook_fn hook, void *arg);
/* The bulk round every method starts with: all RAM marked, sent as round 1 with hook between
 * batches, its record closed. Returns what source_round() returns. */
int source_bulk_round(struct rmig_session *s, struct batch_pipeline *pipeline,
		      source_batch_hook_fn hook, void *arg);
/* Wait until the destination has applied every commit of the round, and check that both
 * sides counted the same pages. */
int source_round_barrier(struct rmig_session *s, uint32_t round);
/* After a live round: the histogram, the round-end event, a cancel check. */
int source_round_done(struct rmig_session *s, uint32_t round);
/* Bandwidth and dirty rate of the round just ended. */
uint64_t source_measure(struct rmig_session *s, uint64_t dirty_pages, uint64_t since_sync_us,
			struct rmig_round_stats *last_p);
/* Ask the hypervisor to stop the vCPUs: the downtime starts. */
int source_pause(struct rmig_session *s);
/* Send the device state in chunks from the device_state_read callback. */
int source_device_state(struct rmig_session *s);
/* Tell the destination to resume the VM and wait for its answer (the point of no return). */
int source_resume_destination(struct rmig_session *s);
/* Grant (readable) or revoke the peer's remote read of every region: from the post-copy
 * resume to the end of the tail. */
int source_regions_readable(struct rmig_session *s, int readable);
/* auto decided and the destination's test pulls are over: take the pull target (the buffer
 * they read, source.c) from the peer's reach and free it. Idempotent; after the connection
 * closed it only frees. 0 or -errno. */
int source_pull_target_withdraw(struct rmig_session *s);

/* ---- stop.c: every stop rule of the live phase (the rules themselves: engine/policy.c) ---- */

/* What a live round left, for the stop decision. */
struct stop_round {
	uint32_t round;		/* rounds completed while the VM ran (1 = the bulk round) */
	uint64_t dirty_pages;	/* what the next round would send (predict: what it plans) */
	uint64_t since_sync_us; /* since the previous sync: the dirty rate's interval */
	/* prediction pre-copy: also stop once rounds no longer shrink (previous_pages is what
	 * the round before planned, UINT64_MAX when none) */
	int settle;
	uint64_t previous_pages;
};

/* After a live round: measure it (bandwidth, dirty rate), apply the stop policy, the throttle
 * and, with settle, prediction pre-copy's settling; the stats get the projection and the stop
 * reason. 1 to stop iterating, 0 to go on, -errno (the throttle callback failed). */
int stop_decide(struct rmig_session *s, const struct stop_round *round);
/* What the pause will cost besides the pages and the device state, microseconds: the final pass
 * over the dirty log and the verification's hashing, summed (auto's cost model; the stop rule
 * counts the hashing only where it outlasts the final round's pages, stop.c). */
uint64_t source_pause_cost_us(struct rmig_session *s);

/* ---- sampler.c ---- */

/* The bitmaps the scheduler works with (pending, held, fresh, postcopy), and a predictor per
 * region when with_predictor. */
int source_sched_alloc(struct rmig_session *s, int with_predictor);
/* 1 when the next sample of the dirty log is due. */
int source_sample_due(const struct rmig_session *s);
/* Every region's pages written since the previous sample, into r->src.fresh. Returns the count. */
int64_t source_sample(struct rmig_session *s);
/* How long until the final round, as far as holding a page back is concerned. */
uint64_t source_horizon_us(struct rmig_session *s);
/* Between batches of the pre-copy family's rounds (a source_batch_hook_fn over struct
 * source_sched): sample, feed the predictor, feed auto's probe. */
int source_sched_hook(struct rmig_session *s, void *arg);

#endif /* RMIG_ENGINE_SOURCE_H */
