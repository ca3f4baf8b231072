/* SPDX-License-Identifier: MIT */
/* engine/postcopy_dest_pull.c - the destination's test pulls for auto: how long a fault's pull
 * of POSTCOPY_FAULT_CLUSTER pages takes, before any page moves (at the handshake) and under the
 * bulk round's load (on a thread of its own, reported as PULL_REPORT after each pull). The
 * cost model weighs post-copy's stalls with them. They read the source's pull target, a buffer
 * of a fault's size that holds no guest data, through the same transport_read() a fault uses:
 * the source's guest RAM is not readable before the resume. Its id and length are derived here
 * from the agreed region table (session_pull_target_id()), never taken from the source, and the
 * transport checks each read against what the source announced. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "engine/postcopy.h"
#include "engine/protocol.h"
#include "engine/session.h"
#include "transport/log.h"

static int postcopy_compare_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* POSTCOPY_PROBE_PULLS pulls of the source's pull target, each waiting at most timeout_ms: 0
 * with their median in *m, or the first pull's -errno. */
static int postcopy_pulls_time(struct rmig_session *s, void *buf, int timeout_ms,
			       struct protocol_pull *m)
{
	size_t bytes = session_pull_target_bytes(s);
	uint32_t id = session_pull_target_id(s);
	uint64_t took[POSTCOPY_PROBE_PULLS];

	for (uint32_t i = 0; i < POSTCOPY_PROBE_PULLS; i++) {
		uint64_t start = session_now_us();
		int ret;

		ret = transport_read(s->conn, id, 0, buf, bytes, timeout_ms);
		if (ret)
			return ret;
		took[i] = session_now_us() - start;
	}
	qsort(took, POSTCOPY_PROBE_PULLS, sizeof(took[0]), postcopy_compare_u64);
	*m = (struct protocol_pull){
		.flags = PROTOCOL_PULL_MEASURED,
		.pull_us =
			(uint32_t)(took[POSTCOPY_PROBE_PULLS / 2] > UINT32_MAX ? UINT32_MAX
				   : took[POSTCOPY_PROBE_PULLS / 2] ? took[POSTCOPY_PROBE_PULLS / 2]
								    : 1u),
		.pull_bytes = (uint32_t)bytes,
		.pulls = POSTCOPY_PROBE_PULLS,
	};
	return 0;
}

int postcopy_dest_pull_probe(struct rmig_session *s, struct protocol_pull *m)
{
	void *buf = malloc(session_pull_target_bytes(s));
	int ret;

	if (!buf)
		return session_fail(s, -ENOMEM, "destination: out of memory for a test pull");
	ret = postcopy_pulls_time(s, buf, (int)s->params.timeout_ms, m);
	if (ret && s->conn->failed) {
		ret = session_fail(
			s, ret,
			"destination: a test pull of region %u (the pull target) from %s "
			"failed: %s",
			session_pull_target_id(s), s->conn->peer, session_strerror(ret));
	} else if (ret) {
		rmig_log_warn("destination: a test pull of region %u (the pull target) from %s "
			      "failed (%s): post-copy faults could not be served, auto stays with "
			      "pre-copy",
			      session_pull_target_id(s), s->conn->peer, session_strerror(ret));
		*m = (struct protocol_pull){.flags = PROTOCOL_PULL_FAILED};
		ret = 0;
	} else {
		s->pull_idle_us = m->pull_us;
		s->pull_bytes = m->pull_bytes;
		rmig_log_info("destination: a pull of %u bytes from %s takes %u us before any page "
			      "moves (median of %u)",
			      m->pull_bytes, s->conn->peer, m->pull_us, m->pulls);
	}
	free(buf);
	return ret;
}

/* The pulls timed while the bulk round's pages flow, on a thread of their own (the receive loop
 * goes on applying commits meanwhile). */
struct postcopy_pull_probe {
	struct rmig_session *s;
	pthread_t thread;
	void *buf; /* the pulled pages */
	void *msg; /* TRANSPORT_CTRL_MAX: the report */
};

/* A pull behind the bulk round's data waits for what is in flight ahead of it; past this it
 * says nothing useful (and must not hold up the end of the round). */
#define POSTCOPY_PROBE_LOADED_TIMEOUT_MS 2000

/* Each pull is reported as soon as it is in (the median of those so far): auto decides within a
 * few samples of the bulk round's start, and a pull behind the round's data may take a while. */
static void *postcopy_pull_probe_main(void *arg)
{
	struct postcopy_pull_probe *probe = arg;
	struct rmig_session *s = probe->s;
	size_t bytes = session_pull_target_bytes(s);
	uint32_t id = session_pull_target_id(s);
	uint64_t took[POSTCOPY_PROBE_LOADED_PULLS], sorted[POSTCOPY_PROBE_LOADED_PULLS];

	for (uint32_t i = 0; i < POSTCOPY_PROBE_LOADED_PULLS; i++) {
		uint64_t start = session_now_us();
		struct protocol_pull m;
		int ret;

		ret = transport_read(s->conn, id, 0, probe->buf, bytes,
				     POSTCOPY_PROBE_LOADED_TIMEOUT_MS);
		if (ret) {
			/* The source then goes by the pulls timed before the round. */
			rmig_log_warn("destination: a test pull during the bulk round failed (%s)",
				      session_strerror(ret));
			return NULL;
		}
		took[i] = session_now_us() - start;
		memcpy(sorted, took, (i + 1) * sizeof(took[0]));
		qsort(sorted, i + 1, sizeof(sorted[0]), postcopy_compare_u64);
		m = (struct protocol_pull){
			.flags = PROTOCOL_PULL_MEASURED,
			.pull_us = (uint32_t)(sorted[i / 2] > UINT32_MAX ? UINT32_MAX
					      : sorted[i / 2]		 ? sorted[i / 2]
									 : 1u),
			.pull_bytes = (uint32_t)bytes,
			.pulls = i + 1,
		};
		if (transport_ctrl_send(
			    s->conn, probe->msg,
			    protocol_pull_to_wire(PROTOCOL_PULL_REPORT, &m, probe->msg))) {
			rmig_log_warn("destination: cannot report the bulk round's test pulls");
			return NULL;
		}
		if (i + 1 == POSTCOPY_PROBE_LOADED_PULLS)
			rmig_log_info("destination: a pull of %u bytes from %s takes %u us while "
				      "the bulk round flows (median of %u)",
				      m.pull_bytes, s->conn->peer, m.pull_us, m.pulls);
	}
	return NULL;
}

int postcopy_dest_pull_probe_start(struct rmig_session *s)
{
	struct postcopy_pull_probe *probe;
	int ret;

	if (s->dst.pull_probe || !s->pull_idle_us)
		return 0;
	probe = calloc(1, sizeof(*probe));
	if (!probe)
		return session_fail(s, -ENOMEM, "destination: out of memory for test pulls");
	probe->s = s;
	probe->buf = malloc(session_pull_target_bytes(s));
	probe->msg = malloc(TRANSPORT_CTRL_MAX);
	if (!probe->buf || !probe->msg) {
		ret = session_fail(s, -ENOMEM, "destination: out of memory for test pulls");
		goto err_free;
	}
	ret = -pthread_create(&probe->thread, NULL, postcopy_pull_probe_main, probe);
	if (ret) {
		ret = session_fail(s, ret, "destination: cannot start the test pulls: %s",
				   strerror(-ret));
		goto err_free;
	}
	s->dst.pull_probe = probe;
	return 0;

err_free:
	free(probe->msg);
	free(probe->buf);
	free(probe);
	return ret;
}

void postcopy_dest_pull_probe_stop(struct rmig_session *s)
{
	struct postcopy_pull_probe *probe = s->dst.pull_probe;

	if (!probe)
		return;
	pthread_join(probe->thread, NULL);
	free(probe->msg);
	free(probe->buf);
	free(probe);
	s->dst.pull_probe = NULL;
}
