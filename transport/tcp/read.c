/* SPDX-License-Identifier: MIT */
/* transport/tcp/read.c - post-copy pulls over tcp://: transport_read() sends read requests on
 * stream 0 and waits for the receiver to place each response straight into the caller's
 * buffer; the responder thread serves the peer's requests from REMOTE_READ regions, so a
 * receiver never blocks on a send. */
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

/* ---- serving the peer's reads ---- */

static int tcp_serve_read(struct tcp_conn *tc, const struct wire_read_req *req)
{
	struct tcp_stream *stream = &tc->streams[0];
	struct transport_region region;
	struct wire_read_resp resp;
	struct wire_hdr hdr;
	struct iovec iov[3];
	size_t payload = 0;
	int status = 0, ret;

	pthread_rwlock_rdlock(&tc->memory_lock);
	if (transport_region_find(&tc->base, 0, req->region_id, &region))
		status = -ENOENT;
	else if (!(region.access & TRANSPORT_ACCESS_REMOTE_READ))
		status = -EACCES;
	else if (req->offset > region.length || req->length > region.length - req->offset)
		status = -ERANGE;
	else
		payload = req->length;
	if (status)
		rmig_log_warn("tcp %s: refusing to serve read of region %u [%llu, +%llu): %s",
			      tc->base.peer, req->region_id, (unsigned long long)req->offset,
			      (unsigned long long)req->length, strerror(-status));
	wire_read_resp_to_wire(&resp, req->request_id, status);
	wire_hdr_to_wire(&hdr, WIRE_READ_RESP, (uint32_t)(sizeof(resp) + payload), 0);
	iov[0] = (struct iovec){.iov_base = &hdr, .iov_len = sizeof(hdr)};
	iov[1] = (struct iovec){.iov_base = &resp, .iov_len = sizeof(resp)};
	iov[2] = (struct iovec){.iov_base = payload ? (char *)region.addr + req->offset : NULL,
				.iov_len = payload};
	pthread_mutex_lock(&stream->send_lock);
	ret = tcp_stream_send(stream, iov, 3);
	pthread_mutex_unlock(&stream->send_lock);
	pthread_rwlock_unlock(&tc->memory_lock);
	if (ret)
		return tcp_send_failed(tc, ret, "read-resp");
	tcp_stats_sent(tc, sizeof(hdr) + sizeof(resp) + payload);
	return 0;
}

void *tcp_responder_main(void *arg)
{
	struct tcp_conn *tc = arg;

	for (;;) {
		struct tcp_read_job *job;
		int ret;

		pthread_mutex_lock(&tc->lock);
		while (!tc->jobs_head && !tc->stopping && !tc->dead)
			tcp_wait(tc, NULL);
		if (tc->stopping || tc->dead) {
			pthread_mutex_unlock(&tc->lock);
			break;
		}
		job = tc->jobs_head;
		tc->jobs_head = job->next;
		if (!tc->jobs_head)
			tc->jobs_tail = NULL;
		tc->njobs--;
		pthread_mutex_unlock(&tc->lock);
		ret = tcp_serve_read(tc, &job->req);
		free(job);
		if (ret)
			break;
	}
	return NULL;
}

/* ---- reads ---- */

static int tcp_read_chunk(struct tcp_conn *tc, uint32_t region_id, uint64_t offset, void *dst,
			  size_t len, int timeout_ms, const struct timespec *abstime)
{
	struct tcp_read_wait wait = {.dst = dst, .len = len, .state = TCP_READ_WAITING};
	struct tcp_read_wait **link;
	struct wire_read_req req;
	int ret;

	pthread_mutex_lock(&tc->lock);
	wait.request_id = ++tc->last_request_id;
	wait.next = tc->read_waits;
	tc->read_waits = &wait;
	pthread_mutex_unlock(&tc->lock);

	wire_read_req_to_wire(&req, wait.request_id, region_id, offset, len);
	ret = tcp_send_frame(tc, WIRE_READ_REQ, &req, sizeof(req), NULL, 0);

	pthread_mutex_lock(&tc->lock);
	while (!ret && wait.state != TCP_READ_DONE) {
		/* Once filling, the receiver finishes (or fails) the frame: wait it out. */
		if (wait.state == TCP_READ_WAITING && (tc->dead || tc->peer_closed)) {
			ret = -ECONNRESET;
			break;
		}
		if (tcp_wait(tc,
			     wait.state == TCP_READ_FILLING || timeout_ms < 0 ? NULL : abstime) ==
			    -ETIMEDOUT &&
		    wait.state == TCP_READ_WAITING)
			ret = -ETIMEDOUT;
	}
	if (!ret)
		ret = wait.status;
	for (link = &tc->read_waits; *link; link = &(*link)->next) {
		if (*link == &wait) {
			*link = wait.next;
			break;
		}
	}
	pthread_mutex_unlock(&tc->lock);
	if (ret == -ECONNRESET && tcp_status(tc))
		ret = tcp_status(tc);
	return ret;
}

int tcp_read(struct transport_conn *conn, uint32_t region_id, uint64_t offset, void *dst,
	     size_t len, int timeout_ms)
{
	const struct transport_run run = {.region_id = region_id, .offset = offset, .length = len};
	struct tcp_conn *tc = tcp_conn_of(conn);
	char why[TRANSPORT_ERROR_MAX];
	struct timespec abstime = {0};
	size_t done = 0;
	int ret;

	ret = tcp_status(tc);
	if (ret)
		return ret;
	ret = transport_runs_check(conn, 1, TRANSPORT_ACCESS_REMOTE_READ, &run, 1, why,
				   sizeof(why));
	if (ret) {
		rmig_log_error("tcp %s: read refused: %s", conn->peer, why);
		return ret;
	}
	if (timeout_ms >= 0)
		transport_deadline(timeout_ms, &abstime);
	while (done < len) {
		size_t chunk = len - done < TCP_FRAME_DATA_MAX ? len - done : TCP_FRAME_DATA_MAX;

		ret = tcp_read_chunk(tc, region_id, offset + done, (char *)dst + done, chunk,
				     timeout_ms, &abstime);
		if (ret) {
			if (ret == -ETIMEDOUT)
				rmig_log_error("tcp %s: read of region %u [%llu, +%zu) timed out",
					       conn->peer, region_id,
					       (unsigned long long)(offset + done), chunk);
			else if (!tcp_status(tc))
				rmig_log_error("tcp %s: the peer refused the read of region %u "
					       "[%llu, +%zu): %s",
					       conn->peer, region_id,
					       (unsigned long long)(offset + done), chunk,
					       strerror(-ret));
			return ret;
		}
		done += chunk;
	}
	pthread_mutex_lock(conn->region_lock);
	conn->stats.reads++;
	conn->stats.read_bytes += len;
	pthread_mutex_unlock(conn->region_lock);
	return 0;
}
