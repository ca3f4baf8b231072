/* SPDX-License-Identifier: MIT */
/* transport/rdma/rdma.h - rmig's RDMA transport (rdma://host:port), private to transport/rdma/:
 * librdmacm sets up one or more RC queue pairs per connection (transport_options.streams, 1..8),
 * page runs travel as chained RDMA WRITEs straight into the peer's registered regions, commits
 * and control messages travel as SENDs on queue pair 0 behind them, and pulls are RDMA READs on
 * the least busy queue pair. One file per job:
 *   cm.c        device discovery, rdma_cm addressing, listen / accept / connect of the QPs
 *   conn.c      a connection's verbs resources (PD, CQ, QPs, buffers), its teardown, close
 *   ring.c      the ordered send ring on QP 0: SENDs, credits, held-back commits, recv()
 *   progress.c  the progress thread: completions, receive buffers, rdma_cm events
 *   register.c  memory registration (whole, on-demand paging, chunked), staged regions (those
 *               the kernel will not pin, or every one with reg=copy) and revocation
 *   post.c      posting: batches as WRITE chains, flush, RDMA READ pulls; the ops table
 *
 * Work request id layout (64 bits), so a failed completion names what it carried:
 *   bits 63..60  kind (RDMA_WR_WRITE, _SEND, _READ, _RECV)
 *   bits 59..56  stream (queue pair index, 0 .. streams-1)
 *   bits 55..0   that queue pair's send sequence number (receive: receive buffer index)
 * Each posted send-queue WR is also recorded in a ring per queue pair indexed by sequence, so
 * the run a failed WRITE carried can be reported even when that WR was posted unsignaled.
 *
 * Lock order (take them in this order, never the other way round):
 *   rdma_conn.lock  ->  rdma_conn.base.region_lock (transport.c's; a leaf: nothing is taken
 *                       while it is held)
 * rdma_conn.lock guards the send ring, credits, the receive queue and every queue pair's
 * counters; the listener has no lock (one thread accepts). */
#ifndef RMIG_TRANSPORT_RDMA_H
#define RMIG_TRANSPORT_RDMA_H

#include <errno.h>
#include <infiniband/verbs.h>
#include <netdb.h>
#include <pthread.h>
#include <rdma/rdma_cma.h>
#include <stdint.h>
#include <time.h>

#include "transport/deadline.h"
#include "transport/key_proof.h"
#include "transport/memory.h"
#include "transport/queue.h"
#include "transport/transport_impl.h"
#include "transport/wire.h"

#define RDMA_RECV_DEPTH 32u		 /* receive buffers each side posts for the peer's SENDs */
#define RDMA_SEND_SLOTS 16u		 /* buffers for ordered SENDs, queued or in flight */
#define RDMA_CREDIT_SLOT RDMA_SEND_SLOTS /* one more buffer, for credit returns only */
#define RDMA_RETRY_COUNT 7u		 /* transport retries per work request (the most) */
#define RDMA_DEFAULT_PEER_TIMEOUT_MS 10000u /* when the options name none */
#define RDMA_DEFAULT_INFLIGHT 128u /* send-queue WRs posted and not yet completed, per QP */
#define RDMA_MAX_INFLIGHT 4096u
#define RDMA_CHAIN_MAX 64u	    /* WRs handed to one ibv_post_send */
#define RDMA_BOUNCE_SIZE (1u << 20) /* RDMA READ landing buffer for unregistered destinations */
#define RDMA_CHUNK_SIZE (2ull << 20)
#define RDMA_MSG_STRIDE ((sizeof(struct wire_hdr) + WIRE_MSG_MAX + 63u) & ~(size_t)63u)
#define RDMA_LISTEN_BACKLOG 512 /* requests the kernel queues for the listener; beyond, refused */
#define RDMA_STREAMS_MAX WIRE_STREAMS_MAX
/* With several QPs, page data is cut at multiples of this within its region, and each block
 * keeps to one QP: small enough that one large run is spread over all of them, large enough
 * that the extra WRs cost nothing. */
#define RDMA_STREAM_BLOCK (256u << 10)
#define RDMA_TAG_INDEX_MASK 0xffull /* session_tag's low byte: the queue pair's index */
/* Page bytes one WIRE_STAGED message carries (after its wire_data): fits a receive buffer. */
#define RDMA_STAGED_MAX TRANSPORT_CTRL_MAX
_Static_assert(sizeof(struct wire_data) + RDMA_STAGED_MAX <= WIRE_MSG_MAX, "staged message");

enum rdma_wr_kind {
	RDMA_WR_WRITE = 1,
	RDMA_WR_SEND = 2,
	RDMA_WR_READ = 3,
	RDMA_WR_RECV = 4,
};

#define RDMA_WR_KIND_SHIFT 60
#define RDMA_WR_STREAM_SHIFT 56
#define RDMA_WR_SEQ_MASK ((1ull << RDMA_WR_STREAM_SHIFT) - 1)

static inline uint64_t rdma_wr_id(enum rdma_wr_kind kind, unsigned stream, uint64_t seq)
{
	return ((uint64_t)kind << RDMA_WR_KIND_SHIFT) |
	       ((uint64_t)(stream & 0xf) << RDMA_WR_STREAM_SHIFT) | (seq & RDMA_WR_SEQ_MASK);
}

static inline const char *rdma_wr_kind_name(unsigned kind)
{
	switch (kind) {
	case RDMA_WR_WRITE:
		return "RDMA WRITE";
	case RDMA_WR_SEND:
		return "SEND";
	case RDMA_WR_READ:
		return "RDMA READ";
	case RDMA_WR_RECV:
		return "RECV";
	default:
		return "unknown";
	}
}

/* What one posted send-queue WR carried, for error reports. */
struct rdma_wr_record {
	uint64_t seq;
	uint64_t batch_id;
	uint32_t region_id;
	uint32_t kind;
	uint64_t offset;
	uint64_t length;
};

/* A commit or control message copied out of the receive ring, waiting for recv(). */
struct rdma_queued {
	struct transport_queued entry; /* in rdma_conn.incoming; counts the payload's bytes */
	enum wire_type type;
	uint32_t length;
	char payload[];
};

/* Local registration of a region (transport_region.priv). */
struct rdma_region {
	struct ibv_mr *mr;	/* whole region (WHOLE, ODP, or any region the peer reaches) */
	struct ibv_mr **chunks; /* CHUNKED: one MR per 2 MiB-aligned chunk, on first use */
	size_t nchunks;
	uintptr_t chunk_base; /* addr rounded down to RDMA_CHUNK_SIZE */
	char *addr;
	size_t length;
};

struct rdma_options {
	uint32_t streams;
	uint32_t max_inflight;
	enum transport_reg_mode reg_mode;
	int connect_timeout_ms;
	/* the queue pairs' ack timeout and retry count add up to about this (rdma_stream_param) */
	uint32_t peer_timeout_ms;
};

/* A connect request's private data: the hello and its key part (zeroes: a plain hello). The
 * listener's answer to a key challenge travels in the reject's private data. */
struct rdma_hello_request {
	struct wire_hello hello;
	struct wire_rdma_hello_key key;
} __attribute__((packed));

struct rdma_hello_answer {
	struct wire_hello hello;
	struct wire_hello_key key;
} __attribute__((packed));

_Static_assert(sizeof(struct rdma_hello_request) == WIRE_RDMA_REQUEST_LEN, "request layout");
_Static_assert(sizeof(struct rdma_hello_answer) == WIRE_RDMA_ANSWER_LEN, "answer layout");

#define RDMA_HELLO_KEY_LEN \
	TRANSPORT_KEY_PROOF_KEY_LEN /* the key of the hello's proofs, derived from the session key */
#define RDMA_ANSWERED_MAX 256u	    /* key challenges answered, waiting for their proofs */
#define RDMA_ACCEPTING_MAX 16u	    /* connections given queue pairs, not yet established */
#define RDMA_PEER_NAME_MAX 64u	    /* "rdma://[v6 address]:port" */

/* A key challenge the listener answered: the proof it expects on a connect request of the same
 * session tag, until the deadline. Holds no rdma_cm id and no verbs resource. */
struct rdma_answered {
	uint64_t session_tag;
	struct wire_hello hello; /* host order, as the challenge said */
	uint8_t proof[WIRE_RDMA_KEY_VALUE_LEN];
	int64_t deadline_ms;
	uint64_t order;
	char peer[RDMA_PEER_NAME_MAX];
};

/* A connection whose queue pairs the listener is accepting: queue pairs 0 .. accepted-1 have
 * been accepted, established says which of them are up. Its ids stay on the listener's channel
 * until every queue pair is established; then they move to the connection's. */
struct rdma_accepting {
	struct rdma_conn *rc;
	unsigned accepted;
	uint32_t established; /* bit per queue pair */
	int64_t deadline_ms;  /* for the next step: reset by each step taken */
	uint64_t order;
};

struct rdma_listener {
	struct transport_listener base;
	struct rdma_event_channel *channel;
	struct rdma_cm_id *id;
	struct rdma_options options;
	char host[TRANSPORT_URI_MAX];
	int keyed; /* a session key: every queue pair proves it before it gets a queue pair */
	uint8_t hello_key[RDMA_HELLO_KEY_LEN];
	uint64_t order; /* counts requests, for "oldest first" */
	struct rdma_answered answered[RDMA_ANSWERED_MAX];
	unsigned nanswered;
	struct rdma_accepting accepting[RDMA_ACCEPTING_MAX];
	unsigned naccepting;
};

/* One queue pair of a connection. Counters are guarded by rdma_conn.lock. */
struct rdma_stream {
	struct rdma_cm_id *id;
	uint64_t sq_posted;    /* sequence of the last WR posted */
	uint64_t sq_completed; /* every WR up to this sequence has completed (or never will) */
	uint64_t sq_succeeded; /* every WR up to this sequence has completed successfully */
	struct rdma_wr_record *records; /* window entries, indexed by seq % window */
};

/* An ordered SEND in its slot: built when queued, posted on QP 0 when its turn comes. */
struct rdma_send {
	enum wire_type type;
	uint32_t length; /* payload bytes after the header */
	uint64_t msg;	 /* its place among ordered SENDs, from 0 */
	uint64_t seq;	 /* QP 0 sequence once posted, 0 while waiting */
	/* A commit goes only once queue pair s has succeeded up to after[s] (s >= 1). */
	uint64_t after[RDMA_STREAMS_MAX];
};

struct rdma_conn {
	struct transport_conn base;
	struct rdma_options options;
	struct rdma_event_channel *channel; /* every queue pair's rdma_cm events */
	unsigned nstreams;
	uint64_t session_tag; /* the connection's tag, low byte zero */
	struct rdma_stream streams[RDMA_STREAMS_MAX];
	struct ibv_context *verbs;
	struct ibv_pd *pd;
	struct ibv_comp_channel *comp_channel;
	struct ibv_cq *cq;	      /* shared by every queue pair */
	struct transport_mem buffers; /* receive ring | send slots + credit slot | read bounce */
	struct ibv_mr *buffers_mr;
	char *recv_ring;
	char *send_slots;
	char *bounce;
	uint64_t max_msg_size;
	int odp_supported;
	uint8_t responder_resources;
	uint8_t initiator_depth;

	pthread_t progress_thread;
	int progress_started;
	int stop_fd; /* eventfd: tells the progress thread to leave */

	/* Everything below, and the streams' counters. Lock order: before base.region_lock
	 * (rdma_batch_regions, rdma_stats_add); the only lock of this backend. */
	pthread_mutex_t lock;
	pthread_cond_t changed;
	uint32_t window; /* max_inflight, per queue pair */
	uint32_t signal_every;
	struct rdma_send sends[RDMA_SEND_SLOTS];
	uint64_t sends_queued; /* ordered SENDs given a slot so far */
	uint64_t sends_posted; /* of those, posted on QP 0 */
	uint64_t credit_seq;   /* QP 0 sequence of the last credit return, 0 before */
	uint32_t send_credits; /* SENDs the peer has buffers for */
	uint32_t peer_recv_depth;
	uint32_t credits_to_return; /* receive buffers reposted since our last SEND */
	/* Received commits and control messages, in arrival order: first the queue, then the
	 * buffers still held in the ring once the queue reached its bound. */
	struct transport_queue incoming; /* of struct rdma_queued, one malloc each */
	uint32_t held[RDMA_RECV_DEPTH];	 /* FIFO of receive buffer indices not reposted yet */
	uint32_t held_head, held_count;
	int read_busy;	    /* the bounce buffer is in use */
	unsigned read_next; /* where the next READ starts looking for a queue pair */
	int staged_warned;  /* a region was found unregistrable and carried staged (register.c) */
	int peer_closed;
	int closing; /* our own rdma_disconnect is under way: its event is no error */
	struct transport_run *msg_runs;
};

static inline struct rdma_conn *rdma_conn_of(struct transport_conn *conn)
{
	return container_of(conn, struct rdma_conn, base);
}

/* Verbs calls report failure through errno, which some providers leave at 0. */
static inline int rdma_errno_or(int fallback)
{
	return errno ? -errno : fallback;
}

/* Wait on changed until woken or the deadline (NULL: forever). Caller holds lock.
 * 0 or -ETIMEDOUT, like every wait in transport/. */
static inline int rdma_wait(struct rdma_conn *rc, const struct timespec *deadline)
{
	return transport_cond_wait(&rc->changed, &rc->lock, deadline);
}

/* Per work request, on the data path (post.c and ring.c): kept inline. */

/* Does queue pair stream have room in its in-flight window for wrs more WRs? */
static inline int rdma_room(const struct rdma_conn *rc, unsigned stream, uint32_t wrs)
{
	const struct rdma_stream *s = &rc->streams[stream];

	return s->sq_posted - s->sq_completed + wrs <= rc->window;
}

/* What the WR seq carried, for the error report of a failed completion. */
static inline void rdma_record(struct rdma_conn *rc, unsigned stream, uint64_t seq,
			       enum rdma_wr_kind kind, uint64_t batch_id, uint32_t region_id,
			       uint64_t offset, uint64_t length)
{
	struct rdma_wr_record *record = &rc->streams[stream].records[seq % rc->window];

	record->seq = seq;
	record->kind = kind;
	record->batch_id = batch_id;
	record->region_id = region_id;
	record->offset = offset;
	record->length = length;
}

static inline char *rdma_recv_buffer(struct rdma_conn *rc, uint32_t index)
{
	return rc->recv_ring + (size_t)index * RDMA_MSG_STRIDE;
}

static inline char *rdma_send_buffer(struct rdma_conn *rc, uint32_t slot)
{
	return rc->send_slots + (size_t)slot * RDMA_MSG_STRIDE;
}

/* ---- Shared by the files of this folder; each is commented where it is defined. ---- */

/* cm.c */
int rdma_transport_listen(const char *uri, const struct transport_options *opts,
			  struct transport_listener **listener_p);
int rdma_transport_listener_uri(struct transport_listener *base, char *buf, size_t len);
void rdma_transport_listener_close(struct transport_listener *base);
int rdma_transport_accept(struct transport_listener *base, int timeout_ms,
			  struct transport_conn **conn_p);
int rdma_transport_connect(const char *uri, const struct transport_options *opts,
			   struct transport_conn **conn_p);

/* conn.c */
void rdma_fail_quiet(struct rdma_conn *rc, int err, const char *message);
void rdma_stats_add(struct rdma_conn *rc, uint64_t *field, uint64_t value);
int rdma_post_recv(struct rdma_conn *rc, uint32_t index);
int rdma_conn_resources(struct rdma_conn *rc);
int rdma_stream_qp(struct rdma_conn *rc, unsigned index);
void rdma_stream_param(struct rdma_conn *rc, unsigned index, struct rdma_conn_param *param,
		       struct rdma_hello_request *request, const uint8_t *proof);
void rdma_conn_log_ready(struct rdma_conn *rc);
struct rdma_conn *rdma_conn_new(const char *peer, const struct rdma_options *options);
void rdma_region_release(struct rdma_region *region);
void rdma_conn_destroy(struct rdma_conn *rc);
void rdma_conn_disconnect(struct rdma_conn *rc);
int rdma_progress_start(struct rdma_conn *rc);
void rdma_transport_close(struct transport_conn *conn);
int rdma_transport_peer_timeout_set(struct transport_conn *conn, uint32_t timeout_ms);
uint8_t rdma_ack_timeout_exponent(uint32_t deadline_ms);

/* ring.c */
void rdma_send_pump(struct rdma_conn *rc);
int rdma_send_queue(struct rdma_conn *rc, enum wire_type type, const void *part1, size_t len1,
		    const void *part2, size_t len2, const uint64_t *after,
		    const struct timespec *deadline);
int rdma_send_reserve(struct rdma_conn *rc, const struct timespec *deadline, char **buf_p);
int rdma_send_queued(struct rdma_conn *rc, enum wire_type type, uint32_t length,
		     const uint64_t *after);
int rdma_send_done(const struct rdma_conn *rc, uint64_t msg, int succeeded);
void rdma_credit_maybe_send(struct rdma_conn *rc);
void rdma_repost(struct rdma_conn *rc, uint32_t index);
int rdma_transport_ctrl_send(struct transport_conn *conn, const void *buf, size_t len);
int rdma_transport_recv(struct transport_conn *conn, struct transport_msg *msg, int timeout_ms);

/* progress.c */
void rdma_queue_refill(struct rdma_conn *rc);
void *rdma_progress_main(void *arg);

/* register.c */
int rdma_transport_region_register(struct transport_conn *conn, uint32_t id, void *addr, size_t len,
				   unsigned access);
int rdma_drain_locked(struct rdma_conn *rc, const struct timespec *deadline);
int rdma_transport_region_deregister(struct transport_conn *conn, uint32_t id);
int rdma_transport_region_access_set(struct transport_conn *conn, uint32_t id, unsigned access);
int rdma_local_key(struct rdma_conn *rc, struct rdma_region *reg, char *addr, uint64_t want,
		   uint32_t *lkey_p, uint64_t *len_p);

#endif /* RMIG_TRANSPORT_RDMA_H */
