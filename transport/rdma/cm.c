/* SPDX-License-Identifier: MIT */
/* transport/rdma/cm.c - setting up rdma:// connections with librdmacm: device discovery,
 * addressing, listen, accept and connect.
 *
 * Several queue pairs. Each is its own rdma_cm id, connected in order, queue pair 0 first; its
 * connect private data (struct wire_hello) says how many the connection has and, in the low byte
 * of session_tag, which one it is, so the listener groups them under the tag and refuses a stray
 * or repeated one (each refusal says why in the reject's private data and in the log). They
 * share one PD (every region is registered once: one MR, one rkey, announced once), one CQ and
 * one progress thread (conn.c, progress.c). iWARP completes a WRITE once TCP has taken it, not
 * once it is placed, so several queue pairs are refused on iWARP devices (see ring.c for why
 * commits need placement).
 *
 * The listener cannot be stopped or blocked by what connects to it. accept() takes every event
 * off the listener's channel as it comes and never waits on one peer: a connect request is
 * refused at once (its reason in the reject and, at warn, in the log) when its hello is wrong,
 * answered at once when it is a key challenge, and given a queue pair only when it passed; a
 * connection being accepted waits for its next queue pair, or for one to be established, side
 * by side with the others, each step with its own deadline (connect_timeout_ms). At most
 * RDMA_ANSWERED_MAX answered challenges and RDMA_ACCEPTING_MAX connections being accepted are
 * held; beyond, the oldest challenge, or the connection that made the least progress, is
 * dropped. A refusal changes nothing else; accept() fails only when the listener itself does. A
 * connection leaves accept() once every queue pair is established.
 *
 * The keyed hello (a session key: rdma has no TLS, so a key always asks for it). rdma_cm gives
 * a connect request 56 bytes of private data and no reply to a reject, so each queue pair makes
 * two requests:
 *   request 1 -> listener    hello + CHALLENGE, the connecting side's nonce Nc (24 bytes)
 *   listener -> reject       hello + ANSWER, its nonce Nl and HMAC(K, "... listener" || T)
 *   request 2 -> listener    hello + PROOF, HMAC(K, "... connector" || T) cut to 24 bytes
 *   listener -> accept       the queue pair, as without a key
 * K = HMAC-SHA256(session key, RDMA_HELLO_KEY_LABEL); T is request 1's private data as sent,
 * the answer's hello and Nl. The listener keeps nothing of request 1 but the proof it expects
 * (no id, no queue pair, no verbs resource) and uses it once; the connecting side checks the
 * listener's proof before it gives its own. So with a key nothing without it gets a queue pair
 * or reaches the engine. Fresh nonces on both sides: nothing recorded can be replayed; distinct
 * labels (and other ones than tcp's): neither proof can be reflected as the other. A plain
 * hello reads as step 0 (rdma_cm pads the request with zeroes); a side that asks for the proof
 * refuses one that does not give it, and says so. */
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "transport/key_proof.h"
#include "transport/log.h"
#include "transport/rdma/rdma.h"

#define RDMA_HELLO_KEY_LABEL "rmig rdma hello key v1"
#define RDMA_HELLO_LISTENER_LABEL "rmig rdma hello listener"
#define RDMA_HELLO_CONNECTOR_LABEL "rmig rdma hello connector"
/* What a connect request's private data can hold: 56 bytes on InfiniBand and RoCE (RDMA_PS_TCP,
 * padded with zeroes), what was sent on iWARP; more is refused unless it is zeroes. */
#define RDMA_REQUEST_DATA_MAX 96u

/* ---- device discovery ---- */

int rdma_transport_device_count(void)
{
	struct ibv_device **list;
	int num = 0, active = 0;

	list = ibv_get_device_list(&num);
	if (!list)
		return 0;
	for (int i = 0; i < num; i++) {
		struct ibv_context *ctx = ibv_open_device(list[i]);
		struct ibv_device_attr attr;
		int found = 0;

		if (!ctx)
			continue;
		if (!ibv_query_device(ctx, &attr)) {
			for (unsigned port = 1; port <= attr.phys_port_cnt && !found; port++) {
				struct ibv_port_attr port_attr;

				if (!ibv_query_port(ctx, (uint8_t)port, &port_attr) &&
				    port_attr.state == IBV_PORT_ACTIVE)
					found = 1;
			}
		}
		active += found;
		ibv_close_device(ctx);
	}
	ibv_free_device_list(list);
	return active;
}

/* ---- rdma_cm helpers ---- */

static void rdma_options_from(const struct transport_options *opts, struct rdma_options *out)
{
	memset(out, 0, sizeof(*out));
	out->streams = 1;
	out->max_inflight = RDMA_DEFAULT_INFLIGHT;
	out->connect_timeout_ms = 10000;
	out->peer_timeout_ms = RDMA_DEFAULT_PEER_TIMEOUT_MS;
	if (!opts)
		return;
	if (opts->peer_timeout_ms)
		out->peer_timeout_ms = opts->peer_timeout_ms;
	if (opts->streams)
		out->streams = opts->streams;
	if (opts->max_inflight)
		out->max_inflight = opts->max_inflight;
	if (out->max_inflight < 4)
		out->max_inflight = 4;
	if (out->max_inflight > RDMA_MAX_INFLIGHT)
		out->max_inflight = RDMA_MAX_INFLIGHT;
	out->reg_mode = opts->reg_mode;
	if (opts->connect_timeout_ms > 0)
		out->connect_timeout_ms = opts->connect_timeout_ms;
}

static int rdma_addrinfo(const char *host, uint16_t port, int passive, struct addrinfo **ai_p)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	char port_text[8];
	int ret;

	hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
	snprintf(port_text, sizeof(port_text), "%u", port);
	ret = getaddrinfo(host, port_text, &hints, ai_p);
	if (ret) {
		rmig_log_error("rdma: cannot resolve '%s': %s", host, gai_strerror(ret));
		return -EHOSTUNREACH;
	}
	return 0;
}

/* Wait up to timeout_ms (-1: forever) for the next event on channel. */
static int rdma_cm_event_wait(struct rdma_event_channel *channel, int timeout_ms,
			      struct rdma_cm_event **event_p)
{
	struct pollfd pfd = {.fd = channel->fd, .events = POLLIN};
	int ret;

	do {
		ret = poll(&pfd, 1, timeout_ms);
	} while (ret < 0 && errno == EINTR);
	if (ret < 0)
		return -errno;
	if (ret == 0)
		return -ETIMEDOUT;
	if (rdma_get_cm_event(channel, event_p))
		return rdma_errno_or(-EIO);
	return 0;
}

/* Wait for one expected event on queue pair stream's id; anything else (another event, or an
 * event of another queue pair of the connection) is an error named in the log. */
static int rdma_cm_expect(struct rdma_event_channel *channel, struct rdma_cm_id *id,
			  unsigned stream, enum rdma_cm_event_type expected, int timeout_ms,
			  const char *peer, struct rdma_cm_event **event_p)
{
	struct rdma_cm_event *event = NULL;
	int ret = rdma_cm_event_wait(channel, timeout_ms, &event);

	if (!ret && !event)
		ret = -EIO;
	if (ret) {
		rmig_log_error("rdma %s: queue pair %u: waiting for %s: %s", peer, stream,
			       rdma_event_str(expected), strerror(-ret));
		return ret;
	}
	if (event->event != expected || event->id != id) {
		ret = event->event == RDMA_CM_EVENT_REJECTED ? -ECONNREFUSED : -ECONNABORTED;
		if (event->id != id)
			rmig_log_error("rdma %s: queue pair %u: expected %s, got %s (status %d) on "
				       "another queue pair of the connection",
				       peer, stream, rdma_event_str(expected),
				       rdma_event_str(event->event), event->status);
		else if (event->event == RDMA_CM_EVENT_REJECTED &&
			 event->param.conn.private_data_len &&
			 ((const char *)event->param.conn.private_data)[0])
			rmig_log_error("rdma %s: queue pair %u: connection rejected by the peer: "
				       "%.*s",
				       peer, stream, (int)event->param.conn.private_data_len,
				       (const char *)event->param.conn.private_data);
		else if (event->event == RDMA_CM_EVENT_REJECTED)
			rmig_log_error("rdma %s: connection rejected (status %d) without a reason: "
				       "is an rmig listener on that address and port?",
				       peer, event->status);
		else
			rmig_log_error("rdma %s: queue pair %u: expected %s, got %s (status %d)",
				       peer, stream, rdma_event_str(expected),
				       rdma_event_str(event->event), event->status);
		rdma_ack_cm_event(event);
		return ret;
	}
	if (event_p)
		*event_p = event;
	else
		rdma_ack_cm_event(event);
	return 0;
}

/* The peer's hello from connect private data; rdma_cm may pad the data. */
static int rdma_hello_check(const void *data, size_t len, struct wire_hello *hello, char *why,
			    size_t why_len)
{
	if (!data || len < sizeof(struct wire_hello)) {
		snprintf(why, why_len, "private data: %zu bytes, need a %zu-byte hello", len,
			 sizeof(struct wire_hello));
		return -EPROTO;
	}
	if (wire_hello_from_wire(data, sizeof(struct wire_hello), hello, why, why_len))
		return -EPROTO;
	if (hello->recv_depth < 2 || hello->recv_depth > 4096) {
		snprintf(why, why_len, "hello.recv_depth: %u not in 2..4096", hello->recv_depth);
		return -EPROTO;
	}
	if (hello->max_ctrl < TRANSPORT_CTRL_MAX) {
		snprintf(why, why_len, "hello.max_ctrl: %u is below %u", hello->max_ctrl,
			 TRANSPORT_CTRL_MAX);
		return -EPROTO;
	}
	return 0;
}

/* Reject private data is capped (148 bytes for RDMA_PS_TCP over IB CM); keep the reason short. */
static uint8_t rdma_reject_length(char *why)
{
	size_t len = strlen(why);

	if (len > 139) {
		why[139] = '\0';
		len = 139;
	}
	return (uint8_t)(len + 1);
}

static void rdma_peer_name(struct rdma_cm_id *id, char *buf, size_t len)
{
	struct sockaddr *addr = rdma_get_peer_addr(id);
	char host[NI_MAXHOST] = "?";

	if (addr)
		getnameinfo(addr,
			    addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
							: sizeof(struct sockaddr_in),
			    host, sizeof(host), NULL, 0, NI_NUMERICHOST);
	snprintf(buf, len, strchr(host, ':') ? "rdma://[%s]:%u" : "rdma://%s:%u", host,
		 (unsigned)ntohs(rdma_get_dst_port(id)));
}

/* ---- the key proof of the hello ---- */

/* Does this side prove the key in its requests? 1 and key set (a session key given), 0, or
 * -errno. rdma has no TLS, so a key always asks for the proof. */
static int rdma_hello_key_derive(const struct transport_options *opts,
				 uint8_t key[RDMA_HELLO_KEY_LEN])
{
	if (!opts || !opts->psk || !opts->psk_len)
		return 0;
	if (transport_key_proof_key(opts->psk, opts->psk_len, RDMA_HELLO_KEY_LABEL, key)) {
		rmig_log_error("rdma: cannot derive the key of the hello's key proof");
		return -EIO;
	}
	return 1;
}

/* One side's proof: HMAC-SHA256(key, label || challenge request || answer's hello || Nl), the
 * label padded with zeroes to its slot. The connecting side's goes on the wire cut to
 * WIRE_RDMA_KEY_VALUE_LEN bytes (all a connect request has room for). */
static int rdma_hello_key_mac(const uint8_t key[RDMA_HELLO_KEY_LEN], const char *label,
			      const struct rdma_hello_request *challenge,
			      const struct wire_hello *answer,
			      const uint8_t nonce[WIRE_HELLO_KEY_NONCE_LEN],
			      uint8_t mac[WIRE_HELLO_KEY_MAC_LEN])
{
	return transport_key_proof_mac(key, label, challenge, sizeof(*challenge), answer,
				       sizeof(*answer), nonce, WIRE_HELLO_KEY_NONCE_LEN, mac);
}

/* ---- listen / accept / connect ---- */

int rdma_transport_listen(const char *uri, const struct transport_options *opts,
			  struct transport_listener **listener_p)
{
	struct transport_uri parsed;
	struct rdma_listener *listener;
	struct addrinfo *ai;
	int ret;

	ret = transport_uri_parse(uri, &parsed);
	if (ret)
		return ret;
	listener = calloc(1, sizeof(*listener));
	if (!listener)
		return -ENOMEM;
	listener->base.ops = &rdma_transport_ops;
	/* The connecting side says how many queue pairs a connection has. */
	rdma_options_from(opts, &listener->options);
	if (parsed.has_reg_mode)
		listener->options.reg_mode = parsed.reg_mode;
	snprintf(listener->host, sizeof(listener->host), "%s", parsed.host);
	listener->keyed = rdma_hello_key_derive(opts, listener->hello_key);
	if (listener->keyed < 0) {
		ret = listener->keyed;
		goto err_free_listener;
	}
	ret = rdma_addrinfo(parsed.host, parsed.port, 1, &ai);
	if (ret)
		goto err_free_listener;
	listener->channel = rdma_create_event_channel();
	if (!listener->channel) {
		ret = -errno;
		rmig_log_error("rdma: rdma_create_event_channel: %s (is a verbs device present?)",
			       strerror(-ret));
		goto err_free_ai;
	}
	if (rdma_create_id(listener->channel, &listener->id, listener, RDMA_PS_TCP)) {
		ret = -errno;
		rmig_log_error("rdma: rdma_create_id: %s", strerror(-ret));
		goto err_destroy_channel;
	}
	if (rdma_bind_addr(listener->id, ai->ai_addr)) {
		ret = -errno;
		rmig_log_error("rdma: cannot bind %s: %s (no RDMA device on that address?)", uri,
			       strerror(-ret));
		goto err_destroy_id;
	}
	if (rdma_listen(listener->id, RDMA_LISTEN_BACKLOG)) {
		ret = -errno;
		rmig_log_error("rdma: rdma_listen on %s: %s", uri, strerror(-ret));
		goto err_destroy_id;
	}
	freeaddrinfo(ai);
	*listener_p = &listener->base;
	return 0;

err_destroy_id:
	rdma_destroy_id(listener->id);
err_destroy_channel:
	rdma_destroy_event_channel(listener->channel);
err_free_ai:
	freeaddrinfo(ai);
err_free_listener:
	OPENSSL_cleanse(listener->hello_key, sizeof(listener->hello_key));
	free(listener);
	return ret;
}

int rdma_transport_listener_uri(struct transport_listener *base, char *buf, size_t len)
{
	struct rdma_listener *listener = container_of(base, struct rdma_listener, base);
	unsigned port = ntohs(rdma_get_src_port(listener->id));
	int n;

	n = snprintf(buf, len, strchr(listener->host, ':') ? "rdma://[%s]:%u" : "rdma://%s:%u",
		     listener->host, port);
	if (n < 0 || (size_t)n >= len)
		return -ENOSPC;
	return 0;
}

/* Answer a connect request with a reason (logged here, at warn: the listener goes on) and forget
 * it. */
static void rdma_request_refuse(struct rdma_cm_id *id, const char *peer, char *why)
{
	rmig_log_warn("rdma %s: refusing a connection request: %s (the listener goes on)", peer,
		      why);
	rdma_reject(id, why, rdma_reject_length(why));
	rdma_destroy_id(id);
}

void rdma_transport_listener_close(struct transport_listener *base)
{
	struct rdma_listener *listener = container_of(base, struct rdma_listener, base);

	while (listener->naccepting) {
		struct rdma_conn *rc = listener->accepting[--listener->naccepting].rc;

		rdma_conn_disconnect(rc);
		rdma_conn_destroy(rc);
	}
	OPENSSL_cleanse(listener->answered, sizeof(listener->answered));
	rdma_destroy_id(listener->id);
	rdma_destroy_event_channel(listener->channel);
	OPENSSL_cleanse(listener->hello_key, sizeof(listener->hello_key));
	free(listener);
}

/* ---- the listener: key challenges ---- */

static void rdma_answered_drop(struct rdma_listener *listener, unsigned i)
{
	listener->answered[i] = listener->answered[--listener->nanswered];
	OPENSSL_cleanse(&listener->answered[listener->nanswered],
			sizeof(listener->answered[listener->nanswered]));
}

/* Answer a key challenge: our nonce and proof go back in the reject (no queue pair, no id kept);
 * the proof the peer must bring on its next request is kept until the deadline. */
static void rdma_challenge_answer(struct rdma_listener *listener, struct rdma_cm_id *id,
				  const char *peer, const struct rdma_hello_request *challenge,
				  const struct wire_hello *hello)
{
	uint8_t nonce[WIRE_HELLO_KEY_NONCE_LEN], mac[WIRE_HELLO_KEY_MAC_LEN],
		proof[WIRE_HELLO_KEY_MAC_LEN];
	struct rdma_hello_answer answer;
	struct rdma_answered *entry;
	char why[160];
	unsigned i;

	if (getrandom(nonce, sizeof(nonce), GRND_NONBLOCK) != (ssize_t)sizeof(nonce)) {
		snprintf(why, sizeof(why), "hello: the listener cannot draw a nonce");
		rdma_request_refuse(id, peer, why);
		return;
	}
	wire_hello_to_wire(&answer.hello, hello->streams, TRANSPORT_CTRL_MAX, RDMA_RECV_DEPTH,
			   hello->session_tag);
	if (rdma_hello_key_mac(listener->hello_key, RDMA_HELLO_LISTENER_LABEL, challenge,
			       &answer.hello, nonce, mac) ||
	    rdma_hello_key_mac(listener->hello_key, RDMA_HELLO_CONNECTOR_LABEL, challenge,
			       &answer.hello, nonce, proof)) {
		snprintf(why, sizeof(why), "hello: the listener cannot compute the key proof");
		rdma_request_refuse(id, peer, why);
		return;
	}
	wire_hello_key_to_wire(&answer.key, WIRE_HELLO_KEY_ANSWER, nonce, mac);
	/* A new challenge of the same queue pair takes the place of the old one. */
	for (i = 0; i < listener->nanswered; i++)
		if (listener->answered[i].session_tag == hello->session_tag)
			break;
	if (i == listener->nanswered && listener->nanswered == RDMA_ANSWERED_MAX) {
		unsigned oldest = 0;

		for (unsigned j = 1; j < listener->nanswered; j++)
			if (listener->answered[j].order < listener->answered[oldest].order)
				oldest = j;
		rmig_log_info("rdma %s: dropping its key challenge: %u answered at once, this one "
			      "the oldest (the listener goes on)",
			      listener->answered[oldest].peer, RDMA_ANSWERED_MAX);
		rdma_answered_drop(listener, oldest);
		i = listener->nanswered;
	}
	if (i == listener->nanswered)
		listener->nanswered++;
	entry = &listener->answered[i];
	entry->session_tag = hello->session_tag;
	entry->hello = *hello;
	memcpy(entry->proof, proof, sizeof(entry->proof));
	entry->deadline_ms = transport_deadline_ms(listener->options.connect_timeout_ms);
	entry->order = listener->order++;
	snprintf(entry->peer, sizeof(entry->peer), "%s", peer);
	OPENSSL_cleanse(proof, sizeof(proof));
	rdma_reject(id, &answer, sizeof(answer));
	rdma_destroy_id(id);
}

/* A key proof: it must answer a challenge this listener answered for the same queue pair (used
 * once), with the same hello. 0, or -EACCES / -EPROTO with why set. */
static int rdma_proof_check(struct rdma_listener *listener, const struct wire_hello *hello,
			    const uint8_t *value, char *why, size_t why_len)
{
	struct rdma_answered entry;
	unsigned i;
	int ret = 0;

	for (i = 0; i < listener->nanswered; i++)
		if (listener->answered[i].session_tag == hello->session_tag)
			break;
	if (i == listener->nanswered) {
		snprintf(why, why_len,
			 "hello.key: a proof for no challenge this listener is waiting on (never "
			 "answered, expired, or used)");
		return -EACCES;
	}
	entry = listener->answered[i];
	rdma_answered_drop(listener, i);
	if (hello->streams != entry.hello.streams || hello->max_ctrl != entry.hello.max_ctrl ||
	    hello->recv_depth != entry.hello.recv_depth) {
		snprintf(why, why_len, "hello: its proof carries another hello than its challenge");
		ret = -EPROTO;
	} else if (CRYPTO_memcmp(value, entry.proof, sizeof(entry.proof))) {
		snprintf(why, why_len,
			 "hello.key.value: the peer does not hold the session key (its proof "
			 "differs)");
		ret = -EACCES;
	}
	OPENSSL_cleanse(&entry, sizeof(entry));
	return ret;
}

/* ---- the listener: connections being accepted ---- */

static void rdma_accepting_drop(struct rdma_listener *listener, unsigned i, int quiet,
				const char *why)
{
	struct rdma_conn *rc = listener->accepting[i].rc;

	/* Timeouts and evictions are what a flood looks like: kept out of the warnings. */
	rmig_log_write(quiet ? RMIG_LOG_LEVEL_INFO : RMIG_LOG_LEVEL_WARN,
		       "rdma %s: dropping a connection being set up: %s (the listener goes on)",
		       rc->base.peer, why);
	listener->accepting[i] = listener->accepting[--listener->naccepting];
	rdma_conn_disconnect(rc);
	rdma_conn_destroy(rc);
}

static unsigned rdma_established_count(const struct rdma_accepting *a)
{
	return (unsigned)__builtin_popcount(a->established);
}

/* Room for one more: drop the connection that made the least progress, oldest first. */
static void rdma_accepting_evict(struct rdma_listener *listener)
{
	unsigned victim = 0;
	char why[128];

	for (unsigned i = 1; i < listener->naccepting; i++) {
		const struct rdma_accepting *a = &listener->accepting[i];
		const struct rdma_accepting *v = &listener->accepting[victim];

		if (rdma_established_count(a) < rdma_established_count(v) ||
		    (rdma_established_count(a) == rdma_established_count(v) && a->order < v->order))
			victim = i;
	}
	snprintf(why, sizeof(why),
		 "%u connections set up at once, this one made the least progress",
		 RDMA_ACCEPTING_MAX);
	rdma_accepting_drop(listener, victim, 1, why);
}

static struct rdma_accepting *rdma_accepting_by_tag(struct rdma_listener *listener, uint64_t tag)
{
	for (unsigned i = 0; i < listener->naccepting; i++)
		if (listener->accepting[i].rc->session_tag == (tag & ~RDMA_TAG_INDEX_MASK))
			return &listener->accepting[i];
	return NULL;
}

/* Give queue pair index of a's connection its queue pair and accept it (its id was placed in
 * the connection already). On failure the request has been answered; the caller drops a. */
static int rdma_stream_accept(struct rdma_conn *rc, unsigned index)
{
	struct rdma_hello_request reply;
	struct rdma_conn_param param;
	char why[160];
	int ret;

	ret = index == 0 ? rdma_conn_resources(rc) : 0;
	if (!ret)
		ret = rdma_stream_qp(rc, index);
	if (ret) {
		snprintf(why, sizeof(why), "accepting side cannot set up queue pair %u: %s", index,
			 strerror(-ret));
		rdma_reject(rc->streams[index].id, why, rdma_reject_length(why));
		return ret;
	}
	rdma_stream_param(rc, index, &param, &reply, NULL);
	if (rdma_accept(rc->streams[index].id, &param)) {
		ret = rdma_errno_or(-EIO);
		rmig_log_error("rdma %s: rdma_accept of queue pair %u: %s", rc->base.peer, index,
			       strerror(-ret));
		return ret;
	}
	return 0;
}

/* Queue pair 0 of a new connection, its peer authenticated (or no key asked): the connection's
 * resources and its first queue pair, accepted. */
static void rdma_accepting_open(struct rdma_listener *listener, struct rdma_cm_id *id,
				const char *peer, const struct wire_hello *hello)
{
	struct rdma_accepting *a;
	struct rdma_conn *rc;
	char why[160];
	int ret;

	if (listener->naccepting == RDMA_ACCEPTING_MAX)
		rdma_accepting_evict(listener);
	rc = rdma_conn_new(peer, &listener->options);
	if (!rc) {
		snprintf(why, sizeof(why), "the listener is out of memory");
		rdma_request_refuse(id, peer, why);
		return;
	}
	rc->nstreams = hello->streams;
	rc->session_tag = hello->session_tag;
	rc->peer_recv_depth = hello->recv_depth;
	rc->send_credits = hello->recv_depth;
	rc->streams[0].id = id; /* destroyed with rc from here on */
	rc->channel = rdma_create_event_channel();
	if (!rc->channel) {
		ret = -errno;
		snprintf(why, sizeof(why), "rdma_create_event_channel: %s", strerror(-ret));
		rmig_log_error("rdma %s: %s", peer, why);
		rdma_reject(id, why, rdma_reject_length(why));
		rdma_conn_destroy(rc);
		return;
	}
	ret = rdma_stream_accept(rc, 0);
	if (ret) {
		rdma_conn_destroy(rc);
		return;
	}
	a = &listener->accepting[listener->naccepting++];
	*a = (struct rdma_accepting){
		.rc = rc,
		.accepted = 1,
		.deadline_ms = transport_deadline_ms(listener->options.connect_timeout_ms),
		.order = listener->order++,
	};
}

/* A request that passed the hello (and with a key its proof): queue pair 0 opens a connection,
 * the others join theirs in order; strays, repeats and mismatches are refused with the reason,
 * and the connection they name goes on. */
static void rdma_request_accept(struct rdma_listener *listener, struct rdma_cm_id *id,
				const char *peer, const struct wire_hello *hello)
{
	unsigned index = (unsigned)(hello->session_tag & RDMA_TAG_INDEX_MASK);
	struct rdma_accepting *a = rdma_accepting_by_tag(listener, hello->session_tag);
	char why[200];

	if (index >= hello->streams) {
		snprintf(why, sizeof(why), "hello.session_tag: queue pair %u of %u", index,
			 hello->streams);
	} else if (index == 0 && a) {
		snprintf(why, sizeof(why),
			 "hello.session_tag: duplicate queue pair 0 of a connection being set up");
	} else if (index == 0) {
		rdma_accepting_open(listener, id, peer, hello);
		return;
	} else if (!a) {
		snprintf(why, sizeof(why),
			 "hello.session_tag: stray queue pair %u of a connection this listener is "
			 "not setting up (queue pair 0 connects first)",
			 index);
	} else if (hello->streams != a->rc->nstreams) {
		snprintf(
			why, sizeof(why),
			"hello.streams: queue pair %u says %u, queue pair 0 of its connection said "
			"%u",
			index, hello->streams, a->rc->nstreams);
	} else if (index < a->accepted) {
		snprintf(
			why, sizeof(why),
			"hello.session_tag: duplicate queue pair %u: that one of this connection is "
			"connected already",
			index);
	} else if (index > a->accepted) {
		snprintf(why, sizeof(why),
			 "hello.session_tag: queue pair %u came before %u: queue pairs connect in "
			 "order",
			 index, a->accepted);
	} else {
		a->rc->streams[index].id = id; /* destroyed with the connection from here on */
		if (rdma_stream_accept(a->rc, index)) {
			rdma_accepting_drop(listener, (unsigned)(a - listener->accepting), 0,
					    "a queue pair could not be accepted");
			return;
		}
		a->accepted++;
		a->deadline_ms = transport_deadline_ms(listener->options.connect_timeout_ms);
		return;
	}
	rdma_request_refuse(id, peer, why);
}

/* A connect request, its private data copied (len bytes, at most RDMA_REQUEST_DATA_MAX): refused,
 * answered (a key challenge) or accepted. Nothing here blocks. */
static void rdma_request_handle(struct rdma_listener *listener, struct rdma_cm_id *id,
				const unsigned char *data, size_t len)
{
	struct rdma_hello_request request;
	struct wire_rdma_hello_key key = {0};
	struct wire_hello hello;
	char peer[RDMA_PEER_NAME_MAX], why[200];

	rdma_peer_name(id, peer, sizeof(peer));
	if (rdma_hello_check(data, len, &hello, why, sizeof(why))) {
		rdma_request_refuse(id, peer, why);
		return;
	}
	/* rdma_cm pads a request with zeroes (InfiniBand, RoCE); iWARP carries what was sent. */
	memset(&request, 0, sizeof(request));
	memcpy(&request, data, len < sizeof(request) ? len : sizeof(request));
	for (size_t i = sizeof(request); i < len; i++)
		if (data[i]) {
			snprintf(why, sizeof(why),
				 "private data: byte %zu of %zu after the hello "
				 "and its key part is not zero",
				 i, len);
			rdma_request_refuse(id, peer, why);
			return;
		}
	if (len != sizeof(request.hello) &&
	    (len < sizeof(request) ||
	     wire_rdma_hello_key_from_wire(&request.key, sizeof(request.key), &key, why,
					   sizeof(why)))) {
		if (len < sizeof(request))
			snprintf(why, sizeof(why),
				 "private data: %zu bytes, a hello is %zu and one with its key "
				 "part %zu",
				 len, sizeof(request.hello), sizeof(request));
		rdma_request_refuse(id, peer, why);
		return;
	}
	if (listener->keyed && key.step == 0) {
		snprintf(why, sizeof(why),
			 "hello: it opened without the key proof this side asks for (it holds a "
			 "key): the peer has no key, or runs an rmig whose rdma hello has none");
	} else if (!listener->keyed && key.step) {
		snprintf(
			why, sizeof(why),
			"hello: it opened with a key proof, and this side has no key; the key must "
			"match on both sides");
	} else if (key.step == WIRE_HELLO_KEY_CHALLENGE) {
		rdma_challenge_answer(listener, id, peer, &request, &hello);
		return;
	} else if (key.step != WIRE_HELLO_KEY_PROOF ||
		   !rdma_proof_check(listener, &hello, key.value, why, sizeof(why))) {
		rdma_request_accept(listener, id, peer, &hello);
		return;
	}
	rdma_request_refuse(id, peer, why);
}

/* The connection queue pair id belongs to, or NULL; *index_p set. */
static struct rdma_accepting *rdma_accepting_by_id(struct rdma_listener *listener,
						   const struct rdma_cm_id *id, unsigned *index_p)
{
	for (unsigned i = 0; i < listener->naccepting; i++) {
		struct rdma_conn *rc = listener->accepting[i].rc;

		for (unsigned s = 0; s < listener->accepting[i].accepted; s++)
			if (rc->streams[s].id == id) {
				*index_p = s;
				return &listener->accepting[i];
			}
	}
	return NULL;
}

/* One event off the listener's channel: a connect request, or news of a queue pair being
 * accepted. Copied, then acknowledged before anything is destroyed (rdma_destroy_id waits for
 * the acknowledgement of every event of its id). */
static void rdma_listener_event(struct rdma_listener *listener, struct rdma_cm_event *event)
{
	unsigned char data[RDMA_REQUEST_DATA_MAX];
	enum rdma_cm_event_type type = event->event;
	struct rdma_cm_id *id = event->id;
	struct rdma_accepting *a;
	int status = event->status;
	size_t len = 0;
	unsigned index;
	char why[160];

	if (type == RDMA_CM_EVENT_CONNECT_REQUEST && event->param.conn.private_data) {
		len = event->param.conn.private_data_len;
		if (len > sizeof(data))
			len = sizeof(data);
		memcpy(data, event->param.conn.private_data, len);
	}
	rdma_ack_cm_event(event);
	if (type == RDMA_CM_EVENT_CONNECT_REQUEST) {
		rdma_request_handle(listener, id, data, len);
		return;
	}
	a = rdma_accepting_by_id(listener, id, &index);
	if (!a) {
		rmig_log_debug("rdma: listener: %s (status %d) of no connection being set up",
			       rdma_event_str(type), status);
		return;
	}
	if (type == RDMA_CM_EVENT_ESTABLISHED) {
		a->established |= 1u << index;
		a->deadline_ms = transport_deadline_ms(listener->options.connect_timeout_ms);
		return;
	}
	if (type == RDMA_CM_EVENT_TIMEWAIT_EXIT)
		return;
	snprintf(why, sizeof(why), "queue pair %u of %u: %s (status %d) before it was set up",
		 index, a->rc->nstreams, rdma_event_str(type), status);
	rdma_accepting_drop(listener, (unsigned)(a - listener->accepting), 0, why);
}

/* A connection whose every queue pair is established, handed on: its ids move to its own
 * channel and its progress thread starts. 1 and *conn_p set, 0 when none is ready (one that
 * failed here was dropped). */
static int rdma_accepting_take(struct rdma_listener *listener, struct transport_conn **conn_p)
{
	for (unsigned i = 0; i < listener->naccepting; i++) {
		struct rdma_accepting *a = &listener->accepting[i];
		struct rdma_conn *rc = a->rc;
		char why[160];
		int ret = 0;

		if (rdma_established_count(a) != rc->nstreams)
			continue;
		for (unsigned s = 0; s < rc->nstreams && !ret; s++)
			if (rdma_migrate_id(rc->streams[s].id, rc->channel)) {
				ret = -errno;
				snprintf(why, sizeof(why), "rdma_migrate_id: %s", strerror(-ret));
			}
		if (!ret) {
			ret = rdma_progress_start(rc);
			if (ret)
				snprintf(why, sizeof(why), "cannot start its progress thread");
		}
		if (ret) {
			rdma_accepting_drop(listener, i, 0, why);
			return 0;
		}
		listener->accepting[i] = listener->accepting[--listener->naccepting];
		rdma_conn_log_ready(rc);
		*conn_p = &rc->base;
		return 1;
	}
	return 0;
}

/* Drop what passed its deadline; the earliest deadline left, or wake when none is earlier. */
static int64_t rdma_listener_expire(struct rdma_listener *listener, int64_t wake)
{
	int64_t now = transport_now_ms();
	char why[160];

	for (unsigned i = listener->nanswered; i-- > 0;) {
		if (now >= listener->answered[i].deadline_ms) {
			rmig_log_info("rdma %s: no key proof within %d ms after our answer to its "
				      "challenge (the listener goes on)",
				      listener->answered[i].peer,
				      listener->options.connect_timeout_ms);
			rdma_answered_drop(listener, i);
		} else if (wake < 0 || listener->answered[i].deadline_ms < wake) {
			wake = listener->answered[i].deadline_ms;
		}
	}
	for (unsigned i = listener->naccepting; i-- > 0;) {
		const struct rdma_accepting *a = &listener->accepting[i];

		if (now >= a->deadline_ms) {
			if (rdma_established_count(a) < a->accepted)
				snprintf(
					why, sizeof(why),
					"queue pair %u of %u accepted, not established within %d ms",
					a->accepted - 1, a->rc->nstreams,
					listener->options.connect_timeout_ms);
			else
				snprintf(why, sizeof(why),
					 "queue pair %u of %u never came within %d ms", a->accepted,
					 a->rc->nstreams, listener->options.connect_timeout_ms);
			rdma_accepting_drop(listener, i, 1, why);
		} else if (wake < 0 || a->deadline_ms < wake) {
			wake = a->deadline_ms;
		}
	}
	return wake;
}

/* Every request is handled as it comes, side by side with the others: refused at once when its
 * hello (or with a key its proof) is wrong, answered at once when it is a key challenge, given
 * a queue pair only when it passed; each step has its deadline (connect_timeout_ms). A
 * connection leaves accept() once all of its queue pairs are established, so with a key nothing
 * reaches the engine before each queue pair proved it. What passes between calls stays in the
 * listener. */
int rdma_transport_accept(struct transport_listener *base, int timeout_ms,
			  struct transport_conn **conn_p)
{
	struct rdma_listener *listener = container_of(base, struct rdma_listener, base);
	int64_t deadline = transport_deadline_ms(timeout_ms);

	for (;;) {
		struct rdma_cm_event *event;
		int64_t wake;
		int ret;

		wake = rdma_listener_expire(listener, deadline);
		if (rdma_accepting_take(listener, conn_p))
			return 0;
		if (deadline >= 0 && transport_now_ms() >= deadline)
			return -ETIMEDOUT;
		ret = rdma_cm_event_wait(listener->channel, transport_remaining_ms(wake), &event);
		if (ret == -ETIMEDOUT)
			continue;
		if (ret) {
			rmig_log_error("rdma: listener: waiting for connection requests: %s",
				       strerror(-ret));
			return ret;
		}
		rdma_listener_event(listener, event);
	}
}

/* Resolve address and route of a new id on rc's channel (for queue pair index). */
static int rdma_id_resolve(struct rdma_conn *rc, unsigned index, const struct addrinfo *ai,
			   struct rdma_cm_id **id_p)
{
	const int timeout_ms = rc->options.connect_timeout_ms;
	const char *uri = rc->base.peer;
	int ret;

	if (rdma_create_id(rc->channel, id_p, rc, RDMA_PS_TCP)) {
		ret = -errno;
		*id_p = NULL;
		rmig_log_error("rdma %s: rdma_create_id: %s", uri, strerror(-ret));
		return ret;
	}
	/* Resolving by IP lets rdma_cm pick the matching GID (RoCEv2 needs the IPv4-mapped one). */
	if (rdma_resolve_addr(*id_p, NULL, ai->ai_addr, timeout_ms)) {
		ret = -errno;
		rmig_log_error("rdma %s: rdma_resolve_addr: %s", uri, strerror(-ret));
		return ret;
	}
	ret = rdma_cm_expect(rc->channel, *id_p, index, RDMA_CM_EVENT_ADDR_RESOLVED, timeout_ms,
			     uri, NULL);
	if (ret)
		return ret;
	if (rdma_resolve_route(*id_p, timeout_ms)) {
		ret = -errno;
		rmig_log_error("rdma %s: rdma_resolve_route: %s", uri, strerror(-ret));
		return ret;
	}
	return rdma_cm_expect(rc->channel, *id_p, index, RDMA_CM_EVENT_ROUTE_RESOLVED, timeout_ms,
			      uri, NULL);
}

/* Check the listener's answer to our challenge (a reject's private data) and make our proof.
 * 0, or -errno with why set. */
static int rdma_answer_check(struct rdma_conn *rc, unsigned index,
			     const struct rdma_hello_request *challenge, const void *data,
			     size_t len, const uint8_t key[RDMA_HELLO_KEY_LEN],
			     uint8_t proof[WIRE_HELLO_KEY_MAC_LEN], char *why, size_t why_len)
{
	uint8_t mac[WIRE_HELLO_KEY_MAC_LEN];
	struct rdma_hello_answer answer;
	struct wire_hello_key answer_key;
	struct wire_hello hello;

	memcpy(&answer, data, sizeof(answer)); /* len checked by the caller */
	(void)len;
	if (wire_hello_from_wire(&answer.hello, sizeof(answer.hello), &hello, why, why_len) ||
	    wire_hello_key_from_wire(&answer.key, sizeof(answer.key), &answer_key, why, why_len))
		return -EPROTO;
	if (answer_key.step != WIRE_HELLO_KEY_ANSWER) {
		snprintf(why, why_len, "hello.key.step: %u, expected %u (the answer)",
			 answer_key.step, WIRE_HELLO_KEY_ANSWER);
		return -EPROTO;
	}
	if (hello.streams != rc->nstreams || hello.session_tag != (rc->session_tag | index)) {
		snprintf(why, why_len,
			 "hello: the listener answered for another queue pair (streams %u, tag "
			 "%#llx)",
			 hello.streams, (unsigned long long)hello.session_tag);
		return -EPROTO;
	}
	if (rdma_hello_key_mac(key, RDMA_HELLO_LISTENER_LABEL, challenge, &answer.hello,
			       answer_key.nonce, mac) ||
	    rdma_hello_key_mac(key, RDMA_HELLO_CONNECTOR_LABEL, challenge, &answer.hello,
			       answer_key.nonce, proof)) {
		snprintf(why, why_len, "hello: cannot compute the key proof");
		return -EIO;
	}
	if (CRYPTO_memcmp(mac, answer_key.mac, sizeof(mac))) {
		snprintf(why, why_len,
			 "hello.key.mac: the listener does not hold the same key (its proof "
			 "differs)");
		return -EACCES;
	}
	return 0;
}

/* Keyed: the challenge of queue pair index (its queue pair qp_num made already), on an id of its
 * own with no queue pair (the listener answers with a reject that carries its nonce and proof,
 * and keeps nothing but the proof it expects); the answer checked, proof gets ours for the
 * request that follows. */
static int rdma_stream_challenge(struct rdma_conn *rc, unsigned index, const struct addrinfo *ai,
				 uint32_t qp_num, const uint8_t key[RDMA_HELLO_KEY_LEN],
				 uint8_t proof[WIRE_HELLO_KEY_MAC_LEN])
{
	const char *uri = rc->base.peer;
	uint8_t nonce[WIRE_RDMA_KEY_VALUE_LEN];
	struct rdma_hello_request challenge;
	struct rdma_conn_param param;
	struct rdma_cm_event *event = NULL;
	struct rdma_cm_id *id = NULL;
	char why[200] = "";
	int ret;

	if (getrandom(nonce, sizeof(nonce), 0) != (ssize_t)sizeof(nonce)) {
		ret = -errno;
		rmig_log_error("rdma %s: queue pair %u: cannot draw a nonce: %s", uri, index,
			       strerror(-ret));
		return ret;
	}
	ret = rdma_id_resolve(rc, index, ai, &id);
	if (ret)
		goto out;
	wire_hello_to_wire(&challenge.hello, rc->nstreams, TRANSPORT_CTRL_MAX, RDMA_RECV_DEPTH,
			   rc->session_tag | index);
	wire_rdma_hello_key_to_wire(&challenge.key, WIRE_HELLO_KEY_CHALLENGE, nonce);
	memset(&param, 0, sizeof(param));
	param.private_data = &challenge;
	param.private_data_len = sizeof(challenge);
	/* This id has no queue pair (the listener answers with a reject; one that accepted it
	 * instead is refused below): the request names the one of the request that follows. The
	 * CM of the listener's host refuses a request whose queue pair number (of this device) is
	 * in another request it is still handling, so a made-up number could collide with another
	 * rmig connecting from this host at the same time. */
	param.qp_num = qp_num;
	if (rdma_connect(id, &param)) {
		ret = -errno;
		rmig_log_error("rdma %s: rdma_connect of queue pair %u's key challenge: %s", uri,
			       index, strerror(-ret));
		goto out;
	}
	ret = rdma_cm_event_wait(rc->channel, rc->options.connect_timeout_ms, &event);
	if (ret) {
		rmig_log_error("rdma %s: queue pair %u: waiting for the answer to our key "
			       "challenge: %s",
			       uri, index, strerror(-ret));
		goto out;
	}
	if (event->id == id && event->event == RDMA_CM_EVENT_REJECTED &&
	    event->param.conn.private_data &&
	    event->param.conn.private_data_len >= sizeof(struct rdma_hello_answer) &&
	    ((const unsigned char *)event->param.conn.private_data)[0] < 0x20) {
		/* A refusal's reason is text; the answer opens with a hello (version 1). */
		ret = rdma_answer_check(rc, index, &challenge, event->param.conn.private_data,
					event->param.conn.private_data_len, key, proof, why,
					sizeof(why));
		if (ret)
			rmig_log_error("rdma %s: queue pair %u: the listener's answer to our key "
				       "challenge: %s",
				       uri, index, why);
	} else if (event->id == id && event->event == RDMA_CM_EVENT_REJECTED) {
		ret = -ECONNREFUSED;
		if (event->param.conn.private_data_len && event->param.conn.private_data &&
		    ((const char *)event->param.conn.private_data)[0])
			rmig_log_error("rdma %s: queue pair %u: connection rejected by the peer: "
				       "%.*s",
				       uri, index, (int)event->param.conn.private_data_len,
				       (const char *)event->param.conn.private_data);
		else
			rmig_log_error("rdma %s: connection rejected (status %d) without a reason: "
				       "is an rmig listener on that address and port?",
				       uri, event->status);
	} else if (event->id == id && (event->event == RDMA_CM_EVENT_CONNECT_RESPONSE ||
				       event->event == RDMA_CM_EVENT_ESTABLISHED)) {
		ret = -EPROTO;
		rmig_log_error("rdma %s: queue pair %u: the listener accepted our key challenge as "
			       "a plain hello: it runs an rmig whose rdma hello has no key proof "
			       "(both sides need one that has it, and the same key)",
			       uri, index);
	} else {
		ret = -ECONNABORTED;
		rmig_log_error("rdma %s: queue pair %u: expected the answer to our key challenge, "
			       "got %s (status %d)%s",
			       uri, index, rdma_event_str(event->event), event->status,
			       event->id == id ? "" : " on another queue pair of the connection");
	}
out:
	if (event)
		rdma_ack_cm_event(event);
	if (id)
		rdma_destroy_id(id);
	return ret;
}

/* Resolve, set up and connect queue pair index; its accept must name the same connection.
 * With key, the request carries our key proof, made from the listener's answer to a challenge
 * sent first. */
static int rdma_stream_connect(struct rdma_conn *rc, unsigned index, const struct addrinfo *ai,
			       const uint8_t *key, struct wire_hello *peer_hello)
{
	struct rdma_stream *stream = &rc->streams[index];
	const int timeout_ms = rc->options.connect_timeout_ms;
	const char *uri = rc->base.peer;
	uint8_t proof[WIRE_HELLO_KEY_MAC_LEN];
	struct rdma_hello_request request;
	struct rdma_conn_param param;
	struct rdma_cm_event *event;
	char why[160];
	uint64_t t[4];
	int ret;

	t[0] = transport_now_us();
	ret = rdma_id_resolve(rc, index, ai, &stream->id);
	if (ret)
		return ret;
	t[1] = transport_now_us();
	ret = index == 0 ? rdma_conn_resources(rc) : 0;
	if (!ret)
		ret = rdma_stream_qp(rc, index);
	t[2] = transport_now_us();
	if (!ret && key)
		ret = rdma_stream_challenge(rc, index, ai, stream->id->qp->qp_num, key, proof);
	if (ret)
		return ret;
	t[3] = transport_now_us();
	rdma_stream_param(rc, index, &param, &request, key ? proof : NULL);
	OPENSSL_cleanse(proof, sizeof(proof));
	if (rdma_connect(stream->id, &param)) {
		ret = -errno;
		rmig_log_error("rdma %s: rdma_connect of queue pair %u: %s", uri, index,
			       strerror(-ret));
		return ret;
	}
	ret = rdma_cm_expect(rc->channel, stream->id, index, RDMA_CM_EVENT_ESTABLISHED, timeout_ms,
			     uri, &event);
	if (ret)
		return ret;
	ret = rdma_hello_check(event->param.conn.private_data, event->param.conn.private_data_len,
			       peer_hello, why, sizeof(why));
	rdma_ack_cm_event(event);
	if (ret) {
		rmig_log_error("rdma %s: peer's accept of queue pair %u: %s", uri, index, why);
		return ret;
	}
	/* A listener that took this queue pair for a connection of its own would answer with
	 * another count or tag (one that does not group queue pairs answers 1 and tag 0). */
	if (peer_hello->streams != rc->nstreams ||
	    (rc->nstreams > 1 && peer_hello->session_tag != (rc->session_tag | index))) {
		rmig_log_error("rdma %s: the listener accepted queue pair %u as a connection of %u "
			       "(session tag %#llx, ours %#llx): it does not group %u queue pairs",
			       uri, index, peer_hello->streams,
			       (unsigned long long)peer_hello->session_tag,
			       (unsigned long long)(rc->session_tag | index), rc->nstreams);
		return -EPROTO;
	}
	/* Where a slow connect goes (each step is round trips or memory on both hosts). */
	rmig_log_info("rdma %s: queue pair %u connected in %.1f ms: address and route %.1f ms, "
		      "queue pair%s %.1f ms, key challenge %.1f ms, connect %.1f ms",
		      uri, index, (double)(transport_now_us() - t[0]) / 1000.0,
		      (double)(t[1] - t[0]) / 1000.0, index == 0 ? " and buffers" : "",
		      (double)(t[2] - t[1]) / 1000.0, (double)(t[3] - t[2]) / 1000.0,
		      (double)(transport_now_us() - t[3]) / 1000.0);
	return 0;
}

int rdma_transport_connect(const char *uri, const struct transport_options *opts,
			   struct transport_conn **conn_p)
{
	struct rdma_options options;
	struct transport_uri parsed;
	uint8_t key[RDMA_HELLO_KEY_LEN];
	struct wire_hello peer_hello;
	struct addrinfo *ai;
	struct rdma_conn *rc;
	int ret, keyed;

	ret = transport_uri_parse(uri, &parsed);
	if (ret)
		return ret;
	rdma_options_from(opts, &options);
	if (parsed.has_reg_mode)
		options.reg_mode = parsed.reg_mode;
	if (options.streams > RDMA_STREAMS_MAX) {
		rmig_log_error("rdma %s: %u queue pairs asked, at most %u", uri, options.streams,
			       RDMA_STREAMS_MAX);
		return -EINVAL;
	}
	keyed = rdma_hello_key_derive(opts, key);
	if (keyed < 0)
		return keyed;
	ret = rdma_addrinfo(parsed.host, parsed.port, 0, &ai);
	if (ret)
		goto err_cleanse;
	rc = rdma_conn_new(uri, &options);
	if (!rc) {
		ret = -ENOMEM;
		goto err_free_ai;
	}
	rc->nstreams = options.streams;
	if (getrandom(&rc->session_tag, sizeof(rc->session_tag), 0) != sizeof(rc->session_tag))
		rc->session_tag =
			(uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)rc;
	rc->session_tag &= ~RDMA_TAG_INDEX_MASK;
	rc->channel = rdma_create_event_channel();
	if (!rc->channel) {
		ret = -errno;
		rmig_log_error("rdma %s: rdma_create_event_channel: %s (is a verbs device "
			       "present?)",
			       uri, strerror(-ret));
		goto err_destroy_conn;
	}
	for (unsigned index = 0; index < rc->nstreams; index++) {
		ret = rdma_stream_connect(rc, index, ai, keyed ? key : NULL, &peer_hello);
		if (ret)
			goto err_disconnect;
		if (index == 0) {
			rc->peer_recv_depth = peer_hello.recv_depth;
			rc->send_credits = peer_hello.recv_depth;
		}
	}
	ret = rdma_progress_start(rc);
	if (ret)
		goto err_disconnect;
	rdma_conn_log_ready(rc);
	freeaddrinfo(ai);
	OPENSSL_cleanse(key, sizeof(key));
	*conn_p = &rc->base;
	return 0;

err_disconnect:
	rdma_conn_disconnect(rc);
err_destroy_conn:
	rdma_conn_destroy(rc);
err_free_ai:
	freeaddrinfo(ai);
err_cleanse:
	OPENSSL_cleanse(key, sizeof(key));
	return ret;
}
