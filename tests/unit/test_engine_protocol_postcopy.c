/* SPDX-License-Identifier: MIT */
/* The post-copy messages (and the test pulls the region acknowledgement and the pull report
 * carry, which auto weighs post-copy's faults by): each round-trips through its decoder, and the decoders refuse
 * lengths, counts, flags and ranges that do not add up (the caller checks regions). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "engine/protocol.h"

static unsigned char buf[TRANSPORT_CTRL_MAX];
static char why[256];

static const void *parse_as(size_t len, int type, size_t *payload_len)
{
	const void *payload;

	assert_int_equal(protocol_parse(buf, len, &payload, payload_len, why, sizeof(why)), type);
	return payload;
}

static void test_page_bitmap_round_trips_and_checks_length(void **state)
{
	const uint64_t words[3] = {0x1, 0x8000000000000000ull, 0xdeadbeefull};
	struct protocol_page_bitmap m;
	const void *payload;
	size_t len, plen;

	(void)state;
	len = protocol_page_bitmap_to_wire(PROTOCOL_PUSH_REQ, 7, 40, words, 3, buf);
	payload = parse_as(len, PROTOCOL_PUSH_REQ, &plen);
	assert_int_equal(protocol_page_bitmap_from_wire(payload, plen, &m, why, sizeof(why)), 0);
	assert_int_equal(m.region_id, 7);
	assert_int_equal(m.first_word, 40);
	assert_int_equal(m.nwords, 3);
	for (uint32_t i = 0; i < 3; i++)
		assert_true(protocol_word_at(&m, i) == words[i]);
	assert_int_equal(protocol_page_bitmap_from_wire(payload, plen - 8, &m, why, sizeof(why)),
			 -EPROTO);
	assert_int_equal(protocol_page_bitmap_from_wire(payload, 8, &m, why, sizeof(why)), -EPROTO);
	/* zero words */
	len = protocol_page_bitmap_to_wire(PROTOCOL_POSTCOPY_PAGES, 7, 0, words, 0, buf);
	payload = parse_as(len, PROTOCOL_POSTCOPY_PAGES, &plen);
	assert_int_equal(protocol_page_bitmap_from_wire(payload, plen, &m, why, sizeof(why)),
			 -EPROTO);
	/* a first word that overflows the page numbers */
	len = protocol_page_bitmap_to_wire(PROTOCOL_PUSH_REQ, 7, UINT64_MAX / 64, words, 1, buf);
	payload = parse_as(len, PROTOCOL_PUSH_REQ, &plen);
	assert_int_equal(protocol_page_bitmap_from_wire(payload, plen, &m, why, sizeof(why)),
			 -EPROTO);
}

static void test_postcopy_ready_round_trips_and_checks_count(void **state)
{
	struct protocol_staging staging[2] = {{.region_id = 1, .staging_id = 0x80000000u},
					      {.region_id = 9, .staging_id = 0x80000001u}};
	struct protocol_staging got[PROTOCOL_REGIONS_MAX];
	const void *payload;
	size_t len, plen, count;

	(void)state;
	len = protocol_postcopy_ready_to_wire(staging, 2, buf);
	payload = parse_as(len, PROTOCOL_POSTCOPY_READY, &plen);
	assert_int_equal(
		protocol_postcopy_ready_from_wire(payload, plen, got, &count, why, sizeof(why)), 0);
	assert_int_equal(count, 2);
	assert_int_equal(got[1].region_id, 9);
	assert_int_equal(got[1].staging_id, 0x80000001u);
	assert_int_equal(
		protocol_postcopy_ready_from_wire(payload, plen - 1, got, &count, why, sizeof(why)),
		-EPROTO);
	len = protocol_postcopy_ready_to_wire(staging, 0, buf);
	payload = parse_as(len, PROTOCOL_POSTCOPY_READY, &plen);
	assert_int_equal(
		protocol_postcopy_ready_from_wire(payload, plen, got, &count, why, sizeof(why)),
		-EPROTO);
}

static void test_postcopy_begin_done_end_round_trip(void **state)
{
	struct protocol_postcopy_begin begin = {.pages = 123456}, got_begin;
	struct protocol_postcopy_done done = {.pages_pushed = 10,
					      .pages_fetched = 20,
					      .faults = 30,
					      .stall_us = 40},
				      got_done;
	const void *payload;
	size_t len, plen;

	(void)state;
	len = protocol_postcopy_begin_to_wire(&begin, buf);
	payload = parse_as(len, PROTOCOL_POSTCOPY_BEGIN, &plen);
	assert_int_equal(
		protocol_postcopy_begin_from_wire(payload, plen, &got_begin, why, sizeof(why)), 0);
	assert_int_equal(got_begin.pages, 123456);
	assert_int_equal(
		protocol_postcopy_begin_from_wire(payload, plen + 1, &got_begin, why, sizeof(why)),
		-EPROTO);
	len = protocol_postcopy_done_to_wire(&done, buf);
	payload = parse_as(len, PROTOCOL_POSTCOPY_DONE, &plen);
	assert_int_equal(
		protocol_postcopy_done_from_wire(payload, plen, &got_done, why, sizeof(why)), 0);
	assert_int_equal(got_done.pages_fetched, 20);
	assert_int_equal(got_done.stall_us, 40);
	assert_int_equal(
		protocol_postcopy_done_from_wire(payload, plen - 8, &got_done, why, sizeof(why)),
		-EPROTO);
	len = protocol_postcopy_end_to_wire(buf);
	parse_as(len, PROTOCOL_POSTCOPY_END, &plen);
	assert_int_equal(plen, 0);
}

static void test_hello_ack_accepts_postcopy_flag_only(void **state)
{
	struct protocol_hello_ack ack = {.flags = PROTOCOL_HELLO_POSTCOPY | PROTOCOL_HELLO_KEY},
				  got;
	const void *payload;
	size_t len, plen;

	(void)state;
	len = protocol_hello_ack_to_wire(&ack, buf);
	payload = parse_as(len, PROTOCOL_HELLO_ACK, &plen);
	assert_int_equal(protocol_hello_ack_from_wire(payload, plen, &got, why, sizeof(why)), 0);
	assert_int_equal(got.flags, PROTOCOL_HELLO_POSTCOPY | PROTOCOL_HELLO_KEY);
	ack.flags = 1u << 5;
	len = protocol_hello_ack_to_wire(&ack, buf);
	payload = parse_as(len, PROTOCOL_HELLO_ACK, &plen);
	assert_int_equal(protocol_hello_ack_from_wire(payload, plen, &got, why, sizeof(why)),
			 -EPROTO);
}

static void test_pull_measure_round_trips_and_refuses_inconsistent_one(void **state)
{
	struct protocol_pull in = {.flags = PROTOCOL_PULL_MEASURED,
				   .pull_us = 180,
				   .pull_bytes = 32768,
				   .pulls = 5},
			     out;
	const void *payload;
	size_t len, plen;

	(void)state;
	len = protocol_pull_to_wire(PROTOCOL_PULL_REPORT, &in, buf);
	payload = parse_as(len, PROTOCOL_PULL_REPORT, &plen);
	assert_int_equal(protocol_pull_from_wire(payload, plen, &out, why, sizeof(why)), 0);
	assert_int_equal(out.flags, PROTOCOL_PULL_MEASURED);
	assert_int_equal(out.pull_us, 180);
	assert_int_equal(out.pull_bytes, 32768);
	assert_int_equal(out.pulls, 5);
	/* nothing measured: valid */
	len = protocol_pull_to_wire(PROTOCOL_REGION_ACK, &(struct protocol_pull){0}, buf);
	payload = parse_as(len, PROTOCOL_REGION_ACK, &plen);
	assert_int_equal(protocol_pull_from_wire(payload, plen, &out, why, sizeof(why)), 0);
	assert_int_equal(out.flags, 0);
	/* a length that is not the struct's */
	assert_int_equal(protocol_pull_from_wire(payload, plen - 1, &out, why, sizeof(why)),
			 -EPROTO);
	/* measured over no pulls, or both measured and failed, or a flag nobody defined */
	in.pulls = 0;
	len = protocol_pull_to_wire(PROTOCOL_REGION_ACK, &in, buf);
	payload = parse_as(len, PROTOCOL_REGION_ACK, &plen);
	assert_int_equal(protocol_pull_from_wire(payload, plen, &out, why, sizeof(why)), -EPROTO);
	assert_non_null(strstr(why, "pull"));
	in.pulls = 5;
	in.flags = PROTOCOL_PULL_MEASURED | PROTOCOL_PULL_FAILED;
	len = protocol_pull_to_wire(PROTOCOL_REGION_ACK, &in, buf);
	payload = parse_as(len, PROTOCOL_REGION_ACK, &plen);
	assert_int_equal(protocol_pull_from_wire(payload, plen, &out, why, sizeof(why)), -EPROTO);
	in.flags = 1u << 7;
	len = protocol_pull_to_wire(PROTOCOL_REGION_ACK, &in, buf);
	payload = parse_as(len, PROTOCOL_REGION_ACK, &plen);
	assert_int_equal(protocol_pull_from_wire(payload, plen, &out, why, sizeof(why)), -EPROTO);
	assert_non_null(strstr(why, "flags"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_page_bitmap_round_trips_and_checks_length),
		cmocka_unit_test(test_postcopy_ready_round_trips_and_checks_count),
		cmocka_unit_test(test_postcopy_begin_done_end_round_trip),
		cmocka_unit_test(test_hello_ack_accepts_postcopy_flag_only),
		cmocka_unit_test(test_pull_measure_round_trips_and_refuses_inconsistent_one),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
