/* SPDX-License-Identifier: MIT */
/* engine/methods/method.h - a migration method's source side as an ops table, the pattern of
 * transport_ops and dirty_source_ops: one `const struct method_ops` per method file
 * (precopy.c, predict.c, tsmc.c, postcopy.c, hybrid.c, auto.c), looked up by enum rmig_method.
 * source.c runs the handshake, calls live(), pauses the VM and calls the switchover of the
 * method that ran (auto's choice for auto). What each method guarantees: docs/methods.md. */
#ifndef RMIG_ENGINE_METHODS_METHOD_H
#define RMIG_ENGINE_METHODS_METHOD_H

#include <stdint.h>

struct rmig_session;
struct batch_pipeline;
struct source_sched;

/* What a method's live phase needs allocated before it starts (method_ops.needs). */
#define METHOD_NEEDS_SCHED 0x1u	    /* the scheduler's bitmaps: pending, held, fresh, postcopy */
#define METHOD_NEEDS_PREDICTOR 0x2u /* a per-page write history per region */
#define METHOD_NEEDS_TRACKING 0x4u  /* dirty tracking from the start */

struct method_ops {
	uint32_t method; /* enum rmig_method */
	/* 1 when the destination resumes before all RAM has arrived (TSMC, post-copy, hybrid):
	 * it must be able to fill RAM after resume (userfaultfd) */
	int postcopy;
	unsigned needs; /* METHOD_NEEDS_* */
	/* Source, VM running: from the first round to the stop decision. 0 or -errno. */
	int (*live)(struct rmig_session *s, struct batch_pipeline *pipeline);
	/* Source, VM running, after a bulk round that sent all RAM once (auto's probe round,
	 * started at start_us, with the sampler's state in sched): the rest of the live phase. */
	int (*after_bulk)(struct rmig_session *s, struct batch_pipeline *pipeline,
			  struct source_sched *sched, uint64_t start_us);
	/* Source, VM paused: everything up to the destination's resume, and for the post-copy
	 * family the tail after it. NULL for auto, which switches over as the method it chose. */
	int (*switchover)(struct rmig_session *s, struct batch_pipeline *pipeline);
};

extern const struct method_ops method_precopy_ops;
extern const struct method_ops method_predict_ops;
extern const struct method_ops method_tsmc_ops;
extern const struct method_ops method_postcopy_ops;
extern const struct method_ops method_hybrid_ops;
extern const struct method_ops method_auto_ops;

/* The ops of enum rmig_method `method`; pre-copy's for a value no method has. */
const struct method_ops *method_ops_find(uint32_t method);

/* The two switchovers the methods share (precopy.c, postcopy.c). */
int method_precopy_switchover(struct rmig_session *s, struct batch_pipeline *pipeline);
int method_postcopy_switchover(struct rmig_session *s, struct batch_pipeline *pipeline);
/* The post-copy family after a bulk round: measure it, pause next (postcopy.c). */
int method_postcopy_after_bulk(struct rmig_session *s, struct batch_pipeline *pipeline,
			       struct source_sched *sched, uint64_t start_us);
/* The pre-copy family's rounds after the bulk round `round` (precopy.c, predict.c). */
int method_precopy_after(struct rmig_session *s, struct batch_pipeline *pipeline, uint32_t round,
			 uint64_t last_sync_us);

#endif /* RMIG_ENGINE_METHODS_METHOD_H */
