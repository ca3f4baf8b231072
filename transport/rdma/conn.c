/* SPDX-License-Identifier: MIT */
/* transport/rdma/conn.c - one rdma:// connection's verbs resources and their teardown: the PD,
 * the completion channel and CQ every queue pair shares, each queue pair, one registered block
 * of hugepage memory for the receive ring, the send slots and the RDMA READ bounce buffer, the
 * progress thread's start; destroy in reverse order, and close. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "transport/log.h"
#include "transport/rdma/rdma.h"

/* ---- connection resources ---- */

void rdma_fail_quiet(struct rdma_conn *rc, int err, const char *message)
{
	pthread_mutex_lock(rc->base.region_lock);
	if (!rc->base.failed) {
		rc->base.failed = err;
		snprintf(rc->base.error, sizeof(rc->base.error), "%s", message);
	}
	pthread_mutex_unlock(rc->base.region_lock);
}

void rdma_stats_add(struct rdma_conn *rc, uint64_t *field, uint64_t value)
{
	pthread_mutex_lock(rc->base.region_lock);
	*field += value;
	pthread_mutex_unlock(rc->base.region_lock);
}

/* Receive buffers live on queue pair 0 only: it alone carries SENDs. */
int rdma_post_recv(struct rdma_conn *rc, uint32_t index)
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
int rdma_conn_resources(struct rdma_conn *rc)
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
int rdma_stream_qp(struct rdma_conn *rc, unsigned index)
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

/* Connect / accept parameters of queue pair index: its hello names the connection and itself;
 * with proof (connecting, keyed), the request carries the key proof after it. */
static void rdma_stream_ack_timeout(struct rdma_conn *rc, unsigned index);

void rdma_stream_param(struct rdma_conn *rc, unsigned index, struct rdma_conn_param *param,
		       struct rdma_hello_request *request, const uint8_t *proof)
{
	wire_hello_to_wire(&request->hello, rc->nstreams, TRANSPORT_CTRL_MAX, RDMA_RECV_DEPTH,
			   rc->session_tag | index);
	wire_rdma_hello_key_to_wire(&request->key, proof ? WIRE_HELLO_KEY_PROOF : 0, proof);
	memset(param, 0, sizeof(*param));
	param->private_data = request;
	param->private_data_len = proof ? sizeof(*request) : sizeof(request->hello);
	param->responder_resources = rc->responder_resources;
	param->initiator_depth = rc->initiator_depth;
	param->retry_count = RDMA_RETRY_COUNT;
	/* Credits make RNR impossible; a few retries only cover a peer still posting. */
	param->rnr_retry_count = 3;
	rdma_stream_ack_timeout(rc, index);
}

/* The local ack timeout exponent t (4.096 us x 2^t per try) whose RDMA_RETRY_COUNT + 1 tries
 * add up to at most the dead-peer deadline: a peer that stops acknowledging fails the queue
 * pair's work requests (IBV_WC_RETRY_EXC_ERR) within it. 10 s gives t = 18 (1.07 s a try,
 * 8.6 s in all). */
uint8_t rdma_ack_timeout_exponent(uint32_t deadline_ms)
{
	uint64_t per_try_ns = (uint64_t)deadline_ms * 1000000u / (RDMA_RETRY_COUNT + 1u);
	uint8_t t = 1;

	while (t < 31 && 4096ull << (t + 1) <= per_try_ns)
		t++;
	return t;
}

/* Before rdma_connect/rdma_accept, which move the queue pair to RTS with it. */
static void rdma_stream_ack_timeout(struct rdma_conn *rc, unsigned index)
{
	uint8_t t = rdma_ack_timeout_exponent(rc->options.peer_timeout_ms);

	if (rdma_set_option(rc->streams[index].id, RDMA_OPTION_ID, RDMA_OPTION_ID_ACK_TIMEOUT, &t,
			    sizeof(t)))
		rmig_log_warn("rdma %s: queue pair %u: cannot set the ack timeout (%s): a silent "
			      "peer is found by the engine's heartbeat only",
			      rc->base.peer, index, strerror(errno));
}

int rdma_transport_peer_timeout_set(struct transport_conn *conn, uint32_t timeout_ms)
{
	struct rdma_conn *rc = rdma_conn_of(conn);

	/* Fixed when the queue pairs went to RTS: only a different deadline is an error. */
	if (timeout_ms && timeout_ms != rc->options.peer_timeout_ms)
		return -EINVAL;
	return 0;
}

void rdma_conn_log_ready(struct rdma_conn *rc)
{
	rmig_log_info("rdma %s: %u queue pair%s on device %s port %u, max message %llu bytes, "
		      "window %u WRs per queue pair, transport buffers %zu bytes (%s, NUMA node "
		      "%d)",
		      rc->base.peer, rc->nstreams, rc->nstreams == 1 ? "" : "s",
		      ibv_get_device_name(rc->verbs->device), rc->streams[0].id->port_num,
		      (unsigned long long)rc->max_msg_size, rc->window, rc->buffers.length,
		      rc->buffers.hugepage ? "hugepages" : "small pages", rc->buffers.numa_node);
}

struct rdma_conn *rdma_conn_new(const char *peer, const struct rdma_options *options)
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

void rdma_region_release(struct rdma_region *region)
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

/* Everything after rdma_conn_new, in reverse order; safe on a half-built connection. */
void rdma_conn_destroy(struct rdma_conn *rc)
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
void rdma_conn_disconnect(struct rdma_conn *rc)
{
	for (unsigned s = 0; s < RDMA_STREAMS_MAX; s++)
		if (rc->streams[s].id && rc->streams[s].id->qp)
			rdma_disconnect(rc->streams[s].id);
}

int rdma_progress_start(struct rdma_conn *rc)
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

/* ---- close ---- */

void rdma_transport_close(struct transport_conn *conn)
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
