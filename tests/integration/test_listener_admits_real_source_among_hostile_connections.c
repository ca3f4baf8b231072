/* SPDX-License-Identifier: MIT */
/* A waiting destination cannot be stopped or blocked by what connects to its port (issue 12,
 * item 4): with 200 idle connections, 200 that sent garbage, and peers without the key that
 * speak rmig's transport all open (one sent a valid plain hello and fell silent, one sent a
 * keyed hello's challenge and fell silent, one answered the key proof with a made-up one), the
 * real source still gets through and the migration completes byte-identical. Handshakes run
 * side by side with their own deadlines, and none of those peers reaches the engine before it
 * is authenticated: with TLS (the default with a key) in the TLS handshake, with a key and TLS
 * off (--tls none) by the key proof of the transport hello. Without TLS the sessions keep the
 * default dead-peer deadline (10 s): a silent peer let through to the engine would hold the
 * destination that long. How long the real source took to get through (its connect, then its
 * handshake up to the first page, on the engine's clock) is printed; the target is 2 s,
 * asserted without TLS, generously bounded with TLS (its handshakes cost far more on a loaded
 * 2-core machine). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "integration/engine_harness.h"
#include "transport/transport.h"
#include "transport/wire.h"

#define IDLE_CONNECTIONS 200
#define GARBAGE_CONNECTIONS 200
#define GOT_THROUGH_TARGET_MS 2000u	/* the target */
#define GOT_THROUGH_TLS_BOUND_MS 30000u /* TLS on a shared machine: printed against the target */
#define DEAD_PEER_DEADLINE_MS 10000u	/* the sessions' default */

static int hostile_fds[IDLE_CONNECTIONS + GARBAGE_CONNECTIONS];
/* A plain hello then silence; a keyed hello's challenge then silence; a keyed hello whose
 * proof is made up. */
enum { SILENT_HELLO, SILENT_CHALLENGE, WRONG_PROOF, HELLO_PEERS };
static int hello_fds[HELLO_PEERS];
static const char *verdicts[HELLO_PEERS]; /* what each read from the listener */
static uint64_t connect_started_ms;

struct hello_frame {
	struct wire_hdr hdr;
	struct wire_hello hello;
	struct wire_hello_key key; /* keyed hellos only */
} __attribute__((packed));

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int hello_peer_connect(const struct sockaddr_in *addr)
{
	struct timeval guard = {.tv_sec = 60}; /* a bound on a failing run, not a wait */
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &guard, sizeof(guard)), 0);
	assert_int_equal(connect(fd, (const struct sockaddr *)addr, sizeof(*addr)), 0);
	return fd;
}

/* Send one hello frame (step 0: the plain one) and wait for the listener's verdict: its
 * answer, or the connection closed. Returns what the peer read. */
static const char *hello_peer_say(int fd, enum wire_hello_key_step step, const uint8_t *mac)
{
	uint8_t nonce[WIRE_HELLO_KEY_NONCE_LEN];
	struct hello_frame msg, answer;
	size_t len = sizeof(msg.hdr) + sizeof(msg.hello);
	ssize_t got;

	memset(nonce, 0x3c, sizeof(nonce));
	if (step)
		len += sizeof(msg.key);
	wire_hdr_to_wire(&msg.hdr, WIRE_HELLO, (uint32_t)(len - sizeof(msg.hdr)), 0);
	wire_hello_to_wire(&msg.hello, 1, TRANSPORT_CTRL_MAX, 0, 0x5100);
	if (step)
		wire_hello_key_to_wire(&msg.key, step,
				       step == WIRE_HELLO_KEY_CHALLENGE ? nonce : NULL, mac);
	send(fd, &msg, len, MSG_NOSIGNAL); /* a listener that refused it may have closed */
	got = recv(fd, &answer, step == WIRE_HELLO_KEY_PROOF ? 1 : len, MSG_WAITALL);
	if (got == (ssize_t)len)
		return "answered";
	if (got == 0 || (got < 0 && errno == ECONNRESET))
		return "refused";
	return got < 0 ? "left waiting" : "answered short";
}

/* harness connect_via: open the hostile connections to the destination first. */
static void open_hostile_connections(struct harness *h, const char *dst_uri, char *uri, size_t len)
{
	struct sockaddr_in addr = {.sin_family = AF_INET,
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	uint8_t not_a_proof[WIRE_HELLO_KEY_MAC_LEN];
	unsigned char garbage[64];
	unsigned port;

	(void)h;
	assert_int_equal(sscanf(dst_uri, "tcp://127.0.0.1:%u", &port), 1);
	addr.sin_port = htons((uint16_t)port);
	for (size_t i = 0; i < sizeof(garbage); i++)
		garbage[i] = (unsigned char)(i * 37u + 11u);
	for (int i = 0; i < IDLE_CONNECTIONS + GARBAGE_CONNECTIONS; i++) {
		hostile_fds[i] = socket(AF_INET, SOCK_STREAM, 0);
		assert_true(hostile_fds[i] >= 0);
		assert_int_equal(connect(hostile_fds[i], (struct sockaddr *)&addr, sizeof(addr)),
				 0);
		if (i >= IDLE_CONNECTIONS)
			assert_int_equal(
				send(hostile_fds[i], garbage, sizeof(garbage), MSG_NOSIGNAL),
				(ssize_t)sizeof(garbage));
	}
	/* Peers without the key that speak rmig's transport. Each waits for the listener's
	 * verdict on what it said (an answer, or the connection closed), so the listener has
	 * dealt with it before the real source comes. */
	for (int i = 0; i < HELLO_PEERS; i++)
		hello_fds[i] = hello_peer_connect(&addr);
	/* a valid plain hello, then nothing */
	verdicts[SILENT_HELLO] = hello_peer_say(hello_fds[SILENT_HELLO], 0, NULL);
	/* a valid keyed hello's challenge, then nothing: no proof */
	verdicts[SILENT_CHALLENGE] =
		hello_peer_say(hello_fds[SILENT_CHALLENGE], WIRE_HELLO_KEY_CHALLENGE, NULL);
	/* a challenge, then a proof made without the key */
	memset(not_a_proof, 0xa5, sizeof(not_a_proof));
	verdicts[WRONG_PROOF] =
		hello_peer_say(hello_fds[WRONG_PROOF], WIRE_HELLO_KEY_CHALLENGE, NULL);
	if (!strcmp(verdicts[WRONG_PROOF], "answered"))
		verdicts[WRONG_PROOF] =
			hello_peer_say(hello_fds[WRONG_PROOF], WIRE_HELLO_KEY_PROOF, not_a_proof);
	print_message("the listener's verdicts: plain hello %s; keyed challenge %s (then silent); "
		      "made-up proof %s\n",
		      verdicts[SILENT_HELLO], verdicts[SILENT_CHALLENGE], verdicts[WRONG_PROOF]);
	snprintf(uri, len, "%s", dst_uri);
	connect_started_ms = now_ms();
}

/* Run the migration among the hostile connections; tls: both sessions' mode (NULL: the
 * default). Returns how long the real source took to get through, in ms. */
static uint64_t migrate_among_hostile_connections(struct harness *h, const struct rmig_tls *tls)
{
	struct rmig_stats st = {.struct_size = sizeof(st)};
	uint64_t connected_ms, got_through_ms, done_ms;

	harness_init(h, harness_transport, 4u << 20, 0);
	if (tls) {
		h->src_tls = *tls;
		h->dst_tls = *tls;
		h->peer_timeout_ms = DEAD_PEER_DEADLINE_MS;
	}
	h->connect_via = open_hostile_connections;
	h->connect_may_fail = 1;
	harness_sessions(h);
	connected_ms = now_ms() - connect_started_ms;
	if (h->connect_ret) {
		h->src_ret = h->connect_ret;
		h->dst_ret = rmig_session_wait(h->dst, 60000);
		print_message("destination: %d %s\n", h->dst_ret, rmig_last_error(h->dst));
	} else {
		harness_run(h);
	}
	done_ms = now_ms() - connect_started_ms;
	assert_int_equal(rmig_session_stats(h->src, &st), 0);
	/* Through once its handshake is done and the first page may go: the engine's clock
	 * (setup_time_ms, from the run's start to then). A source that failed never got
	 * through. */
	got_through_ms = h->src_ret ? UINT64_MAX : connected_ms + st.setup_time_ms;
	print_message("real source (--tls %s): connect returned %llu ms after the %d idle and "
		      "garbage connections and the hello peers were open, through its handshake "
		      "after %lld ms (-1: never), migration ended after %llu ms (source %d, "
		      "destination %d; target: through under %u ms)\n",
		      tls ? "none" : "default", (unsigned long long)connected_ms,
		      IDLE_CONNECTIONS + GARBAGE_CONNECTIONS,
		      h->src_ret ? -1ll : (long long)got_through_ms, (unsigned long long)done_ms,
		      h->src_ret, h->dst_ret, GOT_THROUGH_TARGET_MS);
	assert_int_equal(h->src_ret, 0);
	assert_int_equal(h->dst_ret, 0);
	assert_memory_equal(h->src_ram, h->dst_ram, h->src_length);
	/* Nobody without the key got past the listener; a valid challenge is answered without
	 * TLS (the answer proves the listener's key, not the peer's), refused in TLS with it. */
	assert_string_equal(verdicts[SILENT_HELLO], "refused");
	assert_string_equal(verdicts[SILENT_CHALLENGE],
			    tls && tls->mode == RMIG_TLS_NONE ? "answered" : "refused");
	assert_string_equal(verdicts[WRONG_PROOF], "refused");
	for (int i = 0; i < IDLE_CONNECTIONS + GARBAGE_CONNECTIONS; i++)
		close(hostile_fds[i]);
	for (int i = 0; i < HELLO_PEERS; i++)
		close(hello_fds[i]);
	return got_through_ms;
}

static void test_real_source_gets_through_idle_garbage_and_silent_hello(void **state)
{
	struct harness h;

	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	assert_true(migrate_among_hostile_connections(&h, NULL) < GOT_THROUGH_TLS_BOUND_MS);
	harness_fini(&h);
}

/* A key and TLS off: the listener itself asks each connection for the key proof before it
 * hands it on, so the silent hello never reaches the engine. */
static void test_real_source_gets_through_hostile_connections_with_key_and_tls_off(void **state)
{
	const struct rmig_tls none = {.struct_size = sizeof(none), .mode = RMIG_TLS_NONE};
	struct harness h;

	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	assert_true(migrate_among_hostile_connections(&h, &none) < GOT_THROUGH_TARGET_MS);
	harness_fini(&h);
}

HARNESS_MAIN(
	cmocka_unit_test(test_real_source_gets_through_idle_garbage_and_silent_hello),
	cmocka_unit_test(test_real_source_gets_through_hostile_connections_with_key_and_tls_off))
