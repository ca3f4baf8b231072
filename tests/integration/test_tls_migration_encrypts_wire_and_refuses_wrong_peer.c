/* SPDX-License-Identifier: MIT */
/* Over tcp, TLS 1.3 protects a whole migration, every stream of it: with the default (psk, keyed
 * by the session key) and with x509 certificates made here at test time, the guest ends
 * byte-identical while a relay on the path sees none of the guest's pages; the same relay sees
 * them when TLS is turned off (so the check can fail). An untrusted certificate, a certificate
 * for another name and a plaintext source are refused with an error that says which, and the
 * destination goes on waiting for the right source. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "integration/engine_harness.h"
#include "integration/tls_certs.h"

#define RAM_BYTES (4u << 20)
#define RELAY_CONNS_MAX 8
#define RELAY_CAPTURE_MAX (32u << 20)
#define STREAMS 2u
/* Every page of the source's guest carries this, so a relay that can read the wire finds it. */
#define PAGE_MARK "rmig guest page, readable on the wire? "

/* A TCP relay between the source and the destination that keeps what the source sent, per
 * connection (each stream is one). */
struct relay_conn {
	struct relay *relay;
	int from_source, to_destination;
	pthread_t thread;
	unsigned char *captured;
	size_t captured_len;
};

struct relay {
	int listen_fd;
	/* when nonzero: flip one bit of the source's byte at this offset of the last stream
	 * (a data stream with STREAMS > 1), as an attacker on the path would */
	size_t flip_at;
	struct sockaddr_in destination;
	pthread_t acceptor;
	atomic_int stop;
	struct relay_conn conns[RELAY_CONNS_MAX];
	atomic_int nconns;
};

static struct relay test_relay;

static void relay_pump_one(struct relay_conn *c, int from, int to, int capture, int *open_p)
{
	unsigned char buf[65536];
	ssize_t n = recv(from, buf, sizeof(buf), MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		shutdown(to, SHUT_WR);
		*open_p = 0;
		return;
	}
	if (capture && c->relay->flip_at && c == &c->relay->conns[STREAMS - 1] &&
	    c->captured_len <= c->relay->flip_at && c->relay->flip_at < c->captured_len + (size_t)n)
		buf[c->relay->flip_at - c->captured_len] ^= 0x01;
	if (capture && c->captured_len + (size_t)n <= RELAY_CAPTURE_MAX) {
		memcpy(c->captured + c->captured_len, buf, (size_t)n);
		c->captured_len += (size_t)n;
	}
	for (ssize_t sent = 0; sent < n;) {
		ssize_t m = send(to, buf + sent, (size_t)(n - sent), MSG_NOSIGNAL);

		if (m < 0 && errno == EINTR)
			continue;
		if (m < 0) {
			*open_p = 0;
			return;
		}
		sent += m;
	}
}

static void *relay_conn_main(void *arg)
{
	struct relay_conn *c = arg;
	int up = 1, down = 1;

	while ((up || down) && !atomic_load(&c->relay->stop)) {
		struct pollfd pfds[2] = {{.fd = up ? c->from_source : -1, .events = POLLIN},
					 {.fd = down ? c->to_destination : -1, .events = POLLIN}};

		if (poll(pfds, 2, 100) < 0 && errno != EINTR)
			break;
		if (pfds[0].revents)
			relay_pump_one(c, c->from_source, c->to_destination, 1, &up);
		if (pfds[1].revents)
			relay_pump_one(c, c->to_destination, c->from_source, 0, &down);
	}
	close(c->from_source);
	close(c->to_destination);
	return NULL;
}

static void *relay_accept_main(void *arg)
{
	struct relay *r = arg;

	while (!atomic_load(&r->stop)) {
		struct pollfd pfd = {.fd = r->listen_fd, .events = POLLIN};
		struct relay_conn *c;
		int fd, out;

		if (poll(&pfd, 1, 100) <= 0)
			continue;
		fd = accept(r->listen_fd, NULL, NULL);
		if (fd < 0)
			continue;
		out = socket(AF_INET, SOCK_STREAM, 0);
		if (atomic_load(&r->nconns) == RELAY_CONNS_MAX || out < 0 ||
		    connect(out, (struct sockaddr *)&r->destination, sizeof(r->destination))) {
			close(fd);
			if (out >= 0)
				close(out);
			continue;
		}
		c = &r->conns[atomic_load(&r->nconns)];
		*c = (struct relay_conn){.relay = r, .from_source = fd, .to_destination = out};
		c->captured = malloc(RELAY_CAPTURE_MAX);
		if (!c->captured || pthread_create(&c->thread, NULL, relay_conn_main, c)) {
			free(c->captured);
			close(fd);
			close(out);
			continue;
		}
		atomic_fetch_add(&r->nconns, 1);
	}
	return NULL;
}

static size_t relay_flip_at; /* test_relay.flip_at for the next relay_start */

/* harness connect_via: the source connects to the relay, which connects to dst_uri. */
static void relay_start(struct harness *h, const char *dst_uri, char *uri, size_t len)
{
	struct relay *r = &test_relay;
	struct sockaddr_in addr = {.sin_family = AF_INET,
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t addr_len = sizeof(addr);
	unsigned port;

	(void)h;
	memset(r, 0, sizeof(*r));
	r->flip_at = relay_flip_at;
	assert_int_equal(sscanf(dst_uri, "tcp://127.0.0.1:%u", &port), 1);
	r->destination = (struct sockaddr_in){.sin_family = AF_INET,
					      .sin_port = htons((uint16_t)port),
					      .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	r->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(r->listen_fd >= 0);
	assert_int_equal(bind(r->listen_fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	assert_int_equal(listen(r->listen_fd, 16), 0);
	assert_int_equal(getsockname(r->listen_fd, (struct sockaddr *)&addr, &addr_len), 0);
	assert_int_equal(pthread_create(&r->acceptor, NULL, relay_accept_main, r), 0);
	snprintf(uri, len, "tcp://127.0.0.1:%u", ntohs(addr.sin_port));
}

/* Stop the relay; return how many captured bytes carry PAGE_MARK (0: the wire was opaque). */
static size_t relay_stop_count_marks(size_t *captured_p)
{
	struct relay *r = &test_relay;
	size_t marks = 0, captured = 0;

	atomic_store(&r->stop, 1);
	pthread_join(r->acceptor, NULL);
	for (int i = 0; i < atomic_load(&r->nconns); i++) {
		struct relay_conn *c = &r->conns[i];
		const unsigned char *p = c->captured, *end = c->captured + c->captured_len;

		pthread_join(c->thread, NULL);
		captured += c->captured_len;
		while ((p = memmem(p, (size_t)(end - p), PAGE_MARK, strlen(PAGE_MARK)))) {
			marks++;
			p += strlen(PAGE_MARK);
		}
		free(c->captured);
	}
	close(r->listen_fd);
	print_message("relay: %d connections, %zu bytes from the source, %zu page marks seen\n",
		      atomic_load(&r->nconns), captured, marks);
	*captured_p = captured;
	return marks;
}

static void mark_pages(struct harness *h)
{
	for (size_t page = 0; page < h->src_length / HARNESS_PAGE; page++) {
		unsigned char *p = h->src_ram + page * HARNESS_PAGE;

		for (size_t off = 0; off + 64 <= HARNESS_PAGE; off += 64)
			snprintf((char *)p + off, 64, PAGE_MARK "%zu/%zu", page, off);
	}
}

/* A migration through the relay with these TLS settings: returns the page marks the relay saw. */
static size_t migrate_through_relay(struct harness *h, const struct rmig_tls *tls)
{
	size_t marks, captured;

	harness_init(h, harness_transport, RAM_BYTES, 0);
	mark_pages(h);
	h->params.field_mask = RMIG_PARAM_STREAMS;
	h->params.streams = STREAMS;
	if (tls) {
		h->src_tls = *tls;
		h->dst_tls = *tls;
	}
	h->connect_via = relay_start;
	harness_sessions(h);
	harness_run(h);
	marks = relay_stop_count_marks(&captured);
	assert_int_equal(h->src_ret, 0);
	assert_int_equal(h->dst_ret, 0);
	assert_memory_equal(h->src_ram, h->dst_ram, h->src_length);
	/* the guest's RAM went through the relay */
	assert_true(captured >= h->src_length);
	return marks;
}

static void test_tls_psk_by_default_hides_guest_pages_from_the_path(void **state)
{
	struct harness h;

	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	/* no rmig_session_set_tls(): the default with a key */
	assert_int_equal(migrate_through_relay(&h, NULL), 0);
	harness_fini(&h);
}

static void test_plaintext_tcp_shows_guest_pages_to_the_path(void **state)
{
	const struct rmig_tls none = {.struct_size = sizeof(none), .mode = RMIG_TLS_NONE};
	struct harness h;

	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	assert_true(migrate_through_relay(&h, &none) >= RAM_BYTES / HARNESS_PAGE);
	harness_fini(&h);
}

static void test_tls_x509_migrates_byte_identical_and_hides_pages(void **state)
{
	struct rmig_tls tls = {.struct_size = sizeof(tls), .mode = RMIG_TLS_X509};
	char dir[64];
	struct harness h;

	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	assert_int_equal(tls_certs_make(dir, sizeof(dir), "rmig test CA"), 0);
	tls.creds_dir = dir;
	assert_int_equal(migrate_through_relay(&h, &tls), 0);
	harness_fini(&h);
	tls_certs_remove(dir);
}

/* A bit flipped on the path, in the middle of the page data of a data stream: the record fails
 * its check, the connection ends, and the altered page never makes a guest run: both sides
 * fail and the destination never resumes. */
static void test_tls_bit_flipped_on_the_path_fails_the_migration(void **state)
{
	struct rmig_stats st = {.struct_size = sizeof(st)};
	size_t captured;
	struct harness h;

	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	harness_init(&h, harness_transport, RAM_BYTES, 0);
	mark_pages(&h);
	h.params.field_mask = RMIG_PARAM_STREAMS;
	h.params.streams = STREAMS;
	h.connect_via = relay_start;
	relay_flip_at = RAM_BYTES / STREAMS / 2; /* well inside the stream's share of pages */
	harness_sessions(&h);
	harness_run(&h);
	relay_flip_at = 0;
	assert_int_equal(relay_stop_count_marks(&captured), 0);
	assert_int_not_equal(h.src_ret, 0);
	assert_int_not_equal(h.dst_ret, 0);
	print_message("destination: %s\n", rmig_last_error(h.dst));
	assert_non_null(strstr(rmig_last_error(h.dst), "integrity check"));
	assert_false(atomic_load(&h.dst_resumed));
	assert_int_equal(rmig_session_stats(h.dst, &st), 0);
	assert_int_not_equal(st.status, RMIG_STATUS_COMPLETED);
	harness_fini(&h);
}

/* x509 certificates alone are a credential: no key, no rmig_session_set_insecure(). */
static void test_tls_x509_without_key_migrates(void **state)
{
	struct rmig_tls tls = {.struct_size = sizeof(tls), .mode = RMIG_TLS_X509};
	char dir[64];
	struct harness h;

	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	assert_int_equal(tls_certs_make(dir, sizeof(dir), "rmig test CA"), 0);
	tls.creds_dir = dir;
	harness_init(&h, harness_transport, 1u << 20, 0);
	h.params.field_mask = RMIG_PARAM_KEY; /* with key_len 0: no key */
	h.src_tls = tls;
	h.dst_tls = tls;
	harness_sessions(&h);
	harness_run(&h);
	assert_int_equal(h.src_ret, 0);
	assert_int_equal(h.dst_ret, 0);
	assert_memory_equal(h.src_ram, h.dst_ram, h.src_length);
	harness_fini(&h);
	tls_certs_remove(dir);
}

/* The source's connect fails with -EACCES and a reason naming why_part; the destination, which
 * refused it in the TLS handshake, is still waiting and never resumed. */
static void expect_refused(struct harness *h, int err, const char *why_part)
{
	int result = 0;

	assert_int_equal(h->connect_ret, err);
	assert_non_null(strstr(rmig_last_error(h->src), why_part));
	assert_int_equal(rmig_session_wait_result(h->dst, 0, &result), -EINPROGRESS);
	assert_int_equal(rmig_session_cancel(h->dst), 0);
	assert_int_equal(rmig_session_wait(h->dst, 60000), -ECANCELED);
	assert_false(atomic_load(&h->dst_resumed));
}

static void test_tls_x509_refuses_untrusted_certificate_and_wrong_name(void **state)
{
	struct rmig_tls src_tls = {.struct_size = sizeof(src_tls), .mode = RMIG_TLS_X509};
	struct rmig_tls dst_tls = src_tls;
	char dir[64], rogue[64];
	struct harness h;

	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	assert_int_equal(tls_certs_make(dir, sizeof(dir), "rmig test CA"), 0);
	assert_int_equal(tls_certs_make(rogue, sizeof(rogue), "another CA"), 0);

	/* The source trusts another CA than the one that signed the destination's certificate. */
	harness_init(&h, harness_transport, 1u << 20, 0);
	src_tls.creds_dir = rogue;
	dst_tls.creds_dir = dir;
	h.src_tls = src_tls;
	h.dst_tls = dst_tls;
	h.connect_may_fail = 1;
	harness_sessions(&h);
	expect_refused(&h, -EACCES, "certificate is not trusted");
	harness_fini(&h);

	/* The right CA, but the destination's certificate is not for the name the source asks. */
	harness_init(&h, harness_transport, 1u << 20, 0);
	src_tls.creds_dir = dir;
	src_tls.peer_name = "migration.example";
	h.src_tls = src_tls;
	h.dst_tls = dst_tls;
	h.connect_may_fail = 1;
	harness_sessions(&h);
	expect_refused(&h, -EACCES, "mismatch");
	harness_fini(&h);

	tls_certs_remove(rogue);
	tls_certs_remove(dir);
}

static void test_tls_destination_refuses_plaintext_source(void **state)
{
	struct harness h;
	int result = 0;

	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	harness_init(&h, harness_transport, 1u << 20, 0);
	h.src_tls = (struct rmig_tls){.struct_size = sizeof(h.src_tls), .mode = RMIG_TLS_NONE};
	h.connect_may_fail = 1;
	harness_sessions(&h);
	/* plaintext with a key waits in connect for the listener's key proof, and learns why
	 * there */
	h.src_ret = h.connect_ret ? h.connect_ret : rmig_session_run(h.src);
	print_message("source: %d %s\n", h.src_ret, rmig_last_error(h.src));
	assert_int_not_equal(h.src_ret, 0);
	assert_non_null(strstr(rmig_last_error(h.src), "TLS"));
	assert_int_equal(rmig_session_wait_result(h.dst, 0, &result), -EINPROGRESS);
	assert_int_equal(rmig_session_cancel(h.dst), 0);
	assert_int_equal(rmig_session_wait(h.dst, 60000), -ECANCELED);
	assert_false(atomic_load(&h.dst_resumed));
	harness_fini(&h);
}

HARNESS_MAIN(cmocka_unit_test(test_tls_psk_by_default_hides_guest_pages_from_the_path),
	     cmocka_unit_test(test_plaintext_tcp_shows_guest_pages_to_the_path),
	     cmocka_unit_test(test_tls_x509_migrates_byte_identical_and_hides_pages),
	     cmocka_unit_test(test_tls_x509_without_key_migrates),
	     cmocka_unit_test(test_tls_bit_flipped_on_the_path_fails_the_migration),
	     cmocka_unit_test(test_tls_x509_refuses_untrusted_certificate_and_wrong_name),
	     cmocka_unit_test(test_tls_destination_refuses_plaintext_source))
