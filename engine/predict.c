/* SPDX-License-Identifier: MIT */
/* engine/predict.c - per-page write history and the hold / send decision of the prediction
 * scheduler. A page's history is a byte of the last PREDICT_HISTORY samples (bit 0 the newest)
 * kept lazily: it is shifted by the samples elapsed only when the page is looked at, so pages
 * nobody wrote cost nothing per sample. */
#include "engine/predict.h"

#include <errno.h>
#include <stdlib.h>

#include "engine/bitmap.h"
#include "transport/log.h"

/* flags[] bits */
#define PREDICT_SENT_ON_PREDICTION 0x1u /* scheduled because "it will not be rewritten" */
#define PREDICT_REWRITTEN_WHILE_HELD 0x2u

struct predict {
	size_t npages;
	uint8_t *history;
	uint16_t *updated_at; /* sample index of the last update (mod 2^16) */
	uint8_t *flags;
	uint32_t samples;
	uint32_t threshold;
	uint64_t last_sample_us;
	uint64_t mean_interval_us; /* moving mean of the time between samples */
	uint64_t held;
	uint64_t hold_hits, hold_misses, send_misses, near_send_misses;
	/* counters at the previous plan, for the threshold's feedback */
	uint64_t planned_hits, planned_hold_misses, planned_near_send_misses;
};

int predict_create(size_t npages, struct predict **predict_p)
{
	struct predict *p;

	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->npages = npages;
	p->history = calloc(npages, sizeof(*p->history));
	p->updated_at = calloc(npages, sizeof(*p->updated_at));
	p->flags = calloc(npages, sizeof(*p->flags));
	if (!p->history || !p->updated_at || !p->flags) {
		predict_destroy(p);
		return -ENOMEM;
	}
	p->threshold = PREDICT_THRESHOLD_MIN;
	*predict_p = p;
	return 0;
}

void predict_destroy(struct predict *p)
{
	if (!p)
		return;
	free(p->history);
	free(p->updated_at);
	free(p->flags);
	free(p);
}

/* The history of page as of the current sample. */
static uint8_t predict_view(const struct predict *p, size_t page)
{
	uint16_t age = (uint16_t)((uint16_t)p->samples - p->updated_at[page]);

	if (age >= PREDICT_HISTORY)
		return 0;
	return (uint8_t)(p->history[page] << age);
}

unsigned predict_score(const struct predict *p, size_t page)
{
	return (unsigned)__builtin_popcount(predict_view(p, page));
}

int predict_should_hold(const struct predict *p, size_t page, uint64_t horizon_us)
{
	uint8_t view = predict_view(p, page);
	unsigned writes = (unsigned)__builtin_popcount(view);
	unsigned window = p->samples < PREDICT_HISTORY ? p->samples : PREDICT_HISTORY;
	unsigned since, gap;
	uint64_t interval_us;

	if (writes < p->threshold || !window || !horizon_us)
		return 0;
	/* Written every `gap` samples on average; a page that has been quiet for much longer
	 * than that has stopped being written. */
	gap = (window + writes - 1) / writes;
	since = (unsigned)__builtin_ctz(view);
	if (since > gap + 1)
		return 0;
	interval_us = (uint64_t)window * p->mean_interval_us / writes;
	return interval_us <= horizon_us;
}

static void predict_hold(struct predict *p, size_t page, uint64_t *held)
{
	bitmap_set(held, page);
	p->flags[page] &= (uint8_t) ~(PREDICT_REWRITTEN_WHILE_HELD | PREDICT_SENT_ON_PREDICTION);
	p->held++;
}

static void predict_release(struct predict *p, size_t page, uint64_t *held, uint64_t *dirty)
{
	if (!(p->flags[page] & PREDICT_REWRITTEN_WHILE_HELD))
		p->hold_misses++;
	bitmap_clear(held, page);
	p->held--;
	bitmap_set(dirty, page);
	p->flags[page] = PREDICT_SENT_ON_PREDICTION;
}

static void predict_clock(struct predict *p, uint64_t now_us)
{
	if (p->last_sample_us && now_us > p->last_sample_us) {
		uint64_t interval = now_us - p->last_sample_us;

		p->mean_interval_us =
			p->mean_interval_us ? (p->mean_interval_us * 3u + interval) / 4u : interval;
	}
	p->last_sample_us = now_us;
	p->samples++;
}

void predict_record(struct predict *p, uint64_t now_us, const uint64_t *fresh)
{
	size_t page;

	predict_clock(p, now_us);
	bitmap_for_each(page, fresh, p->npages)
	{
		/* The view is already shifted to this sample: bit 0 is this one. */
		p->history[page] = predict_view(p, page) | 1u;
		p->updated_at[page] = (uint16_t)p->samples;
	}
}

void predict_sample(struct predict *p, uint64_t now_us, const uint64_t *fresh, uint64_t *dirty,
		    uint64_t *pending, uint64_t *held, uint64_t horizon_us)
{
	size_t page;

	predict_clock(p, now_us);
	bitmap_for_each(page, fresh, p->npages)
	{
		uint8_t before = predict_view(p, page);

		p->history[page] = before | 1u;
		p->updated_at[page] = (uint16_t)p->samples;
		if (bitmap_test(held, page)) {
			if (!(p->flags[page] & PREDICT_REWRITTEN_WHILE_HELD)) {
				p->flags[page] |= PREDICT_REWRITTEN_WHILE_HELD;
				p->hold_hits++;
			}
			continue;
		}
		if (bitmap_test(dirty, page)) {
			/* Not sent yet this round: its send will carry these bytes. */
			if (predict_should_hold(p, page, horizon_us)) {
				bitmap_clear(dirty, page);
				predict_hold(p, page, held);
			}
			continue;
		}
		if (p->flags[page] & PREDICT_SENT_ON_PREDICTION) {
			p->send_misses++;
			if ((unsigned)__builtin_popcount(before) >= PREDICT_THRESHOLD_MIN - 1)
				p->near_send_misses++;
			p->flags[page] &= (uint8_t)~PREDICT_SENT_ON_PREDICTION;
		}
		bitmap_set(pending, page);
	}
}

/* More hold misses than hits: holding too eagerly, ask for more evidence. Pages sent that had
 * some history and came back outnumber both: hold earlier. */
static void predict_adapt(struct predict *p)
{
	uint64_t hits = p->hold_hits - p->planned_hits;
	uint64_t misses = p->hold_misses - p->planned_hold_misses;
	uint64_t near = p->near_send_misses - p->planned_near_send_misses;

	if (misses > hits && p->threshold < PREDICT_THRESHOLD_MAX)
		p->threshold++;
	else if (near > hits + misses && p->threshold > PREDICT_THRESHOLD_MIN)
		p->threshold--;
	p->planned_hits = p->hold_hits;
	p->planned_hold_misses = p->hold_misses;
	p->planned_near_send_misses = p->near_send_misses;
}

uint64_t predict_plan_round(struct predict *p, uint64_t *pending, uint64_t *held, uint64_t *dirty,
			    uint64_t horizon_us)
{
	uint64_t scheduled = 0;
	size_t page;

	/* Held pages first, then the pending ones (the two sets are disjoint: a page written
	 * while held stays held), so a page held just now is not reconsidered in this plan. */
	bitmap_for_each(page, held, p->npages)
	{
		if (!predict_should_hold(p, page, horizon_us)) {
			predict_release(p, page, held, dirty);
			scheduled++;
		}
	}
	bitmap_for_each(page, pending, p->npages)
	{
		if (predict_should_hold(p, page, horizon_us)) {
			predict_hold(p, page, held);
		} else {
			bitmap_set(dirty, page);
			p->flags[page] |= PREDICT_SENT_ON_PREDICTION;
			scheduled++;
		}
	}
	bitmap_zero(pending, p->npages);
	predict_adapt(p);
	return scheduled;
}

void predict_finish(struct predict *p, uint64_t *held)
{
	size_t page;

	bitmap_for_each(page, held, p->npages)
	{
		if (!(p->flags[page] & PREDICT_REWRITTEN_WHILE_HELD))
			p->hold_misses++;
		p->flags[page] = 0;
	}
	bitmap_zero(held, p->npages);
	p->held = 0;
}

void predict_counters_get(const struct predict *p, struct predict_counters *counters_p)
{
	*counters_p = (struct predict_counters){
		.hold_hits = p->hold_hits,
		.hold_misses = p->hold_misses,
		.send_misses = p->send_misses,
		.held = p->held,
		.threshold = p->threshold,
		.samples = p->samples,
		.mean_interval_us = p->mean_interval_us,
	};
}
