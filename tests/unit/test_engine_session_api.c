/* SPDX-License-Identifier: MIT */
/* The public ABI's argument checks: roles, parameter masks and ranges, region alignment and
 * ids, calls after the start, methods not available yet, stats struct sizes, error strings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

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
	assert_int_equal(rmig_session_listen(dst, "carrier-pigeon://x:1"), -EPROTONOSUPPORT);
	assert_int_equal(rmig_session_wait(src, 0), -EINVAL);
	rmig_session_destroy(src);
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
	assert_string_equal(rmig_version(), "1.0.0");
	assert_non_null(strstr(rmig_strerror(-ECANCELED), "cancelled"));
	assert_non_null(strstr(rmig_strerror(ENOENT), "region"));
	assert_non_null(rmig_strerror(-123456));
	assert_string_equal(rmig_status_name(RMIG_STATUS_DEVICE), "device");
	assert_string_equal(rmig_method_name(RMIG_METHOD_TSMC), "tsmc");
	assert_string_equal(rmig_method_name(99), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_session_create_rejects_unknown_role),
		cmocka_unit_test(test_session_params_rejects_unknown_bits_and_values),
		cmocka_unit_test(test_session_callbacks_reject_set_bit_without_function),
		cmocka_unit_test(test_region_add_rejects_misaligned_and_duplicate),
		cmocka_unit_test(test_every_method_runs_only_when_connected),
		cmocka_unit_test(test_session_role_specific_calls_refused),
		cmocka_unit_test(test_stats_fill_only_what_fits),
		cmocka_unit_test(test_version_and_error_strings),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
