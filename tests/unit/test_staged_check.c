/* SPDX-License-Identifier: MIT */
/* tests/unit/test_staged_check.c - the pure checks behind staged regions (rdma): what a staged
 * message may write (transport_staged_check), the region announcement's staged flag on the
 * wire, and the rdma URI's ?reg= mode. The transfers themselves run in the soft-RoCE testbed
 * (test_verbs.c, *staged*). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "transport/transport.h"
#include "transport/wire.h"

static const struct transport_region writable = {
	.id = 3, .access = TRANSPORT_ACCESS_REMOTE_WRITE, .length = 1u << 20};
static const struct transport_region writable_staged = {.id = 3,
							.access = TRANSPORT_ACCESS_REMOTE_WRITE,
							.length = 1u << 20,
							.flags = TRANSPORT_REGION_STAGED};
static const struct transport_region peer_staged = {
	.id = 3, .access = 0, .flags = TRANSPORT_REGION_STAGED};
static const struct transport_region peer_plain = {
	.id = 3, .access = TRANSPORT_ACCESS_REMOTE_READ, .length = 1u << 20, .rkey = 9};

static int check(const struct transport_region *local, const struct transport_region *peer,
		 uint64_t offset, uint64_t length, const char *expect_in_why)
{
	char why[TRANSPORT_ERROR_MAX] = "";
	int ret = transport_staged_check(local, peer, 3, offset, length, why, sizeof(why));

	if (expect_in_why && !strstr(why, expect_in_why))
		fail_msg("why '%s' does not name '%s'", why, expect_in_why);
	return ret;
}

static void test_staged_data_accepted_when_either_side_stages(void **state)
{
	(void)state;
	assert_int_equal(check(&writable_staged, NULL, 0, 4096, NULL), 0);
	assert_int_equal(check(&writable, &peer_staged, 0, 4096, NULL), 0);
	assert_int_equal(check(&writable_staged, &peer_staged, (1u << 20) - 4096, 4096, NULL), 0);
}

static void test_staged_data_for_a_region_neither_side_stages_refused(void **state)
{
	(void)state;
	assert_int_equal(check(&writable, NULL, 0, 4096, "staged on neither side"), -EPERM);
	assert_int_equal(check(&writable, &peer_plain, 0, 4096, "staged on neither side"), -EPERM);
}

static void test_staged_data_for_unknown_or_unwritable_region_refused(void **state)
{
	struct transport_region local_only = writable_staged;

	(void)state;
	assert_int_equal(check(NULL, &peer_staged, 0, 4096, "not a local region"), -ENOENT);
	local_only.access = TRANSPORT_ACCESS_REMOTE_READ;
	assert_int_equal(check(&local_only, &peer_staged, 0, 4096, "lacks remote-write"), -EACCES);
	local_only.access = 0;
	assert_int_equal(check(&local_only, NULL, 0, 4096, "lacks remote-write"), -EACCES);
}

static void test_staged_data_outside_region_or_empty_refused(void **state)
{
	(void)state;
	assert_int_equal(check(&writable_staged, NULL, (1u << 20) - 4096, 4097, "staged.offset"),
			 -ERANGE);
	assert_int_equal(check(&writable_staged, NULL, 1u << 20, 1, "staged.offset"), -ERANGE);
	assert_int_equal(check(&writable_staged, NULL, UINT64_MAX - 8, 4096, "staged.offset"),
			 -ERANGE);
	assert_int_equal(check(&writable_staged, NULL, 4096, UINT64_MAX, "staged.offset"), -ERANGE);
	assert_int_equal(check(&writable_staged, NULL, 0, 0, "staged.length"), -EINVAL);
}

static void test_region_staged_flag_crosses_the_wire_and_unknown_flags_refused(void **state)
{
	struct transport_region out, in = writable_staged;
	struct wire_region wire;
	uint32_t bad = 2;
	char why[200];

	(void)state;
	wire_region_to_wire(&wire, &in);
	assert_int_equal(wire_region_from_wire(&wire, sizeof(wire), &out, why, sizeof(why)), 0);
	assert_int_equal(out.flags, TRANSPORT_REGION_STAGED);
	assert_int_equal(out.rkey, 0);
	in.flags = 0;
	wire_region_to_wire(&wire, &in);
	assert_int_equal(wire_region_from_wire(&wire, sizeof(wire), &out, why, sizeof(why)), 0);
	assert_int_equal(out.flags, 0);
	memcpy((char *)&wire + offsetof(struct wire_region, flags), &bad, sizeof(bad));
	assert_int_equal(wire_region_from_wire(&wire, sizeof(wire), &out, why, sizeof(why)),
			 -EPROTO);
	assert_non_null(strstr(why, "region[3].flags"));
}

static void test_rdma_uri_reg_mode_parsed_and_checked(void **state)
{
	static const char *const modes[] = {"whole", "odp", "chunked", "copy"};
	struct transport_uri parsed;
	char uri[80];

	(void)state;
	for (unsigned m = 0; m < 4; m++) {
		snprintf(uri, sizeof(uri), "rdma://192.0.2.1:7000?reg=%s", modes[m]);
		assert_int_equal(transport_uri_parse(uri, &parsed), 0);
		assert_int_equal(parsed.has_reg_mode, 1);
		assert_int_equal(parsed.reg_mode, m);
		assert_int_equal(parsed.port, 7000);
		assert_string_equal(parsed.host, "192.0.2.1");
		assert_string_equal(transport_reg_mode_name(parsed.reg_mode), modes[m]);
	}
	assert_int_equal(transport_uri_parse("rdma://[::1]:7000?reg=copy", &parsed), 0);
	assert_string_equal(parsed.host, "::1");
	assert_int_equal(parsed.reg_mode, TRANSPORT_REG_COPY);
	assert_int_equal(transport_uri_parse("rdma://192.0.2.1:7000", &parsed), 0);
	assert_int_equal(parsed.has_reg_mode, 0);
	assert_int_equal(transport_uri_parse("rdma://192.0.2.1:7000?reg=pinned", &parsed), -EINVAL);
	assert_int_equal(transport_uri_parse("rdma://192.0.2.1:7000?mode=copy", &parsed), -EINVAL);
	assert_int_equal(transport_uri_parse("rdma://192.0.2.1:7000?", &parsed), -EINVAL);
	assert_int_equal(transport_uri_parse("rdma://192.0.2.1:?reg=copy", &parsed), -EINVAL);
	assert_int_equal(transport_uri_parse("tcp://192.0.2.1:7000?reg=copy", &parsed), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_staged_data_accepted_when_either_side_stages),
		cmocka_unit_test(test_staged_data_for_a_region_neither_side_stages_refused),
		cmocka_unit_test(test_staged_data_for_unknown_or_unwritable_region_refused),
		cmocka_unit_test(test_staged_data_outside_region_or_empty_refused),
		cmocka_unit_test(
			test_region_staged_flag_crosses_the_wire_and_unknown_flags_refused),
		cmocka_unit_test(test_rdma_uri_reg_mode_parsed_and_checked),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
