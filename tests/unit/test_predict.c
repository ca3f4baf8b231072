/* SPDX-License-Identifier: MIT */
/* The prediction scheduler's decisions on hand-made samples of a dirty log: a page written in
 * every sample is held back, a page written once is sent, a held page that stops being written
 * is released and counted as a miss, hits are counted, too many misses raise the threshold, and
 * pages nobody writes cost nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "engine/bitmap.h"
#include "engine/predict.h"

#define PAGES 4096u
#define SAMPLE_US 20000u
#define HORIZON_US 1000000u /* a second to go: long enough to hold the hot page */
#define HOT 17u
#define ONCE 1234u

struct sched {
	struct predict *p;
	uint64_t fresh[PAGES / 64], dirty[PAGES / 64], pending[PAGES / 64], held[PAGES / 64];
	uint64_t now;
};

static void sched_init(struct sched *s)
{
	memset(s, 0, sizeof(*s));
	assert_int_equal(predict_create(PAGES, &s->p), 0);
	s->now = 1000000;
}

/* One sample with the given pages written; nothing is left to send in the round. */
static void sample(struct sched *s, const size_t *pages, size_t n)
{
	memset(s->fresh, 0, sizeof(s->fresh));
	for (size_t i = 0; i < n; i++)
		bitmap_set(s->fresh, pages[i]);
	s->now += SAMPLE_US;
	predict_sample(s->p, s->now, s->fresh, s->dirty, s->pending, s->held, HORIZON_US);
}

/* A round boundary: plan, then the round sends what was scheduled. */
static uint64_t plan(struct sched *s)
{
	uint64_t scheduled = predict_plan_round(s->p, s->pending, s->held, s->dirty, HORIZON_US);

	memset(s->dirty, 0, sizeof(s->dirty));
	return scheduled;
}

static void test_predict_holds_page_written_every_round(void **state)
{
	const size_t hot[] = {HOT};
	struct sched s;

	(void)state;
	sched_init(&s);
	sample(&s, hot, 1);
	assert_int_equal(plan(&s), 1); /* one write predicts nothing: sent */
	for (int round = 0; round < 5; round++) {
		sample(&s, hot, 1);
		plan(&s);
		assert_true(bitmap_test(s.held, HOT));
	}
	assert_true(predict_should_hold(s.p, HOT, HORIZON_US));
	assert_int_equal(predict_score(s.p, HOT), 6);
	predict_destroy(s.p);
}

static void test_predict_sends_page_written_once(void **state)
{
	const size_t hot[] = {HOT}, both[] = {HOT, ONCE};
	struct sched s;

	(void)state;
	sched_init(&s);
	sample(&s, hot, 1);
	plan(&s);
	sample(&s, hot, 1);
	plan(&s);
	sample(&s, both, 2);
	/* written once, now: scheduled for the next round, not held */
	assert_int_equal(plan(&s), 1);
	assert_false(bitmap_test(s.held, ONCE));
	assert_true(bitmap_test(s.held, HOT));
	assert_false(predict_should_hold(s.p, ONCE, HORIZON_US));
	predict_destroy(s.p);
}

static void test_predict_releases_page_no_longer_written(void **state)
{
	const size_t hot[] = {HOT};
	struct predict_counters c;
	struct sched s;

	(void)state;
	sched_init(&s);
	for (int i = 0; i < 4; i++) {
		sample(&s, hot, 1);
		plan(&s);
	}
	assert_true(bitmap_test(s.held, HOT));
	/* The page goes quiet: within a few samples it is released (sent), and since it was never
	 * written again after it was held... it was written again (hits), so no miss. */
	for (int i = 0; i < 6 && bitmap_test(s.held, HOT); i++) {
		sample(&s, NULL, 0);
		predict_plan_round(s.p, s.pending, s.held, s.dirty, HORIZON_US);
	}
	assert_false(bitmap_test(s.held, HOT));
	assert_true(bitmap_test(s.dirty, HOT));
	predict_counters_get(s.p, &c);
	assert_true(c.hold_hits >= 1);
	assert_int_equal(c.held, 0);
	predict_destroy(s.p);
}

static void test_predict_counts_hold_without_rewrite_as_miss(void **state)
{
	const size_t page[] = {HOT};
	struct predict_counters c;
	struct sched s;

	(void)state;
	sched_init(&s);
	/* Written in two samples, then held at the plan, then never again. */
	sample(&s, page, 1);
	sample(&s, page, 1);
	plan(&s);
	assert_true(bitmap_test(s.held, HOT));
	for (int i = 0; i < 8; i++) {
		sample(&s, NULL, 0);
		predict_plan_round(s.p, s.pending, s.held, s.dirty, HORIZON_US);
	}
	predict_counters_get(s.p, &c);
	assert_false(bitmap_test(s.held, HOT));
	assert_int_equal(c.hold_hits, 0);
	assert_int_equal(c.hold_misses, 1);
	predict_destroy(s.p);
}

static void test_predict_misses_raise_threshold(void **state)
{
	struct predict_counters c;
	size_t pages[64];
	struct sched s;

	(void)state;
	sched_init(&s);
	for (size_t i = 0; i < 64; i++)
		pages[i] = 100 + i;
	/* Many pages written twice, held, never written again: misses outnumber hits. */
	sample(&s, pages, 64);
	sample(&s, pages, 64);
	plan(&s);
	for (int i = 0; i < 8; i++) {
		sample(&s, NULL, 0);
		plan(&s);
	}
	predict_counters_get(s.p, &c);
	assert_true(c.hold_misses >= 64);
	assert_true(c.threshold > PREDICT_THRESHOLD_MIN);
	predict_destroy(s.p);
}

static void test_predict_counts_sent_page_rewritten_as_send_miss(void **state)
{
	const size_t page[] = {ONCE};
	struct predict_counters c;
	struct sched s;

	(void)state;
	sched_init(&s);
	sample(&s, page, 1);
	assert_int_equal(plan(&s), 1); /* sent: predicted not to be rewritten */
	sample(&s, page, 1);	       /* ...and it was */
	predict_counters_get(s.p, &c);
	assert_int_equal(c.send_misses, 1);
	predict_destroy(s.p);
}

static void test_predict_leaves_unwritten_pages_alone(void **state)
{
	const size_t hot[] = {HOT};
	struct sched s;

	(void)state;
	sched_init(&s);
	for (int i = 0; i < 20; i++) {
		sample(&s, hot, 1);
		plan(&s);
	}
	for (size_t p = 0; p < PAGES; p++) {
		if (p == HOT)
			continue;
		assert_int_equal(predict_score(s.p, p), 0);
		assert_false(bitmap_test(s.held, p));
		assert_false(bitmap_test(s.pending, p));
	}
	predict_destroy(s.p);
}

static void test_predict_holds_page_not_yet_sent_in_round(void **state)
{
	const size_t hot[] = {HOT};
	struct sched s;

	(void)state;
	sched_init(&s);
	sample(&s, hot, 1);
	plan(&s);
	/* The bulk of the next round still has the page to send when a sample finds it written
	 * a second time: it leaves the round and is held. */
	bitmap_set(s.dirty, HOT);
	sample(&s, hot, 1);
	assert_false(bitmap_test(s.dirty, HOT));
	assert_true(bitmap_test(s.held, HOT));
	assert_false(bitmap_test(s.pending, HOT));
	predict_destroy(s.p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_predict_holds_page_written_every_round),
		cmocka_unit_test(test_predict_sends_page_written_once),
		cmocka_unit_test(test_predict_releases_page_no_longer_written),
		cmocka_unit_test(test_predict_counts_hold_without_rewrite_as_miss),
		cmocka_unit_test(test_predict_misses_raise_threshold),
		cmocka_unit_test(test_predict_counts_sent_page_rewritten_as_send_miss),
		cmocka_unit_test(test_predict_leaves_unwritten_pages_alone),
		cmocka_unit_test(test_predict_holds_page_not_yet_sent_in_round),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
