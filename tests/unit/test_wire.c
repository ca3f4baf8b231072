/* SPDX-License-Identifier: MIT */
/* tests/unit/test_wire.c - the wire format: every struct survives a round trip, and every
 * parser refuses each kind of malformed input with -EPROTO and a message naming the field. */
#include <endian.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "transport/wire.h"

static char why[TRANSPORT_ERROR_MAX];

static void assert_rejected(int ret, const char *field)
{
	assert_int_equal(ret, -EPROTO);
	if (!strstr(why, field))
		fail_msg("expected the rejection to name '%s', got '%s'", field, why);
	why[0] = '\0';
}

/* ---- header ---- */

static void test_wire_hdr_round_trips(void **state)
{
	struct wire_hdr raw;
	struct wire_hdr_host hdr;
	const unsigned char *bytes = (const unsigned char *)&raw;

	(void)state;
	wire_hdr_to_wire(&raw, WIRE_COMMIT, 1234, 56);
	/* Little-endian on the wire whatever the host. */
	assert_int_equal(bytes[0], WIRE_MAGIC & 0xff);
	assert_int_equal(bytes[3], WIRE_MAGIC >> 24);
	assert_int_equal(bytes[8], 1234 & 0xff);
	assert_int_equal(bytes[9], 1234 >> 8);
	assert_int_equal(wire_hdr_from_wire(&raw, sizeof(raw), 1234, &hdr, why, sizeof(why)), 0);
	assert_int_equal(hdr.type, WIRE_COMMIT);
	assert_int_equal(hdr.length, 1234);
	assert_int_equal(hdr.credits, 56);
}

static void test_wire_hdr_rejects_short_buffer(void **state)
{
	struct wire_hdr raw;
	struct wire_hdr_host hdr;

	(void)state;
	wire_hdr_to_wire(&raw, WIRE_CTRL, 0, 0);
	assert_rejected(wire_hdr_from_wire(&raw, sizeof(raw) - 1, 100, &hdr, why, sizeof(why)),
			"header");
}

static void test_wire_hdr_rejects_bad_magic(void **state)
{
	struct wire_hdr raw;
	struct wire_hdr_host hdr;

	(void)state;
	wire_hdr_to_wire(&raw, WIRE_CTRL, 0, 0);
	raw.magic = htole32(0x12345678);
	assert_rejected(wire_hdr_from_wire(&raw, sizeof(raw), 100, &hdr, why, sizeof(why)),
			"header.magic");
}

static void test_wire_hdr_rejects_other_version(void **state)
{
	struct wire_hdr raw;
	struct wire_hdr_host hdr;

	(void)state;
	wire_hdr_to_wire(&raw, WIRE_CTRL, 0, 0);
	raw.version = htole16(WIRE_VERSION + 1);
	assert_rejected(wire_hdr_from_wire(&raw, sizeof(raw), 100, &hdr, why, sizeof(why)),
			"header.version");
}

static void test_wire_hdr_rejects_unknown_types(void **state)
{
	struct wire_hdr raw;
	struct wire_hdr_host hdr;

	(void)state;
	wire_hdr_to_wire(&raw, WIRE_CTRL, 0, 0);
	raw.type = htole16(0);
	assert_rejected(wire_hdr_from_wire(&raw, sizeof(raw), 100, &hdr, why, sizeof(why)),
			"header.type");
	raw.type = htole16(WIRE_TYPE_MAX + 1);
	assert_rejected(wire_hdr_from_wire(&raw, sizeof(raw), 100, &hdr, why, sizeof(why)),
			"header.type");
	assert_string_equal(wire_type_name(WIRE_TYPE_MAX + 1), "unknown");
	assert_string_equal(wire_type_name(0), "unknown");
	assert_string_equal(wire_type_name(WIRE_READ_REQ), "read-req");
}

static void test_wire_hdr_rejects_length_above_limit(void **state)
{
	struct wire_hdr raw;
	struct wire_hdr_host hdr;

	(void)state;
	wire_hdr_to_wire(&raw, WIRE_DATA, 101, 0);
	assert_rejected(wire_hdr_from_wire(&raw, sizeof(raw), 100, &hdr, why, sizeof(why)),
			"header.length");
	wire_hdr_to_wire(&raw, WIRE_DATA, 100, 0);
	assert_int_equal(wire_hdr_from_wire(&raw, sizeof(raw), 100, &hdr, why, sizeof(why)), 0);
}

/* ---- hello ---- */

static void test_wire_hello_round_trips(void **state)
{
	struct wire_hello raw, hello;

	(void)state;
	wire_hello_to_wire(&raw, 3, TRANSPORT_CTRL_MAX, 64, 0x1122334455667788ull);
	assert_int_equal(wire_hello_from_wire(&raw, sizeof(raw), &hello, why, sizeof(why)), 0);
	assert_int_equal(hello.protocol_version, TRANSPORT_PROTOCOL_VERSION);
	assert_int_equal(hello.streams, 3);
	assert_int_equal(hello.max_ctrl, TRANSPORT_CTRL_MAX);
	assert_int_equal(hello.recv_depth, 64);
	assert_int_equal(hello.session_tag, 0x1122334455667788ull);
}

static void test_wire_hello_rejects_each_bad_field(void **state)
{
	struct wire_hello raw, hello;

	(void)state;
	wire_hello_to_wire(&raw, 1, TRANSPORT_CTRL_MAX, 0, 1);
	assert_rejected(wire_hello_from_wire(&raw, sizeof(raw) - 1, &hello, why, sizeof(why)),
			"hello");
	raw.protocol_version = htole32(TRANSPORT_PROTOCOL_VERSION + 1);
	assert_rejected(wire_hello_from_wire(&raw, sizeof(raw), &hello, why, sizeof(why)),
			"hello.protocol_version");
	wire_hello_to_wire(&raw, 0, TRANSPORT_CTRL_MAX, 0, 1);
	assert_rejected(wire_hello_from_wire(&raw, sizeof(raw), &hello, why, sizeof(why)),
			"hello.streams");
	wire_hello_to_wire(&raw, WIRE_STREAMS_MAX + 1, TRANSPORT_CTRL_MAX, 0, 1);
	assert_rejected(wire_hello_from_wire(&raw, sizeof(raw), &hello, why, sizeof(why)),
			"hello.streams");
	wire_hello_to_wire(&raw, 1, 1023, 0, 1);
	assert_rejected(wire_hello_from_wire(&raw, sizeof(raw), &hello, why, sizeof(why)),
			"hello.max_ctrl");
}

static void test_wire_hello_key_round_trips(void **state)
{
	struct wire_hello_key raw, key;
	uint8_t nonce[WIRE_HELLO_KEY_NONCE_LEN], mac[WIRE_HELLO_KEY_MAC_LEN];

	(void)state;
	for (size_t i = 0; i < sizeof(nonce); i++) {
		nonce[i] = (uint8_t)(i + 1);
		mac[i] = (uint8_t)(0xf0 ^ i);
	}
	wire_hello_key_to_wire(&raw, WIRE_HELLO_KEY_ANSWER, nonce, mac);
	assert_int_equal(wire_hello_key_from_wire(&raw, sizeof(raw), &key, why, sizeof(why)), 0);
	assert_int_equal(key.step, WIRE_HELLO_KEY_ANSWER);
	assert_int_equal(key.algorithm, WIRE_HELLO_KEY_HMAC_SHA256);
	assert_memory_equal(key.nonce, nonce, sizeof(nonce));
	assert_memory_equal(key.mac, mac, sizeof(mac));
	/* NULL nonce and mac go out as zeroes */
	wire_hello_key_to_wire(&raw, WIRE_HELLO_KEY_CHALLENGE, NULL, NULL);
	assert_int_equal(wire_hello_key_from_wire(&raw, sizeof(raw), &key, why, sizeof(why)), 0);
	assert_int_equal(key.step, WIRE_HELLO_KEY_CHALLENGE);
	memset(nonce, 0, sizeof(nonce));
	assert_memory_equal(key.nonce, nonce, sizeof(nonce));
	assert_memory_equal(key.mac, nonce, sizeof(nonce));
}

static void test_wire_hello_key_rejects_each_bad_field(void **state)
{
	struct wire_hello_key raw, key;

	(void)state;
	wire_hello_key_to_wire(&raw, WIRE_HELLO_KEY_PROOF, NULL, NULL);
	assert_rejected(wire_hello_key_from_wire(&raw, sizeof(raw) - 1, &key, why, sizeof(why)),
			"hello.key");
	raw.algorithm = htole32(WIRE_HELLO_KEY_HMAC_SHA256 + 1);
	assert_rejected(wire_hello_key_from_wire(&raw, sizeof(raw), &key, why, sizeof(why)),
			"hello.key.algorithm");
	wire_hello_key_to_wire(&raw, 0, NULL, NULL);
	assert_rejected(wire_hello_key_from_wire(&raw, sizeof(raw), &key, why, sizeof(why)),
			"hello.key.step");
	wire_hello_key_to_wire(&raw, (enum wire_hello_key_step)(WIRE_HELLO_KEY_PROOF + 1), NULL,
			       NULL);
	assert_rejected(wire_hello_key_from_wire(&raw, sizeof(raw), &key, why, sizeof(why)),
			"hello.key.step");
}

/* The key part of an rdma connect request: a plain hello is step 0 and nothing else. */
static void test_wire_rdma_hello_key_round_trips_and_rejects_each_bad_field(void **state)
{
	struct wire_rdma_hello_key raw, key;
	uint8_t value[WIRE_RDMA_KEY_VALUE_LEN];

	(void)state;
	for (size_t i = 0; i < sizeof(value); i++)
		value[i] = (uint8_t)(i + 7);
	wire_rdma_hello_key_to_wire(&raw, WIRE_HELLO_KEY_PROOF, value);
	assert_int_equal(wire_rdma_hello_key_from_wire(&raw, sizeof(raw), &key, why, sizeof(why)),
			 0);
	assert_int_equal(key.step, WIRE_HELLO_KEY_PROOF);
	assert_int_equal(key.algorithm, WIRE_HELLO_KEY_HMAC_SHA256);
	assert_memory_equal(key.value, value, sizeof(value));
	wire_rdma_hello_key_to_wire(&raw, 0, NULL);
	assert_int_equal(wire_rdma_hello_key_from_wire(&raw, sizeof(raw), &key, why, sizeof(why)),
			 0);
	assert_int_equal(key.step, 0);
	assert_int_equal(key.algorithm, 0);

	assert_rejected(
		wire_rdma_hello_key_from_wire(&raw, sizeof(raw) - 1, &key, why, sizeof(why)),
		"hello.key");
	raw.value[3] = 1; /* step 0 with something after it */
	assert_rejected(wire_rdma_hello_key_from_wire(&raw, sizeof(raw), &key, why, sizeof(why)),
			"hello.key");
	wire_rdma_hello_key_to_wire(&raw, WIRE_HELLO_KEY_ANSWER, value); /* not in a request */
	assert_rejected(wire_rdma_hello_key_from_wire(&raw, sizeof(raw), &key, why, sizeof(why)),
			"hello.key.step");
	wire_rdma_hello_key_to_wire(&raw, WIRE_HELLO_KEY_CHALLENGE, value);
	raw.algorithm = htole32(WIRE_HELLO_KEY_HMAC_SHA256 + 1);
	assert_rejected(wire_rdma_hello_key_from_wire(&raw, sizeof(raw), &key, why, sizeof(why)),
			"hello.key.algorithm");
}

/* ---- commit ---- */

static const struct transport_run sample_runs[] = {
	{.region_id = 1, .flags = 0, .offset = 0, .length = 4096},
	{.region_id = 2, .flags = TRANSPORT_RUN_ZERO, .offset = 1ull << 40, .length = 1ull << 21},
	{.region_id = 0xffffffffu, .flags = 0, .offset = 17, .length = 1},
};

static int encode_sample_commit(unsigned char *buf, size_t len)
{
	struct wire_commit_host commit = {.batch_id = 99, .stream_count = 2, .nruns = 3};

	commit.stream_bytes[0] = 1000;
	commit.stream_bytes[1] = 2000;
	return wire_commit_to_wire(buf, len, &commit, sample_runs);
}

static void test_wire_commit_round_trips(void **state)
{
	unsigned char buf[sizeof(struct wire_commit) + 3 * sizeof(struct wire_run)];
	struct wire_commit_host commit;
	struct transport_run runs[3];
	int len;

	(void)state;
	len = encode_sample_commit(buf, sizeof(buf));
	assert_int_equal(len, sizeof(buf));
	assert_int_equal(
		wire_commit_from_wire(buf, (size_t)len, &commit, runs, 3, why, sizeof(why)), 0);
	assert_int_equal(commit.batch_id, 99);
	assert_int_equal(commit.nruns, 3);
	assert_int_equal(commit.stream_count, 2);
	assert_int_equal(commit.stream_bytes[0], 1000);
	assert_int_equal(commit.stream_bytes[1], 2000);
	assert_int_equal(commit.stream_bytes[2], 0);
	assert_memory_equal(runs, sample_runs, sizeof(runs));
}

static void test_wire_commit_encoder_refuses_small_buffer_and_too_many_runs(void **state)
{
	unsigned char buf[sizeof(struct wire_commit) + 3 * sizeof(struct wire_run)];
	struct wire_commit_host commit = {.nruns = TRANSPORT_BATCH_MAX_RUNS + 1};

	(void)state;
	assert_int_equal(encode_sample_commit(buf, sizeof(buf) - 1), -ENOSPC);
	assert_int_equal(wire_commit_to_wire(buf, sizeof(buf), &commit, sample_runs), -EINVAL);
	commit.nruns = 1;
	commit.stream_count = WIRE_STREAMS_MAX + 1;
	assert_int_equal(wire_commit_to_wire(buf, sizeof(buf), &commit, sample_runs), -EINVAL);
}

static void test_wire_commit_rejects_short_payload(void **state)
{
	unsigned char buf[sizeof(struct wire_commit) + 3 * sizeof(struct wire_run)];
	struct wire_commit_host commit;
	struct transport_run runs[3];

	(void)state;
	encode_sample_commit(buf, sizeof(buf));
	assert_rejected(wire_commit_from_wire(buf, sizeof(struct wire_commit) - 1, &commit, runs, 3,
					      why, sizeof(why)),
			"commit");
	/* Runs promised but cut off. */
	assert_rejected(
		wire_commit_from_wire(buf, sizeof(buf) - 1, &commit, runs, 3, why, sizeof(why)),
		"commit.nruns");
}

static void test_wire_commit_rejects_more_runs_than_room(void **state)
{
	unsigned char buf[sizeof(struct wire_commit) + 3 * sizeof(struct wire_run)];
	struct wire_commit_host commit;
	struct transport_run runs[3];
	struct wire_commit head;

	(void)state;
	encode_sample_commit(buf, sizeof(buf));
	assert_rejected(wire_commit_from_wire(buf, sizeof(buf), &commit, runs, 2, why, sizeof(why)),
			"commit.nruns");
	memcpy(&head, buf, sizeof(head));
	head.nruns = htole32(UINT32_MAX);
	memcpy(buf, &head, sizeof(head));
	assert_rejected(wire_commit_from_wire(buf, sizeof(buf), &commit, runs, 3, why, sizeof(why)),
			"commit.nruns");
}

static void test_wire_commit_rejects_stream_count_above_limit(void **state)
{
	unsigned char buf[sizeof(struct wire_commit) + 3 * sizeof(struct wire_run)];
	struct wire_commit_host commit;
	struct transport_run runs[3];
	struct wire_commit head;

	(void)state;
	encode_sample_commit(buf, sizeof(buf));
	memcpy(&head, buf, sizeof(head));
	head.stream_count = htole32(WIRE_STREAMS_MAX + 1);
	memcpy(buf, &head, sizeof(head));
	assert_rejected(wire_commit_from_wire(buf, sizeof(buf), &commit, runs, 3, why, sizeof(why)),
			"commit.stream_count");
}

/* Overwrite one field of run i of the sample commit. */
static void corrupt_run(unsigned char *buf, size_t i, size_t field_offset, const void *value,
			size_t value_len)
{
	memcpy(buf + sizeof(struct wire_commit) + i * sizeof(struct wire_run) + field_offset, value,
	       value_len);
}

static void test_wire_commit_rejects_bad_runs(void **state)
{
	unsigned char buf[sizeof(struct wire_commit) + 3 * sizeof(struct wire_run)];
	struct wire_commit_host commit;
	struct transport_run runs[3];
	uint32_t flags = htole32(1u << 5);
	uint64_t zero = 0, huge = htole64(UINT64_MAX - 2);

	(void)state;
	encode_sample_commit(buf, sizeof(buf));
	corrupt_run(buf, 2, offsetof(struct wire_run, flags), &flags, sizeof(flags));
	assert_rejected(wire_commit_from_wire(buf, sizeof(buf), &commit, runs, 3, why, sizeof(why)),
			"commit.runs[2].flags");

	encode_sample_commit(buf, sizeof(buf));
	corrupt_run(buf, 1, offsetof(struct wire_run, length), &zero, sizeof(zero));
	assert_rejected(wire_commit_from_wire(buf, sizeof(buf), &commit, runs, 3, why, sizeof(why)),
			"commit.runs[1].length");

	encode_sample_commit(buf, sizeof(buf));
	corrupt_run(buf, 0, offsetof(struct wire_run, offset), &huge, sizeof(huge));
	assert_rejected(wire_commit_from_wire(buf, sizeof(buf), &commit, runs, 3, why, sizeof(why)),
			"commit.runs[0].offset");
}

/* ---- data ---- */

static void test_wire_data_round_trips_and_rejects_short(void **state)
{
	struct wire_data raw;
	uint32_t region_id;
	uint64_t offset;

	(void)state;
	wire_data_to_wire(&raw, 12, 1ull << 50);
	assert_int_equal(
		wire_data_from_wire(&raw, sizeof(raw), &region_id, &offset, why, sizeof(why)), 0);
	assert_int_equal(region_id, 12);
	assert_int_equal(offset, 1ull << 50);
	assert_rejected(
		wire_data_from_wire(&raw, sizeof(raw) - 1, &region_id, &offset, why, sizeof(why)),
		"data");
}

/* ---- region ---- */

static void test_wire_region_round_trips(void **state)
{
	const struct transport_region region = {.id = 8,
						.access = TRANSPORT_ACCESS_REMOTE_WRITE |
							  TRANSPORT_ACCESS_REMOTE_READ,
						.length = 1ull << 30,
						.remote_addr = 0x7f0000000000ull,
						.rkey = 0xabcdef};
	struct transport_region out;
	struct wire_region raw;

	(void)state;
	wire_region_to_wire(&raw, &region);
	assert_int_equal(wire_region_from_wire(&raw, sizeof(raw), &out, why, sizeof(why)), 0);
	assert_int_equal(out.id, region.id);
	assert_int_equal(out.access, region.access);
	assert_int_equal(out.length, region.length);
	assert_int_equal(out.remote_addr, region.remote_addr);
	assert_int_equal(out.rkey, region.rkey);
	assert_null(out.addr);
}

static void test_wire_region_rejects_each_bad_field(void **state)
{
	struct transport_region region = {.id = 8, .length = 4096};
	struct transport_region out;
	struct wire_region raw;

	(void)state;
	wire_region_to_wire(&raw, &region);
	assert_rejected(wire_region_from_wire(&raw, sizeof(raw) + 1, &out, why, sizeof(why)),
			"region");
	region.access = 1u << 7;
	wire_region_to_wire(&raw, &region);
	assert_rejected(wire_region_from_wire(&raw, sizeof(raw), &out, why, sizeof(why)),
			"region[8].access");
	region.access = TRANSPORT_ACCESS_REMOTE_READ;
	region.remote_addr = UINT64_MAX - 100;
	wire_region_to_wire(&raw, &region);
	assert_rejected(wire_region_from_wire(&raw, sizeof(raw), &out, why, sizeof(why)),
			"region[8].length");
}

/* ---- reads ---- */

static void test_wire_read_req_round_trips(void **state)
{
	struct wire_read_req raw, req;

	(void)state;
	wire_read_req_to_wire(&raw, 77, 3, 8192, 4096);
	assert_int_equal(wire_read_req_from_wire(&raw, sizeof(raw), &req, why, sizeof(why)), 0);
	assert_int_equal(req.request_id, 77);
	assert_int_equal(req.region_id, 3);
	assert_int_equal(req.offset, 8192);
	assert_int_equal(req.length, 4096);
}

static void test_wire_read_req_rejects_each_bad_field(void **state)
{
	struct wire_read_req raw, req;

	(void)state;
	wire_read_req_to_wire(&raw, 1, 3, 0, 4096);
	assert_rejected(wire_read_req_from_wire(&raw, sizeof(raw) - 8, &req, why, sizeof(why)),
			"read-req");
	wire_read_req_to_wire(&raw, 1, 3, 0, 0);
	assert_rejected(wire_read_req_from_wire(&raw, sizeof(raw), &req, why, sizeof(why)),
			"read-req.length");
	wire_read_req_to_wire(&raw, 1, 3, UINT64_MAX, 2);
	assert_rejected(wire_read_req_from_wire(&raw, sizeof(raw), &req, why, sizeof(why)),
			"read-req.offset");
}

static void test_wire_read_resp_round_trips(void **state)
{
	struct wire_read_resp raw, resp;

	(void)state;
	wire_read_resp_to_wire(&raw, 5, -ERANGE);
	assert_int_equal(wire_read_resp_from_wire(&raw, sizeof(raw), &resp, why, sizeof(why)), 0);
	assert_int_equal(resp.request_id, 5);
	assert_int_equal(resp.status, -ERANGE);
	wire_read_resp_to_wire(&raw, 6, 0);
	assert_int_equal(wire_read_resp_from_wire(&raw, sizeof(raw), &resp, why, sizeof(why)), 0);
	assert_int_equal(resp.status, 0);
}

static void test_wire_read_resp_rejects_each_bad_field(void **state)
{
	struct wire_read_resp raw, resp;

	(void)state;
	wire_read_resp_to_wire(&raw, 5, 0);
	assert_rejected(wire_read_resp_from_wire(&raw, sizeof(raw) - 1, &resp, why, sizeof(why)),
			"read-resp");
	wire_read_resp_to_wire(&raw, 5, 1);
	assert_rejected(wire_read_resp_from_wire(&raw, sizeof(raw), &resp, why, sizeof(why)),
			"read-resp.status");
	wire_read_resp_to_wire(&raw, 5, -4096);
	assert_rejected(wire_read_resp_from_wire(&raw, sizeof(raw), &resp, why, sizeof(why)),
			"read-resp.status");
}

/* ---- credit ---- */

static void test_wire_credit_round_trips_and_rejects_size(void **state)
{
	struct wire_credit raw;
	uint32_t credits;

	(void)state;
	wire_credit_to_wire(&raw, 31);
	assert_int_equal(wire_credit_from_wire(&raw, sizeof(raw), &credits, why, sizeof(why)), 0);
	assert_int_equal(credits, 31);
	assert_rejected(wire_credit_from_wire(&raw, sizeof(raw) + 1, &credits, why, sizeof(why)),
			"credit");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wire_hdr_round_trips),
		cmocka_unit_test(test_wire_hdr_rejects_short_buffer),
		cmocka_unit_test(test_wire_hdr_rejects_bad_magic),
		cmocka_unit_test(test_wire_hdr_rejects_other_version),
		cmocka_unit_test(test_wire_hdr_rejects_unknown_types),
		cmocka_unit_test(test_wire_hdr_rejects_length_above_limit),
		cmocka_unit_test(test_wire_hello_round_trips),
		cmocka_unit_test(test_wire_hello_rejects_each_bad_field),
		cmocka_unit_test(test_wire_hello_key_round_trips),
		cmocka_unit_test(test_wire_hello_key_rejects_each_bad_field),
		cmocka_unit_test(test_wire_rdma_hello_key_round_trips_and_rejects_each_bad_field),
		cmocka_unit_test(test_wire_commit_round_trips),
		cmocka_unit_test(test_wire_commit_encoder_refuses_small_buffer_and_too_many_runs),
		cmocka_unit_test(test_wire_commit_rejects_short_payload),
		cmocka_unit_test(test_wire_commit_rejects_more_runs_than_room),
		cmocka_unit_test(test_wire_commit_rejects_stream_count_above_limit),
		cmocka_unit_test(test_wire_commit_rejects_bad_runs),
		cmocka_unit_test(test_wire_data_round_trips_and_rejects_short),
		cmocka_unit_test(test_wire_region_round_trips),
		cmocka_unit_test(test_wire_region_rejects_each_bad_field),
		cmocka_unit_test(test_wire_read_req_round_trips),
		cmocka_unit_test(test_wire_read_req_rejects_each_bad_field),
		cmocka_unit_test(test_wire_read_resp_round_trips),
		cmocka_unit_test(test_wire_read_resp_rejects_each_bad_field),
		cmocka_unit_test(test_wire_credit_round_trips_and_rejects_size),
	};

	return cmocka_run_group_tests_name("wire", tests, NULL, NULL);
}
