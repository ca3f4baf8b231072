/* SPDX-License-Identifier: MIT */
/* Post-copy recovery's messages and calls: RECOVER, RECOVER_ACK and RECOVER_READY round-trip
 * through their decoders, which refuse wrong lengths, unknown flags and a nonzero reserved field;
 * rmig_session_set_recovery_window() takes 1 s to a day (0: the default) before the start only;
 * rmig_session_recover() refuses a NULL, malformed or overlong uri and a migration that ended. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "engine/protocol.h"
#include "rmig.h"

static unsigned char buf[TRANSPORT_CTRL_MAX];
static char why[256];

static const void *parse_as(size_t len, int type, size_t *payload_len)
{
	const void *payload;

	assert_int_equal(protocol_parse(buf, len, &payload, payload_len, why, sizeof(why)), type);
	return payload;
}

static void test_recover_round_trips_and_refuses_bad_flags(void **state)
{
	struct protocol_recover m = {.flags = PROTOCOL_HELLO_KEY}, back;
	unsigned char copy[256];
	const void *payload;
	size_t len, plen;

	(void)state;
	memset(m.session_id, 0x5a, sizeof(m.session_id));
	memset(m.nonce, 0xa5, sizeof(m.nonce));
	len = protocol_recover_to_wire(&m, buf);
	payload = parse_as(len, PROTOCOL_RECOVER, &plen);
	assert_int_equal(protocol_recover_from_wire(payload, plen, &back, why, sizeof(why)), 0);
	assert_int_equal(back.flags, PROTOCOL_HELLO_KEY);
	assert_memory_equal(back.session_id, m.session_id, sizeof(m.session_id));
	assert_memory_equal(back.nonce, m.nonce, sizeof(m.nonce));
	assert_int_equal(protocol_recover_from_wire(payload, plen - 1, &back, why, sizeof(why)),
			 -EPROTO);
	memcpy(copy, payload, plen);
	copy[0] = 0x80; /* an unknown flag */
	assert_int_equal(protocol_recover_from_wire(copy, plen, &back, why, sizeof(why)), -EPROTO);
	assert_non_null(strstr(why, "flags"));
	memcpy(copy, payload, plen);
	copy[4] = 1; /* reserved */
	assert_int_equal(protocol_recover_from_wire(copy, plen, &back, why, sizeof(why)), -EPROTO);
}

static void test_recover_ack_and_ready_round_trip(void **state)
{
	struct protocol_recover_ack ack = {.flags = PROTOCOL_HELLO_KEY}, ack_back;
	struct protocol_recover_ready ready = {.pages_missing = 123456789012ull}, ready_back;
	unsigned char copy[256];
	const void *payload;
	size_t len, plen;

	(void)state;
	memset(ack.nonce, 1, sizeof(ack.nonce));
	memset(ack.mac, 2, sizeof(ack.mac));
	len = protocol_recover_ack_to_wire(&ack, buf);
	payload = parse_as(len, PROTOCOL_RECOVER_ACK, &plen);
	assert_int_equal(protocol_recover_ack_from_wire(payload, plen, &ack_back, why, sizeof(why)),
			 0);
	assert_memory_equal(ack_back.nonce, ack.nonce, sizeof(ack.nonce));
	assert_memory_equal(ack_back.mac, ack.mac, sizeof(ack.mac));
	/* the post-copy flag of a hello-ack means nothing here */
	memcpy(copy, payload, plen);
	copy[0] |= PROTOCOL_HELLO_POSTCOPY;
	assert_int_equal(protocol_recover_ack_from_wire(copy, plen, &ack_back, why, sizeof(why)),
			 -EPROTO);
	assert_int_equal(
		protocol_recover_ack_from_wire(payload, plen + 1, &ack_back, why, sizeof(why)),
		-EPROTO);

	len = protocol_recover_ready_to_wire(&ready, buf);
	payload = parse_as(len, PROTOCOL_RECOVER_READY, &plen);
	assert_int_equal(
		protocol_recover_ready_from_wire(payload, plen, &ready_back, why, sizeof(why)), 0);
	assert_true(ready_back.pages_missing == ready.pages_missing);
	assert_int_equal(
		protocol_recover_ready_from_wire(payload, plen - 1, &ready_back, why, sizeof(why)),
		-EPROTO);
	assert_string_equal(protocol_type_name(PROTOCOL_RECOVER_PAGES), "recover-pages");
}

static void test_recovery_window_range_and_default(void **state)
{
	rmig_session_t *s;

	(void)state;
	assert_int_equal(rmig_session_create(RMIG_ROLE_SOURCE, &s), 0);
	assert_int_equal(rmig_session_set_recovery_window(NULL, 0), -EINVAL);
	assert_int_equal(rmig_session_set_recovery_window(s, 999), -EINVAL);
	assert_int_equal(rmig_session_set_recovery_window(s, 86400001u), -EINVAL);
	assert_int_equal(rmig_session_set_recovery_window(s, 1000), 0);
	assert_int_equal(rmig_session_set_recovery_window(s, 86400000u), 0);
	assert_int_equal(rmig_session_set_recovery_window(s, 0), 0);
	rmig_session_destroy(s);
}

static void test_recover_refuses_bad_uri_and_ended_migration(void **state)
{
	char longer[400];
	rmig_session_t *s;

	(void)state;
	assert_int_equal(rmig_session_create(RMIG_ROLE_DESTINATION, &s), 0);
	assert_int_equal(rmig_session_recover(NULL, "tcp://127.0.0.1:1"), -EINVAL);
	assert_int_equal(rmig_session_recover(s, NULL), -EINVAL);
	assert_true(rmig_session_recover(s, "not a uri") < 0);
	memset(longer, 'a', sizeof(longer) - 1);
	longer[sizeof(longer) - 1] = '\0';
	memcpy(longer, "tcp://", 6);
	assert_int_equal(rmig_session_recover(s, longer), -EINVAL);
	/* Before the start: kept for a recovery that may come. */
	assert_int_equal(rmig_session_recover(s, "tcp://127.0.0.1:7001"), 0);
	/* A run without regions fails at once: the migration is over. */
	assert_true(rmig_session_run(s) < 0);
	assert_int_equal(rmig_session_recover(s, "tcp://127.0.0.1:7001"), -EINVAL);
	assert_non_null(strstr(rmig_last_error(s), "over"));
	assert_int_equal(rmig_session_set_recovery_window(s, 5000), -EBUSY);
	rmig_session_destroy(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_recover_round_trips_and_refuses_bad_flags),
		cmocka_unit_test(test_recover_ack_and_ready_round_trip),
		cmocka_unit_test(test_recovery_window_range_and_default),
		cmocka_unit_test(test_recover_refuses_bad_uri_and_ended_migration),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
