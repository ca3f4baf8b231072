/* SPDX-License-Identifier: MIT */
/* engine/methods/tsmc.c - three-stage memory copy: stage 1 sends all RAM once, stage 2 sends what
 * stage 1 left dirty once (a page written again before its turn, or likely to be, is left to
 * stage 3), stage 3 is the post-copy switchover: pause, device state, resume at the destination,
 * deliver the rest. No page crosses more than twice. */
#include "engine/batch.h"
#include "engine/bitmap.h"
#include "engine/methods/method.h"
#include "engine/predict.h"
#include "engine/session.h"
#include "engine/source.h"

/* TSMC stage 2: a page written again before its turn is left to stage 3 (so it crosses twice,
 * not three times); every page written during the stage is delivered after resume. */
static int tsmc_hook(struct rmig_session *s, void *arg)
{
	struct source_sched *sched = arg;
	int64_t found;

	/* The first batch waits for a sample: what was written while stage 2 was planned is
	 * left out of it. */
	if (!sched->force && !source_sample_due(s))
		return 0;
	sched->force = 0;
	found = source_sample(s);
	if (found < 0)
		return (int)found;
	for (size_t i = 0; i < s->nregions; i++) {
		struct session_region *r = &s->regions[i];
		size_t words = bitmap_words(r->npages);

		predict_record(r->src.predict, s->src.last_sample_us, r->src.fresh);
		for (size_t w = 0; w < words; w++) {
			r->src.dirty[w] &= ~r->src.fresh[w];
			r->postcopy[w] |= r->src.fresh[w];
		}
	}
	return 0;
}

/* TSMC after stage 1 (round 1): stage 2 sends what stage 1 left dirty, once, except pages the
 * history shows written more than once (left to stage 3 with those written meanwhile). */
static int tsmc_after(struct rmig_session *s, struct batch_pipeline *pipeline,
		      uint64_t last_sync_us)
{
	uint64_t planned = 0, now, deferred = 0;
	int64_t found;
	int ret;

	ret = source_round_done(s, 1);
	if (ret)
		return ret;
	found = source_sample(s);
	if (found < 0)
		return (int)found;
	now = s->src.last_sample_us;
	for (size_t i = 0; i < s->nregions; i++) {
		struct session_region *r = &s->regions[i];

		predict_sample(r->src.predict, now, r->src.fresh, r->src.dirty, r->src.pending,
			       r->src.held, 0);
	}
	/* A page written in two samples or more is likely to be written again before the pause:
	 * sending it in stage 2 would risk a third crossing, so it waits for stage 3. */
	for (size_t i = 0; i < s->nregions; i++) {
		struct session_region *r = &s->regions[i];
		size_t page;

		bitmap_for_each(page, r->src.pending, r->npages)
		{
			if (predict_score(r->src.predict, page) >= PREDICT_THRESHOLD_MIN) {
				bitmap_set(r->postcopy, page);
				deferred++;
			} else {
				bitmap_set(r->src.dirty, page);
				planned++;
			}
		}
		bitmap_zero(r->src.pending, r->npages);
	}
	source_measure(s, planned + deferred, now - last_sync_us, NULL);
	pthread_mutex_lock(&s->lock);
	s->stats.remaining_bytes = source_dirty_bytes(s);
	pthread_mutex_unlock(&s->lock);
	session_progress(s, RMIG_EVENT_SYNC);
	ret = source_round(s, pipeline, 2, 0, planned, tsmc_hook,
			   &(struct source_sched){.force = 1});
	session_round_end(s);
	if (ret < 0)
		return ret;
	return source_round_done(s, 2);
}

static int tsmc_live(struct rmig_session *s, struct batch_pipeline *pipeline)
{
	struct source_sched sched = {.hold = 0};
	uint64_t start = session_now_us();
	int ret;

	ret = source_bulk_round(s, pipeline, source_sched_hook, &sched);
	if (ret < 0)
		return ret;
	return tsmc_after(s, pipeline, start);
}

static int tsmc_after_bulk(struct rmig_session *s, struct batch_pipeline *pipeline,
			   struct source_sched *sched, uint64_t start_us)
{
	(void)sched;
	return tsmc_after(s, pipeline, start_us);
}

const struct method_ops method_tsmc_ops = {
	.method = RMIG_METHOD_TSMC,
	.postcopy = 1,
	.needs = METHOD_NEEDS_TRACKING | METHOD_NEEDS_SCHED | METHOD_NEEDS_PREDICTOR,
	.live = tsmc_live,
	.after_bulk = tsmc_after_bulk,
	.switchover = method_postcopy_switchover,
};
