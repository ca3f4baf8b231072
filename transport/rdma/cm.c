/* SPDX-License-Identifier: MIT */
/* transport/rdma/cm.c - setting up rdma:// connections with librdmacm: device discovery,
 * addressing, listen, accept and connect.
 *
 * Several queue pairs. Each is its own rdma_cm id, connected in order, queue pair 0 first; its
 * connect private data (struct wire_hello) says how many the connection has and, in the low byte
 * of session_tag, which one it is, so the listener groups them under the tag and refuses a stray
 * or repeated one (each refusal says why in the reject's private data and in the log). A first
 * queue pair of another connection that comes while one is being grouped is kept for the next
 * accept. They share one PD (every region is registered once: one MR, one rkey, announced
 * once), one CQ and one progress thread (conn.c, progress.c). iWARP completes a WRITE once TCP
 * has taken it, not once it is placed, so several queue pairs are refused on iWARP devices (see
 * ring.c for why commits need placement). */
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "transport/log.h"
#include "transport/rdma/rdma.h"

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
	snprintf(listener->host, sizeof(listener->host), "%s", parsed.host);
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

/* Answer a connect request with a reason (logged here) and forget it. */
static void rdma_request_refuse(struct rdma_request *req, const char *peer, char *why)
{
	rmig_log_error("rdma %s: refusing connection: %s", peer, why);
	rdma_reject(req->id, why, rdma_reject_length(why));
	rdma_destroy_id(req->id);
	req->id = NULL;
}

void rdma_transport_listener_close(struct transport_listener *base)
{
	struct rdma_listener *listener = container_of(base, struct rdma_listener, base);

	for (unsigned i = 0; i < listener->npending; i++) {
		rdma_reject(listener->pending[i].id, NULL, 0);
		rdma_destroy_id(listener->pending[i].id);
	}
	rdma_destroy_id(listener->id);
	rdma_destroy_event_channel(listener->channel);
	free(listener);
}

/* Wait up to timeout_ms for the next connect request on the listener's channel. -EAGAIN: an
 * event that is not a request came (logged). */
static int rdma_request_wait(struct rdma_listener *listener, int timeout_ms,
			     struct rdma_request *req)
{
	struct rdma_cm_event *event;
	int ret;

	ret = rdma_cm_event_wait(listener->channel, timeout_ms, &event);
	if (ret)
		return ret;
	if (event->event != RDMA_CM_EVENT_CONNECT_REQUEST) {
		rmig_log_error("rdma: listener got %s, expected a connect request",
			       rdma_event_str(event->event));
		rdma_ack_cm_event(event);
		return -EAGAIN;
	}
	req->id = event->id;
	req->len = event->param.conn.private_data_len;
	if (req->len > sizeof(req->data))
		req->len = sizeof(req->data);
	if (event->param.conn.private_data)
		memcpy(req->data, event->param.conn.private_data, req->len);
	else
		req->len = 0;
	rdma_ack_cm_event(event);
	return 0;
}

/* Make req's id queue pair index of rc: its events go to rc's channel (so a disconnect reaches
 * rc's progress thread), and it gets its queue pair. On failure req has been answered. */
static int rdma_request_adopt(struct rdma_conn *rc, struct rdma_request *req, unsigned index)
{
	char why[160];
	int ret;

	if (rdma_migrate_id(req->id, rc->channel)) {
		ret = -errno;
		rmig_log_error("rdma %s: rdma_migrate_id: %s", rc->base.peer, strerror(-ret));
		rdma_reject(req->id, NULL, 0);
		rdma_destroy_id(req->id);
		return ret;
	}
	rc->streams[index].id = req->id;
	ret = index == 0 ? rdma_conn_resources(rc) : 0;
	if (!ret)
		ret = rdma_stream_qp(rc, index);
	if (ret) {
		snprintf(why, sizeof(why), "accepting side cannot set up queue pair %u: %s", index,
			 strerror(-ret));
		rdma_reject(req->id, why, rdma_reject_length(why));
	}
	return ret;
}

/* Accept queue pair index (adopted already) and wait until it is up. */
static int rdma_stream_accept(struct rdma_conn *rc, unsigned index, int timeout_ms)
{
	struct rdma_stream *stream = &rc->streams[index];
	struct rdma_conn_param param;
	struct wire_hello hello;
	int ret;

	rdma_stream_param(rc, index, &param, &hello);
	if (rdma_accept(stream->id, &param)) {
		ret = -errno;
		rmig_log_error("rdma %s: rdma_accept of queue pair %u: %s", rc->base.peer, index,
			       strerror(-ret));
		return ret;
	}
	return rdma_cm_expect(rc->channel, stream->id, index, RDMA_CM_EVENT_ESTABLISHED, timeout_ms,
			      rc->base.peer, NULL);
}

/* Take queue pair index of rc from the listener. Requests that are not it are refused, each
 * with its reason, and the wait goes on: a stray or repeated request does not break the
 * connection being set up. The first queue pair of another connection is set aside for the
 * next accept. */
static int rdma_accept_stream(struct rdma_listener *listener, struct rdma_conn *rc, unsigned index)
{
	struct timespec deadline;

	transport_deadline(rc->options.connect_timeout_ms, &deadline);
	for (;;) {
		struct rdma_request req;
		struct wire_hello hello;
		char peer[TRANSPORT_URI_MAX], why[200];
		unsigned got;
		int ret;

		ret = rdma_request_wait(listener, transport_ms_left(&deadline), &req);
		if (ret == -EAGAIN)
			continue;
		if (ret) {
			rmig_log_error("rdma %s: queue pair %u of %u %s", rc->base.peer, index,
				       rc->nstreams,
				       ret == -ETIMEDOUT ? "never came; refusing the connection"
							 : strerror(-ret));
			return ret == -ETIMEDOUT ? -ECONNABORTED : ret;
		}
		rdma_peer_name(req.id, peer, sizeof(peer));
		if (rdma_hello_check(req.data, req.len, &hello, why, sizeof(why))) {
			rdma_request_refuse(&req, peer, why);
			continue;
		}
		got = (unsigned)(hello.session_tag & RDMA_TAG_INDEX_MASK);
		if ((hello.session_tag & ~RDMA_TAG_INDEX_MASK) != rc->session_tag) {
			if (got == 0 && listener->npending < RDMA_LISTEN_BACKLOG) {
				listener->pending[listener->npending++] = req;
				continue;
			}
			snprintf(why, sizeof(why),
				 got == 0
					 ? "listener busy: too many connections being set up"
					 : "hello.session_tag: stray queue pair %u of a connection "
					   "this listener is not setting up",
				 got);
			rdma_request_refuse(&req, peer, why);
			continue;
		}
		if (got != index || hello.streams != rc->nstreams) {
			if (hello.streams != rc->nstreams)
				snprintf(
					why, sizeof(why),
					"hello.streams: queue pair %u says %u, queue pair 0 of its "
					"connection said %u",
					got, hello.streams, rc->nstreams);
			else if (got < index)
				snprintf(why, sizeof(why),
					 "hello.session_tag: duplicate queue pair %u: that one of "
					 "this connection is connected already",
					 got);
			else
				snprintf(why, sizeof(why),
					 "hello.session_tag: queue pair %u came before %u: queue "
					 "pairs connect in order",
					 got, index);
			rdma_request_refuse(&req, peer, why);
			continue;
		}
		ret = rdma_request_adopt(rc, &req, index);
		if (ret)
			return ret;
		return rdma_stream_accept(rc, index, rc->options.connect_timeout_ms);
	}
}

int rdma_transport_accept(struct transport_listener *base, int timeout_ms,
			  struct transport_conn **conn_p)
{
	struct rdma_listener *listener = container_of(base, struct rdma_listener, base);
	struct wire_hello peer_hello;
	struct rdma_request req;
	struct rdma_conn *rc;
	char peer[TRANSPORT_URI_MAX], why[200];
	unsigned index;
	int ret;

	if (listener->npending) {
		req = listener->pending[0];
		listener->npending--;
		memmove(&listener->pending[0], &listener->pending[1],
			listener->npending * sizeof(listener->pending[0]));
	} else {
		ret = rdma_request_wait(listener, timeout_ms, &req);
		if (ret == -EAGAIN)
			return -ECONNABORTED;
		if (ret) {
			if (ret != -ETIMEDOUT)
				rmig_log_error("rdma: waiting for a connection: %s",
					       strerror(-ret));
			return ret;
		}
	}
	rdma_peer_name(req.id, peer, sizeof(peer));
	if (rdma_hello_check(req.data, req.len, &peer_hello, why, sizeof(why))) {
		rdma_request_refuse(&req, peer, why);
		return -EPROTO;
	}
	index = (unsigned)(peer_hello.session_tag & RDMA_TAG_INDEX_MASK);
	if (index != 0) {
		snprintf(why, sizeof(why),
			 "hello.session_tag: stray queue pair %u of a connection this listener "
			 "is not setting up (queue pair 0 connects first)",
			 index);
		rdma_request_refuse(&req, peer, why);
		return -EPROTO;
	}

	rc = rdma_conn_new(peer, &listener->options);
	if (!rc) {
		rdma_reject(req.id, NULL, 0);
		rdma_destroy_id(req.id);
		return -ENOMEM;
	}
	rc->nstreams = peer_hello.streams;
	rc->session_tag = peer_hello.session_tag;
	rc->peer_recv_depth = peer_hello.recv_depth;
	rc->send_credits = peer_hello.recv_depth;
	rc->channel = rdma_create_event_channel();
	if (!rc->channel) {
		ret = -errno;
		rmig_log_error("rdma %s: rdma_create_event_channel: %s", peer, strerror(-ret));
		rdma_reject(req.id, NULL, 0);
		rdma_destroy_id(req.id);
		goto err_destroy_conn;
	}
	ret = rdma_request_adopt(rc, &req, 0);
	if (ret)
		goto err_destroy_conn;
	ret = rdma_stream_accept(rc, 0,
				 timeout_ms < 0 ? rc->options.connect_timeout_ms : timeout_ms);
	for (index = 1; !ret && index < rc->nstreams; index++)
		ret = rdma_accept_stream(listener, rc, index);
	if (ret)
		goto err_disconnect;
	ret = rdma_progress_start(rc);
	if (ret)
		goto err_disconnect;
	rdma_conn_log_ready(rc);
	*conn_p = &rc->base;
	return 0;

err_disconnect:
	rdma_conn_disconnect(rc);
err_destroy_conn:
	rdma_conn_destroy(rc);
	return ret;
}

/* Resolve, set up and connect queue pair index; its accept must name the same connection. */
static int rdma_stream_connect(struct rdma_conn *rc, unsigned index, const struct addrinfo *ai,
			       struct wire_hello *peer_hello)
{
	struct rdma_stream *stream = &rc->streams[index];
	const int timeout_ms = rc->options.connect_timeout_ms;
	const char *uri = rc->base.peer;
	struct rdma_conn_param param;
	struct rdma_cm_event *event;
	struct wire_hello hello;
	char why[160];
	int ret;

	if (rdma_create_id(rc->channel, &stream->id, rc, RDMA_PS_TCP)) {
		ret = -errno;
		stream->id = NULL;
		rmig_log_error("rdma %s: rdma_create_id: %s", uri, strerror(-ret));
		return ret;
	}
	/* Resolving by IP lets rdma_cm pick the matching GID (RoCEv2 needs the IPv4-mapped one). */
	if (rdma_resolve_addr(stream->id, NULL, ai->ai_addr, timeout_ms)) {
		ret = -errno;
		rmig_log_error("rdma %s: rdma_resolve_addr: %s", uri, strerror(-ret));
		return ret;
	}
	ret = rdma_cm_expect(rc->channel, stream->id, index, RDMA_CM_EVENT_ADDR_RESOLVED,
			     timeout_ms, uri, NULL);
	if (ret)
		return ret;
	if (rdma_resolve_route(stream->id, timeout_ms)) {
		ret = -errno;
		rmig_log_error("rdma %s: rdma_resolve_route: %s", uri, strerror(-ret));
		return ret;
	}
	ret = rdma_cm_expect(rc->channel, stream->id, index, RDMA_CM_EVENT_ROUTE_RESOLVED,
			     timeout_ms, uri, NULL);
	if (ret)
		return ret;
	ret = index == 0 ? rdma_conn_resources(rc) : 0;
	if (!ret)
		ret = rdma_stream_qp(rc, index);
	if (ret)
		return ret;
	rdma_stream_param(rc, index, &param, &hello);
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
	return 0;
}

int rdma_transport_connect(const char *uri, const struct transport_options *opts,
			   struct transport_conn **conn_p)
{
	struct rdma_options options;
	struct transport_uri parsed;
	struct wire_hello peer_hello;
	struct addrinfo *ai;
	struct rdma_conn *rc;
	int ret;

	ret = transport_uri_parse(uri, &parsed);
	if (ret)
		return ret;
	rdma_options_from(opts, &options);
	if (options.streams > RDMA_STREAMS_MAX) {
		rmig_log_error("rdma %s: %u queue pairs asked, at most %u", uri, options.streams,
			       RDMA_STREAMS_MAX);
		return -EINVAL;
	}
	ret = rdma_addrinfo(parsed.host, parsed.port, 0, &ai);
	if (ret)
		return ret;
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
		ret = rdma_stream_connect(rc, index, ai, &peer_hello);
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
	*conn_p = &rc->base;
	return 0;

err_disconnect:
	rdma_conn_disconnect(rc);
err_destroy_conn:
	rdma_conn_destroy(rc);
err_free_ai:
	freeaddrinfo(ai);
	return ret;
}
