/* SPDX-License-Identifier: MIT */
/* engine/session.c - the session object both roles share: parameters, regions, the last error
 * and what runs. Statistics and round records: session_stats.c; the connection and the control
 * messages: session_conn.c; run/start/wait/destroy: session_run.c. */
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
		if (p->verify > RMIG_VERIFY_SAMPLE)
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
	if (s->role == RMIG_ROLE_SOURCE) {
		r->src.dirty = calloc(bitmap_words(r->npages), sizeof(uint64_t));
		r->src.send_count = calloc(r->npages, 1);
	} else {
		r->dst.arrived = calloc(bitmap_words(r->npages), sizeof(uint64_t));
		r->dst.hashed = calloc(bitmap_words(r->npages), sizeof(uint64_t));
		r->dst.hashes = malloc(r->npages * sizeof(uint64_t));
	}
	if (s->role == RMIG_ROLE_SOURCE ? !r->src.dirty || !r->src.send_count
					: !r->dst.arrived || !r->dst.hashed || !r->dst.hashes) {
		free(r->src.dirty);
		free(r->src.send_count);
		free(r->dst.arrived);
		free(r->dst.hashed);
		free(r->dst.hashes);
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

uint32_t session_pull_target_id(const struct rmig_session *s)
{
	uint32_t id = UINT32_MAX;

	/* Regions take at most nregions ids: the id steps down at most that many times. */
	for (size_t i = 0; i < s->nregions;) {
		if (s->regions[i].id == id) {
			id--;
			i = 0;
		} else {
			i++;
		}
	}
	return id;
}

size_t session_pull_target_bytes(const struct rmig_session *s)
{
	const struct session_region *r = &s->regions[0];
	size_t bytes = (r->npages < POSTCOPY_FAULT_CLUSTER ? r->npages : POSTCOPY_FAULT_CLUSTER) *
		       r->page_size;

	return bytes < POSTCOPY_PULL_TARGET_MAX ? bytes : POSTCOPY_PULL_TARGET_MAX;
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
	kind = (int)r->src.dirty_kind;
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
		memcpy(counts, r->src.send_count, n);
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

void session_error_append(struct rmig_session *s, const char *text)
{
	size_t used;

	pthread_mutex_lock(&s->lock);
	used = strlen(s->last_error);
	snprintf(s->last_error + used, sizeof(s->last_error) - used, "%s", text);
	memcpy(s->call_error, s->last_error, sizeof(s->call_error));
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
