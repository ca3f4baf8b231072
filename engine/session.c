/* SPDX-License-Identifier: MIT */
/* engine/session.c - the session object both roles share: parameters, regions, last error and
 * statistics (totals and one record per round, which add up to the totals). The connection and
 * the control messages: session_conn.c; run/start/wait/destroy: session_run.c. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/bitmap.h"
#include "engine/dirty.h"
#include "engine/heartbeat.h"
#include "engine/postcopy.h"
#include "engine/postcopy_recover.h"
#include "engine/predict.h"
#include "engine/protocol.h"
#include "engine/session.h"
#include "transport/log.h"

uint64_t session_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

unsigned session_pause_threads(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1u : n > DIRTY_HASH_THREADS_MAX ? DIRTY_HASH_THREADS_MAX : (unsigned)n;
}

int session_create(uint32_t role, struct rmig_session **session_p)
{
	struct rmig_session *s;
	pthread_condattr_t attr;

	if (role != RMIG_ROLE_SOURCE && role != RMIG_ROLE_DESTINATION) {
		rmig_log_info("session: role %u is neither source (1) nor destination (2)", role);
		return -EINVAL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->msg_buf = malloc(TRANSPORT_CTRL_MAX);
	if (!s->msg_buf) {
		free(s);
		return -ENOMEM;
	}
	s->role = role;
	s->params.method = RMIG_METHOD_PRECOPY;
	s->params.policy = RMIG_POLICY_QEMU;
	s->params.downtime_ms = SESSION_DEFAULT_DOWNTIME_MS;
	s->params.max_rounds = SESSION_DEFAULT_MAX_ROUNDS;
	s->params.dirty_source = RMIG_DIRTY_AUTO;
	s->params.verify = RMIG_VERIFY_ALL;
	s->params.streams = 1;
	s->params.timeout_ms = SESSION_DEFAULT_TIMEOUT_MS;
	s->peer_timeout_ms = HEARTBEAT_DEFAULT_DEADLINE_MS;
	s->stats.status = RMIG_STATUS_NONE;
	s->stats.method = RMIG_METHOD_PRECOPY;
	s->stats.method_used = RMIG_METHOD_PRECOPY;
	s->stats.policy_used = RMIG_POLICY_QEMU;
	s->method = RMIG_METHOD_PRECOPY;
	s->policy = RMIG_POLICY_QEMU;
	pthread_mutex_init(&s->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&s->finished_cond, &attr);
	pthread_condattr_destroy(&attr);
	atomic_init(&s->cancel_requested, 0);
	if (postcopy_recover_create(s)) {
		pthread_cond_destroy(&s->finished_cond);
		pthread_mutex_destroy(&s->lock);
		free(s->msg_buf);
		free(s);
		return -ENOMEM;
	}
	*session_p = s;
	return 0;
}

int session_check_idle(struct rmig_session *s, const char *what)
{
	if (s->started)
		return session_refuse(s, -EBUSY, "%s: the migration has already started", what);
	return 0;
}

int session_set_params(struct rmig_session *s, const struct rmig_params *p)
{
	const uint64_t known = RMIG_PARAM_METHOD | RMIG_PARAM_POLICY | RMIG_PARAM_DOWNTIME_MS |
			       RMIG_PARAM_BANDWIDTH_LIMIT | RMIG_PARAM_MAX_ROUNDS |
			       RMIG_PARAM_DIRTY_SOURCE | RMIG_PARAM_VERIFY | RMIG_PARAM_KEY |
			       RMIG_PARAM_STREAMS | RMIG_PARAM_TIMEOUT_MS;
	struct rmig_params next;
	int ret;

	ret = session_check_idle(s, "set params");
	if (ret)
		return ret;
	if (!p)
		return session_refuse(s, -EINVAL, "set params: params is NULL");
	if (p->field_mask & ~known)
		return session_refuse(s, -EINVAL, "set params: unknown field_mask bits 0x%llx",
				      (unsigned long long)(p->field_mask & ~known));
	next = s->params;
	if (p->field_mask & RMIG_PARAM_METHOD) {
		if (p->method > RMIG_METHOD_AUTO)
			goto err_range;
		next.method = p->method;
	}
	if (p->field_mask & RMIG_PARAM_POLICY) {
		if (p->policy > RMIG_POLICY_XEN)
			goto err_range;
		next.policy = p->policy;
	}
	if (p->field_mask & RMIG_PARAM_DOWNTIME_MS)
		next.downtime_ms = p->downtime_ms ? p->downtime_ms : SESSION_DEFAULT_DOWNTIME_MS;
	if (p->field_mask & RMIG_PARAM_BANDWIDTH_LIMIT)
		next.bandwidth_limit = p->bandwidth_limit;
	if (p->field_mask & RMIG_PARAM_MAX_ROUNDS)
		next.max_rounds = p->max_rounds ? p->max_rounds : SESSION_DEFAULT_MAX_ROUNDS;
	if (p->field_mask & RMIG_PARAM_DIRTY_SOURCE) {
		if (p->dirty_source > RMIG_DIRTY_HASH)
			goto err_range;
		next.dirty_source = p->dirty_source;
	}
	if (p->field_mask & RMIG_PARAM_VERIFY) {
		if (p->verify > RMIG_VERIFY_NONE)
			goto err_range;
		next.verify = p->verify;
	}
	if (p->field_mask & RMIG_PARAM_KEY) {
		if (p->key_len > RMIG_KEY_MAX || (p->key_len && !p->key))
			goto err_range;
		next.key_len = p->key_len;
		next.key = NULL;
	}
	if (p->field_mask & RMIG_PARAM_STREAMS) {
		if (p->streams == 0 || p->streams > SESSION_STREAMS_MAX)
			return session_refuse(s, -EINVAL, "set params: streams %u is not 1..%u",
					      p->streams, SESSION_STREAMS_MAX);
		next.streams = p->streams;
	}
	if (p->field_mask & RMIG_PARAM_TIMEOUT_MS)
		next.timeout_ms = p->timeout_ms ? p->timeout_ms : SESSION_DEFAULT_TIMEOUT_MS;
	if (p->reserved)
		goto err_range;
	if (p->field_mask & RMIG_PARAM_KEY) {
		memset(s->key, 0, sizeof(s->key));
		if (p->key_len)
			memcpy(s->key, p->key, p->key_len);
	}
	s->params = next;
	s->stats.method = next.method;
	s->stats.method_used = next.method;
	s->stats.policy_used = next.policy;
	s->method = next.method;
	s->policy = next.policy;
	return 0;

err_range:
	return session_refuse(s, -EINVAL,
			      "set params: a value is out of range (method %u, policy %u, dirty "
			      "source %u, verify %u, key length %u, reserved %u)",
			      p->method, p->policy, p->dirty_source, p->verify, p->key_len,
			      p->reserved);
}

int session_set_callbacks(struct rmig_session *s, const struct rmig_callbacks *cb, void *opaque)
{
	const uint64_t known = RMIG_CB_DIRTY_SYNC | RMIG_CB_PAUSE_VM | RMIG_CB_DEVICE_STATE_READ |
			       RMIG_CB_DEVICE_STATE_WRITE | RMIG_CB_RESUME_VM | RMIG_CB_THROTTLE |
			       RMIG_CB_PROGRESS;
	struct rmig_callbacks next = {0};
	int ret;

	ret = session_check_idle(s, "set callbacks");
	if (ret)
		return ret;
	if (!cb)
		return session_refuse(s, -EINVAL, "set callbacks: callbacks is NULL");
	if (cb->field_mask & ~known)
		return session_refuse(s, -EINVAL, "set callbacks: unknown field_mask bits 0x%llx",
				      (unsigned long long)(cb->field_mask & ~known));
	next.field_mask = cb->field_mask;
#define SESSION_TAKE(bit, field)                                                               \
	do {                                                                                   \
		if (cb->field_mask & (bit)) {                                                  \
			if (!cb->field)                                                        \
				return session_refuse(s, -EINVAL,                              \
						      "set callbacks: " #field " is NULL but " \
						      "its field_mask bit is set");            \
			next.field = cb->field;                                                \
		}                                                                              \
	} while (0)
	SESSION_TAKE(RMIG_CB_DIRTY_SYNC, dirty_sync);
	SESSION_TAKE(RMIG_CB_PAUSE_VM, pause_vm);
	SESSION_TAKE(RMIG_CB_DEVICE_STATE_READ, device_state_read);
	SESSION_TAKE(RMIG_CB_DEVICE_STATE_WRITE, device_state_write);
	SESSION_TAKE(RMIG_CB_RESUME_VM, resume_vm);
	SESSION_TAKE(RMIG_CB_THROTTLE, throttle);
	SESSION_TAKE(RMIG_CB_PROGRESS, progress);
#undef SESSION_TAKE
	s->callbacks = next;
	s->opaque = opaque;
	return 0;
}

int session_region_add(struct rmig_session *s, uint32_t id, void *addr, size_t length,
		       size_t page_size)
{
	struct session_region *regions, *r;
	int ret;

	ret = session_check_idle(s, "region add");
	if (ret)
		return ret;
	if (page_size < 4096 || page_size > (1ul << 30) || (page_size & (page_size - 1)))
		return session_refuse(
			s, -EINVAL,
			"region %u: page size %zu is not a power of two in 4 KiB..1 GiB", id,
			page_size);
	if (!addr || ((uintptr_t)addr & (page_size - 1)) || length == 0 ||
	    (length & (page_size - 1)))
		return session_refuse(s, -EINVAL,
				      "region %u: address %p or length %zu not aligned to its "
				      "page size %zu",
				      id, addr, length, page_size);
	if (length > UINTPTR_MAX - (uintptr_t)addr)
		return session_refuse(s, -EINVAL,
				      "region %u: address %p + length %zu wraps the address space",
				      id, addr, length);
	if (session_region_find(s, id))
		return session_refuse(s, -EEXIST, "region %u: id already added", id);
	for (size_t i = 0; i < s->nregions; i++) {
		const struct session_region *other = &s->regions[i];
		uintptr_t start = (uintptr_t)addr, other_start = (uintptr_t)other->addr;

		/* Two regions sharing a byte would each migrate it: the destination's copy
		 * would depend on which region's page landed last. */
		if (start < other_start + other->length && other_start < start + length)
			return session_refuse(
				s, -EINVAL, "region %u [%p, +%zu) overlaps region %u [%p, +%zu)",
				id, addr, length, other->id, other->addr, other->length);
	}
	if (s->nregions >= PROTOCOL_REGIONS_MAX)
		return session_refuse(s, -ENOSPC, "region %u: at most %u regions", id,
				      PROTOCOL_REGIONS_MAX);
	regions = realloc(s->regions, (s->nregions + 1) * sizeof(*regions));
	if (!regions)
		return session_refuse(s, -ENOMEM, "region %u: out of memory", id);
	s->regions = regions;
	r = &regions[s->nregions];
	memset(r, 0, sizeof(*r));
	r->id = id;
	r->addr = addr;
	r->length = length;
	r->page_size = page_size;
	r->page_shift = (unsigned)__builtin_ctzl(page_size);
	r->npages = length / page_size;
	r->dirty = calloc(bitmap_words(r->npages), sizeof(uint64_t));
	if (s->role == RMIG_ROLE_SOURCE)
		r->send_count = calloc(r->npages, 1);
	else {
		r->arrived = calloc(bitmap_words(r->npages), sizeof(uint64_t));
		r->hashed = calloc(bitmap_words(r->npages), sizeof(uint64_t));
		r->hashes = malloc(r->npages * sizeof(uint64_t));
	}
	if (!r->dirty || (!r->send_count && (!r->arrived || !r->hashed || !r->hashes))) {
		free(r->dirty);
		free(r->send_count);
		free(r->arrived);
		free(r->hashed);
		free(r->hashes);
		return session_refuse(s, -ENOMEM, "region %u: out of memory for its %zu pages", id,
				      r->npages);
	}
	s->nregions++;
	s->stats.ram_bytes += length;
	return 0;
}

struct session_region *session_region_find(struct rmig_session *s, uint32_t id)
{
	for (size_t i = 0; i < s->nregions; i++) {
		if (s->regions[i].id == id)
			return &s->regions[i];
	}
	return NULL;
}

int session_region_dirty_source(struct rmig_session *s, uint32_t id)
{
	const struct session_region *r = session_region_find(s, id);
	int kind;

	if (s->role != RMIG_ROLE_SOURCE)
		return session_refuse(s, -EINVAL, "region %u: only a source tracks dirty pages",
				      id);
	if (!r)
		return session_refuse(s, -ENOENT, "region %u: no such region", id);
	pthread_mutex_lock(&s->lock);
	kind = (int)r->dirty_kind;
	pthread_mutex_unlock(&s->lock);
	return kind;
}

int session_region_send_counts(struct rmig_session *s, uint32_t id, uint8_t *counts, size_t npages)
{
	const struct session_region *r = session_region_find(s, id);
	size_t n;
	int running;

	if (s->role != RMIG_ROLE_SOURCE)
		return session_refuse(s, -EINVAL, "region %u: only a source sends pages", id);
	if (!r)
		return session_refuse(s, -ENOENT, "region %u: no such region", id);
	if (!counts && npages)
		return session_refuse(s, -EINVAL, "region %u: send counts: no buffer", id);
	pthread_mutex_lock(&s->lock);
	running = s->thread_started && !s->finished;
	pthread_mutex_unlock(&s->lock);
	/* The run thread counts without a lock (batch_build): read once it has ended. */
	if (running)
		return session_refuse(s, -EBUSY, "region %u: send counts: the migration still runs",
				      id);
	n = npages < r->npages ? npages : r->npages;
	if (n > INT32_MAX)
		n = INT32_MAX;
	if (n)
		memcpy(counts, r->send_count, n);
	return (int)n;
}

int session_set_insecure(struct rmig_session *s, int insecure)
{
	int ret = session_check_idle(s, "set insecure");

	if (ret)
		return ret;
	s->insecure = insecure != 0;
	return 0;
}

int session_set_peer_timeout(struct rmig_session *s, uint32_t timeout_ms)
{
	int ret = session_check_idle(s, "set peer timeout");

	if (ret)
		return ret;
	if (s->conn || s->listener)
		return session_refuse(s, -EBUSY,
				      "set peer timeout: before rmig_session_listen/connect");
	if (timeout_ms == 0)
		timeout_ms = HEARTBEAT_DEFAULT_DEADLINE_MS;
	if (timeout_ms < HEARTBEAT_MIN_DEADLINE_MS || timeout_ms > HEARTBEAT_MAX_DEADLINE_MS)
		return session_refuse(s, -EINVAL, "set peer timeout: %u ms is outside %u..%u",
				      timeout_ms, HEARTBEAT_MIN_DEADLINE_MS,
				      HEARTBEAT_MAX_DEADLINE_MS);
	s->peer_timeout_ms = timeout_ms;
	return 0;
}

const char *session_role_prefix(const struct rmig_session *s)
{
	return s->role == RMIG_ROLE_SOURCE ? "source:" : "destination:";
}

/* Record "ROLE: message" as the last failing call's reason and, when `run` and the run has
 * none yet, as the run's error; log it (at info: the caller gets err back and
 * rmig_last_error() says why, so only a caller whose log level asks sees it twice). */
static int session_error_record(struct rmig_session *s, int err, int run, const char *fmt,
				va_list ap)
{
	char message[SESSION_ERROR_MAX - 16];

	vsnprintf(message, sizeof(message), fmt, ap);
	pthread_mutex_lock(&s->lock);
	if (run && s->last_error[0]) {
		pthread_mutex_unlock(&s->lock);
		return err;
	}
	snprintf(s->call_error, sizeof(s->call_error), "%s %s", session_role_prefix(s), message);
	if (run)
		memcpy(s->last_error, s->call_error, sizeof(s->last_error));
	pthread_mutex_unlock(&s->lock);
	rmig_log_info("%s %s", session_role_prefix(s), message);
	return err;
}

int session_refuse(struct rmig_session *s, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	err = session_error_record(s, err, 0, fmt, ap);
	va_end(ap);
	return err;
}

int session_fail(struct rmig_session *s, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	err = session_error_record(s, err, 1, fmt, ap);
	va_end(ap);
	return err;
}

int session_cancelled(struct rmig_session *s)
{
	return atomic_load(&s->cancel_requested);
}

void session_status_set(struct rmig_session *s, uint32_t status)
{
	pthread_mutex_lock(&s->lock);
	s->stats.status = status;
	pthread_mutex_unlock(&s->lock);
}

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

int session_round_stats_get(struct rmig_session *s, uint32_t round, struct rmig_round_stats *stats)
{
	uint32_t size;
	int ret = -ENOENT;

	if (!stats || stats->struct_size < 2 * sizeof(uint32_t))
		return session_refuse(
			s, -EINVAL, "round stats: stats is NULL or its struct_size %u is below %zu",
			stats ? stats->struct_size : 0, 2 * sizeof(uint32_t));
	size = stats->struct_size < sizeof(*stats) ? stats->struct_size : sizeof(*stats);
	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < s->nrounds; i++) {
		if (s->rounds[i].round == round) {
			memcpy(stats, &s->rounds[i], size);
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

const char *session_method_reason(struct rmig_session *s)
{
	pthread_mutex_lock(&s->lock);
	memcpy(s->method_reason_copy, s->method_reason, sizeof(s->method_reason_copy));
	pthread_mutex_unlock(&s->lock);
	return s->method_reason_copy;
}

void session_method_set(struct rmig_session *s, uint32_t method, uint32_t policy, const char *fmt,
			...)
{
	va_list ap;

	pthread_mutex_lock(&s->lock);
	s->method = method;
	s->policy = policy;
	s->stats.method_used = method;
	s->stats.policy_used = policy;
	va_start(ap, fmt);
	vsnprintf(s->method_reason, sizeof(s->method_reason), fmt, ap);
	va_end(ap);
	pthread_mutex_unlock(&s->lock);
}

int session_method_is_postcopy(uint32_t method)
{
	return method == RMIG_METHOD_TSMC || method == RMIG_METHOD_POSTCOPY ||
	       method == RMIG_METHOD_HYBRID;
}

const char *session_last_error(struct rmig_session *s)
{
	pthread_mutex_lock(&s->lock);
	memcpy(s->last_error_copy, s->call_error, sizeof(s->last_error_copy));
	pthread_mutex_unlock(&s->lock);
	return s->last_error_copy;
}

size_t session_last_error_copy(struct rmig_session *s, char *buf, size_t len)
{
	size_t full;

	pthread_mutex_lock(&s->lock);
	full = strlen(s->call_error);
	if (len)
		snprintf(buf, len, "%s", s->call_error);
	pthread_mutex_unlock(&s->lock);
	return full;
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

void session_error_append(struct rmig_session *s, const char *text)
{
	size_t used;

	pthread_mutex_lock(&s->lock);
	used = strlen(s->last_error);
	snprintf(s->last_error + used, sizeof(s->last_error) - used, "%s", text);
	memcpy(s->call_error, s->last_error, sizeof(s->call_error));
	pthread_mutex_unlock(&s->lock);
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
		const uint8_t *count = s->regions[i].send_count;

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

int session_cancel(struct rmig_session *s)
{
	atomic_store(&s->cancel_requested, 1);
	return 0;
}

const char *session_strerror(int err)
{
	if (err < 0)
		err = -err;
	switch (err) {
	case 0:
		return "success";
	case ECANCELED:
		return "the migration was cancelled";
	case EOPNOTSUPP:
		return "not supported by this rmig build or this host (method, transport or dirty source)";
	case ENOENT:
		return "unknown region (the two hosts' region tables differ)";
	case EPROTO:
		return "the peer broke the rmig protocol";
	case ECONNRESET:
		return "the peer closed the connection";
	case ECONNABORTED:
		return "the peer aborted the migration";
	case ETIMEDOUT:
		return "the peer did not answer in time";
	case EHOSTDOWN:
		return "the peer is dead: nothing heard from it for the dead-peer deadline";
	case EPERM:
		return "no credential: set a key, or opt out of authentication explicitly";
	case EACCES:
		return "authentication failed or access refused";
	case EPROTONOSUPPORT:
		return "unknown or unavailable transport scheme";
	case EBUSY:
		return "the session has already started";
	default:
		return strerrordesc_np(err) ? strerrordesc_np(err) : "unknown error";
	}
}

const char *session_method_name(uint32_t method)
{
	static const char *const names[] = {
		[RMIG_METHOD_PRECOPY] = "precopy", [RMIG_METHOD_PREDICT] = "predict",
		[RMIG_METHOD_TSMC] = "tsmc",	   [RMIG_METHOD_POSTCOPY] = "postcopy",
		[RMIG_METHOD_HYBRID] = "hybrid",   [RMIG_METHOD_AUTO] = "auto",
	};

	return method < sizeof(names) / sizeof(names[0]) ? names[method] : "unknown";
}

_Static_assert((int)DIRTY_KIND_HYPERVISOR == (int)RMIG_DIRTY_HYPERVISOR &&
		       (int)DIRTY_KIND_UFFD_ASYNC == (int)RMIG_DIRTY_UFFD_ASYNC &&
		       (int)DIRTY_KIND_UFFD_SYNC == (int)RMIG_DIRTY_UFFD_SYNC &&
		       (int)DIRTY_KIND_HASH == (int)RMIG_DIRTY_HASH,
	       "the public and internal dirty kinds are numbered alike");

const char *session_status_name(uint32_t status)
{
	static const char *const names[] = {
		[RMIG_STATUS_NONE] = "none",	       [RMIG_STATUS_SETUP] = "setup",
		[RMIG_STATUS_ACTIVE] = "active",       [RMIG_STATUS_DEVICE] = "device",
		[RMIG_STATUS_COMPLETED] = "completed", [RMIG_STATUS_FAILED] = "failed",
		[RMIG_STATUS_CANCELLED] = "cancelled", [RMIG_STATUS_POSTCOPY] = "postcopy",
		[RMIG_STATUS_LOST] = "lost",	       [RMIG_STATUS_RECOVERING] = "recovering",
	};

	return status < sizeof(names) / sizeof(names[0]) ? names[status] : "unknown";
}
