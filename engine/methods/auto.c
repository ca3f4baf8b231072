/* SPDX-License-Identifier: MIT */
/* engine/methods/auto.c - auto: the bulk round runs with the sampler probing the guest (dirty
 * rate, write runs, the working set by capture-recapture between the samples' halves) and the
 * destination timing test pulls (of the pull target, a buffer of no guest data: guest RAM
 * becomes readable only at the resume, as for every method); after enough samples the cost
 * model (engine/cost_model.c) projects every method and the best becomes s->method. The rest
 * of the live phase is the chosen method's after_bulk, its switchover the chosen method's. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/batch.h"
#include "engine/bitmap.h"
#include "engine/cost_model.h"
#include "engine/methods/method.h"
#include "engine/postcopy.h"
#include "engine/protocol.h"
#include "engine/session.h"
#include "engine/source.h"
#include "transport/log.h"
#include "transport/transport.h"

/* What one post-copy fault would cost, in microseconds, from the destination's test pulls of a
 * fault's worth of pages: one before any page moved (the round trip, the responder, the copy)
 * plus the wait behind the pages in flight ahead of the answer. The pulls timed while the bulk
 * round flowed show how much waits ahead of an answer on this connection; the tail never has
 * more in flight than its push window (POSTCOPY_WINDOW_US of the rate, at least
 * POSTCOPY_WINDOW_MIN bytes), which fills and drains, so an answer waits behind half of the
 * lesser of the two on average. 0 when the destination measured nothing. */
static double auto_fault_latency_us(const struct rmig_session *s, double bandwidth)
{
	double window_us = POSTCOPY_WINDOW_US, ahead_us;

	if (!s->pull_idle_us)
		return 0.0;
	if (bandwidth > 0.0 && (double)POSTCOPY_WINDOW_MIN * 1e6 / bandwidth > window_us)
		window_us = (double)POSTCOPY_WINDOW_MIN * 1e6 / bandwidth;
	ahead_us = window_us;
	if (s->src.pull_loaded_us)
		ahead_us =
			s->src.pull_loaded_us > s->pull_idle_us
				? fmin((double)(s->src.pull_loaded_us - s->pull_idle_us), window_us)
				: 0.0;
	return (double)s->pull_idle_us + ahead_us / 2.0;
}

/* How long auto waits at its decision for the test pulls timed under the bulk round's load, when
 * the destination sends them. */
#define AUTO_LOADED_PULL_WAIT_MS 100

/* From what the probe measured, the cost model's choice; it becomes s->method. */
static int auto_decide(struct rmig_session *s, struct source_probe *probe)
{
	struct cost_projection all[COST_METHOD_COUNT], choice;
	uint64_t ram_pages = 0, early = 0, late = 0, both = 0, zero_pages, pages_sent;
	uint32_t allowed = (1u << COST_METHOD_COUNT) - 1, method, policy;
	uint32_t half = probe->samples / 2, taken = probe->samples;
	double rate, working_set, bandwidth, run_pages, fault_us;
	struct cost_model_input in = {0};
	char others[600] = "", fault[96] = "";
	size_t used = 0;
	int ret;

	probe->decided = 1;
	/* The destination's test pulls under load: all of them when they come soon enough. */
	ret = session_ctrl_poll(s, 0);
	for (uint64_t until = session_now_us() + AUTO_LOADED_PULL_WAIT_MS * 1000u;
	     !ret && s->pull_idle_us && s->src.pull_loaded_pulls < POSTCOPY_PROBE_LOADED_PULLS &&
	     session_now_us() < until;)
		ret = session_ctrl_poll(s, (int)((until - session_now_us()) / 1000u) + 1);
	if (ret)
		return ret;
	/* The last of those pulls is over once its report came (or none were to come): the
	 * buffer they read may go now, else at the bulk round's barrier (auto_live()). */
	if (!s->pull_idle_us || s->src.pull_loaded_pulls >= POSTCOPY_PROBE_LOADED_PULLS) {
		ret = source_pull_target_withdraw(s);
		if (ret)
			return ret;
	}
	if (taken > SOURCE_PROBE_SAMPLES)
		taken = SOURCE_PROBE_SAMPLES;
	for (size_t i = 0; i < s->nregions; i++) {
		const struct session_region *r = &s->regions[i];
		size_t words = bitmap_words(r->npages);

		ram_pages += r->npages;
		for (size_t w = 0; w < words; w++) {
			uint64_t a = 0, b = 0;

			for (uint32_t k = 0; k < taken; k++) {
				if (k < half)
					a |= probe->taken[i][(size_t)k * words + w];
				else
					b |= probe->taken[i][(size_t)k * words + w];
			}
			early += (uint64_t)__builtin_popcountll(a);
			late += (uint64_t)__builtin_popcountll(b);
			both += (uint64_t)__builtin_popcountll(a & b);
		}
	}
	/* Pages written per second, distinct within a sample's interval. */
	rate = probe->interval_sum ? (double)probe->pages_sum * 1e6 / (double)probe->interval_sum
				   : 0.0;
	/* Capture-recapture between the earlier and the later half of the samples: writes
	 * scattered over W pages hit both halves in about early * late / W pages. Halves, not
	 * alternate samples: a guest that sweeps through RAM (a sort, a join's appends) writes
	 * the same pages in neighbouring samples only, which alternate samples would take for a
	 * small working set. No overlap at all: no sign of a bound, assume all RAM. */
	working_set = both ? (double)early * (double)late / (double)both : (double)ram_pages;
	if (working_set > (double)ram_pages)
		working_set = (double)ram_pages;
	if (working_set < (double)(early + late - both))
		working_set = (double)(early + late - both);
	run_pages = probe->runs_sum ? (double)probe->pages_sum / (double)probe->runs_sum : 1.0;
	bandwidth = (double)session_round_rate(s);
	if (bandwidth <= 0.0)
		bandwidth = 1.0;
	fault_us = auto_fault_latency_us(s, bandwidth);
	pthread_mutex_lock(&s->lock);
	zero_pages = s->stats.zero_pages;
	pages_sent = s->stats.pages_sent;
	pthread_mutex_unlock(&s->lock);
	in = (struct cost_model_input){
		.ram_bytes = s->stats.ram_bytes,
		.page_size = s->regions[0].page_size,
		.dirty_pages_rate = rate,
		.working_set_bytes = (uint64_t)(working_set * (double)s->regions[0].page_size),
		.bandwidth = bandwidth,
		.zero_fraction = pages_sent ? (double)zero_pages / (double)pages_sent : 0.0,
		.downtime_ms = s->params.downtime_ms,
		.max_rounds = s->params.max_rounds,
		.fault_latency_us = fault_us,
		.access_run_pages = run_pages,
		.pause_seconds = (double)source_pause_cost_us(s) / 1e6,
	};
	if (!(s->src.peer_flags & PROTOCOL_HELLO_POSTCOPY))
		allowed &= ~((1u << COST_METHOD_TSMC) | (1u << COST_METHOD_POSTCOPY) |
			     (1u << COST_METHOD_HYBRID));
	ret = cost_model_choose_among(&in, allowed, all, &choice);
	if (ret)
		return session_fail(s, ret, "auto: the cost model refused the measurements");
	cost_method_to_engine(choice.method, &method, &policy);
	for (uint32_t m = 0; m < COST_METHOD_COUNT && used < sizeof(others); m++) {
		char stall[48] = "";
		int n;

		if (m == choice.method)
			continue;
		if (all[m].stall_seconds > 0.0)
			snprintf(stall, sizeof(stall), " + %.0f ms stall",
				 all[m].stall_seconds * 1000.0);
		n = snprintf(others + used, sizeof(others) - used, "%s%s %.2f s/%.0f ms%s%s%s",
			     used ? ", " : "", cost_method_name(m), all[m].total_seconds,
			     all[m].downtime_seconds * 1000.0, stall,
			     all[m].converges ? "" : " (no convergence)",
			     allowed & (1u << m) ? ""
			     : s->src.staged	 ? " (source memory staged)"
						 : " (destination cannot)");
		if (n > 0)
			used += (size_t)n;
	}
	if (fault_us > 0.0 && s->src.pull_loaded_us)
		snprintf(
			fault, sizeof(fault),
			", post-copy fault %.2f ms (pulls timed at %u us idle, %u us under load x%u)",
			fault_us / 1000.0, s->pull_idle_us, s->src.pull_loaded_us,
			s->src.pull_loaded_pulls);
	else if (fault_us > 0.0)
		snprintf(fault, sizeof(fault),
			 ", post-copy fault %.2f ms (a pull timed at %u us idle + half the push "
			 "window)",
			 fault_us / 1000.0, s->pull_idle_us);
	session_method_set(
		s, method, policy,
		"auto chose %s: dirty rate %.0f pages/s (%.1f MiB/s) in runs of %.1f pages, "
		"working set %.1f MiB, bandwidth %.1f MiB/s%s, pause %.1f ms besides the pages, "
		"downtime target %u ms; projected %.2f s total, %.0f ms downtime, %.0f ms "
		"stall%s; others: %s",
		cost_method_name(choice.method), rate, rate * (double)in.page_size / 1048576.0,
		run_pages, working_set * (double)in.page_size / 1048576.0, bandwidth / 1048576.0,
		fault, in.pause_seconds * 1000.0, s->params.downtime_ms, choice.total_seconds,
		choice.downtime_seconds * 1000.0, choice.stall_seconds * 1000.0,
		choice.converges ? "" : " (does not converge)", others);
	pthread_mutex_lock(&s->lock);
	s->stats.auto_dirty_pages_rate = (uint64_t)rate;
	s->stats.auto_bandwidth = (uint64_t)bandwidth;
	s->stats.auto_working_set_bytes = in.working_set_bytes;
	s->stats.auto_projected_total_ms = (uint64_t)(choice.total_seconds * 1000.0);
	s->stats.auto_projected_downtime_ms = (uint64_t)(choice.downtime_seconds * 1000.0);
	s->stats.auto_fault_latency_us = (uint64_t)fault_us;
	s->stats.auto_projected_stall_ms = (uint64_t)(choice.stall_seconds * 1000.0);
	s->stats.auto_pause_cost_us = (uint64_t)(in.pause_seconds * 1e6);
	s->stats.auto_write_run_pages = run_pages;
	pthread_mutex_unlock(&s->lock);
	rmig_log_info("source: %s", s->method_reason);
	return 0;
}

/* The sampler's probe has enough samples: choose, and set the sampler up for the choice. */
static int auto_probe_done(struct rmig_session *s, struct source_sched *sched)
{
	int ret = auto_decide(s, sched->probe);

	if (ret < 0)
		return ret;
	if (s->method == RMIG_METHOD_PREDICT)
		sched->hold = 1;
	/* Pre-copy and hybrid go by the dirty log at the round's end; sampling on would only cost
	 * the guest write-protect faults. */
	sched->quiet = s->method == RMIG_METHOD_PRECOPY || s->method == RMIG_METHOD_HYBRID;
	/* Post-copy pauses now: the rest of the bulk round would only be sent twice. */
	return s->method == RMIG_METHOD_POSTCOPY;
}

static int auto_live(struct rmig_session *s, struct batch_pipeline *pipeline)
{
	struct source_probe probe = {0};
	struct source_sched sched = {.hold = 0, .probe = &probe, .probe_done = auto_probe_done};
	uint64_t start = session_now_us();
	int ret, ended;

	probe.taken = calloc(s->nregions, sizeof(*probe.taken));
	if (!probe.taken) {
		ret = session_fail(s, -ENOMEM, "auto: out of memory");
		goto out_free;
	}
	for (size_t i = 0; i < s->nregions; i++) {
		probe.taken[i] = calloc(bitmap_words(s->regions[i].npages) * SOURCE_PROBE_SAMPLES,
					sizeof(uint64_t));
		if (!probe.taken[i]) {
			ret = session_fail(s, -ENOMEM, "auto: out of memory");
			goto out_free;
		}
	}
	ended = source_bulk_round(s, pipeline, source_sched_hook, &sched);
	if (ended < 0) {
		ret = ended;
		goto out_free;
	}
	/* The destination ends its test pulls before it acknowledges the bulk round (dest.c):
	 * from here on nothing reads the pull target. */
	ret = source_pull_target_withdraw(s);
	if (ret)
		goto out_free;
	if (!probe.decided) {
		/* The bulk round ended before the probe had enough samples: decide from the
		 * round (one more sample, so even a fast round has one measurement). */
		sched.force = 1;
		ret = source_sched_hook(s, &sched);
		if (ret >= 0 && !probe.decided)
			ret = auto_decide(s, &probe);
		if (ret < 0)
			goto out_free;
		if (s->method == RMIG_METHOD_POSTCOPY) {
			char reason[SESSION_REASON_MAX];

			memcpy(reason, s->method_reason, sizeof(reason));
			reason[SESSION_REASON_MAX - 80] = '\0';
			session_method_set(
				s, RMIG_METHOD_HYBRID, s->policy,
				"%s; the bulk round had already sent all RAM once, so it "
				"runs as hybrid",
				reason);
		}
	}
	{
		/* The rest of the live phase is the chosen method's, from the end of its bulk
		 * round. */
		const struct method_ops *chosen = method_ops_find(s->method);

		ret = chosen->after_bulk ? chosen->after_bulk(s, pipeline, &sched, start)
					 : method_postcopy_after_bulk(s, pipeline, &sched, start);
	}
out_free:
	for (size_t i = 0; probe.taken && i < s->nregions; i++)
		free(probe.taken[i]);
	free(probe.taken);
	return ret;
}

const struct method_ops method_auto_ops = {
	.method = RMIG_METHOD_AUTO,
	.postcopy = 0,
	.needs = METHOD_NEEDS_TRACKING | METHOD_NEEDS_SCHED | METHOD_NEEDS_PREDICTOR,
	.live = auto_live,
	.after_bulk = NULL,
	.switchover = NULL,
};
