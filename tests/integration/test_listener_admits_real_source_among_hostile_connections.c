/* SPDX-License-Identifier: MIT */
/* A waiting destination cannot be stopped or blocked by what connects to its port (issue 12,
 * item 4): with 200 idle connections, 200 that sent garbage, and a plaintext client that sent a
 * valid transport hello and then fell silent, all open, the real source still gets through and
 * the migration completes byte-identical. Handshakes run side by side with their own deadlines,
 * and with TLS (the default with a key) none of those peers reaches the engine before it is
 * authenticated. The time the real source took is printed; the bound asserted is generous (a
 * loaded 2-core machine), the target is 2 s. */
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
#include <time.h>
#include <unistd.h>

#include "integration/engine_harness.h"
#include "transport/transport.h"

#define IDLE_CONNECTIONS 200
#define GARBAGE_CONNECTIONS 200
#define GOT_THROUGH_BOUND_MS 30000u /* the target is 2 s; this machine is shared */

static int hostile_fds[IDLE_CONNECTIONS + GARBAGE_CONNECTIONS];
static struct transport_conn *silent_hello;
static uint64_t connect_started_ms;

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* harness connect_via: open the hostile connections to the destination first. */
static void open_hostile_connections(struct harness *h, const char *dst_uri, char *uri, size_t len)
{
	struct sockaddr_in addr = {.sin_family = AF_INET,
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
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
	/* A plaintext transport client: its hello is valid, then it says nothing. */
	assert_int_equal(transport_connect(dst_uri, NULL, &silent_hello), 0);
	snprintf(uri, len, "%s", dst_uri);
	connect_started_ms = now_ms();
}

static void test_real_source_gets_through_idle_garbage_and_silent_hello(void **state)
{
	struct harness h;
	uint64_t connected_ms, done_ms;

	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	harness_init(&h, harness_transport, 4u << 20, 0);
	h.connect_via = open_hostile_connections;
	harness_sessions(&h); /* the source's connect returns once the listener answered it */
	connected_ms = now_ms() - connect_started_ms;
	harness_run(&h);
	done_ms = now_ms() - connect_started_ms;
	print_message("real source: connected %llu ms after the %d hostile connections and the "
		      "silent hello, migration done after %llu ms (target: connected under 2000 "
		      "ms)\n",
		      (unsigned long long)connected_ms, IDLE_CONNECTIONS + GARBAGE_CONNECTIONS,
		      (unsigned long long)done_ms);
	assert_int_equal(h.src_ret, 0);
	assert_int_equal(h.dst_ret, 0);
	assert_memory_equal(h.src_ram, h.dst_ram, h.src_length);
	assert_true(connected_ms < GOT_THROUGH_BOUND_MS);
	for (int i = 0; i < IDLE_CONNECTIONS + GARBAGE_CONNECTIONS; i++)
		close(hostile_fds[i]);
	transport_close(silent_hello);
	harness_fini(&h);
}

HARNESS_MAIN(cmocka_unit_test(test_real_source_gets_through_idle_garbage_and_silent_hello))
