/* SPDX-License-Identifier: MIT */
/* The public ABI's argument checks: roles, parameter masks and ranges, region alignment, ids
 * and overlaps, calls after the start, methods not available yet, stats struct sizes, error
 * strings; every failing call's own reason in rmig_last_error(), kept out of the default log;
 * waiting tells a running migration from one that failed with -ETIMEDOUT. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "rmig.h"

static void test_session_create_rejects_unknown_role(void **state)
{
	rmig_session_t *s = (rmig_session_t *)&s;

	(void)state;
	assert_int_equal(rmig_session_create(0, &s), -EINVAL);
	assert_int_equal(rmig_session_create(3, &s), -EINVAL);
	assert_ptr_equal(s, (rmig_session_t *)&s); /* untouched on failure */
	assert_int_equal(rmig_session_create(RMIG_ROLE_SOURCE, NULL), -EINVAL);
}

static void test_session_params_rejects_unknown_bits_and_values(void **state)
{
	struct rmig_params p = {0};
	rmig_session_t *s;

	(void)state;
	assert_int_equal(rmig_session_create(RMIG_ROLE_SOURCE, &s), 0);
	p.field_mask = 1ull << 40;
	assert_int_equal(rmig_session_set_params(s, &p), -EINVAL);
	p.field_mask = RMIG_PARAM_METHOD;
	p.method = RMIG_METHOD_AUTO + 1;
	assert_int_equal(rmig_session_set_params(s, &p), -EINVAL);
	p.field_mask = RMIG_PARAM_POLICY;
	p.policy = 7;
	assert_int_equal(rmig_session_set_params(s, &p), -EINVAL);
	p.field_mask = RMIG_PARAM_KEY;
	p.key = "k";
	p.key_len = RMIG_KEY_MAX + 1;
	assert_int_equal(rmig_session_set_params(s, &p), -EINVAL);
	p.key_len = 1;
	p.reserved = 1;
	assert_int_equal(rmig_session_set_params(s, &p), -EINVAL);
	p.reserved = 0;
	assert_int_equal(rmig_session_set_params(s, &p), 0);
	rmig_session_destroy(s);
}

static void test_session_callbacks_reject_set_bit_without_function(void **state)
{
	struct rmig_callbacks cb = {.field_mask = RMIG_CB_PAUSE_VM};
	rmig_session_t *s;

	(void)state;
	assert_int_equal(rmig_session_create(RMIG_ROLE_SOURCE, &s), 0);
	assert_int_equal(rmig_session_set_callbacks(s, &cb, NULL), -EINVAL);
	cb.field_mask = 1ull << 30;
	assert_int_equal(rmig_session_set_callbacks(s, &cb, NULL), -EINVAL);
	rmig_session_destroy(s);
}

static void test_region_add_rejects_misaligned_and_duplicate(void **state)
{
	rmig_session_t *s;
	char *ram = aligned_alloc(1 << 21, 4 << 20);

	(void)state;
	assert_non_null(ram);
	assert_int_equal(rmig_session_create(RMIG_ROLE_DESTINATION, &s), 0);
	assert_int_equal(rmig_region_add(s, 1, ram + 1, 4096, 4096), -EINVAL);
	assert_int_equal(rmig_region_add(s, 1, ram, 4095, 4096), -EINVAL);
	assert_int_equal(rmig_region_add(s, 1, ram, 4096, 3000), -EINVAL);
	assert_int_equal(rmig_region_add(s, 1, ram, 0, 4096), -EINVAL);
	assert_int_equal(rmig_region_add(s, 1, ram + 4096, 1 << 21, 1 << 21), -EINVAL);
	assert_int_equal(rmig_region_add(s, 1, ram, 1 << 20, 4096), 0);
	assert_int_equal(rmig_region_add(s, 1, ram + (1 << 20), 1 << 20, 4096), -EEXIST);
	assert_int_equal(rmig_region_add(s, 2, ram + (2 << 20), 2 << 20, 1 << 21), 0);
	rmig_session_destroy(s);
	free(ram);
}

/* Per-page send counts are a source's, per region, and never more than the caller's buffer
 * holds; before any run every page reads 0. */
static void test_region_send_counts_checks_role_region_and_buffer(void **state)
{
	static unsigned char ram[4 * 4096] __attribute__((aligned(4096)));
	uint8_t counts[8];
	rmig_session_t *s, *d;

	(void)state;
	assert_int_equal(rmig_session_create(RMIG_ROLE_SOURCE, &s), 0);
	assert_int_equal(rmig_session_create(RMIG_ROLE_DESTINATION, &d), 0);
	assert_int_equal(rmig_region_add(s, 1, ram, sizeof(ram), 4096), 0);
	assert_int_equal(rmig_region_add(d, 1, ram, sizeof(ram), 4096), 0);
	assert_int_equal(rmig_region_send_counts(NULL, 1, counts, 4), -EINVAL);
	assert_int_equal(rmig_region_send_counts(d, 1, counts, 4), -EINVAL);
	assert_int_equal(rmig_region_send_counts(s, 2, counts, 4), -ENOENT);
	assert_int_equal(rmig_region_send_counts(s, 1, NULL, 4), -EINVAL);
	assert_int_equal(rmig_region_send_counts(s, 1, NULL, 0), 0);
	memset(counts, 0xff, sizeof(counts));
	assert_int_equal(rmig_region_send_counts(s, 1, counts, 2), 2);
	assert_int_equal(counts[0], 0);
	assert_int_equal(counts[1], 0);
	assert_int_equal(counts[2], 0xff); /* past what was asked for: untouched */
	memset(counts, 0xff, sizeof(counts));
	assert_int_equal(rmig_region_send_counts(s, 1, counts, sizeof(counts)), 4);
	assert_int_equal(counts[3], 0);
	assert_int_equal(counts[4], 0xff);
	rmig_session_destroy(d);
	rmig_session_destroy(s);
}

/* The transport's own counters: both roles, all zero before a connection, and never more of
 * the struct written than the caller says it has. */
static void test_transport_stats_check_size_and_fill_only_what_fits(void **state)
{
	struct rmig_transport_stats ts;
	rmig_session_t *s, *d;

	(void)state;
	assert_int_equal(rmig_session_create(RMIG_ROLE_SOURCE, &s), 0);
	assert_int_equal(rmig_session_create(RMIG_ROLE_DESTINATION, &d), 0);
	ts = (struct rmig_transport_stats){.struct_size = sizeof(ts)};
	assert_int_equal(rmig_session_transport_stats(NULL, &ts), -EINVAL);
	assert_int_equal(rmig_session_transport_stats(s, NULL), -EINVAL);
	ts.struct_size = 4;
	assert_int_equal(rmig_session_transport_stats(s, &ts), -EINVAL);
	memset(&ts, 0xff, sizeof(ts));
	ts.struct_size = sizeof(ts);
	assert_int_equal(rmig_session_transport_stats(d, &ts), 0);
	assert_int_equal(ts.struct_size, sizeof(ts));
	assert_int_equal(ts.bytes_sent, 0);
	assert_int_equal(ts.read_bytes, 0);
	/* An older caller's smaller struct: what lies past it stays untouched. */
	memset(&ts, 0xff, sizeof(ts));
	ts.struct_size = offsetof(struct rmig_transport_stats, data_bytes_sent);
	assert_int_equal(rmig_session_transport_stats(s, &ts), 0);
	assert_int_equal(ts.struct_size, offsetof(struct rmig_transport_stats, data_bytes_sent));
	assert_int_equal(ts.bytes_received, 0);
	assert_true(ts.data_bytes_sent == UINT64_MAX);
	rmig_session_destroy(d);
	rmig_session_destroy(s);
}

static void test_region_add_refuses_overlap_and_wrap(void **state)
{
	rmig_session_t *s;
	char *ram = aligned_alloc(4096, 16 * 4096);

	(void)state;
	assert_non_null(ram);
	assert_int_equal(rmig_session_create(RMIG_ROLE_SOURCE, &s), 0);
	assert_int_equal(rmig_region_add(s, 1, ram + 4 * 4096, 4 * 4096, 4096), 0);
	/* the same range, a range inside, one straddling each end, one around it */
	assert_int_equal(rmig_region_add(s, 2, ram + 4 * 4096, 4 * 4096, 4096), -EINVAL);
	assert_non_null(strstr(rmig_last_error(s), "overlaps region 1"));
	assert_int_equal(rmig_region_add(s, 2, ram + 5 * 4096, 4096, 4096), -EINVAL);
	assert_int_equal(rmig_region_add(s, 2, ram + 2 * 4096, 3 * 4096, 4096), -EINVAL);
	assert_int_equal(rmig_region_add(s, 2, ram + 7 * 4096, 2 * 4096, 4096), -EINVAL);
	assert_int_equal(rmig_region_add(s, 2, ram, 16 * 4096, 4096), -EINVAL);
	/* touching is not overlapping */
	assert_int_equal(rmig_region_add(s, 2, ram + 8 * 4096, 4 * 4096, 4096), 0);
	assert_int_equal(rmig_region_add(s, 3, ram, 4 * 4096, 4096), 0);
	/* a length that wraps the address space is an argument error, not a lack of memory */
	assert_int_equal(rmig_region_add(s, 4, ram + 12 * 4096, SIZE_MAX & ~(size_t)4095, 4096),
			 -EINVAL);
	assert_non_null(strstr(rmig_last_error(s), "wraps"));
	rmig_session_destroy(s);
	free(ram);
}

static void test_cancel_null_is_harmless_and_streams_zero_refused(void **state)
{
	struct rmig_params p = {.field_mask = RMIG_PARAM_STREAMS};
	rmig_session_t *s;

	(void)state;
	assert_int_equal(rmig_session_cancel(NULL), 0);
	assert_int_equal(rmig_session_create(RMIG_ROLE_SOURCE, &s), 0);
	p.streams = 0;
	assert_int_equal(rmig_session_set_params(s, &p), -EINVAL);
	assert_non_null(strstr(rmig_last_error(s), "streams 0"));
	p.streams = 65;
	assert_int_equal(rmig_session_set_params(s, &p), -EINVAL);
	p.streams = 64;
	assert_int_equal(rmig_session_set_params(s, &p), 0);
	rmig_session_destroy(s);
}

struct captured_log {
	int messages;
	int insecure_warnings;	/* warnings naming the opt-out of authentication */
	int plaintext_warnings; /* warnings that a keyed tcp session runs without TLS */
};

static void capture_log(void *opaque, int level, const char *message)
{
	struct captured_log *log = opaque;

	log->messages++;
	if (level == RMIG_LOG_WARN && strstr(message, "INSECURE") &&
	    strstr(message, "without a key"))
		log->insecure_warnings++;
	if (level == RMIG_LOG_WARN && strstr(message, "without TLS") &&
	    strstr(message, "plaintext"))
		log->plaintext_warnings++;
}

static const struct rmig_params test_key = {
	.field_mask = RMIG_PARAM_KEY, .key = "api test key", .key_len = 12};

static void test_every_failing_call_leaves_its_own_reason(void **state)
{
	struct rmig_callbacks cb = {.field_mask = RMIG_CB_PAUSE_VM};
	struct rmig_params p = {.field_mask = RMIG_PARAM_POLICY, .policy = 9};
	struct rmig_stats st = {.struct_size = 4};
	struct captured_log log = {0};
	char ram[4096] __attribute__((aligned(4096)));
	char copy[256], tiny[8];
	rmig_session_t *s;
	int len;

	(void)state;
	/* at the default level (warn), errors returned to the caller are not logged */
	rmig_log_handler_install(capture_log, &log, RMIG_LOG_WARN);
	assert_int_equal(rmig_session_create(RMIG_ROLE_DESTINATION, &s), 0);
	assert_string_equal(rmig_last_error(s), "");
	assert_int_equal(rmig_session_set_params(s, &test_key), 0);
	assert_true(rmig_session_listen(s, "foo://") < 0);
	assert_non_null(strstr(rmig_last_error(s), "cannot listen on foo://"));
	/* each later failure replaces it with its own reason */
	assert_int_equal(rmig_session_set_params(s, &p), -EINVAL);
	assert_null(strstr(rmig_last_error(s), "foo://"));
	assert_non_null(strstr(rmig_last_error(s), "set params"));
	assert_int_equal(rmig_session_set_params(s, NULL), -EINVAL);
	assert_non_null(strstr(rmig_last_error(s), "params is NULL"));
	assert_int_equal(rmig_session_set_callbacks(s, &cb, NULL), -EINVAL);
	assert_non_null(strstr(rmig_last_error(s), "pause_vm is NULL"));
	assert_int_equal(rmig_region_add(s, 1, ram, 4096, 3000), -EINVAL);
	assert_non_null(strstr(rmig_last_error(s), "page size 3000"));
	assert_int_equal(rmig_session_stats(s, &st), -EINVAL);
	assert_non_null(strstr(rmig_last_error(s), "struct_size 4"));
	assert_int_equal(rmig_session_wait(s, 0), -EINVAL);
	assert_non_null(strstr(rmig_last_error(s), "not started"));
	assert_int_equal(log.messages, 0);

	/* the copy: the same text, its full length, truncated to the buffer */
	len = rmig_last_error_copy(s, copy, sizeof(copy));
	assert_int_equal(len, (int)strlen(copy));
	assert_string_equal(copy, rmig_last_error(s));
	assert_int_equal(rmig_last_error_copy(s, tiny, sizeof(tiny)), len);
	assert_int_equal(strlen(tiny), sizeof(tiny) - 1);
	assert_int_equal(rmig_last_error_copy(s, NULL, 0), len);
	assert_int_equal(rmig_last_error_copy(s, NULL, 1), -EINVAL);

	/* a caller asking for info gets them in its log */
	rmig_log_handler_install(capture_log, &log, RMIG_LOG_INFO);
	assert_int_equal(rmig_session_set_params(s, &p), -EINVAL);
	assert_int_equal(log.messages, 1);
	rmig_log_handler_install(NULL, NULL, -1);
	rmig_session_destroy(s);
}

static void test_wait_result_tells_running_from_timed_out(void **state)
{
	struct rmig_params p = {.field_mask = RMIG_PARAM_TIMEOUT_MS, .timeout_ms = 300};
	char ram[4096] __attribute__((aligned(4096)));
	char uri[64];
	rmig_session_t *s;
	int result = 1;

	(void)state;
	snprintf(uri, sizeof(uri), "loop:wait-result-%d", (int)getpid());
	assert_int_equal(rmig_session_create(RMIG_ROLE_DESTINATION, &s), 0);
	assert_int_equal(rmig_session_set_params(s, &p), 0);
	assert_int_equal(rmig_session_set_params(s, &test_key), 0);
	assert_int_equal(rmig_region_add(s, 1, ram, sizeof(ram), 4096), 0);
	assert_int_equal(rmig_session_wait_result(s, 0, &result), -EINVAL);
	assert_int_equal(rmig_session_listen(s, uri), 0);
	assert_int_equal(rmig_session_start(s), 0);
	/* no source connects: still running right after the start... */
	assert_int_equal(rmig_session_wait_result(s, 0, &result), -EINPROGRESS);
	assert_int_equal(result, 1); /* untouched */
	/* ...then the run itself fails with -ETIMEDOUT, which the old call cannot tell apart */
	assert_int_equal(rmig_session_wait_result(s, -1, &result), 0);
	assert_int_equal(result, -ETIMEDOUT);
	assert_int_equal(rmig_session_wait(s, 0), -ETIMEDOUT);
	assert_non_null(strstr(rmig_last_error(s), "no source connected"));
	assert_int_equal(rmig_session_wait_result(s, 0, NULL), -EINVAL);
	rmig_session_destroy(s);
}

static void test_every_method_runs_only_when_connected(void **state)
{
	static const uint32_t later[] = {RMIG_METHOD_PREDICT, RMIG_METHOD_TSMC,
					 RMIG_METHOD_POSTCOPY, RMIG_METHOD_HYBRID,
					 RMIG_METHOD_AUTO};
	struct rmig_stats st = {.struct_size = sizeof(st)};
	char *ram = aligned_alloc(4096, 65536);

	(void)state;
	for (size_t i = 0; i < sizeof(later) / sizeof(later[0]); i++) {
		struct rmig_params p = {.field_mask = RMIG_PARAM_METHOD, .method = later[i]};
		rmig_session_t *s;

		assert_int_equal(rmig_session_create(RMIG_ROLE_SOURCE, &s), 0);
		assert_int_equal(rmig_session_set_params(s, &p), 0);
		assert_int_equal(rmig_region_add(s, 0, ram, 65536, 4096), 0);
		assert_int_equal(rmig_session_run(s), -ENOTCONN);
		assert_non_null(strstr(rmig_last_error(s), "not connected"));
		assert_int_equal(rmig_session_stats(s, &st), 0);
		assert_int_equal(st.status, RMIG_STATUS_FAILED);
		/* Once run, the session is spent. */
		assert_int_equal(rmig_session_set_params(s, &p), -EBUSY);
		assert_int_equal(rmig_region_add(s, 1, ram, 4096, 4096), -EBUSY);
		rmig_session_destroy(s);
	}
	free(ram);
}

static void test_session_role_specific_calls_refused(void **state)
{
	rmig_session_t *src, *dst;
	char uri[64];

	(void)state;
	assert_int_equal(rmig_session_create(RMIG_ROLE_SOURCE, &src), 0);
	assert_int_equal(rmig_session_create(RMIG_ROLE_DESTINATION, &dst), 0);
	assert_int_equal(rmig_session_listen(src, "loop:api-test"), -EINVAL);
	assert_int_equal(rmig_session_connect(dst, "loop:api-test"), -EINVAL);
	assert_int_equal(rmig_session_listen_uri(dst, uri, sizeof(uri)), -EINVAL);
	assert_int_equal(rmig_session_set_params(dst, &test_key), 0);
	assert_int_equal(rmig_session_listen(dst, "carrier-pigeon://x:1"), -EPROTONOSUPPORT);
	assert_int_equal(rmig_session_wait(src, 0), -EINVAL);
	rmig_session_destroy(src);
	rmig_session_destroy(dst);
}

static void test_listen_and_connect_refuse_without_key(void **state)
{
	rmig_session_t *src, *dst;
	char uri[64];

	(void)state;
	snprintf(uri, sizeof(uri), "loop:no-key-%d", (int)getpid());
	assert_int_equal(rmig_session_create(RMIG_ROLE_SOURCE, &src), 0);
	assert_int_equal(rmig_session_create(RMIG_ROLE_DESTINATION, &dst), 0);
	assert_int_equal(rmig_session_listen(dst, uri), -EPERM);
	/* the reason names both ways out */
	assert_non_null(strstr(rmig_last_error(dst), "no key"));
	assert_non_null(strstr(rmig_last_error(dst), "rmig_params.key"));
	assert_non_null(strstr(rmig_last_error(dst), "rmig_session_set_insecure"));
	/* nothing was bound */
	assert_int_equal(rmig_session_listen_uri(dst, uri, sizeof(uri)), -EINVAL);
	assert_int_equal(rmig_session_connect(src, uri), -EPERM);
	assert_non_null(strstr(rmig_last_error(src), "rmig_session_set_insecure"));
	/* opting out and back in restores the refusal; a key clears it */
	assert_int_equal(rmig_session_set_insecure(dst, 1), 0);
	assert_int_equal(rmig_session_set_insecure(dst, 0), 0);
	assert_int_equal(rmig_session_listen(dst, uri), -EPERM);
	assert_int_equal(rmig_session_set_params(dst, &test_key), 0);
	assert_int_equal(rmig_session_listen(dst, uri), 0);
	assert_int_equal(rmig_session_set_insecure(NULL, 1), -EINVAL);
	rmig_session_destroy(src);
	rmig_session_destroy(dst);
}

/* rmig_session_set_tls() checks what it is given, only before listen/connect; TLS asked for by
 * name on a transport without it fails listen, never falls back to plaintext; a keyed tcp
 * session that turns TLS off says so every time. */
static void test_set_tls_checks_arguments_and_warns_on_plaintext(void **state)
{
	struct rmig_tls tls = {.struct_size = sizeof(tls), .mode = RMIG_TLS_PSK};
	struct captured_log log = {0};
	rmig_session_t *dst;
	char uri[64];

	(void)state;
	assert_int_equal(rmig_session_set_tls(NULL, &tls), -EINVAL);
	assert_int_equal(rmig_session_create(RMIG_ROLE_DESTINATION, &dst), 0);
	assert_int_equal(rmig_session_set_params(dst, &test_key), 0);
	tls.struct_size = 8;
	assert_int_equal(rmig_session_set_tls(dst, &tls), -EINVAL);
	assert_non_null(strstr(rmig_last_error(dst), "struct_size"));
	tls.struct_size = sizeof(tls);
	tls.mode = 9;
	assert_int_equal(rmig_session_set_tls(dst, &tls), -EINVAL);
	tls.mode = RMIG_TLS_X509;
	assert_int_equal(rmig_session_set_tls(dst, &tls), -EINVAL);
	assert_non_null(strstr(rmig_last_error(dst), "creds_dir"));
	tls.ca_file = "/nonexistent/ca.pem"; /* files are read by listen/connect */
	tls.cert_file = "/nonexistent/cert.pem";
	tls.key_file = "/nonexistent/key.pem";
	assert_int_equal(rmig_session_set_tls(dst, &tls), 0);
	tls = (struct rmig_tls){.struct_size = sizeof(tls), .mode = RMIG_TLS_PSK};
	assert_int_equal(rmig_session_set_tls(dst, &tls), 0);
	snprintf(uri, sizeof(uri), "loop:tls-%d", (int)getpid());
	assert_int_equal(rmig_session_listen(dst, uri), -EPROTONOSUPPORT);
	assert_int_equal(rmig_session_set_tls(dst, NULL), 0); /* the default: fine on loop */
	assert_int_equal(rmig_session_listen(dst, uri), 0);
	assert_int_equal(rmig_session_set_tls(dst, &tls), -EBUSY);
	rmig_session_destroy(dst);

	/* x509 certificates are a credential without a key: listen gets past the key check and
	 * fails loading the (missing) files instead */
	assert_int_equal(rmig_session_create(RMIG_ROLE_DESTINATION, &dst), 0);
	tls = (struct rmig_tls){.struct_size = sizeof(tls),
				.mode = RMIG_TLS_X509,
				.creds_dir = "/nonexistent-rmig-creds"};
	assert_int_equal(rmig_session_set_tls(dst, &tls), 0);
	assert_int_equal(rmig_session_listen(dst, "tcp://127.0.0.1:0"), -ENOENT);
	assert_non_null(strstr(rmig_last_error(dst), "ca-cert.pem"));
	rmig_session_destroy(dst);

	rmig_log_handler_install(capture_log, &log, RMIG_LOG_WARN);
	assert_int_equal(rmig_session_create(RMIG_ROLE_DESTINATION, &dst), 0);
	assert_int_equal(rmig_session_set_params(dst, &test_key), 0);
	tls.mode = RMIG_TLS_NONE;
	assert_int_equal(rmig_session_set_tls(dst, &tls), 0);
	assert_int_equal(rmig_session_listen(dst, "tcp://127.0.0.1:0"), 0);
	assert_int_equal(log.plaintext_warnings, 1);
	rmig_session_destroy(dst);
	/* the default with a key: TLS, nothing to warn about */
	assert_int_equal(rmig_session_create(RMIG_ROLE_DESTINATION, &dst), 0);
	assert_int_equal(rmig_session_set_params(dst, &test_key), 0);
	assert_int_equal(rmig_session_listen(dst, "tcp://127.0.0.1:0"), 0);
	assert_int_equal(log.plaintext_warnings, 1);
	rmig_session_destroy(dst);
	rmig_log_handler_install(NULL, NULL, -1);
}

static void test_insecure_opt_out_warns_every_session(void **state)
{
	struct captured_log log = {0};
	char uri[64];

	(void)state;
	rmig_log_handler_install(capture_log, &log, RMIG_LOG_WARN);
	for (int i = 0; i < 2; i++) {
		rmig_session_t *dst;

		snprintf(uri, sizeof(uri), "loop:insecure-%d-%d", (int)getpid(), i);
		assert_int_equal(rmig_session_create(RMIG_ROLE_DESTINATION, &dst), 0);
		assert_int_equal(rmig_session_set_insecure(dst, 1), 0);
		assert_int_equal(rmig_session_listen(dst, uri), 0);
		assert_int_equal(log.insecure_warnings, i + 1);
		rmig_session_destroy(dst);
	}
	/* a session with a key says nothing */
	{
		rmig_session_t *dst;

		snprintf(uri, sizeof(uri), "loop:keyed-%d", (int)getpid());
		assert_int_equal(rmig_session_create(RMIG_ROLE_DESTINATION, &dst), 0);
		assert_int_equal(rmig_session_set_insecure(dst, 1), 0);
		assert_int_equal(rmig_session_set_params(dst, &test_key), 0);
		assert_int_equal(rmig_session_listen(dst, uri), 0);
		assert_int_equal(log.insecure_warnings, 2);
		rmig_session_destroy(dst);
	}
	rmig_log_handler_install(NULL, NULL, -1);
}

static void test_peer_timeout_range_and_timing(void **state)
{
	rmig_session_t *dst;
	char uri[64];

	(void)state;
	snprintf(uri, sizeof(uri), "loop:peer-timeout-%d", (int)getpid());
	assert_int_equal(rmig_session_create(RMIG_ROLE_DESTINATION, &dst), 0);
	assert_int_equal(rmig_session_set_peer_timeout(dst, 199), -EINVAL);
	assert_non_null(strstr(rmig_last_error(dst), "199 ms"));
	assert_int_equal(rmig_session_set_peer_timeout(dst, 3600001), -EINVAL);
	assert_int_equal(rmig_session_set_peer_timeout(dst, 200), 0);
	assert_int_equal(rmig_session_set_peer_timeout(dst, 0), 0);
	assert_int_equal(rmig_session_set_params(dst, &test_key), 0);
	assert_int_equal(rmig_session_listen(dst, uri), 0);
	/* the transport took it when it was set up */
	assert_int_equal(rmig_session_set_peer_timeout(dst, 5000), -EBUSY);
	assert_int_equal(rmig_session_set_peer_timeout(NULL, 5000), -EINVAL);
	rmig_session_destroy(dst);
}

static void test_stats_fill_only_what_fits(void **state)
{
	struct rmig_stats st;
	rmig_session_t *s;

	(void)state;
	assert_int_equal(rmig_session_create(RMIG_ROLE_SOURCE, &s), 0);
	memset(&st, 0xee, sizeof(st));
	st.struct_size = 4;
	assert_int_equal(rmig_session_stats(s, &st), -EINVAL);
	st.struct_size = offsetof(struct rmig_stats, method);
	assert_int_equal(rmig_session_stats(s, &st), 0);
	assert_int_equal(st.status, RMIG_STATUS_NONE);
	assert_int_equal(st.method, 0xeeeeeeeeu); /* beyond struct_size: untouched */
	rmig_session_destroy(s);
}

static void test_version_and_error_strings(void **state)
{
	(void)state;
	assert_string_equal(rmig_version(), "1.4.0");
	assert_non_null(strstr(rmig_strerror(-ECANCELED), "cancelled"));
	assert_non_null(strstr(rmig_strerror(ENOENT), "region"));
	assert_non_null(rmig_strerror(-123456));
	assert_string_equal(rmig_status_name(RMIG_STATUS_DEVICE), "device");
	assert_string_equal(rmig_status_name(RMIG_STATUS_LOST), "lost");
	assert_string_equal(rmig_method_name(RMIG_METHOD_TSMC), "tsmc");
	assert_string_equal(rmig_method_name(99), "unknown");
	assert_string_equal(rmig_stop_reason_name(RMIG_STOP_NONE), "none");
	assert_string_equal(rmig_stop_reason_name(RMIG_STOP_DOWNTIME), "downtime target");
	assert_string_equal(rmig_stop_reason_name(RMIG_STOP_FLOOR), "the pause's floor");
	assert_string_equal(rmig_stop_reason_name(RMIG_STOP_FLOOR + 1), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_session_create_rejects_unknown_role),
		cmocka_unit_test(test_session_params_rejects_unknown_bits_and_values),
		cmocka_unit_test(test_session_callbacks_reject_set_bit_without_function),
		cmocka_unit_test(test_region_add_rejects_misaligned_and_duplicate),
		cmocka_unit_test(test_region_add_refuses_overlap_and_wrap),
		cmocka_unit_test(test_cancel_null_is_harmless_and_streams_zero_refused),
		cmocka_unit_test(test_every_failing_call_leaves_its_own_reason),
		cmocka_unit_test(test_wait_result_tells_running_from_timed_out),
		cmocka_unit_test(test_every_method_runs_only_when_connected),
		cmocka_unit_test(test_session_role_specific_calls_refused),
		cmocka_unit_test(test_listen_and_connect_refuse_without_key),
		cmocka_unit_test(test_insecure_opt_out_warns_every_session),
		cmocka_unit_test(test_set_tls_checks_arguments_and_warns_on_plaintext),
		cmocka_unit_test(test_peer_timeout_range_and_timing),
		cmocka_unit_test(test_stats_fill_only_what_fits),
		cmocka_unit_test(test_version_and_error_strings),
		cmocka_unit_test(test_region_send_counts_checks_role_region_and_buffer),
		cmocka_unit_test(test_transport_stats_check_size_and_fill_only_what_fits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
