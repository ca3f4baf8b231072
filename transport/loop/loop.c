/* SPDX-License-Identifier: MIT */
/* transport/loop/loop.c - "loop:name": both peers in one process, memcpy as the wire. Same semantics
 * as tcp (checks, commits after data, reads from REMOTE_READ regions, reset on close) so the
 * engine and the transport tests run anywhere; counters are kept as if tcp's frames crossed. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "transport/deadline.h"
#include "transport/log.h"
#include "transport/queue.h"
#include "transport/transport.h"
#include "transport/transport_impl.h"
#include "transport/wire.h"

/* tcp splits page data into frames of at most this many bytes, cut at multiples of it; loop
 * counts headers the same way. */
#define LOOP_FRAME_DATA_MAX (4u << 20)

struct loop_msg {
	struct transport_queued entry; /* in the receiving side's incoming queue */
	struct transport_msg msg;
	struct transport_run *runs;
	void *data;
};

struct loop_pair;

struct loop_conn {
	struct transport_conn base;
	struct loop_pair *pair;
	int side;		/* index of this conn in pair->side */
	pthread_cond_t arrived; /* incoming grew or the peer left; waits under pair->lock */
	struct transport_queue incoming; /* of struct loop_msg, under pair->lock */
	int peer_gone;
};

/* Shared by the two ends. memory_lock is held for reading while bytes move between the two
 * sides' regions and for writing while a region is revoked or a side leaves, so a region is
 * never unmapped under a copy. lock guards the queues and the side pointers.
 * Lock order: memory_lock -> lock -> either side's base.region_lock (one at a time; a leaf).
 * loop_registry_lock is never held together with any of them. */
struct loop_pair {
	pthread_rwlock_t memory_lock;
	pthread_mutex_t lock;
	struct loop_conn *side[2];
	int refs;
};

struct loop_listener {
	struct transport_listener base;
	struct loop_listener *next;
	char name[TRANSPORT_URI_MAX];
	pthread_cond_t pending_arrived; /* waits under loop_registry_lock */
	struct loop_conn *pending[16];
	size_t npending;
};

/* Process-wide: the listeners by name. Taken alone: a listener's pending connections are
 * closed only after it is released. */
static pthread_mutex_t loop_registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct loop_listener *loop_registry;

static struct loop_conn *loop_conn_of(struct transport_conn *conn)
{
	return container_of(conn, struct loop_conn, base);
}

static void loop_stats_add(struct transport_conn *conn, int sent, uint64_t bytes,
			   uint64_t data_bytes)
{
	pthread_mutex_lock(conn->region_lock);
	if (sent) {
		conn->stats.bytes_sent += bytes;
		conn->stats.data_bytes_sent += data_bytes;
	} else {
		conn->stats.bytes_received += bytes;
		conn->stats.data_bytes_received += data_bytes;
	}
	pthread_mutex_unlock(conn->region_lock);
}

static int loop_conn_status(struct transport_conn *conn)
{
	int failed;

	pthread_mutex_lock(conn->region_lock);
	failed = conn->failed;
	pthread_mutex_unlock(conn->region_lock);
	return failed;
}

/* A goodbye is no error worth an error log, but every later call fails. */
static int loop_peer_closed(struct transport_conn *conn)
{
	int ret;

	pthread_mutex_lock(conn->region_lock);
	if (!conn->failed) {
		conn->failed = -ECONNRESET;
		snprintf(conn->error, sizeof(conn->error), "the peer closed the connection");
		rmig_log_info("loop %s: the peer closed the connection", conn->peer);
	}
	ret = conn->failed;
	pthread_mutex_unlock(conn->region_lock);
	return ret;
}

static void loop_msg_free(struct loop_msg *m)
{
	free(m->runs);
	free(m->data);
	free(m);
}

/* Caller holds pair->lock. */
static struct loop_conn *loop_peer_locked(struct loop_conn *lc)
{
	return lc->pair->side[!lc->side];
}

static void loop_msg_entry_free(struct transport_queued *entry)
{
	loop_msg_free(container_of(entry, struct loop_msg, entry));
}

/* No bound: the sender is in this process and waits for nothing. */
static void loop_enqueue_locked(struct loop_conn *to, struct loop_msg *m)
{
	transport_queue_push(&to->incoming, &m->entry,
			     sizeof(*m) + m->msg.nruns * sizeof(*m->runs) + m->msg.len);
	pthread_cond_signal(&to->arrived);
}

static int loop_conn_create(struct loop_pair *pair, int side, const char *peer,
			    struct loop_conn **conn_p)
{
	struct loop_conn *lc = calloc(1, sizeof(*lc));
	int ret;

	if (!lc)
		return -ENOMEM;
	ret = transport_conn_init(&lc->base, &loop_transport_ops, peer);
	if (ret) {
		free(lc);
		return ret;
	}
	lc->pair = pair;
	lc->side = side;
	transport_cond_init(&lc->arrived);
	transport_queue_init(&lc->incoming, loop_msg_entry_free);
	*conn_p = lc;
	return 0;
}

static void loop_conn_destroy(struct loop_conn *lc)
{
	transport_queue_fini(&lc->incoming);
	pthread_cond_destroy(&lc->arrived);
	transport_conn_fini(&lc->base);
	free(lc);
}

/* Both ends live in one process: a peer cannot go silent without this side going too. The
 * engine's heartbeat still covers a peer thread that stops. */
static int loop_peer_timeout_set(struct transport_conn *conn, uint32_t timeout_ms)
{
	(void)conn;
	(void)timeout_ms;
	return 0;
}

static void loop_close(struct transport_conn *conn)
{
	struct loop_conn *lc = loop_conn_of(conn);
	struct loop_pair *pair = lc->pair;
	struct loop_conn *peer;
	int last;

	pthread_rwlock_wrlock(&pair->memory_lock);
	pthread_mutex_lock(&pair->lock);
	peer = loop_peer_locked(lc);
	if (peer) {
		peer->peer_gone = 1;
		pthread_cond_broadcast(&peer->arrived);
	}
	pair->side[lc->side] = NULL;
	last = --pair->refs == 0;
	pthread_mutex_unlock(&pair->lock);
	pthread_rwlock_unlock(&pair->memory_lock);

	loop_conn_destroy(lc);
	if (last) {
		pthread_mutex_destroy(&pair->lock);
		pthread_rwlock_destroy(&pair->memory_lock);
		free(pair);
	}
}

static struct loop_listener *loop_registry_find_locked(const char *name)
{
	for (struct loop_listener *l = loop_registry; l; l = l->next)
		if (!strcmp(l->name, name))
			return l;
	return NULL;
}

static int loop_listen(const char *uri, const struct transport_options *opts,
		       struct transport_listener **listener_p)
{
	struct transport_uri parsed;
	struct loop_listener *l;
	int ret;

	(void)opts;
	ret = transport_uri_parse(uri, &parsed);
	if (ret)
		return ret;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->base.ops = &loop_transport_ops;
	snprintf(l->name, sizeof(l->name), "%s", parsed.host);
	transport_cond_init(&l->pending_arrived);

	pthread_mutex_lock(&loop_registry_lock);
	if (loop_registry_find_locked(l->name)) {
		pthread_mutex_unlock(&loop_registry_lock);
		rmig_log_error("loop: listener '%s' already exists", l->name);
		ret = -EADDRINUSE;
		goto err_free_listener;
	}
	l->next = loop_registry;
	loop_registry = l;
	pthread_mutex_unlock(&loop_registry_lock);
	*listener_p = &l->base;
	return 0;

err_free_listener:
	pthread_cond_destroy(&l->pending_arrived);
	free(l);
	return ret;
}

static int loop_listener_uri(struct transport_listener *listener, char *buf, size_t len)
{
	struct loop_listener *l = container_of(listener, struct loop_listener, base);
	int n = snprintf(buf, len, "loop:%s", l->name);

	if (n < 0 || (size_t)n >= len)
		return -ENOSPC;
	return 0;
}

static int loop_accept(struct transport_listener *listener, int timeout_ms,
		       struct transport_conn **conn_p)
{
	struct loop_listener *l = container_of(listener, struct loop_listener, base);
	struct timespec deadline;
	struct loop_conn *lc;

	if (timeout_ms >= 0)
		transport_deadline(timeout_ms, &deadline);
	pthread_mutex_lock(&loop_registry_lock);
	while (l->npending == 0) {
		int ret = transport_cond_wait(&l->pending_arrived, &loop_registry_lock,
					      timeout_ms < 0 ? NULL : &deadline);

		if (ret == -ETIMEDOUT && l->npending == 0) {
			pthread_mutex_unlock(&loop_registry_lock);
			return -ETIMEDOUT;
		}
	}
	lc = l->pending[0];
	memmove(&l->pending[0], &l->pending[1], (l->npending - 1) * sizeof(l->pending[0]));
	l->npending--;
	pthread_mutex_unlock(&loop_registry_lock);
	*conn_p = &lc->base;
	return 0;
}

static void loop_listener_close(struct transport_listener *listener)
{
	struct loop_listener *l = container_of(listener, struct loop_listener, base);

	pthread_mutex_lock(&loop_registry_lock);
	for (struct loop_listener **p = &loop_registry; *p; p = &(*p)->next) {
		if (*p == l) {
			*p = l->next;
			break;
		}
	}
	pthread_mutex_unlock(&loop_registry_lock);
	/* Peers that connected but were never accepted see a reset. */
	for (size_t i = 0; i < l->npending; i++)
		loop_close(&l->pending[i]->base);
	pthread_cond_destroy(&l->pending_arrived);
	free(l);
}

static int loop_connect(const char *uri, const struct transport_options *opts,
			struct transport_conn **conn_p)
{
	const uint64_t hello_bytes = sizeof(struct wire_hdr) + sizeof(struct wire_hello);
	struct transport_uri parsed;
	struct loop_listener *l;
	struct loop_pair *pair;
	struct loop_conn *client, *server;
	char peer[TRANSPORT_URI_MAX];
	int ret;

	(void)opts;
	ret = transport_uri_parse(uri, &parsed);
	if (ret)
		return ret;
	pair = calloc(1, sizeof(*pair));
	if (!pair)
		return -ENOMEM;
	pthread_rwlock_init(&pair->memory_lock, NULL);
	pthread_mutex_init(&pair->lock, NULL);
	snprintf(peer, sizeof(peer), "loop:%.240s", parsed.host);
	ret = loop_conn_create(pair, 0, peer, &client);
	if (ret)
		goto err_free_pair;
	ret = loop_conn_create(pair, 1, "loop:client", &server);
	if (ret)
		goto err_destroy_client;
	pair->side[0] = client;
	pair->side[1] = server;
	pair->refs = 2;
	/* Counted as the hello each side sends over tcp. */
	client->base.stats.bytes_sent = client->base.stats.bytes_received = hello_bytes;
	server->base.stats.bytes_sent = server->base.stats.bytes_received = hello_bytes;

	pthread_mutex_lock(&loop_registry_lock);
	l = loop_registry_find_locked(parsed.host);
	if (!l || l->npending == sizeof(l->pending) / sizeof(l->pending[0])) {
		pthread_mutex_unlock(&loop_registry_lock);
		rmig_log_error("loop: nobody %s on '%s'", l ? "accepts" : "listens", parsed.host);
		ret = -ECONNREFUSED;
		goto err_destroy_server;
	}
	l->pending[l->npending++] = server;
	pthread_cond_signal(&l->pending_arrived);
	pthread_mutex_unlock(&loop_registry_lock);
	*conn_p = &client->base;
	return 0;

err_destroy_server:
	loop_conn_destroy(server);
err_destroy_client:
	loop_conn_destroy(client);
err_free_pair:
	pthread_mutex_destroy(&pair->lock);
	pthread_rwlock_destroy(&pair->memory_lock);
	free(pair);
	return ret;
}

static int loop_region_register(struct transport_conn *conn, uint32_t id, void *addr, size_t len,
				unsigned access)
{
	const uint64_t frame_bytes = sizeof(struct wire_hdr) + sizeof(struct wire_region);
	struct loop_conn *lc = loop_conn_of(conn);
	struct transport_region region = {.id = id, .access = access, .addr = addr, .length = len};
	struct transport_region advertised = region;
	struct loop_conn *peer;
	int ret;

	if (access & ~(unsigned)(TRANSPORT_ACCESS_REMOTE_WRITE | TRANSPORT_ACCESS_REMOTE_READ)) {
		rmig_log_error("loop: region %u: unknown access bits 0x%x", id, access);
		return -EINVAL;
	}
	if (!addr || len == 0) {
		rmig_log_error("loop: region %u: empty (addr %p, length %zu)", id, addr, len);
		return -EINVAL;
	}
	ret = transport_region_add(conn, 0, &region);
	if (ret) {
		rmig_log_error("loop: region %u: %s", id,
			       ret == -EEXIST ? "id already registered" : "cannot record it");
		return ret;
	}
	if (!(access & (TRANSPORT_ACCESS_REMOTE_WRITE | TRANSPORT_ACCESS_REMOTE_READ)))
		return 0;

	/* What WIRE_REGION_ADD would tell the peer: no address, it must not see ours. */
	advertised.addr = NULL;
	pthread_mutex_lock(&lc->pair->lock);
	peer = loop_peer_locked(lc);
	if (peer)
		ret = transport_region_add(&peer->base, 1, &advertised);
	pthread_mutex_unlock(&lc->pair->lock);
	if (!peer) {
		transport_region_remove(conn, 0, id, NULL);
		return loop_peer_closed(conn);
	}
	if (ret) {
		transport_region_remove(conn, 0, id, NULL);
		rmig_log_error("loop: region %u: the peer cannot record it (%d)", id, ret);
		return ret;
	}
	loop_stats_add(conn, 1, frame_bytes, 0);
	loop_stats_add(&peer->base, 0, frame_bytes, 0);
	return 0;
}

static int loop_region_deregister(struct transport_conn *conn, uint32_t id)
{
	struct loop_conn *lc = loop_conn_of(conn);
	struct loop_pair *pair = lc->pair;
	struct transport_region removed;
	struct loop_conn *peer;
	int ret;

	/* Write lock: no copy may still be touching the region once this returns. */
	pthread_rwlock_wrlock(&pair->memory_lock);
	ret = transport_region_remove(conn, 0, id, &removed);
	if (ret) {
		pthread_rwlock_unlock(&pair->memory_lock);
		rmig_log_error("loop: deregister region %u: not registered", id);
		return ret;
	}
	pthread_mutex_lock(&pair->lock);
	peer = loop_peer_locked(lc);
	pthread_mutex_unlock(&pair->lock);
	if (peer &&
	    (removed.access & (TRANSPORT_ACCESS_REMOTE_WRITE | TRANSPORT_ACCESS_REMOTE_READ))) {
		transport_region_remove(&peer->base, 1, id, NULL);
		loop_stats_add(conn, 1, sizeof(struct wire_hdr) + sizeof(struct wire_region), 0);
		loop_stats_add(&peer->base, 0, sizeof(struct wire_hdr) + sizeof(struct wire_region),
			       0);
	}
	pthread_rwlock_unlock(&pair->memory_lock);
	return 0;
}

/* The memory lock's write side waits for any copy into or out of the region; from its release
 * on, the peer's batches and reads are checked against the new access. Then the peer's view
 * follows, as tcp's region-del / region-add frames would make it. */
static int loop_region_access_set(struct transport_conn *conn, uint32_t id, unsigned access)
{
	const uint64_t frame_bytes = sizeof(struct wire_hdr) + sizeof(struct wire_region);
	struct loop_conn *lc = loop_conn_of(conn);
	struct loop_pair *pair = lc->pair;
	struct transport_region region, advertised;
	unsigned old_access, frames = 0;
	struct loop_conn *peer;
	int ret;

	pthread_rwlock_wrlock(&pair->memory_lock);
	ret = transport_region_find(conn, 0, id, &region);
	if (ret) {
		pthread_rwlock_unlock(&pair->memory_lock);
		return ret;
	}
	old_access = region.access;
	region.access = access;
	transport_region_update(conn, 0, &region);
	pthread_mutex_lock(&pair->lock);
	peer = loop_peer_locked(lc);
	pthread_mutex_unlock(&pair->lock);
	if (peer && (old_access & TRANSPORT_ACCESS_REMOTE)) {
		transport_region_remove(&peer->base, 1, id, NULL);
		frames++;
	}
	if (peer && (access & TRANSPORT_ACCESS_REMOTE)) {
		advertised = region;
		advertised.addr = NULL;
		ret = transport_region_add(&peer->base, 1, &advertised);
		frames++;
	}
	pthread_rwlock_unlock(&pair->memory_lock);
	if (peer) {
		loop_stats_add(conn, 1, frames * frame_bytes, 0);
		loop_stats_add(&peer->base, 0, frames * frame_bytes, 0);
	}
	if (!peer && (access & ~old_access))
		return loop_peer_closed(conn);
	if (ret)
		rmig_log_error("loop: region %u: the peer cannot record it (%d)", id, ret);
	return ret;
}

/* tcp cuts runs at absolute LOOP_FRAME_DATA_MAX boundaries of the region. */
static uint64_t loop_data_frames(uint64_t offset, uint64_t length)
{
	return (offset + length - 1) / LOOP_FRAME_DATA_MAX - offset / LOOP_FRAME_DATA_MAX + 1;
}

static int loop_batch_post(struct transport_conn *conn, uint64_t batch_id,
			   const struct transport_run *runs, size_t nruns)
{
	struct loop_conn *lc = loop_conn_of(conn);
	struct loop_pair *pair = lc->pair;
	uint64_t wire_bytes, data_bytes = 0;
	char why[TRANSPORT_ERROR_MAX];
	struct loop_conn *peer;
	struct loop_msg *m;
	int ret;

	ret = loop_conn_status(conn);
	if (ret)
		return ret;
	ret = transport_batch_check(conn, batch_id, runs, nruns);
	if (ret)
		return ret;

	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->runs = malloc(nruns * sizeof(*m->runs));
	if (!m->runs) {
		ret = -ENOMEM;
		goto err_free_msg;
	}
	memcpy(m->runs, runs, nruns * sizeof(*runs));
	m->msg.type = TRANSPORT_MSG_COMMIT;
	m->msg.batch_id = batch_id;
	m->msg.runs = m->runs;
	m->msg.nruns = nruns;
	wire_bytes = sizeof(struct wire_hdr) + sizeof(struct wire_commit) +
		     nruns * sizeof(struct wire_run);

	pthread_rwlock_rdlock(&pair->memory_lock);
	pthread_mutex_lock(&pair->lock);
	peer = loop_peer_locked(lc);
	pthread_mutex_unlock(&pair->lock);
	if (!peer) {
		ret = loop_peer_closed(conn);
		goto err_unlock_memory;
	}
	/* The receiver's own check, as tcp's receive path does it against its table. */
	ret = transport_runs_check(&peer->base, 0, TRANSPORT_ACCESS_REMOTE_WRITE, runs, nruns, why,
				   sizeof(why));
	if (ret) {
		rmig_log_error("loop %s: batch %llu refused by the peer: %s", conn->peer,
			       (unsigned long long)batch_id, why);
		goto err_unlock_memory;
	}
	struct transport_region src = {0}, dst = {0};
	int found = 0;

	for (size_t i = 0; i < nruns; i++) {
		if (runs[i].flags & TRANSPORT_RUN_ZERO)
			continue;
		/* Batches mostly name one region: look it up again only when the id changes. */
		if (!found || src.id != runs[i].region_id) {
			if (transport_region_find(conn, 0, runs[i].region_id, &src) ||
			    transport_region_find(&peer->base, 0, runs[i].region_id, &dst)) {
				ret = -ENOENT;
				goto err_unlock_memory;
			}
			found = 1;
		}
		memmove((char *)dst.addr + runs[i].offset, (char *)src.addr + runs[i].offset,
			runs[i].length);
		data_bytes += runs[i].length;
		wire_bytes += loop_data_frames(runs[i].offset, runs[i].length) *
			      (sizeof(struct wire_hdr) + sizeof(struct wire_data));
	}
	/* Counted before the commit is visible, so a received commit is already counted. */
	pthread_mutex_lock(conn->region_lock);
	conn->stats.bytes_sent += wire_bytes + data_bytes;
	conn->stats.data_bytes_sent += data_bytes;
	conn->stats.batches_sent++;
	pthread_mutex_unlock(conn->region_lock);
	pthread_mutex_lock(peer->base.region_lock);
	peer->base.stats.bytes_received += wire_bytes + data_bytes;
	peer->base.stats.data_bytes_received += data_bytes;
	peer->base.stats.batches_received++;
	pthread_mutex_unlock(peer->base.region_lock);
	pthread_mutex_lock(&pair->lock);
	loop_enqueue_locked(peer, m);
	pthread_mutex_unlock(&pair->lock);
	pthread_rwlock_unlock(&pair->memory_lock);
	return 0;

err_unlock_memory:
	pthread_rwlock_unlock(&pair->memory_lock);
err_free_msg:
	loop_msg_free(m);
	return ret;
}

static int loop_flush(struct transport_conn *conn, int timeout_ms)
{
	(void)timeout_ms;
	/* Every post has completed before it returned. */
	return loop_conn_status(conn);
}

static int loop_ctrl_send(struct transport_conn *conn, const void *buf, size_t len)
{
	struct loop_conn *lc = loop_conn_of(conn);
	const uint64_t wire_bytes = sizeof(struct wire_hdr) + len;
	struct loop_conn *peer;
	struct loop_msg *m;
	int ret;

	ret = loop_conn_status(conn);
	if (ret)
		return ret;
	if (len > TRANSPORT_CTRL_MAX)
		return -EMSGSIZE;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->data = malloc(len ? len : 1);
	if (!m->data) {
		free(m);
		return -ENOMEM;
	}
	if (len)
		memcpy(m->data, buf, len);
	m->msg.type = TRANSPORT_MSG_CTRL;
	m->msg.data = m->data;
	m->msg.len = len;

	pthread_mutex_lock(&lc->pair->lock);
	peer = loop_peer_locked(lc);
	if (peer) {
		loop_enqueue_locked(peer, m);
		pthread_mutex_lock(peer->base.region_lock);
		peer->base.stats.bytes_received += wire_bytes;
		peer->base.stats.ctrl_received++;
		pthread_mutex_unlock(peer->base.region_lock);
	}
	pthread_mutex_unlock(&lc->pair->lock);
	if (!peer) {
		loop_msg_free(m);
		return loop_peer_closed(conn);
	}
	pthread_mutex_lock(conn->region_lock);
	conn->stats.bytes_sent += wire_bytes;
	conn->stats.ctrl_sent++;
	pthread_mutex_unlock(conn->region_lock);
	return 0;
}

static int loop_recv(struct transport_conn *conn, struct transport_msg *msg, int timeout_ms)
{
	struct loop_conn *lc = loop_conn_of(conn);
	struct loop_pair *pair = lc->pair;
	struct transport_queued *entry;
	struct timespec deadline;
	int ret;

	if (timeout_ms >= 0)
		transport_deadline(timeout_ms, &deadline);
	pthread_mutex_lock(&pair->lock);
	transport_queue_release(&lc->incoming);
	/* Messages queued before the peer left are still delivered, as tcp would. */
	while (!lc->incoming.head && !lc->peer_gone) {
		ret = transport_cond_wait(&lc->arrived, &pair->lock,
					  timeout_ms < 0 ? NULL : &deadline);
		if (ret == -ETIMEDOUT && !lc->incoming.head && !lc->peer_gone) {
			pthread_mutex_unlock(&pair->lock);
			return -ETIMEDOUT;
		}
	}
	entry = transport_queue_pop(&lc->incoming);
	pthread_mutex_unlock(&pair->lock);
	if (!entry)
		return loop_peer_closed(conn);
	*msg = container_of(entry, struct loop_msg, entry)->msg;
	return 0;
}

static int loop_read(struct transport_conn *conn, uint32_t region_id, uint64_t offset, void *dst,
		     size_t len, int timeout_ms)
{
	const struct transport_run run = {.region_id = region_id, .offset = offset, .length = len};
	struct loop_conn *lc = loop_conn_of(conn);
	struct loop_pair *pair = lc->pair;
	struct transport_region src;
	char why[TRANSPORT_ERROR_MAX];
	struct loop_conn *peer;
	int ret;

	(void)timeout_ms;
	ret = loop_conn_status(conn);
	if (ret)
		return ret;
	ret = transport_runs_check(conn, 1, TRANSPORT_ACCESS_REMOTE_READ, &run, 1, why,
				   sizeof(why));
	if (ret) {
		rmig_log_error("loop %s: read refused: %s", conn->peer, why);
		return ret;
	}
	pthread_rwlock_rdlock(&pair->memory_lock);
	pthread_mutex_lock(&pair->lock);
	peer = loop_peer_locked(lc);
	pthread_mutex_unlock(&pair->lock);
	if (!peer) {
		ret = loop_peer_closed(conn);
		goto out_unlock;
	}
	/* The peer serves reads from its own table, as tcp's receive thread does. */
	ret = transport_runs_check(&peer->base, 0, TRANSPORT_ACCESS_REMOTE_READ, &run, 1, why,
				   sizeof(why));
	if (!ret)
		ret = transport_region_find(&peer->base, 0, region_id, &src);
	if (ret) {
		rmig_log_error("loop %s: read refused by the peer: %s", conn->peer, why);
		goto out_unlock;
	}
	memcpy(dst, (char *)src.addr + offset, len);
	loop_stats_add(&peer->base, 0, sizeof(struct wire_hdr) + sizeof(struct wire_read_req), 0);
	loop_stats_add(&peer->base, 1,
		       sizeof(struct wire_hdr) + sizeof(struct wire_read_resp) + len, 0);
	pthread_mutex_lock(conn->region_lock);
	conn->stats.bytes_sent += sizeof(struct wire_hdr) + sizeof(struct wire_read_req);
	conn->stats.bytes_received += sizeof(struct wire_hdr) + sizeof(struct wire_read_resp) + len;
	conn->stats.reads++;
	conn->stats.read_bytes += len;
	pthread_mutex_unlock(conn->region_lock);
out_unlock:
	pthread_rwlock_unlock(&pair->memory_lock);
	return ret;
}

const struct transport_ops loop_transport_ops = {
	.scheme = "loop",
	.listen = loop_listen,
	.listener_uri = loop_listener_uri,
	.accept = loop_accept,
	.listener_close = loop_listener_close,
	.connect = loop_connect,
	.region_register = loop_region_register,
	.region_deregister = loop_region_deregister,
	.region_access_set = loop_region_access_set,
	.batch_post = loop_batch_post,
	.flush = loop_flush,
	.ctrl_send = loop_ctrl_send,
	.recv = loop_recv,
	.read = loop_read,
	.peer_timeout_set = loop_peer_timeout_set,
	.close = loop_close,
};
