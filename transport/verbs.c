/* SPDX-License-Identifier: MIT */
/* transport/verbs.c - rmig's RDMA transport (rdma://host:port): librdmacm sets up one or more RC
 * queue pairs per connection (transport_options.streams, 1..8), page runs travel as chained RDMA
 * WRITEs straight into the peer's registered regions, commits and control messages travel as
 * SENDs on queue pair 0 behind them, and pulls are RDMA READs on the least busy queue pair.
 *
 * Work request id layout (64 bits), so a failed completion names what it carried:
 *   bits 63..60  kind (RDMA_WR_WRITE, _SEND, _READ, _RECV)
 *   bits 59..56  stream (queue pair index, 0 .. streams-1)
 *   bits 55..0   that queue pair's send sequence number (receive: receive buffer index)
 * Each posted send-queue WR is also recorded in a ring per queue pair indexed by sequence, so
 * the run a failed WRITE carried can be reported even when that WR was posted unsignaled.
 *
 * Several queue pairs. Each is its own rdma_cm id, connected in order, queue pair 0 first; its
 * connect private data (struct wire_hello) says how many the connection has and, in the low byte
 * of session_tag, which one it is, so the listener groups them under the tag and refuses a stray
 * or repeated one. They share one PD (every region is registered once: one MR, one rkey,
 * announced once), one CQ and one progress thread. Only queue pair 0 carries SENDs and has
 * receive buffers: control messages, commits, region announcements and credits keep one order.
 * Page data is cut at RDMA_STREAM_BLOCK boundaries of its region and each block always travels
 * on the same queue pair (block index plus a region offset, modulo the count): consecutive
 * blocks are dealt round-robin, and bytes sent again in a later batch queue behind their earlier
 * copy on one ordered QP, so the newer bytes land last. Each QP has its own in-flight window and
 * selective signalling.
 *
 * Commits across queue pairs. RC orders the work of one QP only: a commit SEND on QP 0 says
 * nothing about WRITEs still travelling on QP 1..n-1. So a commit is held back until the WRITEs
 * of its batch on every other QP have completed locally: an RC RDMA WRITE completes at the
 * requester only once the responder acknowledged it, and InfiniBand and RoCE responders
 * acknowledge data they have placed. After those completions no byte of the batch is still on
 * its way, and RC orders QP 0's own WRITEs before the SEND. batch_post does not wait for this:
 * the commit waits in the ordered send ring and whoever handles the last completion (usually the
 * progress thread) posts it; everything sent later queues behind it. It costs one acknowledgement
 * delay per batch, hidden while batches pipeline. The alternative, one commit part per QP
 * delivered when all parts are in, would need receive buffers and credits on every QP, n SENDs
 * per batch and reassembly at the receiver. iWARP completes a WRITE once TCP has taken it, not
 * once it is placed, so several queue pairs are refused on iWARP devices.
 *
 * Flow control (queue pair 0): each side posts recv_depth receive buffers of WIRE_MSG_MAX bytes
 * before it connects and announces recv_depth in the connect private data. A SEND consumes one
 * credit; receivers return credits in every header they send (wire_hdr.credits) and with an
 * explicit WIRE_CREDIT once half the ring is free. The last credit is kept for
 * WIRE_CREDIT/WIRE_CLOSE, so credits can always flow back and a SEND never meets an empty
 * receive queue (no RNR). Ordered SENDs take one of RDMA_SEND_SLOTS buffers when queued and
 * keep it until their completion, so a sender that outruns the peer's credits blocks there.
 * Commits and control messages are copied out of the receive ring into a queue for recv()
 * (bounded, TRANSPORT_QUEUE_BYTES_MAX) and their buffers reposted at once, so an engine that is not
 * reading yet does not stall the peer after a few dozen messages; past the bound the buffers
 * stay held and the missing credits slow the peer down instead.
 * A progress thread per connection polls the completion queue and the rdma_cm events, so the
 * peer's credits return and held-back commits go out even while the local engine is not inside
 * a transport call. */
#include <errno.h>
#include <fcntl.h>
#include <infiniband/verbs.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <rdma/rdma_cma.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "transport/deadline.h"
#include "transport/log.h"
#include "transport/memory.h"
#include "transport/queue.h"
#include "transport/transport_impl.h"
#include "transport/wire.h"

#define RDMA_RECV_DEPTH 32u		 /* receive buffers each side posts for the peer's SENDs */
#define RDMA_SEND_SLOTS 16u		 /* buffers for ordered SENDs, queued or in flight */
#define RDMA_CREDIT_SLOT RDMA_SEND_SLOTS /* one more buffer, for credit returns only */
#define RDMA_DEFAULT_INFLIGHT 128u	 /* send-queue WRs posted and not yet completed, per QP */
#define RDMA_MAX_INFLIGHT 4096u
#define RDMA_CHAIN_MAX 64u	    /* WRs handed to one ibv_post_send */
#define RDMA_BOUNCE_SIZE (1u << 20) /* RDMA READ landing buffer for unregistered destinations */
#define RDMA_CHUNK_SIZE (2ull << 20)
#define RDMA_MSG_STRIDE ((sizeof(struct wire_hdr) + WIRE_MSG_MAX + 63u) & ~(size_t)63u)
#define RDMA_LISTEN_BACKLOG 16
#define RDMA_STREAMS_MAX WIRE_STREAMS_MAX
/* With several QPs, page data is cut at multiples of this within its region, and each block
 * keeps to one QP: small enough that one large run is spread over all of them, large enough
 * that the extra WRs cost nothing. */
#define RDMA_STREAM_BLOCK (256u << 10)
#define RDMA_TAG_INDEX_MASK 0xffull /* session_tag's low byte: the queue pair's index */

enum rdma_wr_kind {
	RDMA_WR_WRITE = 1,
	RDMA_WR_SEND = 2,
	RDMA_WR_READ = 3,
	RDMA_WR_RECV = 4,
};

#define RDMA_WR_KIND_SHIFT 60
#define RDMA_WR_STREAM_SHIFT 56
#define RDMA_WR_SEQ_MASK ((1ull << RDMA_WR_STREAM_SHIFT) - 1)

static uint64_t rdma_wr_id(enum rdma_wr_kind kind, unsigned stream, uint64_t seq)
{
	return ((uint64_t)kind << RDMA_WR_KIND_SHIFT) |
	       ((uint64_t)(stream & 0xf) << RDMA_WR_STREAM_SHIFT) | (seq & RDMA_WR_SEQ_MASK);
}

static const char *rdma_wr_kind_name(unsigned kind)
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
};

/* A connect request taken off the listener's channel, not answered yet. */
struct rdma_request {
	struct rdma_cm_id *id;
	unsigned char data[sizeof(struct wire_hello)];
	size_t len;
};

struct rdma_listener {
	struct transport_listener base;
	struct rdma_event_channel *channel;
	struct rdma_cm_id *id;
	struct rdma_options options;
	char host[TRANSPORT_URI_MAX];
	/* First queue pairs of other connections that came while one was being grouped. */
	struct rdma_request pending[RDMA_LISTEN_BACKLOG];
	unsigned npending;
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

	pthread_mutex_t lock; /* everything below, and the streams' counters */
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
	int peer_closed;
	int closing; /* our own rdma_disconnect is under way: its event is no error */
	struct transport_run *msg_runs;
};

static struct rdma_conn *rdma_conn_of(struct transport_conn *conn)
{
	return container_of(conn, struct rdma_conn, base);
}

/* Verbs calls report failure through errno, which some providers leave at 0. */
static int rdma_errno_or(int fallback)
{
	return errno ? -errno : fallback;
}

/* ---- time ---- */

/* Wait on changed until woken or the deadline (NULL: forever). Caller holds lock. */
static int rdma_wait(struct rdma_conn *rc, const struct timespec *deadline)
{
	return transport_cond_wait(&rc->changed, &rc->lock, deadline);
}

/* ---- device discovery ---- */

int rdma_transport_device_count(void)
{
	struct ibv_device **list;
	int num = 0, active = 0;

	list = ibv_get_device_list(&num);
	if (!list)
		return 0;
	for (int i = 0; i < num; i++) {
		struct ibv_context *ctx = ibv_open_device(list[i]);
		struct ibv_device_attr attr;
		int found = 0;

		if (!ctx)
			continue;
		if (!ibv_query_device(ctx, &attr)) {
			for (unsigned port = 1; port <= attr.phys_port_cnt && !found; port++) {
				struct ibv_port_attr port_attr;

				if (!ibv_query_port(ctx, (uint8_t)port, &port_attr) &&
				    port_attr.state == IBV_PORT_ACTIVE)
					found = 1;
			}
		}
		active += found;
		ibv_close_device(ctx);
	}
	ibv_free_device_list(list);
	return active;
}

/* ---- rdma_cm helpers ---- */

static void rdma_options_from(const struct transport_options *opts, struct rdma_options *out)
{
	memset(out, 0, sizeof(*out));
	out->streams = 1;
	out->max_inflight = RDMA_DEFAULT_INFLIGHT;
	out->connect_timeout_ms = 10000;
	if (!opts)
		return;
	if (opts->streams)
		out->streams = opts->streams;
	if (opts->max_inflight)
		out->max_inflight = opts->max_inflight;
	if (out->max_inflight < 4)
		out->max_inflight = 4;
	if (out->max_inflight > RDMA_MAX_INFLIGHT)
		out->max_inflight = RDMA_MAX_INFLIGHT;
	out->reg_mode = opts->reg_mode;
	if (opts->connect_timeout_ms > 0)
		out->connect_timeout_ms = opts->connect_timeout_ms;
}

static int rdma_addrinfo(const char *host, uint16_t port, int passive, struct addrinfo **ai_p)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	char port_text[8];
	int ret;

	hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
	snprintf(port_text, sizeof(port_text), "%u", port);
	ret = getaddrinfo(host, port_text, &hints, ai_p);
	if (ret) {
		rmig_log_error("rdma: cannot resolve '%s': %s", host, gai_strerror(ret));
		return -EHOSTUNREACH;
	}
	return 0;
}

/* Wait up to timeout_ms (-1: forever) for the next event on channel. */
static int rdma_cm_event_wait(struct rdma_event_channel *channel, int timeout_ms,
			      struct rdma_cm_event **event_p)
{
	struct pollfd pfd = {.fd = channel->fd, .events = POLLIN};
	int ret;

	do {
		ret = poll(&pfd, 1, timeout_ms);
	} while (ret < 0 && errno == EINTR);
	if (ret < 0)
		return -errno;
	if (ret == 0)
		return -ETIMEDOUT;
	if (rdma_get_cm_event(channel, event_p))
		return rdma_errno_or(-EIO);
	return 0;
}

/* Wait for one expected event on queue pair stream's id; anything else (another event, or an
 * event of another queue pair of the connection) is an error named in the log. */
static int rdma_cm_expect(struct rdma_event_channel *channel, struct rdma_cm_id *id,
			  unsigned stream, enum rdma_cm_event_type expected, int timeout_ms,
			  const char *peer, struct rdma_cm_event **event_p)
{
	struct rdma_cm_event *event = NULL;
	int ret = rdma_cm_event_wait(channel, timeout_ms, &event);

	if (!ret && !event)
		ret = -EIO;
	if (ret) {
		rmig_log_error("rdma %s: queue pair %u: waiting for %s: %s", peer, stream,
			       rdma_event_str(expected), strerror(-ret));
		return ret;
	}
	if (event->event != expected || event->id != id) {
		ret = event->event == RDMA_CM_EVENT_REJECTED ? -ECONNREFUSED : -ECONNABORTED;
		if (event->id != id)
			rmig_log_error("rdma %s: queue pair %u: expected %s, got %s (status %d) on "
				       "another queue pair of the connection",
				       peer, stream, rdma_event_str(expected),
				       rdma_event_str(event->event), event->status);
		else if (event->event == RDMA_CM_EVENT_REJECTED &&
			 event->param.conn.private_data_len &&
			 ((const char *)event->param.conn.private_data)[0])
			rmig_log_error("rdma %s: queue pair %u: connection rejected by the peer: "
				       "%.*s",
				       peer, stream, (int)event->param.conn.private_data_len,
				       (const char *)event->param.conn.private_data);
		else if (event->event == RDMA_CM_EVENT_REJECTED)
			rmig_log_error("rdma %s: connection rejected (status %d) without a reason: "
				       "is an rmig listener on that address and port?",
				       peer, event->status);
		else
			rmig_log_error("rdma %s: queue pair %u: expected %s, got %s (status %d)",
				       peer, stream, rdma_event_str(expected),
				       rdma_event_str(event->event), event->status);
		rdma_ack_cm_event(event);
		return ret;
	}
	if (event_p)
		*event_p = event;
	else
		rdma_ack_cm_event(event);
	return 0;
}

/* The peer's hello from connect private data; rdma_cm may pad the data. */
static int rdma_hello_check(const void *data, size_t len, struct wire_hello *hello, char *why,
			    size_t why_len)
{
	if (!data || len < sizeof(struct wire_hello)) {
		snprintf(why, why_len, "private data: %zu bytes, need a %zu-byte hello", len,
			 sizeof(struct wire_hello));
		return -EPROTO;
	}
	if (wire_hello_from_wire(data, sizeof(struct wire_hello), hello, why, why_len))
		return -EPROTO;
	if (hello->recv_depth < 2 || hello->recv_depth > 4096) {
		snprintf(why, why_len, "hello.recv_depth: %u not in 2..4096", hello->recv_depth);
		return -EPROTO;
	}
	if (hello->max_ctrl < TRANSPORT_CTRL_MAX) {
		snprintf(why, why_len, "hello.max_ctrl: %u is below %u", hello->max_ctrl,
			 TRANSPORT_CTRL_MAX);
		return -EPROTO;
	}
	return 0;
}

/* Reject private data is capped (148 bytes for RDMA_PS_TCP over IB CM); keep the reason short. */
static uint8_t rdma_reject_length(char *why)
{
	size_t len = strlen(why);

	if (len > 139) {
		why[139] = '\0';
		len = 139;
	}
	return (uint8_t)(len + 1);
}

/* ---- connection resources ---- */

static void rdma_fail_quiet(struct rdma_conn *rc, int err, const char *message)
{
	pthread_mutex_lock(rc->base.region_lock);
	if (!rc->base.failed) {
		rc->base.failed = err;
		snprintf(rc->base.error, sizeof(rc->base.error), "%s", message);
	}
	pthread_mutex_unlock(rc->base.region_lock);
}

static void rdma_stats_add(struct rdma_conn *rc, uint64_t *field, uint64_t value)
{
	pthread_mutex_lock(rc->base.region_lock);
	*field += value;
	pthread_mutex_unlock(rc->base.region_lock);
}

static char *rdma_recv_buffer(struct rdma_conn *rc, uint32_t index)
{
	return rc->recv_ring + (size_t)index * RDMA_MSG_STRIDE;
}

static char *rdma_send_buffer(struct rdma_conn *rc, uint32_t slot)
{
	return rc->send_slots + (size_t)slot * RDMA_MSG_STRIDE;
}

/* Receive buffers live on queue pair 0 only: it alone carries SENDs. */
static int rdma_post_recv(struct rdma_conn *rc, uint32_t index)
{
	struct ibv_sge sge = {
		.addr = (uintptr_t)rdma_recv_buffer(rc, index),
		.length = (uint32_t)RDMA_MSG_STRIDE,
		.lkey = rc->buffers_mr->lkey,
	};
	struct ibv_recv_wr wr = {
		.wr_id = rdma_wr_id(RDMA_WR_RECV, 0, index),
		.sg_list = &sge,
		.num_sge = 1,
	};
	struct ibv_recv_wr *bad;
	int ret = ibv_post_recv(rc->streams[0].id->qp, &wr, &bad);

	return ret ? -ret : 0;
}

static int rdma_odp_supported(struct ibv_context *ctx)
{
	struct ibv_device_attr_ex attr;
	uint32_t need = IBV_ODP_SUPPORT_SEND | IBV_ODP_SUPPORT_RECV | IBV_ODP_SUPPORT_WRITE |
			IBV_ODP_SUPPORT_READ;

	memset(&attr, 0, sizeof(attr));
	if (ibv_query_device_ex(ctx, NULL, &attr))
		return 0;
	if (!(attr.odp_caps.general_caps & IBV_ODP_SUPPORT))
		return 0;
	return (attr.odp_caps.per_transport_caps.rc_odp_caps & need) == need;
}

static uint64_t rdma_max_msg_override(uint64_t device_max)
{
	const char *text = getenv("RMIG_RDMA_MAX_MSG");
	unsigned long long value;
	char *end;

	/* A knob for tests and tuning: forces the split path with small runs. */
	if (!text || !*text)
		return device_max;
	value = strtoull(text, &end, 0);
	if (*end || value == 0 || value > device_max)
		return device_max;
	return value;
}

/* What every queue pair of the connection shares: PD, CQ, buffers, per-QP records. Queue pair
 * 0's id is bound to the device already. */
static int rdma_conn_resources(struct rdma_conn *rc)
{
	struct ibv_context *ctx = rc->streams[0].id->verbs;
	struct ibv_device_attr dev_attr;
	struct ibv_port_attr port_attr;
	size_t total;
	int ret, node, cqe;

	rc->verbs = ctx;
	if (ibv_query_device(ctx, &dev_attr) ||
	    ibv_query_port(ctx, rc->streams[0].id->port_num, &port_attr)) {
		ret = rdma_errno_or(-EIO);
		rmig_log_error("rdma %s: cannot query device %s: %s", rc->base.peer,
			       ibv_get_device_name(ctx->device), strerror(-ret));
		return ret;
	}
	if (rc->nstreams > 1 && ctx->device->transport_type == IBV_TRANSPORT_IWARP) {
		rmig_log_error("rdma %s: %u queue pairs asked, but device %s is iWARP: a WRITE "
			       "completion there does not mean the data is placed, so a commit "
			       "could overtake another queue pair's data; use one queue pair",
			       rc->base.peer, rc->nstreams, ibv_get_device_name(ctx->device));
		return -EOPNOTSUPP;
	}
	rc->max_msg_size = rdma_max_msg_override(port_attr.max_msg_sz);
	rc->odp_supported = rdma_odp_supported(ctx);
	if (rc->options.reg_mode == TRANSPORT_REG_ODP && !rc->odp_supported) {
		rmig_log_error("rdma %s: on-demand paging asked, but device %s has no RC ODP "
			       "support for send, receive, write and read; use whole-region or "
			       "chunked registration",
			       rc->base.peer, ibv_get_device_name(ctx->device));
		return -EOPNOTSUPP;
	}
	if ((int)rc->window > dev_attr.max_qp_wr - 1)
		rc->window = (uint32_t)dev_attr.max_qp_wr - 1;
	/* One CQ takes every queue pair's send completions and QP 0's receives. */
	if ((long long)rc->nstreams * (rc->window + 1) + RDMA_RECV_DEPTH + 8 > dev_attr.max_cqe)
		rc->window =
			(uint32_t)((dev_attr.max_cqe - RDMA_RECV_DEPTH - 8) / rc->nstreams - 1);
	if (rc->window < 4) {
		rmig_log_error("rdma %s: device %s allows %d completion queue entries, too few for "
			       "%u queue pairs",
			       rc->base.peer, ibv_get_device_name(ctx->device), dev_attr.max_cqe,
			       rc->nstreams);
		return -ENOMEM;
	}
	rc->signal_every = rc->window / 4 ? rc->window / 4 : 1;
	for (unsigned s = 0; s < rc->nstreams; s++) {
		rc->streams[s].records = calloc(rc->window, sizeof(*rc->streams[s].records));
		if (!rc->streams[s].records)
			return -ENOMEM;
	}
	rc->msg_runs = calloc(TRANSPORT_BATCH_MAX_RUNS, sizeof(*rc->msg_runs));
	if (!rc->msg_runs)
		return -ENOMEM;
	rc->responder_resources =
		(uint8_t)(dev_attr.max_qp_rd_atom < 16 ? dev_attr.max_qp_rd_atom : 16);
	rc->initiator_depth =
		(uint8_t)(dev_attr.max_qp_init_rd_atom < 16 ? dev_attr.max_qp_init_rd_atom : 16);

	rc->pd = ibv_alloc_pd(ctx);
	if (!rc->pd) {
		ret = -ENOMEM;
		rmig_log_error("rdma %s: ibv_alloc_pd failed", rc->base.peer);
		return ret;
	}
	rc->comp_channel = ibv_create_comp_channel(ctx);
	if (!rc->comp_channel) {
		ret = rdma_errno_or(-ENOMEM);
		rmig_log_error("rdma %s: ibv_create_comp_channel: %s", rc->base.peer,
			       strerror(-ret));
		return ret;
	}
	fcntl(rc->comp_channel->fd, F_SETFL, fcntl(rc->comp_channel->fd, F_GETFL) | O_NONBLOCK);
	cqe = (int)(rc->nstreams * (rc->window + 1) + RDMA_RECV_DEPTH + 8);
	rc->cq = ibv_create_cq(ctx, cqe, rc, rc->comp_channel, 0);
	if (!rc->cq) {
		ret = rdma_errno_or(-ENOMEM);
		rmig_log_error("rdma %s: ibv_create_cq (%d entries): %s", rc->base.peer, cqe,
			       strerror(-ret));
		return ret;
	}

	node = transport_mem_device_numa_node(ibv_get_device_name(ctx->device));
	total = RDMA_MSG_STRIDE * (RDMA_RECV_DEPTH + RDMA_SEND_SLOTS + 1) + RDMA_BOUNCE_SIZE;
	ret = transport_mem_alloc(total, node, 0, &rc->buffers);
	if (ret)
		return ret;
	rc->recv_ring = rc->buffers.addr;
	rc->send_slots = rc->recv_ring + RDMA_MSG_STRIDE * RDMA_RECV_DEPTH;
	rc->bounce = rc->send_slots + RDMA_MSG_STRIDE * (RDMA_SEND_SLOTS + 1);
	rc->buffers_mr = ibv_reg_mr(rc->pd, rc->buffers.addr, total, IBV_ACCESS_LOCAL_WRITE);
	if (!rc->buffers_mr) {
		ret = rdma_errno_or(-ENOMEM);
		rmig_log_error("rdma %s: registering %zu bytes of transport buffers: %s",
			       rc->base.peer, total, strerror(-ret));
		return ret;
	}
	if (ibv_req_notify_cq(rc->cq, 0)) {
		rmig_log_error("rdma %s: ibv_req_notify_cq failed", rc->base.peer);
		return -EIO;
	}
	return 0;
}

/* The RC queue pair of stream index on its id (bound to the connection's device already);
 * queue pair 0 also gets the receive ring. */
static int rdma_stream_qp(struct rdma_conn *rc, unsigned index)
{
	struct rdma_stream *stream = &rc->streams[index];
	struct ibv_qp_init_attr qp_attr;
	int ret;

	if (stream->id->verbs != rc->verbs) {
		rmig_log_error("rdma %s: queue pair %u reached device %s, queue pair 0 device %s: "
			       "all queue pairs of a connection must share one device",
			       rc->base.peer, index, ibv_get_device_name(stream->id->verbs->device),
			       ibv_get_device_name(rc->verbs->device));
		return -EXDEV;
	}
	memset(&qp_attr, 0, sizeof(qp_attr));
	qp_attr.send_cq = rc->cq;
	qp_attr.recv_cq = rc->cq;
	qp_attr.qp_type = IBV_QPT_RC;
	qp_attr.cap.max_send_wr = rc->window + 1;
	qp_attr.cap.max_recv_wr = index == 0 ? RDMA_RECV_DEPTH : 1;
	qp_attr.cap.max_send_sge = 1;
	qp_attr.cap.max_recv_sge = 1;
	if (rdma_create_qp(stream->id, rc->pd, &qp_attr)) {
		ret = rdma_errno_or(-ENOMEM);
		rmig_log_error("rdma %s: rdma_create_qp for queue pair %u: %s", rc->base.peer,
			       index, strerror(-ret));
		return ret;
	}
	if (index != 0)
		return 0;
	for (uint32_t i = 0; i < RDMA_RECV_DEPTH; i++) {
		ret = rdma_post_recv(rc, i);
		if (ret) {
			rmig_log_error("rdma %s: posting receive buffer %u: %s", rc->base.peer, i,
				       strerror(-ret));
			return ret;
		}
	}
	return 0;
}

/* Connect / accept parameters of queue pair index: its hello names the connection and itself. */
static void rdma_stream_param(struct rdma_conn *rc, unsigned index, struct rdma_conn_param *param,
			      struct wire_hello *hello)
{
	wire_hello_to_wire(hello, rc->nstreams, TRANSPORT_CTRL_MAX, RDMA_RECV_DEPTH,
			   rc->session_tag | index);
	memset(param, 0, sizeof(*param));
	param->private_data = hello;
	param->private_data_len = sizeof(*hello);
	param->responder_resources = rc->responder_resources;
	param->initiator_depth = rc->initiator_depth;
	param->retry_count = 7;
	/* Credits make RNR impossible; a few retries only cover a peer still posting. */
	param->rnr_retry_count = 3;
}

static void rdma_conn_log_ready(struct rdma_conn *rc)
{
	rmig_log_info("rdma %s: %u queue pair%s on device %s port %u, max message %llu bytes, "
		      "window %u WRs per queue pair, transport buffers %zu bytes (%s, NUMA node "
		      "%d)",
		      rc->base.peer, rc->nstreams, rc->nstreams == 1 ? "" : "s",
		      ibv_get_device_name(rc->verbs->device), rc->streams[0].id->port_num,
		      (unsigned long long)rc->max_msg_size, rc->window, rc->buffers.length,
		      rc->buffers.hugepage ? "hugepages" : "small pages", rc->buffers.numa_node);
}

static struct rdma_conn *rdma_conn_new(const char *peer, const struct rdma_options *options)
{
	struct rdma_conn *rc = calloc(1, sizeof(*rc));

	if (!rc)
		return NULL;
	if (transport_conn_init(&rc->base, &rdma_transport_ops, peer)) {
		free(rc);
		return NULL;
	}
	rc->options = *options;
	rc->nstreams = 1;
	rc->window = options->max_inflight;
	rc->stop_fd = -1;
	pthread_mutex_init(&rc->lock, NULL);
	transport_cond_init(&rc->changed);
	transport_queue_init(&rc->incoming, NULL);
	return rc;
}

static void rdma_region_release(struct rdma_region *region)
{
	if (!region)
		return;
	if (region->mr)
		ibv_dereg_mr(region->mr);
	for (size_t i = 0; i < region->nchunks; i++)
		if (region->chunks[i])
			ibv_dereg_mr(region->chunks[i]);
	free(region->chunks);
	free(region);
}

static void *rdma_progress_main(void *arg);

/* Everything after rdma_conn_new, in reverse order; safe on a half-built connection. */
static void rdma_conn_destroy(struct rdma_conn *rc)
{
	if (rc->progress_started) {
		uint64_t one = 1;

		if (write(rc->stop_fd, &one, sizeof(one)) != sizeof(one))
			rmig_log_warn("rdma %s: cannot wake the progress thread", rc->base.peer);
		pthread_join(rc->progress_thread, NULL);
	}
	if (rc->stop_fd >= 0)
		close(rc->stop_fd);
	for (unsigned s = 0; s < RDMA_STREAMS_MAX; s++)
		if (rc->streams[s].id && rc->streams[s].id->qp)
			rdma_destroy_qp(rc->streams[s].id);
	if (rc->cq)
		ibv_destroy_cq(rc->cq);
	if (rc->comp_channel)
		ibv_destroy_comp_channel(rc->comp_channel);
	for (size_t i = 0; i < rc->base.local.count; i++)
		rdma_region_release(rc->base.local.regions[i].priv);
	rc->base.local.count = 0;
	if (rc->buffers_mr)
		ibv_dereg_mr(rc->buffers_mr);
	transport_mem_free(&rc->buffers);
	if (rc->pd)
		ibv_dealloc_pd(rc->pd);
	for (unsigned s = 0; s < RDMA_STREAMS_MAX; s++)
		if (rc->streams[s].id)
			rdma_destroy_id(rc->streams[s].id);
	if (rc->channel)
		rdma_destroy_event_channel(rc->channel);
	pthread_cond_destroy(&rc->changed);
	pthread_mutex_destroy(&rc->lock);
	for (unsigned s = 0; s < RDMA_STREAMS_MAX; s++)
		free(rc->streams[s].records);
	free(rc->msg_runs);
	transport_queue_fini(&rc->incoming);
	transport_conn_fini(&rc->base);
	free(rc);
}

/* Tell the peer of every queue pair set up so far that the connection is going away. */
static void rdma_conn_disconnect(struct rdma_conn *rc)
{
	for (unsigned s = 0; s < RDMA_STREAMS_MAX; s++)
		if (rc->streams[s].id && rc->streams[s].id->qp)
			rdma_disconnect(rc->streams[s].id);
}

static int rdma_progress_start(struct rdma_conn *rc)
{
	int ret;

	rc->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (rc->stop_fd < 0)
		return -errno;
	ret = pthread_create(&rc->progress_thread, NULL, rdma_progress_main, rc);
	if (ret) {
		rmig_log_error("rdma %s: cannot start the progress thread: %s", rc->base.peer,
			       strerror(ret));
		return -ret;
	}
	rc->progress_started = 1;
	return 0;
}

static void rdma_peer_name(struct rdma_cm_id *id, char *buf, size_t len)
{
	struct sockaddr *addr = rdma_get_peer_addr(id);
	char host[NI_MAXHOST] = "?";

	if (addr)
		getnameinfo(addr,
			    addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
							: sizeof(struct sockaddr_in),
			    host, sizeof(host), NULL, 0, NI_NUMERICHOST);
	snprintf(buf, len, strchr(host, ':') ? "rdma://[%s]:%u" : "rdma://%s:%u", host,
		 (unsigned)ntohs(rdma_get_dst_port(id)));
}

/* ---- listen / accept / connect ---- */

static int rdma_transport_listen(const char *uri, const struct transport_options *opts,
				 struct transport_listener **listener_p)
{
	struct transport_uri parsed;
	struct rdma_listener *listener;
	struct addrinfo *ai;
	int ret;

	ret = transport_uri_parse(uri, &parsed);
	if (ret)
		return ret;
	listener = calloc(1, sizeof(*listener));
	if (!listener)
		return -ENOMEM;
	listener->base.ops = &rdma_transport_ops;
	/* The connecting side says how many queue pairs a connection has. */
	rdma_options_from(opts, &listener->options);
	snprintf(listener->host, sizeof(listener->host), "%s", parsed.host);
	ret = rdma_addrinfo(parsed.host, parsed.port, 1, &ai);
	if (ret)
		goto err_free_listener;
	listener->channel = rdma_create_event_channel();
	if (!listener->channel) {
		ret = -errno;
		rmig_log_error("rdma: rdma_create_event_channel: %s (is a verbs device present?)",
			       strerror(-ret));
		goto err_free_ai;
	}
	if (rdma_create_id(listener->channel, &listener->id, listener, RDMA_PS_TCP)) {
		ret = -errno;
		rmig_log_error("rdma: rdma_create_id: %s", strerror(-ret));
		goto err_destroy_channel;
	}
	if (rdma_bind_addr(listener->id, ai->ai_addr)) {
		ret = -errno;
		rmig_log_error("rdma: cannot bind %s: %s (no RDMA device on that address?)", uri,
			       strerror(-ret));
		goto err_destroy_id;
	}
	if (rdma_listen(listener->id, RDMA_LISTEN_BACKLOG)) {
		ret = -errno;
		rmig_log_error("rdma: rdma_listen on %s: %s", uri, strerror(-ret));
		goto err_destroy_id;
	}
	freeaddrinfo(ai);
	*listener_p = &listener->base;
	return 0;

err_destroy_id:
	rdma_destroy_id(listener->id);
err_destroy_channel:
	rdma_destroy_event_channel(listener->channel);
err_free_ai:
	freeaddrinfo(ai);
err_free_listener:
	free(listener);
	return ret;
}

static int rdma_transport_listener_uri(struct transport_listener *base, char *buf, size_t len)
{
	struct rdma_listener *listener = container_of(base, struct rdma_listener, base);
	unsigned port = ntohs(rdma_get_src_port(listener->id));
	int n;

	n = snprintf(buf, len, strchr(listener->host, ':') ? "rdma://[%s]:%u" : "rdma://%s:%u",
		     listener->host, port);
	if (n < 0 || (size_t)n >= len)
		return -ENOSPC;
	return 0;
}

/* Answer a connect request with a reason (logged here) and forget it. */
static void rdma_request_refuse(struct rdma_request *req, const char *peer, char *why)
{
	rmig_log_error("rdma %s: refusing connection: %s", peer, why);
	rdma_reject(req->id, why, rdma_reject_length(why));
	rdma_destroy_id(req->id);
	req->id = NULL;
}

static void rdma_transport_listener_close(struct transport_listener *base)
{
	struct rdma_listener *listener = container_of(base, struct rdma_listener, base);

	for (unsigned i = 0; i < listener->npending; i++) {
		rdma_reject(listener->pending[i].id, NULL, 0);
		rdma_destroy_id(listener->pending[i].id);
	}
	rdma_destroy_id(listener->id);
	rdma_destroy_event_channel(listener->channel);
	free(listener);
}

/* Wait up to timeout_ms for the next connect request on the listener's channel. -EAGAIN: an
 * event that is not a request came (logged). */
static int rdma_request_wait(struct rdma_listener *listener, int timeout_ms,
			     struct rdma_request *req)
{
	struct rdma_cm_event *event;
	int ret;

	ret = rdma_cm_event_wait(listener->channel, timeout_ms, &event);
	if (ret)
		return ret;
	if (event->event != RDMA_CM_EVENT_CONNECT_REQUEST) {
		rmig_log_error("rdma: listener got %s, expected a connect request",
			       rdma_event_str(event->event));
		rdma_ack_cm_event(event);
		return -EAGAIN;
	}
	req->id = event->id;
	req->len = event->param.conn.private_data_len;
	if (req->len > sizeof(req->data))
		req->len = sizeof(req->data);
	if (event->param.conn.private_data)
		memcpy(req->data, event->param.conn.private_data, req->len);
	else
		req->len = 0;
	rdma_ack_cm_event(event);
	return 0;
}

/* Make req's id queue pair index of rc: its events go to rc's channel (so a disconnect reaches
 * rc's progress thread), and it gets its queue pair. On failure req has been answered. */
static int rdma_request_adopt(struct rdma_conn *rc, struct rdma_request *req, unsigned index)
{
	char why[160];
	int ret;

	if (rdma_migrate_id(req->id, rc->channel)) {
		ret = -errno;
		rmig_log_error("rdma %s: rdma_migrate_id: %s", rc->base.peer, strerror(-ret));
		rdma_reject(req->id, NULL, 0);
		rdma_destroy_id(req->id);
		return ret;
	}
	rc->streams[index].id = req->id;
	ret = index == 0 ? rdma_conn_resources(rc) : 0;
	if (!ret)
		ret = rdma_stream_qp(rc, index);
	if (ret) {
		snprintf(why, sizeof(why), "accepting side cannot set up queue pair %u: %s", index,
			 strerror(-ret));
		rdma_reject(req->id, why, rdma_reject_length(why));
	}
	return ret;
}

/* Accept queue pair index (adopted already) and wait until it is up. */
static int rdma_stream_accept(struct rdma_conn *rc, unsigned index, int timeout_ms)
{
	struct rdma_stream *stream = &rc->streams[index];
	struct rdma_conn_param param;
	struct wire_hello hello;
	int ret;

	rdma_stream_param(rc, index, &param, &hello);
	if (rdma_accept(stream->id, &param)) {
		ret = -errno;
		rmig_log_error("rdma %s: rdma_accept of queue pair %u: %s", rc->base.peer, index,
			       strerror(-ret));
		return ret;
	}
	return rdma_cm_expect(rc->channel, stream->id, index, RDMA_CM_EVENT_ESTABLISHED, timeout_ms,
			      rc->base.peer, NULL);
}

/* Take queue pair index of rc from the listener. Requests that are not it are refused, each
 * with its reason, and the wait goes on: a stray or repeated request does not break the
 * connection being set up. The first queue pair of another connection is set aside for the
 * next accept. */
static int rdma_accept_stream(struct rdma_listener *listener, struct rdma_conn *rc, unsigned index)
{
	struct timespec deadline;

	transport_deadline(rc->options.connect_timeout_ms, &deadline);
	for (;;) {
		struct rdma_request req;
		struct wire_hello hello;
		char peer[TRANSPORT_URI_MAX], why[200];
		unsigned got;
		int ret;

		ret = rdma_request_wait(listener, transport_ms_left(&deadline), &req);
		if (ret == -EAGAIN)
			continue;
		if (ret) {
			rmig_log_error("rdma %s: queue pair %u of %u %s", rc->base.peer, index,
				       rc->nstreams,
				       ret == -ETIMEDOUT ? "never came; refusing the connection"
							 : strerror(-ret));
			return ret == -ETIMEDOUT ? -ECONNABORTED : ret;
		}
		rdma_peer_name(req.id, peer, sizeof(peer));
		if (rdma_hello_check(req.data, req.len, &hello, why, sizeof(why))) {
			rdma_request_refuse(&req, peer, why);
			continue;
		}
		got = (unsigned)(hello.session_tag & RDMA_TAG_INDEX_MASK);
		if ((hello.session_tag & ~RDMA_TAG_INDEX_MASK) != rc->session_tag) {
			if (got == 0 && listener->npending < RDMA_LISTEN_BACKLOG) {
				listener->pending[listener->npending++] = req;
				continue;
			}
			snprintf(why, sizeof(why),
				 got == 0
					 ? "listener busy: too many connections being set up"
					 : "hello.session_tag: stray queue pair %u of a connection "
					   "this listener is not setting up",
				 got);
			rdma_request_refuse(&req, peer, why);
			continue;
		}
		if (got != index || hello.streams != rc->nstreams) {
			if (hello.streams != rc->nstreams)
				snprintf(
					why, sizeof(why),
					"hello.streams: queue pair %u says %u, queue pair 0 of its "
					"connection said %u",
					got, hello.streams, rc->nstreams);
			else if (got < index)
				snprintf(why, sizeof(why),
					 "hello.session_tag: duplicate queue pair %u: that one of "
					 "this connection is connected already",
					 got);
			else
				snprintf(why, sizeof(why),
					 "hello.session_tag: queue pair %u came before %u: queue "
					 "pairs connect in order",
					 got, index);
			rdma_request_refuse(&req, peer, why);
			continue;
		}
		ret = rdma_request_adopt(rc, &req, index);
		if (ret)
			return ret;
		return rdma_stream_accept(rc, index, rc->options.connect_timeout_ms);
	}
}

static int rdma_transport_accept(struct transport_listener *base, int timeout_ms,
				 struct transport_conn **conn_p)
{
	struct rdma_listener *listener = container_of(base, struct rdma_listener, base);
	struct wire_hello peer_hello;
	struct rdma_request req;
	struct rdma_conn *rc;
	char peer[TRANSPORT_URI_MAX], why[200];
	unsigned index;
	int ret;

	if (listener->npending) {
		req = listener->pending[0];
		listener->npending--;
		memmove(&listener->pending[0], &listener->pending[1],
			listener->npending * sizeof(listener->pending[0]));
	} else {
		ret = rdma_request_wait(listener, timeout_ms, &req);
		if (ret == -EAGAIN)
			return -ECONNABORTED;
		if (ret) {
			if (ret != -ETIMEDOUT)
				rmig_log_error("rdma: waiting for a connection: %s",
					       strerror(-ret));
			return ret;
		}
	}
	rdma_peer_name(req.id, peer, sizeof(peer));
	if (rdma_hello_check(req.data, req.len, &peer_hello, why, sizeof(why))) {
		rdma_request_refuse(&req, peer, why);
		return -EPROTO;
	}
	index = (unsigned)(peer_hello.session_tag & RDMA_TAG_INDEX_MASK);
	if (index != 0) {
		snprintf(why, sizeof(why),
			 "hello.session_tag: stray queue pair %u of a connection this listener "
			 "is not setting up (queue pair 0 connects first)",
			 index);
		rdma_request_refuse(&req, peer, why);
		return -EPROTO;
	}

	rc = rdma_conn_new(peer, &listener->options);
	if (!rc) {
		rdma_reject(req.id, NULL, 0);
		rdma_destroy_id(req.id);
		return -ENOMEM;
	}
	rc->nstreams = peer_hello.streams;
	rc->session_tag = peer_hello.session_tag;
	rc->peer_recv_depth = peer_hello.recv_depth;
	rc->send_credits = peer_hello.recv_depth;
	rc->channel = rdma_create_event_channel();
	if (!rc->channel) {
		ret = -errno;
		rmig_log_error("rdma %s: rdma_create_event_channel: %s", peer, strerror(-ret));
		rdma_reject(req.id, NULL, 0);
		rdma_destroy_id(req.id);
		goto err_destroy_conn;
	}
	ret = rdma_request_adopt(rc, &req, 0);
	if (ret)
		goto err_destroy_conn;
	ret = rdma_stream_accept(rc, 0,
				 timeout_ms < 0 ? rc->options.connect_timeout_ms : timeout_ms);
	for (index = 1; !ret && index < rc->nstreams; index++)
		ret = rdma_accept_stream(listener, rc, index);
	if (ret)
		goto err_disconnect;
	ret = rdma_progress_start(rc);
	if (ret)
		goto err_disconnect;
	rdma_conn_log_ready(rc);
	*conn_p = &rc->base;
	return 0;

err_disconnect:
	rdma_conn_disconnect(rc);
err_destroy_conn:
	rdma_conn_destroy(rc);
	return ret;
}

/* Resolve, set up and connect queue pair index; its accept must name the same connection. */
static int rdma_stream_connect(struct rdma_conn *rc, unsigned index, const struct addrinfo *ai,
			       struct wire_hello *peer_hello)
{
	struct rdma_stream *stream = &rc->streams[index];
	const int timeout_ms = rc->options.connect_timeout_ms;
	const char *uri = rc->base.peer;
	struct rdma_conn_param param;
	struct rdma_cm_event *event;
	struct wire_hello hello;
	char why[160];
	int ret;

	if (rdma_create_id(rc->channel, &stream->id, rc, RDMA_PS_TCP)) {
		ret = -errno;
		stream->id = NULL;
		rmig_log_error("rdma %s: rdma_create_id: %s", uri, strerror(-ret));
		return ret;
	}
	/* Resolving by IP lets rdma_cm pick the matching GID (RoCEv2 needs the IPv4-mapped one). */
	if (rdma_resolve_addr(stream->id, NULL, ai->ai_addr, timeout_ms)) {
		ret = -errno;
		rmig_log_error("rdma %s: rdma_resolve_addr: %s", uri, strerror(-ret));
		return ret;
	}
	ret = rdma_cm_expect(rc->channel, stream->id, index, RDMA_CM_EVENT_ADDR_RESOLVED,
			     timeout_ms, uri, NULL);
	if (ret)
		return ret;
	if (rdma_resolve_route(stream->id, timeout_ms)) {
		ret = -errno;
		rmig_log_error("rdma %s: rdma_resolve_route: %s", uri, strerror(-ret));
		return ret;
	}
	ret = rdma_cm_expect(rc->channel, stream->id, index, RDMA_CM_EVENT_ROUTE_RESOLVED,
			     timeout_ms, uri, NULL);
	if (ret)
		return ret;
	ret = index == 0 ? rdma_conn_resources(rc) : 0;
	if (!ret)
		ret = rdma_stream_qp(rc, index);
	if (ret)
		return ret;
	rdma_stream_param(rc, index, &param, &hello);
	if (rdma_connect(stream->id, &param)) {
		ret = -errno;
		rmig_log_error("rdma %s: rdma_connect of queue pair %u: %s", uri, index,
			       strerror(-ret));
		return ret;
	}
	ret = rdma_cm_expect(rc->channel, stream->id, index, RDMA_CM_EVENT_ESTABLISHED, timeout_ms,
			     uri, &event);
	if (ret)
		return ret;
	ret = rdma_hello_check(event->param.conn.private_data, event->param.conn.private_data_len,
			       peer_hello, why, sizeof(why));
	rdma_ack_cm_event(event);
	if (ret) {
		rmig_log_error("rdma %s: peer's accept of queue pair %u: %s", uri, index, why);
		return ret;
	}
	/* A listener that took this queue pair for a connection of its own would answer with
	 * another count or tag (one that does not group queue pairs answers 1 and tag 0). */
	if (peer_hello->streams != rc->nstreams ||
	    (rc->nstreams > 1 && peer_hello->session_tag != (rc->session_tag | index))) {
		rmig_log_error("rdma %s: the listener accepted queue pair %u as a connection of %u "
			       "(session tag %#llx, ours %#llx): it does not group %u queue pairs",
			       uri, index, peer_hello->streams,
			       (unsigned long long)peer_hello->session_tag,
			       (unsigned long long)(rc->session_tag | index), rc->nstreams);
		return -EPROTO;
	}
	return 0;
}

static int rdma_transport_connect(const char *uri, const struct transport_options *opts,
				  struct transport_conn **conn_p)
{
	struct rdma_options options;
	struct transport_uri parsed;
	struct wire_hello peer_hello;
	struct addrinfo *ai;
	struct rdma_conn *rc;
	int ret;

	ret = transport_uri_parse(uri, &parsed);
	if (ret)
		return ret;
	rdma_options_from(opts, &options);
	if (options.streams > RDMA_STREAMS_MAX) {
		rmig_log_error("rdma %s: %u queue pairs asked, at most %u", uri, options.streams,
			       RDMA_STREAMS_MAX);
		return -EINVAL;
	}
	ret = rdma_addrinfo(parsed.host, parsed.port, 0, &ai);
	if (ret)
		return ret;
	rc = rdma_conn_new(uri, &options);
	if (!rc) {
		ret = -ENOMEM;
		goto err_free_ai;
	}
	rc->nstreams = options.streams;
	if (getrandom(&rc->session_tag, sizeof(rc->session_tag), 0) != sizeof(rc->session_tag))
		rc->session_tag =
			(uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)rc;
	rc->session_tag &= ~RDMA_TAG_INDEX_MASK;
	rc->channel = rdma_create_event_channel();
	if (!rc->channel) {
		ret = -errno;
		rmig_log_error("rdma %s: rdma_create_event_channel: %s (is a verbs device "
			       "present?)",
			       uri, strerror(-ret));
		goto err_destroy_conn;
	}
	for (unsigned index = 0; index < rc->nstreams; index++) {
		ret = rdma_stream_connect(rc, index, ai, &peer_hello);
		if (ret)
			goto err_disconnect;
		if (index == 0) {
			rc->peer_recv_depth = peer_hello.recv_depth;
			rc->send_credits = peer_hello.recv_depth;
		}
	}
	ret = rdma_progress_start(rc);
	if (ret)
		goto err_disconnect;
	rdma_conn_log_ready(rc);
	freeaddrinfo(ai);
	*conn_p = &rc->base;
	return 0;

err_disconnect:
	rdma_conn_disconnect(rc);
err_destroy_conn:
	rdma_conn_destroy(rc);
err_free_ai:
	freeaddrinfo(ai);
	return ret;
}

/* ---- sending SENDs (caller holds rc->lock) ---- */

static int rdma_room(const struct rdma_conn *rc, unsigned stream, uint32_t wrs)
{
	const struct rdma_stream *s = &rc->streams[stream];

	return s->sq_posted - s->sq_completed + wrs <= rc->window;
}

static void rdma_record(struct rdma_conn *rc, unsigned stream, uint64_t seq, enum rdma_wr_kind kind,
			uint64_t batch_id, uint32_t region_id, uint64_t offset, uint64_t length)
{
	struct rdma_wr_record *record = &rc->streams[stream].records[seq % rc->window];

	record->seq = seq;
	record->kind = kind;
	record->batch_id = batch_id;
	record->region_id = region_id;
	record->offset = offset;
	record->length = length;
}

/* Post the SEND whose payload is in slot. The header is written now, so it carries every credit
 * freed until this moment. The caller checked credits and room. */
static int rdma_send_post(struct rdma_conn *rc, uint32_t slot, enum wire_type type, uint32_t length)
{
	struct rdma_stream *stream = &rc->streams[0];
	char *buf = rdma_send_buffer(rc, slot);
	uint64_t seq = stream->sq_posted + 1;
	size_t total = sizeof(struct wire_hdr) + length;
	struct ibv_sge sge = {
		.addr = (uintptr_t)buf,
		.length = (uint32_t)total,
		.lkey = rc->buffers_mr->lkey,
	};
	struct ibv_send_wr wr = {
		.wr_id = rdma_wr_id(RDMA_WR_SEND, 0, seq),
		.sg_list = &sge,
		.num_sge = 1,
		.opcode = IBV_WR_SEND,
		.send_flags = IBV_SEND_SIGNALED,
	};
	struct ibv_send_wr *bad;
	int ret;

	wire_hdr_to_wire((struct wire_hdr *)buf, type, length, rc->credits_to_return);
	rdma_record(rc, 0, seq, RDMA_WR_SEND, 0, type, 0, total);
	ret = ibv_post_send(stream->id->qp, &wr, &bad);
	if (ret)
		return transport_conn_fail(&rc->base, -ret, "queue pair 0: posting %s SEND: %s",
					   wire_type_name(type), strerror(ret));
	stream->sq_posted = seq;
	rc->send_credits--;
	rc->credits_to_return = 0;
	rdma_stats_add(rc, &rc->base.stats.bytes_sent, total);
	return 0;
}

/* Post the ordered SENDs whose turn has come: the peer has a buffer for them (the last credit
 * stays for credit returns and goodbyes), QP 0 has room, and for a commit every other QP has
 * completed the WRITEs of its batch. */
static void rdma_send_pump(struct rdma_conn *rc)
{
	while (!rc->base.failed && rc->sends_posted < rc->sends_queued) {
		uint32_t slot = (uint32_t)(rc->sends_posted % RDMA_SEND_SLOTS);
		struct rdma_send *send = &rc->sends[slot];
		uint32_t need = send->type == WIRE_CLOSE ? 1 : 2;

		if (rc->send_credits < need || !rdma_room(rc, 0, 1))
			return;
		for (unsigned s = 1; s < rc->nstreams; s++)
			if (rc->streams[s].sq_succeeded < send->after[s])
				return;
		if (rdma_send_post(rc, slot, send->type, send->length))
			return;
		send->seq = rc->streams[0].sq_posted;
		rc->sends_posted++;
	}
}

/* May the next ordered SEND take its slot? Only once the slot's previous SEND completed. */
static int rdma_slot_free(const struct rdma_conn *rc)
{
	uint64_t msg = rc->sends_queued;
	const struct rdma_send *previous = &rc->sends[msg % RDMA_SEND_SLOTS];

	if (msg < RDMA_SEND_SLOTS)
		return 1;
	return msg - RDMA_SEND_SLOTS < rc->sends_posted &&
	       previous->seq <= rc->streams[0].sq_completed;
}

/* Queue a SEND of hdr + payload (two parts, either may be empty) behind every SEND queued before
 * it, then post what may go. after: a commit's WRITEs on QP s >= 1 (sequences), else NULL.
 * Waits for a slot until deadline (NULL: forever). Caller holds rc->lock. */
static int rdma_send_queue(struct rdma_conn *rc, enum wire_type type, const void *part1,
			   size_t len1, const void *part2, size_t len2, const uint64_t *after,
			   const struct timespec *deadline)
{
	struct rdma_send *send;
	uint32_t slot;
	char *buf;

	while (!rdma_slot_free(rc)) {
		if (rc->base.failed)
			return rc->base.failed;
		if (rdma_wait(rc, deadline) == -ETIMEDOUT && !rdma_slot_free(rc))
			return -ETIMEDOUT;
	}
	if (rc->base.failed)
		return rc->base.failed;
	slot = (uint32_t)(rc->sends_queued % RDMA_SEND_SLOTS);
	send = &rc->sends[slot];
	buf = rdma_send_buffer(rc, slot) + sizeof(struct wire_hdr);
	if (len1)
		memcpy(buf, part1, len1);
	if (len2)
		memcpy(buf + len1, part2, len2);
	send->type = type;
	send->length = (uint32_t)(len1 + len2);
	send->msg = rc->sends_queued;
	send->seq = 0;
	if (after)
		memcpy(send->after, after, sizeof(send->after));
	else
		memset(send->after, 0, sizeof(send->after));
	rc->sends_queued++;
	rdma_send_pump(rc);
	return rc->base.failed;
}

/* Has ordered SEND msg completed (1), or is it still queued or in flight (0)? */
static int rdma_send_done(const struct rdma_conn *rc, uint64_t msg, int succeeded)
{
	const struct rdma_send *send = &rc->sends[msg % RDMA_SEND_SLOTS];

	if (msg >= rc->sends_posted)
		return 0;
	if (send->msg != msg)
		return 1; /* its slot was taken again, which waits for its successful completion */
	return send->seq <= (succeeded ? rc->streams[0].sq_succeeded : rc->streams[0].sq_completed);
}

/* Return credits explicitly once half of our ring is free and nothing else carried them. This
 * SEND has a slot of its own and needs no order: it may pass ordered SENDs still waiting. */
static void rdma_credit_maybe_send(struct rdma_conn *rc)
{
	struct wire_credit credit;

	if (rc->base.failed || rc->credits_to_return < RDMA_RECV_DEPTH / 2)
		return;
	if (rc->send_credits < 1 || rc->credit_seq > rc->streams[0].sq_completed ||
	    !rdma_room(rc, 0, 1))
		return;
	wire_credit_to_wire(&credit, rc->credits_to_return);
	memcpy(rdma_send_buffer(rc, RDMA_CREDIT_SLOT) + sizeof(struct wire_hdr), &credit,
	       sizeof(credit));
	/* The header carries the same count; the receiver takes it from the header only. */
	if (!rdma_send_post(rc, RDMA_CREDIT_SLOT, WIRE_CREDIT, sizeof(credit)))
		rc->credit_seq = rc->streams[0].sq_posted;
}

static void rdma_repost(struct rdma_conn *rc, uint32_t index)
{
	int ret = rdma_post_recv(rc, index);

	if (ret) {
		transport_conn_fail(&rc->base, ret, "reposting receive buffer %u: %s", index,
				    strerror(-ret));
		return;
	}
	rc->credits_to_return++;
}

/* ---- the progress thread: completions and connection events ---- */

static void rdma_completion_error(struct rdma_conn *rc, const struct ibv_wc *wc)
{
	unsigned kind = (unsigned)(wc->wr_id >> RDMA_WR_KIND_SHIFT);
	unsigned stream = (unsigned)((wc->wr_id >> RDMA_WR_STREAM_SHIFT) & 0xf);
	uint64_t seq = wc->wr_id & RDMA_WR_SEQ_MASK;
	const struct rdma_wr_record *record;
	char qp[64];

	if (wc->status == IBV_WC_WR_FLUSH_ERR) {
		/* Flushed after the QP left RTS: a disconnect or an earlier error says why. */
		rdma_fail_quiet(rc, -ECONNRESET, "connection closed; outstanding work flushed");
		return;
	}
	if (stream >= rc->nstreams) {
		transport_conn_fail(&rc->base, -EIO,
				    "%s work request failed: %s (status %d, vendor error 0x%x) on "
				    "queue pair %u, but the connection has %u",
				    rdma_wr_kind_name(kind), ibv_wc_status_str(wc->status),
				    wc->status, wc->vendor_err, stream, rc->nstreams);
		return;
	}
	snprintf(qp, sizeof(qp), "queue pair %u of %u (qp_num %u)", stream, rc->nstreams,
		 wc->qp_num);
	if (kind == RDMA_WR_RECV) {
		transport_conn_fail(&rc->base, -EIO,
				    "RECV work request failed: %s (status %d, vendor error 0x%x); "
				    "%s, receive buffer %llu",
				    ibv_wc_status_str(wc->status), wc->status, wc->vendor_err, qp,
				    (unsigned long long)seq);
		return;
	}
	record = &rc->streams[stream].records[seq % rc->window];
	if (record->seq != seq) {
		transport_conn_fail(&rc->base, -EIO,
				    "%s work request failed: %s (status %d, vendor error 0x%x); "
				    "%s, sequence %llu",
				    rdma_wr_kind_name(kind), ibv_wc_status_str(wc->status),
				    wc->status, wc->vendor_err, qp, (unsigned long long)seq);
		return;
	}
	if (kind == RDMA_WR_SEND)
		transport_conn_fail(&rc->base, -EIO,
				    "SEND work request failed: %s (status %d, vendor error 0x%x); "
				    "%s, sequence %llu, %s message of %llu bytes",
				    ibv_wc_status_str(wc->status), wc->status, wc->vendor_err, qp,
				    (unsigned long long)seq, wire_type_name(record->region_id),
				    (unsigned long long)record->length);
	else if (kind == RDMA_WR_READ)
		transport_conn_fail(&rc->base, -EIO,
				    "RDMA READ work request failed: %s (status %d, vendor error "
				    "0x%x); %s, sequence %llu, region %u [%llu, +%llu)",
				    ibv_wc_status_str(wc->status), wc->status, wc->vendor_err, qp,
				    (unsigned long long)seq, record->region_id,
				    (unsigned long long)record->offset,
				    (unsigned long long)record->length);
	else
		transport_conn_fail(
			&rc->base, -EIO,
			"%s work request failed: %s (status %d, vendor error 0x%x); %s, sequence "
			"%llu, region %u [%llu, +%llu) of batch %llu",
			rdma_wr_kind_name(kind), ibv_wc_status_str(wc->status), wc->status,
			wc->vendor_err, qp, (unsigned long long)seq, record->region_id,
			(unsigned long long)record->offset, (unsigned long long)record->length,
			(unsigned long long)record->batch_id);
}

static void rdma_protocol_error(struct rdma_conn *rc, const char *why)
{
	transport_conn_fail(&rc->base, -ECONNRESET, "peer broke the protocol: %s", why);
}

/* Copy the message in receive buffer index (already parsed) to the tail of the queue. Returns
 * 1 when it was queued (the buffer may be reposted), 0 when the queue is full. */
static int rdma_queue_from_buffer(struct rdma_conn *rc, uint32_t index)
{
	const char *buf = rdma_recv_buffer(rc, index);
	struct wire_hdr_host hdr;
	struct rdma_queued *q;

	wire_hdr_from_wire(buf, sizeof(struct wire_hdr) + WIRE_MSG_MAX, WIRE_MSG_MAX, &hdr, NULL,
			   0);
	if (!transport_queue_room(&rc->incoming, hdr.length))
		return 0;
	q = malloc(sizeof(*q) + hdr.length);
	if (!q)
		return 0; /* held instead: the peer waits for credits, nothing is lost */
	q->type = hdr.type;
	q->length = hdr.length;
	memcpy(q->payload, buf + sizeof(struct wire_hdr), hdr.length);
	transport_queue_push(&rc->incoming, &q->entry, hdr.length);
	return 1;
}

/* Move held buffers into the queue while it has room, reposting them. Caller holds rc->lock. */
static void rdma_queue_refill(struct rdma_conn *rc)
{
	while (rc->held_count && rdma_queue_from_buffer(rc, rc->held[rc->held_head])) {
		uint32_t index = rc->held[rc->held_head];

		rc->held_head = (rc->held_head + 1) % RDMA_RECV_DEPTH;
		rc->held_count--;
		if (!rc->base.failed)
			rdma_repost(rc, index);
	}
}

static void rdma_handle_recv(struct rdma_conn *rc, const struct ibv_wc *wc)
{
	uint32_t index = (uint32_t)(wc->wr_id & RDMA_WR_SEQ_MASK);
	struct transport_region region;
	struct wire_hdr_host hdr;
	const char *payload;
	uint32_t credits;
	char why[200];
	int ret;

	if (index >= RDMA_RECV_DEPTH) {
		rdma_protocol_error(rc, "receive completion for an unknown buffer");
		return;
	}
	rdma_stats_add(rc, &rc->base.stats.bytes_received, wc->byte_len);
	payload = rdma_recv_buffer(rc, index) + sizeof(struct wire_hdr);
	if (wire_hdr_from_wire(rdma_recv_buffer(rc, index), wc->byte_len, WIRE_MSG_MAX, &hdr, why,
			       sizeof(why))) {
		rdma_protocol_error(rc, why);
		return;
	}
	if (hdr.length != wc->byte_len - sizeof(struct wire_hdr)) {
		snprintf(why, sizeof(why), "header.length: %u, but the SEND carried %u bytes",
			 hdr.length, wc->byte_len);
		rdma_protocol_error(rc, why);
		return;
	}
	if (hdr.credits > rc->peer_recv_depth ||
	    rc->send_credits + hdr.credits > rc->peer_recv_depth) {
		snprintf(why, sizeof(why), "header.credits: %u returned, %u outstanding of %u",
			 hdr.credits, rc->peer_recv_depth - rc->send_credits, rc->peer_recv_depth);
		rdma_protocol_error(rc, why);
		return;
	}
	rc->send_credits += hdr.credits;

	switch (hdr.type) {
	case WIRE_CTRL:
	case WIRE_COMMIT:
		/* Behind a held buffer, or past the bound: held too, so order is kept and the
		 * peer runs out of credits instead of our memory. */
		if (rc->held_count || !rdma_queue_from_buffer(rc, index)) {
			rc->held[(rc->held_head + rc->held_count) % RDMA_RECV_DEPTH] = index;
			rc->held_count++;
			return;
		}
		break;
	case WIRE_REGION_ADD:
		ret = wire_region_from_wire(payload, hdr.length, &region, why, sizeof(why));
		if (ret) {
			rdma_protocol_error(rc, why);
			return;
		}
		if (!(region.access &
		      (TRANSPORT_ACCESS_REMOTE_WRITE | TRANSPORT_ACCESS_REMOTE_READ))) {
			snprintf(why, sizeof(why), "region[%u].access: no remote access",
				 region.id);
			rdma_protocol_error(rc, why);
			return;
		}
		ret = transport_region_add(&rc->base, 1, &region);
		if (ret) {
			snprintf(why, sizeof(why), "region[%u]: %s", region.id,
				 ret == -EEXIST ? "announced twice" : strerror(-ret));
			rdma_protocol_error(rc, why);
			return;
		}
		break;
	case WIRE_REGION_DEL:
		ret = wire_region_from_wire(payload, hdr.length, &region, why, sizeof(why));
		if (ret) {
			rdma_protocol_error(rc, why);
			return;
		}
		if (transport_region_remove(&rc->base, 1, region.id, NULL)) {
			snprintf(why, sizeof(why), "region[%u]: revoked but never announced",
				 region.id);
			rdma_protocol_error(rc, why);
			return;
		}
		break;
	case WIRE_CREDIT:
		if (wire_credit_from_wire(payload, hdr.length, &credits, why, sizeof(why))) {
			rdma_protocol_error(rc, why);
			return;
		}
		break;
	case WIRE_CLOSE:
		rc->peer_closed = 1;
		break;
	default:
		snprintf(why, sizeof(why), "header.type: %s is not sent over rdma",
			 wire_type_name(hdr.type));
		rdma_protocol_error(rc, why);
		return;
	}
	rdma_repost(rc, index);
}

static void rdma_handle_wc(struct rdma_conn *rc, const struct ibv_wc *wc)
{
	unsigned kind = (unsigned)(wc->wr_id >> RDMA_WR_KIND_SHIFT);
	unsigned stream = (unsigned)((wc->wr_id >> RDMA_WR_STREAM_SHIFT) & 0xf);
	uint64_t seq = wc->wr_id & RDMA_WR_SEQ_MASK;
	struct rdma_stream *s;

	if (wc->status != IBV_WC_SUCCESS) {
		rdma_completion_error(rc, wc);
		return;
	}
	if (stream >= rc->nstreams || (kind == RDMA_WR_RECV && stream != 0)) {
		transport_conn_fail(&rc->base, -EIO,
				    "%s completion on queue pair %u of %u, which posts none",
				    rdma_wr_kind_name(kind), stream, rc->nstreams);
		return;
	}
	if (kind == RDMA_WR_RECV) {
		rdma_handle_recv(rc, wc);
		return;
	}
	/* RC completes a send queue in order: a signaled WR completes everything before it. */
	s = &rc->streams[stream];
	if (seq > s->sq_completed)
		s->sq_completed = seq;
	if (seq > s->sq_succeeded)
		s->sq_succeeded = seq;
}

/* Work that will never complete must not keep a waiter in flush(). Caller holds rc->lock. */
static void rdma_release_waiters(struct rdma_conn *rc)
{
	for (unsigned s = 0; s < rc->nstreams; s++)
		rc->streams[s].sq_completed = rc->streams[s].sq_posted;
	pthread_cond_broadcast(&rc->changed);
}

static void rdma_drain_cq(struct rdma_conn *rc)
{
	struct ibv_wc wcs[32];
	int n;

	pthread_mutex_lock(&rc->lock);
	while ((n = ibv_poll_cq(rc->cq, 32, wcs)) > 0)
		for (int i = 0; i < n; i++)
			rdma_handle_wc(rc, &wcs[i]);
	if (n < 0)
		transport_conn_fail(&rc->base, -EIO, "ibv_poll_cq failed");
	if (rc->base.failed)
		rdma_release_waiters(rc);
	/* Completions may have let a held-back commit go, and credits may have come back. */
	rdma_send_pump(rc);
	rdma_credit_maybe_send(rc);
	pthread_cond_broadcast(&rc->changed);
	pthread_mutex_unlock(&rc->lock);
}

static unsigned rdma_stream_of_id(const struct rdma_conn *rc, const struct rdma_cm_id *id)
{
	for (unsigned s = 0; s < rc->nstreams; s++)
		if (rc->streams[s].id == id)
			return s;
	return rc->nstreams;
}

static void rdma_handle_cm_event(struct rdma_conn *rc)
{
	struct rdma_cm_event *event;
	enum rdma_cm_event_type type;
	unsigned stream;

	if (rdma_get_cm_event(rc->channel, &event))
		return;
	type = event->event;
	stream = rdma_stream_of_id(rc, event->id);
	rdma_ack_cm_event(event);
	switch (type) {
	case RDMA_CM_EVENT_DISCONNECTED:
	case RDMA_CM_EVENT_TIMEWAIT_EXIT:
		/* The peer's last messages (its goodbye included) completed on our CQ before it
		 * disconnected, but the completion event may not have woken us yet: take them
		 * first, so they are delivered and an orderly close is told from a crash. */
		rdma_drain_cq(rc);
		pthread_mutex_lock(&rc->lock);
		if (rc->closing)
			rdma_fail_quiet(rc, -ECONNRESET, "connection closed");
		else if (rc->peer_closed)
			rdma_fail_quiet(rc, -ECONNRESET, "peer closed the connection");
		else
			transport_conn_fail(&rc->base, -ECONNRESET,
					    "peer disconnected without closing (queue pair %u of "
					    "%u went down first)",
					    stream, rc->nstreams);
		rdma_release_waiters(rc);
		pthread_mutex_unlock(&rc->lock);
		break;
	case RDMA_CM_EVENT_DEVICE_REMOVAL:
		pthread_mutex_lock(&rc->lock);
		transport_conn_fail(&rc->base, -ENODEV, "RDMA device removed (queue pair %u of %u)",
				    stream, rc->nstreams);
		rdma_release_waiters(rc);
		pthread_mutex_unlock(&rc->lock);
		break;
	default:
		break;
	}
}

static void *rdma_progress_main(void *arg)
{
	struct rdma_conn *rc = arg;
	struct pollfd fds[3] = {
		{.fd = rc->comp_channel->fd, .events = POLLIN},
		{.fd = rc->channel->fd, .events = POLLIN},
		{.fd = rc->stop_fd, .events = POLLIN},
	};

	rdma_drain_cq(rc);
	for (;;) {
		if (poll(fds, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (fds[2].revents)
			break;
		if (fds[0].revents) {
			struct ibv_cq *cq;
			void *context;

			if (!ibv_get_cq_event(rc->comp_channel, &cq, &context)) {
				ibv_ack_cq_events(cq, 1);
				ibv_req_notify_cq(cq, 0);
			}
			/* Poll after re-arming so no completion slips between the two. */
			rdma_drain_cq(rc);
		}
		if (fds[1].revents)
			rdma_handle_cm_event(rc);
	}
	return NULL;
}

/* ---- regions ---- */

static int rdma_access_flags(struct rdma_conn *rc, unsigned access)
{
	int flags = IBV_ACCESS_LOCAL_WRITE;

	if (access & TRANSPORT_ACCESS_REMOTE_WRITE)
		flags |= IBV_ACCESS_REMOTE_WRITE;
	if (access & TRANSPORT_ACCESS_REMOTE_READ)
		flags |= IBV_ACCESS_REMOTE_READ;
	if (rc->options.reg_mode == TRANSPORT_REG_ODP)
		flags |= IBV_ACCESS_ON_DEMAND;
	return flags;
}

/* One MR in the connection's PD serves every queue pair: a region is registered and announced
 * once, whatever the number of queue pairs. */
static int rdma_transport_region_register(struct transport_conn *conn, uint32_t id, void *addr,
					  size_t len, unsigned access)
{
	struct rdma_conn *rc = rdma_conn_of(conn);
	struct transport_region region = {.id = id, .access = access, .addr = addr, .length = len};
	struct rdma_region *reg;
	struct wire_region wire;
	int ret;

	if (!addr || !len ||
	    (access & ~(unsigned)(TRANSPORT_ACCESS_REMOTE_WRITE | TRANSPORT_ACCESS_REMOTE_READ)))
		return -EINVAL;
	if (!transport_region_find(conn, 0, id, &region)) {
		rmig_log_error("rdma %s: region %u is already registered", conn->peer, id);
		return -EEXIST;
	}
	reg = calloc(1, sizeof(*reg));
	if (!reg)
		return -ENOMEM;
	reg->addr = addr;
	reg->length = len;
	/* Chunked registration fits only memory no peer reaches: a peer needs one rkey. */
	if (rc->options.reg_mode == TRANSPORT_REG_CHUNKED && access == TRANSPORT_ACCESS_LOCAL) {
		uintptr_t end = (uintptr_t)addr + len;

		reg->chunk_base = (uintptr_t)addr & ~(uintptr_t)(RDMA_CHUNK_SIZE - 1);
		reg->nchunks = (end - reg->chunk_base + RDMA_CHUNK_SIZE - 1) / RDMA_CHUNK_SIZE;
		reg->chunks = calloc(reg->nchunks, sizeof(*reg->chunks));
		if (!reg->chunks) {
			ret = -ENOMEM;
			goto err_free_reg;
		}
	} else {
		reg->mr = ibv_reg_mr(rc->pd, addr, len, rdma_access_flags(rc, access));
		if (!reg->mr) {
			ret = rdma_errno_or(-ENOMEM);
			rmig_log_error("rdma %s: registering region %u (%zu bytes at %p): %s%s",
				       conn->peer, id, len, addr, strerror(-ret),
				       ret == -ENOMEM ? " (RLIMIT_MEMLOCK too low?)" : "");
			goto err_free_reg;
		}
	}
	region = (struct transport_region){
		.id = id,
		.access = access,
		.addr = addr,
		.length = len,
		.remote_addr = (uintptr_t)addr,
		.rkey = reg->mr ? reg->mr->rkey : 0,
		.priv = reg,
	};
	pthread_mutex_lock(&rc->lock);
	ret = transport_region_add(conn, 0, &region);
	if (ret) {
		pthread_mutex_unlock(&rc->lock);
		goto err_release;
	}
	if (access & (TRANSPORT_ACCESS_REMOTE_WRITE | TRANSPORT_ACCESS_REMOTE_READ)) {
		wire_region_to_wire(&wire, &region);
		ret = rdma_send_queue(rc, WIRE_REGION_ADD, &wire, sizeof(wire), NULL, 0, NULL,
				      NULL);
		if (ret) {
			transport_region_remove(conn, 0, id, NULL);
			pthread_mutex_unlock(&rc->lock);
			goto err_release;
		}
	}
	pthread_mutex_unlock(&rc->lock);
	return 0;

err_release:
	rdma_region_release(reg);
	return ret;
err_free_reg:
	free(reg->chunks);
	free(reg);
	return ret;
}

/* Has every QP completed up to target[] and every ordered SEND before msgs (successfully, when
 * succeeded)? Caller holds rc->lock. */
static int rdma_drained(const struct rdma_conn *rc, const uint64_t *target, uint64_t msgs,
			int succeeded)
{
	for (unsigned s = 0; s < rc->nstreams; s++)
		if ((succeeded ? rc->streams[s].sq_succeeded : rc->streams[s].sq_completed) <
		    target[s])
			return 0;
	return msgs == 0 || rdma_send_done(rc, msgs - 1, succeeded);
}

/* Wait until every WR posted and every SEND queued so far completed; 0 when all of it
 * succeeded, even if the connection failed afterwards, else the failure. Caller holds
 * rc->lock. */
static int rdma_drain_locked(struct rdma_conn *rc, const struct timespec *deadline)
{
	uint64_t target[RDMA_STREAMS_MAX];
	uint64_t msgs = rc->sends_queued;

	for (unsigned s = 0; s < rc->nstreams; s++)
		target[s] = rc->streams[s].sq_posted;
	while (!rdma_drained(rc, target, msgs, 0) && !rc->base.failed) {
		int ret = rdma_wait(rc, deadline);

		if (ret == -ETIMEDOUT && !rdma_drained(rc, target, msgs, 0))
			return ret;
	}
	/* Everything asked about completed: a peer that closed afterwards changes nothing
	 * (rmig-bw's goodbye followed by a flush raced the peer's close and reported it). */
	if (rdma_drained(rc, target, msgs, 1))
		return 0;
	return rc->base.failed ? rc->base.failed : -EIO;
}

static int rdma_transport_region_deregister(struct transport_conn *conn, uint32_t id)
{
	struct rdma_conn *rc = rdma_conn_of(conn);
	struct transport_region region;
	struct wire_region wire;
	int ret;

	pthread_mutex_lock(&rc->lock);
	ret = transport_region_remove(conn, 0, id, &region);
	if (ret) {
		pthread_mutex_unlock(&rc->lock);
		rmig_log_error("rdma %s: deregistering region %u: not registered", conn->peer, id);
		return ret;
	}
	if (region.access & (TRANSPORT_ACCESS_REMOTE_WRITE | TRANSPORT_ACCESS_REMOTE_READ) &&
	    !conn->failed) {
		wire_region_to_wire(&wire, &region);
		ret = rdma_send_queue(rc, WIRE_REGION_DEL, &wire, sizeof(wire), NULL, 0, NULL,
				      NULL);
	}
	/* Work already posted on any QP may still read the memory: the MR lives until it
	 * completed. */
	rdma_drain_locked(rc, NULL);
	pthread_mutex_unlock(&rc->lock);
	rdma_region_release(region.priv);
	return conn->failed && ret ? ret : 0;
}

/* Local key and the longest length from addr that one SGE may cover. Caller holds rc->lock. */
static int rdma_local_key(struct rdma_conn *rc, struct rdma_region *reg, char *addr, uint64_t want,
			  uint32_t *lkey_p, uint64_t *len_p)
{
	uintptr_t chunk_start, chunk_end, region_end;
	size_t index;

	if (reg->mr) {
		*lkey_p = reg->mr->lkey;
		*len_p = want;
		return 0;
	}
	index = ((uintptr_t)addr - reg->chunk_base) / RDMA_CHUNK_SIZE;
	chunk_start = reg->chunk_base + index * RDMA_CHUNK_SIZE;
	chunk_end = chunk_start + RDMA_CHUNK_SIZE;
	region_end = (uintptr_t)reg->addr + reg->length;
	if (chunk_start < (uintptr_t)reg->addr)
		chunk_start = (uintptr_t)reg->addr;
	if (chunk_end > region_end)
		chunk_end = region_end;
	if (!reg->chunks[index]) {
		reg->chunks[index] = ibv_reg_mr(rc->pd, (void *)chunk_start,
						chunk_end - chunk_start, IBV_ACCESS_LOCAL_WRITE);
		if (!reg->chunks[index]) {
			int ret = rdma_errno_or(-ENOMEM);

			return transport_conn_fail(
				&rc->base, ret,
				"registering chunk %zu (%llu bytes) on first use: "
				"%s",
				index, (unsigned long long)(chunk_end - chunk_start),
				strerror(-ret));
		}
	}
	*lkey_p = reg->chunks[index]->lkey;
	*len_p = chunk_end - (uintptr_t)addr < want ? chunk_end - (uintptr_t)addr : want;
	return 0;
}

/* ---- batches ---- */

/* WRs for one queue pair, built under rc->lock and posted before the lock is let go: their
 * sequence numbers are taken from the QP's counter as they are added. */
struct rdma_chain {
	struct ibv_send_wr wrs[RDMA_CHAIN_MAX];
	struct ibv_sge sges[RDMA_CHAIN_MAX];
	uint32_t count;
};

static int rdma_chain_post(struct rdma_conn *rc, unsigned stream, struct rdma_chain *chain)
{
	struct ibv_send_wr *bad = NULL;
	int ret;

	if (!chain->count)
		return 0;
	chain->wrs[chain->count - 1].send_flags |= IBV_SEND_SIGNALED;
	chain->wrs[chain->count - 1].next = NULL;
	ret = ibv_post_send(rc->streams[stream].id->qp, chain->wrs, &bad);
	if (ret)
		return transport_conn_fail(
			&rc->base, -ret,
			"queue pair %u: ibv_post_send of a %u-WR chain failed at "
			"WR %lld: %s",
			stream, chain->count, bad ? (long long)(bad - chain->wrs) : -1LL,
			strerror(ret));
	rc->streams[stream].sq_posted += chain->count;
	chain->count = 0;
	return 0;
}

/* Post every queue pair's chain; the first failure is returned, the rest still posted. */
static int rdma_chains_post(struct rdma_conn *rc, struct rdma_chain *chains)
{
	int ret = 0;

	for (unsigned s = 0; s < rc->nstreams; s++) {
		int one = rdma_chain_post(rc, s, &chains[s]);

		if (one && !ret)
			ret = one;
	}
	return ret;
}

/* Append one WR to queue pair stream's chain (caller has made room for it). */
static void rdma_chain_add(struct rdma_conn *rc, unsigned stream, struct rdma_chain *chain,
			   enum ibv_wr_opcode opcode, uint64_t local, uint32_t lkey,
			   uint64_t remote, uint32_t rkey, uint32_t len, uint64_t batch_id,
			   uint32_t region_id, uint64_t offset)
{
	uint32_t i = chain->count++;
	uint64_t seq = rc->streams[stream].sq_posted + chain->count;
	enum rdma_wr_kind kind = opcode == IBV_WR_RDMA_READ ? RDMA_WR_READ : RDMA_WR_WRITE;

	chain->sges[i] = (struct ibv_sge){.addr = local, .length = len, .lkey = lkey};
	memset(&chain->wrs[i], 0, sizeof(chain->wrs[i]));
	chain->wrs[i].wr_id = rdma_wr_id(kind, stream, seq);
	chain->wrs[i].sg_list = &chain->sges[i];
	chain->wrs[i].num_sge = 1;
	chain->wrs[i].opcode = opcode;
	chain->wrs[i].wr.rdma.remote_addr = remote;
	chain->wrs[i].wr.rdma.rkey = rkey;
	if (seq % rc->signal_every == 0)
		chain->wrs[i].send_flags = IBV_SEND_SIGNALED;
	if (i > 0)
		chain->wrs[i - 1].next = &chain->wrs[i];
	rdma_record(rc, stream, seq, kind, batch_id, region_id, offset, len);
}

/* Room for one more WR in queue pair stream's chain, posting it when it is full or the QP's
 * window is. Before waiting, every chain is posted: no sequence number may stay taken while
 * the lock is let go. *waited_p is set when the lock was let go. */
static int rdma_chain_make_room(struct rdma_conn *rc, struct rdma_chain *chains, unsigned stream,
				int *waited_p)
{
	struct rdma_chain *chain = &chains[stream];
	int ret;

	if (chain->count == RDMA_CHAIN_MAX || !rdma_room(rc, stream, chain->count + 1)) {
		ret = rdma_chain_post(rc, stream, chain);
		if (ret)
			return ret;
	}
	if (!rdma_room(rc, stream, 1)) {
		ret = rdma_chains_post(rc, chains);
		if (ret)
			return ret;
		while (!rdma_room(rc, stream, 1)) {
			if (rc->base.failed)
				return rc->base.failed;
			rdma_wait(rc, NULL);
		}
		*waited_p = 1;
	}
	return rc->base.failed;
}

/* Lengths of runs i.. that continue each other in the same region (coalesced). */
static size_t rdma_coalesce(const struct transport_run *runs, size_t nruns, size_t i,
			    uint64_t *length_p)
{
	uint64_t length = runs[i].length;
	size_t j = i + 1;

	while (j < nruns && !(runs[j].flags & TRANSPORT_RUN_ZERO) &&
	       runs[j].region_id == runs[i].region_id &&
	       runs[j].offset == runs[i].offset + length) {
		length += runs[j].length;
		j++;
	}
	*length_p = length;
	return j;
}

/* The queue pair that carries the block of region_id holding offset: consecutive blocks go to
 * consecutive QPs, and a block always to the same one (see the top of the file). */
static unsigned rdma_data_stream(const struct rdma_conn *rc, uint32_t region_id, uint64_t offset)
{
	if (rc->nstreams == 1)
		return 0;
	return transport_block_stream(region_id, offset / RDMA_STREAM_BLOCK, rc->nstreams);
}

/* The local and the peer's view of region id, looked up under rc->lock (deregistration then
 * cannot free the MR while it is used). */
static int rdma_batch_regions(struct rdma_conn *rc, uint64_t batch_id, uint32_t id,
			      struct transport_region *local, struct transport_region *remote)
{
	if (transport_region_find(&rc->base, 0, id, local) ||
	    transport_region_find(&rc->base, 1, id, remote)) {
		rmig_log_error("rdma %s: batch %llu: region %u went away while posting",
			       rc->base.peer, (unsigned long long)batch_id, id);
		return -ENOENT;
	}
	return 0;
}

static int rdma_transport_batch_post(struct transport_conn *conn, uint64_t batch_id,
				     const struct transport_run *runs, size_t nruns)
{
	struct rdma_conn *rc = rdma_conn_of(conn);
	char commit_buf[sizeof(struct wire_commit) +
			TRANSPORT_BATCH_MAX_RUNS * sizeof(struct wire_run)];
	struct wire_commit_host commit = {.batch_id = batch_id, .nruns = nruns};
	uint64_t after[RDMA_STREAMS_MAX] = {0};
	int touched[RDMA_STREAMS_MAX] = {0};
	struct rdma_chain *chains;
	uint64_t data_bytes = 0;
	char why[200];
	int ret, len;

	if (conn->failed)
		return conn->failed;
	ret = transport_runs_check(conn, 0, TRANSPORT_ACCESS_LOCAL, runs, nruns, why, sizeof(why));
	if (!ret)
		ret = transport_runs_check(conn, 1, TRANSPORT_ACCESS_REMOTE_WRITE, runs, nruns, why,
					   sizeof(why));
	if (ret) {
		rmig_log_error("rdma %s: batch %llu refused: %s", conn->peer,
			       (unsigned long long)batch_id, why);
		return ret;
	}
	len = wire_commit_to_wire(commit_buf, sizeof(commit_buf), &commit, runs);
	if (len < 0)
		return len;
	chains = malloc(rc->nstreams * sizeof(*chains));
	if (!chains)
		return -ENOMEM;
	for (unsigned s = 0; s < rc->nstreams; s++)
		chains[s].count = 0;

	pthread_mutex_lock(&rc->lock);
	for (size_t i = 0; i < nruns;) {
		struct transport_region local, remote;
		struct rdma_region *reg;
		uint64_t length, done = 0;
		size_t next;

		if (runs[i].flags & TRANSPORT_RUN_ZERO) {
			i++;
			continue;
		}
		next = rdma_coalesce(runs, nruns, i, &length);
		ret = rdma_batch_regions(rc, batch_id, runs[i].region_id, &local, &remote);
		if (ret)
			goto out_unlock;
		reg = local.priv;
		while (done < length) {
			uint64_t offset = runs[i].offset + done, piece = length - done;
			unsigned stream = rdma_data_stream(rc, runs[i].region_id, offset);
			uint32_t lkey = 0;
			int waited = 0;

			if (piece > rc->max_msg_size)
				piece = rc->max_msg_size;
			if (rc->nstreams > 1 &&
			    piece > RDMA_STREAM_BLOCK - offset % RDMA_STREAM_BLOCK)
				piece = RDMA_STREAM_BLOCK - offset % RDMA_STREAM_BLOCK;
			ret = rdma_chain_make_room(rc, chains, stream, &waited);
			if (!ret && waited) {
				/* The lock was let go: the region may have been revoked since. */
				ret = rdma_batch_regions(rc, batch_id, runs[i].region_id, &local,
							 &remote);
				if (!ret && local.priv != reg)
					ret = -ENOENT;
			}
			if (!ret)
				ret = rdma_local_key(rc, reg, (char *)local.addr + offset, piece,
						     &lkey, &piece);
			if (ret)
				goto out_unlock;
			rdma_chain_add(rc, stream, &chains[stream], IBV_WR_RDMA_WRITE,
				       (uintptr_t)local.addr + offset, lkey,
				       remote.remote_addr + offset, remote.rkey, (uint32_t)piece,
				       batch_id, runs[i].region_id, offset);
			touched[stream] = 1;
			done += piece;
		}
		data_bytes += length;
		i = next;
	}
	ret = rdma_chains_post(rc, chains);
	if (ret)
		goto out_unlock;
	/* QP 0's WRITEs reach the peer before the commit by RC order; the other QPs' WRITEs of
	 * this batch must have completed before it is posted. */
	for (unsigned s = 1; s < rc->nstreams; s++)
		if (touched[s])
			after[s] = rc->streams[s].sq_posted;
	ret = rdma_send_queue(rc, WIRE_COMMIT, commit_buf, (size_t)len, NULL, 0, after, NULL);
	if (ret)
		goto out_unlock;
	pthread_mutex_lock(conn->region_lock);
	conn->stats.data_bytes_sent += data_bytes;
	conn->stats.bytes_sent += data_bytes;
	conn->stats.batches_sent++;
	pthread_mutex_unlock(conn->region_lock);
out_unlock:
	/* Never leave a half-built chain: WRs already recorded must reach their QP. */
	if (ret)
		rdma_chains_post(rc, chains);
	pthread_mutex_unlock(&rc->lock);
	free(chains);
	return ret;
}

static int rdma_transport_flush(struct transport_conn *conn, int timeout_ms)
{
	struct rdma_conn *rc = rdma_conn_of(conn);
	struct timespec deadline;
	int ret;

	if (timeout_ms >= 0)
		transport_deadline(timeout_ms, &deadline);
	pthread_mutex_lock(&rc->lock);
	ret = rdma_drain_locked(rc, timeout_ms >= 0 ? &deadline : NULL);
	pthread_mutex_unlock(&rc->lock);
	return ret;
}

/* ---- control messages ---- */

static int rdma_transport_ctrl_send(struct transport_conn *conn, const void *buf, size_t len)
{
	struct rdma_conn *rc = rdma_conn_of(conn);
	int ret;

	if (len > TRANSPORT_CTRL_MAX)
		return -EMSGSIZE;
	pthread_mutex_lock(&rc->lock);
	ret = rdma_send_queue(rc, WIRE_CTRL, buf, len, NULL, 0, NULL, NULL);
	pthread_mutex_unlock(&rc->lock);
	if (!ret)
		rdma_stats_add(rc, &conn->stats.ctrl_sent, 1);
	return ret;
}

/* Turn a queued message into msg. Caller holds rc->lock. */
static int rdma_deliver(struct rdma_conn *rc, const struct rdma_queued *q,
			struct transport_msg *msg)
{
	struct wire_commit_host commit;
	uint64_t data_bytes = 0;
	char why[200];
	int ret;

	memset(msg, 0, sizeof(*msg));
	if (q->type == WIRE_CTRL) {
		msg->type = TRANSPORT_MSG_CTRL;
		msg->data = q->payload;
		msg->len = q->length;
		rdma_stats_add(rc, &rc->base.stats.ctrl_received, 1);
		return 0;
	}
	ret = wire_commit_from_wire(q->payload, q->length, &commit, rc->msg_runs,
				    TRANSPORT_BATCH_MAX_RUNS, why, sizeof(why));
	if (!ret)
		ret = transport_runs_check(&rc->base, 0, TRANSPORT_ACCESS_REMOTE_WRITE,
					   rc->msg_runs, commit.nruns, why, sizeof(why));
	if (ret)
		return transport_conn_fail(&rc->base, -ECONNRESET, "peer's commit refused: %s",
					   why);
	for (size_t i = 0; i < commit.nruns; i++)
		if (!(rc->msg_runs[i].flags & TRANSPORT_RUN_ZERO))
			data_bytes += rc->msg_runs[i].length;
	msg->type = TRANSPORT_MSG_COMMIT;
	msg->batch_id = commit.batch_id;
	msg->runs = rc->msg_runs;
	msg->nruns = commit.nruns;
	pthread_mutex_lock(rc->base.region_lock);
	rc->base.stats.batches_received++;
	rc->base.stats.data_bytes_received += data_bytes;
	rc->base.stats.bytes_received += data_bytes;
	pthread_mutex_unlock(rc->base.region_lock);
	return 0;
}

static int rdma_transport_recv(struct transport_conn *conn, struct transport_msg *msg,
			       int timeout_ms)
{
	struct rdma_conn *rc = rdma_conn_of(conn);
	struct timespec deadline;
	struct rdma_queued *q;
	int ret;

	if (timeout_ms >= 0)
		transport_deadline(timeout_ms, &deadline);
	pthread_mutex_lock(&rc->lock);
	transport_queue_release(&rc->incoming);
	/* What arrived before a disconnect is still delivered, in order. */
	for (;;) {
		rdma_queue_refill(rc);
		if (rc->incoming.head)
			break;
		if (conn->failed) {
			ret = conn->failed;
			goto out_unlock;
		}
		ret = rdma_wait(rc, timeout_ms >= 0 ? &deadline : NULL);
		if (ret == -ETIMEDOUT && !rc->incoming.head && !rc->held_count)
			goto out_unlock;
	}
	rdma_credit_maybe_send(rc);
	q = container_of(transport_queue_pop(&rc->incoming), struct rdma_queued, entry);
	ret = rdma_deliver(rc, q, msg);
out_unlock:
	pthread_mutex_unlock(&rc->lock);
	return ret;
}

/* ---- RDMA READ ---- */

/* Is [dst, dst+len) inside a local region registered as a whole? Then READ lands there. */
static int rdma_local_target(struct rdma_conn *rc, void *dst, size_t len, uint32_t *lkey_p)
{
	int found = 0;

	pthread_mutex_lock(rc->base.region_lock);
	for (size_t i = 0; i < rc->base.local.count && !found; i++) {
		const struct transport_region *region = &rc->base.local.regions[i];
		const struct rdma_region *reg = region->priv;
		uintptr_t start = (uintptr_t)region->addr;

		if (reg && reg->mr && (uintptr_t)dst >= start &&
		    (uintptr_t)dst - start <= region->length &&
		    len <= region->length - ((uintptr_t)dst - start)) {
			*lkey_p = reg->mr->lkey;
			found = 1;
		}
	}
	pthread_mutex_unlock(rc->base.region_lock);
	return found;
}

/* READs may use any queue pair: the one with the least work outstanding, ties taken in turn
 * so that pulls one after another still use every QP. Caller holds rc->lock. */
static unsigned rdma_read_stream(struct rdma_conn *rc)
{
	unsigned first = rc->read_next++ % rc->nstreams, best = first;

	for (unsigned i = 1; i < rc->nstreams; i++) {
		unsigned s = (first + i) % rc->nstreams;

		if (rc->streams[s].sq_posted - rc->streams[s].sq_completed <
		    rc->streams[best].sq_posted - rc->streams[best].sq_completed)
			best = s;
	}
	return best;
}

/* Post one signaled READ on queue pair stream (caller made room); its sequence in *seq_p. */
static int rdma_read_post(struct rdma_conn *rc, unsigned stream, uint64_t local, uint32_t lkey,
			  uint64_t remote, uint32_t rkey, uint32_t len, uint32_t region_id,
			  uint64_t offset, uint64_t *seq_p)
{
	struct rdma_stream *s = &rc->streams[stream];
	uint64_t seq = s->sq_posted + 1;
	struct ibv_sge sge = {.addr = local, .length = len, .lkey = lkey};
	struct ibv_send_wr wr = {
		.wr_id = rdma_wr_id(RDMA_WR_READ, stream, seq),
		.sg_list = &sge,
		.num_sge = 1,
		.opcode = IBV_WR_RDMA_READ,
		.send_flags = IBV_SEND_SIGNALED,
		.wr.rdma = {.remote_addr = remote, .rkey = rkey},
	};
	struct ibv_send_wr *bad;
	int ret;

	rdma_record(rc, stream, seq, RDMA_WR_READ, 0, region_id, offset, len);
	ret = ibv_post_send(s->id->qp, &wr, &bad);
	if (ret)
		return transport_conn_fail(&rc->base, -ret,
					   "queue pair %u: posting an RDMA READ of region %u "
					   "[%llu, +%u): %s",
					   stream, region_id, (unsigned long long)offset, len,
					   strerror(ret));
	s->sq_posted = seq;
	*seq_p = seq;
	return 0;
}

static int rdma_transport_read(struct transport_conn *conn, uint32_t region_id, uint64_t offset,
			       void *dst, size_t len, int timeout_ms)
{
	struct rdma_conn *rc = rdma_conn_of(conn);
	struct transport_run run = {.region_id = region_id, .offset = offset, .length = len};
	struct transport_region remote;
	struct timespec deadline, *deadline_p = NULL;
	uint32_t lkey = 0;
	int direct, ret = 0;
	char why[200];
	size_t done = 0;

	if (timeout_ms >= 0) {
		transport_deadline(timeout_ms, &deadline);
		deadline_p = &deadline;
	}
	if (conn->failed)
		return conn->failed;
	ret = transport_runs_check(conn, 1, TRANSPORT_ACCESS_REMOTE_READ, &run, 1, why,
				   sizeof(why));
	if (ret) {
		rmig_log_error("rdma %s: read refused: %s", conn->peer, why);
		return ret;
	}
	ret = transport_region_find(conn, 1, region_id, &remote);
	if (ret)
		return ret;
	direct = rdma_local_target(rc, dst, len, &lkey);

	pthread_mutex_lock(&rc->lock);
	/* Reads into registered memory run side by side; the bounce buffer takes one at a time. */
	while (!direct && rc->read_busy) {
		if (conn->failed) {
			ret = conn->failed;
			goto out_unlock;
		}
		ret = rdma_wait(rc, deadline_p);
		if (ret == -ETIMEDOUT && rc->read_busy)
			goto out_unlock;
		ret = 0;
	}
	if (!direct)
		rc->read_busy = 1;
	while (done < len && !ret) {
		uint64_t piece = len - done, target, seq = 0;
		unsigned stream = rdma_read_stream(rc);
		struct rdma_stream *s = &rc->streams[stream];

		if (!direct && piece > RDMA_BOUNCE_SIZE)
			piece = RDMA_BOUNCE_SIZE;
		if (piece > rc->max_msg_size)
			piece = rc->max_msg_size;
		while (!rdma_room(rc, stream, 1) && !conn->failed)
			rdma_wait(rc, NULL);
		if (conn->failed) {
			ret = conn->failed;
			break;
		}
		target = direct ? (uintptr_t)dst + done : (uintptr_t)rc->bounce;
		ret = rdma_read_post(rc, stream, target, direct ? lkey : rc->buffers_mr->lkey,
				     remote.remote_addr + offset + done, remote.rkey,
				     (uint32_t)piece, region_id, offset + done, &seq);
		if (ret)
			break;
		/* The landing memory is ours again only once the READ completed: wait for it
		 * whatever the deadline says. */
		while (s->sq_completed < seq && !conn->failed)
			rdma_wait(rc, NULL);
		if (s->sq_succeeded < seq) {
			ret = conn->failed ? conn->failed : -EIO;
			break;
		}
		if (!direct)
			memcpy((char *)dst + done, rc->bounce, piece);
		done += piece;
		if (deadline_p && done < len && transport_ms_left(deadline_p) == 0) {
			ret = -ETIMEDOUT;
			rmig_log_error("rdma %s: read of region %u [%llu, +%zu) timed out",
				       conn->peer, region_id, (unsigned long long)offset, len);
		}
	}
	if (!direct) {
		rc->read_busy = 0;
		pthread_cond_broadcast(&rc->changed);
	}
out_unlock:
	pthread_mutex_unlock(&rc->lock);
	if (!ret) {
		pthread_mutex_lock(conn->region_lock);
		conn->stats.reads++;
		conn->stats.read_bytes += len;
		pthread_mutex_unlock(conn->region_lock);
	}
	return ret;
}

/* ---- close ---- */

static void rdma_transport_close(struct transport_conn *conn)
{
	struct rdma_conn *rc = rdma_conn_of(conn);
	struct timespec deadline;

	transport_deadline(1000, &deadline);
	pthread_mutex_lock(&rc->lock);
	if (!conn->failed) {
		/* A goodbye behind every queued commit, so the peer tells an orderly close from a
		 * crash; best effort. */
		if (!rdma_send_queue(rc, WIRE_CLOSE, NULL, 0, NULL, 0, NULL, &deadline))
			rdma_drain_locked(rc, &deadline);
	}
	rc->closing = 1;
	pthread_mutex_unlock(&rc->lock);
	rdma_conn_disconnect(rc);
	rdma_conn_destroy(rc);
}

const struct transport_ops rdma_transport_ops = {
	.scheme = "rdma",
	.listen = rdma_transport_listen,
	.listener_uri = rdma_transport_listener_uri,
	.accept = rdma_transport_accept,
	.listener_close = rdma_transport_listener_close,
	.connect = rdma_transport_connect,
	.region_register = rdma_transport_region_register,
	.region_deregister = rdma_transport_region_deregister,
	.batch_post = rdma_transport_batch_post,
	.flush = rdma_transport_flush,
	.ctrl_send = rdma_transport_ctrl_send,
	.recv = rdma_transport_recv,
	.read = rdma_transport_read,
	.close = rdma_transport_close,
};
