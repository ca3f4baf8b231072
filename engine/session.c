/* SPDX-License-Identifier: MIT */
/* engine/session.c - the session object both roles share: parameters, regions, connection set
 * up, the run/start/wait/cancel state machine, control-message helpers, last error and
 * statistics (totals and one record per round, which add up to the totals). */
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
	s->stats.struct_size = sizeof(s->stats);
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

void session_destroy(struct rmig_session *s)
{
	if (!s)
		return;
	if (s->thread_started) {
		session_cancel(s);
		pthread_join(s->thread, NULL);
	}
	/* The post-copy machinery goes first: its fault thread reads through the connection. */
	postcopy_dest_destroy(s);
	session_disconnect(s);
	for (size_t i = 0; i < s->nregions; i++) {
		struct session_region *r = &s->regions[i];

		if (r->tracker)
			dirty_source_destroy(r->tracker);
		predict_destroy(r->predict);
		free(r->dirty);
		free(r->send_count);
		free(r->pending);
		free(r->held);
		free(r->fresh);
		free(r->postcopy);
		free(r->arrived);
		free(r->hashed);
		free(r->hashes);
	}
	postcopy_recover_destroy(s);
	free(s->regions);
	free(s->rounds);
	free(s->msg_buf);
	session_tls_clear(s);
	pthread_cond_destroy(&s->finished_cond);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

static const char *session_role_prefix(const struct rmig_session *s);

static int session_check_idle(struct rmig_session *s, const char *what)
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

void session_transport_options(struct rmig_session *s, const char *uri,
			       struct transport_options *opts)
{
	memset(opts, 0, sizeof(*opts));
	session_tls_options(s, uri, opts);
	opts->streams = s->params.streams;
	/* A peer that does not answer the connection is as dead as one that stops answering. */
	opts->connect_timeout_ms =
		(int)(s->params.timeout_ms < s->peer_timeout_ms ? s->params.timeout_ms
								: s->peer_timeout_ms);
	opts->peer_timeout_ms = s->peer_timeout_ms;
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

/* The first networked step: nothing goes on the network without a key, unless the caller
 * opted out, which is logged for every session that does. */
static int session_credentials_check(struct rmig_session *s, const char *what)
{
	/* x509 certificates, verified both ways, are a credential of their own. */
	if (s->params.key_len || s->tls.mode == TRANSPORT_TLS_X509)
		return 0;
	if (!s->insecure)
		return session_refuse(
			s, -EPERM,
			"%s: no key: set one (rmig_params.key, RMIG_PARAM_KEY), use x509 "
			"certificates (rmig_session_set_tls()) or opt out of authentication "
			"with rmig_session_set_insecure()",
			what);
	rmig_log_warn("%s INSECURE: %s without a key (rmig_session_set_insecure): any peer "
		      "that reaches this one can %s",
		      session_role_prefix(s), what,
		      s->role == RMIG_ROLE_SOURCE ? "receive the guest's RAM"
						  : "write the guest's RAM");
	return 0;
}

int session_listen(struct rmig_session *s, const char *uri)
{
	struct transport_options opts;
	int ret;

	ret = session_check_idle(s, "listen");
	if (ret)
		return ret;
	if (s->role != RMIG_ROLE_DESTINATION || s->listener)
		return session_refuse(s, -EINVAL, "listen: only a destination listens, once");
	ret = session_credentials_check(s, "listen");
	if (ret)
		return ret;
	session_transport_options(s, uri, &opts);
	rmig_log_last_error_clear();
	ret = transport_listen(uri, &opts, &s->listener);
	if (ret)
		return session_refuse(s, ret, "cannot listen on %s: %s%s%s%s", uri,
				      session_strerror(ret), *rmig_log_last_error() ? " (" : "",
				      rmig_log_last_error(), *rmig_log_last_error() ? ")" : "");
	postcopy_recover_listened(s, uri);
	return 0;
}

int session_listen_uri(struct rmig_session *s, char *buf, size_t len)
{
	int ret;

	if (!s->listener)
		return session_refuse(s, -EINVAL, "listen uri: the session is not listening");
	ret = transport_listener_uri(s->listener, buf, len);
	if (ret)
		return session_refuse(s, ret, "listen uri: %s", session_strerror(ret));
	return 0;
}

int session_connect(struct rmig_session *s, const char *uri)
{
	struct transport_options opts;
	struct transport_conn *conn;
	int ret;

	ret = session_check_idle(s, "connect");
	if (ret)
		return ret;
	if (s->role != RMIG_ROLE_SOURCE || s->conn)
		return session_refuse(s, -EINVAL, "connect: only a source connects, once");
	ret = session_credentials_check(s, "connect");
	if (ret)
		return ret;
	session_transport_options(s, uri, &opts);
	rmig_log_last_error_clear();
	ret = transport_connect(uri, &opts, &conn);
	if (ret)
		return session_refuse(s, ret, "cannot connect to %s: %s%s%s%s", uri,
				      session_strerror(ret), *rmig_log_last_error() ? " (" : "",
				      rmig_log_last_error(), *rmig_log_last_error() ? ")" : "");
	session_conn_set(s, conn);
	snprintf(s->peer_uri, sizeof(s->peer_uri), "%s", uri);
	return 0;
}

void session_conn_set(struct rmig_session *s, struct transport_conn *conn)
{
	pthread_mutex_lock(&s->lock);
	s->conn = conn;
	pthread_mutex_unlock(&s->lock);
	if (conn) {
		int ret = transport_peer_timeout_set(conn, s->peer_timeout_ms);

		if (ret)
			rmig_log_warn("%s the transport cannot apply the dead-peer deadline of %u "
				      "ms (%s): the heartbeat still applies it",
				      session_role_prefix(s), s->peer_timeout_ms, strerror(-ret));
		heartbeat_start(s);
	}
}

static const char *session_role_prefix(const struct rmig_session *s)
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

static void session_transport_stats_add(struct transport_stats *sum,
					const struct transport_stats *more)
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

/* Under s->lock. */
static void session_stats_refresh_locked(struct rmig_session *s, struct rmig_stats *out)
{
	struct transport_stats ts;
	uint64_t now = session_now_us();

	*out = s->stats;
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

/* How long a side whose connection failed waits for what the peer sent before it went. */
#define SESSION_PEER_REASON_WAIT_MS 1000

int session_peer_reason(struct rmig_session *s)
{
	uint64_t deadline = session_now_us() + SESSION_PEER_REASON_WAIT_MS * 1000u;
	char why[TRANSPORT_ERROR_MAX];

	/* The transport hands out what arrived before the close first, and reports the close
	 * once nothing is left; an ABORT among them says why the peer went. */
	for (;;) {
		uint64_t now = session_now_us();
		struct protocol_abort abort_msg;
		struct transport_msg msg;
		const void *payload;
		size_t len;

		if (now >= deadline ||
		    transport_recv(s->conn, &msg, (int)((deadline - now) / 1000u)) != 0)
			return 0;
		if (msg.type == TRANSPORT_MSG_CTRL &&
		    protocol_parse(msg.data, msg.len, &payload, &len, why, sizeof(why)) ==
			    PROTOCOL_ABORT &&
		    protocol_abort_from_wire(payload, len, &abort_msg, why, sizeof(why)) == 0)
			return session_peer_aborted(s, &abort_msg);
	}
}

int session_ctrl_send(struct rmig_session *s, size_t len)
{
	int ret;

	ret = transport_ctrl_send(s->conn, s->msg_buf, len);
	if (ret) {
		int peer = session_peer_reason(s);

		if (peer)
			return peer;
		return session_fail(s, ret, "sending a control message to %s: %s%s%s",
				    s->conn->peer, session_strerror(ret),
				    transport_error(s->conn)[0] ? ": " : "",
				    transport_error(s->conn));
	}
	return 0;
}

int session_ctrl_recv(struct rmig_session *s, const char *waiting_for, const void **payload_p,
		      size_t *len_p)
{
	uint64_t deadline = session_now_us() + (uint64_t)s->params.timeout_ms * 1000u;
	char why[TRANSPORT_ERROR_MAX];
	struct transport_msg msg;
	const void *payload;
	size_t len;
	int ret, type;

	for (;;) {
		if (session_cancelled(s) && !s->point_of_no_return)
			return session_fail(s, -ECANCELED, "cancelled while waiting for %s",
					    waiting_for);
		ret = heartbeat_recv(s, &msg, 100);
		if (ret == -EHOSTDOWN)
			return ret;
		if (ret == -ETIMEDOUT) {
			if (session_now_us() >= deadline)
				return session_fail(s, -ETIMEDOUT, "no %s from %s within %u ms",
						    waiting_for, s->conn->peer,
						    s->params.timeout_ms);
			continue;
		}
		if (ret)
			return session_fail(s, ret, "waiting for %s from %s: %s%s%s", waiting_for,
					    s->conn->peer, session_strerror(ret),
					    transport_error(s->conn)[0] ? ": " : "",
					    transport_error(s->conn));
		break;
	}
	if (msg.type != TRANSPORT_MSG_CTRL)
		return session_fail(s, -EPROTO, "%s sent a batch of pages while %s was expected",
				    s->conn->peer, waiting_for);
	type = protocol_parse(msg.data, msg.len, &payload, &len, why, sizeof(why));
	if (type < 0)
		return session_fail(s, type, "%s broke the protocol: %s", s->conn->peer, why);
	if (type == PROTOCOL_PULL_REPORT && s->role == RMIG_ROLE_SOURCE) {
		/* auto's test pulls may be reported after it decided: noted, not an answer. */
		ret = session_pull_report(s, payload, len);
		if (ret)
			return ret;
		return session_ctrl_recv(s, waiting_for, payload_p, len_p);
	}
	if (type == PROTOCOL_ABORT) {
		struct protocol_abort abort_msg;

		ret = protocol_abort_from_wire(payload, len, &abort_msg, why, sizeof(why));
		if (ret)
			return session_fail(s, ret, "%s broke the protocol: %s", s->conn->peer,
					    why);
		return session_peer_aborted(s, &abort_msg);
	}
	*payload_p = payload;
	*len_p = len;
	return type;
}

int session_pull_report(struct rmig_session *s, const void *payload, size_t len)
{
	char why[TRANSPORT_ERROR_MAX];
	struct protocol_pull m;
	int ret;

	ret = protocol_pull_from_wire(payload, len, &m, why, sizeof(why));
	if (ret)
		return session_fail(s, ret, "%s broke the protocol: %s", s->conn->peer, why);
	if (s->params.method != RMIG_METHOD_AUTO || !(m.flags & PROTOCOL_PULL_MEASURED))
		return session_fail(
			s, -EPROTO,
			"%s reported test pulls the source did not ask for (flags 0x%x)",
			s->conn->peer, m.flags);
	s->pull_loaded_us = m.pull_us;
	s->pull_loaded_pulls = m.pulls;
	return 0;
}

int session_ctrl_poll(struct rmig_session *s, int wait_ms)
{
	char why[TRANSPORT_ERROR_MAX];
	struct transport_msg msg;
	const void *payload;
	size_t len;
	int ret, type;

	for (;; wait_ms = 0) {
		ret = heartbeat_recv(s, &msg, wait_ms);
		if (ret == -ETIMEDOUT)
			return 0;
		if (ret == -EHOSTDOWN)
			return ret;
		if (ret)
			return session_fail(s, ret, "connection to %s: %s%s%s", s->conn->peer,
					    session_strerror(ret),
					    transport_error(s->conn)[0] ? ": " : "",
					    transport_error(s->conn));
		if (msg.type != TRANSPORT_MSG_CTRL)
			return session_fail(s, -EPROTO, "%s sent a batch of pages to the source",
					    s->conn->peer);
		type = protocol_parse(msg.data, msg.len, &payload, &len, why, sizeof(why));
		if (type < 0)
			return session_fail(s, type, "%s broke the protocol: %s", s->conn->peer,
					    why);
		if (type == PROTOCOL_PULL_REPORT) {
			ret = session_pull_report(s, payload, len);
			if (ret)
				return ret;
			continue;
		}
		if (type == PROTOCOL_ABORT) {
			struct protocol_abort abort_msg;

			ret = protocol_abort_from_wire(payload, len, &abort_msg, why, sizeof(why));
			if (ret)
				return session_fail(s, ret, "%s broke the protocol: %s",
						    s->conn->peer, why);
			return session_peer_aborted(s, &abort_msg);
		}
		return session_fail(s, -EPROTO, "%s sent %s in the middle of a round",
				    s->conn->peer, protocol_type_name(type));
	}
}

int session_peer_aborted(struct rmig_session *s, const struct protocol_abort *abort_msg)
{
	/* The peer's cancel is not ours: this side did not ask to stop. */
	int code = abort_msg->code == -ECANCELED ? -ECONNABORTED : abort_msg->code;

	s->peer_aborted = 1;
	return session_fail(s, code, "the %s (%s) aborted: %s",
			    s->role == RMIG_ROLE_SOURCE ? "destination" : "source", s->conn->peer,
			    abort_msg->reason);
}

/* How long a side that aborted keeps the connection open for the peer to read why. */
#define SESSION_ABORT_LINGER_MS 3000

void session_abort_send(struct rmig_session *s, int code, const char *reason)
{
	uint64_t deadline;

	/* A peer that aborted has gone already; a failed connection carries nothing. */
	if (!s->conn || s->conn->failed || s->peer_aborted)
		return;
	if (code >= 0 || code < -4095)
		code = -EIO;
	transport_ctrl_send(s->conn, s->msg_buf, protocol_abort_to_wire(code, reason, s->msg_buf));
	/* The abort must reach the peer before the connection goes. */
	transport_flush(s->conn, 1000);
	/* And the peer must read it: closing now, with the peer's pages still arriving, could
	 * reset the connection under it before it read the abort (its sends fail first, and the
	 * reason is lost). So keep receiving, and dropping, what it sends until it closes its
	 * end, which it does as soon as it reads the abort (a source checks for one between
	 * batches), or until the linger runs out. */
	deadline = session_now_us() + SESSION_ABORT_LINGER_MS * 1000u;
	for (;;) {
		uint64_t now = session_now_us();
		struct transport_msg msg;

		if (now >= deadline ||
		    transport_recv(s->conn, &msg, (int)((deadline - now) / 1000u)) != 0)
			break;
	}
}

void session_conn_drop(struct rmig_session *s)
{
	struct transport_conn *conn;

	/* Detach under the lock first: a stats reader on another thread must never see a
	 * connection that is being closed. */
	heartbeat_stop(s);
	pthread_mutex_lock(&s->lock);
	conn = s->conn;
	if (conn) {
		struct transport_stats last;

		transport_stats_get(conn, &last);
		session_transport_stats_add(&s->earlier_transport, &last);
		s->final_transport = s->earlier_transport;
		s->conn = NULL;
	}
	pthread_mutex_unlock(&s->lock);
	if (conn)
		transport_close(conn);
}

void session_disconnect(struct rmig_session *s)
{
	session_conn_drop(s);
	if (s->listener) {
		transport_listener_close(s->listener);
		s->listener = NULL;
	}
}

/* A failure after the destination resumed the VM, in the post-copy family: the source cannot
 * take it back and the destination lacks pages. */
static int session_vm_lost(const struct rmig_session *s)
{
	if (!s->point_of_no_return)
		return 0;
	return s->role == RMIG_ROLE_DESTINATION || session_method_is_postcopy(s->method);
}

int session_run(struct rmig_session *s)
{
	int ret;

	pthread_mutex_lock(&s->lock);
	if (s->started && !s->thread_started) {
		pthread_mutex_unlock(&s->lock);
		return session_refuse(s, -EBUSY, "run: the migration has already run");
	}
	s->started = 1;
	s->last_error[0] = '\0';
	s->call_error[0] = '\0';
	pthread_mutex_unlock(&s->lock);

	if (s->nregions == 0)
		ret = session_fail(s, -EINVAL, "no guest RAM region was added");
	else if (s->role == RMIG_ROLE_SOURCE)
		ret = source_run(s);
	else
		ret = dest_run(s);

	pthread_mutex_lock(&s->lock);
	if (ret == 0)
		s->stats.status = RMIG_STATUS_COMPLETED;
	else if (session_vm_lost(s))
		s->stats.status = RMIG_STATUS_LOST;
	else if (ret == -ECANCELED)
		s->stats.status = RMIG_STATUS_CANCELLED;
	else
		s->stats.status = RMIG_STATUS_FAILED;
	if (s->start_us)
		s->stats.total_time_ms = (session_now_us() - s->start_us) / 1000u;
	/* A failed run paused the guest too: from the pause until the run gave up (the source
	 * has resumed it by then, unless it was lost). */
	if (ret && s->pause_us && !s->stats.downtime_ms)
		s->stats.downtime_ms = (session_now_us() - s->pause_us) / 1000u;
	pthread_mutex_unlock(&s->lock);
	session_progress(s, RMIG_EVENT_DONE);
	return ret;
}

static void *session_thread_main(void *arg)
{
	struct rmig_session *s = arg;
	int ret = session_run(s);

	pthread_mutex_lock(&s->lock);
	s->result = ret;
	s->finished = 1;
	pthread_cond_broadcast(&s->finished_cond);
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

int session_start(struct rmig_session *s)
{
	int ret;

	pthread_mutex_lock(&s->lock);
	if (s->started) {
		pthread_mutex_unlock(&s->lock);
		return session_refuse(s, -EBUSY, "start: the migration has already started");
	}
	s->started = 1;
	s->thread_started = 1;
	pthread_mutex_unlock(&s->lock);
	ret = -pthread_create(&s->thread, NULL, session_thread_main, s);
	if (ret) {
		pthread_mutex_lock(&s->lock);
		s->started = 0;
		s->thread_started = 0;
		pthread_mutex_unlock(&s->lock);
		return session_refuse(s, ret, "start: cannot create the migration thread: %s",
				      session_strerror(ret));
	}
	return 0;
}

int session_wait(struct rmig_session *s, int timeout_ms)
{
	int result, ret = session_wait_result(s, timeout_ms, &result);

	if (ret == -EINPROGRESS)
		return -ETIMEDOUT;
	return ret ? ret : result;
}

int session_wait_result(struct rmig_session *s, int timeout_ms, int *result_p)
{
	struct timespec deadline;
	int ret = 0;

	if (!s->thread_started)
		return session_refuse(s, -EINVAL, "wait: the migration was not started");
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	if (timeout_ms >= 0) {
		deadline.tv_sec += timeout_ms / 1000;
		deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
		if (deadline.tv_nsec >= 1000000000L) {
			deadline.tv_sec++;
			deadline.tv_nsec -= 1000000000L;
		}
	}
	pthread_mutex_lock(&s->lock);
	while (!s->finished && ret != ETIMEDOUT) {
		if (timeout_ms < 0)
			pthread_cond_wait(&s->finished_cond, &s->lock);
		else
			ret = pthread_cond_timedwait(&s->finished_cond, &s->lock, &deadline);
	}
	if (!s->finished) {
		pthread_mutex_unlock(&s->lock);
		return -EINPROGRESS;
	}
	*result_p = s->result;
	pthread_mutex_unlock(&s->lock);
	return 0;
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
