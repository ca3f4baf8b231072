/* SPDX-License-Identifier: MIT */
/* engine/postcopy_recover.c - waiting for, making and proving the new connection of a post-copy
 * recovery (see postcopy_recover.h).
 *
 * The handshake of a recovery, over the new connection:
 *   source -> RECOVER     {flags, session id, nonce_s}
 *   dest   -> RECOVER_ACK {flags, nonce_d, proof_d}
 *   source -> AUTH        {proof_s}
 * with session id = HMAC(key, "rmig-session", first hello's nonce, first hello-ack's nonce), both
 * ends' own from the first handshake, and proof_x = HMAC(key, label_x, session id,
 * HMAC(key, "rmig-rnonce", nonce_s, nonce_d)): fresh nonces on both sides, so no proof of an
 * earlier connection serves again, and the id binds the proof to this migration (another
 * migration with the same key has another id). Then the destination lists the pages it lacks
 * (RECOVER_PAGES, RECOVER_READY) and its staging regions (POSTCOPY_READY); postcopy_source.c and
 * postcopy_dest.c do that part. A connection that fails any step is closed (with an abort
 * naming why, when it can still carry one) and the wait goes on: nothing of the session changes
 * before the proofs.
 *
 * Locks: rc->lock guards the operator's requests (uri, listener) and the recovering flag; it
 * is taken alone, or inside s->lock by postcopy_recover_stats_locked() (order: s->lock ->
 * rc->lock), never the other way round. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/bitmap.h"
#include "engine/heartbeat.h"
#include "engine/postcopy_recover.h"
#include "engine/postcopy_recover_state.h"
#include "engine/protocol.h"
#include "engine/session.h"
#include "transport/deadline.h"
#include "transport/log.h"

#define RECOVER_SESSION_LABEL "rmig-session"
#define RECOVER_NONCE_LABEL "rmig-rnonce"
#define RECOVER_SOURCE_LABEL "rmig-rsource"
#define RECOVER_DEST_LABEL "rmig-rdest"
/* A recovery connection must complete its proofs within this (and the dead-peer deadline). */
#define RECOVER_HANDSHAKE_MS 10000u
/* The source's connect attempts give up after this (and the dead-peer deadline), so that a
 * path that stays silent is tried again soon after it comes back (a connect still waiting when
 * the path returns would wait out its SYN's backoff). */
#define RECOVER_CONNECT_MS 2000u

static const char *recover_role(const struct rmig_session *s)
{
	return s->role == RMIG_ROLE_SOURCE ? "source" : "destination";
}

int postcopy_recover_set_window(struct rmig_session *s, uint32_t window_ms)
{
	if (s->started)
		return session_refuse(s, -EBUSY,
				      "set recovery window: the migration has already started");
	if (window_ms == 0)
		window_ms = POSTCOPY_RECOVER_DEFAULT_WINDOW_MS;
	if (window_ms < POSTCOPY_RECOVER_MIN_WINDOW_MS ||
	    window_ms > POSTCOPY_RECOVER_MAX_WINDOW_MS)
		return session_refuse(s, -EINVAL, "set recovery window: %u ms is outside %u..%u",
				      window_ms, POSTCOPY_RECOVER_MIN_WINDOW_MS,
				      POSTCOPY_RECOVER_MAX_WINDOW_MS);
	s->recovery->window_ms = window_ms;
	return 0;
}

static int recover_ended(struct rmig_session *s)
{
	uint32_t status;

	pthread_mutex_lock(&s->lock);
	status = s->stats.status;
	pthread_mutex_unlock(&s->lock);
	return status == RMIG_STATUS_COMPLETED || status == RMIG_STATUS_FAILED ||
	       status == RMIG_STATUS_CANCELLED || status == RMIG_STATUS_LOST;
}

int postcopy_recover_request(struct rmig_session *s, const char *uri)
{
	struct postcopy_recovery *rc = s->recovery;
	struct transport_listener *listener = NULL, *old = NULL;
	struct transport_uri parsed;
	int ret;

	if (!uri)
		return session_refuse(s, -EINVAL, "recover: uri is NULL");
	if (strlen(uri) >= sizeof(rc->uri))
		return session_refuse(s, -EINVAL, "recover: uri longer than %zu bytes",
				      sizeof(rc->uri) - 1);
	ret = transport_uri_parse(uri, &parsed);
	if (ret)
		return session_refuse(s, ret, "recover: '%s' is not a uri rmig can use", uri);
	if (recover_ended(s))
		return session_refuse(s, -EINVAL, "recover: the migration is over");
	pthread_mutex_lock(&rc->lock);
	if (s->role == RMIG_ROLE_DESTINATION && rc->recovering) {
		struct transport_options opts;

		/* Listen now, so that the caller learns at once whether the path can be used. */
		pthread_mutex_unlock(&rc->lock);
		session_transport_options(s, uri, &opts);
		ret = transport_listen(uri, &opts, &listener);
		if (ret)
			return session_refuse(s, ret, "recover: cannot listen on %s: %s", uri,
					      session_strerror(ret));
		pthread_mutex_lock(&rc->lock);
		old = rc->listener;
		rc->listener = listener;
	}
	snprintf(rc->uri, sizeof(rc->uri), "%s", uri);
	pthread_cond_broadcast(&rc->changed);
	pthread_mutex_unlock(&rc->lock);
	if (old)
		transport_listener_close(old);
	rmig_log_info("%s: post-copy recovery will use %s", recover_role(s), uri);
	return 0;
}

int postcopy_recover_bind(struct rmig_session *s, const uint8_t source_nonce[PROTOCOL_NONCE_LEN],
			  const uint8_t dest_nonce[PROTOCOL_NONCE_LEN])
{
	struct postcopy_recovery *rc = s->recovery;
	int ret;

	ret = protocol_mac(s->key, s->params.key_len, RECOVER_SESSION_LABEL, source_nonce,
			   dest_nonce, rc->session_id);
	if (ret)
		return session_fail(s, ret, "cannot derive the session id");
	rc->bound = 1;
	return 0;
}

int postcopy_recover_possible(struct rmig_session *s, int err)
{
	int failed;

	if (!err || !s->recovery->bound || !s->point_of_no_return || s->peer_aborted)
		return 0;
	if (s->role == RMIG_ROLE_SOURCE ? !session_method_is_postcopy(s->method) : !s->dst.postcopy)
		return 0;
	/* The connection itself failed (reset, dead peer, unacknowledged data): a live peer
	 * that answers wrongly or too late is not helped by another connection. */
	if (!s->conn)
		return 1;
	pthread_mutex_lock(s->conn->region_lock);
	failed = s->conn->failed;
	pthread_mutex_unlock(s->conn->region_lock);
	return failed != 0 || err == -EHOSTDOWN;
}

/* Forget the error of a connection that is being replaced: the run's error is what ends it. */
static void recover_error_clear(struct rmig_session *s)
{
	pthread_mutex_lock(&s->lock);
	s->last_error[0] = '\0';
	s->call_error[0] = '\0';
	pthread_mutex_unlock(&s->lock);
	s->peer_aborted = 0;
}

void postcopy_recover_begin(struct rmig_session *s, int err, int end_only)
{
	struct postcopy_recovery *rc = s->recovery;
	uint64_t now = session_now_us();
	uint32_t window = rc->window_ms;

	if (end_only && window > POSTCOPY_RECOVER_END_DEADLINES * s->peer_timeout_ms)
		window = POSTCOPY_RECOVER_END_DEADLINES * s->peer_timeout_ms;
	pthread_mutex_lock(&s->lock);
	snprintf(rc->cause_text, sizeof(rc->cause_text), "%s",
		 s->last_error[0] ? s->last_error : session_strerror(err));
	pthread_mutex_unlock(&s->lock);
	rc->cause = err;
	rc->end_only = end_only;
	rc->deadline_us = now + (uint64_t)window * 1000u;
	session_conn_drop(s);
	recover_error_clear(s);
	pthread_mutex_lock(&rc->lock);
	rc->recovering = 1;
	rc->since_us = now;
	pthread_mutex_unlock(&rc->lock);
	session_status_set(s, RMIG_STATUS_RECOVERING);
	rmig_log_warn("%s: post-copy paused, the connection is lost (%s); the VM runs on the "
		      "destination%s; waiting up to %u s for a new connection (%s)",
		      recover_role(s), rc->cause_text,
		      s->role == RMIG_ROLE_DESTINATION ? " and waits for the pages it lacks" : "",
		      window / 1000u,
		      s->role == RMIG_ROLE_DESTINATION ? "listening again" : "connecting again");
	session_progress(s, RMIG_EVENT_RECOVERING);
}

void postcopy_recover_end(struct rmig_session *s)
{
	struct postcopy_recovery *rc = s->recovery;
	uint64_t took;

	pthread_mutex_lock(&s->lock);
	pthread_mutex_lock(&rc->lock);
	took = (session_now_us() - rc->since_us) / 1000u;
	rc->recovering = 0;
	rc->recovered_ms += took;
	rc->recoveries++;
	pthread_mutex_unlock(&rc->lock);
	s->stats.status = RMIG_STATUS_POSTCOPY;
	pthread_mutex_unlock(&s->lock);
	recover_error_clear(s);
	rmig_log_warn("%s: post-copy recovered over %s after %llu ms; the tail goes on",
		      recover_role(s), s->conn->peer, (unsigned long long)took);
	session_progress(s, RMIG_EVENT_RECOVERED);
}

/* The recovery ends without a new connection. */
static void recover_stop(struct postcopy_recovery *rc)
{
	pthread_mutex_lock(&rc->lock);
	if (rc->recovering)
		rc->recovered_ms += (session_now_us() - rc->since_us) / 1000u;
	rc->recovering = 0;
	pthread_mutex_unlock(&rc->lock);
}

/* The window passed or the operator cancelled: the VM is lost. */
static int recover_lost(struct rmig_session *s, int cancelled)
{
	struct postcopy_recovery *rc = s->recovery;

	recover_stop(rc);
	if (cancelled)
		return session_fail(s, -ECANCELED,
				    "post-copy recovery cancelled (the connection was lost: %s)",
				    rc->cause_text);
	return session_fail(s, rc->cause,
			    "post-copy recovery: no new connection within the recovery window "
			    "of %u s (the connection was lost: %s)",
			    rc->window_ms / 1000u, rc->cause_text);
}

/* Wait up to ms for the operator (a new uri or listener), unless the window ends first. */
static void recover_pause(struct rmig_session *s, unsigned ms)
{
	struct postcopy_recovery *rc = s->recovery;
	uint64_t now = session_now_us();
	struct timespec until;

	if (now >= rc->deadline_us)
		return;
	if ((rc->deadline_us - now) / 1000u < ms)
		ms = (unsigned)((rc->deadline_us - now) / 1000u);
	transport_deadline((int)ms, &until);
	pthread_mutex_lock(&rc->lock);
	transport_cond_wait(&rc->changed, &rc->lock, &until);
	pthread_mutex_unlock(&rc->lock);
}

/* Receive the next control message of type want within until_us (heartbeats dropped). Its
 * type, -errno, or -EPROTO for another type. */
static int recover_recv(struct rmig_session *s, int want, uint64_t until_us, const void **payload_p,
			size_t *len_p)
{
	char why[TRANSPORT_ERROR_MAX];
	struct transport_msg msg;
	int type, ret;

	for (;;) {
		uint64_t now = session_now_us();

		if (now >= until_us)
			return session_fail(s, -ETIMEDOUT, "no %s from %s in time",
					    protocol_type_name(want), s->conn->peer);
		ret = heartbeat_recv(s, &msg, (int)((until_us - now + 999u) / 1000u));
		if (ret == -ETIMEDOUT)
			continue;
		if (ret)
			return session_fail(s, ret, "waiting for %s from %s: %s",
					    protocol_type_name(want), s->conn->peer,
					    session_strerror(ret));
		break;
	}
	if (msg.type != TRANSPORT_MSG_CTRL)
		return session_fail(s, -EPROTO, "%s sent a batch of pages instead of %s",
				    s->conn->peer, protocol_type_name(want));
	type = protocol_parse(msg.data, msg.len, payload_p, len_p, why, sizeof(why));
	if (type < 0)
		return session_fail(s, type, "%s broke the protocol: %s", s->conn->peer, why);
	if (type == PROTOCOL_ABORT) {
		struct protocol_abort abort_msg;

		ret = protocol_abort_from_wire(*payload_p, *len_p, &abort_msg, why, sizeof(why));
		if (ret)
			return session_fail(s, ret, "%s broke the protocol: %s", s->conn->peer,
					    why);
		return session_peer_aborted(s, &abort_msg);
	}
	if (type != want)
		return session_fail(s, -EPROTO, "%s sent %s instead of %s", s->conn->peer,
				    protocol_type_name(type), protocol_type_name(want));
	return type;
}

/* The proof of the side named by label over both fresh nonces, bound to the session id. */
static int recover_proof(struct rmig_session *s, const char *label,
			 const uint8_t nonce_s[PROTOCOL_NONCE_LEN],
			 const uint8_t nonce_d[PROTOCOL_NONCE_LEN], uint8_t mac[PROTOCOL_MAC_LEN])
{
	uint8_t inner[PROTOCOL_MAC_LEN];
	int ret;

	_Static_assert(PROTOCOL_MAC_LEN == PROTOCOL_NONCE_LEN, "a MAC stands in for a nonce");
	ret = protocol_mac(s->key, s->params.key_len, RECOVER_NONCE_LABEL, nonce_s, nonce_d, inner);
	if (!ret)
		ret = protocol_mac(s->key, s->params.key_len, label, s->recovery->session_id, inner,
				   mac);
	return ret;
}

/* A recovery connection failed: tell it why while it can still carry a message, close it. */
static void recover_refuse(struct rmig_session *s, int err)
{
	char reason[SESSION_ERROR_MAX];

	pthread_mutex_lock(&s->lock);
	snprintf(reason, sizeof(reason), "%s", s->last_error[0] ? s->last_error : "refused");
	pthread_mutex_unlock(&s->lock);
	rmig_log_warn("%s: a recovery connection %s%s failed (%s); still waiting", recover_role(s),
		      s->conn ? "with " : "", s->conn ? s->conn->peer : "", reason);
	if (err == -EACCES || err == -EPROTO)
		session_abort_send(s, err, reason);
	session_conn_drop(s);
	recover_error_clear(s);
}

static int recover_dest_handshake(struct rmig_session *s, uint64_t until_us)
{
	struct postcopy_recovery *rc = s->recovery;
	struct protocol_recover_ack ack = {0};
	struct protocol_recover hello;
	uint8_t mac[PROTOCOL_MAC_LEN], expected[PROTOCOL_MAC_LEN];
	char why[TRANSPORT_ERROR_MAX];
	const void *payload;
	size_t len;
	int ret;

	ret = recover_recv(s, PROTOCOL_RECOVER, until_us, &payload, &len);
	if (ret < 0)
		return ret;
	ret = protocol_recover_from_wire(payload, len, &hello, why, sizeof(why));
	if (ret)
		return session_fail(s, ret, "%s broke the protocol: %s", s->conn->peer, why);
	if (!!(hello.flags & PROTOCOL_HELLO_KEY) != !!s->params.key_len)
		return session_fail(s, -EACCES, "a key is configured on the %s only",
				    s->params.key_len ? "destination" : "source");
	if (!protocol_mac_equal(hello.session_id, rc->session_id))
		return session_fail(s, -EACCES, "%s asked to recover another migration",
				    s->conn->peer);
	ack.flags = s->params.key_len ? PROTOCOL_HELLO_KEY : 0;
	ret = protocol_nonce(ack.nonce);
	if (!ret)
		ret = recover_proof(s, RECOVER_DEST_LABEL, hello.nonce, ack.nonce, ack.mac);
	if (ret)
		return session_fail(s, ret, "the destination cannot compute its key proof");
	ret = session_ctrl_send(s, protocol_recover_ack_to_wire(&ack, s->msg_buf));
	if (ret)
		return ret;
	ret = recover_recv(s, PROTOCOL_AUTH, until_us, &payload, &len);
	if (ret < 0)
		return ret;
	ret = protocol_auth_from_wire(payload, len, mac, why, sizeof(why));
	if (ret)
		return session_fail(s, ret, "%s broke the protocol: %s", s->conn->peer, why);
	ret = recover_proof(s, RECOVER_SOURCE_LABEL, hello.nonce, ack.nonce, expected);
	if (ret || !protocol_mac_equal(mac, expected))
		return session_fail(s, -EACCES, "%s does not hold the session key", s->conn->peer);
	return 0;
}

/* The listener a recovery waits on: the operator's, else the first URI again. */
static int recover_dest_listener(struct rmig_session *s)
{
	struct postcopy_recovery *rc = s->recovery;
	struct transport_options opts;
	struct transport_listener *given;
	char uri[TRANSPORT_URI_MAX];
	int ret;

	pthread_mutex_lock(&rc->lock);
	given = rc->listener;
	rc->listener = NULL;
	snprintf(uri, sizeof(uri), "%s", rc->uri[0] ? rc->uri : rc->listen_uri);
	pthread_mutex_unlock(&rc->lock);
	if (given) {
		if (s->listener)
			transport_listener_close(s->listener);
		s->listener = given;
		return 0;
	}
	if (s->listener)
		return 0;
	session_transport_options(s, uri, &opts);
	ret = transport_listen(uri, &opts, &s->listener);
	if (ret)
		rmig_log_warn("destination: post-copy recovery cannot listen on %s yet: %s", uri,
			      session_strerror(ret));
	return ret;
}

int postcopy_recover_accept(struct rmig_session *s)
{
	struct postcopy_recovery *rc = s->recovery;

	for (;;) {
		struct transport_conn *conn;
		uint64_t now = session_now_us();
		int ret;

		if (session_cancelled(s))
			return recover_lost(s, 1);
		if (now >= rc->deadline_us) {
			if (rc->end_only) {
				recover_stop(rc);
				rmig_log_warn("destination: the source did not come back to learn "
					      "the end of post-copy; every page is here");
				return 1;
			}
			return recover_lost(s, 0);
		}
		if (recover_dest_listener(s)) {
			recover_pause(s, POSTCOPY_RECOVER_RETRY_MS);
			continue;
		}
		ret = transport_accept(s->listener, 200, &conn);
		if (ret == -ETIMEDOUT)
			continue;
		if (ret) {
			rmig_log_warn("destination: post-copy recovery: accept failed (%s)",
				      session_strerror(ret));
			transport_listener_close(s->listener);
			s->listener = NULL;
			recover_pause(s, POSTCOPY_RECOVER_RETRY_MS);
			continue;
		}
		session_conn_set(s, conn);
		ret = recover_dest_handshake(s, session_now_us() + RECOVER_HANDSHAKE_MS * 1000u);
		if (ret) {
			recover_refuse(s, ret);
			continue;
		}
		/* One source per session. */
		transport_listener_close(s->listener);
		s->listener = NULL;
		return 0;
	}
}

static int recover_source_handshake(struct rmig_session *s, uint64_t until_us)
{
	struct postcopy_recovery *rc = s->recovery;
	struct protocol_recover hello = {.flags = s->params.key_len ? PROTOCOL_HELLO_KEY : 0};
	struct protocol_recover_ack ack;
	uint8_t expected[PROTOCOL_MAC_LEN], mine[PROTOCOL_MAC_LEN];
	char why[TRANSPORT_ERROR_MAX];
	const void *payload;
	size_t len;
	int ret;

	/* The destination's faults pull from here as soon as it takes the recovery. */
	for (size_t i = 0; i < s->nregions; i++) {
		struct session_region *r = &s->regions[i];

		ret = transport_region_register(s->conn, r->id, r->addr, r->length,
						TRANSPORT_ACCESS_REMOTE_READ);
		if (ret)
			return session_fail(s, ret, "cannot register region %u: %s", r->id,
					    session_strerror(ret));
	}
	memcpy(hello.session_id, rc->session_id, sizeof(hello.session_id));
	ret = protocol_nonce(hello.nonce);
	if (ret)
		return session_fail(s, ret, "cannot draw a nonce: %s", session_strerror(ret));
	ret = session_ctrl_send(s, protocol_recover_to_wire(&hello, s->msg_buf));
	if (ret)
		return ret;
	ret = recover_recv(s, PROTOCOL_RECOVER_ACK, until_us, &payload, &len);
	if (ret < 0)
		return ret;
	ret = protocol_recover_ack_from_wire(payload, len, &ack, why, sizeof(why));
	if (ret)
		return session_fail(s, ret, "%s broke the protocol: %s", s->conn->peer, why);
	ret = recover_proof(s, RECOVER_DEST_LABEL, hello.nonce, ack.nonce, expected);
	if (!ret && !protocol_mac_equal(expected, ack.mac))
		return session_fail(s, -EACCES,
				    "%s does not hold the session key (its recovery proof differs)",
				    s->conn->peer);
	if (!ret)
		ret = recover_proof(s, RECOVER_SOURCE_LABEL, hello.nonce, ack.nonce, mine);
	if (ret)
		return session_fail(s, ret, "cannot compute the key proof");
	return session_ctrl_send(s, protocol_auth_to_wire(mine, s->msg_buf));
}

int postcopy_recover_connect(struct rmig_session *s)
{
	struct postcopy_recovery *rc = s->recovery;
	int last_ret = 0;

	for (;;) {
		struct transport_options opts;
		struct transport_conn *conn;
		char uri[TRANSPORT_URI_MAX];
		uint64_t attempt_us;
		int ret;

		if (session_cancelled(s))
			return recover_lost(s, 1);
		if (session_now_us() >= rc->deadline_us)
			return recover_lost(s, 0);
		pthread_mutex_lock(&rc->lock);
		snprintf(uri, sizeof(uri), "%s", rc->uri[0] ? rc->uri : s->peer_uri);
		pthread_mutex_unlock(&rc->lock);
		session_transport_options(s, uri, &opts);
		if (opts.connect_timeout_ms > (int)RECOVER_CONNECT_MS)
			opts.connect_timeout_ms = (int)RECOVER_CONNECT_MS;
		attempt_us = session_now_us();
		ret = transport_connect(uri, &opts, &conn);
		if (ret) {
			uint64_t took_ms = (session_now_us() - attempt_us) / 1000u;

			/* Once per kind of failure: the path may stay down for minutes. */
			if (ret != last_ret)
				rmig_log_info("source: post-copy recovery: %s does not answer yet "
					      "(%s); trying again",
					      uri, session_strerror(ret));
			last_ret = ret;
			/* About one attempt per second: a refused one waits, a silent one has
			 * waited already. */
			if (took_ms < POSTCOPY_RECOVER_RETRY_MS)
				recover_pause(s, POSTCOPY_RECOVER_RETRY_MS - (unsigned)took_ms);
			continue;
		}
		last_ret = 0;
		session_conn_set(s, conn);
		ret = recover_source_handshake(s, session_now_us() + RECOVER_HANDSHAKE_MS * 1000u);
		if (ret) {
			recover_refuse(s, ret);
			recover_pause(s, POSTCOPY_RECOVER_RETRY_MS);
			continue;
		}
		return 0;
	}
}

int postcopy_recover_retry(struct rmig_session *s, int err)
{
	if (!postcopy_recover_possible(s, err)) {
		/* Not the connection: a peer that broke the protocol after its proof. */
		recover_stop(s->recovery);
		if (s->conn)
			session_abort_send(s, err, s->last_error);
		return err;
	}
	recover_refuse(s, err);
	return 0;
}

int postcopy_recover_announced(struct rmig_session *s)
{
	struct postcopy_recovery *rc = s->recovery;

	if (rc->announced)
		return 0;
	rc->announced = calloc(s->nregions, sizeof(*rc->announced));
	if (!rc->announced)
		return -ENOMEM;
	rc->nannounced = s->nregions;
	for (size_t i = 0; i < s->nregions; i++) {
		struct session_region *r = &s->regions[i];
		size_t bytes = bitmap_words(r->npages) * sizeof(uint64_t);

		rc->announced[i] = malloc(bytes);
		if (!rc->announced[i])
			return -ENOMEM;
		memcpy(rc->announced[i], r->postcopy, bytes);
	}
	return 0;
}

const uint64_t *postcopy_recover_announced_bitmap(struct rmig_session *s, size_t index)
{
	struct postcopy_recovery *rc = s->recovery;

	return rc->announced && index < rc->nannounced ? rc->announced[index] : NULL;
}

void postcopy_recover_fetched_add(struct rmig_session *s, uint64_t pages, uint64_t bytes)
{
	s->recovery->fetched += pages;
	s->recovery->fetched_bytes += bytes;
}

void postcopy_recover_fetched(struct rmig_session *s, uint64_t *pages_p, uint64_t *bytes_p)
{
	*pages_p = s->recovery->fetched;
	*bytes_p = s->recovery->fetched_bytes;
}
