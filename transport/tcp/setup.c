/* SPDX-License-Identifier: MIT */
/* transport/tcp/setup.c - setting up tcp:// connections: listen, accept and connect, and the
 * hello each stream exchanges. A connection of n streams is n sockets; the connecting side
 * opens them in order and names the connection by a random session tag whose low byte is the
 * stream's index, so the listener groups them.
 *
 * The listener cannot be stopped or blocked by what connects to it. accept() runs every
 * handshake side by side in one poll loop (TLS, when set, then the hello), each with its own
 * deadline (TCP_HELLO_TIMEOUT_MS from its accept), and keeps them across calls. A peer that
 * sends garbage, stays silent, fails TLS, sends a bad hello or fails the key proof is dropped,
 * logged, and nothing else changes: the listener and the other handshakes go on. At most
 * TCP_PENDING_MAX run at once; beyond that the one that made the least progress (the oldest of
 * those) is dropped. Only a connection whose every stream finished its handshake leaves
 * accept(), so with a key nothing reaches the engine before the peer proved it: with TLS
 * (psk, or x509) in the TLS handshake; without TLS in the hello itself.
 *
 * The keyed hello (a key, TLS none; struct wire_hello_key). Per stream, three hello frames,
 * each carrying the same struct wire_hello:
 *   connecting side -> listener   CHALLENGE  its nonce Nc
 *   listener -> connecting side   ANSWER     its nonce Nl, proof HMAC(K, "... listener" || T)
 *   connecting side -> listener   PROOF      HMAC(K, "... connector" || T)
 * where K = HMAC-SHA256(session key, TCP_HELLO_KEY_LABEL) and T is the challenge frame as sent
 * (header, hello, Nc), the answer's hello and Nl. The connecting side checks the listener's
 * proof before it gives its own, and the listener hands the stream on only once that checked
 * out (CRYPTO_memcmp). Fresh nonces on both sides: nothing recorded can be replayed; distinct
 * labels: neither proof can be reflected as the other. Without a key (an explicit --insecure)
 * the hello is the plain one; a side that asks for the proof refuses one that does not give
 * it, and says so. */
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

#include <openssl/crypto.h>

#include "transport/key_proof.h"
#include "transport/log.h"
#include "transport/tcp/tcp.h"

#define TCP_HELLO_KEY_LABEL "rmig tcp hello key v1"
#define TCP_HELLO_LISTENER_LABEL "rmig tcp hello listener"
#define TCP_HELLO_CONNECTOR_LABEL "rmig tcp hello connector"

/* ---- handshake ---- */

struct tcp_hello_frame {
	struct wire_hdr hdr;
	struct wire_hello hello;
	struct wire_hello_key key; /* keyed hellos only */
} __attribute__((packed));

_Static_assert(sizeof(struct tcp_hello_frame) == TCP_HELLO_FRAME_MAX, "hello frame layout");

/* Bytes after the header of a hello: the plain one, or the keyed one. */
static uint32_t tcp_hello_payload_len(int keyed)
{
	return (uint32_t)(sizeof(struct wire_hello) + (keyed ? sizeof(struct wire_hello_key) : 0));
}

/* Encode one hello frame (step 0: the plain hello); returns its length. The key part's nonce
 * and mac may be NULL (zeroes). */
static size_t tcp_hello_encode(struct tcp_hello_frame *f, uint32_t streams, uint64_t session_tag,
			       enum wire_hello_key_step step, const uint8_t *nonce,
			       const uint8_t *mac)
{
	uint32_t len = tcp_hello_payload_len(step != 0);

	wire_hdr_to_wire(&f->hdr, WIRE_HELLO, len, 0);
	wire_hello_to_wire(&f->hello, streams, TRANSPORT_CTRL_MAX, 0, session_tag);
	if (step)
		wire_hello_key_to_wire(&f->key, step, nonce, mac);
	return sizeof(struct wire_hdr) + len;
}

static int tcp_hello_send(int fd, SSL *ssl, const struct tcp_hello_frame *f, size_t len)
{
	struct iovec iov = {.iov_base = (void *)f, .iov_len = len};
	char why[TCP_TLS_WHY_MAX];

	if (ssl)
		return tcp_tls_send(ssl, fd, NULL, &iov, 1, why, sizeof(why));
	return tcp_send_iov(fd, &iov, 1);
}

/* Does this side prove the key in its hellos? Only with a key and without TLS (TLS proves it
 * otherwise). 1 and key set, 0, or -errno. */
static int tcp_hello_key_derive(const struct transport_options *opts,
				uint8_t key[TCP_HELLO_KEY_LEN])
{
	if (!opts || !opts->psk || !opts->psk_len || transport_tls_mode(opts) != TRANSPORT_TLS_NONE)
		return 0;
	if (transport_key_proof_key(opts->psk, opts->psk_len, TCP_HELLO_KEY_LABEL, key)) {
		rmig_log_error("tcp: cannot derive the key of the hello's key proof");
		return -EIO;
	}
	return 1;
}

/* One side's proof: HMAC-SHA256(key, label || challenge frame || answer's hello || Nl). */
static int tcp_hello_key_mac(const uint8_t key[TCP_HELLO_KEY_LEN], const char *label,
			     const void *challenge, const struct wire_hello *answer,
			     const uint8_t nonce[WIRE_HELLO_KEY_NONCE_LEN],
			     uint8_t mac[WIRE_HELLO_KEY_MAC_LEN])
{
	return transport_key_proof_mac(key, label, challenge, TCP_HELLO_FRAME_MAX, answer,
				       sizeof(*answer), nonce, WIRE_HELLO_KEY_NONCE_LEN, mac);
}

/* Check a hello frame's header (raw: its first sizeof(struct wire_hdr) bytes) against the one
 * this side expects, keyed or plain; on -EPROTO, why says what differs and what to change. */
static int tcp_hello_header_check(const unsigned char *raw, int keyed, int tls, const char *peer,
				  char *why, size_t why_len)
{
	struct wire_hdr_host hdr;
	int ret;

	ret = wire_hdr_from_wire(raw, sizeof(struct wire_hdr), tcp_hello_payload_len(1), &hdr, why,
				 why_len);
	if (!ret && hdr.type != WIRE_HELLO) {
		snprintf(why, why_len, "header.type: expected hello, got %s",
			 wire_type_name(hdr.type));
		ret = -EPROTO;
	}
	if (ret) {
		if (!tls && (raw[0] == 0x15 || raw[0] == 0x16) && raw[1] == 0x03)
			snprintf(why, why_len,
				 "%s with TLS, and this side runs without it (--tls differs on the "
				 "two sides)",
				 peer);
		return ret;
	}
	if (hdr.length == tcp_hello_payload_len(keyed))
		return 0;
	if (hdr.length == tcp_hello_payload_len(0))
		snprintf(why, why_len,
			 "hello: %s without the key proof this side asks for (it holds a key and "
			 "runs without TLS): the peer has no key, or runs an rmig whose hello has "
			 "none; --tls must match on both sides, and the key",
			 peer);
	else if (hdr.length == tcp_hello_payload_len(1))
		snprintf(why, why_len,
			 "hello: %s with a key proof, and this side %s; --tls must match on both "
			 "sides, and the key",
			 peer, tls ? "runs TLS, which proves the key instead" : "has no key");
	else
		snprintf(why, why_len, "header.length: hello of %u bytes, expected %u", hdr.length,
			 tcp_hello_payload_len(keyed));
	return -EPROTO;
}

/* Check a hello frame received whole and its header checked (raw: header, hello, then the key
 * proof when keyed, which must be at step). On -EPROTO, why names the field. */
static int tcp_hello_parse(const unsigned char *raw, int keyed, enum wire_hello_key_step step,
			   struct wire_hello *hello, struct wire_hello_key *key, char *why,
			   size_t why_len)
{
	const unsigned char *body = raw + sizeof(struct wire_hdr);
	int ret;

	ret = wire_hello_from_wire(body, sizeof(struct wire_hello), hello, why, why_len);
	if (ret || !keyed)
		return ret;
	ret = wire_hello_key_from_wire(body + sizeof(struct wire_hello),
				       sizeof(struct wire_hello_key), key, why, why_len);
	if (!ret && key->step != step) {
		snprintf(why, why_len, "hello.key.step: %u, expected %u here", key->step, step);
		ret = -EPROTO;
	}
	return ret;
}

/* The connecting side's part of the keyed hello on one stream (blocking fd): challenge, the
 * listener's answer checked, proof. On failure why says what happened. */
static int tcp_hello_prove(int fd, const uint8_t key[TCP_HELLO_KEY_LEN], uint32_t streams,
			   uint64_t session_tag, int64_t deadline_ms, char *why, size_t why_len)
{
	uint8_t nonce[WIRE_HELLO_KEY_NONCE_LEN], mac[WIRE_HELLO_KEY_MAC_LEN];
	struct tcp_hello_frame challenge, answer, proof;
	struct wire_hello_key answer_key;
	struct wire_hello hello;
	size_t len;
	int ret;

	if (getrandom(nonce, sizeof(nonce), 0) != (ssize_t)sizeof(nonce)) {
		snprintf(why, why_len, "hello: cannot draw a nonce: %s", strerror(errno));
		return -EIO;
	}
	len = tcp_hello_encode(&challenge, streams, session_tag, WIRE_HELLO_KEY_CHALLENGE, nonce,
			       NULL);
	ret = tcp_hello_send(fd, NULL, &challenge, len);
	if (ret) {
		snprintf(why, why_len, "hello: %s", strerror(-ret));
		return ret;
	}
	ret = tcp_recv_deadline(fd, &answer.hdr, sizeof(answer.hdr), deadline_ms, &len);
	if (ret == -ECONNRESET && len >= 2) {
		const unsigned char *b = (const unsigned char *)&answer;

		/* A TLS listener answers a plaintext hello with an alert record and closes. */
		if ((b[0] == 0x15 || b[0] == 0x16) && b[1] == 0x03) {
			snprintf(why, why_len,
				 "the listener answered with TLS, and this side runs without it "
				 "(--tls must match on both sides)");
			return -EPROTO;
		}
	}
	if (!ret) {
		ret = tcp_hello_header_check((const unsigned char *)&answer, 1, 0,
					     "the listener answered", why, why_len);
		if (ret)
			return ret;
		ret = tcp_recv_deadline(fd, &answer.hello, tcp_hello_payload_len(1), deadline_ms,
					NULL);
	}
	if (ret == -ECONNRESET) {
		snprintf(why, why_len,
			 "the listener closed the connection without answering our hello: it "
			 "refused us (see its log: does it run TLS, or have no key? --tls must "
			 "match on both sides, and the key)");
		return ret;
	}
	if (ret) {
		snprintf(why, why_len, "waiting for the listener's answer to our hello: %s",
			 ret == -ETIMEDOUT ? "timed out" : strerror(-ret));
		return ret;
	}
	ret = tcp_hello_parse((const unsigned char *)&answer, 1, WIRE_HELLO_KEY_ANSWER, &hello,
			      &answer_key, why, why_len);
	if (ret)
		return ret;
	if (hello.streams != streams) {
		snprintf(why, why_len, "hello.streams: the listener answered %u, we opened %u",
			 hello.streams, streams);
		return -EPROTO;
	}
	if (hello.session_tag != session_tag) {
		snprintf(why, why_len,
			 "hello.session_tag: the listener answered for another connection");
		return -EPROTO;
	}
	ret = tcp_hello_key_mac(key, TCP_HELLO_LISTENER_LABEL, &challenge, &answer.hello,
				answer_key.nonce, mac);
	if (ret) {
		snprintf(why, why_len, "hello: cannot compute the key proof");
		return ret;
	}
	if (CRYPTO_memcmp(mac, answer_key.mac, sizeof(mac))) {
		snprintf(why, why_len,
			 "hello.key.mac: the listener does not hold the same key (its proof "
			 "differs)");
		return -EACCES;
	}
	ret = tcp_hello_key_mac(key, TCP_HELLO_CONNECTOR_LABEL, &challenge, &answer.hello,
				answer_key.nonce, mac);
	if (ret) {
		snprintf(why, why_len, "hello: cannot compute the key proof");
		return ret;
	}
	len = tcp_hello_encode(&proof, streams, session_tag, WIRE_HELLO_KEY_PROOF, NULL, mac);
	ret = tcp_hello_send(fd, NULL, &proof, len);
	if (ret)
		snprintf(why, why_len, "hello: sending our key proof: %s", strerror(-ret));
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
	uint8_t hello_key[TCP_HELLO_KEY_LEN];
	struct addrinfo *res, *ai;
	struct tcp_listener *l;
	struct tcp_tls *tls;
	int fd = -1, ret, one = 1, keyed;

	ret = transport_uri_parse(uri, &parsed);
	if (ret)
		return ret;
	keyed = tcp_hello_key_derive(opts, hello_key);
	if (keyed < 0)
		return keyed;
	ret = tcp_tls_create(opts, 1, &tls);
	if (ret)
		goto err_cleanse;
	ret = tcp_resolve(&parsed, 1, &res);
	if (ret)
		goto err_free_tls;
	ret = -EADDRNOTAVAIL;
	for (ai = res; ai; ai = ai->ai_next) {
		/* Non-blocking: accept() takes every waiting peer, then goes back to poll. */
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
			    ai->ai_protocol);
		if (fd < 0) {
			ret = -errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (!bind(fd, ai->ai_addr, ai->ai_addrlen) && !listen(fd, SOMAXCONN))
			break;
		ret = -errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		rmig_log_error("tcp: cannot listen on '%s': %s", uri, strerror(-ret));
		goto err_free_tls;
	}
	l = calloc(1, sizeof(*l));
	if (!l) {
		ret = -ENOMEM;
		goto err_close;
	}
	l->base.ops = &tcp_transport_ops;
	l->fd = fd;
	l->tls = tls;
	l->keyed = keyed;
	if (keyed)
		memcpy(l->hello_key, hello_key, sizeof(hello_key));
	OPENSSL_cleanse(hello_key, sizeof(hello_key));
	*listener_p = &l->base;
	return 0;

err_close:
	close(fd);
err_free_tls:
	tcp_tls_free(tls);
err_cleanse:
	OPENSSL_cleanse(hello_key, sizeof(hello_key));
	return ret;
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

/* Each stream's hello carries the connection's tag with the stream's index in its low byte,
 * so streams are told apart by what they say, not by the order the kernel accepted them. */
#define TCP_TAG_INDEX_MASK 0xffull

static void tcp_pending_drop(struct tcp_listener *l, unsigned i)
{
	struct tcp_pending *p = &l->pending[i];

	SSL_free(p->ssl);
	close(p->fd);
	l->pending[i] = l->pending[--l->npending];
}

static void tcp_pending_refuse(struct tcp_listener *l, unsigned i, int quiet, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void tcp_pending_refuse(struct tcp_listener *l, unsigned i, int quiet, const char *fmt, ...)
{
	char why[TRANSPORT_ERROR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	/* Timeouts and evictions are what a flood looks like: kept out of the warnings. */
	rmig_log_write(quiet ? RMIG_LOG_LEVEL_INFO : RMIG_LOG_LEVEL_WARN,
		       "tcp: refusing a connection from %s: %s (the listener goes on)",
		       l->pending[i].peer, why);
	tcp_pending_drop(l, i);
}

/* Room for one more: drop the handshake that made the least progress, oldest first. */
static void tcp_pending_evict(struct tcp_listener *l)
{
	unsigned victim = 0;

	for (unsigned i = 1; i < l->npending; i++) {
		const struct tcp_pending *p = &l->pending[i], *v = &l->pending[victim];
		int p_rank = p->ready * 8 + p->answered * 4 + p->handshaken * 2 + (p->got > 0);
		int v_rank = v->ready * 8 + v->answered * 4 + v->handshaken * 2 + (v->got > 0);

		if (p_rank < v_rank || (p_rank == v_rank && p->order < v->order))
			victim = i;
	}
	tcp_pending_refuse(l, victim, 1, "%u handshakes at once, this one made the least progress",
			   TCP_PENDING_MAX);
}

static void tcp_pending_add(struct tcp_listener *l, int fd, const struct sockaddr *sa)
{
	struct tcp_pending *p;
	char peer[TRANSPORT_URI_MAX] = "tcp://?";
	int ret;

	if (sa->sa_family == AF_INET || sa->sa_family == AF_INET6) {
		char host[INET6_ADDRSTRLEN] = "?";
		unsigned port;

		if (sa->sa_family == AF_INET) {
			inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, host,
				  sizeof(host));
			port = ntohs(((const struct sockaddr_in *)sa)->sin_port);
		} else {
			inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, host,
				  sizeof(host));
			port = ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
		}
		snprintf(peer, sizeof(peer), "%s:%u", host, port);
	}
	if (l->npending == TCP_PENDING_MAX)
		tcp_pending_evict(l);
	p = &l->pending[l->npending];
	*p = (struct tcp_pending){
		.fd = fd,
		.deadline_ms = transport_deadline_ms(TCP_HELLO_TIMEOUT_MS),
		.order = l->accepted++,
		.events = POLLIN,
		.handshaken = !l->tls,
	};
	/* Shown in logs, never parsed: a long one is cut visibly. */
	if (snprintf(p->peer, sizeof(p->peer), "%s", peer) >= (int)sizeof(p->peer))
		memcpy(p->peer + sizeof(p->peer) - 4, "...", 4);
	tcp_socket_tune(fd);
	if (l->tls) {
		ret = tcp_tls_session_new(l->tls, fd, NULL, &p->ssl);
		if (ret) {
			rmig_log_warn("tcp: refusing a connection from %s: %s", peer,
				      strerror(-ret));
			close(fd);
			return;
		}
	}
	l->npending++;
}

/* Take every connection waiting on the listening socket. */
static int tcp_accept_waiting(struct tcp_listener *l)
{
	for (;;) {
		struct sockaddr_storage ss = {0};
		socklen_t ss_len = sizeof(ss);
		int fd = accept4(l->fd, (struct sockaddr *)&ss, &ss_len,
				 SOCK_CLOEXEC | SOCK_NONBLOCK);

		if (fd < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
				continue;
			/* Out of descriptors (a flood): the handshakes that are running go on. */
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				rmig_log_warn("tcp: cannot accept more connections: %s",
					      strerror(errno));
				if (l->npending)
					tcp_pending_evict(l);
				return 0;
			}
			return -errno;
		}
		tcp_pending_add(l, fd, (struct sockaddr *)&ss);
	}
}

/* A stream finished its hello: does it fit a connection being grouped? */
static int tcp_pending_fits(struct tcp_listener *l, unsigned i, char *why, size_t why_len)
{
	const struct tcp_pending *p = &l->pending[i];
	unsigned index = (unsigned)(p->hello.session_tag & TCP_TAG_INDEX_MASK);

	if (index >= p->hello.streams) {
		snprintf(why, why_len, "hello.session_tag: stream index %u of %u streams", index,
			 p->hello.streams);
		return -EPROTO;
	}
	for (unsigned j = 0; j < l->npending; j++) {
		const struct tcp_pending *q = &l->pending[j];

		if (j == i || !q->ready ||
		    (q->hello.session_tag & ~TCP_TAG_INDEX_MASK) !=
			    (p->hello.session_tag & ~TCP_TAG_INDEX_MASK))
			continue;
		if (q->hello.streams != p->hello.streams) {
			snprintf(why, why_len,
				 "hello.streams: %u, another stream of its connection said %u",
				 p->hello.streams, q->hello.streams);
			return -EPROTO;
		}
		if (q->hello.session_tag == p->hello.session_tag) {
			snprintf(why, why_len, "hello.session_tag: stream index %u is repeated",
				 index);
			return -EPROTO;
		}
	}
	return 0;
}

/* Receive the hello frame a handshake is at, as far as its socket allows: 0 once it is whole
 * (header checked), 1 to wait for more, -1 when it was refused (and dropped). */
static int tcp_pending_receive(struct tcp_listener *l, unsigned i)
{
	struct tcp_pending *p = &l->pending[i];
	size_t frame = sizeof(struct wire_hdr) + tcp_hello_payload_len(l->keyed);
	char why[TRANSPORT_ERROR_MAX] = "";
	int ret;

	while (p->got < frame) {
		/* The header alone first, so a frame that is not the hello expected is refused
		 * at once. */
		size_t end = p->got < sizeof(struct wire_hdr) ? sizeof(struct wire_hdr) : frame;
		size_t want = end - p->got;
		ssize_t n;

		if (p->ssl) {
			size_t got = 0;

			ret = tcp_tls_recv(p->ssl, p->fd, NULL, p->raw + p->got, want,
					   TCP_TLS_SOME | TCP_TLS_NOWAIT, &got, why, sizeof(why));
			if (!got && ret == -EAGAIN)
				return 1; /* a record not yet whole: poll again */
			n = got ? (ssize_t)got : ret == -ECONNRESET ? 0 : -1;
			if (n < 0) {
				tcp_pending_refuse(l, i, 0, "hello over TLS: %s",
						   ret == -EBADMSG ? why : strerror(-ret));
				return -1;
			}
		} else {
			n = recv(p->fd, p->raw + p->got, want, MSG_DONTWAIT);
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
				return 1;
			if (n < 0) {
				tcp_pending_refuse(l, i, 0, "hello: %s", strerror(errno));
				return -1;
			}
		}
		if (n == 0) {
			/* A peer that does not hold our key leaves once it checked our answer. */
			if (p->answered)
				tcp_pending_refuse(
					l, i, 0,
					"it left after our answer, without its key proof "
					"(a peer with another key does so)");
			else
				tcp_pending_refuse(
					l, i, 1, "it closed after %zu bytes of its hello", p->got);
			return -1;
		}
		p->got += (size_t)n;
		if (p->got == sizeof(struct wire_hdr)) {
			ret = tcp_hello_header_check(p->raw, l->keyed, l->tls != NULL, "it opened",
						     why, sizeof(why));
			if (ret) {
				tcp_pending_refuse(l, i, 0, "%s", why);
				return -1;
			}
		}
	}
	return 0;
}

/* Keyed: answer the challenge in p->raw with our nonce and proof, and keep the proof the peer
 * must send. 0, or -1 when it was refused (and dropped). */
static int tcp_pending_answer_keyed(struct tcp_listener *l, unsigned i,
				    const struct tcp_hello_frame *challenge)
{
	struct tcp_pending *p = &l->pending[i];
	uint8_t nonce[WIRE_HELLO_KEY_NONCE_LEN], mac[WIRE_HELLO_KEY_MAC_LEN];
	struct tcp_hello_frame answer;
	size_t len;
	int ret;

	if (getrandom(nonce, sizeof(nonce), GRND_NONBLOCK) != (ssize_t)sizeof(nonce)) {
		tcp_pending_refuse(l, i, 0, "hello: cannot draw a nonce: %s", strerror(errno));
		return -1;
	}
	len = tcp_hello_encode(&answer, p->hello.streams, p->hello.session_tag,
			       WIRE_HELLO_KEY_ANSWER, nonce, NULL);
	ret = tcp_hello_key_mac(l->hello_key, TCP_HELLO_LISTENER_LABEL, challenge, &answer.hello,
				nonce, mac);
	if (!ret)
		ret = tcp_hello_key_mac(l->hello_key, TCP_HELLO_CONNECTOR_LABEL, challenge,
					&answer.hello, nonce, p->proof);
	if (ret) {
		tcp_pending_refuse(l, i, 0, "hello: cannot compute the key proof");
		return -1;
	}
	memcpy(answer.key.mac, mac, sizeof(mac));
	ret = tcp_hello_send(p->fd, p->ssl, &answer, len);
	if (ret) {
		tcp_pending_refuse(l, i, 0, "hello: sending our answer: %s", strerror(-ret));
		return -1;
	}
	p->answered = 1;
	p->got = 0; /* the proof comes in a frame of its own */
	return 0;
}

/* Keyed: the proof frame in p->raw, for the challenge answered. 0, or -1 when it was refused
 * (and dropped). */
static int tcp_pending_check_proof(struct tcp_listener *l, unsigned i)
{
	struct tcp_pending *p = &l->pending[i];
	char why[TRANSPORT_ERROR_MAX] = "";
	struct wire_hello_key key;
	struct wire_hello hello;
	int ret;

	ret = tcp_hello_parse(p->raw, 1, WIRE_HELLO_KEY_PROOF, &hello, &key, why, sizeof(why));
	if (!ret &&
	    (hello.streams != p->hello.streams || hello.session_tag != p->hello.session_tag ||
	     hello.max_ctrl != p->hello.max_ctrl || hello.recv_depth != p->hello.recv_depth)) {
		snprintf(why, sizeof(why),
			 "hello: its proof carries another hello than its "
			 "challenge");
		ret = -EPROTO;
	}
	if (ret) {
		tcp_pending_refuse(l, i, 0, "%s", why);
		return -1;
	}
	if (CRYPTO_memcmp(key.mac, p->proof, sizeof(p->proof))) {
		tcp_pending_refuse(l, i, 0,
				   "hello.key.mac: the peer does not hold the session key (its "
				   "proof differs)");
		return -1;
	}
	return 0;
}

/* Move one handshake on as far as its socket allows. */
static void tcp_pending_advance(struct tcp_listener *l, unsigned i)
{
	struct tcp_pending *p = &l->pending[i];
	char why[TRANSPORT_ERROR_MAX] = "";
	struct tcp_hello_frame frame;
	struct wire_hello_key key;
	size_t len;
	int ret;

	if (!p->handshaken) {
		ret = tcp_tls_handshake_step(p->ssl, &p->events, why, sizeof(why));
		if (ret == -EAGAIN)
			return;
		if (ret) {
			tcp_pending_refuse(l, i, 0, "TLS (%s): %s", tcp_tls_mode_name(l->tls), why);
			return;
		}
		p->handshaken = 1;
		p->events = POLLIN;
	}
	if (tcp_pending_receive(l, i))
		return;
	if (p->answered) {
		/* Keyed, and the proof is in: only now may the stream be grouped. */
		if (tcp_pending_check_proof(l, i))
			return;
		ret = tcp_pending_fits(l, i, why, sizeof(why));
		if (ret) {
			tcp_pending_refuse(l, i, 0, "%s", why);
			return;
		}
		p->ready = 1;
		p->events = 0;
		return;
	}
	ret = tcp_hello_parse(p->raw, l->keyed, WIRE_HELLO_KEY_CHALLENGE, &p->hello, &key, why,
			      sizeof(why));
	if (!ret)
		ret = tcp_pending_fits(l, i, why, sizeof(why));
	if (ret) {
		tcp_pending_refuse(l, i, 0, "%s", why);
		return;
	}
	if (l->keyed) {
		memcpy(&frame, p->raw, sizeof(frame));
		tcp_pending_answer_keyed(l, i, &frame);
		return;
	}
	len = tcp_hello_encode(&frame, p->hello.streams, p->hello.session_tag, 0, NULL, NULL);
	ret = tcp_hello_send(p->fd, p->ssl, &frame, len);
	if (ret) {
		tcp_pending_refuse(l, i, 0, "hello: sending ours: %s", strerror(-ret));
		return;
	}
	p->ready = 1;
	p->events = 0;
}

/* A connection whose streams have all finished their handshakes, taken out of the pending
 * set: 1 and *conn_p set, 0 when none is complete, or -errno. */
static int tcp_group_take(struct tcp_listener *l, struct transport_conn **conn_p)
{
	for (unsigned i = 0; i < l->npending; i++) {
		const struct tcp_pending *first = &l->pending[i];
		uint64_t tag = first->hello.session_tag & ~TCP_TAG_INDEX_MASK;
		unsigned streams = first->hello.streams, found = 0;
		int fds[WIRE_STREAMS_MAX];
		SSL *ssls[WIRE_STREAMS_MAX];
		struct tcp_conn *tc;
		int ret;

		if (!first->ready || (first->hello.session_tag & TCP_TAG_INDEX_MASK) != 0)
			continue;
		for (unsigned j = 0; j < l->npending; j++)
			if (l->pending[j].ready &&
			    (l->pending[j].hello.session_tag & ~TCP_TAG_INDEX_MASK) == tag)
				found++;
		if (found < streams)
			continue;
		for (unsigned j = l->npending; j-- > 0;) {
			struct tcp_pending *p = &l->pending[j];
			unsigned index = (unsigned)(p->hello.session_tag & TCP_TAG_INDEX_MASK);

			if (!p->ready || (p->hello.session_tag & ~TCP_TAG_INDEX_MASK) != tag)
				continue;
			fds[index] = p->fd;
			ssls[index] = p->ssl;
			l->pending[j] = l->pending[--l->npending];
		}
		for (unsigned k = 0; k < streams && !l->tls; k++) /* plaintext streams block */
			fcntl(fds[k], F_SETFL, fcntl(fds[k], F_GETFL) & ~O_NONBLOCK);
		ret = tcp_conn_create(fds, l->tls ? ssls : NULL, streams, tag, 0, &tc);
		if (ret)
			return ret;
		pthread_mutex_lock(tc->base.region_lock);
		tc->base.stats.bytes_sent +=
			streams * (sizeof(struct wire_hdr) + tcp_hello_payload_len(l->keyed));
		tc->base.stats.bytes_received +=
			(l->keyed ? 2u : 1u) * streams *
			(sizeof(struct wire_hdr) + tcp_hello_payload_len(l->keyed));
		pthread_mutex_unlock(tc->base.region_lock);
		*conn_p = &tc->base;
		return 1;
	}
	return 0;
}

int tcp_accept(struct transport_listener *listener, int timeout_ms, struct transport_conn **conn_p)
{
	struct tcp_listener *l = container_of(listener, struct tcp_listener, base);
	int64_t deadline = transport_deadline_ms(timeout_ms);
	struct pollfd pfds[1 + TCP_PENDING_MAX];
	unsigned owner[1 + TCP_PENDING_MAX];
	int ret;

	for (;;) {
		int64_t now = transport_now_ms(), wake = deadline;
		unsigned n = 1;
		int ready, wait_ms;

		for (unsigned i = l->npending; i-- > 0;)
			if (now >= l->pending[i].deadline_ms)
				tcp_pending_refuse(l, i, 1, "%s within %d s",
						   l->pending[i].ready
							   ? "its other streams did not come"
						   : l->pending[i].answered   ? "no key proof"
						   : l->pending[i].handshaken ? "no hello"
									      : "no TLS handshake",
						   TCP_HELLO_TIMEOUT_MS / 1000);
		ret = tcp_group_take(l, conn_p);
		if (ret)
			return ret < 0 ? ret : 0;

		pfds[0] = (struct pollfd){.fd = l->fd, .events = POLLIN};
		for (unsigned i = 0; i < l->npending; i++) {
			if (wake < 0 || l->pending[i].deadline_ms < wake)
				wake = l->pending[i].deadline_ms;
			if (!l->pending[i].events)
				continue;
			pfds[n] = (struct pollfd){.fd = l->pending[i].fd,
						  .events = l->pending[i].events};
			owner[n++] = i;
		}
		wait_ms = transport_remaining_ms(wake);
		ready = poll(pfds, n, wait_ms);
		if (ready < 0 && errno != EINTR)
			return -errno;
		/* Handshakes first, highest index first: dropping one moves the last into its
		 * slot, which has then been served already. */
		for (unsigned k = n; k-- > 1;)
			if (ready > 0 && pfds[k].revents)
				tcp_pending_advance(l, owner[k]);
		if (ready > 0 && pfds[0].revents) {
			ret = tcp_accept_waiting(l);
			if (ret)
				return ret;
		}
		if (deadline >= 0 && transport_now_ms() >= deadline) {
			ret = tcp_group_take(l, conn_p);
			if (ret)
				return ret < 0 ? ret : 0;
			return -ETIMEDOUT;
		}
	}
}

void tcp_listener_close(struct transport_listener *listener)
{
	struct tcp_listener *l = container_of(listener, struct tcp_listener, base);

	while (l->npending)
		tcp_pending_drop(l, l->npending - 1);
	close(l->fd);
	tcp_tls_free(l->tls);
	OPENSSL_cleanse(l->hello_key, sizeof(l->hello_key));
	free(l);
}

/* ---- connecting ---- */

static int tcp_dial(const struct transport_uri *parsed, int64_t deadline_ms, int blocking,
		    int *fd_p)
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
		/* Plaintext blocks from here on: the connection's threads each own a socket.
		 * TLS stays non-blocking (tls.c). */
		if (blocking && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)) {
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
	char why[TRANSPORT_ERROR_MAX] = "", tls_why[TRANSPORT_ERROR_MAX] = "";
	int64_t deadline = transport_deadline_ms(timeout_ms);
	uint8_t hello_key[TCP_HELLO_KEY_LEN];
	struct transport_uri parsed;
	SSL *ssls[WIRE_STREAMS_MAX] = {0};
	int fds[WIRE_STREAMS_MAX];
	struct tcp_hello_frame hello;
	struct tcp_tls *tls;
	struct tcp_conn *tc;
	uint64_t session_tag;
	unsigned nfds = 0;
	int ret, keyed;

	ret = transport_uri_parse(uri, &parsed);
	if (ret)
		return ret;
	if (streams > WIRE_STREAMS_MAX) {
		rmig_log_error("tcp: %u streams asked for %s, at most %u", streams, uri,
			       WIRE_STREAMS_MAX);
		return -EINVAL;
	}
	keyed = tcp_hello_key_derive(opts, hello_key);
	if (keyed < 0)
		return keyed;
	ret = tcp_tls_create(opts, 0, &tls);
	if (ret) {
		OPENSSL_cleanse(hello_key, sizeof(hello_key));
		return ret;
	}
	if (getrandom(&session_tag, sizeof(session_tag), 0) != sizeof(session_tag))
		session_tag = (uint64_t)transport_now_ms() ^ ((uint64_t)getpid() << 32);
	session_tag &= ~TCP_TAG_INDEX_MASK;

	while (nfds < streams) {
		ret = tcp_dial(&parsed, deadline, !tls, &fds[nfds]);
		if (ret) {
			snprintf(why, sizeof(why), "stream %u: %s", nfds,
				 ret == -ETIMEDOUT ? "timed out" : strerror(-ret));
			goto err_close;
		}
		nfds++;
		if (tls) {
			ret = tcp_tls_session_new(tls, fds[nfds - 1], parsed.host, &ssls[nfds - 1]);
			if (!ret)
				ret = tcp_tls_handshake(ssls[nfds - 1], fds[nfds - 1], deadline,
							tls_why, sizeof(tls_why));
			if (ret) {
				if (snprintf(why, sizeof(why), "stream %u: TLS (%s): %s%s",
					     nfds - 1, tcp_tls_mode_name(tls), tls_why,
					     ret == -ECONNRESET || ret == -EPROTO
						     ? " (does the listener run TLS? --tls must "
						       "match on both sides)"
						     : "") >= (int)sizeof(why))
					memcpy(why + sizeof(why) - 4, "...", 4);
				goto err_close;
			}
		}
		if (keyed) {
			char hello_why[TRANSPORT_ERROR_MAX];

			ret = tcp_hello_prove(fds[nfds - 1], hello_key, streams,
					      session_tag | (nfds - 1), deadline, hello_why,
					      sizeof(hello_why));
			if (ret) {
				if (snprintf(why, sizeof(why), "stream %u: %s", nfds - 1,
					     hello_why) >= (int)sizeof(why))
					memcpy(why + sizeof(why) - 4, "...", 4);
				goto err_close;
			}
			continue;
		}
		ret = tcp_hello_send(
			fds[nfds - 1], ssls[nfds - 1], &hello,
			tcp_hello_encode(&hello, streams, session_tag | (nfds - 1), 0, NULL, NULL));
		if (ret) {
			snprintf(why, sizeof(why), "hello: %s", strerror(-ret));
			goto err_close;
		}
	}
	OPENSSL_cleanse(hello_key, sizeof(hello_key));
	/* Plain hellos: the listener's answers are checked by the receivers (the listener's side
	 * may not have accepted yet, and connect does not wait for it). Keyed ones were checked
	 * here, each before our proof went. */
	ret = tcp_conn_create(fds, ssls[0] ? ssls : NULL, nfds, session_tag, !keyed, &tc);
	tcp_tls_free(tls); /* each SSL keeps a reference to the context */
	if (ret)
		return ret;
	pthread_mutex_lock(tc->base.region_lock);
	tc->base.stats.bytes_sent +=
		(keyed ? 2u : 1u) * nfds * (sizeof(struct wire_hdr) + tcp_hello_payload_len(keyed));
	if (keyed)
		tc->base.stats.bytes_received +=
			nfds * (sizeof(struct wire_hdr) + tcp_hello_payload_len(keyed));
	pthread_mutex_unlock(tc->base.region_lock);
	*conn_p = &tc->base;
	return 0;

err_close:
	rmig_log_error("tcp: cannot connect to %s: %s", uri, why);
	for (unsigned i = 0; i < nfds; i++) {
		SSL_free(ssls[i]);
		close(fds[i]);
	}
	tcp_tls_free(tls);
	OPENSSL_cleanse(hello_key, sizeof(hello_key));
	return ret;
}
