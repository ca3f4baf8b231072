/* SPDX-License-Identifier: MIT */
/* transport/rdma/post.c - posting work for rdma://: a batch becomes chains of RDMA WRITEs (one
 * per contiguous run, split at the device's largest message, at most RDMA_CHAIN_MAX per
 * ibv_post_send, signalled every signal_every WRs, within each queue pair's in-flight window),
 * followed by its commit on the send ring (ring.c); flush waits for completions; RDMA READ pulls
 * for post-copy. With several queue pairs, page data is cut at RDMA_STREAM_BLOCK boundaries of
 * its region and each block always travels on the same queue pair (transport_block_stream()):
 * consecutive blocks are dealt round-robin, and bytes sent again in a later batch queue behind
 * their earlier copy on one ordered QP, so the newer bytes land last. Each QP has its own
 * in-flight window and selective signalling. The ops table is at the end.
 *
 * Staged regions (register.c: one the kernel would not pin, or every one with reg=copy, on
 * either side) take no WRITE: a run of one is cut into WIRE_STAGED messages of up to
 * RDMA_STAGED_MAX bytes, each copied into a send slot and queued on the send ring of queue
 * pair 0, the ring that carries the batch's commit, before it. RC delivers QP 0's SENDs in
 * order, and the peer places each staged message as it arrives (progress.c), so a commit still
 * means its data is in place; and since a region is staged for the whole connection, every
 * byte of it travels on that one ring, so a later copy of the same bytes always lands after
 * the earlier one, however many queue pairs carry the WRITEs of other regions. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transport/log.h"
#include "transport/rdma/rdma.h"

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

/* Send [offset, offset+length) of staged region id as WIRE_STAGED messages on the send ring,
 * each piece copied into its send slot. Caller holds rc->lock and posted every chain: waiting
 * for a slot lets the lock go (the region is looked up again after each wait). */
static int rdma_staged_send(struct rdma_conn *rc, uint64_t batch_id, uint32_t id,
			    const struct rdma_region *reg, uint64_t offset, uint64_t length)
{
	for (uint64_t done = 0; done < length;) {
		uint64_t piece = length - done < RDMA_STAGED_MAX ? length - done : RDMA_STAGED_MAX;
		struct transport_region local, remote;
		struct wire_data data;
		char *buf;
		int ret;

		ret = rdma_send_reserve(rc, NULL, &buf);
		if (!ret)
			ret = rdma_batch_regions(rc, batch_id, id, &local, &remote);
		if (!ret && local.priv != reg)
			ret = -ENOENT;
		if (ret)
			return ret;
		wire_data_to_wire(&data, id, offset + done);
		memcpy(buf, &data, sizeof(data));
		memcpy(buf + sizeof(data), (const char *)local.addr + offset + done, piece);
		ret = rdma_send_queued(rc, WIRE_STAGED, (uint32_t)(sizeof(data) + piece), NULL);
		if (ret)
			return ret;
		done += piece;
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
	uint64_t data_bytes = 0, staged_bytes = 0;
	int ret, len;

	if (conn->failed)
		return conn->failed;
	ret = transport_batch_check(conn, batch_id, runs, nruns);
	if (ret)
		return ret;
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
		if ((local.flags | remote.flags) & TRANSPORT_REGION_STAGED) {
			/* Chains first: no sequence number may stay taken while a slot is
			 * waited for. */
			ret = rdma_chains_post(rc, chains);
			if (!ret)
				ret = rdma_staged_send(rc, batch_id, runs[i].region_id, reg,
						       runs[i].offset, length);
			if (ret)
				goto out_unlock;
			data_bytes += length;
			staged_bytes += length;
			i = next;
			continue;
		}
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
	/* Staged bytes were counted as their SENDs went (ring.c). */
	conn->stats.bytes_sent += data_bytes - staged_bytes;
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
	if (remote.flags & TRANSPORT_REGION_STAGED) {
		rmig_log_error(
			"rdma %s: read of region %u refused: the peer carries it staged (not "
			"registered there), and RDMA READ needs a registration",
			conn->peer, region_id);
		return -EOPNOTSUPP;
	}
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

const struct transport_ops rdma_transport_ops = {
	.scheme = "rdma",
	.registration_pins = 1,
	.listen = rdma_transport_listen,
	.listener_uri = rdma_transport_listener_uri,
	.accept = rdma_transport_accept,
	.listener_close = rdma_transport_listener_close,
	.connect = rdma_transport_connect,
	.region_register = rdma_transport_region_register,
	.region_deregister = rdma_transport_region_deregister,
	.region_access_set = rdma_transport_region_access_set,
	.batch_post = rdma_transport_batch_post,
	.flush = rdma_transport_flush,
	.ctrl_send = rdma_transport_ctrl_send,
	.recv = rdma_transport_recv,
	.read = rdma_transport_read,
	.peer_timeout_set = rdma_transport_peer_timeout_set,
	.close = rdma_transport_close,
};
