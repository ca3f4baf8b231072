/* SPDX-License-Identifier: MIT */
/* transport/tcp.c - "tcp://host:port": a framed stream (struct wire_hdr) per socket; page data
 * goes out with sendmsg straight from the region and is received straight into the region at
 * its offset, after every field of the frame has been checked against the local tables. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <limits.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "transport/deadline.h"
#include "transport/log.h"
#include "transport/queue.h"
#include "transport/transport.h"
#include "transport/transport_impl.h"
#include "transport/wire.h"

/* How a connection works. Each stream (socket) has a receiver thread that reads one frame at a
 * time, checks it, and places page data with recv() straight into the region; commits and
 * control messages are queued for transport_recv(). Stream 0 carries the handshake, commits,
 * control messages, region announcements and reads; with several streams, page data goes on
 * streams 1..n-1 (each with a sender thread) and a commit names how many data bytes each
 * stream must have placed before it is delivered. A responder thread serves the peer's read
 * requests from REMOTE_READ regions, so a receiver never blocks on a send. Deregistering a
 * region waits for a frame being placed into it to finish.
 *
 * Page data travels in frames of at most this many bytes, cut at multiples of it within the
 * region: large enough that headers cost nothing, small enough that streams share a batch
 * evenly. loop.c counts headers the same way. */
#define TCP_FRAME_DATA_MAX (4u << 20)
/* Largest header.length any frame may carry: a full data or read-response frame. */
#define TCP_FRAME_MAX ((uint32_t)sizeof(struct wire_data) + TCP_FRAME_DATA_MAX)
#define TCP_COMMIT_MAX \
	(sizeof(struct wire_commit) + TRANSPORT_BATCH_MAX_RUNS * sizeof(struct wire_run))
#define TCP_CLOSE_REASON_MAX 256u
#define TCP_SEND_GROUP_BYTES (1u << 20) /* frames sent under one hold of a stream's lock */
#define TCP_HELLO_TIMEOUT_MS 10000
#define TCP_STALL_TIMEOUT_MS 60000 /* nothing moved mid-frame for this long: the peer is gone */
#define TCP_CLOSE_GRACE_MS 1000	   /* how long close() lets the peer finish its goodbye */
#define TCP_READ_JOBS_MAX 4096u	   /* outstanding read requests a peer may queue here */
#define TCP_REMOTE_REGIONS_MAX 65536u
#define TCP_DEFAULT_CONNECT_TIMEOUT_MS 10000

/* What precedes the bytes of one data chunk on the wire. */
struct tcp_data_head {
	struct wire_hdr hdr;
	struct wire_data data;
} __attribute__((packed));

struct tcp_conn;

struct tcp_stream {
	struct tcp_conn *conn;
	unsigned index;
	int fd;
	pthread_t receiver;
	pthread_t sender; /* streams 1..n-1 when n > 1: sends its share of each batch */
	int receiver_started;
	int sender_started;
	int awaiting_hello;	   /* connecting side: the listener's answer comes first */
	pthread_mutex_t send_lock; /* one frame at a time on the socket */
	uint64_t data_sent;	   /* payload bytes handed to the socket; under post_lock */
	uint64_t data_received;	   /* payload bytes placed; under conn->lock */
	/* The sender's job, under conn->lock. */
	struct iovec *job_iov;
	size_t job_iovcnt;
	int job_pending;
	int job_result;
};

/* A commit or control message waiting for recv(). */
struct tcp_queued {
	struct transport_queued entry; /* in tcp_conn.incoming */
	struct transport_msg msg;
	struct transport_run *runs;
	void *data;
	uint64_t need[WIRE_STREAMS_MAX]; /* commit: bytes each stream must have placed first */
};

/* A transport_read() chunk waiting for its response; lives on the reader's stack. */
enum tcp_read_state { TCP_READ_WAITING, TCP_READ_FILLING, TCP_READ_DONE };
struct tcp_read_wait {
	struct tcp_read_wait *next;
	uint64_t request_id;
	void *dst;
	size_t len;
	enum tcp_read_state state;
	int status;
};

/* A read request from the peer, served by the responder thread. */
struct tcp_read_job {
	struct tcp_read_job *next;
	struct wire_read_req req;
};

struct tcp_conn {
	struct transport_conn base;
	unsigned nstreams;
	uint64_t session_tag; /* ties the streams together in the handshake; low byte zero */
	struct tcp_stream streams[WIRE_STREAMS_MAX];
	/* lock + changed: the recv queue, stream counters, read waits, read jobs, shutdown. */
	pthread_mutex_t lock;
	pthread_cond_t changed;
	struct transport_queue incoming; /* of struct tcp_queued */
	struct tcp_read_wait *read_waits;
	uint64_t last_request_id;
	struct tcp_read_job *jobs_head, *jobs_tail;
	size_t njobs;
	pthread_t responder;
	int responder_started;
	unsigned receivers_running;
	int stopping;	 /* close() has begun */
	int dead;	 /* the connection broke */
	int peer_closed; /* the peer said goodbye; data already sent may still be arriving */
	/* Serialises batch_post, so each commit's per-stream byte counts are exact. */
	pthread_mutex_t post_lock;
	/* Read-held while bytes move in or out of a local region, write-held while a region is
	 * deregistered: a region is never unmapped under a transfer. */
	pthread_rwlock_t memory_lock;
};

struct tcp_listener {
	struct transport_listener base;
	int fd;
};

static struct tcp_conn *tcp_conn_of(struct transport_conn *conn)
{
	return container_of(conn, struct tcp_conn, base);
}

/* Wait on tc->changed (tc->lock held) until woken or deadline (NULL: none); 0 or -ETIMEDOUT. */
static int tcp_wait(struct tcp_conn *tc, const struct timespec *deadline)
{
	return transport_cond_wait(&tc->changed, &tc->lock, deadline);
}

/* ---- socket I/O ---- */

/* Send every byte of iov (which is consumed), restarting after signals and partial writes. */
static int tcp_send_iov(int fd, struct iovec *iov, size_t iovcnt)
{
	while (iovcnt && iov->iov_len == 0) {
		iov++;
		iovcnt--;
	}
	while (iovcnt) {
		struct msghdr mh = {
			.msg_iov = iov,
			.msg_iovlen = iovcnt < IOV_MAX ? iovcnt : IOV_MAX,
		};
		ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			/* SO_SNDTIMEO expired: the peer stopped reading. */
			return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
		}
		while (n > 0) {
			if ((size_t)n >= iov->iov_len) {
				n -= (ssize_t)iov->iov_len;
				iov++;
				iovcnt--;
			} else {
				iov->iov_base = (char *)iov->iov_base + n;
				iov->iov_len -= (size_t)n;
				n = 0;
			}
		}
		while (iovcnt && iov->iov_len == 0) {
			iov++;
			iovcnt--;
		}
	}
	return 0;
}

/* Receive exactly len bytes. -ECONNRESET when the peer closed first; *got_p says how far it
 * came, so a clean end between frames can be told from a truncated frame. */
static int tcp_recv_full(int fd, void *buf, size_t len, size_t *got_p)
{
	size_t got = 0;
	int ret = 0;

	while (got < len) {
		ssize_t n = recv(fd, (char *)buf + got, len - got, MSG_WAITALL);

		if (n > 0) {
			got += (size_t)n;
			continue;
		}
		if (n == 0) {
			ret = -ECONNRESET;
			break;
		}
		if (errno == EINTR)
			continue;
		/* SO_RCVTIMEO expired: the peer stopped in the middle of a frame. */
		ret = errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
		break;
	}
	*got_p = got;
	return ret;
}

/* As tcp_recv_full, for the handshake: gives up at deadline_ms with -ETIMEDOUT. */
static int tcp_recv_deadline(int fd, void *buf, size_t len, int64_t deadline_ms)
{
	size_t got = 0;

	while (got < len) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int ready = poll(&pfd, 1, transport_remaining_ms(deadline_ms));
		ssize_t n;

		if (ready < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (ready == 0)
			return -ETIMEDOUT;
		n = recv(fd, (char *)buf + got, len - got, MSG_DONTWAIT);
		if (n > 0)
			got += (size_t)n;
		else if (n == 0)
			return -ECONNRESET;
		else if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
	}
	return 0;
}

static void tcp_socket_tune(int fd)
{
	int one = 1;

	/* Commits and control messages are small and latency-bound. Socket buffers are left to
	 * the kernel's autotuning (up to tcp_rmem/tcp_wmem max): a fixed SO_RCVBUF turns it off and
	 * is capped at rmem_max, and measured no faster on loopback. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static void tcp_sockaddr_format(const struct sockaddr *sa, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		port = ntohs(in->sin_port);
		snprintf(buf, len, "tcp://%s:%u", host, port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		port = ntohs(in6->sin6_port);
		snprintf(buf, len, "tcp://[%s]:%u", host, port);
	} else {
		snprintf(buf, len, "tcp://?");
	}
}

/* ---- failure and shutdown ---- */

static int tcp_status(struct tcp_conn *tc)
{
	int failed;

	pthread_mutex_lock(tc->base.region_lock);
	failed = tc->base.failed;
	pthread_mutex_unlock(tc->base.region_lock);
	return failed;
}

static void tcp_shutdown_sockets(struct tcp_conn *tc, int how)
{
	for (unsigned i = 0; i < tc->nstreams; i++)
		if (tc->streams[i].fd >= 0)
			shutdown(tc->streams[i].fd, how);
}

static void tcp_wake_all(struct tcp_conn *tc)
{
	pthread_mutex_lock(&tc->lock);
	tc->dead = 1;
	pthread_cond_broadcast(&tc->changed);
	pthread_mutex_unlock(&tc->lock);
}

/* The connection is broken: record why (the first reason wins, and is logged once unless we
 * are closing anyway), wake every waiter, and cut the sockets so every thread returns.
 * Returns the first error recorded, so every caller reports the same one. */
static int tcp_fail(struct tcp_conn *tc, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int tcp_fail(struct tcp_conn *tc, int err, const char *fmt, ...)
{
	char message[TRANSPORT_ERROR_MAX];
	int stopping, failed;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&tc->lock);
	stopping = tc->stopping;
	pthread_mutex_unlock(&tc->lock);
	if (!stopping)
		transport_conn_fail(&tc->base, err, "%s", message);
	tcp_wake_all(tc);
	tcp_shutdown_sockets(tc, SHUT_RDWR);
	failed = tcp_status(tc);
	return failed ? failed : err;
}

/* The peer said goodbye: not an error worth an error log, but every later call fails. */
static void tcp_peer_closed(struct tcp_conn *tc)
{
	pthread_mutex_lock(tc->base.region_lock);
	if (!tc->base.failed) {
		tc->base.failed = -ECONNRESET;
		snprintf(tc->base.error, sizeof(tc->base.error), "the peer closed the connection");
	}
	pthread_mutex_unlock(tc->base.region_lock);
	rmig_log_info("tcp %s: the peer closed the connection", tc->base.peer);
	pthread_mutex_lock(&tc->lock);
	tc->peer_closed = 1;
	pthread_cond_broadcast(&tc->changed);
	pthread_mutex_unlock(&tc->lock);
	/* Our end of the goodbye: the peer's receivers see the end of every stream. */
	tcp_shutdown_sockets(tc, SHUT_WR);
}

static void tcp_stats_received(struct tcp_conn *tc, uint64_t bytes)
{
	pthread_mutex_lock(tc->base.region_lock);
	tc->base.stats.bytes_received += bytes;
	pthread_mutex_unlock(tc->base.region_lock);
}

static void tcp_stats_sent(struct tcp_conn *tc, uint64_t bytes)
{
	pthread_mutex_lock(tc->base.region_lock);
	tc->base.stats.bytes_sent += bytes;
	pthread_mutex_unlock(tc->base.region_lock);
}

static int tcp_send_failed(struct tcp_conn *tc, int err, const char *what)
{
	if (err == -ETIMEDOUT)
		return tcp_fail(tc, err, "sending %s: the peer read nothing for %d s", what,
				TCP_STALL_TIMEOUT_MS / 1000);
	if (err == -EPIPE || err == -ECONNRESET)
		return tcp_fail(tc, -ECONNRESET, "sending %s: the peer disconnected", what);
	return tcp_fail(tc, err, "sending %s: %s", what, strerror(-err));
}

/* Send one frame on stream 0: header, then up to two payload parts, no copies. */
static int tcp_send_frame(struct tcp_conn *tc, enum wire_type type, const void *part1, size_t len1,
			  const void *part2, size_t len2)
{
	struct tcp_stream *stream = &tc->streams[0];
	struct wire_hdr hdr;
	struct iovec iov[3];
	int ret;

	wire_hdr_to_wire(&hdr, type, (uint32_t)(len1 + len2), 0);
	iov[0] = (struct iovec){.iov_base = &hdr, .iov_len = sizeof(hdr)};
	iov[1] = (struct iovec){.iov_base = (void *)part1, .iov_len = len1};
	iov[2] = (struct iovec){.iov_base = (void *)part2, .iov_len = len2};
	pthread_mutex_lock(&stream->send_lock);
	ret = tcp_send_iov(stream->fd, iov, 3);
	pthread_mutex_unlock(&stream->send_lock);
	if (ret)
		return tcp_send_failed(tc, ret, wire_type_name(type));
	tcp_stats_sent(tc, sizeof(hdr) + len1 + len2);
	return 0;
}

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
	if (ret == -ECONNRESET && got == 0 && !strcmp(what, "header")) {
		return tcp_fail(tc, -ECONNRESET,
				"stream 0: the peer disconnected without closing the connection");
	}
	if (ret == -ECONNRESET)
		return tcp_fail(tc, -ECONNRESET,
				"stream %u: %s truncated: the peer disconnected after %zu of %zu "
				"bytes",
				rx->stream->index, what, got, want);
	if (ret == -ETIMEDOUT)
		return tcp_fail(tc, ret,
				"stream %u: %s: nothing arrived for %d s after %zu of %zu bytes",
				rx->stream->index, what, TCP_STALL_TIMEOUT_MS / 1000, got, want);
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
	ret = tcp_recv_full(rx->stream->fd, (char *)buf + take, len - take, &got);
	if (ret)
		return tcp_receiver_lost(rx, ret, take + got, what, len);
	return 0;
}

/* The next frame's header, reading up to 32 bytes from its start while at it. */
static int tcp_receive_header(struct tcp_receiver *rx, struct wire_hdr *raw)
{
	int fd = rx->stream->fd;

	memmove(rx->ahead, rx->ahead + rx->ahead_pos, rx->ahead_len - rx->ahead_pos);
	rx->ahead_len -= rx->ahead_pos;
	rx->ahead_pos = 0;
	while (rx->ahead_len < sizeof(*raw)) {
		ssize_t n =
			recv(fd, rx->ahead + rx->ahead_len, sizeof(rx->ahead) - rx->ahead_len, 0);

		if (n > 0) {
			rx->ahead_len += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			/* An idle connection is fine; a header cut off for that long is not. */
			if (rx->ahead_len == 0)
				continue;
			n = -2;
		}
		return tcp_receiver_lost(rx,
					 n == 0	   ? -ECONNRESET
					 : n == -2 ? -ETIMEDOUT
						   : -errno,
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

	if (hdr->length != sizeof(struct wire_region))
		return tcp_fail(tc, -EPROTO, "header.length: %s of %u bytes, expected %zu", name,
				hdr->length, sizeof(struct wire_region));
	ret = tcp_receive_exact(rx, rx->scratch, hdr->length, name);
	if (ret)
		return ret;
	ret = wire_region_from_wire(rx->scratch, hdr->length, &region, why, sizeof(why));
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
	rx->stream->awaiting_hello = 0;
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

static void *tcp_receiver_main(void *arg)
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

/* ---- serving the peer's reads ---- */

static int tcp_serve_read(struct tcp_conn *tc, const struct wire_read_req *req)
{
	struct tcp_stream *stream = &tc->streams[0];
	struct transport_region region;
	struct wire_read_resp resp;
	struct wire_hdr hdr;
	struct iovec iov[3];
	size_t payload = 0;
	int status = 0, ret;

	pthread_rwlock_rdlock(&tc->memory_lock);
	if (transport_region_find(&tc->base, 0, req->region_id, &region))
		status = -ENOENT;
	else if (!(region.access & TRANSPORT_ACCESS_REMOTE_READ))
		status = -EACCES;
	else if (req->offset > region.length || req->length > region.length - req->offset)
		status = -ERANGE;
	else
		payload = req->length;
	if (status)
		rmig_log_warn("tcp %s: refusing to serve read of region %u [%llu, +%llu): %s",
			      tc->base.peer, req->region_id, (unsigned long long)req->offset,
			      (unsigned long long)req->length, strerror(-status));
	wire_read_resp_to_wire(&resp, req->request_id, status);
	wire_hdr_to_wire(&hdr, WIRE_READ_RESP, (uint32_t)(sizeof(resp) + payload), 0);
	iov[0] = (struct iovec){.iov_base = &hdr, .iov_len = sizeof(hdr)};
	iov[1] = (struct iovec){.iov_base = &resp, .iov_len = sizeof(resp)};
	iov[2] = (struct iovec){.iov_base = payload ? (char *)region.addr + req->offset : NULL,
				.iov_len = payload};
	pthread_mutex_lock(&stream->send_lock);
	ret = tcp_send_iov(stream->fd, iov, 3);
	pthread_mutex_unlock(&stream->send_lock);
	pthread_rwlock_unlock(&tc->memory_lock);
	if (ret)
		return tcp_send_failed(tc, ret, "read-resp");
	tcp_stats_sent(tc, sizeof(hdr) + sizeof(resp) + payload);
	return 0;
}

static void *tcp_responder_main(void *arg)
{
	struct tcp_conn *tc = arg;

	for (;;) {
		struct tcp_read_job *job;
		int ret;

		pthread_mutex_lock(&tc->lock);
		while (!tc->jobs_head && !tc->stopping && !tc->dead)
			tcp_wait(tc, NULL);
		if (tc->stopping || tc->dead) {
			pthread_mutex_unlock(&tc->lock);
			break;
		}
		job = tc->jobs_head;
		tc->jobs_head = job->next;
		if (!tc->jobs_head)
			tc->jobs_tail = NULL;
		tc->njobs--;
		pthread_mutex_unlock(&tc->lock);
		ret = tcp_serve_read(tc, &job->req);
		free(job);
		if (ret)
			break;
	}
	return NULL;
}

/* ---- sending a stream's share of a batch ---- */

/* Send whole frames, each two iovecs (header, payload), taking the stream's lock for a group
 * of frames at a time: a read response or control message waits for one group, not for the
 * whole batch, and frames never interleave mid-way. */
static int tcp_send_frames(struct tcp_stream *stream, struct iovec *iov, size_t iovcnt)
{
	size_t done = 0;
	int ret = 0;

	while (!ret && done < iovcnt) {
		size_t group = 0, bytes = 0;

		while (done + group < iovcnt && group + 2 <= IOV_MAX &&
		       bytes < TCP_SEND_GROUP_BYTES) {
			bytes += iov[done + group].iov_len + iov[done + group + 1].iov_len;
			group += 2;
		}
		pthread_mutex_lock(&stream->send_lock);
		ret = tcp_send_iov(stream->fd, &iov[done], group);
		pthread_mutex_unlock(&stream->send_lock);
		done += group;
	}
	return ret;
}

static void *tcp_sender_main(void *arg)
{
	struct tcp_stream *stream = arg;
	struct tcp_conn *tc = stream->conn;

	pthread_mutex_lock(&tc->lock);
	for (;;) {
		struct iovec *iov;
		size_t iovcnt;
		int ret;

		while (!stream->job_pending && !tc->stopping)
			tcp_wait(tc, NULL);
		if (!stream->job_pending)
			break;
		iov = stream->job_iov;
		iovcnt = stream->job_iovcnt;
		pthread_mutex_unlock(&tc->lock);
		ret = tcp_send_frames(stream, iov, iovcnt);
		pthread_mutex_lock(&tc->lock);
		stream->job_result = ret;
		stream->job_pending = 0;
		pthread_cond_broadcast(&tc->changed);
	}
	pthread_mutex_unlock(&tc->lock);
	return NULL;
}

/* ---- connection life ---- */

static void tcp_queued_free(struct transport_queued *entry)
{
	struct tcp_queued *q = container_of(entry, struct tcp_queued, entry);

	free(q->runs);
	free(q->data);
	free(q);
}

static void tcp_conn_free(struct tcp_conn *tc)
{
	struct tcp_read_job *job = tc->jobs_head;

	transport_queue_fini(&tc->incoming);
	while (job) {
		struct tcp_read_job *next = job->next;

		free(job);
		job = next;
	}
	for (unsigned i = 0; i < WIRE_STREAMS_MAX; i++) {
		if (tc->streams[i].fd >= 0)
			close(tc->streams[i].fd);
		pthread_mutex_destroy(&tc->streams[i].send_lock);
	}
	pthread_rwlock_destroy(&tc->memory_lock);
	pthread_mutex_destroy(&tc->post_lock);
	pthread_cond_destroy(&tc->changed);
	pthread_mutex_destroy(&tc->lock);
	transport_conn_fini(&tc->base);
	free(tc);
}

static void tcp_conn_stop_threads(struct tcp_conn *tc)
{
	pthread_mutex_lock(&tc->lock);
	tc->stopping = 1;
	pthread_cond_broadcast(&tc->changed);
	pthread_mutex_unlock(&tc->lock);
	tcp_shutdown_sockets(tc, SHUT_RDWR);
	for (unsigned i = 0; i < tc->nstreams; i++) {
		if (tc->streams[i].receiver_started)
			pthread_join(tc->streams[i].receiver, NULL);
		if (tc->streams[i].sender_started)
			pthread_join(tc->streams[i].sender, NULL);
		tc->streams[i].receiver_started = tc->streams[i].sender_started = 0;
	}
	if (tc->responder_started)
		pthread_join(tc->responder, NULL);
	tc->responder_started = 0;
}

/* Takes ownership of fds[0..nstreams-1] (closes them on failure). */
static int tcp_conn_create(int *fds, unsigned nstreams, uint64_t session_tag, int awaiting_hello,
			   struct tcp_conn **tc_p)
{
	struct sockaddr_storage peer_addr;
	socklen_t peer_len = sizeof(peer_addr);
	char peer[TRANSPORT_URI_MAX] = "tcp://?";
	struct tcp_conn *tc;
	int ret;

	tc = calloc(1, sizeof(*tc));
	if (!tc) {
		ret = -ENOMEM;
		goto err_close_fds;
	}
	if (!getpeername(fds[0], (struct sockaddr *)&peer_addr, &peer_len))
		tcp_sockaddr_format((struct sockaddr *)&peer_addr, peer, sizeof(peer));
	ret = transport_conn_init(&tc->base, &tcp_transport_ops, peer);
	if (ret)
		goto err_free_conn;
	pthread_mutex_init(&tc->lock, NULL);
	transport_cond_init(&tc->changed);
	transport_queue_init(&tc->incoming, tcp_queued_free);
	pthread_mutex_init(&tc->post_lock, NULL);
	pthread_rwlock_init(&tc->memory_lock, NULL);
	tc->nstreams = nstreams;
	tc->session_tag = session_tag;
	for (unsigned i = 0; i < nstreams; i++) {
		const struct timeval stall = {.tv_sec = TCP_STALL_TIMEOUT_MS / 1000};

		/* Blocking calls on a stream give up when nothing moved for this long, so a peer
		 * that stops mid-frame or stops reading cannot hold a thread (or a deregistration
		 * waiting for it) forever. */
		setsockopt(fds[i], SOL_SOCKET, SO_RCVTIMEO, &stall, sizeof(stall));
		setsockopt(fds[i], SOL_SOCKET, SO_SNDTIMEO, &stall, sizeof(stall));
	}
	for (unsigned i = 0; i < WIRE_STREAMS_MAX; i++) {
		struct tcp_stream *stream = &tc->streams[i];

		stream->conn = tc;
		stream->index = i;
		stream->fd = i < nstreams ? fds[i] : -1;
		stream->awaiting_hello = i < nstreams && awaiting_hello;
		pthread_mutex_init(&stream->send_lock, NULL);
	}

	for (unsigned i = 0; i < nstreams; i++) {
		struct tcp_stream *stream = &tc->streams[i];

		ret = -pthread_create(&stream->receiver, NULL, tcp_receiver_main, stream);
		if (ret)
			goto err_stop_threads;
		stream->receiver_started = 1;
		tc->receivers_running++;
		if (nstreams > 1 && i > 0) {
			ret = -pthread_create(&stream->sender, NULL, tcp_sender_main, stream);
			if (ret)
				goto err_stop_threads;
			stream->sender_started = 1;
		}
	}
	ret = -pthread_create(&tc->responder, NULL, tcp_responder_main, tc);
	if (ret)
		goto err_stop_threads;
	tc->responder_started = 1;
	*tc_p = tc;
	return 0;

err_stop_threads:
	rmig_log_error("tcp %s: cannot start connection threads: %s", peer, strerror(-ret));
	tcp_conn_stop_threads(tc);
	tcp_conn_free(tc);
	return ret;
err_free_conn:
	free(tc);
err_close_fds:
	for (unsigned i = 0; i < nstreams; i++)
		close(fds[i]);
	return ret;
}

static void tcp_close(struct transport_conn *conn)
{
	struct tcp_conn *tc = tcp_conn_of(conn);
	struct tcp_stream *stream = &tc->streams[0];
	struct timespec abstime;

	pthread_mutex_lock(&tc->lock);
	tc->stopping = 1;
	pthread_cond_broadcast(&tc->changed);
	pthread_mutex_unlock(&tc->lock);

	if (!tcp_status(tc) && !pthread_mutex_trylock(&stream->send_lock)) {
		struct wire_hdr hdr;

		wire_hdr_to_wire(&hdr, WIRE_CLOSE, 0, 0);
		if (send(stream->fd, &hdr, sizeof(hdr), MSG_NOSIGNAL | MSG_DONTWAIT) ==
		    (ssize_t)sizeof(hdr))
			tcp_stats_sent(tc, sizeof(hdr));
		pthread_mutex_unlock(&stream->send_lock);
	}
	/* FIN after everything sent so far; then give the peer a moment to answer with its own,
	 * so no unread bytes remain to turn our close into a reset that drops queued data. */
	tcp_shutdown_sockets(tc, SHUT_WR);
	transport_deadline(TCP_CLOSE_GRACE_MS, &abstime);
	pthread_mutex_lock(&tc->lock);
	while (tc->receivers_running &&
	       transport_cond_wait(&tc->changed, &tc->lock, &abstime) != -ETIMEDOUT)
		;
	pthread_mutex_unlock(&tc->lock);
	tcp_conn_stop_threads(tc);
	tcp_conn_free(tc);
}

/* ---- handshake ---- */

static int tcp_hello_send(int fd, uint32_t streams, uint64_t session_tag)
{
	struct {
		struct wire_hdr hdr;
		struct wire_hello hello;
	} __attribute__((packed)) msg;
	struct iovec iov = {.iov_base = &msg, .iov_len = sizeof(msg)};

	wire_hdr_to_wire(&msg.hdr, WIRE_HELLO, sizeof(msg.hello), 0);
	wire_hello_to_wire(&msg.hello, streams, TRANSPORT_CTRL_MAX, 0, session_tag);
	return tcp_send_iov(fd, &iov, 1);
}

/* Receive and check the peer's hello. On -EPROTO, why names the field. */
static int tcp_hello_recv(int fd, int64_t deadline_ms, struct wire_hello *hello, char *why,
			  size_t why_len)
{
	struct wire_hdr raw_hdr;
	struct wire_hdr_host hdr;
	struct wire_hello raw;
	int ret;

	ret = tcp_recv_deadline(fd, &raw_hdr, sizeof(raw_hdr), deadline_ms);
	if (ret)
		goto err_io;
	ret = wire_hdr_from_wire(&raw_hdr, sizeof(raw_hdr), sizeof(raw), &hdr, why, why_len);
	if (ret)
		return ret;
	if (hdr.type != WIRE_HELLO) {
		snprintf(why, why_len, "header.type: expected hello, got %s",
			 wire_type_name(hdr.type));
		return -EPROTO;
	}
	if (hdr.length != sizeof(raw)) {
		snprintf(why, why_len, "header.length: hello of %u bytes, expected %zu", hdr.length,
			 sizeof(raw));
		return -EPROTO;
	}
	ret = tcp_recv_deadline(fd, &raw, sizeof(raw), deadline_ms);
	if (ret)
		goto err_io;
	return wire_hello_from_wire(&raw, sizeof(raw), hello, why, why_len);

err_io:
	snprintf(why, why_len, "hello: %s",
		 ret == -ETIMEDOUT ? "none came in time" : strerror(-ret));
	return ret;
}

/* ---- listening ---- */

static int tcp_resolve(const struct transport_uri *parsed, int passive, struct addrinfo **res_p)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC};
	char port[8];
	int ret;

	hints.ai_flags = passive ? AI_PASSIVE : 0;
	snprintf(port, sizeof(port), "%u", parsed->port);
	ret = getaddrinfo(parsed->host, port, &hints, res_p);
	if (ret) {
		rmig_log_error("tcp: cannot resolve '%s': %s", parsed->host, gai_strerror(ret));
		return ret == EAI_SYSTEM ? -errno : -EHOSTUNREACH;
	}
	return 0;
}

static int tcp_listen(const char *uri, const struct transport_options *opts,
		      struct transport_listener **listener_p)
{
	struct transport_uri parsed;
	struct addrinfo *res, *ai;
	struct tcp_listener *l;
	int fd = -1, ret, one = 1;

	(void)opts;
	ret = transport_uri_parse(uri, &parsed);
	if (ret)
		return ret;
	ret = tcp_resolve(&parsed, 1, &res);
	if (ret)
		return ret;
	ret = -EADDRNOTAVAIL;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0) {
			ret = -errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (!bind(fd, ai->ai_addr, ai->ai_addrlen) && !listen(fd, 64))
			break;
		ret = -errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		rmig_log_error("tcp: cannot listen on '%s': %s", uri, strerror(-ret));
		return ret;
	}
	l = calloc(1, sizeof(*l));
	if (!l) {
		close(fd);
		return -ENOMEM;
	}
	l->base.ops = &tcp_transport_ops;
	l->fd = fd;
	*listener_p = &l->base;
	return 0;
}

/* A wildcard listener is reachable at any local address: name one a peer can use, the first
 * non-loopback address that is up, or loopback when there is none. */
static void tcp_wildcard_address(int family, char *host, size_t len)
{
	struct ifaddrs *ifs, *ifa;

	snprintf(host, len, family == AF_INET6 ? "::1" : "127.0.0.1");
	if (getifaddrs(&ifs))
		return;
	for (ifa = ifs; ifa; ifa = ifa->ifa_next) {
		const void *addr;

		if (!ifa->ifa_addr || ifa->ifa_addr->sa_family != family ||
		    !(ifa->ifa_flags & IFF_UP) || (ifa->ifa_flags & IFF_LOOPBACK))
			continue;
		if (family == AF_INET)
			addr = &((struct sockaddr_in *)ifa->ifa_addr)->sin_addr;
		else if (IN6_IS_ADDR_LINKLOCAL(&((struct sockaddr_in6 *)ifa->ifa_addr)->sin6_addr))
			continue;
		else
			addr = &((struct sockaddr_in6 *)ifa->ifa_addr)->sin6_addr;
		inet_ntop(family, addr, host, (socklen_t)len);
		break;
	}
	freeifaddrs(ifs);
}

static int tcp_listener_uri(struct transport_listener *listener, char *buf, size_t len)
{
	struct tcp_listener *l = container_of(listener, struct tcp_listener, base);
	struct sockaddr_storage ss;
	socklen_t ss_len = sizeof(ss);
	char host[INET6_ADDRSTRLEN];
	unsigned port;
	int n;

	if (getsockname(l->fd, (struct sockaddr *)&ss, &ss_len))
		return -errno;
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;

		port = ntohs(in->sin_port);
		if (in->sin_addr.s_addr == htonl(INADDR_ANY))
			tcp_wildcard_address(AF_INET, host, sizeof(host));
		else
			inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		n = snprintf(buf, len, "tcp://%s:%u", host, port);
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

		port = ntohs(in6->sin6_port);
		if (IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr))
			tcp_wildcard_address(AF_INET6, host, sizeof(host));
		else
			inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		n = snprintf(buf, len, "tcp://[%s]:%u", host, port);
	}
	if (n < 0 || (size_t)n >= len)
		return -ENOSPC;
	return 0;
}

static int tcp_accept_socket(struct tcp_listener *l, int64_t deadline_ms, int *fd_p)
{
	for (;;) {
		struct pollfd pfd = {.fd = l->fd, .events = POLLIN};
		int ready = poll(&pfd, 1, transport_remaining_ms(deadline_ms));
		int fd;

		if (ready < 0 && errno == EINTR)
			continue;
		if (ready < 0)
			return -errno;
		if (ready == 0)
			return -ETIMEDOUT;
		fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED)
				continue;
			return -errno;
		}
		tcp_socket_tune(fd);
		*fd_p = fd;
		return 0;
	}
}

/* Each stream's hello carries the connection's tag with the stream's index in its low byte,
 * so streams are told apart by what they say, not by the order the kernel accepted them. */
#define TCP_TAG_INDEX_MASK 0xffull

static int tcp_accept(struct transport_listener *listener, int timeout_ms,
		      struct transport_conn **conn_p)
{
	struct tcp_listener *l = container_of(listener, struct tcp_listener, base);
	int fds[WIRE_STREAMS_MAX], pending = -1;
	char why[TRANSPORT_ERROR_MAX] = "";
	struct wire_hello first = {0}, hello;
	struct tcp_conn *tc;
	unsigned placed = 0;
	int ret;

	for (unsigned i = 0; i < WIRE_STREAMS_MAX; i++)
		fds[i] = -1;
	ret = tcp_accept_socket(l, transport_deadline_ms(timeout_ms), &pending);
	if (ret)
		return ret;
	do {
		int64_t deadline = transport_deadline_ms(TCP_HELLO_TIMEOUT_MS);
		unsigned index;

		if (pending < 0) {
			ret = tcp_accept_socket(l, deadline, &pending);
			if (ret) {
				snprintf(why, sizeof(why), "%u of %u streams came: %s", placed,
					 first.streams,
					 ret == -ETIMEDOUT ? "the rest never did" : strerror(-ret));
				goto err_close;
			}
		}
		ret = tcp_hello_recv(pending, deadline, &hello, why, sizeof(why));
		if (ret)
			goto err_close;
		if (placed == 0)
			first = hello;
		index = (unsigned)(hello.session_tag & TCP_TAG_INDEX_MASK);
		ret = -EPROTO;
		if ((hello.session_tag & ~TCP_TAG_INDEX_MASK) !=
			    (first.session_tag & ~TCP_TAG_INDEX_MASK) ||
		    hello.streams != first.streams) {
			snprintf(why, sizeof(why),
				 "hello.session_tag: a stream of another connection came while "
				 "this one had %u of %u",
				 placed, first.streams);
			goto err_close;
		}
		if (index >= first.streams || fds[index] >= 0) {
			snprintf(why, sizeof(why),
				 "hello.session_tag: stream index %u is out of range or repeated",
				 index);
			goto err_close;
		}
		ret = tcp_hello_send(pending, hello.streams, hello.session_tag);
		if (ret) {
			snprintf(why, sizeof(why), "hello: sending ours: %s", strerror(-ret));
			goto err_close;
		}
		fds[index] = pending;
		pending = -1;
		placed++;
	} while (placed < first.streams);

	ret = tcp_conn_create(fds, placed, first.session_tag & ~TCP_TAG_INDEX_MASK, 0, &tc);
	if (ret)
		return ret;
	pthread_mutex_lock(tc->base.region_lock);
	tc->base.stats.bytes_sent += placed * (sizeof(struct wire_hdr) + sizeof(struct wire_hello));
	tc->base.stats.bytes_received +=
		placed * (sizeof(struct wire_hdr) + sizeof(struct wire_hello));
	pthread_mutex_unlock(tc->base.region_lock);
	*conn_p = &tc->base;
	return 0;

err_close:
	rmig_log_error("tcp: refusing a connection: %s", why);
	if (pending >= 0)
		close(pending);
	for (unsigned i = 0; i < WIRE_STREAMS_MAX; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return ret;
}

static void tcp_listener_close(struct transport_listener *listener)
{
	struct tcp_listener *l = container_of(listener, struct tcp_listener, base);

	close(l->fd);
	free(l);
}

/* ---- connecting ---- */

static int tcp_dial(const struct transport_uri *parsed, int64_t deadline_ms, int *fd_p)
{
	struct addrinfo *res, *ai;
	int ret, fd = -1;

	ret = tcp_resolve(parsed, 0, &res);
	if (ret)
		return ret;
	ret = -EHOSTUNREACH;
	for (ai = res; ai; ai = ai->ai_next) {
		struct pollfd pfd;
		int err = 0, ready;
		socklen_t err_len = sizeof(err);

		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
			    ai->ai_protocol);
		if (fd < 0) {
			ret = -errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) && errno != EINPROGRESS) {
			ret = -errno;
			goto next;
		}
		pfd = (struct pollfd){.fd = fd, .events = POLLOUT};
		do
			ready = poll(&pfd, 1, transport_remaining_ms(deadline_ms));
		while (ready < 0 && errno == EINTR);
		if (ready <= 0) {
			ret = ready == 0 ? -ETIMEDOUT : -errno;
			goto next;
		}
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &err_len);
		if (err) {
			ret = -err;
			goto next;
		}
		/* Blocking from here on: the connection's threads each own a socket. */
		if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)) {
			ret = -errno;
			goto next;
		}
		tcp_socket_tune(fd);
		break;
	next:
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return ret;
	*fd_p = fd;
	return 0;
}

static int tcp_connect(const char *uri, const struct transport_options *opts,
		       struct transport_conn **conn_p)
{
	uint32_t streams = opts && opts->streams ? opts->streams : 1;
	int timeout_ms = opts && opts->connect_timeout_ms ? opts->connect_timeout_ms
							  : TCP_DEFAULT_CONNECT_TIMEOUT_MS;
	char why[TRANSPORT_ERROR_MAX] = "";
	int64_t deadline = transport_deadline_ms(timeout_ms);
	struct transport_uri parsed;
	int fds[WIRE_STREAMS_MAX];
	struct tcp_conn *tc;
	uint64_t session_tag;
	unsigned nfds = 0;
	int ret;

	ret = transport_uri_parse(uri, &parsed);
	if (ret)
		return ret;
	if (streams > WIRE_STREAMS_MAX) {
		rmig_log_error("tcp: %u streams asked for %s, at most %u", streams, uri,
			       WIRE_STREAMS_MAX);
		return -EINVAL;
	}
	if (getrandom(&session_tag, sizeof(session_tag), 0) != sizeof(session_tag))
		session_tag = (uint64_t)transport_now_ms() ^ ((uint64_t)getpid() << 32);
	session_tag &= ~TCP_TAG_INDEX_MASK;

	while (nfds < streams) {
		ret = tcp_dial(&parsed, deadline, &fds[nfds]);
		if (ret) {
			snprintf(why, sizeof(why), "stream %u: %s", nfds,
				 ret == -ETIMEDOUT ? "timed out" : strerror(-ret));
			goto err_close;
		}
		nfds++;
		ret = tcp_hello_send(fds[nfds - 1], streams, session_tag | (nfds - 1));
		if (ret) {
			snprintf(why, sizeof(why), "hello: %s", strerror(-ret));
			goto err_close;
		}
	}
	/* The listener's answers are checked by the receivers: the listener's side may not have
	 * accepted yet, and connect does not wait for it. */
	ret = tcp_conn_create(fds, nfds, session_tag, 1, &tc);
	if (ret)
		return ret;
	pthread_mutex_lock(tc->base.region_lock);
	tc->base.stats.bytes_sent += nfds * (sizeof(struct wire_hdr) + sizeof(struct wire_hello));
	pthread_mutex_unlock(tc->base.region_lock);
	*conn_p = &tc->base;
	return 0;

err_close:
	rmig_log_error("tcp: cannot connect to %s: %s", uri, why);
	for (unsigned i = 0; i < nfds; i++)
		close(fds[i]);
	return ret;
}

/* ---- regions ---- */

static int tcp_region_register(struct transport_conn *conn, uint32_t id, void *addr, size_t len,
			       unsigned access)
{
	struct tcp_conn *tc = tcp_conn_of(conn);
	struct transport_region region = {.id = id, .access = access, .addr = addr, .length = len};
	struct wire_region wire;
	int ret;

	if (access & ~(unsigned)(TRANSPORT_ACCESS_REMOTE_WRITE | TRANSPORT_ACCESS_REMOTE_READ)) {
		rmig_log_error("tcp %s: region %u: unknown access bits 0x%x", conn->peer, id,
			       access);
		return -EINVAL;
	}
	if (!addr || len == 0) {
		rmig_log_error("tcp %s: region %u: empty (addr %p, length %zu)", conn->peer, id,
			       addr, len);
		return -EINVAL;
	}
	ret = tcp_status(tc);
	if (ret)
		return ret;
	ret = transport_region_add(conn, 0, &region);
	if (ret) {
		rmig_log_error("tcp %s: region %u: %s", conn->peer, id,
			       ret == -EEXIST ? "id already registered" : "cannot record it");
		return ret;
	}
	if (!(access & (TRANSPORT_ACCESS_REMOTE_WRITE | TRANSPORT_ACCESS_REMOTE_READ)))
		return 0;
	/* The peer learns id, length and access; never our address. */
	region.addr = NULL;
	wire_region_to_wire(&wire, &region);
	ret = tcp_send_frame(tc, WIRE_REGION_ADD, &wire, sizeof(wire), NULL, 0);
	if (ret)
		transport_region_remove(conn, 0, id, NULL);
	return ret;
}

static int tcp_region_deregister(struct transport_conn *conn, uint32_t id)
{
	struct tcp_conn *tc = tcp_conn_of(conn);
	struct transport_region removed;
	struct wire_region wire;
	int ret;

	/* Waits for a frame being received into the region, or a read served from it. */
	pthread_rwlock_wrlock(&tc->memory_lock);
	ret = transport_region_remove(conn, 0, id, &removed);
	pthread_rwlock_unlock(&tc->memory_lock);
	if (ret) {
		rmig_log_error("tcp %s: deregister region %u: not registered", conn->peer, id);
		return ret;
	}
	if (!(removed.access & (TRANSPORT_ACCESS_REMOTE_WRITE | TRANSPORT_ACCESS_REMOTE_READ)) ||
	    tcp_status(tc))
		return 0;
	removed.addr = NULL;
	wire_region_to_wire(&wire, &removed);
	return tcp_send_frame(tc, WIRE_REGION_DEL, &wire, sizeof(wire), NULL, 0);
}

/* ---- batches ---- */

/* Data is cut at absolute TCP_FRAME_DATA_MAX boundaries of the region, and each such block
 * always travels on the same stream: a byte sent again in a later batch then queues behind
 * its earlier copy on one ordered stream, and the newer bytes land last. With several
 * streams, stream 0 keeps only commits, control messages and reads, so those never wait
 * behind bulk data. */
static unsigned tcp_data_stream(unsigned nstreams, uint32_t region_id, uint64_t offset)
{
	uint64_t block = offset / TCP_FRAME_DATA_MAX;

	if (nstreams == 1)
		return 0;
	return 1 + transport_block_stream(region_id, block, nstreams - 1);
}

static uint32_t tcp_chunk_length(uint64_t offset, uint64_t left)
{
	uint64_t to_boundary = TCP_FRAME_DATA_MAX - offset % TCP_FRAME_DATA_MAX;

	return (uint32_t)(left < to_boundary ? left : to_boundary);
}

static int tcp_batch_post(struct transport_conn *conn, uint64_t batch_id,
			  const struct transport_run *runs, size_t nruns)
{
	struct tcp_conn *tc = tcp_conn_of(conn);
	const unsigned nstreams = tc->nstreams;
	uint64_t stream_data[WIRE_STREAMS_MAX] = {0};
	size_t stream_chunks[WIRE_STREAMS_MAX] = {0};
	size_t stream_first[WIRE_STREAMS_MAX + 1];
	size_t stream_fill[WIRE_STREAMS_MAX];
	struct wire_commit_host commit = {.batch_id = batch_id, .nruns = nruns};
	char why[TRANSPORT_ERROR_MAX];
	struct tcp_data_head *heads;
	struct wire_hdr commit_hdr;
	struct iovec *iov;
	void *commit_buf;
	size_t nchunks = 0, chunk = 0;
	uint64_t data_bytes = 0;
	int commit_len, ret;

	ret = tcp_status(tc);
	if (ret)
		return ret;
	ret = transport_runs_check(conn, 0, 0, runs, nruns, why, sizeof(why));
	if (!ret)
		ret = transport_runs_check(conn, 1, TRANSPORT_ACCESS_REMOTE_WRITE, runs, nruns, why,
					   sizeof(why));
	if (ret) {
		rmig_log_error("tcp %s: batch %llu refused: %s", conn->peer,
			       (unsigned long long)batch_id, why);
		return ret;
	}
	for (size_t i = 0; i < nruns; i++) {
		if (runs[i].flags & TRANSPORT_RUN_ZERO)
			continue;
		for (uint64_t done = 0; done < runs[i].length;) {
			uint64_t offset = runs[i].offset + done;
			uint32_t len = tcp_chunk_length(offset, runs[i].length - done);

			stream_chunks[tcp_data_stream(nstreams, runs[i].region_id, offset)]++;
			nchunks++;
			done += len;
		}
	}

	heads = malloc((nchunks ? nchunks : 1) * sizeof(*heads));
	iov = malloc((2 * nchunks + 2) * sizeof(*iov));
	commit_buf = malloc(TCP_COMMIT_MAX);
	if (!heads || !iov || !commit_buf) {
		ret = -ENOMEM;
		goto out_free;
	}
	/* Each stream's frames sit together in iov; stream 0's end with the commit. */
	stream_first[0] = 0;
	for (unsigned s = 0; s < nstreams; s++) {
		stream_first[s + 1] = stream_first[s] + 2 * stream_chunks[s] + (s == 0 ? 2 : 0);
		stream_fill[s] = stream_first[s];
	}

	pthread_mutex_lock(&tc->post_lock);
	pthread_rwlock_rdlock(&tc->memory_lock);
	for (size_t i = 0; i < nruns; i++) {
		struct transport_region region;
		uint64_t done = 0;

		if (runs[i].flags & TRANSPORT_RUN_ZERO)
			continue;
		if (transport_region_find(conn, 0, runs[i].region_id, &region)) {
			ret = -ENOENT; /* deregistered while this batch was being posted */
			goto out_unlock;
		}
		while (done < runs[i].length) {
			uint64_t offset = runs[i].offset + done;
			uint32_t len = tcp_chunk_length(offset, runs[i].length - done);
			unsigned s = tcp_data_stream(nstreams, runs[i].region_id, offset);
			struct tcp_data_head *head = &heads[chunk];

			wire_hdr_to_wire(&head->hdr, WIRE_DATA,
					 (uint32_t)sizeof(struct wire_data) + len, 0);
			wire_data_to_wire(&head->data, runs[i].region_id, runs[i].offset + done);
			iov[stream_fill[s]++] =
				(struct iovec){.iov_base = head, .iov_len = sizeof(*head)};
			iov[stream_fill[s]++] = (struct iovec){.iov_base = (char *)region.addr +
									   runs[i].offset + done,
							       .iov_len = len};
			stream_data[s] += len;
			data_bytes += len;
			done += len;
			chunk++;
		}
	}
	commit.stream_count = nstreams;
	for (unsigned s = 0; s < nstreams; s++)
		commit.stream_bytes[s] = tc->streams[s].data_sent + stream_data[s];
	commit_len = wire_commit_to_wire(commit_buf, TCP_COMMIT_MAX, &commit, runs);
	if (commit_len < 0) {
		ret = commit_len;
		goto out_unlock;
	}
	wire_hdr_to_wire(&commit_hdr, WIRE_COMMIT, (uint32_t)commit_len, 0);
	iov[stream_fill[0]++] =
		(struct iovec){.iov_base = &commit_hdr, .iov_len = sizeof(commit_hdr)};
	iov[stream_fill[0]++] =
		(struct iovec){.iov_base = commit_buf, .iov_len = (size_t)commit_len};

	pthread_mutex_lock(&tc->lock);
	for (unsigned s = 1; s < nstreams; s++) {
		tc->streams[s].job_iov = &iov[stream_first[s]];
		tc->streams[s].job_iovcnt = stream_first[s + 1] - stream_first[s];
		tc->streams[s].job_result = 0;
		tc->streams[s].job_pending = stream_chunks[s] != 0;
	}
	pthread_cond_broadcast(&tc->changed);
	pthread_mutex_unlock(&tc->lock);

	ret = tcp_send_frames(&tc->streams[0], &iov[0], stream_first[1]);

	/* The regions must not be released while another stream still reads from them. */
	pthread_mutex_lock(&tc->lock);
	for (unsigned s = 1; s < nstreams; s++) {
		while (tc->streams[s].job_pending)
			tcp_wait(tc, NULL);
		if (!ret)
			ret = tc->streams[s].job_result;
	}
	pthread_mutex_unlock(&tc->lock);
	if (ret) {
		ret = tcp_send_failed(tc, ret, "batch");
		goto out_unlock;
	}
	for (unsigned s = 0; s < nstreams; s++)
		tc->streams[s].data_sent += stream_data[s];
	pthread_mutex_lock(conn->region_lock);
	conn->stats.bytes_sent += nchunks * sizeof(struct tcp_data_head) + data_bytes +
				  sizeof(commit_hdr) + (size_t)commit_len;
	conn->stats.data_bytes_sent += data_bytes;
	conn->stats.batches_sent++;
	pthread_mutex_unlock(conn->region_lock);

out_unlock:
	pthread_rwlock_unlock(&tc->memory_lock);
	pthread_mutex_unlock(&tc->post_lock);
out_free:
	free(commit_buf);
	free(iov);
	free(heads);
	return ret;
}

static int tcp_flush(struct transport_conn *conn, int timeout_ms)
{
	(void)timeout_ms;
	/* batch_post returns once the kernel holds every byte: nothing is left to wait for. */
	return tcp_status(tcp_conn_of(conn));
}

static int tcp_ctrl_send(struct transport_conn *conn, const void *buf, size_t len)
{
	struct tcp_conn *tc = tcp_conn_of(conn);
	int ret;

	if (len > TRANSPORT_CTRL_MAX)
		return -EMSGSIZE;
	ret = tcp_status(tc);
	if (ret)
		return ret;
	ret = tcp_send_frame(tc, WIRE_CTRL, buf, len, NULL, 0);
	if (ret)
		return ret;
	pthread_mutex_lock(conn->region_lock);
	conn->stats.ctrl_sent++;
	pthread_mutex_unlock(conn->region_lock);
	return 0;
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

static int tcp_recv(struct transport_conn *conn, struct transport_msg *msg, int timeout_ms)
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
			return ret ? ret : -ECONNRESET;
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

/* ---- reads ---- */

static int tcp_read_chunk(struct tcp_conn *tc, uint32_t region_id, uint64_t offset, void *dst,
			  size_t len, int timeout_ms, const struct timespec *abstime)
{
	struct tcp_read_wait wait = {.dst = dst, .len = len, .state = TCP_READ_WAITING};
	struct tcp_read_wait **link;
	struct wire_read_req req;
	int ret;

	pthread_mutex_lock(&tc->lock);
	wait.request_id = ++tc->last_request_id;
	wait.next = tc->read_waits;
	tc->read_waits = &wait;
	pthread_mutex_unlock(&tc->lock);

	wire_read_req_to_wire(&req, wait.request_id, region_id, offset, len);
	ret = tcp_send_frame(tc, WIRE_READ_REQ, &req, sizeof(req), NULL, 0);

	pthread_mutex_lock(&tc->lock);
	while (!ret && wait.state != TCP_READ_DONE) {
		/* Once filling, the receiver finishes (or fails) the frame: wait it out. */
		if (wait.state == TCP_READ_WAITING && (tc->dead || tc->peer_closed)) {
			ret = -ECONNRESET;
			break;
		}
		if (tcp_wait(tc,
			     wait.state == TCP_READ_FILLING || timeout_ms < 0 ? NULL : abstime) ==
			    -ETIMEDOUT &&
		    wait.state == TCP_READ_WAITING)
			ret = -ETIMEDOUT;
	}
	if (!ret)
		ret = wait.status;
	for (link = &tc->read_waits; *link; link = &(*link)->next) {
		if (*link == &wait) {
			*link = wait.next;
			break;
		}
	}
	pthread_mutex_unlock(&tc->lock);
	if (ret == -ECONNRESET && tcp_status(tc))
		ret = tcp_status(tc);
	return ret;
}

static int tcp_read(struct transport_conn *conn, uint32_t region_id, uint64_t offset, void *dst,
		    size_t len, int timeout_ms)
{
	const struct transport_run run = {.region_id = region_id, .offset = offset, .length = len};
	struct tcp_conn *tc = tcp_conn_of(conn);
	char why[TRANSPORT_ERROR_MAX];
	struct timespec abstime = {0};
	size_t done = 0;
	int ret;

	ret = tcp_status(tc);
	if (ret)
		return ret;
	ret = transport_runs_check(conn, 1, TRANSPORT_ACCESS_REMOTE_READ, &run, 1, why,
				   sizeof(why));
	if (ret) {
		rmig_log_error("tcp %s: read refused: %s", conn->peer, why);
		return ret;
	}
	if (timeout_ms >= 0)
		transport_deadline(timeout_ms, &abstime);
	while (done < len) {
		size_t chunk = len - done < TCP_FRAME_DATA_MAX ? len - done : TCP_FRAME_DATA_MAX;

		ret = tcp_read_chunk(tc, region_id, offset + done, (char *)dst + done, chunk,
				     timeout_ms, &abstime);
		if (ret) {
			if (ret == -ETIMEDOUT)
				rmig_log_error("tcp %s: read of region %u [%llu, +%zu) timed out",
					       conn->peer, region_id,
					       (unsigned long long)(offset + done), chunk);
			else if (!tcp_status(tc))
				rmig_log_error("tcp %s: the peer refused the read of region %u "
					       "[%llu, +%zu): %s",
					       conn->peer, region_id,
					       (unsigned long long)(offset + done), chunk,
					       strerror(-ret));
			return ret;
		}
		done += chunk;
	}
	pthread_mutex_lock(conn->region_lock);
	conn->stats.reads++;
	conn->stats.read_bytes += len;
	pthread_mutex_unlock(conn->region_lock);
	return 0;
}

const struct transport_ops tcp_transport_ops = {
	.scheme = "tcp",
	.listen = tcp_listen,
	.listener_uri = tcp_listener_uri,
	.accept = tcp_accept,
	.listener_close = tcp_listener_close,
	.connect = tcp_connect,
	.region_register = tcp_region_register,
	.region_deregister = tcp_region_deregister,
	.batch_post = tcp_batch_post,
	.flush = tcp_flush,
	.ctrl_send = tcp_ctrl_send,
	.recv = tcp_recv,
	.read = tcp_read,
	.close = tcp_close,
};
