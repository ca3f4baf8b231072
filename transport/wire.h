/* SPDX-License-Identifier: MIT */
/* transport/wire.h - rmig's transport-level wire format, shared by the tcp frames and the
 * rdma SEND messages: fixed-size little-endian packed structs with explicit padding, a magic,
 * a version and a length. Everything from the peer goes through a *_from_wire() parser that
 * bounds-checks it before anything else looks at it (these parsers are fuzzed). */
#ifndef RMIG_WIRE_H
#define RMIG_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "transport/transport.h"

#define WIRE_MAGIC 0x474d4952u /* "RMIG" read as little-endian bytes */
#define WIRE_VERSION 1u
/* Largest payload after a header, other than page data: a full commit or control message. */
#define WIRE_MSG_MAX (TRANSPORT_CTRL_MAX + 64u)

enum wire_type {
	WIRE_HELLO = 1,	 /* first message each way: wire_hello */
	WIRE_CTRL = 2,	 /* opaque engine control message */
	WIRE_COMMIT = 3, /* wire_commit + nruns x wire_run */
	WIRE_DATA = 4,	 /* tcp only: wire_data + page bytes */
	/* wire_region, then on a connection bound to the handshake (transport_conn_bind) its
	 * TRANSPORT_REGION_MAC_LEN-byte MAC */
	WIRE_REGION_ADD = 5, /* the sender registered a region the peer may reach (or granted) */
	WIRE_REGION_DEL = 6, /* revoked (only the id is used) */
	WIRE_READ_REQ = 7,   /* wire_read_req: please send me these bytes of your region */
	WIRE_READ_RESP = 8,  /* wire_read_resp + bytes (tcp), or status only */
	WIRE_CREDIT = 9,     /* wire_credit: receive buffers reposted (rdma flow control) */
	WIRE_CLOSE = 10,     /* orderly goodbye, optional wire_close reason */
	/* rdma only: wire_data + page bytes of a staged region (one whose owner could not
	 * register it), carried on the send ring ahead of its batch's commit */
	WIRE_STAGED = 11,
	WIRE_TYPE_MAX = WIRE_STAGED,
};

struct wire_hdr {
	uint32_t magic;
	uint16_t version;
	uint16_t type;	  /* enum wire_type */
	uint32_t length;  /* bytes following this header */
	uint32_t credits; /* rdma: receive buffers the sender has freed since its last message */
} __attribute__((packed));

struct wire_hello {
	uint32_t protocol_version;
	uint32_t streams;
	uint32_t max_ctrl;    /* largest control payload the sender accepts */
	uint32_t recv_depth;  /* rdma: receive buffers posted for the peer */
	uint64_t session_tag; /* ties extra streams to their first connection */
} __attribute__((packed));

/* The key proof of a tcp hello: on a connection whose two sides hold a key and run without TLS
 * (transport_options.psk set, TLS none), each stream's hello frame carries this after its
 * struct wire_hello, and header.length says so (sizeof(struct wire_hello) alone, or with this
 * appended): the listener knows at the header whether the peer offers the proof it asks for.
 * Three hello frames per stream, each with the same struct wire_hello: the connecting side's
 * CHALLENGE (its nonce), the listener's ANSWER (its nonce and its proof), the connecting side's
 * PROOF. The proofs are HMAC-SHA256 over everything both sides said (tcp/setup.c), so neither
 * can be replayed, reflected or made without the key; only a stream whose proof checked out
 * leaves the listener. */
enum wire_hello_key_step {
	WIRE_HELLO_KEY_CHALLENGE = 1,
	WIRE_HELLO_KEY_ANSWER = 2,
	WIRE_HELLO_KEY_PROOF = 3,
};
#define WIRE_HELLO_KEY_HMAC_SHA256 1u /* the one algorithm so far */
#define WIRE_HELLO_KEY_NONCE_LEN 32u
#define WIRE_HELLO_KEY_MAC_LEN 32u

struct wire_hello_key {
	uint32_t step;				 /* enum wire_hello_key_step */
	uint32_t algorithm;			 /* WIRE_HELLO_KEY_HMAC_SHA256 */
	uint8_t nonce[WIRE_HELLO_KEY_NONCE_LEN]; /* CHALLENGE, ANSWER: the sender's; PROOF: zero */
	uint8_t mac[WIRE_HELLO_KEY_MAC_LEN];	 /* ANSWER, PROOF: the sender's proof; else zero */
} __attribute__((packed));

/* The key proof of an rdma hello (rdma/cm.c): rdma_cm carries only 56 bytes of private data in
 * a connect request (RDMA_PS_TCP over InfiniBand or RoCE), so a request's hello is followed by
 * this 32-byte part, and the listener's answer travels in the reject of the challenge (up to
 * 148 bytes: struct wire_hello and struct wire_hello_key, step ANSWER). rdma_cm pads a request
 * with zeroes, so a plain hello reads as step 0 with nothing after it. Per queue pair:
 *   connect request 1  CHALLENGE  the connecting side's nonce (24 bytes)
 *   reject of it       ANSWER     the listener's nonce and proof (32 bytes each)
 *   connect request 2  PROOF      the connecting side's proof (HMAC-SHA256 cut to 24 bytes)
 * Only a request with a valid proof is accepted (gets a queue pair). */
#define WIRE_RDMA_KEY_VALUE_LEN 24u
#define WIRE_RDMA_REQUEST_LEN 56u /* struct wire_hello + struct wire_rdma_hello_key */
#define WIRE_RDMA_ANSWER_LEN 96u  /* struct wire_hello + struct wire_hello_key */

struct wire_rdma_hello_key {
	uint32_t step;				/* 0 (a plain hello), CHALLENGE or PROOF */
	uint32_t algorithm;			/* WIRE_HELLO_KEY_HMAC_SHA256; 0 with step 0 */
	uint8_t value[WIRE_RDMA_KEY_VALUE_LEN]; /* CHALLENGE: nonce; PROOF: proof; else zero */
} __attribute__((packed));

struct wire_run {
	uint32_t region_id;
	uint32_t flags;
	uint64_t offset;
	uint64_t length;
} __attribute__((packed));

struct wire_commit {
	uint64_t batch_id;
	uint32_t nruns;
	uint32_t stream_count;	  /* tcp with several streams: entries in stream_bytes */
	uint64_t stream_bytes[8]; /* tcp: data bytes each stream carried up to this commit */
				  /* followed by nruns x struct wire_run */
} __attribute__((packed));

struct wire_data {
	uint32_t region_id;
	uint32_t pad;
	uint64_t offset;
	/* followed by hdr.length - sizeof(struct wire_data) bytes of page data */
} __attribute__((packed));

struct wire_region {
	uint32_t region_id;
	uint32_t access; /* TRANSPORT_ACCESS_* */
	uint64_t length;
	uint64_t addr;	/* rdma: remote virtual address */
	uint32_t rkey;	/* rdma; 0 for a staged region */
	uint32_t flags; /* WIRE_REGION_*; zero from an rmig without staging */
} __attribute__((packed));

/* wire_region.flags. STAGED: the sender cannot (or will not) register this region; the peer
 * never WRITEs into or READs from it: its page data travels as WIRE_STAGED messages on the
 * send ring (rdma/register.c). A staged region is announced even when the peer may not reach
 * it (access 0), so that the peer accepts WIRE_STAGED data from it. */
#define WIRE_REGION_STAGED 1u

struct wire_read_req {
	uint64_t request_id;
	uint32_t region_id;
	uint32_t pad;
	uint64_t offset;
	uint64_t length;
} __attribute__((packed));

struct wire_read_resp {
	uint64_t request_id;
	int32_t status; /* 0 or -errno (region unknown, out of range, not readable) */
	uint32_t pad;
	/* tcp: followed by the bytes when status is 0 */
} __attribute__((packed));

struct wire_credit {
	uint32_t credits;
	uint32_t pad;
} __attribute__((packed));

#define WIRE_STREAMS_MAX 8u

_Static_assert(sizeof(struct wire_hdr) == 16, "wire_hdr layout");
_Static_assert(sizeof(struct wire_hello) == 24, "wire_hello layout");
_Static_assert(sizeof(struct wire_hello_key) == 72, "wire_hello_key layout");
_Static_assert(sizeof(struct wire_rdma_hello_key) == 32, "wire_rdma_hello_key layout");
_Static_assert(sizeof(struct wire_hello) + sizeof(struct wire_rdma_hello_key) ==
		       WIRE_RDMA_REQUEST_LEN,
	       "rdma connect request layout");
_Static_assert(sizeof(struct wire_run) == 24, "wire_run layout");
_Static_assert(sizeof(struct wire_commit) == 80, "wire_commit layout");
_Static_assert(sizeof(struct wire_data) == 16, "wire_data layout");
_Static_assert(sizeof(struct wire_region) == 32, "wire_region layout");
_Static_assert(sizeof(struct wire_read_req) == 32, "wire_read_req layout");
_Static_assert(sizeof(struct wire_read_resp) == 16, "wire_read_resp layout");

/* Host-order views the parsers produce. */
struct wire_hdr_host {
	enum wire_type type;
	uint32_t length;
	uint32_t credits;
};

struct wire_commit_host {
	uint64_t batch_id;
	uint32_t stream_count;
	uint64_t stream_bytes[WIRE_STREAMS_MAX];
	size_t nruns;
};

/* Header. from_wire checks magic, version, type and length <= max_length; on failure returns
 * -EPROTO and writes which field was wrong into why. */
void wire_hdr_to_wire(struct wire_hdr *out, enum wire_type type, uint32_t length, uint32_t credits);
int wire_hdr_from_wire(const void *buf, size_t len, uint32_t max_length, struct wire_hdr_host *out,
		       char *why, size_t why_len);

void wire_hello_to_wire(struct wire_hello *out, uint32_t streams, uint32_t max_ctrl,
			uint32_t recv_depth, uint64_t session_tag);
int wire_hello_from_wire(const void *buf, size_t len, struct wire_hello *out, char *why,
			 size_t why_len);

/* The key proof after a hello (struct wire_hello_key); nonce and mac may be NULL (zeroes).
 * from_wire checks the length, the algorithm and the step (1..3; the caller checks it is the
 * one it expects) and hands back step and algorithm in host order. */
void wire_hello_key_to_wire(struct wire_hello_key *out, enum wire_hello_key_step step,
			    const uint8_t *nonce, const uint8_t *mac);
int wire_hello_key_from_wire(const void *buf, size_t len, struct wire_hello_key *out, char *why,
			     size_t why_len);

/* The key part of an rdma connect request; value may be NULL (zeroes). from_wire checks the
 * length, the step (0..3 but not ANSWER), the algorithm and that step 0 carries nothing, and
 * hands back step and algorithm in host order. */
void wire_rdma_hello_key_to_wire(struct wire_rdma_hello_key *out, enum wire_hello_key_step step,
				 const uint8_t *value);
int wire_rdma_hello_key_from_wire(const void *buf, size_t len, struct wire_rdma_hello_key *out,
				  char *why, size_t why_len);

/* Commit: writes sizeof(struct wire_commit) + nruns * sizeof(struct wire_run) bytes into buf
 * (capacity buf_len). Returns the byte count or -ENOSPC / -EINVAL. */
int wire_commit_to_wire(void *buf, size_t buf_len, const struct wire_commit_host *commit,
			const struct transport_run *runs);
/* Parse a commit payload of exactly len bytes into commit and runs (capacity max_runs).
 * Checks nruns against len and max_runs, flags for unknown bits, zero lengths,
 * offset + length overflow, stream_count <= WIRE_STREAMS_MAX. Region bounds are the
 * caller's (transport_runs_check) since only it knows the regions. */
int wire_commit_from_wire(const void *buf, size_t len, struct wire_commit_host *commit,
			  struct transport_run *runs, size_t max_runs, char *why, size_t why_len);

void wire_data_to_wire(struct wire_data *out, uint32_t region_id, uint64_t offset);
int wire_data_from_wire(const void *buf, size_t len, uint32_t *region_id, uint64_t *offset,
			char *why, size_t why_len);

void wire_region_to_wire(struct wire_region *out, const struct transport_region *region);
/* Checks access and flag bits and that addr + length does not overflow. */
int wire_region_from_wire(const void *buf, size_t len, struct transport_region *out, char *why,
			  size_t why_len);

void wire_read_req_to_wire(struct wire_read_req *out, uint64_t request_id, uint32_t region_id,
			   uint64_t offset, uint64_t length);
int wire_read_req_from_wire(const void *buf, size_t len, struct wire_read_req *out, char *why,
			    size_t why_len);
void wire_read_resp_to_wire(struct wire_read_resp *out, uint64_t request_id, int32_t status);
int wire_read_resp_from_wire(const void *buf, size_t len, struct wire_read_resp *out, char *why,
			     size_t why_len);

void wire_credit_to_wire(struct wire_credit *out, uint32_t credits);
int wire_credit_from_wire(const void *buf, size_t len, uint32_t *credits, char *why,
			  size_t why_len);

const char *wire_type_name(unsigned type);

#endif /* RMIG_WIRE_H */
