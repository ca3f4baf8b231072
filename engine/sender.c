/* SPDX-License-Identifier: MIT */
/* engine/sender.c - the source's page sender: every page marked in the regions' dirty bitmaps
 * goes out in batches (engine/batch.c builds them, the pipeline posts them to the transport,
 * a commit follows each batch's data), with a hook between batches for the sampler, a check for
 * the destination's abort and cancellation, and progress. Also what is left to send. Used by
 * the rounds (source_rounds.c), the verification's resends (verify.c) and the post-copy tail
 * (postcopy_source.c); it calls none of them. */
#include <errno.h>

#include "engine/batch.h"
#include "engine/bitmap.h"
#include "engine/session.h"
#include "engine/source.h"
#include "transport/log.h"

uint64_t source_count(const uint64_t *bm, const struct session_region *r)
{
	return bm ? (uint64_t)bitmap_count(bm, r->npages) : 0;
}

/* What the pages not yet delivered will cost to send: marked for this round, pending, held
 * back, or to come after resume. */
uint64_t source_dirty_bytes(struct rmig_session *s)
{
	uint64_t bytes = 0;

	for (size_t i = 0; i < s->nregions; i++) {
		const struct session_region *r = &s->regions[i];

		bytes += (source_count(r->src.dirty, r) + source_count(r->src.pending, r) +
			  source_count(r->src.held, r) + source_count(r->postcopy, r)) *
			 r->page_size;
	}
	return bytes;
}

uint64_t source_held_pages(struct rmig_session *s, uint64_t *bytes_p)
{
	uint64_t held = 0, bytes = 0;

	for (size_t i = 0; i < s->nregions; i++) {
		uint64_t pages = source_count(s->regions[i].src.held, &s->regions[i]);

		held += pages;
		bytes += pages * s->regions[i].page_size;
	}
	*bytes_p = bytes;
	return held;
}

void source_mark_all_regions(struct rmig_session *s)
{
	for (size_t i = 0; i < s->nregions; i++)
		bitmap_set_range(s->regions[i].src.dirty, 0, s->regions[i].npages);
}

/* A failed post leaves its reason in the transport; the peer may also have said why, in an
 * ABORT that arrived before its close (behind messages this side had not read yet). */
static int source_post_failed(struct rmig_session *s, int err)
{
	int peer = session_peer_reason(s);

	if (peer)
		return peer;
	return session_fail(s, err, "sending pages to %s: %s%s%s", s->conn->peer,
			    session_strerror(err), transport_error(s->conn)[0] ? ": " : "",
			    transport_error(s->conn));
}

/* While a hook samples the dirty log between batches, a batch carries about this long of the
 * link's rate, so that the hook runs often enough on a slow link and batches stay large on a
 * fast one. */
#define SOURCE_HOOK_BATCH_US 10000u
#define SOURCE_HOOK_BATCH_MIN (256ull << 10)

static uint64_t source_hook_batch_bytes(struct rmig_session *s)
{
	uint64_t rate, bytes;

	pthread_mutex_lock(&s->lock);
	rate = s->stats.bandwidth;
	pthread_mutex_unlock(&s->lock);
	if (!rate)
		rate = session_round_rate(s);
	if (s->params.bandwidth_limit && (!rate || rate > s->params.bandwidth_limit))
		rate = s->params.bandwidth_limit;
	if (!rate)
		return 4ull << 20;
	bytes = rate / (1000000u / SOURCE_HOOK_BATCH_US);
	if (bytes < SOURCE_HOOK_BATCH_MIN)
		bytes = SOURCE_HOOK_BATCH_MIN;
	return bytes > BATCH_MAX_BYTES ? BATCH_MAX_BYTES : bytes;
}

/* Send every page marked in the dirty bitmaps, clearing them. */
int source_send_pages(struct rmig_session *s, struct batch_pipeline *pipeline,
		      source_batch_hook_fn hook, void *hook_arg)
{
	struct batch_cursor cursor = {0};
	int first = 1, ended = 0, ret;

	for (;;) {
		struct batch *b;

		if (session_cancelled(s) && !s->point_of_no_return)
			return session_fail(s, -ECANCELED, "cancelled in round %u", s->stats.round);
		/* A destination that gives up says why and waits a moment for it to be read:
		 * look between batches (hooks do; the post-copy tail's messages are requests
		 * its own loop reads). */
		if (!hook && !s->point_of_no_return) {
			ret = session_ctrl_poll(s, 0);
			if (ret)
				return ret;
		}
		if (hook) {
			ret = hook(s, hook_arg);
			if (ret < 0)
				return ret;
			if (ret > 0) {
				ended = 1;
				break;
			}
		}
		ret = batch_pipeline_acquire(pipeline, &b);
		if (ret)
			return source_post_failed(s, ret);
		/* With a hook the batches are smaller, so that it runs often enough. */
		if (!batch_build_limited(s->regions, s->nregions, &cursor, b,
					 hook ? source_hook_batch_bytes(s) : BATCH_MAX_BYTES)) {
			batch_pipeline_release(pipeline, b);
			break;
		}
		session_count_pages(s, b->pages, b->zero_pages, b->data_bytes);
		batch_pipeline_submit(pipeline, b);
		if (first ||
		    session_now_us() - s->last_progress_us >= SESSION_PROGRESS_INTERVAL_US) {
			uint64_t left = source_dirty_bytes(s);

			first = 0;
			pthread_mutex_lock(&s->lock);
			s->stats.remaining_bytes = left;
			pthread_mutex_unlock(&s->lock);
			session_progress(s, RMIG_EVENT_PROGRESS);
		}
	}
	ret = batch_pipeline_drain(pipeline, (int)s->params.timeout_ms);
	if (ret)
		return source_post_failed(s, ret);
	return ended;
}
