/* SPDX-License-Identifier: MIT */
/* transport/rdma/progress.c - the progress thread, one per connection: it polls the shared
 * completion queue and the rdma_cm events, so the peer's credits return and held-back commits go
 * out even while the local engine is not inside a transport call. A failed completion fails the
 * connection with an error naming the queue pair, the work request and, from the per-QP record
 * ring, the region and bytes it carried; received SENDs are checked and queued for recv(). */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "transport/log.h"
#include "transport/rdma/rdma.h"

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
void rdma_queue_refill(struct rdma_conn *rc)
{
	while (rc->held_count && rdma_queue_from_buffer(rc, rc->held[rc->held_head])) {
		uint32_t index = rc->held[rc->held_head];

		rc->held_head = (rc->held_head + 1) % RDMA_RECV_DEPTH;
		rc->held_count--;
		if (!rc->base.failed)
			rdma_repost(rc, index);
	}
}

/* Place a WIRE_STAGED message's bytes in their region once transport_staged_check() agrees:
 * a region registered here with remote write, staged by one side, the bytes inside it. Runs
 * under rc->lock, which deregistration takes too: the region cannot go while it is copied. */
static int rdma_staged_place(struct rdma_conn *rc, const char *payload, uint32_t length, char *why,
			     size_t why_len)
{
	struct transport_region local, peer;
	int have_local, have_peer, ret;
	uint64_t offset, bytes;
	uint32_t id;

	ret = wire_data_from_wire(payload, length, &id, &offset, why, why_len);
	if (ret)
		return ret;
	bytes = length - sizeof(struct wire_data);
	have_local = !transport_region_find(&rc->base, 0, id, &local);
	have_peer = !transport_region_find(&rc->base, 1, id, &peer);
	ret = transport_staged_check(have_local ? &local : NULL, have_peer ? &peer : NULL, id,
				     offset, bytes, why, why_len);
	if (ret)
		return ret;
	memcpy((char *)local.addr + offset, payload + sizeof(struct wire_data), bytes);
	return 0;
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
	payload = rdma_recv_buffer(rc, index) + sizeof(struct wire_hdr);
	if (wire_hdr_from_wire(rdma_recv_buffer(rc, index), wc->byte_len, WIRE_MSG_MAX, &hdr, why,
			       sizeof(why))) {
		rdma_stats_add(rc, &rc->base.stats.bytes_received, wc->byte_len);
		rdma_protocol_error(rc, why);
		return;
	}
	/* A staged message's page bytes are counted with its commit, as WRITEs' are (ring.c). */
	rdma_stats_add(rc, &rc->base.stats.bytes_received,
		       hdr.type == WIRE_STAGED && wc->byte_len > sizeof(struct wire_hdr) +
									 sizeof(struct wire_data)
			       ? sizeof(struct wire_hdr) + sizeof(struct wire_data)
			       : wc->byte_len);
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
		ret = transport_region_open(&rc->base, hdr.type, payload, hdr.length, why,
					    sizeof(why));
		if (!ret)
			ret = wire_region_from_wire(payload, sizeof(struct wire_region), &region,
						    why, sizeof(why));
		if (ret) {
			rdma_protocol_error(rc, why);
			return;
		}
		if (!(region.access &
		      (TRANSPORT_ACCESS_REMOTE_WRITE | TRANSPORT_ACCESS_REMOTE_READ)) &&
		    !(region.flags & TRANSPORT_REGION_STAGED)) {
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
		ret = transport_region_open(&rc->base, hdr.type, payload, hdr.length, why,
					    sizeof(why));
		if (!ret)
			ret = wire_region_from_wire(payload, sizeof(struct wire_region), &region,
						    why, sizeof(why));
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
	case WIRE_STAGED:
		if (rdma_staged_place(rc, payload, hdr.length, why, sizeof(why))) {
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

void *rdma_progress_main(void *arg)
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
