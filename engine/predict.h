/* SPDX-License-Identifier: MIT */
/* engine/predict.h - the prediction scheduler's per-page write history: which dirty pages will be
 * written again before the migration ends (hold them back to the final round) and which will not
 * (send them now). Four bytes per page (8 samples of history, the sample it was last updated at,
 * flags); every update touches only the pages a sample found written or the pages held back, so
 * the cost follows the dirty pages, not RAM. Hits and misses feed back into the threshold. */
#ifndef RMIG_ENGINE_PREDICT_H
#define RMIG_ENGINE_PREDICT_H

#include <stddef.h>
#include <stdint.h>

/* Samples of the dirty log a page's history covers. */
#define PREDICT_HISTORY 8u
/* A page written in fewer samples than this is never held (one write predicts nothing). */
#define PREDICT_THRESHOLD_MIN 2u
#define PREDICT_THRESHOLD_MAX PREDICT_HISTORY

struct predict;

struct predict_counters {
	uint64_t hold_hits;   /* held pages written again while held: a transmission saved */
	uint64_t hold_misses; /* held pages released or sent last without being written again */
	uint64_t send_misses; /* pages sent on a "will not be rewritten" decision, then rewritten */
	uint64_t held;	      /* pages held back now */
	uint32_t threshold;   /* samples with writes a page needs to be held */
	uint32_t samples;     /* samples taken */
	uint64_t mean_interval_us; /* moving mean of the time between samples */
};

int predict_create(size_t npages, struct predict **predict_p);
void predict_destroy(struct predict *p);

/* A sample of the dirty log at now_us: fresh holds the pages written since the previous sample
 * (it is left unchanged). Their history is updated and hits and misses counted. Pages of fresh
 * still scheduled for this round (set in dirty) are moved to held when predict_should_hold()
 * says so within horizon_us (else they stay in dirty: the send will carry the new bytes); the
 * other pages of fresh are set in pending, to be planned at the next round. */
void predict_sample(struct predict *p, uint64_t now_us, const uint64_t *fresh, uint64_t *dirty,
		    uint64_t *pending, uint64_t *held, uint64_t horizon_us);

/* A sample that only feeds the history (TSMC decides what to do with the pages itself). */
void predict_record(struct predict *p, uint64_t now_us, const uint64_t *fresh);

/* Plan a round: every page of pending (cleared) and of held is either held (stays in held) or
 * scheduled (set in dirty). Then the threshold adapts to the hits and misses since the previous
 * plan. Returns the number of pages scheduled. */
uint64_t predict_plan_round(struct predict *p, uint64_t *pending, uint64_t *held, uint64_t *dirty,
			    uint64_t horizon_us);

/* The final round is about to take every held page: count those never written again as misses
 * and clear held. */
void predict_finish(struct predict *p, uint64_t *held);

/* 1 when page was written in at least threshold of the last PREDICT_HISTORY samples and its
 * expected interval between writes (from that rate and the mean sample interval) is at most
 * horizon_us: it will most likely be written again before the end. */
int predict_should_hold(const struct predict *p, size_t page, uint64_t horizon_us);

/* Writes of page among the last PREDICT_HISTORY samples. */
unsigned predict_score(const struct predict *p, size_t page);

void predict_counters_get(const struct predict *p, struct predict_counters *counters_p);

#endif /* RMIG_ENGINE_PREDICT_H */
