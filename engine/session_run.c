/* SPDX-License-Identifier: MIT */
/* engine/session_run.c - a session's life: run (the role's source_run or dest_run on the
 * caller's thread), start (the same on a thread of its own), wait for it, and destroy. The one
 * engine file that calls both roles; nothing below calls back into it. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/bitmap.h"
#include "engine/dest.h"
#include "engine/dirty.h"
#include "engine/heartbeat.h"
#include "engine/holes.h"
#include "engine/postcopy.h"
#include "engine/predict.h"
#include "engine/protocol.h"
#include "engine/postcopy_recover.h"
#include "engine/session.h"
#include "engine/source.h"
#include "transport/log.h"

void session_destroy(struct rmig_session *s)
{
	if (!s)
		return;
	if (s->thread_started) {
		session_cancel(s);
		pthread_join(s->thread, NULL);
	}
	/* The post-copy machinery goes first: its fault thread reads through the connection. */
	postcopy_dest_destroy(s);
	postcopy_dest_unprepare(s);
	session_disconnect(s);
	for (size_t i = 0; i < s->nregions; i++) {
		struct session_region *r = &s->regions[i];

		if (r->src.tracker)
			dirty_source_destroy(r->src.tracker);
		holes_close(r->src.holes);
		predict_destroy(r->src.predict);
		free(r->src.dirty);
		free(r->src.send_count);
		free(r->src.pending);
		free(r->src.held);
		free(r->src.fresh);
		free(r->src.checked);
		free(r->postcopy);
		free(r->dst.arrived);
		free(r->dst.hashed);
		free(r->dst.hashes);
	}
	postcopy_recover_destroy(s);
	free(s->regions);
	free(s->rounds);
	free(s->msg_buf);
	session_tls_clear(s);
	pthread_cond_destroy(&s->finished_cond);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

/* A failure after the destination resumed the VM, in the post-copy family: the source cannot
 * take it back and the destination lacks pages. */
static int session_vm_lost(const struct rmig_session *s)
{
	if (!s->point_of_no_return)
		return 0;
	return s->role == RMIG_ROLE_DESTINATION || session_method_is_postcopy(s->method);
}

int session_run(struct rmig_session *s)
{
	int ret;

	pthread_mutex_lock(&s->lock);
	if (s->started && !s->thread_started) {
		pthread_mutex_unlock(&s->lock);
		return session_refuse(s, -EBUSY, "run: the migration has already run");
	}
	s->started = 1;
	s->last_error[0] = '\0';
	s->call_error[0] = '\0';
	pthread_mutex_unlock(&s->lock);

	if (s->nregions == 0)
		ret = session_fail(s, -EINVAL, "no guest RAM region was added");
	else if (s->role == RMIG_ROLE_SOURCE)
		ret = source_run(s);
	else
		ret = dest_run(s);

	pthread_mutex_lock(&s->lock);
	if (ret == 0)
		s->stats.status = RMIG_STATUS_COMPLETED;
	else if (session_vm_lost(s))
		s->stats.status = RMIG_STATUS_LOST;
	else if (ret == -ECANCELED)
		s->stats.status = RMIG_STATUS_CANCELLED;
	else
		s->stats.status = RMIG_STATUS_FAILED;
	if (s->start_us)
		s->stats.total_time_ms = (session_now_us() - s->start_us) / 1000u;
	/* A failed run paused the guest too: from the pause until the run gave up (the source
	 * has resumed it by then, unless it was lost). */
	if (ret && s->pause_us && !s->stats.downtime_ms)
		s->stats.downtime_ms = (session_now_us() - s->pause_us) / 1000u;
	pthread_mutex_unlock(&s->lock);
	session_progress(s, RMIG_EVENT_DONE);
	return ret;
}

static void *session_thread_main(void *arg)
{
	struct rmig_session *s = arg;
	int ret = session_run(s);

	pthread_mutex_lock(&s->lock);
	s->result = ret;
	s->finished = 1;
	pthread_cond_broadcast(&s->finished_cond);
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

int session_start(struct rmig_session *s)
{
	int ret;

	pthread_mutex_lock(&s->lock);
	if (s->started) {
		pthread_mutex_unlock(&s->lock);
		return session_refuse(s, -EBUSY, "start: the migration has already started");
	}
	s->started = 1;
	s->thread_started = 1;
	pthread_mutex_unlock(&s->lock);
	ret = -pthread_create(&s->thread, NULL, session_thread_main, s);
	if (ret) {
		pthread_mutex_lock(&s->lock);
		s->started = 0;
		s->thread_started = 0;
		pthread_mutex_unlock(&s->lock);
		return session_refuse(s, ret, "start: cannot create the migration thread: %s",
				      session_strerror(ret));
	}
	return 0;
}

int session_wait(struct rmig_session *s, int timeout_ms)
{
	int result, ret = session_wait_result(s, timeout_ms, &result);

	if (ret == -EINPROGRESS)
		return -ETIMEDOUT;
	return ret ? ret : result;
}

int session_wait_result(struct rmig_session *s, int timeout_ms, int *result_p)
{
	struct timespec deadline;
	int ret = 0;

	if (!s->thread_started)
		return session_refuse(s, -EINVAL, "wait: the migration was not started");
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	if (timeout_ms >= 0) {
		deadline.tv_sec += timeout_ms / 1000;
		deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
		if (deadline.tv_nsec >= 1000000000L) {
			deadline.tv_sec++;
			deadline.tv_nsec -= 1000000000L;
		}
	}
	pthread_mutex_lock(&s->lock);
	while (!s->finished && ret != ETIMEDOUT) {
		if (timeout_ms < 0)
			pthread_cond_wait(&s->finished_cond, &s->lock);
		else
			ret = pthread_cond_timedwait(&s->finished_cond, &s->lock, &deadline);
	}
	if (!s->finished) {
		pthread_mutex_unlock(&s->lock);
		return -EINPROGRESS;
	}
	*result_p = s->result;
	pthread_mutex_unlock(&s->lock);
	return 0;
}
