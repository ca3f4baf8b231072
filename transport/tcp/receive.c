/* SPDX-License-Identifier: MIT */
/* transport/tcp/receive.c - the receiver threads, one per stream: each reads one frame at a
 * time, checks every field against the local tables before it touches memory, places page data
 * with recv() straight into the region, and queues commits and control messages on the inbound
 * queue (transport/queue.h). While too much sits unread it stops reading its socket, so TCP's
 * flow control slows the peer down. recv() hands a commit out only once every stream has placed
 * the bytes the commit names. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "transport/log.h"
#include "transport/tcp/tcp.h"

/* ---- receiving: one thread per stream ---- */

struct tcp_receiver {
	struct tcp_conn *tc;
	struct tcp_stream *stream;
	char *scratch;		    /* WIRE_MSG_MAX bytes: commits, small frames */
	struct transport_run *runs; /* TRANSPORT_BATCH_MAX_RUNS */
	/* Read ahead with a header, to save a system call per data frame: never more than 32
	 * bytes from the start of a frame, which for a data frame is its header and wire_data,
	 * so page bytes never pass through here. What a short frame leaves over is the start of
	 * the next header. */
	unsigned char ahead[sizeof(struct wire_hdr) + sizeof(struct wire_data)];
	size_t ahead_len; /* bytes in ahead */
	size_t ahead_pos; /* bytes of ahead already consumed */
};

/* A recv on the socket came short: the peer left or the socket broke. Quietly done when we
 * are closing, or when a data stream ends between frames (stream 0 speaks for the peer). */
static int tcp_receiver_lost(struct tcp_receiver *rx, int ret, size_t got, const char *what,
			     size_t want)
{
	struct tcp_conn *tc = rx->tc;
	int stopping;

	pthread_mutex_lock(&tc->lock);
	stopping = tc->stopping;
	pthread_mutex_unlock(&tc->lock);
	if (ret == -ECONNRESET && got == 0 && !strcmp(what, "header") && rx->stream->index != 0)
		return -ECONNRESET; /* its bytes are all placed; stream 0 says how the peer left */
	if (stopping)
		return tcp_fail(tc, -ECONNRESET, "closed");
	if (ret == -ECONNRESET && rx->stream->awaiting_hello)
		return tcp_fail(
			tc, -ECONNRESET,
			"stream %u: the listener closed the connection without answering our "
			"hello: it refused us (%s)",
			rx->stream->index,
			rx->stream->ssl ? "see its log"
					: "does it run TLS, or ask for a key? this side has "
					  "neither; --tls must match on both sides, and the "
					  "key");
	if (ret == -ECONNRESET && got == 0 && !strcmp(what, "header")) {
		return tcp_fail(tc, -ECONNRESET,
				"stream 0: the peer disconnected without closing the connection");
	}
	if (ret == -ECONNRESET)
		return tcp_fail(tc, -ECONNRESET,
				"stream %u: %s truncated: the peer disconnected after %zu of %zu "
				"bytes",
				rx->stream->index, what, got, want);
	if (ret == -EBADMSG)
		return tcp_fail(tc, ret,
				"stream %u: %s: TLS: %s (a record failed its integrity check: "
				"altered on the path, or not from the peer)",
				rx->stream->index, what, rx->stream->tls_why);
	if (ret == -ETIMEDOUT)
		return tcp_fail(tc, ret,
				"stream %u: %s: nothing arrived for %u ms after %zu of %zu bytes",
				rx->stream->index, what, tc->stall_ms, got, want);
	return tcp_fail(tc, ret, "stream %u: receiving %s: %s", rx->stream->index, what,
			strerror(-ret));
}

static int tcp_receive_exact(struct tcp_receiver *rx, void *buf, size_t len, const char *what)
{
	size_t have = rx->ahead_len - rx->ahead_pos;
	size_t take = have < len ? have : len;
	size_t got;
	int ret;

	memcpy(buf, rx->ahead + rx->ahead_pos, take);
	rx->ahead_pos += take;
	if (take == len)
		return 0;
	ret = tcp_stream_recv_full(rx->stream, (char *)buf + take, len - take, &got);
	if (ret)
		return tcp_receiver_lost(rx, ret, take + got, what, len);
	return 0;
}

/* The next frame's header, reading up to 32 bytes from its start while at it. */
static int tcp_receive_header(struct tcp_receiver *rx, struct wire_hdr *raw)
{
	memmove(rx->ahead, rx->ahead + rx->ahead_pos, rx->ahead_len - rx->ahead_pos);
	rx->ahead_len -= rx->ahead_pos;
	rx->ahead_pos = 0;
	while (rx->ahead_len < sizeof(*raw)) {
		int n = tcp_stream_recv_some(rx->stream, rx->ahead + rx->ahead_len,
					     sizeof(rx->ahead) - rx->ahead_len);

		if (n > 0) {
			rx->ahead_len += (size_t)n;
			continue;
		}
		/* An idle connection is fine; a header cut off for that long is not. */
		if (n == -EAGAIN && rx->ahead_len == 0)
			continue;
		return tcp_receiver_lost(rx,
					 n == 0		? -ECONNRESET
					 : n == -EAGAIN ? -ETIMEDOUT
							: n,
					 rx->ahead_len, "header", sizeof(*raw));
	}
	memcpy(raw, rx->ahead, sizeof(*raw));
	rx->ahead_pos = sizeof(*raw);
	return 0;
}

static int tcp_receive_data(struct tcp_receiver *rx, const struct wire_hdr_host *hdr)
{
	struct tcp_conn *tc = rx->tc;
	struct transport_region region;
	char raw[sizeof(struct wire_data)];
	char why[TRANSPORT_ERROR_MAX];
	uint32_t region_id;
	uint64_t offset, length;
	int ret;

	if (hdr->length <= sizeof(struct wire_data))
		return tcp_fail(tc, -EPROTO,
				"header.length: data frame of %u bytes carries no data",
				hdr->length);
	ret = tcp_receive_exact(rx, raw, sizeof(raw), "data header");
	if (ret)
		return ret;
	ret = wire_data_from_wire(raw, sizeof(raw), &region_id, &offset, why, sizeof(why));
	if (ret)
		return tcp_fail(tc, -EPROTO, "%s", why);
	length = hdr->length - sizeof(struct wire_data);

	pthread_rwlock_rdlock(&tc->memory_lock);
	if (transport_region_find(&tc->base, 0, region_id, &region)) {
		pthread_rwlock_unlock(&tc->memory_lock);
		return tcp_fail(tc, -EPROTO, "data.region_id: %u is not a registered region",
				region_id);
	}
	if (!(region.access & TRANSPORT_ACCESS_REMOTE_WRITE)) {
		pthread_rwlock_unlock(&tc->memory_lock);
		return tcp_fail(tc, -EPROTO, "data.region_id: region %u is not remote-writable",
				region_id);
	}
	if (offset > region.length || length > region.length - offset) {
		pthread_rwlock_unlock(&tc->memory_lock);
		return tcp_fail(tc, -EPROTO,
				"data.offset: [%llu, +%llu) is outside region %u of %llu bytes",
				(unsigned long long)offset, (unsigned long long)length, region_id,
				(unsigned long long)region.length);
	}
	/* Straight into the region: this is the one copy, done by the kernel. */
	ret = tcp_receive_exact(rx, (char *)region.addr + offset, length, "data payload");
	pthread_rwlock_unlock(&tc->memory_lock);
	if (ret)
		return ret;

	pthread_mutex_lock(&tc->lock);
	rx->stream->data_received += length;
	if (tc->incoming.head) /* only a queued commit can be waiting for these bytes */
		pthread_cond_broadcast(&tc->changed);
	pthread_mutex_unlock(&tc->lock);
	pthread_mutex_lock(tc->base.region_lock);
	tc->base.stats.data_bytes_received += length;
	pthread_mutex_unlock(tc->base.region_lock);
	return 0;
}

/* Queue for recv(). While too much sits unread, stop reading the socket: TCP's flow control
 * then slows the peer down, instead of our memory growing with whatever it sends. */
static void tcp_enqueue(struct tcp_conn *tc, struct tcp_queued *q)
{
	pthread_mutex_lock(&tc->lock);
	while (!transport_queue_room(&tc->incoming, 0) && !tc->stopping && !tc->dead)
		tcp_wait(tc, NULL);
	transport_queue_push(&tc->incoming, &q->entry,
			     sizeof(*q) + q->msg.nruns * sizeof(*q->runs) + q->msg.len);
	pthread_cond_broadcast(&tc->changed);
	pthread_mutex_unlock(&tc->lock);
}

static int tcp_receive_commit(struct tcp_receiver *rx, const struct wire_hdr_host *hdr)
{
	struct tcp_conn *tc = rx->tc;
	struct wire_commit_host commit;
	char why[TRANSPORT_ERROR_MAX];
	struct tcp_queued *q;
	int ret;

	if (hdr->length < sizeof(struct wire_commit) || hdr->length > TCP_COMMIT_MAX)
		return tcp_fail(tc, -EPROTO, "header.length: commit of %u bytes (%zu..%zu allowed)",
				hdr->length, sizeof(struct wire_commit), TCP_COMMIT_MAX);
	ret = tcp_receive_exact(rx, rx->scratch, hdr->length, "commit");
	if (ret)
		return ret;
	ret = wire_commit_from_wire(rx->scratch, hdr->length, &commit, rx->runs,
				    TRANSPORT_BATCH_MAX_RUNS, why, sizeof(why));
	if (ret)
		return tcp_fail(tc, -EPROTO, "%s", why);
	if (commit.stream_count != tc->nstreams)
		return tcp_fail(tc, -EPROTO,
				"commit.stream_count: %u, this connection has %u streams",
				commit.stream_count, tc->nstreams);
	ret = transport_runs_check(&tc->base, 0, TRANSPORT_ACCESS_REMOTE_WRITE, rx->runs,
				   commit.nruns, why, sizeof(why));
	if (ret)
		return tcp_fail(tc, -EPROTO, "commit %llu: %s", (unsigned long long)commit.batch_id,
				why);

	q = calloc(1, sizeof(*q));
	if (!q)
		return tcp_fail(tc, -ENOMEM, "commit: out of memory");
	q->runs = malloc(commit.nruns * sizeof(*q->runs));
	if (!q->runs) {
		free(q);
		return tcp_fail(tc, -ENOMEM, "commit: out of memory");
	}
	memcpy(q->runs, rx->runs, commit.nruns * sizeof(*q->runs));
	memcpy(q->need, commit.stream_bytes, sizeof(q->need));
	q->msg.type = TRANSPORT_MSG_COMMIT;
	q->msg.batch_id = commit.batch_id;
	q->msg.runs = q->runs;
	q->msg.nruns = commit.nruns;
	pthread_mutex_lock(tc->base.region_lock);
	tc->base.stats.batches_received++;
	pthread_mutex_unlock(tc->base.region_lock);
	tcp_enqueue(tc, q);
	return 0;
}

static int tcp_receive_ctrl(struct tcp_receiver *rx, const struct wire_hdr_host *hdr)
{
	struct tcp_conn *tc = rx->tc;
	struct tcp_queued *q;
	int ret;

	if (hdr->length > TRANSPORT_CTRL_MAX)
		return tcp_fail(tc, -EPROTO, "header.length: ctrl message of %u bytes exceeds %u",
				hdr->length, TRANSPORT_CTRL_MAX);
	q = calloc(1, sizeof(*q));
	if (!q)
		return tcp_fail(tc, -ENOMEM, "ctrl: out of memory");
	q->data = malloc(hdr->length ? hdr->length : 1);
	if (!q->data) {
		free(q);
		return tcp_fail(tc, -ENOMEM, "ctrl: out of memory");
	}
	ret = tcp_receive_exact(rx, q->data, hdr->length, "ctrl payload");
	if (ret) {
		free(q->data);
		free(q);
		return ret;
	}
	q->msg.type = TRANSPORT_MSG_CTRL;
	q->msg.data = q->data;
	q->msg.len = hdr->length;
	pthread_mutex_lock(tc->base.region_lock);
	tc->base.stats.ctrl_received++;
	pthread_mutex_unlock(tc->base.region_lock);
	tcp_enqueue(tc, q);
	return 0;
}

static int tcp_receive_region(struct tcp_receiver *rx, const struct wire_hdr_host *hdr)
{
	struct tcp_conn *tc = rx->tc;
	const char *name = wire_type_name(hdr->type);
	struct transport_region region;
	char why[TRANSPORT_ERROR_MAX];
	size_t advertised;
	int ret;

	if (hdr->length != sizeof(struct wire_region) &&
	    hdr->length != sizeof(struct wire_region) + TRANSPORT_REGION_MAC_LEN)
		return tcp_fail(tc, -EPROTO, "header.length: %s of %u bytes, expected %zu", name,
				hdr->length, sizeof(struct wire_region));
	ret = tcp_receive_exact(rx, rx->scratch, hdr->length, name);
	if (ret)
		return ret;
	ret = transport_region_open(&tc->base, hdr->type, rx->scratch, hdr->length, why,
				    sizeof(why));
	if (ret)
		return tcp_fail(tc, -EPROTO, "%s", why);
	ret = wire_region_from_wire(rx->scratch, sizeof(struct wire_region), &region, why,
				    sizeof(why));
	if (ret)
		return tcp_fail(tc, -EPROTO, "%s", why);
	if (hdr->type == WIRE_REGION_DEL) {
		if (transport_region_remove(&tc->base, 1, region.id, NULL))
			return tcp_fail(tc, -EPROTO,
					"region-del.region_id: %u was never advertised", region.id);
		return 0;
	}
	if (region.length == 0)
		return tcp_fail(tc, -EPROTO, "region-add.length: region %u is empty", region.id);
	pthread_mutex_lock(tc->base.region_lock);
	advertised = tc->base.remote.count;
	pthread_mutex_unlock(tc->base.region_lock);
	if (advertised >= TCP_REMOTE_REGIONS_MAX)
		return tcp_fail(tc, -EPROTO, "region-add.region_id: more than %u regions",
				TCP_REMOTE_REGIONS_MAX);
	/* tcp reaches regions by id and offset; an address from the peer means nothing here. */
	region.remote_addr = 0;
	region.rkey = 0;
	ret = transport_region_add(&tc->base, 1, &region);
	if (ret == -EEXIST)
		return tcp_fail(tc, -EPROTO, "region-add.region_id: %u is already advertised",
				region.id);
	if (ret)
		return tcp_fail(tc, ret, "region-add: cannot record region %u", region.id);
	return 0;
}

static int tcp_receive_read_req(struct tcp_receiver *rx, const struct wire_hdr_host *hdr)
{
	struct tcp_conn *tc = rx->tc;
	char why[TRANSPORT_ERROR_MAX];
	struct tcp_read_job *job;
	int ret;

	if (hdr->length != sizeof(struct wire_read_req))
		return tcp_fail(tc, -EPROTO, "header.length: read-req of %u bytes, expected %zu",
				hdr->length, sizeof(struct wire_read_req));
	ret = tcp_receive_exact(rx, rx->scratch, hdr->length, "read-req");
	if (ret)
		return ret;
	job = calloc(1, sizeof(*job));
	if (!job)
		return tcp_fail(tc, -ENOMEM, "read-req: out of memory");
	ret = wire_read_req_from_wire(rx->scratch, hdr->length, &job->req, why, sizeof(why));
	if (ret) {
		free(job);
		return tcp_fail(tc, -EPROTO, "%s", why);
	}
	if (job->req.length > TCP_FRAME_DATA_MAX) {
		unsigned long long length = job->req.length;

		free(job);
		return tcp_fail(tc, -EPROTO, "read-req.length: %llu exceeds %u", length,
				TCP_FRAME_DATA_MAX);
	}
	pthread_mutex_lock(&tc->lock);
	if (tc->njobs >= TCP_READ_JOBS_MAX) {
		pthread_mutex_unlock(&tc->lock);
		free(job);
		return tcp_fail(tc, -EPROTO, "read-req: more than %u requests outstanding",
				TCP_READ_JOBS_MAX);
	}
	if (tc->jobs_tail)
		tc->jobs_tail->next = job;
	else
		tc->jobs_head = job;
	tc->jobs_tail = job;
	tc->njobs++;
	pthread_cond_broadcast(&tc->changed);
	pthread_mutex_unlock(&tc->lock);
	return 0;
}

static int tcp_drain(struct tcp_receiver *rx, uint64_t len, const char *what)
{
	while (len) {
		size_t chunk = len < WIRE_MSG_MAX ? (size_t)len : WIRE_MSG_MAX;
		int ret = tcp_receive_exact(rx, rx->scratch, chunk, what);

		if (ret)
			return ret;
		len -= chunk;
	}
	return 0;
}

static int tcp_receive_read_resp(struct tcp_receiver *rx, const struct wire_hdr_host *hdr)
{
	struct tcp_conn *tc = rx->tc;
	struct wire_read_resp resp;
	char why[TRANSPORT_ERROR_MAX];
	struct tcp_read_wait *wait;
	uint32_t payload;
	int ret;

	if (hdr->length < sizeof(resp))
		return tcp_fail(tc, -EPROTO, "header.length: read-resp of %u bytes, need %zu",
				hdr->length, sizeof(resp));
	ret = tcp_receive_exact(rx, rx->scratch, sizeof(resp), "read-resp");
	if (ret)
		return ret;
	ret = wire_read_resp_from_wire(rx->scratch, sizeof(resp), &resp, why, sizeof(why));
	if (ret)
		return tcp_fail(tc, -EPROTO, "%s", why);
	payload = hdr->length - (uint32_t)sizeof(resp);

	pthread_mutex_lock(&tc->lock);
	if (resp.request_id == 0 || resp.request_id > tc->last_request_id) {
		pthread_mutex_unlock(&tc->lock);
		return tcp_fail(tc, -EPROTO, "read-resp.request_id: %llu was never requested",
				(unsigned long long)resp.request_id);
	}
	for (wait = tc->read_waits; wait; wait = wait->next)
		if (wait->request_id == resp.request_id)
			break;
	if (wait && resp.status != 0 && payload != 0) {
		pthread_mutex_unlock(&tc->lock);
		return tcp_fail(tc, -EPROTO,
				"header.length: read-resp with status %d carries %u bytes",
				resp.status, payload);
	}
	if (wait && resp.status == 0 && payload != wait->len) {
		size_t len = wait->len;

		pthread_mutex_unlock(&tc->lock);
		return tcp_fail(
			tc, -EPROTO,
			"header.length: read-resp %llu carries %u bytes, %zu were requested",
			(unsigned long long)resp.request_id, payload, len);
	}
	if (!wait || wait->state != TCP_READ_WAITING) {
		/* The reader gave up waiting: the bytes have nowhere to go. */
		pthread_mutex_unlock(&tc->lock);
		return tcp_drain(rx, payload, "read-resp payload");
	}
	if (resp.status != 0) {
		wait->status = resp.status;
		wait->state = TCP_READ_DONE;
		pthread_cond_broadcast(&tc->changed);
		pthread_mutex_unlock(&tc->lock);
		return 0;
	}
	wait->state = TCP_READ_FILLING;
	pthread_mutex_unlock(&tc->lock);

	/* The reader waits for FILLING to end, so dst stays valid. */
	ret = tcp_receive_exact(rx, wait->dst, payload, "read-resp payload");
	pthread_mutex_lock(&tc->lock);
	wait->status = ret;
	wait->state = TCP_READ_DONE;
	pthread_cond_broadcast(&tc->changed);
	pthread_mutex_unlock(&tc->lock);
	return ret;
}

static int tcp_receive_close(struct tcp_receiver *rx, const struct wire_hdr_host *hdr)
{
	int ret;

	if (hdr->length > TCP_CLOSE_REASON_MAX)
		return tcp_fail(rx->tc, -EPROTO, "header.length: close of %u bytes exceeds %u",
				hdr->length, TCP_CLOSE_REASON_MAX);
	ret = tcp_receive_exact(rx, rx->scratch, hdr->length, "close");
	if (ret)
		return ret;
	tcp_peer_closed(rx->tc);
	return 1;
}

/* The listener's answer on each stream we opened: same stream count, same session. */
static int tcp_receive_hello(struct tcp_receiver *rx, const struct wire_hdr_host *hdr)
{
	struct tcp_conn *tc = rx->tc;
	char why[TRANSPORT_ERROR_MAX];
	struct wire_hello hello;
	int ret;

	if (hdr->type != WIRE_HELLO)
		return tcp_fail(tc, -EPROTO, "stream %u: header.type: expected hello, got %s",
				rx->stream->index, wire_type_name(hdr->type));
	if (hdr->length != sizeof(struct wire_hello))
		return tcp_fail(tc, -EPROTO, "header.length: hello of %u bytes, expected %zu",
				hdr->length, sizeof(struct wire_hello));
	ret = tcp_receive_exact(rx, rx->scratch, hdr->length, "hello");
	if (ret)
		return ret;
	ret = wire_hello_from_wire(rx->scratch, hdr->length, &hello, why, sizeof(why));
	if (ret)
		return tcp_fail(tc, -EPROTO, "%s", why);
	if (hello.streams != tc->nstreams)
		return tcp_fail(tc, -EPROTO,
				"hello.streams: the listener answered %u, we opened %u",
				hello.streams, tc->nstreams);
	if (hello.session_tag != (tc->session_tag | rx->stream->index))
		return tcp_fail(tc, -EPROTO,
				"hello.session_tag: the listener answered for another connection");
	__atomic_store_n(&rx->stream->awaiting_hello, 0, __ATOMIC_RELAXED);
	tcp_stats_received(tc, sizeof(struct wire_hdr) + hdr->length);
	return 0;
}

static int tcp_receive_frame(struct tcp_receiver *rx)
{
	struct tcp_conn *tc = rx->tc;
	struct wire_hdr raw;
	struct wire_hdr_host hdr;
	char why[TRANSPORT_ERROR_MAX];
	int ret;

	ret = tcp_receive_header(rx, &raw);
	if (ret)
		return ret;
	ret = wire_hdr_from_wire(&raw, sizeof(raw), TCP_FRAME_MAX, &hdr, why, sizeof(why));
	if (ret && rx->stream->awaiting_hello && !rx->stream->ssl) {
		const unsigned char *b = (const unsigned char *)&raw;

		/* A TLS record (alert 0x15, handshake 0x16) where the hello should be. */
		if ((b[0] == 0x15 || b[0] == 0x16) && b[1] == 0x03)
			return tcp_fail(tc, -EPROTO,
					"stream %u: the listener answered with TLS and this side "
					"runs without it (--tls must match on both sides)",
					rx->stream->index);
	}
	if (ret)
		return tcp_fail(tc, -EPROTO, "stream %u: %s", rx->stream->index, why);
	if (rx->stream->awaiting_hello)
		return tcp_receive_hello(rx, &hdr);
	if (rx->stream->index != 0 && hdr.type != WIRE_DATA)
		return tcp_fail(tc, -EPROTO, "header.type: %s frame on data stream %u",
				wire_type_name(hdr.type), rx->stream->index);
	/* Counted before the payload is handled, so a delivered message is already counted. */
	tcp_stats_received(tc, sizeof(raw) + hdr.length);
	switch (hdr.type) {
	case WIRE_DATA:
		ret = tcp_receive_data(rx, &hdr);
		break;
	case WIRE_COMMIT:
		ret = tcp_receive_commit(rx, &hdr);
		break;
	case WIRE_CTRL:
		ret = tcp_receive_ctrl(rx, &hdr);
		break;
	case WIRE_REGION_ADD:
	case WIRE_REGION_DEL:
		ret = tcp_receive_region(rx, &hdr);
		break;
	case WIRE_READ_REQ:
		ret = tcp_receive_read_req(rx, &hdr);
		break;
	case WIRE_READ_RESP:
		ret = tcp_receive_read_resp(rx, &hdr);
		break;
	case WIRE_CLOSE:
		ret = tcp_receive_close(rx, &hdr);
		break;
	case WIRE_HELLO:
	case WIRE_CREDIT:
	default:
		return tcp_fail(tc, -EPROTO, "header.type: %s is not allowed after the handshake",
				wire_type_name(hdr.type));
	}
	return ret;
}

void *tcp_receiver_main(void *arg)
{
	struct tcp_stream *stream = arg;
	struct tcp_conn *tc = stream->conn;
	struct tcp_receiver rx = {.tc = tc, .stream = stream};

	rx.scratch = malloc(WIRE_MSG_MAX);
	rx.runs = malloc(TRANSPORT_BATCH_MAX_RUNS * sizeof(*rx.runs));
	if (!rx.scratch || !rx.runs)
		tcp_fail(tc, -ENOMEM, "stream %u: out of memory", stream->index);
	else
		while (tcp_receive_frame(&rx) == 0)
			;
	free(rx.runs);
	free(rx.scratch);
	pthread_mutex_lock(&tc->lock);
	tc->receivers_running--;
	pthread_cond_broadcast(&tc->changed);
	pthread_mutex_unlock(&tc->lock);
	return NULL;
}

/* Is the oldest queued message there and, for a commit, has all of its data landed? */
static int tcp_queue_ready(struct tcp_conn *tc)
{
	const struct tcp_queued *q;

	if (!tc->incoming.head)
		return 0;
	q = container_of(tc->incoming.head, struct tcp_queued, entry);
	if (q->msg.type != TRANSPORT_MSG_COMMIT)
		return 1;
	for (unsigned s = 0; s < tc->nstreams; s++)
		if (tc->streams[s].data_received < q->need[s])
			return 0;
	return 1;
}

int tcp_recv(struct transport_conn *conn, struct transport_msg *msg, int timeout_ms)
{
	struct tcp_conn *tc = tcp_conn_of(conn);
	struct timespec abstime = {0};
	struct tcp_queued *q;
	int ret = 0;

	if (timeout_ms >= 0)
		transport_deadline(timeout_ms, &abstime);
	pthread_mutex_lock(&tc->lock);
	transport_queue_release(&tc->incoming);
	for (;;) {
		if (tcp_queue_ready(tc))
			break;
		/* After a goodbye, wait for the streams to deliver what was sent before it. */
		if (tc->dead || (tc->peer_closed && tc->receivers_running == 0)) {
			pthread_mutex_unlock(&tc->lock);
			ret = tcp_status(tc);
			/* A stream that stalled past the deadline is a dead peer, not "nothing
			 * yet": -ETIMEDOUT would have the caller wait on a connection that is
			 * gone. */
			return ret == -ETIMEDOUT ? -EHOSTDOWN : ret ? ret : -ECONNRESET;
		}
		if (tcp_wait(tc, timeout_ms < 0 ? NULL : &abstime) == -ETIMEDOUT) {
			if (tcp_queue_ready(tc))
				break;
			pthread_mutex_unlock(&tc->lock);
			return -ETIMEDOUT;
		}
	}
	q = container_of(transport_queue_pop(&tc->incoming), struct tcp_queued, entry);
	pthread_cond_broadcast(&tc->changed); /* a receiver may wait for room */
	pthread_mutex_unlock(&tc->lock);
	*msg = q->msg;
	return 0;
}
