/* SPDX-License-Identifier: MIT */
/* transport/tcp/tls.c - TLS 1.3 on tcp:// streams, through OpenSSL's libssl: the contexts for
 * the two modes (psk: a pre-shared key derived from the session key; x509: certificates from a
 * directory laid out like QEMU's tls-creds-x509, verified both ways), the handshake one step at
 * a time (the listener runs many side by side), and record I/O for a connection's threads.
 *
 * Threads. A stream's receiver reads while its senders write, and an SSL object must not be
 * used by two threads at once, so each stream's SSL is guarded by tcp_stream.tls_lock, held
 * only for one non-blocking SSL call; waiting for the socket (poll) happens outside it. A
 * blocked writer therefore never keeps the receiver from draining the socket, which would
 * deadlock two peers that both write. The sockets of a TLS stream stay non-blocking.
 *
 * Copies. OpenSSL reads a record into its own buffer, checks its tag, decrypts it and copies
 * the plaintext to the caller: page data reaches guest RAM only after its record has been
 * authenticated (a flipped byte fails the connection and never lands), at the price of one
 * copy more than plaintext tcp. With kernel TLS (SSL_OP_ENABLE_KTLS; OpenSSL sets TCP_ULP
 * "tls" itself where the kernel has it) the kernel decrypts straight into the caller's buffer;
 * where it has not, OpenSSL stays in user space, and the connection log says which.
 *
 * SIGPIPE. OpenSSL's socket BIO writes with write(2), not send(MSG_NOSIGNAL), so a peer that
 * vanishes could kill the hypervisor. Once the handshake is done, unless kernel TLS took over
 * sending (which needs OpenSSL's own socket BIO), the records go out through a BIO of ours that
 * sends with MSG_NOSIGNAL, and record I/O costs no signal system calls. Until then, and for
 * good with kernel TLS, every SSL call runs with SIGPIPE blocked in the calling thread and
 * swallows one it raised (four system calls a call: a page's frame cost eight on receive). */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <arpa/inet.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "transport/log.h"
#include "transport/tcp/tcp.h"

#define TCP_TLS_PSK_LEN 32u
#define TCP_TLS_PSK_IDENTITY "rmig"
/* The label that turns the session key into the TLS pre-shared key, so the key the engine's
 * HMAC challenge uses is never used as is for a second purpose. */
#define TCP_TLS_PSK_LABEL "rmig tls13 psk v1"
/* Small iovecs (frame headers, commits, control messages) are gathered into one record. */
#define TCP_TLS_GATHER 16384u
#define TCP_TLS_GATHER_SMALL 4096u

/* TLS 1.3 suites, fastest first for this CPU. With AES and carry-less multiply instructions
 * AES-128-GCM is the fastest (`openssl speed` on 16 KiB records on our x86 hosts: 5.5 GB/s
 * against ChaCha20-Poly1305's 5.1 when quiet, 3.6 against 2.1 under load); without them
 * ChaCha20 is several times faster than AES in software. The
 * listener chooses (SSL_OP_CIPHER_SERVER_PREFERENCE) but honours a client that put ChaCha20
 * first (SSL_OP_PRIORITIZE_CHACHA), so a host without AES instructions never has to run AES.
 * psk's key is a SHA-256 one, which rules out the SHA-384 suite there. Off x86, OpenSSL's
 * own order. */
#define TCP_TLS_SUITES_AES \
	"TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384"
#define TCP_TLS_SUITES_CHACHA \
	"TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384"

static const char *tcp_tls_suites(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_cpu_init();
	if (__builtin_cpu_supports("aes") && __builtin_cpu_supports("pclmul"))
		return TCP_TLS_SUITES_AES;
	return TCP_TLS_SUITES_CHACHA;
#else
	return NULL; /* OpenSSL's own order */
#endif
}

struct tcp_tls {
	SSL_CTX *ctx;
	enum transport_tls_mode mode;
	int server;
	unsigned char psk[TCP_TLS_PSK_LEN];
	int check_name;			   /* x509 client: verify the listener's name */
	char peer_name[TRANSPORT_URI_MAX]; /* x509 client: the name, or "" for the URI's host */
};

static int tcp_tls_ex_index = -1;
static pthread_once_t tcp_tls_once = PTHREAD_ONCE_INIT;
static BIO_METHOD *tcp_tls_nosig_method; /* NULL if it could not be made: SIGPIPE is blocked */
static int tcp_tls_nosig_type;

/* ---- the write BIO: send(MSG_NOSIGNAL) on the stream's socket ---- */

static int tcp_tls_nosig_write(BIO *bio, const char *buf, int len)
{
	ssize_t n;

	BIO_clear_retry_flags(bio);
	do
		n = send((int)(intptr_t)BIO_get_data(bio), buf, (size_t)len, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		BIO_set_retry_write(bio);
	return n < 0 ? -1 : (int)n; /* errno stays for SSL_ERROR_SYSCALL */
}

static long tcp_tls_nosig_ctrl(BIO *bio, int cmd, long num, void *ptr)
{
	(void)num;
	switch (cmd) {
	case BIO_CTRL_FLUSH:
		return 1;  /* nothing is buffered */
	case BIO_C_GET_FD: /* as the socket BIO answers it: returned, and stored at ptr */
		if (ptr)
			*(int *)ptr = (int)(intptr_t)BIO_get_data(bio);
		return (long)(intptr_t)BIO_get_data(bio);
	default:
		return 0; /* not kernel TLS, nothing pending */
	}
}

static int tcp_tls_nosig_create(BIO *bio)
{
	BIO_set_init(bio, 1);
	return 1;
}

static void tcp_tls_init_once(void)
{
	OPENSSL_init_ssl(OPENSSL_INIT_LOAD_SSL_STRINGS | OPENSSL_INIT_LOAD_CRYPTO_STRINGS, NULL);
	tcp_tls_ex_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	tcp_tls_nosig_type = BIO_get_new_index() | BIO_TYPE_SOURCE_SINK;
	tcp_tls_nosig_method = BIO_meth_new(tcp_tls_nosig_type, "rmig send nosignal");
	if (tcp_tls_nosig_method &&
	    (!BIO_meth_set_write(tcp_tls_nosig_method, tcp_tls_nosig_write) ||
	     !BIO_meth_set_ctrl(tcp_tls_nosig_method, tcp_tls_nosig_ctrl) ||
	     !BIO_meth_set_create(tcp_tls_nosig_method, tcp_tls_nosig_create))) {
		BIO_meth_free(tcp_tls_nosig_method);
		tcp_tls_nosig_method = NULL;
	}
}

/* After the handshake: records go out through the MSG_NOSIGNAL BIO unless kernel TLS sends.
 * Failing to make the BIO leaves the socket BIO (and the signal blocking) in place. */
static void tcp_tls_use_nosig(SSL *ssl)
{
	BIO *wbio = SSL_get_wbio(ssl), *bio;

	if (!tcp_tls_nosig_method || BIO_method_type(wbio) == tcp_tls_nosig_type)
		return;
	if (BIO_get_ktls_send(wbio) || SSL_get_wfd(ssl) < 0)
		return;
	bio = BIO_new(tcp_tls_nosig_method);
	if (!bio) {
		ERR_clear_error();
		return;
	}
	BIO_set_data(bio, (void *)(intptr_t)SSL_get_wfd(ssl));
	SSL_set0_wbio(ssl, bio);
}

/* Whether an SSL call on ssl may raise SIGPIPE: its records go out through write(2). */
static int tcp_tls_may_raise_sigpipe(SSL *ssl)
{
	return !tcp_tls_nosig_method || BIO_method_type(SSL_get_wbio(ssl)) != tcp_tls_nosig_type;
}

static struct tcp_tls *tcp_tls_of(SSL *ssl)
{
	return SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), tcp_tls_ex_index);
}

/* ---- SIGPIPE-safe SSL calls ---- */

struct tcp_tls_nopipe {
	sigset_t old;
	int pending_before;
	int active;
};

static void tcp_tls_nopipe_begin(SSL *ssl, struct tcp_tls_nopipe *np)
{
	sigset_t pipe_set, pending;

	np->active = tcp_tls_may_raise_sigpipe(ssl);
	if (!np->active)
		return;
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &np->old);
	sigpending(&pending);
	np->pending_before = sigismember(&pending, SIGPIPE);
}

static void tcp_tls_nopipe_end(struct tcp_tls_nopipe *np)
{
	if (!np->active)
		return;
	if (!np->pending_before) {
		const struct timespec zero = {0};
		sigset_t pipe_set, pending;

		sigemptyset(&pipe_set);
		sigaddset(&pipe_set, SIGPIPE);
		sigpending(&pending);
		if (sigismember(&pending, SIGPIPE))
			sigtimedwait(&pipe_set, NULL, &zero);
	}
	pthread_sigmask(SIG_SETMASK, &np->old, NULL);
}

/* Why the last SSL call failed, in words a user can act on; clears OpenSSL's error queue. */
static int tcp_tls_describe(SSL *ssl, int ssl_error, char *why, size_t why_len)
{
	unsigned long code = ERR_peek_last_error();
	const char *reason = code ? ERR_reason_error_string(code) : NULL;
	const struct tcp_tls *tls = ssl ? tcp_tls_of(ssl) : NULL;
	/* Who the peer is is settled in the handshake: after it, a failure is a record's. */
	int handshaking = ssl && !SSL_is_init_finished(ssl);
	long verify = handshaking && tls && tls->mode == TRANSPORT_TLS_X509
			      ? SSL_get_verify_result(ssl)
			      : X509_V_OK;
	int ret = -EPROTO;

	if (handshaking && tls && tls->mode == TRANSPORT_TLS_PSK && reason &&
	    (strstr(reason, "binder does not verify") || strstr(reason, "illegal parameter") ||
	     strstr(reason, "decrypt error") || strstr(reason, "bad record mac") ||
	     strstr(reason, "decryption failed"))) {
		/* TLS 1.3 names a PSK mismatch only as a failed binder (the listener) or the
		 * alert it answers with (the connecting side). */
		snprintf(
			why, why_len,
			"the peer does not hold the same key (the TLS pre-shared key, derived from "
			"the session key, differs: %s)",
			reason);
		ERR_clear_error();
		return -EACCES;
	}
	if (reason &&
	    (strstr(reason, "wrong version number") || strstr(reason, "http request") ||
	     strstr(reason, "packet length too long") || strstr(reason, "record layer failure"))) {
		snprintf(why, why_len,
			 "the peer does not speak TLS: what it sent is no TLS record (%s); --tls "
			 "must match on both sides",
			 reason);
		ERR_clear_error();
		return -EPROTO;
	}
	if (verify != X509_V_OK) {
		snprintf(why, why_len, "the peer's certificate is not trusted: %s",
			 X509_verify_cert_error_string(verify));
		ret = -EACCES;
	} else if (reason) {
		/* Alerts the peer sent back name what it disliked. */
		if (strstr(reason, "decrypt error") || strstr(reason, "bad certificate") ||
		    strstr(reason, "unknown ca") || strstr(reason, "certificate required") ||
		    strstr(reason, "unknown psk") || strstr(reason, "certificate unknown") ||
		    strstr(reason, "handshake failure") || strstr(reason, "bad record mac") ||
		    strstr(reason, "decryption failed"))
			ret = -EACCES;
		snprintf(why, why_len, "%s", reason);
	} else if (ssl_error == SSL_ERROR_SYSCALL || ssl_error == SSL_ERROR_ZERO_RETURN) {
		snprintf(why, why_len, "the peer closed the connection");
		ret = -ECONNRESET;
	} else {
		snprintf(why, why_len, "TLS error %d", ssl_error);
	}
	ERR_clear_error();
	return ret;
}

/* ---- contexts ---- */

static unsigned int tcp_tls_psk_client_cb(SSL *ssl, const char *hint, char *identity,
					  unsigned int max_identity_len, unsigned char *psk,
					  unsigned int max_psk_len)
{
	struct tcp_tls *tls = tcp_tls_of(ssl);

	(void)hint;
	if (!tls || max_identity_len < sizeof(TCP_TLS_PSK_IDENTITY) ||
	    max_psk_len < TCP_TLS_PSK_LEN)
		return 0;
	memcpy(identity, TCP_TLS_PSK_IDENTITY, sizeof(TCP_TLS_PSK_IDENTITY));
	memcpy(psk, tls->psk, TCP_TLS_PSK_LEN);
	return TCP_TLS_PSK_LEN;
}

static unsigned int tcp_tls_psk_server_cb(SSL *ssl, const char *identity, unsigned char *psk,
					  unsigned int max_psk_len)
{
	struct tcp_tls *tls = tcp_tls_of(ssl);

	if (!tls || !identity || strcmp(identity, TCP_TLS_PSK_IDENTITY) ||
	    max_psk_len < TCP_TLS_PSK_LEN)
		return 0;
	memcpy(psk, tls->psk, TCP_TLS_PSK_LEN);
	return TCP_TLS_PSK_LEN;
}

static int tcp_tls_load_x509(struct tcp_tls *tls, const struct transport_options *opts, char *why,
			     size_t why_len)
{
	const char *role = tls->server ? "server" : "client";
	const char *dir = opts->tls_creds_dir;
	char ca[PATH_MAX], cert[PATH_MAX], key[PATH_MAX];

	if ((!dir || !*dir) && !(opts->tls_ca_file && opts->tls_cert_file && opts->tls_key_file)) {
		snprintf(why, why_len,
			 "x509 needs a credentials directory (--tls-creds) or the CA, certificate "
			 "and key files (--tls-ca, --tls-cert, --tls-key)");
		return -EINVAL;
	}
	/* An explicit file takes the place of its file in the directory. */
	if (opts->tls_ca_file)
		snprintf(ca, sizeof(ca), "%s", opts->tls_ca_file);
	else
		snprintf(ca, sizeof(ca), "%s/ca-cert.pem", dir);
	if (opts->tls_cert_file)
		snprintf(cert, sizeof(cert), "%s", opts->tls_cert_file);
	else
		snprintf(cert, sizeof(cert), "%s/%s-cert.pem", dir, role);
	if (opts->tls_key_file)
		snprintf(key, sizeof(key), "%s", opts->tls_key_file);
	else
		snprintf(key, sizeof(key), "%s/%s-key.pem", dir, role);
	if (SSL_CTX_load_verify_locations(tls->ctx, ca, NULL) != 1) {
		snprintf(why, why_len, "cannot load the CA certificate %.200s", ca);
		return -ENOENT;
	}
	if (SSL_CTX_use_certificate_chain_file(tls->ctx, cert) != 1) {
		snprintf(why, why_len, "cannot load the certificate %.200s", cert);
		return -ENOENT;
	}
	if (SSL_CTX_use_PrivateKey_file(tls->ctx, key, SSL_FILETYPE_PEM) != 1) {
		snprintf(why, why_len, "cannot load the private key %.200s", key);
		return -ENOENT;
	}
	if (SSL_CTX_check_private_key(tls->ctx) != 1) {
		snprintf(why, why_len, "%.100s does not match %.100s", key, cert);
		return -EINVAL;
	}
	/* Both ways: the listener requires a client certificate from the same CA. */
	SSL_CTX_set_verify(tls->ctx,
			   SSL_VERIFY_PEER | (tls->server ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
			   NULL);
	return 0;
}

/* See tcp.h. */
int tcp_tls_create(const struct transport_options *opts, int server, struct tcp_tls **tls_p)
{
	enum transport_tls_mode mode = transport_tls_mode(opts);
	const char *suites = tcp_tls_suites();
	char why[TRANSPORT_ERROR_MAX] = "";
	struct tcp_tls *tls;
	int ret = -EINVAL;

	*tls_p = NULL;
	if (mode == TRANSPORT_TLS_NONE)
		return 0;
	pthread_once(&tcp_tls_once, tcp_tls_init_once);
	if (mode == TRANSPORT_TLS_PSK && (!opts->psk || !opts->psk_len)) {
		rmig_log_error("tcp: TLS psk needs a key (the session key): none is set");
		return -EINVAL;
	}
	tls = calloc(1, sizeof(*tls));
	if (!tls)
		return -ENOMEM;
	tls->mode = mode;
	tls->server = server;
	tls->ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	if (!tls->ctx) {
		ret = -ENOMEM;
		goto err_free;
	}
	SSL_CTX_set_ex_data(tls->ctx, tcp_tls_ex_index, tls);
	/* TLS 1.3 only: nothing older is negotiated, so nothing weaker can be forced. */
	SSL_CTX_set_min_proto_version(tls->ctx, TLS1_3_VERSION);
	SSL_CTX_set_max_proto_version(tls->ctx, TLS1_3_VERSION);
	SSL_CTX_set_mode(tls->ctx,
			 SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* A peer's end is recognised by rmig's own goodbye frame; a TCP close with no
	 * close_notify reads as the end of the stream, and the protocol says if that was early. */
	SSL_CTX_set_options(tls->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_ENABLE_KTLS |
					      SSL_OP_NO_RENEGOTIATION |
					      SSL_OP_CIPHER_SERVER_PREFERENCE |
					      SSL_OP_PRIORITIZE_CHACHA);
	if (suites && SSL_CTX_set_ciphersuites(tls->ctx, suites) != 1) {
		snprintf(why, sizeof(why), "cannot set the TLS 1.3 cipher suites");
		goto err_free_ctx;
	}
	if (server)
		SSL_CTX_set_num_tickets(tls->ctx,
					0); /* no resumption: one connection per session */
	if (mode == TRANSPORT_TLS_PSK) {
		unsigned int len = TCP_TLS_PSK_LEN;

		if (!HMAC(EVP_sha256(), opts->psk, (int)opts->psk_len,
			  (const unsigned char *)TCP_TLS_PSK_LABEL, strlen(TCP_TLS_PSK_LABEL),
			  tls->psk, &len)) {
			snprintf(why, sizeof(why), "cannot derive the pre-shared key");
			goto err_free_ctx;
		}
		if (server)
			SSL_CTX_set_psk_server_callback(tls->ctx, tcp_tls_psk_server_cb);
		else
			SSL_CTX_set_psk_client_callback(tls->ctx, tcp_tls_psk_client_cb);
		/* The PSK is the whole authentication: no certificate is asked for or sent. */
		SSL_CTX_set_verify(tls->ctx, SSL_VERIFY_NONE, NULL);
	} else if (mode == TRANSPORT_TLS_X509) {
		ret = tcp_tls_load_x509(tls, opts, why, sizeof(why));
		if (ret)
			goto err_free_ctx;
		tls->check_name = !opts->tls_peer_name || *opts->tls_peer_name;
		if (opts->tls_peer_name)
			snprintf(tls->peer_name, sizeof(tls->peer_name), "%s", opts->tls_peer_name);
	} else {
		snprintf(why, sizeof(why), "unknown TLS mode %d", (int)mode);
		goto err_free_ctx;
	}
	*tls_p = tls;
	return 0;

err_free_ctx:
	SSL_CTX_free(tls->ctx);
err_free:
	OPENSSL_cleanse(tls->psk, sizeof(tls->psk));
	free(tls);
	if (*why)
		rmig_log_error("tcp: TLS %s: %s", transport_tls_mode_name(mode), why);
	ERR_clear_error();
	return ret;
}

void tcp_tls_free(struct tcp_tls *tls)
{
	if (!tls)
		return;
	/* The context lives on while a connection's SSL holds it: what it says of this struct
	 * (tcp_tls_of()) must read NULL from here on, not freed memory. */
	SSL_CTX_set_ex_data(tls->ctx, tcp_tls_ex_index, NULL);
	SSL_CTX_free(tls->ctx);
	OPENSSL_cleanse(tls->psk, sizeof(tls->psk));
	free(tls);
}

const char *tcp_tls_mode_name(const struct tcp_tls *tls)
{
	return tls ? transport_tls_mode_name(tls->mode) : "none";
}

/* See tcp.h. */
int tcp_tls_session_new(struct tcp_tls *tls, int fd, const char *host, SSL **ssl_p)
{
	SSL *ssl = SSL_new(tls->ctx);

	if (!ssl)
		return -ENOMEM;
	if (SSL_set_fd(ssl, fd) != 1)
		goto err_free;
	if (tls->server) {
		SSL_set_accept_state(ssl);
	} else {
		const char *name = *tls->peer_name ? tls->peer_name : host;

		SSL_set_connect_state(ssl);
		if (tls->mode == TRANSPORT_TLS_X509 && tls->check_name && name) {
			unsigned char addr[16];
			X509_VERIFY_PARAM *param = SSL_get0_param(ssl);

			/* An address in the URI is checked against the certificate's IP SANs. */
			if (inet_pton(AF_INET, name, addr) == 1 ||
			    inet_pton(AF_INET6, name, addr) == 1) {
				if (X509_VERIFY_PARAM_set1_ip_asc(param, name) != 1)
					goto err_free;
			} else {
				if (SSL_set1_host(ssl, name) != 1)
					goto err_free;
				SSL_set_tlsext_host_name(ssl, name);
			}
		}
	}
	*ssl_p = ssl;
	return 0;

err_free:
	SSL_free(ssl);
	ERR_clear_error();
	return -ENOMEM;
}

/* See tcp.h. */
int tcp_tls_handshake_step(SSL *ssl, short *events_p, char *why, size_t why_len)
{
	struct tcp_tls_nopipe np;
	int r, e;

	ERR_clear_error();
	tcp_tls_nopipe_begin(ssl, &np);
	r = SSL_do_handshake(ssl);
	e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl, r);
	tcp_tls_nopipe_end(&np);
	if (r == 1) {
		tcp_tls_use_nosig(ssl);
		return 0;
	}
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		*events_p = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
		return -EAGAIN;
	}
	return tcp_tls_describe(ssl, e, why, why_len);
}

/* See tcp.h. */
int tcp_tls_handshake(SSL *ssl, int fd, int64_t deadline_ms, char *why, size_t why_len)
{
	for (;;) {
		struct pollfd pfd = {.fd = fd};
		int ret = tcp_tls_handshake_step(ssl, &pfd.events, why, why_len);
		int ready;

		if (ret != -EAGAIN)
			return ret;
		ready = poll(&pfd, 1, transport_remaining_ms(deadline_ms));
		if (ready < 0 && errno != EINTR)
			return -errno;
		if (ready == 0) {
			snprintf(why, why_len, "the TLS handshake did not finish in time");
			return -ETIMEDOUT;
		}
	}
}

/* See tcp.h. */
void tcp_tls_report(SSL *ssl, const char *peer)
{
	int ktls_send = BIO_get_ktls_send(SSL_get_wbio(ssl));
	int ktls_recv = BIO_get_ktls_recv(SSL_get_rbio(ssl));

	rmig_log_info("tcp %s: TLS 1.3 (%s, %s); kernel TLS: send %s, receive %s", peer,
		      SSL_get_cipher_name(ssl), tcp_tls_mode_name(tcp_tls_of(ssl)),
		      ktls_send ? "on" : "off (user space)", ktls_recv ? "on" : "off (user space)");
}

/* ---- record I/O for a connection's threads ---- */

/* Wait until the socket can make progress for an SSL call that wanted ssl_error. */
static int tcp_tls_wait(int fd, int ssl_error, int timeout_ms)
{
	struct pollfd pfd = {.fd = fd,
			     .events = ssl_error == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN};

	for (;;) {
		int ready = poll(&pfd, 1, timeout_ms);

		if (ready > 0)
			return 0; /* readable, writable, or hung up: the next call says which */
		if (ready == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

static int tcp_tls_write_all(SSL *ssl, int fd, pthread_mutex_t *lock, const void *buf, size_t len,
			     char *why, size_t why_len)
{
	const char *p = buf;

	while (len) {
		struct tcp_tls_nopipe np;
		size_t n = 0;
		int r, e, ret;

		if (lock)
			pthread_mutex_lock(lock);
		ERR_clear_error();
		tcp_tls_nopipe_begin(ssl, &np);
		r = SSL_write_ex(ssl, p, len, &n);
		e = r ? SSL_ERROR_NONE : SSL_get_error(ssl, r);
		tcp_tls_nopipe_end(&np);
		if (!r && e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
			int saved = errno;

			tcp_tls_describe(ssl, e, why, why_len);
			if (lock)
				pthread_mutex_unlock(lock);
			if (e == SSL_ERROR_SYSCALL)
				return saved && saved != EAGAIN ? -saved : -EPIPE;
			return e == SSL_ERROR_ZERO_RETURN ? -EPIPE : -EBADMSG;
		}
		if (lock)
			pthread_mutex_unlock(lock);
		if (r) {
			p += n;
			len -= n;
			continue;
		}
		ret = tcp_tls_wait(fd, e, TCP_STALL_TIMEOUT_MS);
		if (ret)
			return ret;
	}
	return 0;
}

/* See tcp.h. */
int tcp_tls_send(SSL *ssl, int fd, pthread_mutex_t *lock, struct iovec *iov, size_t iovcnt,
		 char *why, size_t why_len)
{
	unsigned char gather[TCP_TLS_GATHER];
	size_t gathered = 0;
	int ret;

	for (size_t i = 0; i < iovcnt; i++) {
		size_t len = iov[i].iov_len;

		if (!len)
			continue;
		if (len <= TCP_TLS_GATHER_SMALL) {
			if (gathered + len > sizeof(gather)) {
				ret = tcp_tls_write_all(ssl, fd, lock, gather, gathered, why,
							why_len);
				if (ret)
					return ret;
				gathered = 0;
			}
			memcpy(gather + gathered, iov[i].iov_base, len);
			gathered += len;
			continue;
		}
		if (gathered) {
			ret = tcp_tls_write_all(ssl, fd, lock, gather, gathered, why, why_len);
			if (ret)
				return ret;
			gathered = 0;
		}
		ret = tcp_tls_write_all(ssl, fd, lock, iov[i].iov_base, len, why, why_len);
		if (ret)
			return ret;
	}
	if (gathered)
		return tcp_tls_write_all(ssl, fd, lock, gather, gathered, why, why_len);
	return 0;
}

/* See tcp.h. */
int tcp_tls_recv(SSL *ssl, int fd, pthread_mutex_t *lock, void *buf, size_t len, unsigned flags,
		 size_t *got_p, char *why, size_t why_len)
{
	size_t got = 0;
	int ret = 0;

	while (got < len) {
		struct tcp_tls_nopipe np;
		size_t n = 0;
		int r, e, saved;

		if (lock)
			pthread_mutex_lock(lock);
		ERR_clear_error();
		tcp_tls_nopipe_begin(ssl, &np);
		r = SSL_read_ex(ssl, (char *)buf + got, len - got, &n);
		e = r ? SSL_ERROR_NONE : SSL_get_error(ssl, r);
		saved = errno;
		tcp_tls_nopipe_end(&np);
		if (!r && e == SSL_ERROR_SSL)
			tcp_tls_describe(ssl, e, why, why_len);
		else if (!r)
			ERR_clear_error();
		if (lock)
			pthread_mutex_unlock(lock);
		if (r) {
			got += n;
			if (flags & TCP_TLS_SOME)
				break;
			continue;
		}
		if ((e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) &&
		    (flags & TCP_TLS_NOWAIT)) {
			ret = -EAGAIN;
			break;
		}
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			ret = tcp_tls_wait(fd, e, TCP_STALL_TIMEOUT_MS);
			if (ret)
				break;
			continue;
		}
		if (e == SSL_ERROR_ZERO_RETURN)
			ret = -ECONNRESET;
		else if (e == SSL_ERROR_SYSCALL)
			ret = saved && saved != EAGAIN ? -saved : -ECONNRESET;
		else
			ret = -EBADMSG;
		break;
	}
	*got_p = got;
	return ret;
}
