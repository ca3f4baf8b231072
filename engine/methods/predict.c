/* SPDX-License-Identifier: MIT */
/* engine/methods/predict.c - prediction pre-copy: pre-copy rounds whose sampler
 * (engine/sampler.c) feeds a per-page write history (engine/predict.c); pages predicted to be
 * written again before the end are held back to the final round instead of being sent now. It
 * stops by the policy or once a round no longer shrinks (engine/stop.c), flushes the held pages
 * in one short round when they would lengthen the pause, and switches over as pre-copy. */
#include "engine/batch.h"
#include "engine/bitmap.h"
#include "engine/methods/method.h"
#include "engine/policy.h"
#include "engine/predict.h"
#include "engine/session.h"
#include "engine/source.h"

/* Held pages would cross with the VM paused. When they would add more than this to the
 * downtime, one last short live round sends them, and the pause carries only what that round
 * saw written again: a transmission more for each, a downtime no longer than pre-copy's. */
#define SOURCE_FLUSH_MIN_US 2000u

static int predict_flush(struct rmig_session *s, struct batch_pipeline *pipeline,
			 struct source_sched *sched, uint32_t round)
{
	uint64_t held = 0, bytes = 0, bandwidth;
	int ret;

	for (size_t i = 0; i < s->nregions; i++) {
		uint64_t n = source_count(s->regions[i].src.held, &s->regions[i]);

		held += n;
		bytes += n * s->regions[i].page_size;
	}
	pthread_mutex_lock(&s->lock);
	bandwidth = s->stats.bandwidth;
	pthread_mutex_unlock(&s->lock);
	if (!held || !bandwidth || bytes * 1000000u / bandwidth < SOURCE_FLUSH_MIN_US)
		return 0;
	for (size_t i = 0; i < s->nregions; i++) {
		struct session_region *r = &s->regions[i];

		bitmap_or(r->src.dirty, r->src.held, r->npages);
		predict_finish(r->src.predict, r->src.held);
	}
	sched->hold = 0;
	ret = source_round(s, pipeline, round + 1, 0, batch_dirty_pages(s->regions, s->nregions),
			   source_sched_hook, sched);
	session_round_end(s);
	if (ret < 0)
		return ret;
	return source_round_done(s, round + 1);
}

/* Prediction pre-copy from the end of `round` on: sample, plan (hold or send), decide. */
static int predict_after(struct rmig_session *s, struct batch_pipeline *pipeline,
			 struct source_sched *sched, uint32_t round, uint64_t last_sync_us)
{
	uint64_t previous = UINT64_MAX;
	int ret;

	sched->hold = 1;
	for (;;) {
		uint64_t planned = 0, horizon, now;
		int64_t found;

		ret = source_round_done(s, round);
		if (ret)
			return ret;
		found = source_sample(s);
		if (found < 0)
			return (int)found;
		now = s->src.last_sample_us;
		horizon = source_horizon_us(s);
		for (size_t i = 0; i < s->nregions; i++) {
			struct session_region *r = &s->regions[i];

			predict_sample(r->src.predict, now, r->src.fresh, r->src.dirty,
				       r->src.pending, r->src.held, horizon);
		}
		/* The next round's length, and so the horizon, follows from what it will send. */
		horizon = source_horizon_us(s);
		for (size_t i = 0; i < s->nregions; i++) {
			struct session_region *r = &s->regions[i];

			planned += predict_plan_round(r->src.predict, r->src.pending, r->src.held,
						      r->src.dirty, horizon);
		}
		/* The policy's stop, and predict's own once rounds no longer shrink. */
		ret = stop_decide(s, &(struct stop_round){.round = round,
							  .dirty_pages = planned,
							  .since_sync_us = now - last_sync_us,
							  .settle = 1,
							  .previous_pages = previous});
		last_sync_us = now;
		if (ret < 0)
			return ret;
		previous = planned;
		{
			struct predict_counters c = {0}, sum = {0};

			for (size_t i = 0; i < s->nregions; i++) {
				predict_counters_get(s->regions[i].src.predict, &c);
				sum.hold_hits += c.hold_hits;
				sum.hold_misses += c.hold_misses;
				sum.send_misses += c.send_misses;
			}
			pthread_mutex_lock(&s->lock);
			s->stats.predict_hits = sum.hold_hits;
			s->stats.predict_hold_misses = sum.hold_misses;
			s->stats.predict_send_misses = sum.send_misses;
			s->stats.predict_threshold = c.threshold;
			pthread_mutex_unlock(&s->lock);
		}
		session_progress(s, RMIG_EVENT_SYNC);
		if (ret)
			return predict_flush(s, pipeline, sched, round);
		round++;
		ret = source_round(s, pipeline, round, 0, planned, source_sched_hook, sched);
		session_round_end(s);
		if (ret < 0)
			return ret;
	}
}

static int predict_live(struct rmig_session *s, struct batch_pipeline *pipeline)
{
	struct source_sched sched = {.hold = 1};
	uint64_t start = session_now_us();
	int ret;

	ret = source_bulk_round(s, pipeline, source_sched_hook, &sched);
	if (ret < 0)
		return ret;
	return predict_after(s, pipeline, &sched, 1, start);
}

static int predict_after_bulk(struct rmig_session *s, struct batch_pipeline *pipeline,
			      struct source_sched *sched, uint64_t start_us)
{
	return predict_after(s, pipeline, sched, 1, start_us);
}

const struct method_ops method_predict_ops = {
	.method = RMIG_METHOD_PREDICT,
	.postcopy = 0,
	.needs = METHOD_NEEDS_TRACKING | METHOD_NEEDS_SCHED | METHOD_NEEDS_PREDICTOR,
	.live = predict_live,
	.after_bulk = predict_after_bulk,
	.switchover = method_precopy_switchover,
};
