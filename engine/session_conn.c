/* SPDX-License-Identifier: MIT */
/* engine/session_conn.c - a session's connection: listen and connect (after the key check),
 * the heartbeat started with it, control messages (send, and receive through the heartbeat with
 * the session's timeout), the peer's abort and this side's, and the disconnect that keeps the
 * final transport counters. */
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
#include "engine/predict.h"
#include "engine/protocol.h"
#include "engine/postcopy_recover.h"
#include "engine/session.h"
#include "transport/log.h"

/* How long a side whose connection failed waits for what the peer sent before it went. */
#define SESSION_PEER_REASON_WAIT_MS 1000

/* How long a side that aborted keeps the connection open for the peer to read why. */
#define SESSION_ABORT_LINGER_MS 3000

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
	uint64_t t0;
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
	t0 = session_now_us();
	ret = transport_connect(uri, &opts, &conn);
	if (ret)
		return session_refuse(s, ret, "cannot connect to %s: %s%s%s%s", uri,
				      session_strerror(ret), *rmig_log_last_error() ? " (" : "",
				      rmig_log_last_error(), *rmig_log_last_error() ? ")" : "");
	rmig_log_info("source: connected to %s in %.1f ms", uri,
		      (double)(session_now_us() - t0) / 1000.0);
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
	s->src.pull_loaded_us = m.pull_us;
	s->src.pull_loaded_pulls = m.pulls;
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
