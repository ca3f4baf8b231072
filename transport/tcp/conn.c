/* SPDX-License-Identifier: MIT */
/* transport/tcp/conn.c - one tcp:// connection's life: socket I/O that survives signals and
 * partial writes, failure recording and shutdown (the first error wins and wakes every
 * waiter), frames on stream 0, starting and stopping the receiver, sender and responder
 * threads, and close with a goodbye. The ops table is at the end. */
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

/* ---- socket I/O ---- */

/* Has the peer acknowledged nothing, with bytes outstanding, for as long as a send may block
 * (SO_SNDTIMEO)? */
static int tcp_socket_unacked_stall(int fd)
{
	struct timeval stall;
	struct tcp_info info;
	socklen_t len = sizeof(stall), info_len = sizeof(info);
	uint64_t stall_ms;

	if (getsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &stall, &len) ||
	    getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &info_len))
		return 0;
	stall_ms = (uint64_t)stall.tv_sec * 1000u + (uint64_t)stall.tv_usec / 1000u;
	return stall_ms && info.tcpi_unacked && info.tcpi_last_ack_recv >= stall_ms;
}

/* Send every byte of iov (which is consumed), restarting after signals and partial writes. */
int tcp_send_iov(int fd, struct iovec *iov, size_t iovcnt)
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
		size_t want = 0;
		ssize_t n;

		for (size_t i = 0; i < mh.msg_iovlen; i++)
			want += iov[i].iov_len;
		n = sendmsg(fd, &mh, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			/* SO_SNDTIMEO expired: the peer stopped reading. */
			return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
		}
		/* A partial write is progress only when the peer acknowledges: bytes copied into
		 * the socket's buffer are not, and restarting the wait after each of them let a
		 * silent path hold a sender for several timeouts. */
		if ((size_t)n < want && tcp_socket_unacked_stall(fd))
			return -ETIMEDOUT;
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
int tcp_recv_full(int fd, void *buf, size_t len, size_t *got_p)
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

/* As tcp_recv_full, for the handshake: gives up at deadline_ms with -ETIMEDOUT; *got_p (when
 * not NULL) says how much came, also on failure. */
int tcp_recv_deadline(int fd, void *buf, size_t len, int64_t deadline_ms, size_t *got_p)
{
	size_t got = 0;
	int ret = 0;

	while (got < len) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int ready = poll(&pfd, 1, transport_remaining_ms(deadline_ms));
		ssize_t n;

		if (ready < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			break;
		}
		if (ready == 0) {
			ret = -ETIMEDOUT;
			break;
		}
		n = recv(fd, (char *)buf + got, len - got, MSG_DONTWAIT);
		if (n > 0) {
			got += (size_t)n;
		} else if (n == 0) {
			ret = -ECONNRESET;
			break;
		} else if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) {
			ret = -errno;
			break;
		}
	}
	if (got_p)
		*got_p = got;
	return ret;
}

/* See tcp.h. */
int tcp_stream_send(struct tcp_stream *stream, struct iovec *iov, size_t iovcnt)
{
	if (stream->ssl)
		return tcp_tls_send(stream->ssl, stream->fd, &stream->tls_lock, iov, iovcnt,
				    stream->tls_send_why, sizeof(stream->tls_send_why));
	return tcp_send_iov(stream->fd, iov, iovcnt);
}

/* See tcp.h. */
int tcp_stream_recv_full(struct tcp_stream *stream, void *buf, size_t len, size_t *got_p)
{
	if (stream->ssl)
		return tcp_tls_recv(stream->ssl, stream->fd, &stream->tls_lock, buf, len, 0, got_p,
				    stream->tls_why, sizeof(stream->tls_why));
	return tcp_recv_full(stream->fd, buf, len, got_p);
}

/* See tcp.h. */
int tcp_stream_recv_some(struct tcp_stream *stream, void *buf, size_t len)
{
	size_t got = 0;
	ssize_t n;
	int ret;

	if (stream->ssl) {
		ret = tcp_tls_recv(stream->ssl, stream->fd, &stream->tls_lock, buf, len,
				   TCP_TLS_SOME, &got, stream->tls_why, sizeof(stream->tls_why));
		if (got)
			return (int)got;
		if (ret == -ECONNRESET)
			return 0;
		return ret == -ETIMEDOUT ? -EAGAIN : ret;
	}
	for (;;) {
		n = recv(stream->fd, buf, len, 0);
		if (n >= 0)
			return (int)n;
		if (errno == EINTR)
			continue;
		/* SO_RCVTIMEO expired */
		return errno == EAGAIN || errno == EWOULDBLOCK ? -EAGAIN : -errno;
	}
}

void tcp_socket_tune(int fd)
{
	int one = 1;

	/* Commits and control messages are small and latency-bound. Socket buffers are left to
	 * the kernel's autotuning (up to tcp_rmem/tcp_wmem max): a fixed SO_RCVBUF turns it off and
	 * is capped at rmem_max, and measured no faster on loopback. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

void tcp_socket_deadline(int fd, unsigned timeout_ms)
{
	const struct timeval stall = {.tv_sec = timeout_ms / 1000,
				      .tv_usec = (suseconds_t)(timeout_ms % 1000) * 1000};
	unsigned user_timeout = timeout_ms;
	/* Keepalive (for a connection with nothing in flight): first probe after a third of
	 * the deadline, then one every sixth, three unanswered end it within the deadline.
	 * TCP_USER_TIMEOUT covers data in flight, and zero-window probing (a peer whose kernel
	 * answers but whose process stopped reading). */
	int one = 1, idle = (int)(timeout_ms / 3000u), interval = (int)(timeout_ms / 6000u),
	    count = 3;

	if (idle < 1)
		idle = 1;
	if (interval < 1)
		interval = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout, sizeof(user_timeout));
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof(interval));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof(count));
	/* Blocking calls on a stream give up when nothing moved for this long, so a peer that
	 * stops mid-frame or stops reading cannot hold a thread (or a deregistration waiting
	 * for it) forever. */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &stall, sizeof(stall));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &stall, sizeof(stall));
}

int tcp_peer_timeout_set(struct transport_conn *conn, uint32_t timeout_ms)
{
	struct tcp_conn *tc = tcp_conn_of(conn);

	if (timeout_ms == 0)
		timeout_ms = TCP_STALL_TIMEOUT_MS;
	for (unsigned i = 0; i < tc->nstreams; i++)
		tcp_socket_deadline(tc->streams[i].fd, timeout_ms);
	pthread_mutex_lock(&tc->lock);
	tc->stall_ms = timeout_ms;
	pthread_mutex_unlock(&tc->lock);
	return 0;
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

int tcp_status(struct tcp_conn *tc)
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

/* See tcp.h. */
int tcp_fail(struct tcp_conn *tc, int err, const char *fmt, ...)
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
void tcp_peer_closed(struct tcp_conn *tc)
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

void tcp_stats_received(struct tcp_conn *tc, uint64_t bytes)
{
	pthread_mutex_lock(tc->base.region_lock);
	tc->base.stats.bytes_received += bytes;
	pthread_mutex_unlock(tc->base.region_lock);
}

void tcp_stats_sent(struct tcp_conn *tc, uint64_t bytes)
{
	pthread_mutex_lock(tc->base.region_lock);
	tc->base.stats.bytes_sent += bytes;
	pthread_mutex_unlock(tc->base.region_lock);
}

int tcp_send_failed(struct tcp_conn *tc, int err, const char *what)
{
	if (err == -ETIMEDOUT)
		return tcp_fail(tc, err, "sending %s: the peer acknowledged nothing for %u ms",
				what, tc->stall_ms);
	/* Before the listener answered our hello: it refused this connection, most often
	 * because one side runs TLS and the other does not. */
	if ((err == -EPIPE || err == -ECONNRESET) &&
	    __atomic_load_n(&tc->streams[0].awaiting_hello, __ATOMIC_RELAXED))
		return tcp_fail(tc, -ECONNRESET,
				"sending %s: the listener closed the connection without answering "
				"our hello: it refused us (%s)",
				what,
				tc->streams[0].ssl
					? "see its log"
					: "does it run TLS, or ask for a key? this side has "
					  "neither; --tls must match on both sides, and the "
					  "key");
	if (err == -EPIPE || err == -ECONNRESET)
		return tcp_fail(tc, -ECONNRESET, "sending %s: the peer disconnected", what);
	return tcp_fail(tc, err, "sending %s: %s", what, strerror(-err));
}

/* Send one frame on stream 0: header, then up to two payload parts, no copies. */
int tcp_send_frame(struct tcp_conn *tc, enum wire_type type, const void *part1, size_t len1,
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
	ret = tcp_stream_send(stream, iov, 3);
	pthread_mutex_unlock(&stream->send_lock);
	if (ret)
		return tcp_send_failed(tc, ret, wire_type_name(type));
	tcp_stats_sent(tc, sizeof(hdr) + len1 + len2);
	return 0;
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
		SSL_free(tc->streams[i].ssl);
		if (tc->streams[i].fd >= 0)
			close(tc->streams[i].fd);
		pthread_mutex_destroy(&tc->streams[i].tls_lock);
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

/* Takes ownership of fds[0..nstreams-1] and, with TLS, ssls[0..nstreams-1] (frees them on
 * failure). A TLS stream's socket stays non-blocking (tls.c); a plaintext one blocks. */
int tcp_conn_create(int *fds, SSL **ssls, unsigned nstreams, uint64_t session_tag,
		    int awaiting_hello, struct tcp_conn **tc_p)
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
	tc->stall_ms = TCP_STALL_TIMEOUT_MS;
	for (unsigned i = 0; i < nstreams; i++)
		tcp_socket_deadline(fds[i], TCP_STALL_TIMEOUT_MS);
	for (unsigned i = 0; i < WIRE_STREAMS_MAX; i++) {
		struct tcp_stream *stream = &tc->streams[i];

		stream->conn = tc;
		stream->index = i;
		stream->fd = i < nstreams ? fds[i] : -1;
		stream->awaiting_hello = i < nstreams && awaiting_hello;
		stream->ssl = i < nstreams && ssls ? ssls[i] : NULL;
		pthread_mutex_init(&stream->send_lock, NULL);
		pthread_mutex_init(&stream->tls_lock, NULL);
	}
	if (ssls)
		tcp_tls_report(ssls[0], peer);

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
	for (unsigned i = 0; i < nstreams; i++) {
		if (ssls)
			SSL_free(ssls[i]);
		close(fds[i]);
	}
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
		if (stream->ssl) {
			struct iovec iov = {.iov_base = &hdr, .iov_len = sizeof(hdr)};

			/* 24 bytes: they wait only if the peer left the socket buffer full. */
			if (!tcp_stream_send(stream, &iov, 1))
				tcp_stats_sent(tc, sizeof(hdr));
		} else if (send(stream->fd, &hdr, sizeof(hdr), MSG_NOSIGNAL | MSG_DONTWAIT) ==
			   (ssize_t)sizeof(hdr)) {
			tcp_stats_sent(tc, sizeof(hdr));
		}
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

const struct transport_ops tcp_transport_ops = {
	.scheme = "tcp",
	.listen = tcp_listen,
	.listener_uri = tcp_listener_uri,
	.accept = tcp_accept,
	.listener_close = tcp_listener_close,
	.connect = tcp_connect,
	.region_register = tcp_region_register,
	.region_deregister = tcp_region_deregister,
	.region_access_set = tcp_region_access_set,
	.batch_post = tcp_batch_post,
	.flush = tcp_flush,
	.ctrl_send = tcp_ctrl_send,
	.recv = tcp_recv,
	.read = tcp_read,
	.peer_timeout_set = tcp_peer_timeout_set,
	.close = tcp_close,
};
