/* SPDX-License-Identifier: MIT */
/* engine/heartbeat.c - dead-peer detection, the same in every phase and on both ends.
 *
 * Each connected side runs one thread that sends an empty PROTOCOL_HEARTBEAT every
 * deadline / HEARTBEAT_PER_DEADLINE, whatever the run thread is doing: a destination hashing
 * pages for verification or a source scanning its dirty log for seconds is slow, not dead, and
 * its peer keeps hearing from it. Every engine wait for the peer goes through heartbeat_recv(),
 * which drops heartbeats and fails the session with -EHOSTDOWN once nothing at all (heartbeat,
 * commit or control message) came for the deadline. Messages that queued while the run thread
 * was busy elsewhere are taken first and count as heard when taken, so a busy side never
 * mistakes its own absence for the peer's. A run thread blocked in the data path itself (a send
 * the peer never acknowledges) is ended by the transport (tcp: TCP_USER_TIMEOUT, rdma: the
 * queue pair's retry budget), which both take the same deadline. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/heartbeat.h"
#include "engine/protocol.h"
#include "engine/session.h"
#include "transport/deadline.h"
#include "transport/log.h"

struct heartbeat {
	struct rmig_session *session;
	struct transport_conn *conn;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t changed;
	int stop; /* under lock */
	unsigned interval_ms;
	unsigned char buf[sizeof(struct protocol_hdr)];
};

static void *heartbeat_main(void *arg)
{
	struct heartbeat *hb = arg;
	size_t len = protocol_heartbeat_to_wire(hb->buf);

	pthread_mutex_lock(&hb->lock);
	while (!hb->stop) {
		struct timespec next;
		int ret;

		transport_deadline((int)hb->interval_ms, &next);
		while (!hb->stop &&
		       transport_cond_wait(&hb->changed, &hb->lock, &next) != -ETIMEDOUT)
			;
		if (hb->stop)
			break;
		pthread_mutex_unlock(&hb->lock);
		ret = transport_ctrl_send(hb->conn, hb->buf, len);
		pthread_mutex_lock(&hb->lock);
		/* A failed connection carries nothing more: the run thread learns why from its
		 * own calls. */
		if (ret)
			break;
	}
	pthread_mutex_unlock(&hb->lock);
	return NULL;
}

int heartbeat_start(struct rmig_session *s)
{
	struct heartbeat *hb;
	int ret;

	s->heard_us = session_now_us();
	if (s->heartbeat || !s->conn)
		return 0;
	hb = calloc(1, sizeof(*hb));
	if (!hb)
		return -ENOMEM;
	hb->session = s;
	hb->conn = s->conn;
	hb->interval_ms = s->peer_timeout_ms / HEARTBEAT_PER_DEADLINE;
	if (hb->interval_ms == 0)
		hb->interval_ms = 1;
	pthread_mutex_init(&hb->lock, NULL);
	transport_cond_init(&hb->changed);
	ret = -pthread_create(&hb->thread, NULL, heartbeat_main, hb);
	if (ret) {
		rmig_log_warn("%s: cannot start the heartbeat thread (%s): the peer may count "
			      "this side as dead while it is busy",
			      s->role == RMIG_ROLE_SOURCE ? "source" : "destination",
			      strerror(-ret));
		pthread_cond_destroy(&hb->changed);
		pthread_mutex_destroy(&hb->lock);
		free(hb);
		return ret;
	}
	s->heartbeat = hb;
	return 0;
}

void heartbeat_stop(struct rmig_session *s)
{
	struct heartbeat *hb = s->heartbeat;

	if (!hb)
		return;
	pthread_mutex_lock(&hb->lock);
	hb->stop = 1;
	pthread_cond_broadcast(&hb->changed);
	pthread_mutex_unlock(&hb->lock);
	pthread_join(hb->thread, NULL);
	pthread_cond_destroy(&hb->changed);
	pthread_mutex_destroy(&hb->lock);
	free(hb);
	s->heartbeat = NULL;
}

/* Is msg the peer's heartbeat? A malformed one is left to the caller's parser, which refuses it
 * with the field named. */
static int heartbeat_is(const struct transport_msg *msg)
{
	char why[TRANSPORT_ERROR_MAX];
	const void *payload;
	size_t len;

	return msg->type == TRANSPORT_MSG_CTRL &&
	       protocol_parse(msg->data, msg->len, &payload, &len, why, sizeof(why)) ==
		       PROTOCOL_HEARTBEAT &&
	       len == 0;
}

/* The connection carries nothing more: an abort is not even tried (it could only wait for a
 * peer that does not answer). Recorded without a log line: the session's error says it. */
static void heartbeat_conn_dead(struct rmig_session *s)
{
	struct transport_conn *conn = s->conn;

	pthread_mutex_lock(conn->region_lock);
	if (!conn->failed) {
		conn->failed = -EHOSTDOWN;
		snprintf(conn->error, sizeof(conn->error), "nothing heard for %u ms",
			 s->peer_timeout_ms);
	}
	pthread_mutex_unlock(conn->region_lock);
}

int heartbeat_recv(struct rmig_session *s, struct transport_msg *msg, int timeout_ms)
{
	uint64_t deadline_us = (uint64_t)s->peer_timeout_ms * 1000u;
	uint64_t until =
		timeout_ms < 0 ? UINT64_MAX : session_now_us() + (uint64_t)timeout_ms * 1000u;

	for (;;) {
		uint64_t now = session_now_us();
		int wait_ms, ret;

		/* Wait no longer than the peer may stay silent, so its death is seen in time. The
		 * deadline passed while this thread was busy elsewhere (a long callback, a final
		 * round): what queued meanwhile is taken before the peer is called dead. */
		if (now - s->heard_us >= deadline_us) {
			const char *peer = s->role == RMIG_ROLE_SOURCE ? "destination" : "source";

			ret = transport_recv(s->conn, msg, 0);
			if (ret == 0) {
				s->heard_us = session_now_us();
				if (!heartbeat_is(msg))
					return 0;
				continue;
			}
			if (ret != -ETIMEDOUT && ret != -EHOSTDOWN)
				return ret;
			heartbeat_conn_dead(s);
			return session_fail(s, -EHOSTDOWN,
					    "the %s (%s) is dead: nothing heard from it for %u ms "
					    "(the dead-peer deadline)",
					    peer, s->conn->peer, s->peer_timeout_ms);
		}
		wait_ms = (int)((s->heard_us + deadline_us - now + 999u) / 1000u);
		if (until != UINT64_MAX) {
			if (now >= until)
				return -ETIMEDOUT;
			if ((until - now + 999u) / 1000u < (uint64_t)wait_ms)
				wait_ms = (int)((until - now + 999u) / 1000u);
		}
		ret = transport_recv(s->conn, msg, wait_ms);
		if (ret == -ETIMEDOUT)
			continue;
		if (ret == -EHOSTDOWN)
			return session_fail(s, -EHOSTDOWN, "the %s (%s) is dead: %s",
					    s->role == RMIG_ROLE_SOURCE ? "destination" : "source",
					    s->conn->peer, transport_error(s->conn));
		if (ret)
			return ret;
		s->heard_us = session_now_us();
		if (!heartbeat_is(msg))
			return 0;
	}
}
