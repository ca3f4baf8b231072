/* SPDX-License-Identifier: MIT */
/* transport/rdma/ring.c - the ordered send ring on queue pair 0 and the receive side of control
 * messages: SENDs (commits, control messages, region announcements, goodbyes) in one order,
 * credits, and what recv() hands to the engine. Every function here runs under rdma_conn.lock.
 *
 * Flow control (queue pair 0): each side posts recv_depth receive buffers of WIRE_MSG_MAX bytes
 * before it connects and announces recv_depth in the connect private data. A SEND consumes one
 * credit; receivers return credits in every header they send (wire_hdr.credits) and with an
 * explicit WIRE_CREDIT once half the ring is free. The last credit is kept for
 * WIRE_CREDIT/WIRE_CLOSE, so credits can always flow back and a SEND never meets an empty
 * receive queue (no RNR). Ordered SENDs take one of RDMA_SEND_SLOTS buffers when queued and
 * keep it until their completion, so a sender that outruns the peer's credits blocks there.
 * Commits and control messages are copied out of the receive ring into the inbound queue
 * (transport/queue.h, bounded by TRANSPORT_QUEUE_BYTES_MAX) and their buffers reposted at once,
 * so an engine that is not reading yet does not stall the peer after a few dozen messages; past
 * the bound the buffers stay held and the missing credits slow the peer down instead.
 *
 * Commits across queue pairs. RC orders the work of one QP only: a commit SEND on QP 0 says
 * nothing about WRITEs still travelling on QP 1..n-1. So a commit is held back until the WRITEs
 * of its batch on every other QP have completed locally (rdma_send.after): an RC RDMA WRITE
 * completes at the requester only once the responder acknowledged it, and InfiniBand and RoCE
 * responders acknowledge data they have placed. After those completions no byte of the batch is
 * still on its way, and RC orders QP 0's own WRITEs before the SEND. batch_post does not wait
 * for this: the commit waits in the ordered send ring and whoever handles the last completion
 * (usually the progress thread) posts it; everything sent later queues behind it. It costs one
 * acknowledgement delay per batch, hidden while batches pipeline. The alternative, one commit
 * part per QP delivered when all parts are in, would need receive buffers and credits on every
 * QP, n SENDs per batch and reassembly at the receiver. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transport/log.h"
#include "transport/rdma/rdma.h"

/* ---- sending SENDs (caller holds rc->lock) ---- */

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
void rdma_send_pump(struct rdma_conn *rc)
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

/* Wait until the next ordered SEND may take its slot, until deadline (NULL: forever); the lock
 * may be let go meanwhile. Returns the slot's payload buffer (WIRE_MSG_MAX bytes after the
 * header) in *buf_p for rdma_send_queued(), which must follow before the lock is let go.
 * Caller holds rc->lock. */
int rdma_send_reserve(struct rdma_conn *rc, const struct timespec *deadline, char **buf_p)
{
	while (!rdma_slot_free(rc)) {
		if (rc->base.failed)
			return rc->base.failed;
		if (rdma_wait(rc, deadline) == -ETIMEDOUT && !rdma_slot_free(rc))
			return -ETIMEDOUT;
	}
	if (rc->base.failed)
		return rc->base.failed;
	*buf_p = rdma_send_buffer(rc, (uint32_t)(rc->sends_queued % RDMA_SEND_SLOTS)) +
		 sizeof(struct wire_hdr);
	return 0;
}

/* The reserved slot's payload (length bytes) is written: queue it behind every SEND queued
 * before it, then post what may go. after: a commit's WRITEs on QP s >= 1, else NULL. */
int rdma_send_queued(struct rdma_conn *rc, enum wire_type type, uint32_t length,
		     const uint64_t *after)
{
	struct rdma_send *send = &rc->sends[rc->sends_queued % RDMA_SEND_SLOTS];

	send->type = type;
	send->length = length;
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

/* Queue a SEND of hdr + payload (two parts, either may be empty) behind every SEND queued before
 * it, then post what may go. after: a commit's WRITEs on QP s >= 1 (sequences), else NULL.
 * Waits for a slot until deadline (NULL: forever). Caller holds rc->lock. */
int rdma_send_queue(struct rdma_conn *rc, enum wire_type type, const void *part1, size_t len1,
		    const void *part2, size_t len2, const uint64_t *after,
		    const struct timespec *deadline)
{
	char *buf;
	int ret;

	ret = rdma_send_reserve(rc, deadline, &buf);
	if (ret)
		return ret;
	if (len1)
		memcpy(buf, part1, len1);
	if (len2)
		memcpy(buf + len1, part2, len2);
	return rdma_send_queued(rc, type, (uint32_t)(len1 + len2), after);
}

/* Has ordered SEND msg completed (1), or is it still queued or in flight (0)? */
int rdma_send_done(const struct rdma_conn *rc, uint64_t msg, int succeeded)
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
void rdma_credit_maybe_send(struct rdma_conn *rc)
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

void rdma_repost(struct rdma_conn *rc, uint32_t index)
{
	int ret = rdma_post_recv(rc, index);

	if (ret) {
		transport_conn_fail(&rc->base, ret, "reposting receive buffer %u: %s", index,
				    strerror(-ret));
		return;
	}
	rc->credits_to_return++;
}

/* ---- control messages ---- */

int rdma_transport_ctrl_send(struct transport_conn *conn, const void *buf, size_t len)
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

int rdma_transport_recv(struct transport_conn *conn, struct transport_msg *msg, int timeout_ms)
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
