/* SPDX-License-Identifier: MIT */
/* transport/tcp/setup.c - setting up tcp:// connections: listen, accept and connect, and the
 * hello each stream exchanges. A connection of n streams is n sockets; the connecting side
 * opens them in order and names the connection by a random session tag whose low byte is the
 * stream's index, so the listener groups them and refuses strays, within a handshake deadline
 * (nothing changes state before the hello is checked). */
#include <ifaddrs.h>
#include <net/if.h>
#include <sys/random.h>
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

int tcp_listen(const char *uri, const struct transport_options *opts,
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

int tcp_listener_uri(struct transport_listener *listener, char *buf, size_t len)
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

int tcp_accept(struct transport_listener *listener, int timeout_ms, struct transport_conn **conn_p)
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

void tcp_listener_close(struct transport_listener *listener)
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

int tcp_connect(const char *uri, const struct transport_options *opts,
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
