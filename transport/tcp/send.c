/* SPDX-License-Identifier: MIT */
/* transport/tcp/send.c - how a batch goes out on tcp://: runs are cut into frames at
 * TCP_FRAME_DATA_MAX boundaries of their region, each frame a header iovec and a payload iovec
 * straight from the region; frames go to their stream (stream 0 alone, or streams 1..n-1 by
 * transport_block_stream()), each data stream's share handed to its sender thread, and the
 * commit goes last on stream 0 naming the bytes each stream carried. Also control messages and
 * region announcements. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "transport/log.h"
#include "transport/tcp/tcp.h"

/* ---- sending a stream's share of a batch ---- */

/* Send whole frames, each two iovecs (header, payload), taking the stream's lock for a group
 * of frames at a time: a read response or control message waits for one group, not for the
 * whole batch, and frames never interleave mid-way. */
static int tcp_send_frames(struct tcp_stream *stream, struct iovec *iov, size_t iovcnt)
{
	size_t done = 0;
	int ret = 0;

	while (!ret && done < iovcnt) {
		size_t group = 0, bytes = 0;

		while (done + group < iovcnt && group + 2 <= IOV_MAX &&
		       bytes < TCP_SEND_GROUP_BYTES) {
			bytes += iov[done + group].iov_len + iov[done + group + 1].iov_len;
			group += 2;
		}
		pthread_mutex_lock(&stream->send_lock);
		ret = tcp_stream_send(stream, &iov[done], group);
		pthread_mutex_unlock(&stream->send_lock);
		done += group;
	}
	return ret;
}

void *tcp_sender_main(void *arg)
{
	struct tcp_stream *stream = arg;
	struct tcp_conn *tc = stream->conn;

	pthread_mutex_lock(&tc->lock);
	for (;;) {
		struct iovec *iov;
		size_t iovcnt;
		int ret;

		while (!stream->job_pending && !tc->stopping)
			tcp_wait(tc, NULL);
		if (!stream->job_pending)
			break;
		iov = stream->job_iov;
		iovcnt = stream->job_iovcnt;
		pthread_mutex_unlock(&tc->lock);
		ret = tcp_send_frames(stream, iov, iovcnt);
		pthread_mutex_lock(&tc->lock);
		stream->job_result = ret;
		stream->job_pending = 0;
		pthread_cond_broadcast(&tc->changed);
	}
	pthread_mutex_unlock(&tc->lock);
	return NULL;
}

/* ---- regions ---- */

/* A region announcement, with its MAC once the connection is bound to the handshake. */
static int tcp_send_region(struct tcp_conn *tc, enum wire_type type, const struct wire_region *wire)
{
	uint8_t mac[TRANSPORT_REGION_MAC_LEN];
	size_t mac_len = transport_region_seal(&tc->base, type, wire, mac);

	return tcp_send_frame(tc, type, wire, sizeof(*wire), mac_len ? mac : NULL, mac_len);
}

int tcp_region_register(struct transport_conn *conn, uint32_t id, void *addr, size_t len,
			unsigned access)
{
	struct tcp_conn *tc = tcp_conn_of(conn);
	struct transport_region region = {.id = id, .access = access, .addr = addr, .length = len};
	struct wire_region wire;
	int ret;

	if (access & ~(unsigned)(TRANSPORT_ACCESS_REMOTE_WRITE | TRANSPORT_ACCESS_REMOTE_READ)) {
		rmig_log_error("tcp %s: region %u: unknown access bits 0x%x", conn->peer, id,
			       access);
		return -EINVAL;
	}
	if (!addr || len == 0) {
		rmig_log_error("tcp %s: region %u: empty (addr %p, length %zu)", conn->peer, id,
			       addr, len);
		return -EINVAL;
	}
	ret = tcp_status(tc);
	if (ret)
		return ret;
	ret = transport_region_add(conn, 0, &region);
	if (ret) {
		rmig_log_error("tcp %s: region %u: %s", conn->peer, id,
			       ret == -EEXIST ? "id already registered" : "cannot record it");
		return ret;
	}
	if (!(access & (TRANSPORT_ACCESS_REMOTE_WRITE | TRANSPORT_ACCESS_REMOTE_READ)))
		return 0;
	/* The peer learns id, length and access; never our address. */
	region.addr = NULL;
	wire_region_to_wire(&wire, &region);
	ret = tcp_send_region(tc, WIRE_REGION_ADD, &wire);
	if (ret)
		transport_region_remove(conn, 0, id, NULL);
	return ret;
}

int tcp_region_deregister(struct transport_conn *conn, uint32_t id)
{
	struct tcp_conn *tc = tcp_conn_of(conn);
	struct transport_region removed;
	struct wire_region wire;
	int ret;

	/* Waits for a frame being received into the region, or a read served from it. */
	pthread_rwlock_wrlock(&tc->memory_lock);
	ret = transport_region_remove(conn, 0, id, &removed);
	pthread_rwlock_unlock(&tc->memory_lock);
	if (ret) {
		rmig_log_error("tcp %s: deregister region %u: not registered", conn->peer, id);
		return ret;
	}
	if (!(removed.access & (TRANSPORT_ACCESS_REMOTE_WRITE | TRANSPORT_ACCESS_REMOTE_READ)) ||
	    tcp_status(tc))
		return 0;
	removed.addr = NULL;
	wire_region_to_wire(&wire, &removed);
	return tcp_send_region(tc, WIRE_REGION_DEL, &wire);
}

/* Under the memory lock's write side no frame is being received into the region and no read
 * served from it; once it is released the receiver and the read responder check the new
 * access. Then the peer hears of it: region-del for the old announcement, region-add for the
 * new one. */
int tcp_region_access_set(struct transport_conn *conn, uint32_t id, unsigned access)
{
	struct tcp_conn *tc = tcp_conn_of(conn);
	struct transport_region region;
	struct wire_region wire;
	unsigned old_access;
	int ret;

	pthread_rwlock_wrlock(&tc->memory_lock);
	ret = transport_region_find(conn, 0, id, &region);
	if (!ret) {
		old_access = region.access;
		region.access = access;
		transport_region_update(conn, 0, &region);
	}
	pthread_rwlock_unlock(&tc->memory_lock);
	if (ret)
		return ret;
	ret = tcp_status(tc);
	if (ret) /* nothing more comes in: a revocation holds, a grant cannot be told */
		return access & ~old_access ? ret : 0;
	region.addr = NULL;
	wire_region_to_wire(&wire, &region);
	if (old_access & TRANSPORT_ACCESS_REMOTE)
		ret = tcp_send_region(tc, WIRE_REGION_DEL, &wire);
	if (!ret && (access & TRANSPORT_ACCESS_REMOTE))
		ret = tcp_send_region(tc, WIRE_REGION_ADD, &wire);
	return access & ~old_access ? ret : 0;
}

/* ---- batches ---- */

/* Data is cut at absolute TCP_FRAME_DATA_MAX boundaries of the region, and each such block
 * always travels on the same stream: a byte sent again in a later batch then queues behind
 * its earlier copy on one ordered stream, and the newer bytes land last. With several
 * streams, stream 0 keeps only commits, control messages and reads, so those never wait
 * behind bulk data. */
static unsigned tcp_data_stream(unsigned nstreams, uint32_t region_id, uint64_t offset)
{
	uint64_t block = offset / TCP_FRAME_DATA_MAX;

	if (nstreams == 1)
		return 0;
	return 1 + transport_block_stream(region_id, block, nstreams - 1);
}

static uint32_t tcp_chunk_length(uint64_t offset, uint64_t left)
{
	uint64_t to_boundary = TCP_FRAME_DATA_MAX - offset % TCP_FRAME_DATA_MAX;

	return (uint32_t)(left < to_boundary ? left : to_boundary);
}

int tcp_batch_post(struct transport_conn *conn, uint64_t batch_id, const struct transport_run *runs,
		   size_t nruns)
{
	struct tcp_conn *tc = tcp_conn_of(conn);
	const unsigned nstreams = tc->nstreams;
	uint64_t stream_data[WIRE_STREAMS_MAX] = {0};
	size_t stream_chunks[WIRE_STREAMS_MAX] = {0};
	size_t stream_first[WIRE_STREAMS_MAX + 1];
	size_t stream_fill[WIRE_STREAMS_MAX];
	struct wire_commit_host commit = {.batch_id = batch_id, .nruns = nruns};
	struct tcp_data_head *heads;
	struct wire_hdr commit_hdr;
	struct iovec *iov;
	void *commit_buf;
	size_t nchunks = 0, chunk = 0;
	uint64_t data_bytes = 0;
	int commit_len, ret;

	ret = tcp_status(tc);
	if (ret)
		return ret;
	ret = transport_batch_check(conn, batch_id, runs, nruns);
	if (ret)
		return ret;
	for (size_t i = 0; i < nruns; i++) {
		if (runs[i].flags & TRANSPORT_RUN_ZERO)
			continue;
		for (uint64_t done = 0; done < runs[i].length;) {
			uint64_t offset = runs[i].offset + done;
			uint32_t len = tcp_chunk_length(offset, runs[i].length - done);

			stream_chunks[tcp_data_stream(nstreams, runs[i].region_id, offset)]++;
			nchunks++;
			done += len;
		}
	}

	heads = malloc((nchunks ? nchunks : 1) * sizeof(*heads));
	iov = malloc((2 * nchunks + 2) * sizeof(*iov));
	commit_buf = malloc(TCP_COMMIT_MAX);
	if (!heads || !iov || !commit_buf) {
		ret = -ENOMEM;
		goto out_free;
	}
	/* Each stream's frames sit together in iov; stream 0's end with the commit. */
	stream_first[0] = 0;
	for (unsigned s = 0; s < nstreams; s++) {
		stream_first[s + 1] = stream_first[s] + 2 * stream_chunks[s] + (s == 0 ? 2 : 0);
		stream_fill[s] = stream_first[s];
	}

	pthread_mutex_lock(&tc->post_lock);
	pthread_rwlock_rdlock(&tc->memory_lock);
	for (size_t i = 0; i < nruns; i++) {
		struct transport_region region;
		uint64_t done = 0;

		if (runs[i].flags & TRANSPORT_RUN_ZERO)
			continue;
		if (transport_region_find(conn, 0, runs[i].region_id, &region)) {
			ret = -ENOENT; /* deregistered while this batch was being posted */
			goto out_unlock;
		}
		while (done < runs[i].length) {
			uint64_t offset = runs[i].offset + done;
			uint32_t len = tcp_chunk_length(offset, runs[i].length - done);
			unsigned s = tcp_data_stream(nstreams, runs[i].region_id, offset);
			struct tcp_data_head *head = &heads[chunk];

			wire_hdr_to_wire(&head->hdr, WIRE_DATA,
					 (uint32_t)sizeof(struct wire_data) + len, 0);
			wire_data_to_wire(&head->data, runs[i].region_id, runs[i].offset + done);
			iov[stream_fill[s]++] =
				(struct iovec){.iov_base = head, .iov_len = sizeof(*head)};
			iov[stream_fill[s]++] = (struct iovec){.iov_base = (char *)region.addr +
									   runs[i].offset + done,
							       .iov_len = len};
			stream_data[s] += len;
			data_bytes += len;
			done += len;
			chunk++;
		}
	}
	commit.stream_count = nstreams;
	for (unsigned s = 0; s < nstreams; s++)
		commit.stream_bytes[s] = tc->streams[s].data_sent + stream_data[s];
	commit_len = wire_commit_to_wire(commit_buf, TCP_COMMIT_MAX, &commit, runs);
	if (commit_len < 0) {
		ret = commit_len;
		goto out_unlock;
	}
	wire_hdr_to_wire(&commit_hdr, WIRE_COMMIT, (uint32_t)commit_len, 0);
	iov[stream_fill[0]++] =
		(struct iovec){.iov_base = &commit_hdr, .iov_len = sizeof(commit_hdr)};
	iov[stream_fill[0]++] =
		(struct iovec){.iov_base = commit_buf, .iov_len = (size_t)commit_len};

	pthread_mutex_lock(&tc->lock);
	for (unsigned s = 1; s < nstreams; s++) {
		tc->streams[s].job_iov = &iov[stream_first[s]];
		tc->streams[s].job_iovcnt = stream_first[s + 1] - stream_first[s];
		tc->streams[s].job_result = 0;
		tc->streams[s].job_pending = stream_chunks[s] != 0;
	}
	pthread_cond_broadcast(&tc->changed);
	pthread_mutex_unlock(&tc->lock);

	ret = tcp_send_frames(&tc->streams[0], &iov[0], stream_first[1]);

	/* The regions must not be released while another stream still reads from them. */
	pthread_mutex_lock(&tc->lock);
	for (unsigned s = 1; s < nstreams; s++) {
		while (tc->streams[s].job_pending)
			tcp_wait(tc, NULL);
		if (!ret)
			ret = tc->streams[s].job_result;
	}
	pthread_mutex_unlock(&tc->lock);
	if (ret) {
		ret = tcp_send_failed(tc, ret, "batch");
		goto out_unlock;
	}
	for (unsigned s = 0; s < nstreams; s++)
		tc->streams[s].data_sent += stream_data[s];
	pthread_mutex_lock(conn->region_lock);
	conn->stats.bytes_sent += nchunks * sizeof(struct tcp_data_head) + data_bytes +
				  sizeof(commit_hdr) + (size_t)commit_len;
	conn->stats.data_bytes_sent += data_bytes;
	conn->stats.batches_sent++;
	pthread_mutex_unlock(conn->region_lock);

out_unlock:
	pthread_rwlock_unlock(&tc->memory_lock);
	pthread_mutex_unlock(&tc->post_lock);
out_free:
	free(commit_buf);
	free(iov);
	free(heads);
	return ret;
}

int tcp_flush(struct transport_conn *conn, int timeout_ms)
{
	(void)timeout_ms;
	/* batch_post returns once the kernel holds every byte: nothing is left to wait for. */
	return tcp_status(tcp_conn_of(conn));
}

int tcp_ctrl_send(struct transport_conn *conn, const void *buf, size_t len)
{
	struct tcp_conn *tc = tcp_conn_of(conn);
	int ret;

	if (len > TRANSPORT_CTRL_MAX)
		return -EMSGSIZE;
	ret = tcp_status(tc);
	if (ret)
		return ret;
	ret = tcp_send_frame(tc, WIRE_CTRL, buf, len, NULL, 0);
	if (ret)
		return ret;
	pthread_mutex_lock(conn->region_lock);
	conn->stats.ctrl_sent++;
	pthread_mutex_unlock(conn->region_lock);
	return 0;
}
