/* SPDX-License-Identifier: MIT */
/* engine/protocol.h - the engine's own control messages, carried as opaque transport control
 * payloads: hello/auth, region table, rounds, device state, verification, resume, abort.
 * Packed little-endian structs with a magic, a version and a length; every field read from the
 * peer is checked by the *_from_wire() helpers before the engine uses it. */
#ifndef RMIG_ENGINE_PROTOCOL_H
#define RMIG_ENGINE_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#include "transport/transport.h"

#define PROTOCOL_MAGIC 0x45474d52u /* "RMGE" */
/* 2: VERIFY_RUNS (librmig 1.2). Both ends must speak the same version. */
#define PROTOCOL_VERSION 2u
#define PROTOCOL_NONCE_LEN 32u
#define PROTOCOL_MAC_LEN 32u /* HMAC-SHA256 */
#define PROTOCOL_REGIONS_MAX 1024u
#define PROTOCOL_REASON_MAX 1024u
/* Device state bytes per message, so a message stays within TRANSPORT_CTRL_MAX. */
#define PROTOCOL_DEVICE_CHUNK (TRANSPORT_CTRL_MAX - 64u)
/* Page hashes per VERIFY_HASHES message. */
#define PROTOCOL_HASHES_MAX ((TRANSPORT_CTRL_MAX - 64u) / 8u)
/* Runs per VERIFY_RUNS message (16 bytes each). */
#define PROTOCOL_VERIFY_RUNS_MAX ((TRANSPORT_CTRL_MAX - 64u) / 16u)
/* Bitmap words per POSTCOPY_PAGES / PUSH_REQ message. */
#define PROTOCOL_BITMAP_WORDS_MAX ((TRANSPORT_CTRL_MAX - 64u) / 8u)

enum protocol_type {
	PROTOCOL_HELLO = 1,	    /* source -> destination: version, method, nonce */
	PROTOCOL_HELLO_ACK = 2,	    /* destination -> source: nonce, proof of the key */
	PROTOCOL_AUTH = 3,	    /* source -> destination: proof of the key */
	PROTOCOL_REGION_TABLE = 4,  /* source -> destination */
	PROTOCOL_REGION_ACK = 5,    /* destination -> source: regions registered, data may flow */
	PROTOCOL_ROUND = 6,	    /* source -> destination: a round starts */
	PROTOCOL_DEVICE_STATE = 7,  /* source -> destination: a chunk */
	PROTOCOL_VERIFY_REQ = 8,    /* source -> destination: hash these pages */
	PROTOCOL_VERIFY_HASHES = 9, /* destination -> source */
	PROTOCOL_RESUME = 10,	    /* source -> destination: everything is there, resume */
	PROTOCOL_RESUMED = 11,	    /* destination -> source: resume_vm returned */
	PROTOCOL_ABORT = 12,	    /* either way: the migration is over, with a reason */
	PROTOCOL_ROUND_END = 13,    /* source -> destination: the round's batches are all posted */
	PROTOCOL_ROUND_ACK = 14,    /* destination -> source: every commit before it is applied */
	/* Post-copy (TSMC, post-copy, hybrid and an auto that chose one of them). */
	PROTOCOL_POSTCOPY_PAGES = 15, /* source -> destination: pages that will come after resume */
	PROTOCOL_POSTCOPY_BEGIN = 16, /* source -> destination: the page list is complete */
	PROTOCOL_POSTCOPY_READY = 17, /* destination -> source: RAM armed, staging regions */
	PROTOCOL_PUSH_REQ = 18,	      /* destination -> source: push these pages next */
	PROTOCOL_POSTCOPY_DONE = 19,  /* destination -> source: every page has arrived */
	PROTOCOL_POSTCOPY_END = 20,   /* source -> destination: done acknowledged */
	PROTOCOL_PULL_REPORT = 21,    /* destination -> source: pulls timed during the bulk round */
	/* either way, empty: this side is alive (engine/heartbeat.c); never an answer */
	PROTOCOL_HEARTBEAT = 22,
	/* Post-copy recovery (engine/postcopy_recover.c): a new connection after the old one died
	 * with the tail under way. */
	PROTOCOL_RECOVER = 23, /* source -> destination: session id, nonce */
	PROTOCOL_RECOVER_ACK =
		24, /* destination -> source: nonce, proof (then the source's AUTH) */
	/* destination -> source: pages it still lacks (the page_bitmap layout) */
	PROTOCOL_RECOVER_PAGES = 25,
	/* destination -> source: the list is complete (then POSTCOPY_READY: staging regions) */
	PROTOCOL_RECOVER_READY = 26,
	/* source -> destination: hash the pages of these runs of one region; answered by one
	 * VERIFY_HASHES holding their hashes in the runs' order */
	PROTOCOL_VERIFY_RUNS = 27,
	PROTOCOL_TYPE_MAX = 27,
};

struct protocol_hdr {
	uint32_t magic;
	uint16_t version;
	uint16_t type;
	uint32_t length; /* header included */
	uint32_t reserved;
} __attribute__((packed));

/* Native forms of the messages (what the engine works with). */
struct protocol_hello {
	uint32_t protocol_version;
	uint32_t method;
	uint32_t region_count;
	uint32_t flags; /* PROTOCOL_HELLO_KEY */
	uint8_t nonce[PROTOCOL_NONCE_LEN];
};
#define PROTOCOL_HELLO_KEY (1u << 0)
/* hello-ack: the destination can fill its RAM after resume (userfaultfd on every region). */
#define PROTOCOL_HELLO_POSTCOPY (1u << 1)

struct protocol_hello_ack {
	uint32_t flags; /* PROTOCOL_HELLO_KEY, PROTOCOL_HELLO_POSTCOPY */
	uint8_t nonce[PROTOCOL_NONCE_LEN];
	uint8_t mac[PROTOCOL_MAC_LEN];
};

struct protocol_region {
	uint32_t id;
	uint32_t page_shift;
	uint64_t length;
};

/* What a post-copy fault's pull takes on this connection, as the destination timed it: the
 * median of a few transport_read()s of a fault's worth of bytes from the source's pull target
 * (a buffer of no guest data, session_pull_target_id(); guest RAM is not readable yet).
 * REGION_ACK carries the pulls timed before any page data flows (when the source asked for auto
 * and the destination can post-copy); PULL_REPORT those timed while the bulk round's pages
 * flow, under the load a fault would meet. */
struct protocol_pull {
	uint32_t flags;	     /* PROTOCOL_PULL_* */
	uint32_t pull_us;    /* median pull, microseconds (MEASURED) */
	uint32_t pull_bytes; /* bytes per pull (MEASURED) */
	uint32_t pulls;	     /* pulls taken (MEASURED) */
};
#define PROTOCOL_PULL_MEASURED (1u << 0)
/* A pull failed: post-copy faults could not be served, so auto must not choose it. */
#define PROTOCOL_PULL_FAILED (1u << 1)

struct protocol_round {
	uint32_t round;
	uint32_t paused;
};

/* ROUND_END and ROUND_ACK: the pages counted by each side so far must agree. The round trip
 * is also a barrier: a zero run of round n (applied by the destination engine when it takes
 * the commit) can never land after data of round n + 1 for the same page. */
struct protocol_round_end {
	uint32_t round;
	uint64_t pages; /* page transmissions since the start, zero markers included */
};

/* Device state crosses in chunks, then one last message that carries no state: its payload is
 * the XXH64 (seed 0, little-endian) of every byte before it, which the destination checks
 * before it lets the VM resume. XXH64 is scalar code, so a machine whose vector registers go
 * wrong (tests/xen/README.md) computes it right. */
struct protocol_device_state {
	uint64_t offset;
	uint32_t length; /* bytes of state in this chunk: 0 in the last */
	uint32_t last;
	const void *data; /* points into the message */
	uint64_t digest;  /* last: XXH64 of the whole device state */
};

struct protocol_verify_req {
	uint32_t region_id;
	uint64_t first_page;
	uint64_t npages;
};

/* VERIFY_RUNS: count runs of region_id, each npages >= 1, in ascending page order without
 * overlap, pages in all at most PROTOCOL_HASHES_MAX (one answer). Range against the region is
 * the receiver's check. */
struct protocol_page_run {
	uint64_t first_page;
	uint32_t npages;
};

struct protocol_verify_runs {
	uint32_t region_id;
	uint32_t count;
	uint64_t pages;	     /* the runs' pages added up */
	const uint8_t *runs; /* count wire runs: read with protocol_verify_run_at */
};

struct protocol_verify_hashes {
	uint32_t region_id;
	uint32_t count;
	uint64_t first_page;
	const uint8_t
		*hashes; /* count little-endian uint64_t, unaligned: read with protocol_hash_at */
};

struct protocol_resume {
	uint64_t pages_verified;
	uint64_t pages_mismatched;
};

struct protocol_resumed {
	int32_t status;
	uint64_t pages_received;
};

/* POSTCOPY_PAGES and PUSH_REQ: a window of one region's page bitmap, whole 64-page words. */
struct protocol_page_bitmap {
	uint32_t region_id;
	uint32_t nwords; /* 1..PROTOCOL_BITMAP_WORDS_MAX */
	uint64_t first_word;
	const uint8_t *words; /* nwords little-endian uint64_t, unaligned: protocol_word_at */
};

struct protocol_postcopy_begin {
	uint64_t pages; /* set bits over every POSTCOPY_PAGES message */
};

/* One region's staging area on the destination: post-copy pushes land there (transport
 * region staging_id), are copied into the guest by UFFDIO_COPY and released. */
struct protocol_staging {
	uint32_t region_id;
	uint32_t staging_id;
};

struct protocol_postcopy_done {
	uint64_t pages_pushed;	/* arrived by the background push */
	uint64_t pages_fetched; /* pulled on demand (transport_read) */
	uint64_t faults;	/* guest accesses that waited for a page */
	uint64_t stall_us;	/* summed over faults */
};

/* RECOVER: which migration the new connection resumes (the id both ends derived from the first
 * handshake) and a fresh nonce; the proofs of the key cover both. */
struct protocol_recover {
	uint32_t flags; /* PROTOCOL_HELLO_KEY */
	uint8_t session_id[PROTOCOL_MAC_LEN];
	uint8_t nonce[PROTOCOL_NONCE_LEN];
};

/* RECOVER_ACK: the destination's fresh nonce and its proof. */
struct protocol_recover_ack {
	uint32_t flags; /* PROTOCOL_HELLO_KEY */
	uint8_t nonce[PROTOCOL_NONCE_LEN];
	uint8_t mac[PROTOCOL_MAC_LEN];
};

/* RECOVER_READY: set bits over every RECOVER_PAGES message. */
struct protocol_recover_ready {
	uint64_t pages_missing;
};

struct protocol_abort {
	int32_t code;			      /* -errno */
	char reason[PROTOCOL_REASON_MAX + 1]; /* NUL-terminated */
};

/* Check the header of a received control message: magic, version, length, known type.
 * Returns the type (> 0) and sets *payload_p / *payload_len_p, or -EPROTO with why filled. */
int protocol_parse(const void *buf, size_t len, const void **payload_p, size_t *payload_len_p,
		   char *why, size_t why_len);
const char *protocol_type_name(int type);

/* Encoders: write one whole message into buf (at least TRANSPORT_CTRL_MAX bytes) and return its
 * length. */
size_t protocol_hello_to_wire(const struct protocol_hello *m, void *buf);
size_t protocol_hello_ack_to_wire(const struct protocol_hello_ack *m, void *buf);
size_t protocol_auth_to_wire(const uint8_t mac[PROTOCOL_MAC_LEN], void *buf);
/* An empty PROTOCOL_HEARTBEAT. */
size_t protocol_heartbeat_to_wire(void *buf);
size_t protocol_region_table_to_wire(const struct protocol_region *regions, size_t count,
				     void *buf);
/* type: PROTOCOL_REGION_ACK or PROTOCOL_PULL_REPORT. */
size_t protocol_pull_to_wire(int type, const struct protocol_pull *m, void *buf);
size_t protocol_round_to_wire(const struct protocol_round *m, void *buf);
size_t protocol_round_end_to_wire(int type, const struct protocol_round_end *m, void *buf);
size_t protocol_device_state_to_wire(const struct protocol_device_state *m, void *buf);
size_t protocol_verify_req_to_wire(const struct protocol_verify_req *m, void *buf);
/* runs: count entries as struct protocol_verify_runs describes, count <=
 * PROTOCOL_VERIFY_RUNS_MAX. */
size_t protocol_verify_runs_to_wire(uint32_t region_id, const struct protocol_page_run *runs,
				    uint32_t count, void *buf);
/* hashes: count native values, count <= PROTOCOL_HASHES_MAX. */
size_t protocol_verify_hashes_to_wire(uint32_t region_id, uint64_t first_page,
				      const uint64_t *hashes, uint32_t count, void *buf);
size_t protocol_resume_to_wire(const struct protocol_resume *m, void *buf);
size_t protocol_resumed_to_wire(const struct protocol_resumed *m, void *buf);
size_t protocol_abort_to_wire(int code, const char *reason, void *buf);
/* type: PROTOCOL_POSTCOPY_PAGES or PROTOCOL_PUSH_REQ; words: nwords native values. */
size_t protocol_page_bitmap_to_wire(int type, uint32_t region_id, uint64_t first_word,
				    const uint64_t *words, uint32_t nwords, void *buf);
size_t protocol_postcopy_begin_to_wire(const struct protocol_postcopy_begin *m, void *buf);
/* staging: count entries, count <= PROTOCOL_REGIONS_MAX. */
size_t protocol_postcopy_ready_to_wire(const struct protocol_staging *staging, size_t count,
				       void *buf);
size_t protocol_postcopy_done_to_wire(const struct protocol_postcopy_done *m, void *buf);
size_t protocol_postcopy_end_to_wire(void *buf);
size_t protocol_recover_to_wire(const struct protocol_recover *m, void *buf);
size_t protocol_recover_ack_to_wire(const struct protocol_recover_ack *m, void *buf);
size_t protocol_recover_ready_to_wire(const struct protocol_recover_ready *m, void *buf);

/* Decoders: payload as returned by protocol_parse for the matching type. 0, or -EPROTO with
 * why naming the field. */
int protocol_hello_from_wire(const void *payload, size_t len, struct protocol_hello *m, char *why,
			     size_t why_len);
int protocol_hello_ack_from_wire(const void *payload, size_t len, struct protocol_hello_ack *m,
				 char *why, size_t why_len);
int protocol_auth_from_wire(const void *payload, size_t len, uint8_t mac[PROTOCOL_MAC_LEN],
			    char *why, size_t why_len);
/* regions: room for PROTOCOL_REGIONS_MAX entries. */
int protocol_region_table_from_wire(const void *payload, size_t len,
				    struct protocol_region *regions, size_t *count_p, char *why,
				    size_t why_len);
/* REGION_ACK and PULL_REPORT payloads. */
int protocol_pull_from_wire(const void *payload, size_t len, struct protocol_pull *m, char *why,
			    size_t why_len);
int protocol_round_from_wire(const void *payload, size_t len, struct protocol_round *m, char *why,
			     size_t why_len);
int protocol_round_end_from_wire(const void *payload, size_t len, struct protocol_round_end *m,
				 char *why, size_t why_len);
int protocol_device_state_from_wire(const void *payload, size_t len,
				    struct protocol_device_state *m, char *why, size_t why_len);
int protocol_verify_req_from_wire(const void *payload, size_t len, struct protocol_verify_req *m,
				  char *why, size_t why_len);
int protocol_verify_runs_from_wire(const void *payload, size_t len, struct protocol_verify_runs *m,
				   char *why, size_t why_len);
struct protocol_page_run protocol_verify_run_at(const struct protocol_verify_runs *m,
						uint32_t index);
int protocol_verify_hashes_from_wire(const void *payload, size_t len,
				     struct protocol_verify_hashes *m, char *why, size_t why_len);
uint64_t protocol_hash_at(const struct protocol_verify_hashes *m, uint32_t index);
/* Range of first_word / nwords against the region is the caller's check. */
int protocol_page_bitmap_from_wire(const void *payload, size_t len, struct protocol_page_bitmap *m,
				   char *why, size_t why_len);
uint64_t protocol_word_at(const struct protocol_page_bitmap *m, uint32_t index);
int protocol_postcopy_begin_from_wire(const void *payload, size_t len,
				      struct protocol_postcopy_begin *m, char *why, size_t why_len);
/* staging: room for PROTOCOL_REGIONS_MAX entries. */
int protocol_postcopy_ready_from_wire(const void *payload, size_t len,
				      struct protocol_staging *staging, size_t *count_p, char *why,
				      size_t why_len);
int protocol_postcopy_done_from_wire(const void *payload, size_t len,
				     struct protocol_postcopy_done *m, char *why, size_t why_len);
int protocol_resume_from_wire(const void *payload, size_t len, struct protocol_resume *m, char *why,
			      size_t why_len);
int protocol_resumed_from_wire(const void *payload, size_t len, struct protocol_resumed *m,
			       char *why, size_t why_len);
int protocol_abort_from_wire(const void *payload, size_t len, struct protocol_abort *m, char *why,
			     size_t why_len);
int protocol_recover_from_wire(const void *payload, size_t len, struct protocol_recover *m,
			       char *why, size_t why_len);
int protocol_recover_ack_from_wire(const void *payload, size_t len, struct protocol_recover_ack *m,
				   char *why, size_t why_len);
int protocol_recover_ready_from_wire(const void *payload, size_t len,
				     struct protocol_recover_ready *m, char *why, size_t why_len);

/* Fill nonce with random bytes. 0 or -errno. */
int protocol_nonce(uint8_t nonce[PROTOCOL_NONCE_LEN]);
/* HMAC-SHA256(key, label || first || second): what each side sends to prove it holds the key
 * without revealing it; the label keeps the two directions' proofs distinct. 0 or -EIO. */
int protocol_mac(const uint8_t *key, size_t key_len, const char *label,
		 const uint8_t first[PROTOCOL_NONCE_LEN], const uint8_t second[PROTOCOL_NONCE_LEN],
		 uint8_t mac[PROTOCOL_MAC_LEN]);
/* Constant-time comparison of two MACs: 1 when equal. */
int protocol_mac_equal(const uint8_t a[PROTOCOL_MAC_LEN], const uint8_t b[PROTOCOL_MAC_LEN]);

#endif /* RMIG_ENGINE_PROTOCOL_H */
