/* SPDX-License-Identifier: MIT */
/* engine/sampler.c - the source's scheduler between batches: samples of the dirty log taken while
 * a round's pages go out, no more often than a sample's own cost allows; each sample feeds the
 * per-page write history (engine/predict.c), which holds pages back for predict, and, while auto
 * probes, its measurements. The decision a probe leads to is the caller's (probe_done). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine/bitmap.h"
#include "engine/dirty.h"
#include "engine/policy.h"
#include "engine/predict.h"
#include "engine/session.h"
#include "engine/source.h"

/* Samples come at least this far apart, and at least 8x as far apart as one sample takes (a
 * content-hash tracker rereads all RAM per sample). */
#define SOURCE_SAMPLE_MIN_US 20000u

int source_sched_alloc(struct rmig_session *s, int with_predictor)
{
	for (size_t i = 0; i < s->nregions; i++) {
		struct session_region *r = &s->regions[i];
		size_t words = bitmap_words(r->npages);
		int ret;

		if (!r->src.pending)
			r->src.pending = calloc(words, sizeof(uint64_t));
		if (!r->src.held)
			r->src.held = calloc(words, sizeof(uint64_t));
		if (!r->src.fresh)
			r->src.fresh = calloc(words, sizeof(uint64_t));
		if (!r->postcopy)
			r->postcopy = calloc(words, sizeof(uint64_t));
		if (!r->src.pending || !r->src.held || !r->src.fresh || !r->postcopy)
			return session_fail(s, -ENOMEM,
					    "region %u: out of memory for the scheduler", r->id);
		if (with_predictor && !r->src.predict) {
			ret = predict_create(r->npages, &r->src.predict);
			if (ret)
				return session_fail(s, ret,
						    "region %u: out of memory for the "
						    "predictor",
						    r->id);
		}
	}
	return 0;
}

int source_sample_due(const struct rmig_session *s)
{
	uint64_t gap = s->src.sample_cost_us * 8u;

	if (gap < SOURCE_SAMPLE_MIN_US)
		gap = SOURCE_SAMPLE_MIN_US;
	return session_now_us() - s->src.last_sample_us >= gap;
}

/* Every region's pages written since the previous sample, into r->src.fresh. Returns the count. */
int64_t source_sample(struct rmig_session *s)
{
	uint64_t start = session_now_us();
	int64_t total = 0;

	for (size_t i = 0; i < s->nregions; i++) {
		struct session_region *r = &s->regions[i];
		int ret;

		bitmap_zero(r->src.fresh, r->npages);
		ret = dirty_source_sync(r->src.tracker, r->src.fresh);
		holes_cursor_init(&r->src.holes_cursor); /* what it knew predates the sync */
		if (ret < 0)
			return session_fail(s, ret, "region %u: dirty sync failed: %s", r->id,
					    session_strerror(ret));
		total += ret;
	}
	s->src.last_sample_us = session_now_us();
	s->src.sample_cost_us = s->src.last_sample_us - start;
	s->src.sync_cost_us = s->src.sample_cost_us;
	return total;
}

/* How long until the final round, as far as holding a page back is concerned: what is left to
 * send live at the current rate, twice (the rounds after it send less and less), plus two
 * samples. A sample is as long as the sampler actually takes between samples (at least
 * SOURCE_SAMPLE_MIN_US): the final round is at least the final sync away, so on a slow host,
 * where samples come further apart, a page written in every sample is still one the final
 * round will carry anyway. */
uint64_t source_horizon_us(struct rmig_session *s)
{
	uint64_t bandwidth, left = 0, sample_us = SOURCE_SAMPLE_MIN_US;
	struct predict_counters c;

	for (size_t i = 0; i < s->nregions; i++) {
		if (!s->regions[i].src.predict)
			continue;
		predict_counters_get(s->regions[i].src.predict, &c);
		if (c.mean_interval_us > sample_us)
			sample_us = c.mean_interval_us;
	}

	pthread_mutex_lock(&s->lock);
	bandwidth = s->stats.bandwidth;
	pthread_mutex_unlock(&s->lock);
	if (!bandwidth)
		bandwidth = session_round_rate(s);
	for (size_t i = 0; i < s->nregions; i++)
		left += (source_count(s->regions[i].src.dirty, &s->regions[i]) +
			 source_count(s->regions[i].src.pending, &s->regions[i])) *
			s->regions[i].page_size;
	if (!bandwidth)
		return UINT64_MAX / 4;
	return (uint64_t)(2.0 * (double)left * 1e6 / (double)bandwidth) + 2u * sample_us;
}

/* Contiguous runs of set bits in a bitmap. */
static uint64_t source_runs(const uint64_t *bm, size_t words)
{
	uint64_t runs = 0, carry = 0;

	for (size_t w = 0; w < words; w++) {
		uint64_t x = bm[w];

		runs += (uint64_t)__builtin_popcountll(x & ~((x << 1) | carry));
		carry = x >> 63;
	}
	return runs;
}

/* Between batches of the pre-copy family's rounds: sample, feed the predictor (hold pages back
 * only for predict); while auto probes, measure, and decide after enough samples. */
int source_sched_hook(struct rmig_session *s, void *arg)
{
	struct source_sched *sched = arg;
	uint64_t last = s->src.last_sample_us, horizon, now;
	int64_t found;

	if (sched->quiet || (!sched->force && !source_sample_due(s)))
		return 0;
	sched->force = 0;
	found = source_sample(s);
	if (found < 0)
		return (int)found;
	now = s->src.last_sample_us;
	horizon = sched->hold ? source_horizon_us(s) : 0;
	for (size_t i = 0; i < s->nregions; i++) {
		struct session_region *r = &s->regions[i];

		predict_sample(r->src.predict, now, r->src.fresh, r->src.dirty, r->src.pending,
			       r->src.held, horizon);
	}
	if (sched->probe && !sched->probe->decided) {
		struct source_probe *probe = sched->probe;

		for (size_t i = 0; i < s->nregions; i++) {
			size_t words = bitmap_words(s->regions[i].npages);

			probe->runs_sum += source_runs(s->regions[i].src.fresh, words);
			if (probe->samples < SOURCE_PROBE_SAMPLES)
				memcpy(probe->taken[i] + (size_t)probe->samples * words,
				       s->regions[i].src.fresh, words * sizeof(uint64_t));
		}
		probe->samples++;
		probe->pages_sum += (uint64_t)found;
		probe->interval_sum += now - last;
		if (policy_probe_enough(probe->samples, source_dirty_bytes(s), s->stats.ram_bytes))
			return sched->probe_done(s, sched);
	}
	return 0;
}
