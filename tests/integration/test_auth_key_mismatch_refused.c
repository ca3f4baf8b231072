/* SPDX-License-Identifier: MIT */
/* With a key configured, the two ends prove they hold it (HMAC over each other's nonce): the
 * same key migrates, a different key (or a key on one side only) is refused before any page
 * crosses. Over tcp the key also keys TLS (psk, the default with a key): the listener refuses
 * the wrong key in the TLS handshake, before the engine sees the connection, and goes on
 * waiting for the right source, so only the source fails there. Over rdma the listener asks
 * every queue pair for the key proof of its hello before it gives it a queue pair: the same. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "integration/engine_harness.h"

/* A NULL key: that end opts out of authentication (rmig_session_set_insecure). */
static void run_with_keys(struct harness *h, const char *src_key, const char *dst_key)
{
	harness_init(h, harness_transport, 8u << 20, 0);
	h->src_insecure = !src_key;
	h->dst_insecure = !dst_key;
	h->params.field_mask = RMIG_PARAM_KEY;
	h->params.key = src_key;
	h->params.key_len = src_key ? (uint32_t)strlen(src_key) : 0;
	h->dst_params.field_mask = RMIG_PARAM_KEY;
	h->dst_params.key = dst_key;
	h->dst_params.key_len = dst_key ? (uint32_t)strlen(dst_key) : 0;
	h->connect_may_fail = 1;
	harness_sessions(h);
	if (h->connect_ret) {
		h->src_ret = h->connect_ret;
		return;
	}
	h->src_ret = rmig_session_run(h->src);
	if (h->src_ret)
		print_message("source: %d %s\n", h->src_ret, rmig_last_error(h->src));
	/* tcp and rdma with a key on the destination: a refused source never reached its engine */
	if (!strcmp(harness_transport, "loop") || !dst_key ||
	    (src_key && !strcmp(src_key, dst_key)))
		h->dst_ret = rmig_session_wait(h->dst, 60000);
}

/* tcp, rdma: the destination refused the source in its listener and is still waiting for the
 * right one; nothing reached its engine. Cancel it. */
static void expect_destination_still_waiting(struct harness *h)
{
	int result = 0;

	assert_int_equal(rmig_session_wait_result(h->dst, 0, &result), -EINPROGRESS);
	assert_int_equal(rmig_session_cancel(h->dst), 0);
	h->dst_ret = rmig_session_wait(h->dst, 60000);
	assert_int_equal(h->dst_ret, -ECANCELED);
}

static void test_auth_same_key_migrates(void **state)
{
	struct harness h;

	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	run_with_keys(&h, "correct horse battery staple", "correct horse battery staple");
	assert_int_equal(h.src_ret, 0);
	assert_int_equal(h.dst_ret, 0);
	assert_memory_equal(h.src_ram, h.dst_ram, h.src_length);
	harness_fini(&h);
}

static void test_auth_key_mismatch_refused(void **state)
{
	struct rmig_stats st = {.struct_size = sizeof(st)};
	struct harness h;

	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	run_with_keys(&h, "correct horse battery staple", "wrong horse");
	assert_int_equal(h.src_ret, -EACCES);
	assert_non_null(strstr(rmig_last_error(h.src), "key"));
	if (strcmp(harness_transport, "loop")) {
		/* refused in connect: tcp's TLS pre-shared keys differ, rdma's listener answered
		 * the key challenge with a proof the source finds wrong */
		assert_int_equal(h.connect_ret, -EACCES);
		expect_destination_still_waiting(&h);
	} else {
		assert_int_equal(h.dst_ret, -EACCES);
	}
	assert_int_equal(rmig_session_stats(h.src, &st), 0);
	assert_int_equal(st.pages_sent, 0);
	assert_false(atomic_load(&h.dst_resumed));
	harness_fini(&h);

	/* A source that opted out of authentication meets a destination that did not. */
	run_with_keys(&h, NULL, "only the destination has one");
	if (!strcmp(harness_transport, "tcp")) {
		/* plaintext (no key, no TLS) meets a TLS listener: refused, and told why */
		assert_int_not_equal(h.src_ret, 0);
		assert_non_null(strstr(rmig_last_error(h.src), "TLS"));
		expect_destination_still_waiting(&h);
	} else if (!strcmp(harness_transport, "rdma")) {
		/* a plain hello meets a listener that asks for the key proof: refused, told why */
		assert_int_not_equal(h.src_ret, 0);
		assert_non_null(strstr(rmig_last_error(h.src), "key proof"));
		expect_destination_still_waiting(&h);
	} else {
		assert_int_equal(h.src_ret, -EACCES);
		assert_int_equal(h.dst_ret, -EACCES);
		assert_non_null(strstr(rmig_last_error(h.dst), "destination only"));
	}
	assert_false(atomic_load(&h.dst_resumed));
	harness_fini(&h);
}

HARNESS_MAIN(cmocka_unit_test(test_auth_same_key_migrates),
	     cmocka_unit_test(test_auth_key_mismatch_refused))
