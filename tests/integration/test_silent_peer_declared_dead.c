/* SPDX-License-Identifier: MIT */
/* A peer that stays connected but goes silent (a bare transport peer that never answers and
 * sends no heartbeat) is declared dead within the dead-peer deadline, on both ends, long before
 * the step timeout: the source facing a silent destination, the destination facing a silent
 * source. The run ends with -EHOSTDOWN and a reason naming the dead peer. No sleeps: each side's
 * own run is what the test waits for, with a bound far above the deadline.
 *
 * The converse: a side that is busy past the deadline in a hypervisor callback (the source's
 * pause_vm, the destination's resume_vm; Xen's toolstack takes seconds in both) is not dead, and
 * neither is its peer, whose heartbeats queued meanwhile. The busy callback is the stimulus
 * here, a hypervisor that takes three deadlines, not a wait for an event. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "engine/protocol.h"
#include "integration/engine_harness.h"
#include "transport/transport.h"

#define DEADLINE_MS 1500u
#define STEP_TIMEOUT_MS 120000u /* what a run without the deadline would wait */

/* The bare transport peers hold the sessions' key: over tcp it keys TLS (psk, the default). */
static const struct transport_options peer_options = {.psk = (const uint8_t *)HARNESS_KEY,
						      .psk_len = sizeof(HARNESS_KEY) - 1};

struct silent_peer {
	struct transport_listener *listener;
	struct transport_conn *conn;
	pthread_mutex_t lock;
	pthread_cond_t done_cond;
	int done; /* the test is over: the peer may hang up */
};

/* Accepts, then says nothing until the test is over. */
static void *silent_peer_main(void *arg)
{
	struct silent_peer *peer = arg;

	if (transport_accept(peer->listener, 20000, &peer->conn))
		return NULL;
	pthread_mutex_lock(&peer->lock);
	while (!peer->done)
		pthread_cond_wait(&peer->done_cond, &peer->lock);
	pthread_mutex_unlock(&peer->lock);
	transport_close(peer->conn);
	return NULL;
}

static void test_source_declares_silent_destination_dead(void **state)
{
	struct rmig_stats st = {.struct_size = sizeof(st)};
	struct silent_peer peer = {.lock = PTHREAD_MUTEX_INITIALIZER,
				   .done_cond = PTHREAD_COND_INITIALIZER};
	struct rmig_params params = {.field_mask = RMIG_PARAM_TIMEOUT_MS | RMIG_PARAM_KEY,
				     .timeout_ms = STEP_TIMEOUT_MS,
				     .key = HARNESS_KEY,
				     .key_len = (uint32_t)strlen(HARNESS_KEY)};
	char uri[TRANSPORT_URI_MAX];
	pthread_t thread;
	struct harness h;
	uint64_t start, took;

	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	harness_init(&h, harness_transport, 1u << 20, 0);
	assert_int_equal(transport_listen(h.listen_uri, &peer_options, &peer.listener), 0);
	assert_int_equal(transport_listener_uri(peer.listener, uri, sizeof(uri)), 0);
	assert_int_equal(pthread_create(&thread, NULL, silent_peer_main, &peer), 0);
	assert_int_equal(rmig_session_create(RMIG_ROLE_SOURCE, &h.src), 0);
	assert_int_equal(rmig_session_set_params(h.src, &params), 0);
	assert_int_equal(rmig_session_set_peer_timeout(h.src, DEADLINE_MS), 0);
	assert_int_equal(rmig_region_add(h.src, 1, h.src_ram, h.src_length, HARNESS_PAGE), 0);
	assert_int_equal(rmig_session_connect(h.src, uri), 0);
	start = harness_now_ms();
	h.src_ret = rmig_session_run(h.src);
	took = harness_now_ms() - start;

	assert_int_equal(h.src_ret, -EHOSTDOWN);
	assert_non_null(strstr(rmig_last_error(h.src), "destination"));
	assert_non_null(strstr(rmig_last_error(h.src), "is dead"));
	assert_int_equal(rmig_session_stats(h.src, &st), 0);
	assert_int_equal(st.status, RMIG_STATUS_FAILED);
	/* the deadline, not the step timeout, ended it */
	assert_true(took >= DEADLINE_MS - 100u);
	assert_true(took < STEP_TIMEOUT_MS / 2);
	assert_false(atomic_load(&h.src_paused));

	pthread_mutex_lock(&peer.lock);
	peer.done = 1;
	pthread_cond_signal(&peer.done_cond);
	pthread_mutex_unlock(&peer.lock);
	pthread_join(thread, NULL);
	transport_listener_close(peer.listener);
	rmig_session_destroy(h.src);
	h.src = NULL;
	harness_fini(&h);
}

static void test_destination_declares_silent_source_dead(void **state)
{
	struct rmig_params params = {.field_mask = RMIG_PARAM_TIMEOUT_MS | RMIG_PARAM_KEY,
				     .timeout_ms = STEP_TIMEOUT_MS,
				     .key = HARNESS_KEY,
				     .key_len = (uint32_t)strlen(HARNESS_KEY)};
	struct rmig_stats st = {.struct_size = sizeof(st)};
	struct rmig_callbacks dst_cb = {0};
	struct transport_conn *conn;
	char uri[TRANSPORT_URI_MAX];
	struct harness h;
	uint64_t start, took;
	int result = 0;

	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	harness_init(&h, harness_transport, 1u << 20, 0);
	assert_int_equal(rmig_session_create(RMIG_ROLE_DESTINATION, &h.dst), 0);
	assert_int_equal(rmig_session_set_params(h.dst, &params), 0);
	assert_int_equal(rmig_session_set_peer_timeout(h.dst, DEADLINE_MS), 0);
	assert_int_equal(rmig_session_set_callbacks(h.dst, &dst_cb, &h), 0);
	assert_int_equal(
		rmig_region_add(h.dst, HARNESS_REGION_ID, h.dst_ram, h.dst_length, HARNESS_PAGE),
		0);
	assert_int_equal(rmig_session_listen(h.dst, h.listen_uri), 0);
	assert_int_equal(rmig_session_listen_uri(h.dst, uri, sizeof(uri)), 0);
	assert_int_equal(rmig_session_start(h.dst), 0);
	/* a source that connects and then never says a word */
	assert_int_equal(transport_connect(uri, &peer_options, &conn), 0);
	start = harness_now_ms();
	assert_int_equal(rmig_session_wait_result(h.dst, (int)(STEP_TIMEOUT_MS / 2), &result), 0);
	took = harness_now_ms() - start;

	assert_int_equal(result, -EHOSTDOWN);
	assert_non_null(strstr(rmig_last_error(h.dst), "source"));
	assert_non_null(strstr(rmig_last_error(h.dst), "is dead"));
	assert_int_equal(rmig_session_stats(h.dst, &st), 0);
	assert_int_equal(st.status, RMIG_STATUS_FAILED);
	assert_true(took < STEP_TIMEOUT_MS / 2);
	transport_close(conn);
	harness_fini(&h);
}

#define BUSY_DEADLINE_MS 1000u

static void busy_for_three_deadlines(struct harness *h)
{
	uint64_t until = harness_now_ms() + 3u * BUSY_DEADLINE_MS;
	struct timespec ts = {.tv_sec = 0, .tv_nsec = 50 * 1000000L};

	(void)h;
	while (harness_now_ms() < until)
		nanosleep(&ts, NULL);
}

static void busy_side_run(void (*on_pause)(struct harness *),
			  void (*on_dst_resume)(struct harness *))
{
	struct rmig_stats st = {.struct_size = sizeof(st)};
	struct harness h;

	harness_init(&h, harness_transport, 1u << 20, 0);
	h.peer_timeout_ms = BUSY_DEADLINE_MS;
	h.on_pause = on_pause;
	h.on_dst_resume = on_dst_resume;
	harness_sessions(&h);
	harness_run(&h);

	assert_int_equal(h.src_ret, 0);
	assert_int_equal(h.dst_ret, 0);
	assert_int_equal(atomic_load(&h.dst_resumed), 1);
	assert_memory_equal(h.src_ram, h.dst_ram, h.src_length);
	assert_int_equal(rmig_session_stats(h.src, &st), 0);
	assert_int_equal(st.status, RMIG_STATUS_COMPLETED);
	/* the stimulus really outlasted the deadline */
	assert_true(st.downtime_ms >= 3u * BUSY_DEADLINE_MS - 100u || on_dst_resume);
	harness_fini(&h);
}

static void test_source_busy_in_pause_is_not_dead(void **state)
{
	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	busy_side_run(busy_for_three_deadlines, NULL);
}

static void test_destination_busy_in_resume_is_not_dead(void **state)
{
	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	busy_side_run(NULL, busy_for_three_deadlines);
}

HARNESS_MAIN(cmocka_unit_test(test_source_declares_silent_destination_dead),
	     cmocka_unit_test(test_destination_declares_silent_source_dead),
	     cmocka_unit_test(test_source_busy_in_pause_is_not_dead),
	     cmocka_unit_test(test_destination_busy_in_resume_is_not_dead))
