/* SPDX-License-Identifier: MIT */
/* engine/session_stats.c - a session's statistics: the engine's counters (struct session_stats)
 * and their conversion to the public struct rmig_stats at the ABI's edge, the transport's own
 * counts over every connection, and one record per round (the records add up to the totals). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine/bitmap.h"
#include "engine/postcopy_recover.h"
#include "engine/session.h"
#include "transport/log.h"

void session_transport_stats_add(struct transport_stats *sum, const struct transport_stats *more)
{
	sum->bytes_sent += more->bytes_sent;
	sum->bytes_received += more->bytes_received;
	sum->data_bytes_sent += more->data_bytes_sent;
	sum->data_bytes_received += more->data_bytes_received;
	sum->batches_sent += more->batches_sent;
	sum->batches_received += more->batches_received;
	sum->ctrl_sent += more->ctrl_sent;
	sum->ctrl_received += more->ctrl_received;
	sum->reads += more->reads;
	sum->read_bytes += more->read_bytes;
}

/* Under s->lock: every connection's counters so far (a post-copy recovery opens more than
 * one). */
static void session_transport_totals_locked(struct rmig_session *s, struct transport_stats *ts)
{
	*ts = s->final_transport;
	if (s->conn) {
		struct transport_stats current;

		transport_stats_get(s->conn, &current);
		*ts = s->earlier_transport;
		session_transport_stats_add(ts, &current);
	}
}

void session_stats_export(const struct session_stats *in, struct rmig_stats *out)
{
	*out = (struct rmig_stats){
		.struct_size = sizeof(*out),
		.status = in->status,
		.method = in->method,
		.stop_reason = in->stop_reason,
		.round = in->round,
		.rounds = in->rounds,
		.ram_bytes = in->ram_bytes,
		.remaining_bytes = in->remaining_bytes,
		.dirty_pages_rate = in->dirty_pages_rate,
		.bandwidth = in->bandwidth,
		.projected_downtime_ms = in->projected_downtime_ms,
		.downtime_ms = in->downtime_ms,
		.total_time_ms = in->total_time_ms,
		.setup_time_ms = in->setup_time_ms,
		.bytes = in->bytes,
		.data_bytes = in->data_bytes,
		.pages_sent = in->pages_sent,
		.zero_pages = in->zero_pages,
		.pages_sent_multiple = in->pages_sent_multiple,
		.pages_verified = in->pages_verified,
		.pages_mismatched = in->pages_mismatched,
		.device_state_bytes = in->device_state_bytes,
		.pages_received = in->pages_received,
		.bytes_received = in->bytes_received,
		.dirty_source = in->dirty_source,
		.method_used = in->method_used,
		.policy_used = in->policy_used,
		.pages_sent_max = in->pages_sent_max,
		.predict_threshold = in->predict_threshold,
		.pages_held = in->pages_held,
		.predict_hits = in->predict_hits,
		.predict_hold_misses = in->predict_hold_misses,
		.predict_send_misses = in->predict_send_misses,
		.postcopy_pages = in->postcopy_pages,
		.postcopy_pages_fetched = in->postcopy_pages_fetched,
		.postcopy_faults = in->postcopy_faults,
		.postcopy_stall_us = in->postcopy_stall_us,
		.postcopy_time_ms = in->postcopy_time_ms,
		.auto_dirty_pages_rate = in->auto_dirty_pages_rate,
		.auto_bandwidth = in->auto_bandwidth,
		.auto_working_set_bytes = in->auto_working_set_bytes,
		.auto_projected_total_ms = in->auto_projected_total_ms,
		.auto_projected_downtime_ms = in->auto_projected_downtime_ms,
		.auto_fault_latency_us = in->auto_fault_latency_us,
		.auto_projected_stall_ms = in->auto_projected_stall_ms,
		.auto_pause_cost_us = in->auto_pause_cost_us,
		.auto_write_run_pages = in->auto_write_run_pages,
		.recoveries = in->recoveries,
		.recovering_ms = in->recovering_ms,
		.verify_answer_us = in->verify_answer_us,
	};
	memcpy(out->pages_sent_histogram, in->pages_sent_histogram,
	       sizeof(out->pages_sent_histogram));
}

/* Under s->lock. */
static void session_stats_refresh_locked(struct rmig_session *s, struct rmig_stats *out)
{
	struct transport_stats ts;
	uint64_t now = session_now_us();

	session_stats_export(&s->stats, out);
	session_transport_totals_locked(s, &ts);
	out->bytes = ts.bytes_sent;
	out->bytes_received = ts.bytes_received;
	if (s->start_us && out->status != RMIG_STATUS_COMPLETED &&
	    out->status != RMIG_STATUS_FAILED && out->status != RMIG_STATUS_CANCELLED &&
	    out->status != RMIG_STATUS_LOST)
		out->total_time_ms = (now - s->start_us) / 1000u;
	if (s->pause_us && out->status == RMIG_STATUS_DEVICE)
		out->downtime_ms = (now - s->pause_us) / 1000u;
	postcopy_recover_stats_locked(s, out, now);
}

void session_progress(struct rmig_session *s, uint32_t event)
{
	struct rmig_stats snapshot;

	s->last_progress_us = session_now_us();
	if (!(s->callbacks.field_mask & RMIG_CB_PROGRESS))
		return;
	pthread_mutex_lock(&s->lock);
	session_stats_refresh_locked(s, &snapshot);
	pthread_mutex_unlock(&s->lock);
	s->callbacks.progress(s->opaque, event, &snapshot);
}

int session_stats_get(struct rmig_session *s, struct rmig_stats *stats)
{
	struct rmig_stats snapshot;
	uint32_t size;

	if (!stats || stats->struct_size < 2 * sizeof(uint32_t))
		return session_refuse(s, -EINVAL,
				      "stats: stats is NULL or its struct_size %u is below %zu",
				      stats ? stats->struct_size : 0, 2 * sizeof(uint32_t));
	size = stats->struct_size < sizeof(snapshot) ? stats->struct_size : sizeof(snapshot);
	pthread_mutex_lock(&s->lock);
	session_stats_refresh_locked(s, &snapshot);
	pthread_mutex_unlock(&s->lock);
	snapshot.struct_size = size;
	memcpy(stats, &snapshot, size);
	return 0;
}

int session_transport_stats_get(struct rmig_session *s, struct rmig_transport_stats *stats)
{
	struct rmig_transport_stats snapshot = {0};
	struct transport_stats ts;
	uint32_t size;

	if (!stats || stats->struct_size < 2 * sizeof(uint32_t))
		return session_refuse(
			s, -EINVAL,
			"transport stats: stats is NULL or its struct_size %u is below %zu",
			stats ? stats->struct_size : 0, 2 * sizeof(uint32_t));
	size = stats->struct_size < sizeof(snapshot) ? stats->struct_size : sizeof(snapshot);
	pthread_mutex_lock(&s->lock);
	session_transport_totals_locked(s, &ts);
	pthread_mutex_unlock(&s->lock);
	snapshot = (struct rmig_transport_stats){
		.struct_size = size,
		.bytes_sent = ts.bytes_sent,
		.bytes_received = ts.bytes_received,
		.data_bytes_sent = ts.data_bytes_sent,
		.data_bytes_received = ts.data_bytes_received,
		.batches_sent = ts.batches_sent,
		.batches_received = ts.batches_received,
		.ctrl_sent = ts.ctrl_sent,
		.ctrl_received = ts.ctrl_received,
		.reads = ts.reads,
		.read_bytes = ts.read_bytes,
	};
	memcpy(stats, &snapshot, size);
	return 0;
}

static uint64_t session_bytes_sent(struct rmig_session *s)
{
	struct transport_stats ts;

	pthread_mutex_lock(&s->lock);
	session_transport_totals_locked(s, &ts);
	pthread_mutex_unlock(&s->lock);
	return ts.bytes_sent;
}

/* Bytes already attributed to earlier rounds: the next round starts where they end. */
static uint64_t session_bytes_recorded_locked(struct rmig_session *s)
{
	uint64_t sum = 0;

	for (size_t i = 0; i < s->nrounds; i++)
		sum += s->rounds[i].bytes;
	return sum;
}

int session_round_stats_get(struct rmig_session *s, uint32_t round, struct rmig_round_stats *stats)
{
	uint64_t sent, now;
	uint32_t size;
	int ret = -ENOENT;

	if (!stats || stats->struct_size < 2 * sizeof(uint32_t))
		return session_refuse(
			s, -EINVAL, "round stats: stats is NULL or its struct_size %u is below %zu",
			stats ? stats->struct_size : 0, 2 * sizeof(uint32_t));
	size = stats->struct_size < sizeof(*stats) ? stats->struct_size : sizeof(*stats);
	sent = session_bytes_sent(s);
	now = session_now_us();
	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < s->nrounds; i++) {
		if (s->rounds[i].round == round) {
			struct rmig_round_stats r = s->rounds[i];

			if (s->round_open && i == s->nrounds - 1) {
				/* Still running: so far (duration_us holds its start until it
				 * ends, bytes are counted at its end). */
				uint64_t recorded = session_bytes_recorded_locked(s);

				r.duration_us = now > r.duration_us ? now - r.duration_us : 0;
				r.bytes = sent > recorded ? sent - recorded : 0;
			}
			memcpy(stats, &r, size);
			stats->struct_size = size;
			ret = 0;
			break;
		}
	}
	pthread_mutex_unlock(&s->lock);
	if (ret)
		return session_refuse(s, ret, "round stats: round %u is not recorded", round);
	return ret;
}

int session_round_begin(struct rmig_session *s, uint32_t round, uint32_t paused,
			uint64_t dirty_pages)
{
	struct rmig_round_stats *r;

	pthread_mutex_lock(&s->lock);
	if (s->nrounds == s->rounds_capacity) {
		size_t capacity = s->rounds_capacity ? s->rounds_capacity * 2 : 16;
		struct rmig_round_stats *grown = realloc(s->rounds, capacity * sizeof(*grown));

		if (!grown) {
			pthread_mutex_unlock(&s->lock);
			return -ENOMEM;
		}
		s->rounds = grown;
		s->rounds_capacity = capacity;
	}
	r = &s->rounds[s->nrounds++];
	memset(r, 0, sizeof(*r));
	r->struct_size = sizeof(*r);
	r->round = round;
	r->paused = paused;
	r->dirty_pages = dirty_pages;
	/* duration_us holds the start time until the round ends. */
	r->duration_us = session_now_us();
	s->stats.round = round;
	s->round_open = 1;
	pthread_mutex_unlock(&s->lock);
	return 0;
}

void session_round_end(struct rmig_session *s)
{
	uint64_t sent = session_bytes_sent(s);
	struct rmig_round_stats *r;

	pthread_mutex_lock(&s->lock);
	if (s->nrounds) {
		r = &s->rounds[s->nrounds - 1];
		r->bytes = 0;
		r->bytes = sent - session_bytes_recorded_locked(s);
		r->duration_us = session_now_us() - r->duration_us;
		if (r->round > 0 && !r->paused && !r->postcopy)
			s->stats.rounds = r->round;
		s->round_open = 0;
	}
	pthread_mutex_unlock(&s->lock);
}

void session_round_mark(struct rmig_session *s, uint32_t postcopy, uint64_t held_pages)
{
	pthread_mutex_lock(&s->lock);
	if (s->nrounds) {
		s->rounds[s->nrounds - 1].postcopy = postcopy;
		s->rounds[s->nrounds - 1].held_pages = held_pages;
	}
	pthread_mutex_unlock(&s->lock);
}

uint64_t session_round_rate(struct rmig_session *s)
{
	uint64_t sent = session_bytes_sent(s), now = session_now_us(), bytes, start;

	pthread_mutex_lock(&s->lock);
	if (!s->nrounds) {
		pthread_mutex_unlock(&s->lock);
		return 0;
	}
	if (!s->round_open) {
		const struct rmig_round_stats *last = &s->rounds[s->nrounds - 1];
		uint64_t rate =
			last->duration_us
				? (uint64_t)((double)last->bytes * 1e6 / (double)last->duration_us)
				: 0;

		pthread_mutex_unlock(&s->lock);
		return rate;
	}
	start = s->rounds[s->nrounds - 1].duration_us;
	bytes = sent - session_bytes_recorded_locked(s);
	pthread_mutex_unlock(&s->lock);
	return now > start ? (uint64_t)((double)bytes * 1e6 / (double)(now - start)) : 0;
}

void session_count_pages(struct rmig_session *s, uint64_t pages, uint64_t zero_pages,
			 uint64_t data_bytes)
{
	pthread_mutex_lock(&s->lock);
	s->stats.pages_sent += pages;
	s->stats.zero_pages += zero_pages;
	s->stats.data_bytes += data_bytes;
	if (s->nrounds) {
		struct rmig_round_stats *r = &s->rounds[s->nrounds - 1];

		r->pages += pages;
		r->zero_pages += zero_pages;
		r->data_bytes += data_bytes;
	}
	pthread_mutex_unlock(&s->lock);
}

void session_histogram_update(struct rmig_session *s)
{
	uint64_t histogram[4] = {0};
	uint64_t multiple = 0;
	uint32_t most = 0;

	for (size_t i = 0; i < s->nregions; i++) {
		const uint8_t *count = s->regions[i].src.send_count;

		if (!count)
			continue;
		for (size_t p = 0; p < s->regions[i].npages; p++) {
			if (!count[p])
				continue;
			histogram[count[p] >= 4 ? 3 : count[p] - 1]++;
			multiple += count[p] > 1;
			if (count[p] > most)
				most = count[p];
		}
	}
	pthread_mutex_lock(&s->lock);
	memcpy(s->stats.pages_sent_histogram, histogram, sizeof(histogram));
	s->stats.pages_sent_multiple = multiple;
	s->stats.pages_sent_max = most;
	pthread_mutex_unlock(&s->lock);
}
