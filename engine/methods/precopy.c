/* SPDX-License-Identifier: MIT */
/* engine/methods/precopy.c - classic pre-copy: a bulk round sends all RAM, then rounds resend what
 * the guest wrote during the previous one until the stop decision (engine/policy.c: QEMU's
 * projected downtime or Xen's limits; the throttle between rounds). Its switchover, shared with
 * predict: with the VM paused, the last dirty pages (and those held back), the device state,
 * verification, resume. */
#include "engine/batch.h"
#include "engine/bitmap.h"
#include "engine/dirty.h"
#include "engine/methods/method.h"
#include "engine/predict.h"
#include "engine/protocol.h"
#include "engine/session.h"
#include "engine/source.h"
#include "engine/verify.h"
#include "transport/log.h"

/* Classic pre-copy from the sync after `round` on. */
int method_precopy_after(struct rmig_session *s, struct batch_pipeline *pipeline, uint32_t round,
			 uint64_t last_sync_us)
{
	int64_t dirty;
	int ret;

	for (;;) {
		uint64_t now;

		ret = source_round_done(s, round);
		if (ret)
			return ret;
		dirty = source_sync(s);
		if (dirty < 0)
			return (int)dirty;
		now = session_now_us();
		ret = stop_decide(s, &(struct stop_round){.round = round,
							  .dirty_pages = (uint64_t)dirty,
							  .since_sync_us = now - last_sync_us});
		last_sync_us = now;
		if (ret < 0)
			return ret;
		session_progress(s, RMIG_EVENT_SYNC);
		if (ret)
			return 0;
		round++;
		ret = source_round(s, pipeline, round, 0, (uint64_t)dirty, NULL, NULL);
		session_round_end(s);
		if (ret < 0)
			return ret;
	}
}

static int precopy_live(struct rmig_session *s, struct batch_pipeline *pipeline)
{
	uint64_t start = session_now_us();
	int ret;

	ret = source_bulk_round(s, pipeline, NULL, NULL);
	if (ret < 0)
		return ret;
	return method_precopy_after(s, pipeline, 1, start);
}

static int precopy_after_bulk(struct rmig_session *s, struct batch_pipeline *pipeline,
			      struct source_sched *sched, uint64_t start_us)
{
	(void)sched;
	return method_precopy_after(s, pipeline, 1, start_us);
}

/* VM paused, pre-copy family: the last dirty pages (and those held back), the device state,
 * verification, resume. */
int method_precopy_switchover(struct rmig_session *s, struct batch_pipeline *pipeline)
{
	uint32_t round = s->stats.rounds + 1;
	uint64_t t_start = session_now_us(), t_sync, t_pages, t_device, t_verify = 0, t_end;
	int64_t dirty;
	int ret;

	for (size_t i = 0; i < s->nregions; i++) {
		struct session_region *r = &s->regions[i];

		if (r->src.held) {
			bitmap_or(r->src.dirty, r->src.held, r->npages);
			if (r->src.predict)
				predict_finish(r->src.predict, r->src.held);
			bitmap_zero(r->src.held, r->npages);
		}
	}
	source_trackers_pause_threads(s);
	dirty = source_sync(s);
	if (dirty < 0)
		return (int)dirty;
	ret = verify_source_plan(s);
	if (!ret)
		ret = verify_source_prehash_start(s);
	if (ret)
		return ret;
	t_sync = session_now_us();
	ret = session_round_begin(s, round, 1, (uint64_t)dirty);
	if (ret) {
		verify_source_prehash_stop(s);
		return session_fail(s, ret, "final round: out of memory");
	}
	ret = session_ctrl_send(
		s, protocol_round_to_wire(&(struct protocol_round){.round = round, .paused = 1},
					  s->msg_buf));
	if (!ret)
		ret = source_send_pages(s, pipeline, NULL, NULL);
	if (!ret)
		ret = source_round_barrier(s, round);
	t_pages = session_now_us();
	if (!ret)
		ret = source_device_state(s);
	t_device = session_now_us();
	if (!ret && s->params.verify != RMIG_VERIFY_NONE) {
		ret = verify_source_run(s, pipeline);
		t_verify = session_now_us() - t_device;
	}
	verify_source_prehash_stop(s); /* taken by verify_source_run(), unless it failed first */
	if (!ret)
		ret = source_resume_destination(s);
	t_end = session_now_us();
	/* With the VM paused nothing writes its RAM, so the trackers may go on until the
	 * destination runs: lifting userfaultfd's write protection walks every page table entry
	 * of the regions (milliseconds per GiB), which then no longer counts against the downtime.
	 * On failure they are gone before the source VM resumes. */
	source_trackers_stop(s);
	session_round_end(s);
	if (!ret) {
		pthread_mutex_lock(&s->lock);
		s->stats.downtime_ms = (t_end - s->pause_us) / 1000u;
		pthread_mutex_unlock(&s->lock);
		/* Where the paused time goes, for whoever tunes the downtime. */
		rmig_log_info(
			"source: final round: %lld dirty pages; last sync %.1f ms, pages %.1f "
			"ms, device state %.1f ms, verification %.1f ms, resume %.1f ms",
			(long long)dirty, (double)(t_sync - t_start) / 1000.0,
			(double)(t_pages - t_sync) / 1000.0, (double)(t_device - t_pages) / 1000.0,
			(double)t_verify / 1000.0, (double)(t_end - t_device - t_verify) / 1000.0);
	}
	return ret;
}

const struct method_ops method_precopy_ops = {
	.method = RMIG_METHOD_PRECOPY,
	.postcopy = 0,
	.needs = METHOD_NEEDS_TRACKING,
	.live = precopy_live,
	.after_bulk = precopy_after_bulk,
	.switchover = method_precopy_switchover,
};
