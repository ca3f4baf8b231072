/* SPDX-License-Identifier: MIT */
/* The engine's control messages: every encoder round-trips through its decoder, and the
 * decoders refuse messages whose header, lengths, counts or fields do not add up. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <endian.h>
#include <errno.h>
#include <string.h>

#include "engine/protocol.h"

static unsigned char buf[TRANSPORT_CTRL_MAX];
static char why[256];

/* Parse buf[0..len) as a message of type; return its payload. */
static const void *parse_as(size_t len, int type, size_t *payload_len)
{
	const void *payload;

	assert_int_equal(protocol_parse(buf, len, &payload, payload_len, why, sizeof(why)), type);
	return payload;
}

static void test_protocol_messages_round_trip(void **state)
{
	struct protocol_hello hello = {.protocol_version = PROTOCOL_VERSION,
				       .method = 0,
				       .region_count = 3,
				       .flags = PROTOCOL_HELLO_KEY};
	struct protocol_region regions[2] = {{.id = 4, .page_shift = 12, .length = 1 << 20},
					     {.id = 9, .page_shift = 21, .length = 4 << 21}};
	struct protocol_region got_regions[PROTOCOL_REGIONS_MAX];
	const uint64_t hashes[3] = {1, 0xffffffffffffffffull, 42};
	struct protocol_verify_hashes vh;
	struct protocol_hello got_hello;
	struct protocol_abort abort_msg;
	const void *payload;
	size_t len, plen, count;

	(void)state;
	memset(hello.nonce, 0x3c, sizeof(hello.nonce));
	len = protocol_hello_to_wire(&hello, buf);
	payload = parse_as(len, PROTOCOL_HELLO, &plen);
	assert_int_equal(protocol_hello_from_wire(payload, plen, &got_hello, why, sizeof(why)), 0);
	assert_int_equal(got_hello.region_count, 3);
	assert_memory_equal(got_hello.nonce, hello.nonce, sizeof(hello.nonce));

	len = protocol_region_table_to_wire(regions, 2, buf);
	payload = parse_as(len, PROTOCOL_REGION_TABLE, &plen);
	assert_int_equal(protocol_region_table_from_wire(payload, plen, got_regions, &count, why,
							 sizeof(why)),
			 0);
	assert_int_equal(count, 2);
	assert_int_equal(got_regions[1].id, 9);
	assert_int_equal(got_regions[1].length, 4 << 21);

	len = protocol_verify_hashes_to_wire(5, 100, hashes, 3, buf);
	payload = parse_as(len, PROTOCOL_VERIFY_HASHES, &plen);
	assert_int_equal(protocol_verify_hashes_from_wire(payload, plen, &vh, why, sizeof(why)), 0);
	assert_int_equal(vh.first_page, 100);
	assert_int_equal(protocol_hash_at(&vh, 1), hashes[1]);

	{
		struct protocol_round_end end = {.round = 3, .pages = 1ull << 40}, got_end;

		len = protocol_round_end_to_wire(PROTOCOL_ROUND_ACK, &end, buf);
		payload = parse_as(len, PROTOCOL_ROUND_ACK, &plen);
		assert_int_equal(
			protocol_round_end_from_wire(payload, plen, &got_end, why, sizeof(why)), 0);
		assert_int_equal(got_end.round, 3);
		assert_int_equal(got_end.pages, 1ull << 40);
		assert_int_equal(
			protocol_round_end_from_wire(payload, plen - 1, &got_end, why, sizeof(why)),
			-EPROTO);
	}

	len = protocol_abort_to_wire(-ENOENT, "region 7\nunknown", buf);
	payload = parse_as(len, PROTOCOL_ABORT, &plen);
	assert_int_equal(protocol_abort_from_wire(payload, plen, &abort_msg, why, sizeof(why)), 0);
	assert_int_equal(abort_msg.code, -ENOENT);
	/* Control characters never reach a log line. */
	assert_string_equal(abort_msg.reason, "region 7?unknown");
}

static void test_protocol_parse_rejects_bad_headers(void **state)
{
	struct protocol_hdr hdr;
	const void *payload;
	size_t len, plen;

	(void)state;
	len = protocol_pull_to_wire(PROTOCOL_REGION_ACK, &(struct protocol_pull){0}, buf);
	assert_int_equal(protocol_parse(buf, len - 1, &payload, &plen, why, sizeof(why)), -EPROTO);

	memcpy(&hdr, buf, sizeof(hdr));
	hdr.magic ^= 1;
	memcpy(buf, &hdr, sizeof(hdr));
	assert_int_equal(protocol_parse(buf, len, &payload, &plen, why, sizeof(why)), -EPROTO);
	assert_non_null(strstr(why, "magic"));

	len = protocol_pull_to_wire(PROTOCOL_REGION_ACK, &(struct protocol_pull){0}, buf);
	memcpy(&hdr, buf, sizeof(hdr));
	hdr.version = htole16(PROTOCOL_VERSION + 1);
	memcpy(buf, &hdr, sizeof(hdr));
	assert_int_equal(protocol_parse(buf, len, &payload, &plen, why, sizeof(why)), -EPROTO);
	assert_non_null(strstr(why, "version"));

	len = protocol_pull_to_wire(PROTOCOL_REGION_ACK, &(struct protocol_pull){0}, buf);
	memcpy(&hdr, buf, sizeof(hdr));
	hdr.type = htole16(PROTOCOL_TYPE_MAX + 1);
	memcpy(buf, &hdr, sizeof(hdr));
	assert_int_equal(protocol_parse(buf, len, &payload, &plen, why, sizeof(why)), -EPROTO);
	assert_non_null(strstr(why, "type"));

	len = protocol_pull_to_wire(PROTOCOL_REGION_ACK, &(struct protocol_pull){0}, buf);
	memcpy(&hdr, buf, sizeof(hdr));
	hdr.length = htole32((uint32_t)len + 8);
	memcpy(buf, &hdr, sizeof(hdr));
	assert_int_equal(protocol_parse(buf, len + 8, &payload, &plen, why, sizeof(why)),
			 0 + PROTOCOL_REGION_ACK);
	assert_int_equal(protocol_parse(buf, len, &payload, &plen, why, sizeof(why)), -EPROTO);
	assert_non_null(strstr(why, "length"));
}

static void test_protocol_region_table_rejects_bad_entries(void **state)
{
	struct protocol_region table[PROTOCOL_REGIONS_MAX];
	struct protocol_region r[2] = {{.id = 1, .page_shift = 12, .length = 8192},
				       {.id = 1, .page_shift = 12, .length = 4096}};
	const void *payload;
	size_t len, plen, count;

	(void)state;
	len = protocol_region_table_to_wire(r, 2, buf);
	payload = parse_as(len, PROTOCOL_REGION_TABLE, &plen);
	assert_int_equal(
		protocol_region_table_from_wire(payload, plen, table, &count, why, sizeof(why)),
		-EPROTO);
	assert_non_null(strstr(why, "twice"));

	r[1].id = 2;
	r[1].length = 4097;
	len = protocol_region_table_to_wire(r, 2, buf);
	payload = parse_as(len, PROTOCOL_REGION_TABLE, &plen);
	assert_int_equal(
		protocol_region_table_from_wire(payload, plen, table, &count, why, sizeof(why)),
		-EPROTO);
	assert_non_null(strstr(why, "region 2 length"));

	r[1].length = 4096;
	r[1].page_shift = 31;
	len = protocol_region_table_to_wire(r, 2, buf);
	payload = parse_as(len, PROTOCOL_REGION_TABLE, &plen);
	assert_int_equal(
		protocol_region_table_from_wire(payload, plen, table, &count, why, sizeof(why)),
		-EPROTO);
	assert_non_null(strstr(why, "page shift"));

	/* A count that claims more entries than the message holds. */
	r[1].page_shift = 12;
	len = protocol_region_table_to_wire(r, 2, buf);
	payload = parse_as(len, PROTOCOL_REGION_TABLE, &plen);
	assert_int_equal(protocol_region_table_from_wire(payload, plen - 16, table, &count, why,
							 sizeof(why)),
			 -EPROTO);
	assert_int_equal(
		protocol_region_table_from_wire(payload, 0, table, &count, why, sizeof(why)),
		-EPROTO);
}

static void test_protocol_decoders_reject_inconsistent_fields(void **state)
{
	struct protocol_device_state ds = {
		.offset = 0, .length = 10, .last = 0, .data = "0123456789"};
	struct protocol_resume resume = {.pages_verified = 1, .pages_mismatched = 2};
	struct protocol_resumed resumed = {.status = 5};
	const uint64_t hashes[2] = {1, 2};
	struct protocol_verify_hashes vh;
	struct protocol_device_state got_ds;
	unsigned char patched[64];
	struct protocol_resume got_resume;
	struct protocol_resumed got_resumed;
	struct protocol_abort abort_msg;
	const void *payload;
	size_t len, plen;

	(void)state;
	len = protocol_device_state_to_wire(&ds, buf);
	payload = parse_as(len, PROTOCOL_DEVICE_STATE, &plen);
	assert_int_equal(
		protocol_device_state_from_wire(payload, plen - 1, &got_ds, why, sizeof(why)),
		-EPROTO);
	assert_int_equal(protocol_device_state_from_wire(payload, plen, &got_ds, why, sizeof(why)),
			 0);
	assert_memory_equal(got_ds.data, "0123456789", 10);
	assert_int_equal(got_ds.last, 0);

	/* The last message carries the digest, and nothing but it. */
	ds = (struct protocol_device_state){
		.offset = 10, .last = 1, .digest = 0x0123456789abcdefull};
	len = protocol_device_state_to_wire(&ds, buf);
	payload = parse_as(len, PROTOCOL_DEVICE_STATE, &plen);
	assert_int_equal(protocol_device_state_from_wire(payload, plen, &got_ds, why, sizeof(why)),
			 0);
	assert_int_equal(got_ds.last, 1);
	assert_int_equal(got_ds.length, 0);
	assert_int_equal(got_ds.offset, 10);
	assert_int_equal(got_ds.digest, 0x0123456789abcdefull);
	memcpy(patched, payload, plen);
	patched[8] = 0; /* its length field says 0: no digest */
	assert_int_equal(
		protocol_device_state_from_wire(patched, plen - 8, &got_ds, why, sizeof(why)),
		-EPROTO);
	assert_non_null(strstr(why, "digest"));

	len = protocol_verify_hashes_to_wire(1, 0, hashes, 2, buf);
	payload = parse_as(len, PROTOCOL_VERIFY_HASHES, &plen);
	assert_int_equal(protocol_verify_hashes_from_wire(payload, plen - 8, &vh, why, sizeof(why)),
			 -EPROTO);

	len = protocol_resume_to_wire(&resume, buf);
	payload = parse_as(len, PROTOCOL_RESUME, &plen);
	assert_int_equal(protocol_resume_from_wire(payload, plen, &got_resume, why, sizeof(why)),
			 -EPROTO);

	len = protocol_resumed_to_wire(&resumed, buf);
	payload = parse_as(len, PROTOCOL_RESUMED, &plen);
	assert_int_equal(protocol_resumed_from_wire(payload, plen, &got_resumed, why, sizeof(why)),
			 -EPROTO);

	len = protocol_abort_to_wire(7, "positive code", buf);
	payload = parse_as(len, PROTOCOL_ABORT, &plen);
	assert_int_equal(protocol_abort_from_wire(payload, plen, &abort_msg, why, sizeof(why)),
			 -EPROTO);
}

static void test_protocol_mac_depends_on_key_and_direction(void **state)
{
	const uint8_t key_a[] = "shared secret", key_b[] = "other secret";
	uint8_t n1[PROTOCOL_NONCE_LEN], n2[PROTOCOL_NONCE_LEN];
	uint8_t m1[PROTOCOL_MAC_LEN], m2[PROTOCOL_MAC_LEN], m3[PROTOCOL_MAC_LEN];

	(void)state;
	assert_int_equal(protocol_nonce(n1), 0);
	assert_int_equal(protocol_nonce(n2), 0);
	assert_memory_not_equal(n1, n2, sizeof(n1));
	assert_int_equal(protocol_mac(key_a, sizeof(key_a), "rmig-dest", n1, n2, m1), 0);
	assert_int_equal(protocol_mac(key_a, sizeof(key_a), "rmig-dest", n1, n2, m2), 0);
	assert_true(protocol_mac_equal(m1, m2));
	assert_int_equal(protocol_mac(key_b, sizeof(key_b), "rmig-dest", n1, n2, m3), 0);
	assert_false(protocol_mac_equal(m1, m3));
	assert_int_equal(protocol_mac(key_a, sizeof(key_a), "rmig-source", n1, n2, m3), 0);
	assert_false(protocol_mac_equal(m1, m3));
}

/* Decode whatever the payload claims to be; only 0 or -EPROTO may come back. */
static void decode_any(int type, const void *payload, size_t len)
{
	static struct protocol_region regions[PROTOCOL_REGIONS_MAX];
	union {
		struct protocol_hello hello;
		struct protocol_hello_ack hello_ack;
		struct protocol_round round;
		struct protocol_round_end round_end;
		struct protocol_device_state device;
		struct protocol_verify_req verify_req;
		struct protocol_verify_hashes verify_hashes;
		struct protocol_verify_runs verify_runs;
		struct protocol_resume resume;
		struct protocol_resumed resumed;
		struct protocol_abort abort_msg;
	} m;
	uint8_t mac[PROTOCOL_MAC_LEN];
	size_t count;
	int ret = 0;

	switch (type) {
	case PROTOCOL_HELLO:
		ret = protocol_hello_from_wire(payload, len, &m.hello, why, sizeof(why));
		break;
	case PROTOCOL_HELLO_ACK:
		ret = protocol_hello_ack_from_wire(payload, len, &m.hello_ack, why, sizeof(why));
		break;
	case PROTOCOL_AUTH:
		ret = protocol_auth_from_wire(payload, len, mac, why, sizeof(why));
		break;
	case PROTOCOL_REGION_TABLE:
		ret = protocol_region_table_from_wire(payload, len, regions, &count, why,
						      sizeof(why));
		break;
	case PROTOCOL_ROUND:
		ret = protocol_round_from_wire(payload, len, &m.round, why, sizeof(why));
		break;
	case PROTOCOL_ROUND_END:
	case PROTOCOL_ROUND_ACK:
		ret = protocol_round_end_from_wire(payload, len, &m.round_end, why, sizeof(why));
		break;
	case PROTOCOL_DEVICE_STATE:
		ret = protocol_device_state_from_wire(payload, len, &m.device, why, sizeof(why));
		break;
	case PROTOCOL_VERIFY_REQ:
		ret = protocol_verify_req_from_wire(payload, len, &m.verify_req, why, sizeof(why));
		break;
	case PROTOCOL_VERIFY_HASHES:
		ret = protocol_verify_hashes_from_wire(payload, len, &m.verify_hashes, why,
						       sizeof(why));
		if (!ret && m.verify_hashes.count)
			(void)protocol_hash_at(&m.verify_hashes, m.verify_hashes.count - 1);
		break;
	case PROTOCOL_VERIFY_RUNS:
		ret = protocol_verify_runs_from_wire(payload, len, &m.verify_runs, why,
						     sizeof(why));
		if (!ret) {
			struct protocol_page_run last =
				protocol_verify_run_at(&m.verify_runs, m.verify_runs.count - 1);

			assert_true(m.verify_runs.pages <= PROTOCOL_HASHES_MAX);
			assert_true(last.npages > 0);
		}
		break;
	case PROTOCOL_RESUME:
		ret = protocol_resume_from_wire(payload, len, &m.resume, why, sizeof(why));
		break;
	case PROTOCOL_RESUMED:
		ret = protocol_resumed_from_wire(payload, len, &m.resumed, why, sizeof(why));
		break;
	case PROTOCOL_ABORT:
		ret = protocol_abort_from_wire(payload, len, &m.abort_msg, why, sizeof(why));
		if (!ret)
			assert_true(strlen(m.abort_msg.reason) <= PROTOCOL_REASON_MAX);
		break;
	default:
		break;
	}
	assert_true(ret == 0 || ret == -EPROTO);
}

static void test_protocol_decoders_survive_random_bytes(void **state)
{
	uint64_t seed = 0x243f6a8885a308d3ull;

	(void)state;
	for (int i = 0; i < 200000; i++) {
		struct protocol_hdr hdr;
		const void *payload;
		size_t len, plen;
		int type;

		seed ^= seed << 13;
		seed ^= seed >> 7;
		seed ^= seed << 17;
		len = sizeof(hdr) + (size_t)(seed % 200);
		for (size_t b = 0; b < len; b++)
			buf[b] = (unsigned char)((seed >> (b % 56)) + b * 131);
		/* A valid header over random bodies, so the decoders are what gets exercised. */
		hdr = (struct protocol_hdr){
			.magic = htole32(PROTOCOL_MAGIC),
			.version = htole16(PROTOCOL_VERSION),
			.type = htole16((uint16_t)(1 + seed % PROTOCOL_TYPE_MAX)),
			.length = htole32((uint32_t)len),
		};
		memcpy(buf, &hdr, sizeof(hdr));
		type = protocol_parse(buf, len, &payload, &plen, why, sizeof(why));
		assert_true(type > 0);
		decode_any(type, payload, plen);
	}
}

/* VERIFY_RUNS: the runs come back as sent; a run that is empty, overlaps or precedes the one
 * before, a reserved field set, a count that does not match the bytes, or more pages than one
 * answer holds are refused. */
static void test_protocol_verify_runs(void **state)
{
	static struct protocol_page_run many[PROTOCOL_VERIFY_RUNS_MAX + 1];
	const struct protocol_page_run runs[3] = {{.first_page = 7, .npages = 16},
						  {.first_page = 23, .npages = 1},
						  {.first_page = 1u << 20, .npages = 300}};
	struct protocol_verify_runs m;
	unsigned char patched[256];
	const void *payload;
	size_t len, plen;

	(void)state;
	len = protocol_verify_runs_to_wire(9, runs, 3, buf);
	payload = parse_as(len, PROTOCOL_VERIFY_RUNS, &plen);
	assert_int_equal(plen, 8 + 3 * 16);
	assert_int_equal(protocol_verify_runs_from_wire(payload, plen, &m, why, sizeof(why)), 0);
	assert_int_equal(m.region_id, 9);
	assert_int_equal(m.count, 3);
	assert_int_equal(m.pages, 16 + 1 + 300);
	for (uint32_t i = 0; i < 3; i++) {
		struct protocol_page_run got = protocol_verify_run_at(&m, i);

		assert_int_equal(got.first_page, runs[i].first_page);
		assert_int_equal(got.npages, runs[i].npages);
	}
	assert_int_equal(protocol_verify_runs_from_wire(payload, plen - 1, &m, why, sizeof(why)),
			 -EPROTO);
	assert_int_equal(protocol_verify_runs_from_wire(payload, 4, &m, why, sizeof(why)), -EPROTO);

	/* Second run starting inside the first (first_page 22 < 7 + 16). */
	memcpy(patched, payload, plen);
	patched[8 + 16] = 22;
	assert_int_equal(protocol_verify_runs_from_wire(patched, plen, &m, why, sizeof(why)),
			 -EPROTO);
	assert_non_null(strstr(why, "run 1"));
	/* Second run empty. */
	memcpy(patched, payload, plen);
	memset(patched + 8 + 16 + 8, 0, 4);
	assert_int_equal(protocol_verify_runs_from_wire(patched, plen, &m, why, sizeof(why)),
			 -EPROTO);
	/* Reserved field of the third run set. */
	memcpy(patched, payload, plen);
	patched[8 + 32 + 12] = 1;
	assert_int_equal(protocol_verify_runs_from_wire(patched, plen, &m, why, sizeof(why)),
			 -EPROTO);
	/* No runs at all. */
	len = protocol_verify_runs_to_wire(9, runs, 0, buf);
	payload = parse_as(len, PROTOCOL_VERIFY_RUNS, &plen);
	assert_int_equal(protocol_verify_runs_from_wire(payload, plen, &m, why, sizeof(why)),
			 -EPROTO);
	/* A run that would wrap past the last page number. */
	many[0] = (struct protocol_page_run){.first_page = UINT64_MAX - 2, .npages = 8};
	len = protocol_verify_runs_to_wire(9, many, 1, buf);
	payload = parse_as(len, PROTOCOL_VERIFY_RUNS, &plen);
	assert_int_equal(protocol_verify_runs_from_wire(payload, plen, &m, why, sizeof(why)),
			 -EPROTO);
	/* As many runs as fit, of 3 pages each, hold more pages than one answer: refused. */
	for (uint32_t i = 0; i < PROTOCOL_VERIFY_RUNS_MAX; i++)
		many[i] = (struct protocol_page_run){.first_page = 4ull * i, .npages = 3};
	len = protocol_verify_runs_to_wire(9, many, PROTOCOL_VERIFY_RUNS_MAX, buf);
	payload = parse_as(len, PROTOCOL_VERIFY_RUNS, &plen);
	assert_int_equal(protocol_verify_runs_from_wire(payload, plen, &m, why, sizeof(why)),
			 -EPROTO);
	assert_non_null(strstr(why, "one answer"));
	/* Of 1 page each they fit. */
	for (uint32_t i = 0; i < PROTOCOL_VERIFY_RUNS_MAX; i++)
		many[i].npages = 1;
	len = protocol_verify_runs_to_wire(9, many, PROTOCOL_VERIFY_RUNS_MAX, buf);
	payload = parse_as(len, PROTOCOL_VERIFY_RUNS, &plen);
	assert_int_equal(protocol_verify_runs_from_wire(payload, plen, &m, why, sizeof(why)), 0);
	assert_int_equal(m.pages, PROTOCOL_VERIFY_RUNS_MAX);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_protocol_messages_round_trip),
		cmocka_unit_test(test_protocol_parse_rejects_bad_headers),
		cmocka_unit_test(test_protocol_region_table_rejects_bad_entries),
		cmocka_unit_test(test_protocol_decoders_reject_inconsistent_fields),
		cmocka_unit_test(test_protocol_verify_runs),
		cmocka_unit_test(test_protocol_mac_depends_on_key_and_direction),
		cmocka_unit_test(test_protocol_decoders_survive_random_bytes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
