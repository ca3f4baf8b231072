/* SPDX-License-Identifier: MIT */
/* A destination that goes away (here: a bare transport peer that hangs up after the hello)
 * fails the migration on the source with an error naming the peer; the VM never pauses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "integration/engine_harness.h"
#include "transport/transport.h"

struct vanishing_peer {
	struct transport_listener *listener;
	int received;
};

static void *vanishing_peer_main(void *arg)
{
	struct vanishing_peer *peer = arg;
	struct transport_conn *conn;
	struct transport_msg msg;

	if (transport_accept(peer->listener, 20000, &conn))
		return NULL;
	if (transport_recv(conn, &msg, 20000) == 0 && msg.type == TRANSPORT_MSG_CTRL)
		peer->received = 1;
	transport_close(conn);
	return NULL;
}

static void test_peer_disconnect_aborts_cleanly(void **state)
{
	struct rmig_stats st = {.struct_size = sizeof(st)};
	struct vanishing_peer peer = {0};
	char uri[TRANSPORT_URI_MAX];
	pthread_t thread;
	struct harness h;

	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	harness_init(&h, harness_transport, 16u << 20, 0);
	assert_int_equal(transport_listen(h.listen_uri, NULL, &peer.listener), 0);
	assert_int_equal(transport_listener_uri(peer.listener, uri, sizeof(uri)), 0);
	assert_int_equal(pthread_create(&thread, NULL, vanishing_peer_main, &peer), 0);

	assert_int_equal(rmig_session_create(RMIG_ROLE_SOURCE, &h.src), 0);
	/* the vanishing peer proves no key */
	assert_int_equal(rmig_session_set_insecure(h.src, 1), 0);
	assert_int_equal(rmig_region_add(h.src, 1, h.src_ram, h.src_length, HARNESS_PAGE), 0);
	assert_int_equal(rmig_session_connect(h.src, uri), 0);
	h.src_ret = rmig_session_run(h.src);
	pthread_join(thread, NULL);
	transport_listener_close(peer.listener);

	assert_true(peer.received);
	assert_int_equal(h.src_ret, -ECONNRESET);
	assert_int_equal(rmig_session_stats(h.src, &st), 0);
	assert_int_equal(st.status, RMIG_STATUS_FAILED);
	assert_int_equal(st.pages_sent, 0);
	assert_non_null(strstr(rmig_last_error(h.src), "hello"));
	assert_false(atomic_load(&h.src_paused));
	rmig_session_destroy(h.src);
	h.src = NULL;
	harness_fini(&h);
}

HARNESS_MAIN(cmocka_unit_test(test_peer_disconnect_aborts_cleanly))
