/* SPDX-License-Identifier: MIT */
/* tests/fuzz/fuzz_wire.c - feeds arbitrary bytes to every wire parser in transport/wire.c. A
 * parser must never read past its buffer, must name a field when it refuses, and whatever it
 * accepts must satisfy the checks wire.h promises and survive a re-encode unchanged. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "transport/wire.h"

/* A refusal is -EPROTO with a message; anything else is 0. */
static void fuzz_check_verdict(int ret, const char *why)
{
	FUZZ_CHECK(ret == 0 || ret == -EPROTO);
	if (ret)
		FUZZ_CHECK(why[0] != '\0');
}

static void fuzz_hdr(const uint8_t *data, size_t size, uint32_t max_length)
{
	struct wire_hdr_host hdr;
	struct wire_hdr again;
	char why[TRANSPORT_ERROR_MAX] = "";
	int ret = wire_hdr_from_wire(data, size, max_length, &hdr, why, sizeof(why));

	fuzz_check_verdict(ret, why);
	if (ret)
		return;
	FUZZ_CHECK(size >= sizeof(struct wire_hdr));
	FUZZ_CHECK(hdr.type >= 1 && hdr.type <= WIRE_TYPE_MAX);
	FUZZ_CHECK(hdr.length <= max_length);
	FUZZ_CHECK(strcmp(wire_type_name(hdr.type), "unknown") != 0);
	wire_hdr_to_wire(&again, hdr.type, hdr.length, hdr.credits);
	FUZZ_CHECK(!memcmp(&again, data, sizeof(again)));
}

static void fuzz_hello(const uint8_t *data, size_t size)
{
	struct wire_hello hello, again;
	char why[TRANSPORT_ERROR_MAX] = "";
	int ret = wire_hello_from_wire(data, size, &hello, why, sizeof(why));

	fuzz_check_verdict(ret, why);
	if (ret)
		return;
	FUZZ_CHECK(size == sizeof(struct wire_hello));
	FUZZ_CHECK(hello.protocol_version == TRANSPORT_PROTOCOL_VERSION);
	FUZZ_CHECK(hello.streams >= 1 && hello.streams <= WIRE_STREAMS_MAX);
	FUZZ_CHECK(hello.max_ctrl >= 1024);
	wire_hello_to_wire(&again, hello.streams, hello.max_ctrl, hello.recv_depth,
			   hello.session_tag);
	FUZZ_CHECK(!memcmp(&again, data, sizeof(again)));
}

static void fuzz_hello_key(const uint8_t *data, size_t size)
{
	struct wire_hello_key key, again;
	char why[TRANSPORT_ERROR_MAX] = "";
	int ret = wire_hello_key_from_wire(data, size, &key, why, sizeof(why));

	fuzz_check_verdict(ret, why);
	if (ret)
		return;
	FUZZ_CHECK(size == sizeof(struct wire_hello_key));
	FUZZ_CHECK(key.algorithm == WIRE_HELLO_KEY_HMAC_SHA256);
	FUZZ_CHECK(key.step >= WIRE_HELLO_KEY_CHALLENGE && key.step <= WIRE_HELLO_KEY_PROOF);
	wire_hello_key_to_wire(&again, (enum wire_hello_key_step)key.step, key.nonce, key.mac);
	FUZZ_CHECK(!memcmp(&again, data, sizeof(again)));
}

static void fuzz_rdma_hello_key(const uint8_t *data, size_t size)
{
	static const uint8_t zero[WIRE_RDMA_KEY_VALUE_LEN];
	struct wire_rdma_hello_key key, again;
	char why[TRANSPORT_ERROR_MAX] = "";
	int ret = wire_rdma_hello_key_from_wire(data, size, &key, why, sizeof(why));

	fuzz_check_verdict(ret, why);
	if (ret)
		return;
	FUZZ_CHECK(size == sizeof(struct wire_rdma_hello_key));
	FUZZ_CHECK(key.step == 0 || key.step == WIRE_HELLO_KEY_CHALLENGE ||
		   key.step == WIRE_HELLO_KEY_PROOF);
	FUZZ_CHECK(key.step ? key.algorithm == WIRE_HELLO_KEY_HMAC_SHA256
			    : key.algorithm == 0 && !memcmp(key.value, zero, sizeof(zero)));
	wire_rdma_hello_key_to_wire(&again, (enum wire_hello_key_step)key.step, key.value);
	FUZZ_CHECK(!memcmp(&again, data, sizeof(again)));
}

static void fuzz_commit(const uint8_t *data, size_t size, size_t max_runs)
{
	static struct transport_run runs[TRANSPORT_BATCH_MAX_RUNS],
		reparsed[TRANSPORT_BATCH_MAX_RUNS];
	static uint8_t encoded[sizeof(struct wire_commit) +
			       TRANSPORT_BATCH_MAX_RUNS * sizeof(struct wire_run)];
	struct wire_commit_host commit, commit_again;
	char why[TRANSPORT_ERROR_MAX] = "";
	int ret, len;

	ret = wire_commit_from_wire(data, size, &commit, runs, max_runs, why, sizeof(why));
	fuzz_check_verdict(ret, why);
	if (ret)
		return;
	FUZZ_CHECK(commit.nruns <= max_runs && commit.nruns <= TRANSPORT_BATCH_MAX_RUNS);
	FUZZ_CHECK(size == sizeof(struct wire_commit) + commit.nruns * sizeof(struct wire_run));
	FUZZ_CHECK(commit.stream_count <= WIRE_STREAMS_MAX);
	for (size_t i = 0; i < commit.nruns; i++) {
		FUZZ_CHECK(runs[i].length != 0);
		FUZZ_CHECK(runs[i].offset + runs[i].length >= runs[i].offset);
		FUZZ_CHECK(!(runs[i].flags & ~(uint32_t)TRANSPORT_RUN_ZERO));
	}
	for (uint32_t i = commit.stream_count; i < WIRE_STREAMS_MAX; i++)
		FUZZ_CHECK(commit.stream_bytes[i] == 0);
	/* What was accepted encodes to something that parses to the same values. */
	len = wire_commit_to_wire(encoded, sizeof(encoded), &commit, runs);
	FUZZ_CHECK(len == (int)size);
	ret = wire_commit_from_wire(encoded, (size_t)len, &commit_again, reparsed, max_runs, why,
				    sizeof(why));
	FUZZ_CHECK(ret == 0);
	FUZZ_CHECK(commit_again.batch_id == commit.batch_id);
	FUZZ_CHECK(commit_again.nruns == commit.nruns);
	FUZZ_CHECK(commit_again.stream_count == commit.stream_count);
	FUZZ_CHECK(!memcmp(commit_again.stream_bytes, commit.stream_bytes,
			   sizeof(commit.stream_bytes)));
	FUZZ_CHECK(!memcmp(reparsed, runs, commit.nruns * sizeof(runs[0])));
}

static void fuzz_data(const uint8_t *data, size_t size)
{
	char why[TRANSPORT_ERROR_MAX] = "";
	uint32_t region_id;
	uint64_t offset;
	struct wire_data again;
	int ret = wire_data_from_wire(data, size, &region_id, &offset, why, sizeof(why));

	fuzz_check_verdict(ret, why);
	if (ret)
		return;
	FUZZ_CHECK(size >= sizeof(struct wire_data));
	wire_data_to_wire(&again, region_id, offset);
	/* The pad field is ignored, everything else must match. */
	FUZZ_CHECK(!memcmp(&again, data, offsetof(struct wire_data, pad)));
	FUZZ_CHECK(!memcmp(&again.offset, data + offsetof(struct wire_data, offset), 8));
}

static void fuzz_region(const uint8_t *data, size_t size)
{
	struct transport_region region;
	char why[TRANSPORT_ERROR_MAX] = "";
	int ret = wire_region_from_wire(data, size, &region, why, sizeof(why));

	fuzz_check_verdict(ret, why);
	if (ret)
		return;
	FUZZ_CHECK(size == sizeof(struct wire_region));
	FUZZ_CHECK(!(region.access &
		     ~(unsigned)(TRANSPORT_ACCESS_REMOTE_WRITE | TRANSPORT_ACCESS_REMOTE_READ)));
	FUZZ_CHECK(region.remote_addr + region.length >= region.remote_addr);
	FUZZ_CHECK(region.addr == NULL);
}

static void fuzz_read_req(const uint8_t *data, size_t size)
{
	struct wire_read_req req, again;
	char why[TRANSPORT_ERROR_MAX] = "";
	int ret = wire_read_req_from_wire(data, size, &req, why, sizeof(why));

	fuzz_check_verdict(ret, why);
	if (ret)
		return;
	FUZZ_CHECK(size == sizeof(struct wire_read_req));
	FUZZ_CHECK(req.length != 0);
	FUZZ_CHECK(req.offset + req.length >= req.offset);
	wire_read_req_to_wire(&again, req.request_id, req.region_id, req.offset, req.length);
	FUZZ_CHECK(!memcmp(&again.request_id, data, 12)); /* request_id, region_id */
	FUZZ_CHECK(!memcmp(&again.offset, data + offsetof(struct wire_read_req, offset), 16));
}

static void fuzz_read_resp(const uint8_t *data, size_t size)
{
	struct wire_read_resp resp;
	char why[TRANSPORT_ERROR_MAX] = "";
	int ret = wire_read_resp_from_wire(data, size, &resp, why, sizeof(why));

	fuzz_check_verdict(ret, why);
	if (ret)
		return;
	FUZZ_CHECK(size >= sizeof(struct wire_read_resp));
	FUZZ_CHECK(resp.status <= 0 && resp.status >= -4095);
}

static void fuzz_credit(const uint8_t *data, size_t size)
{
	char why[TRANSPORT_ERROR_MAX] = "";
	uint32_t credits;
	int ret = wire_credit_from_wire(data, size, &credits, why, sizeof(why));

	fuzz_check_verdict(ret, why);
	if (!ret)
		FUZZ_CHECK(size == sizeof(struct wire_credit));
}

/* As a receiver meets them: header, then the payload its type announces, frame after frame. */
static void fuzz_stream(const uint8_t *data, size_t size)
{
	while (size >= sizeof(struct wire_hdr)) {
		struct wire_hdr_host hdr;
		char why[TRANSPORT_ERROR_MAX] = "";

		if (wire_hdr_from_wire(data, size, WIRE_MSG_MAX, &hdr, why, sizeof(why)))
			return;
		data += sizeof(struct wire_hdr);
		size -= sizeof(struct wire_hdr);
		if (hdr.length > size)
			return;
		switch (hdr.type) {
		case WIRE_HELLO: /* the plain hello, or a keyed one: hello then key proof */
			if (hdr.length > sizeof(struct wire_hello)) {
				fuzz_hello(data, sizeof(struct wire_hello));
				fuzz_hello_key(data + sizeof(struct wire_hello),
					       hdr.length - sizeof(struct wire_hello));
			} else {
				fuzz_hello(data, hdr.length);
			}
			break;
		case WIRE_COMMIT:
			fuzz_commit(data, hdr.length, TRANSPORT_BATCH_MAX_RUNS);
			break;
		case WIRE_DATA:
			fuzz_data(data, hdr.length);
			break;
		case WIRE_REGION_ADD:
		case WIRE_REGION_DEL:
			fuzz_region(data, hdr.length);
			break;
		case WIRE_READ_REQ:
			fuzz_read_req(data, hdr.length);
			break;
		case WIRE_READ_RESP:
			fuzz_read_resp(data, hdr.length);
			break;
		case WIRE_CREDIT:
			fuzz_credit(data, hdr.length);
			break;
		default:
			break;
		}
		data += hdr.length;
		size -= hdr.length;
	}
}

/* The first byte picks the parser (and for some, a limit); the rest is its input. Inputs are
 * copied to a buffer of their exact size so ASan sees any read past the end. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t selector;
	uint8_t *copy;

	if (size == 0)
		return 0;
	selector = data[0];
	copy = fuzz_copy_after_selector(data, size--);
	if (!copy)
		return 0;
	switch (selector % 10) {
	case 0:
		fuzz_hdr(copy, size, (uint32_t)selector << 8);
		break;
	case 1: /* a hello, or a hello's key proof (tcp's, or the one of an rdma request) */
		fuzz_hello(copy, size);
		fuzz_hello_key(copy, size);
		fuzz_rdma_hello_key(copy, size);
		break;
	case 2:
		fuzz_commit(copy, size, TRANSPORT_BATCH_MAX_RUNS);
		break;
	case 3:
		fuzz_commit(copy, size, selector / 10); /* a caller with little room */
		break;
	case 4:
		fuzz_data(copy, size);
		break;
	case 5:
		fuzz_region(copy, size);
		break;
	case 6:
		fuzz_read_req(copy, size);
		break;
	case 7:
		fuzz_read_resp(copy, size);
		break;
	case 8:
		fuzz_credit(copy, size);
		break;
	default:
		fuzz_stream(copy, size);
		break;
	}
	free(copy);
	return 0;
}
