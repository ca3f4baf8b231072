/* SPDX-License-Identifier: MIT */
/* engine/methods/postcopy.c - post-copy: nothing moves while the VM runs here; the switchover,
 * shared by the post-copy family (TSMC, hybrid, post-copy), verifies what the destination holds,
 * announces every other page, sends the device state, resumes the destination and runs the tail
 * (engine/postcopy_source.c) that delivers the rest while the destination's faults pull what
 * its guest touches first (engine/postcopy_dest.c). */
#include "engine/batch.h"
#include "engine/bitmap.h"
#include "engine/methods/method.h"
#include "engine/postcopy.h"
#include "engine/protocol.h"
#include "engine/session.h"
#include "engine/source.h"
#include "engine/verify.h"
#include "transport/log.h"

/* Nothing moves while the VM runs here: every page comes after resume. */
static int postcopy_live(struct rmig_session *s, struct batch_pipeline *pipeline)
{
	(void)pipeline;
	for (size_t i = 0; i < s->nregions; i++)
		bitmap_set_range(s->regions[i].postcopy, 0, s->regions[i].npages);
	return 0;
}

/* The post-copy family after a bulk round (hybrid's only round; auto's probe round when it
 * chose hybrid or post-copy): measure it and pause. */
int method_postcopy_after_bulk(struct rmig_session *s, struct batch_pipeline *pipeline,
			       struct source_sched *sched, uint64_t start_us)
{
	int ret;

	(void)pipeline;
	(void)sched;
	ret = source_round_done(s, 1);
	if (ret)
		return ret;
	source_measure(s, 0, session_now_us() - start_us, NULL);
	return 0;
}

/* VM paused, post-copy family: what the destination holds is verified, everything else is
 * announced, the device state crosses, the destination resumes, the tail delivers the rest. */
int method_postcopy_switchover(struct rmig_session *s, struct batch_pipeline *pipeline)
{
	uint32_t round = s->stats.rounds + 1;
	uint64_t later = 0, t_start = session_now_us(), t_sync, t_verify, t_announce, t_device;
	uint64_t t_readable, t_end;
	int64_t dirty;
	int ret;

	source_trackers_pause_threads(s);
	dirty = source_sync(s);
	if (dirty < 0)
		return (int)dirty;
	t_sync = session_now_us();
	for (size_t i = 0; i < s->nregions; i++) {
		struct session_region *r = &s->regions[i];

		bitmap_or(r->postcopy, r->src.dirty, r->npages);
		bitmap_zero(r->src.dirty, r->npages);
		if (r->src.held) {
			bitmap_or(r->postcopy, r->src.held, r->npages);
			bitmap_zero(r->src.held, r->npages);
		}
		later += bitmap_count(r->postcopy, r->npages);
	}
	ret = session_round_begin(s, round, 1, later);
	if (ret)
		return session_fail(s, ret, "final round: out of memory");
	ret = session_ctrl_send(
		s, protocol_round_to_wire(&(struct protocol_round){.round = round, .paused = 1},
					  s->msg_buf));
	if (!ret)
		ret = source_round_barrier(s, round);
	if (!ret && s->params.verify != RMIG_VERIFY_NONE)
		ret = verify_source_postcopy(s);
	t_verify = session_now_us();
	/* Unlike source_switchover(), the trackers go before the announcement: it registers the
	 * RAM once more for the push, and pinning pages that userfaultfd write-protects fails
	 * (EFAULT from ibv_reg_mr). */
	source_trackers_stop(s);
	if (!ret)
		ret = postcopy_source_announce(s);
	t_announce = session_now_us();
	if (!ret)
		ret = source_device_state(s);
	t_device = session_now_us();
	if (!ret)
		ret = source_regions_readable(s, 1);
	t_readable = session_now_us();
	if (!ret)
		ret = source_resume_destination(s);
	t_end = session_now_us();
	/* RESUME went out and the connection failed: the destination may run the VM already. */
	if (ret && s->point_of_no_return)
		ret = postcopy_source_recover(s, pipeline, ret);
	session_round_end(s);
	if (ret)
		return ret;
	pthread_mutex_lock(&s->lock);
	s->stats.downtime_ms = (session_now_us() - s->pause_us) / 1000u;
	pthread_mutex_unlock(&s->lock);
	/* Where the paused time goes; the announcement includes the destination arming its
	 * post-copy (revoking the transport's access, userfaultfd, the staging area). */
	rmig_log_info(
		"source: post-copy switchover: %llu pages to come; pause %.1f ms, last sync "
		"%.1f ms, verification %.1f ms, announcement %.1f ms, device state %.1f ms, "
		"readable %.1f ms, resume %.1f ms",
		(unsigned long long)later,
		(double)(s->pause_us && t_start > s->pause_us ? t_start - s->pause_us : 0) / 1000.0,
		(double)(t_sync - t_start) / 1000.0, (double)(t_verify - t_sync) / 1000.0,
		(double)(t_announce - t_verify) / 1000.0, (double)(t_device - t_announce) / 1000.0,
		(double)(t_readable - t_device) / 1000.0, (double)(t_end - t_readable) / 1000.0);
	session_progress(s, RMIG_EVENT_ROUND_END);

	ret = session_round_begin(s, round + 1, 0, s->stats.postcopy_pages);
	if (ret)
		return session_fail(s, ret, "post-copy: out of memory");
	session_round_mark(s, 1, 0);
	ret = postcopy_source_tail(s, pipeline);
	if (!ret)
		ret = source_regions_readable(s, 0);
	session_round_end(s);
	if (!ret) {
		pthread_mutex_lock(&s->lock);
		s->stats.postcopy_time_ms =
			(session_now_us() - s->pause_us) / 1000u - s->stats.downtime_ms;
		pthread_mutex_unlock(&s->lock);
	}
	return ret;
}

const struct method_ops method_postcopy_ops = {
	.method = RMIG_METHOD_POSTCOPY,
	.postcopy = 1,
	.needs = METHOD_NEEDS_SCHED,
	.live = postcopy_live,
	/* chosen by auto after the bulk round: that round sent all RAM once, so what is left
	 * is hybrid's */
	.after_bulk = method_postcopy_after_bulk,
	.switchover = method_postcopy_switchover,
};
