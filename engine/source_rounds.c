/* SPDX-License-Identifier: MIT */
/* engine/source_rounds.c - what every method's source side is made of: a round (its record,
 * the ROUND message, its pages through the page sender, the barrier), the dirty log's full sync,
 * the round's measurements, the pause, the device state and the resume.
 * Nothing here knows which method runs. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define XXH_STATIC_LINKING_ONLY /* XXH64_state_t on the stack */
#include <xxhash.h>

#include "engine/batch.h"
#include "engine/bitmap.h"
#include "engine/dirty.h"
#include "engine/policy.h"
#include "engine/protocol.h"
#include "engine/session.h"
#include "engine/source.h"
#include "transport/log.h"

/* Stop tracking and free the trackers. At the switchover this comes after the verification,
 * which reuses the hashes a hash tracker's last sync holds. */
void source_trackers_stop(struct rmig_session *s)
{
	for (size_t i = 0; i < s->nregions; i++) {
		if (s->regions[i].src.tracker) {
			dirty_source_stop(s->regions[i].src.tracker);
			dirty_source_destroy(s->regions[i].src.tracker);
			s->regions[i].src.tracker = NULL;
		}
	}
}

void source_trackers_pause_threads(struct rmig_session *s)
{
	for (size_t i = 0; i < s->nregions; i++)
		if (s->regions[i].src.tracker)
			dirty_source_set_threads(s->regions[i].src.tracker,
						 session_pause_threads());
}

/* OR every page written since the previous sync (and any written after its send that a sample
 * left pending) into the dirty bitmaps; returns the number of pages now marked dirty. */
int64_t source_sync(struct rmig_session *s)
{
	uint64_t start = session_now_us();

	for (size_t i = 0; i < s->nregions; i++) {
		struct session_region *r = &s->regions[i];
		int ret = r->src.tracker ? dirty_source_sync(r->src.tracker, r->src.dirty) : 0;

		holes_cursor_init(&r->src.holes_cursor); /* what it knew predates the sync */

		if (ret < 0)
			return session_fail(s, ret, "region %u: dirty sync failed: %s", r->id,
					    session_strerror(ret));
		if (r->src.pending) {
			bitmap_or(r->src.dirty, r->src.pending, r->npages);
			bitmap_zero(r->src.pending, r->npages);
		}
	}
	s->src.last_sample_us = session_now_us();
	s->src.sync_cost_us = s->src.last_sample_us - start;
	return (int64_t)batch_dirty_pages(s->regions, s->nregions);
}

/* Wait until the destination has applied every commit of the round, and check that both
 * sides counted the same pages. */
int source_round_barrier(struct rmig_session *s, uint32_t round)
{
	struct protocol_round_end end = {.round = round};
	struct protocol_round_end ack;
	char why[TRANSPORT_ERROR_MAX];
	const void *payload;
	size_t len;
	int ret, type;

	pthread_mutex_lock(&s->lock);
	end.pages = s->stats.pages_sent;
	pthread_mutex_unlock(&s->lock);
	ret = session_ctrl_send(s,
				protocol_round_end_to_wire(PROTOCOL_ROUND_END, &end, s->msg_buf));
	if (ret)
		return ret;
	type = session_ctrl_recv(s, "the round acknowledgement", &payload, &len);
	if (type < 0)
		return type;
	if (type != PROTOCOL_ROUND_ACK)
		return session_fail(s, -EPROTO, "%s answered the end of round %u with %s",
				    s->conn->peer, round, protocol_type_name(type));
	ret = protocol_round_end_from_wire(payload, len, &ack, why, sizeof(why));
	if (ret)
		return session_fail(s, ret, "%s broke the protocol: %s", s->conn->peer, why);
	if (ack.round != round || ack.pages != end.pages)
		return session_fail(
			s, -EPROTO,
			"round %u: the destination acknowledged round %u with %llu pages "
			"received, %llu were sent",
			round, ack.round, (unsigned long long)ack.pages,
			(unsigned long long)end.pages);
	return 0;
}

/* One round: its record, the ROUND message, its pages, the barrier. Returns 0, 1 when the hook
 * ended it early (the barrier still ran), or -errno. */
int source_round(struct rmig_session *s, struct batch_pipeline *pipeline, uint32_t round,
		 uint32_t paused, uint64_t dirty_pages, source_batch_hook_fn hook, void *arg)
{
	struct protocol_round msg = {.round = round, .paused = paused};
	uint64_t held = 0;
	int ret, ended;

	ret = session_round_begin(s, round, paused, dirty_pages);
	if (ret)
		return session_fail(s, ret, "round %u: out of memory", round);
	for (size_t i = 0; i < s->nregions; i++)
		held += source_count(s->regions[i].src.held, &s->regions[i]);
	session_round_mark(s, 0, held);
	batch_pipeline_pace_reset(pipeline);
	ret = session_ctrl_send(s, protocol_round_to_wire(&msg, s->msg_buf));
	if (ret)
		return ret;
	ended = source_send_pages(s, pipeline, hook, arg);
	if (ended < 0)
		return ended;
	ret = source_round_barrier(s, round);
	return ret ? ret : ended;
}

int source_bulk_round(struct rmig_session *s, struct batch_pipeline *pipeline,
		      source_batch_hook_fn hook, void *arg)
{
	int ret;

	source_mark_all_regions(s);
	ret = source_round(s, pipeline, 1, 0, batch_dirty_pages(s->regions, s->nregions), hook,
			   arg);
	session_round_end(s);
	return ret;
}

int source_device_state(struct rmig_session *s)
{
	struct protocol_device_state msg = {0};
	XXH64_state_t digest;
	void *chunk;
	int ret;

	chunk = malloc(PROTOCOL_DEVICE_CHUNK);
	if (!chunk)
		return session_fail(s, -ENOMEM, "device state: out of memory");
	XXH64_reset(&digest, 0);
	for (;;) {
		int n = 0;

		if (s->callbacks.field_mask & RMIG_CB_DEVICE_STATE_READ) {
			n = s->callbacks.device_state_read(s->opaque, chunk, PROTOCOL_DEVICE_CHUNK);
			if (n < 0 || n > (int)PROTOCOL_DEVICE_CHUNK) {
				ret = session_fail(s, n < 0 ? n : -EINVAL,
						   "the device_state_read callback returned %d", n);
				goto out_free;
			}
		}
		if (n > 0)
			XXH64_update(&digest, chunk, (size_t)n);
		msg.length = (uint32_t)n;
		msg.last = n == 0;
		msg.data = chunk;
		msg.digest = n == 0 ? XXH64_digest(&digest) : 0;
		ret = session_ctrl_send(s, protocol_device_state_to_wire(&msg, s->msg_buf));
		if (ret)
			goto out_free;
		msg.offset += (uint64_t)n;
		if (n == 0)
			break;
	}
	pthread_mutex_lock(&s->lock);
	s->stats.device_state_bytes = msg.offset;
	pthread_mutex_unlock(&s->lock);
	ret = 0;
out_free:
	free(chunk);
	return ret;
}

int source_resume_destination(struct rmig_session *s)
{
	struct protocol_resume msg;
	struct protocol_resumed resumed;
	char why[TRANSPORT_ERROR_MAX];
	const void *payload;
	size_t len;
	int ret, type;

	pthread_mutex_lock(&s->lock);
	msg.pages_verified = s->stats.pages_verified;
	msg.pages_mismatched = s->stats.pages_mismatched;
	pthread_mutex_unlock(&s->lock);
	ret = session_ctrl_send(s, protocol_resume_to_wire(&msg, s->msg_buf));
	if (ret)
		return ret;
	s->point_of_no_return = 1;
	type = session_ctrl_recv(s, "the resume acknowledgement", &payload, &len);
	if (type < 0)
		return type;
	if (type != PROTOCOL_RESUMED)
		return session_fail(s, -EPROTO, "%s answered resume with %s", s->conn->peer,
				    protocol_type_name(type));
	ret = protocol_resumed_from_wire(payload, len, &resumed, why, sizeof(why));
	if (ret)
		return session_fail(s, ret, "%s broke the protocol: %s", s->conn->peer, why);
	if (resumed.status)
		return session_fail(s, resumed.status,
				    "the destination could not resume the VM: %s",
				    session_strerror(resumed.status));
	return 0;
}

/* Bandwidth and dirty rate of the round just ended. */
uint64_t source_measure(struct rmig_session *s, uint64_t dirty_pages, uint64_t since_sync_us,
			struct rmig_round_stats *last_p)
{
	struct rmig_round_stats last;
	uint64_t bandwidth;

	pthread_mutex_lock(&s->lock);
	last = s->rounds[s->nrounds - 1];
	bandwidth = policy_rate(last.bytes, last.duration_us);
	s->stats.bandwidth = bandwidth;
	s->stats.dirty_pages_rate = policy_rate(dirty_pages, since_sync_us);
	pthread_mutex_unlock(&s->lock);
	if (last_p)
		*last_p = last;
	return bandwidth;
}

int source_pause(struct rmig_session *s)
{
	/* Downtime starts when the hypervisor is asked to stop the vCPUs. */
	uint64_t pause_us = session_now_us();
	int ret = 0;

	if (s->callbacks.field_mask & RMIG_CB_PAUSE_VM)
		ret = s->callbacks.pause_vm(s->opaque);
	if (ret < 0)
		return session_fail(s, ret, "the pause_vm callback returned %d (%s)", ret,
				    session_strerror(ret));
	s->src.vm_paused = 1;
	s->pause_us = pause_us;
	session_status_set(s, RMIG_STATUS_DEVICE);
	session_progress(s, RMIG_EVENT_PAUSED);
	return 0;
}

/* After a live round: the histogram, the round-end event, a cancel check. */
int source_round_done(struct rmig_session *s, uint32_t round)
{
	session_histogram_update(s);
	session_progress(s, RMIG_EVENT_ROUND_END);
	if (session_cancelled(s))
		return session_fail(s, -ECANCELED, "cancelled after round %u", round);
	return 0;
}
