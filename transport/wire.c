/* SPDX-License-Identifier: MIT */
/* transport/wire.c - encoding and bounds-checked decoding of rmig's transport wire format.
 * Decoders copy through memcpy (received buffers need not be aligned) and name the field
 * that was wrong, because that message is what an operator sees when a peer misbehaves. */
#include "transport/wire.h"

#include <endian.h>
#include <stdarg.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

static int wire_reject(char *why, size_t why_len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int wire_reject(char *why, size_t why_len, const char *fmt, ...)
{
	va_list ap;

	if (why && why_len) {
		va_start(ap, fmt);
		vsnprintf(why, why_len, fmt, ap);
		va_end(ap);
	}
	return -EPROTO;
}

static const char *const wire_type_names[] = {
	[WIRE_HELLO] = "hello",		  [WIRE_CTRL] = "ctrl",
	[WIRE_COMMIT] = "commit",	  [WIRE_DATA] = "data",
	[WIRE_REGION_ADD] = "region-add", [WIRE_REGION_DEL] = "region-del",
	[WIRE_READ_REQ] = "read-req",	  [WIRE_READ_RESP] = "read-resp",
	[WIRE_CREDIT] = "credit",	  [WIRE_CLOSE] = "close",
	[WIRE_STAGED] = "staged",
};

const char *wire_type_name(unsigned type)
{
	if (type == 0 || type > WIRE_TYPE_MAX)
		return "unknown";
	return wire_type_names[type];
}

void wire_hdr_to_wire(struct wire_hdr *out, enum wire_type type, uint32_t length, uint32_t credits)
{
	struct wire_hdr hdr = {
		.magic = htole32(WIRE_MAGIC),
		.version = htole16(WIRE_VERSION),
		.type = htole16((uint16_t)type),
		.length = htole32(length),
		.credits = htole32(credits),
	};

	memcpy(out, &hdr, sizeof(hdr));
}

int wire_hdr_from_wire(const void *buf, size_t len, uint32_t max_length, struct wire_hdr_host *out,
		       char *why, size_t why_len)
{
	struct wire_hdr hdr;
	uint16_t type;

	if (len < sizeof(hdr))
		return wire_reject(why, why_len, "header: %zu bytes, need %zu", len, sizeof(hdr));
	memcpy(&hdr, buf, sizeof(hdr));
	if (le32toh(hdr.magic) != WIRE_MAGIC)
		return wire_reject(why, why_len, "header.magic: 0x%08x is not rmig's",
				   le32toh(hdr.magic));
	if (le16toh(hdr.version) != WIRE_VERSION)
		return wire_reject(why, why_len, "header.version: %u, this side speaks %u",
				   le16toh(hdr.version), WIRE_VERSION);
	type = le16toh(hdr.type);
	if (type == 0 || type > WIRE_TYPE_MAX)
		return wire_reject(why, why_len, "header.type: unknown type %u", type);
	if (le32toh(hdr.length) > max_length)
		return wire_reject(why, why_len, "header.length: %u bytes for %s exceeds %u",
				   le32toh(hdr.length), wire_type_name(type), max_length);
	out->type = (enum wire_type)type;
	out->length = le32toh(hdr.length);
	out->credits = le32toh(hdr.credits);
	return 0;
}

void wire_hello_to_wire(struct wire_hello *out, uint32_t streams, uint32_t max_ctrl,
			uint32_t recv_depth, uint64_t session_tag)
{
	struct wire_hello hello = {
		.protocol_version = htole32(TRANSPORT_PROTOCOL_VERSION),
		.streams = htole32(streams),
		.max_ctrl = htole32(max_ctrl),
		.recv_depth = htole32(recv_depth),
		.session_tag = htole64(session_tag),
	};

	memcpy(out, &hello, sizeof(hello));
}

int wire_hello_from_wire(const void *buf, size_t len, struct wire_hello *out, char *why,
			 size_t why_len)
{
	struct wire_hello hello;

	if (len != sizeof(hello))
		return wire_reject(why, why_len, "hello: %zu bytes, expected %zu", len,
				   sizeof(hello));
	memcpy(&hello, buf, sizeof(hello));
	out->protocol_version = le32toh(hello.protocol_version);
	out->streams = le32toh(hello.streams);
	out->max_ctrl = le32toh(hello.max_ctrl);
	out->recv_depth = le32toh(hello.recv_depth);
	out->session_tag = le64toh(hello.session_tag);
	if (out->protocol_version != TRANSPORT_PROTOCOL_VERSION)
		return wire_reject(why, why_len,
				   "hello.protocol_version: peer speaks %u, we speak %u",
				   out->protocol_version, TRANSPORT_PROTOCOL_VERSION);
	if (out->streams == 0 || out->streams > WIRE_STREAMS_MAX)
		return wire_reject(why, why_len, "hello.streams: %u not in 1..%u", out->streams,
				   WIRE_STREAMS_MAX);
	if (out->max_ctrl < 1024)
		return wire_reject(why, why_len, "hello.max_ctrl: %u is below 1024", out->max_ctrl);
	return 0;
}

void wire_hello_key_to_wire(struct wire_hello_key *out, enum wire_hello_key_step step,
			    const uint8_t *nonce, const uint8_t *mac)
{
	struct wire_hello_key key = {
		.step = htole32((uint32_t)step),
		.algorithm = htole32(WIRE_HELLO_KEY_HMAC_SHA256),
	};

	if (nonce)
		memcpy(key.nonce, nonce, sizeof(key.nonce));
	if (mac)
		memcpy(key.mac, mac, sizeof(key.mac));
	memcpy(out, &key, sizeof(key));
}

int wire_hello_key_from_wire(const void *buf, size_t len, struct wire_hello_key *out, char *why,
			     size_t why_len)
{
	struct wire_hello_key key;

	if (len != sizeof(key))
		return wire_reject(why, why_len, "hello.key: %zu bytes, expected %zu", len,
				   sizeof(key));
	memcpy(&key, buf, sizeof(key));
	key.step = le32toh(key.step);
	key.algorithm = le32toh(key.algorithm);
	if (key.algorithm != WIRE_HELLO_KEY_HMAC_SHA256)
		return wire_reject(why, why_len,
				   "hello.key.algorithm: %u, this side knows only %u (HMAC-SHA256)",
				   key.algorithm, WIRE_HELLO_KEY_HMAC_SHA256);
	if (key.step < WIRE_HELLO_KEY_CHALLENGE || key.step > WIRE_HELLO_KEY_PROOF)
		return wire_reject(why, why_len, "hello.key.step: unknown step %u", key.step);
	*out = key;
	return 0;
}

void wire_rdma_hello_key_to_wire(struct wire_rdma_hello_key *out, enum wire_hello_key_step step,
				 const uint8_t *value)
{
	struct wire_rdma_hello_key key = {
		.step = htole32((uint32_t)step),
		.algorithm = htole32(step ? WIRE_HELLO_KEY_HMAC_SHA256 : 0),
	};

	if (value)
		memcpy(key.value, value, sizeof(key.value));
	memcpy(out, &key, sizeof(key));
}

int wire_rdma_hello_key_from_wire(const void *buf, size_t len, struct wire_rdma_hello_key *out,
				  char *why, size_t why_len)
{
	static const uint8_t zero[WIRE_RDMA_KEY_VALUE_LEN];
	struct wire_rdma_hello_key key;

	if (len != sizeof(key))
		return wire_reject(why, why_len, "hello.key: %zu bytes, expected %zu", len,
				   sizeof(key));
	memcpy(&key, buf, sizeof(key));
	key.step = le32toh(key.step);
	key.algorithm = le32toh(key.algorithm);
	if (key.step == 0) {
		if (key.algorithm || memcmp(key.value, zero, sizeof(zero)))
			return wire_reject(why, why_len,
					   "hello.key: bytes after a plain hello (step 0)");
	} else if (key.step != WIRE_HELLO_KEY_CHALLENGE && key.step != WIRE_HELLO_KEY_PROOF) {
		return wire_reject(why, why_len, "hello.key.step: %u in a connect request",
				   key.step);
	} else if (key.algorithm != WIRE_HELLO_KEY_HMAC_SHA256) {
		return wire_reject(why, why_len,
				   "hello.key.algorithm: %u, this side knows only %u (HMAC-SHA256)",
				   key.algorithm, WIRE_HELLO_KEY_HMAC_SHA256);
	}
	*out = key;
	return 0;
}

int wire_commit_to_wire(void *buf, size_t buf_len, const struct wire_commit_host *commit,
			const struct transport_run *runs)
{
	struct wire_commit head = {0};
	size_t need;
	char *p = buf;

	if (commit->nruns > TRANSPORT_BATCH_MAX_RUNS || commit->stream_count > WIRE_STREAMS_MAX)
		return -EINVAL;
	need = sizeof(head) + commit->nruns * sizeof(struct wire_run);
	if (need > buf_len)
		return -ENOSPC;
	head.batch_id = htole64(commit->batch_id);
	head.nruns = htole32((uint32_t)commit->nruns);
	head.stream_count = htole32(commit->stream_count);
	for (uint32_t i = 0; i < commit->stream_count; i++)
		head.stream_bytes[i] = htole64(commit->stream_bytes[i]);
	memcpy(p, &head, sizeof(head));
	p += sizeof(head);
	for (size_t i = 0; i < commit->nruns; i++) {
		struct wire_run run = {
			.region_id = htole32(runs[i].region_id),
			.flags = htole32(runs[i].flags),
			.offset = htole64(runs[i].offset),
			.length = htole64(runs[i].length),
		};

		memcpy(p, &run, sizeof(run));
		p += sizeof(run);
	}
	return (int)need;
}

int wire_commit_from_wire(const void *buf, size_t len, struct wire_commit_host *commit,
			  struct transport_run *runs, size_t max_runs, char *why, size_t why_len)
{
	struct wire_commit head;
	const char *p = buf;
	uint32_t nruns;

	if (len < sizeof(head))
		return wire_reject(why, why_len, "commit: %zu bytes, need at least %zu", len,
				   sizeof(head));
	memcpy(&head, p, sizeof(head));
	nruns = le32toh(head.nruns);
	if (nruns > max_runs || nruns > TRANSPORT_BATCH_MAX_RUNS)
		return wire_reject(why, why_len, "commit.nruns: %u exceeds %zu", nruns,
				   max_runs < TRANSPORT_BATCH_MAX_RUNS
					   ? max_runs
					   : (size_t)TRANSPORT_BATCH_MAX_RUNS);
	if (len != sizeof(head) + (size_t)nruns * sizeof(struct wire_run))
		return wire_reject(why, why_len, "commit.nruns: %u runs do not fill %zu bytes",
				   nruns, len);
	commit->batch_id = le64toh(head.batch_id);
	commit->stream_count = le32toh(head.stream_count);
	if (commit->stream_count > WIRE_STREAMS_MAX)
		return wire_reject(why, why_len, "commit.stream_count: %u exceeds %u",
				   commit->stream_count, WIRE_STREAMS_MAX);
	for (uint32_t i = 0; i < WIRE_STREAMS_MAX; i++)
		commit->stream_bytes[i] =
			i < commit->stream_count ? le64toh(head.stream_bytes[i]) : 0;
	commit->nruns = nruns;
	p += sizeof(head);
	for (uint32_t i = 0; i < nruns; i++) {
		struct wire_run run;

		memcpy(&run, p + (size_t)i * sizeof(run), sizeof(run));
		runs[i].region_id = le32toh(run.region_id);
		runs[i].flags = le32toh(run.flags);
		runs[i].offset = le64toh(run.offset);
		runs[i].length = le64toh(run.length);
		if (runs[i].flags & ~(uint32_t)TRANSPORT_RUN_ZERO)
			return wire_reject(why, why_len, "commit.runs[%u].flags: unknown bits 0x%x",
					   i, runs[i].flags);
		if (runs[i].length == 0)
			return wire_reject(why, why_len, "commit.runs[%u].length: zero", i);
		if (runs[i].offset + runs[i].length < runs[i].offset)
			return wire_reject(why, why_len,
					   "commit.runs[%u].offset: %llu + length %llu overflows",
					   i, (unsigned long long)runs[i].offset,
					   (unsigned long long)runs[i].length);
	}
	return 0;
}

void wire_data_to_wire(struct wire_data *out, uint32_t region_id, uint64_t offset)
{
	struct wire_data data = {
		.region_id = htole32(region_id),
		.offset = htole64(offset),
	};

	memcpy(out, &data, sizeof(data));
}

int wire_data_from_wire(const void *buf, size_t len, uint32_t *region_id, uint64_t *offset,
			char *why, size_t why_len)
{
	struct wire_data data;

	if (len < sizeof(data))
		return wire_reject(why, why_len, "data: %zu bytes, need %zu", len, sizeof(data));
	memcpy(&data, buf, sizeof(data));
	*region_id = le32toh(data.region_id);
	*offset = le64toh(data.offset);
	return 0;
}

void wire_region_to_wire(struct wire_region *out, const struct transport_region *region)
{
	struct wire_region r = {
		.region_id = htole32(region->id),
		.access = htole32(region->access),
		.length = htole64(region->length),
		.addr = htole64(region->remote_addr),
		.rkey = htole32(region->rkey),
		.flags = htole32(region->flags & TRANSPORT_REGION_STAGED ? WIRE_REGION_STAGED : 0),
	};

	memcpy(out, &r, sizeof(r));
}

int wire_region_from_wire(const void *buf, size_t len, struct transport_region *out, char *why,
			  size_t why_len)
{
	struct wire_region r;

	if (len != sizeof(r))
		return wire_reject(why, why_len, "region: %zu bytes, expected %zu", len, sizeof(r));
	memcpy(&r, buf, sizeof(r));
	memset(out, 0, sizeof(*out));
	out->id = le32toh(r.region_id);
	out->access = le32toh(r.access);
	out->length = le64toh(r.length);
	out->remote_addr = le64toh(r.addr);
	out->rkey = le32toh(r.rkey);
	out->flags = le32toh(r.flags);
	if (out->access & ~(unsigned)(TRANSPORT_ACCESS_REMOTE_WRITE | TRANSPORT_ACCESS_REMOTE_READ))
		return wire_reject(why, why_len, "region[%u].access: unknown bits 0x%x", out->id,
				   out->access);
	if (out->flags & ~(unsigned)WIRE_REGION_STAGED)
		return wire_reject(why, why_len, "region[%u].flags: unknown bits 0x%x", out->id,
				   out->flags);
	out->flags = out->flags & WIRE_REGION_STAGED ? TRANSPORT_REGION_STAGED : 0;
	if (out->remote_addr + out->length < out->remote_addr)
		return wire_reject(why, why_len, "region[%u].length: %llu at 0x%llx overflows",
				   out->id, (unsigned long long)out->length,
				   (unsigned long long)out->remote_addr);
	return 0;
}

void wire_read_req_to_wire(struct wire_read_req *out, uint64_t request_id, uint32_t region_id,
			   uint64_t offset, uint64_t length)
{
	struct wire_read_req r = {
		.request_id = htole64(request_id),
		.region_id = htole32(region_id),
		.offset = htole64(offset),
		.length = htole64(length),
	};

	memcpy(out, &r, sizeof(r));
}

int wire_read_req_from_wire(const void *buf, size_t len, struct wire_read_req *out, char *why,
			    size_t why_len)
{
	struct wire_read_req r;

	if (len != sizeof(r))
		return wire_reject(why, why_len, "read-req: %zu bytes, expected %zu", len,
				   sizeof(r));
	memcpy(&r, buf, sizeof(r));
	out->request_id = le64toh(r.request_id);
	out->region_id = le32toh(r.region_id);
	out->pad = 0;
	out->offset = le64toh(r.offset);
	out->length = le64toh(r.length);
	if (out->length == 0)
		return wire_reject(why, why_len, "read-req.length: zero");
	if (out->offset + out->length < out->offset)
		return wire_reject(why, why_len, "read-req.offset: %llu + length %llu overflows",
				   (unsigned long long)out->offset,
				   (unsigned long long)out->length);
	return 0;
}

void wire_read_resp_to_wire(struct wire_read_resp *out, uint64_t request_id, int32_t status)
{
	struct wire_read_resp r = {
		.request_id = htole64(request_id),
		.status = (int32_t)htole32((uint32_t)status),
	};

	memcpy(out, &r, sizeof(r));
}

int wire_read_resp_from_wire(const void *buf, size_t len, struct wire_read_resp *out, char *why,
			     size_t why_len)
{
	struct wire_read_resp r;

	if (len < sizeof(r))
		return wire_reject(why, why_len, "read-resp: %zu bytes, need %zu", len, sizeof(r));
	memcpy(&r, buf, sizeof(r));
	out->request_id = le64toh(r.request_id);
	out->status = (int32_t)le32toh((uint32_t)r.status);
	out->pad = 0;
	if (out->status > 0 || out->status < -4095)
		return wire_reject(why, why_len, "read-resp.status: %d is not 0 or -errno",
				   out->status);
	return 0;
}

void wire_credit_to_wire(struct wire_credit *out, uint32_t credits)
{
	struct wire_credit c = {.credits = htole32(credits)};

	memcpy(out, &c, sizeof(c));
}

int wire_credit_from_wire(const void *buf, size_t len, uint32_t *credits, char *why, size_t why_len)
{
	struct wire_credit c;

	if (len != sizeof(c))
		return wire_reject(why, why_len, "credit: %zu bytes, expected %zu", len, sizeof(c));
	memcpy(&c, buf, sizeof(c));
	*credits = le32toh(c.credits);
	return 0;
}
