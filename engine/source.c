/* SPDX-License-Identifier: MIT */
/* engine/source.c - the source side: handshake and region table, then the method's live phase
 * (pre-copy rounds with a stop policy; prediction pre-copy; TSMC's two stages; hybrid's one
 * round; auto's measured choice; nothing for post-copy), the pause, and the switchover: for the
 * pre-copy family the final round, device state, verification and resume; for the post-copy
 * family verification of what the destination holds, the list of pages still to come, device
 * state, resume, and the post-copy tail. A failure before the destination resumed leaves the VM
 * running here. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/batch.h"
#include "engine/bitmap.h"
#include "engine/cost_model.h"
#include "engine/dirty.h"
#include "engine/policy.h"
#include "engine/postcopy.h"
#include "engine/postcopy_recover.h"
#include "engine/predict.h"
#include "engine/protocol.h"
#include "engine/session.h"
#include "transport/log.h"

#define SOURCE_LABEL "rmig-source"
#define DEST_LABEL "rmig-dest"

/* The peer may read guest RAM here only while post-copy faults pull it (RDMA READ without this
 * side's CPU): from the resume to the end of the tail (source_regions_readable()). Only auto
 * exposes it from the handshake, for the pulls the destination times to choose a method. */
static unsigned source_region_access(uint32_t method)
{
	return method == RMIG_METHOD_AUTO ? TRANSPORT_ACCESS_REMOTE_READ : TRANSPORT_ACCESS_LOCAL;
}

static int source_regions_readable(struct rmig_session *s, int readable)
{
	for (size_t i = 0; i < s->nregions; i++) {
		uint32_t id = s->regions[i].id;
		int ret =
			readable ? transport_region_grant(s->conn, id, TRANSPORT_ACCESS_REMOTE_READ)
				 : transport_region_revoke(s->conn, id,
							   TRANSPORT_ACCESS_REMOTE_READ);

		if (ret)
			return session_fail(s, ret, "cannot %s remote read of region %u: %s",
					    readable ? "grant" : "revoke", id,
					    session_strerror(ret));
	}
	return 0;
}

/* Region announcements (rkeys, addresses) from here on carry a MAC under keys drawn from the
 * session key and both nonces, and the destination's are checked likewise: bound before any
 * region is registered on either side (dest.c binds before it answers the hello). */
static int source_bind_announcements(struct rmig_session *s, const struct protocol_hello *hello,
				     const struct protocol_hello_ack *ack)
{
	uint8_t mine[PROTOCOL_MAC_LEN], theirs[PROTOCOL_MAC_LEN];
	int ret;

	ret = protocol_mac(s->key, s->params.key_len, "rmig-regions-s", hello->nonce, ack->nonce,
			   mine);
	if (!ret)
		ret = protocol_mac(s->key, s->params.key_len, "rmig-regions-d", hello->nonce,
				   ack->nonce, theirs);
	if (!ret)
		ret = transport_conn_bind(s->conn, mine, theirs);
	return ret;
}

static int source_handshake(struct rmig_session *s)
{
	struct protocol_region table[PROTOCOL_REGIONS_MAX];
	struct protocol_hello hello = {
		.protocol_version = PROTOCOL_VERSION,
		.method = s->params.method,
		.region_count = (uint32_t)s->nregions,
		.flags = s->params.key_len ? PROTOCOL_HELLO_KEY : 0,
	};
	struct protocol_pull region_ack;
	struct protocol_hello_ack ack;
	char why[TRANSPORT_ERROR_MAX];
	const void *payload;
	size_t len;
	int ret, type;

	ret = protocol_nonce(hello.nonce);
	if (ret)
		return session_fail(s, ret, "cannot draw a nonce: %s", session_strerror(ret));
	ret = session_ctrl_send(s, protocol_hello_to_wire(&hello, s->msg_buf));
	if (ret)
		return ret;
	type = session_ctrl_recv(s, "the hello answer", &payload, &len);
	if (type < 0)
		return type;
	if (type != PROTOCOL_HELLO_ACK)
		return session_fail(s, -EPROTO, "%s answered hello with %s", s->conn->peer,
				    protocol_type_name(type));
	ret = protocol_hello_ack_from_wire(payload, len, &ack, why, sizeof(why));
	if (ret)
		return session_fail(s, ret, "%s broke the protocol: %s", s->conn->peer, why);
	s->peer_flags = ack.flags;
	if (s->params.key_len) {
		uint8_t expected[PROTOCOL_MAC_LEN], mine[PROTOCOL_MAC_LEN];

		ret = protocol_mac(s->key, s->params.key_len, DEST_LABEL, hello.nonce, ack.nonce,
				   expected);
		if (!ret && !protocol_mac_equal(expected, ack.mac)) {
			session_abort_send(s, -EACCES, "the destination's key proof is wrong");
			return session_fail(s, -EACCES,
					    "%s does not hold the session key (its proof differs)",
					    s->conn->peer);
		}
		if (!ret)
			ret = protocol_mac(s->key, s->params.key_len, SOURCE_LABEL, ack.nonce,
					   hello.nonce, mine);
		if (!ret)
			ret = source_bind_announcements(s, &hello, &ack);
		if (ret)
			return session_fail(s, ret, "cannot compute the key proof");
		ret = session_ctrl_send(s, protocol_auth_to_wire(mine, s->msg_buf));
		if (ret)
			return ret;
	}
	/* A post-copy recovery names this migration by the two nonces. */
	ret = postcopy_recover_bind(s, hello.nonce, ack.nonce);
	if (ret)
		return ret;

	for (size_t i = 0; i < s->nregions; i++) {
		struct session_region *r = &s->regions[i];

		ret = transport_region_register(s->conn, r->id, r->addr, r->length,
						source_region_access(s->params.method));
		if (ret)
			return session_fail(s, ret, "cannot register region %u (%zu bytes): %s",
					    r->id, r->length, session_strerror(ret));
		table[i] = (struct protocol_region){
			.id = r->id,
			.page_shift = r->page_shift,
			.length = r->length,
		};
	}
	ret = session_ctrl_send(s, protocol_region_table_to_wire(table, s->nregions, s->msg_buf));
	if (ret)
		return ret;
	type = session_ctrl_recv(s, "the region table answer", &payload, &len);
	if (type < 0)
		return type;
	if (type != PROTOCOL_REGION_ACK)
		return session_fail(s, -EPROTO, "%s answered the region table with %s",
				    s->conn->peer, protocol_type_name(type));
	ret = protocol_pull_from_wire(payload, len, &region_ack, why, sizeof(why));
	if (ret)
		return session_fail(s, ret, "%s broke the protocol: %s", s->conn->peer, why);
	if (region_ack.flags & PROTOCOL_PULL_FAILED) {
		/* Faults would be pulled the same way: the tail could not serve them. */
		rmig_log_warn("source: %s could not pull a page from here; auto will not choose "
			      "the post-copy family",
			      s->conn->peer);
		s->peer_flags &= ~PROTOCOL_HELLO_POSTCOPY;
	}
	if (region_ack.flags & PROTOCOL_PULL_MEASURED) {
		s->pull_idle_us = region_ack.pull_us;
		s->pull_bytes = region_ack.pull_bytes;
	}
	return 0;
}

static int source_trackers_start(struct rmig_session *s)
{
	static const enum dirty_kind kinds[] = {
		[RMIG_DIRTY_AUTO] = DIRTY_KIND_AUTO,
		[RMIG_DIRTY_HYPERVISOR] = DIRTY_KIND_HYPERVISOR,
		[RMIG_DIRTY_UFFD_ASYNC] = DIRTY_KIND_UFFD_ASYNC,
		[RMIG_DIRTY_UFFD_SYNC] = DIRTY_KIND_UFFD_SYNC,
		[RMIG_DIRTY_HASH] = DIRTY_KIND_HASH,
	};
	int ret;

	for (size_t i = 0; i < s->nregions; i++) {
		struct session_region *r = &s->regions[i];
		struct dirty_source_config config = {
			.kind = kinds[s->params.dirty_source],
			.region_id = r->id,
			.addr = r->addr,
			.length = r->length,
			.page_size = r->page_size,
		};

		if (s->callbacks.field_mask & RMIG_CB_DIRTY_SYNC) {
			config.hypervisor_sync = s->callbacks.dirty_sync;
			config.hypervisor_opaque = s->opaque;
		}
		ret = dirty_source_create(&config, &r->tracker);
		if (ret)
			return session_fail(s, ret, "region %u: cannot track dirty pages (%s): %s",
					    r->id, dirty_kind_name(config.kind),
					    session_strerror(ret));
		ret = dirty_source_start(r->tracker);
		if (ret)
			return session_fail(s, ret,
					    "region %u: cannot start dirty tracking (%s): %s",
					    r->id, dirty_kind_name(dirty_source_kind(r->tracker)),
					    session_strerror(ret));
		rmig_log_info("source: region %u: dirty tracking by %s", r->id,
			      dirty_kind_name(dirty_source_kind(r->tracker)));
		/* enum dirty_kind and enum rmig_dirty_source number the kinds alike. The
		 * stats carry the first region's; each region's is asked for by id. */
		pthread_mutex_lock(&s->lock);
		r->dirty_kind = (uint32_t)dirty_source_kind(r->tracker);
		if (i == 0)
			s->stats.dirty_source = r->dirty_kind;
		pthread_mutex_unlock(&s->lock);
	}
	s->last_sample_us = session_now_us();
	return 0;
}

/* Stop tracking and free the trackers. At the switchover this comes after the verification,
 * which reuses the hashes a hash tracker's last sync holds. */
static void source_trackers_stop(struct rmig_session *s)
{
	for (size_t i = 0; i < s->nregions; i++) {
		if (s->regions[i].tracker) {
			dirty_source_stop(s->regions[i].tracker);
			dirty_source_destroy(s->regions[i].tracker);
			s->regions[i].tracker = NULL;
		}
	}
}

/* OR every page written since the previous sync (and any written after its send that a sample
 * left pending) into the dirty bitmaps; returns the number of pages now marked dirty. */
static int64_t source_sync(struct rmig_session *s)
{
	uint64_t start = session_now_us();

	for (size_t i = 0; i < s->nregions; i++) {
		struct session_region *r = &s->regions[i];
		int ret = r->tracker ? dirty_source_sync(r->tracker, r->dirty) : 0;

		if (ret < 0)
			return session_fail(s, ret, "region %u: dirty sync failed: %s", r->id,
					    session_strerror(ret));
		if (r->pending) {
			bitmap_or(r->dirty, r->pending, r->npages);
			bitmap_zero(r->pending, r->npages);
		}
	}
	s->last_sample_us = session_now_us();
	s->sync_cost_us = s->last_sample_us - start;
	return (int64_t)batch_dirty_pages(s->regions, s->nregions);
}

static uint64_t source_count(const uint64_t *bm, const struct session_region *r)
{
	return bm ? (uint64_t)bitmap_count(bm, r->npages) : 0;
}

/* What the pages not yet delivered will cost to send: marked for this round, pending, held
 * back, or to come after resume. */
static uint64_t source_dirty_bytes(struct rmig_session *s)
{
	uint64_t bytes = 0;

	for (size_t i = 0; i < s->nregions; i++) {
		const struct session_region *r = &s->regions[i];

		bytes += (source_count(r->dirty, r) + source_count(r->pending, r) +
			  source_count(r->held, r) + source_count(r->postcopy, r)) *
			 r->page_size;
	}
	return bytes;
}

static void source_mark_all(struct session_region *r)
{
	bitmap_set_range(r->dirty, 0, r->npages);
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

/* Wait until the destination has applied every commit of the round, and check that both
 * sides counted the same pages. */
static int source_round_barrier(struct rmig_session *s, uint32_t round)
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
static int source_round(struct rmig_session *s, struct batch_pipeline *pipeline, uint32_t round,
			uint32_t paused, uint64_t dirty_pages, source_batch_hook_fn hook, void *arg)
{
	struct protocol_round msg = {.round = round, .paused = paused};
	uint64_t held = 0;
	int ret, ended;

	ret = session_round_begin(s, round, paused, dirty_pages);
	if (ret)
		return session_fail(s, ret, "round %u: out of memory", round);
	for (size_t i = 0; i < s->nregions; i++)
		held += source_count(s->regions[i].held, &s->regions[i]);
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

static int source_device_state(struct rmig_session *s)
{
	struct protocol_device_state msg = {0};
	void *chunk;
	int ret;

	chunk = malloc(PROTOCOL_DEVICE_CHUNK);
	if (!chunk)
		return session_fail(s, -ENOMEM, "device state: out of memory");
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
		msg.length = (uint32_t)n;
		msg.last = n == 0;
		msg.data = chunk;
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

static int source_resume_destination(struct rmig_session *s)
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
static uint64_t source_measure(struct rmig_session *s, uint64_t dirty_pages, uint64_t since_sync_us,
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

/* What the pause will cost besides the pages and the device state: one more pass over the
 * dirty log (a hash tracker rereads all RAM, however little is dirty), and the verification's
 * hashing of the pages no tracker keeps hashes of. */
static uint64_t source_pause_cost_us(struct rmig_session *s)
{
	return s->sync_cost_us + verify_source_cost_us(s);
}

/* Measurements after a live round and the stop policy over the pages that would be sent next
 * (held-back pages count towards what the pause will carry, not towards "dirty"); returns 1 to
 * stop iterating. */
static int source_decide(struct rmig_session *s, uint32_t round, uint64_t dirty_pages,
			 uint64_t since_sync_us)
{
	struct rmig_round_stats last;
	struct policy_decision decision;
	struct policy_input in = {
		.policy = s->policy,
		.round = round,
		.max_rounds = s->params.max_rounds,
		.downtime_ms = s->params.downtime_ms,
		.dirty_pages = dirty_pages,
		.pause_cost_us = source_pause_cost_us(s),
	};
	uint64_t held = 0;

	for (size_t i = 0; i < s->nregions; i++)
		held += source_count(s->regions[i].held, &s->regions[i]);
	in.bandwidth = source_measure(s, dirty_pages, since_sync_us, &last);
	pthread_mutex_lock(&s->lock);
	in.bytes_sent = s->stats.data_bytes;
	in.ram_bytes = s->stats.ram_bytes;
	pthread_mutex_unlock(&s->lock);

	in.remaining_bytes = source_dirty_bytes(s);
	policy_decide(&in, &decision);

	pthread_mutex_lock(&s->lock);
	s->stats.remaining_bytes = in.remaining_bytes;
	s->stats.projected_downtime_ms = decision.projected_downtime_ms;
	s->stats.pages_held = held;
	if (decision.stop)
		s->stats.stop_reason = decision.reason;
	pthread_mutex_unlock(&s->lock);

	if (!decision.stop && (s->callbacks.field_mask & RMIG_CB_THROTTLE)) {
		uint32_t next = policy_throttle(in.remaining_bytes, last.data_bytes,
						s->throttle_percent, &s->throttle_strikes);

		if (next != s->throttle_percent) {
			int ret = s->callbacks.throttle(s->opaque, next);

			if (ret < 0)
				return session_fail(s, ret, "the throttle callback returned %d",
						    ret);
			s->throttle_percent = next;
		}
	}
	return decision.stop;
}

static int source_pause(struct rmig_session *s)
{
	/* Downtime starts when the hypervisor is asked to stop the vCPUs. */
	uint64_t pause_us = session_now_us();
	int ret = 0;

	if (s->callbacks.field_mask & RMIG_CB_PAUSE_VM)
		ret = s->callbacks.pause_vm(s->opaque);
	if (ret < 0)
		return session_fail(s, ret, "the pause_vm callback returned %d (%s)", ret,
				    session_strerror(ret));
	s->vm_paused = 1;
	s->pause_us = pause_us;
	session_status_set(s, RMIG_STATUS_DEVICE);
	session_progress(s, RMIG_EVENT_PAUSED);
	return 0;
}

static void source_mark_all_regions(struct rmig_session *s)
{
	for (size_t i = 0; i < s->nregions; i++)
		source_mark_all(&s->regions[i]);
}

/* After a live round: the histogram, the round-end event, a cancel check. */
static int source_round_done(struct rmig_session *s, uint32_t round)
{
	session_histogram_update(s);
	session_progress(s, RMIG_EVENT_ROUND_END);
	if (session_cancelled(s))
		return session_fail(s, -ECANCELED, "cancelled after round %u", round);
	return 0;
}

/* ---- the scheduler: samples of the dirty log between batches ---- */

/* Samples come at least this far apart, and at least 8x as far apart as one sample takes (a
 * content-hash tracker rereads all RAM per sample). */
#define SOURCE_SAMPLE_MIN_US 20000u
/* auto: samples of the probe before it decides (or half of RAM sent with two of them). */
#define SOURCE_PROBE_SAMPLES 4u

static int source_sched_alloc(struct rmig_session *s, int with_predictor)
{
	for (size_t i = 0; i < s->nregions; i++) {
		struct session_region *r = &s->regions[i];
		size_t words = bitmap_words(r->npages);
		int ret;

		if (!r->pending)
			r->pending = calloc(words, sizeof(uint64_t));
		if (!r->held)
			r->held = calloc(words, sizeof(uint64_t));
		if (!r->fresh)
			r->fresh = calloc(words, sizeof(uint64_t));
		if (!r->postcopy)
			r->postcopy = calloc(words, sizeof(uint64_t));
		if (!r->pending || !r->held || !r->fresh || !r->postcopy)
			return session_fail(s, -ENOMEM,
					    "region %u: out of memory for the scheduler", r->id);
		if (with_predictor && !r->predict) {
			ret = predict_create(r->npages, &r->predict);
			if (ret)
				return session_fail(s, ret,
						    "region %u: out of memory for the "
						    "predictor",
						    r->id);
		}
	}
	return 0;
}

static int source_sample_due(const struct rmig_session *s)
{
	uint64_t gap = s->sample_cost_us * 8u;

	if (gap < SOURCE_SAMPLE_MIN_US)
		gap = SOURCE_SAMPLE_MIN_US;
	return session_now_us() - s->last_sample_us >= gap;
}

/* Every region's pages written since the previous sample, into r->fresh. Returns the count. */
static int64_t source_sample(struct rmig_session *s)
{
	uint64_t start = session_now_us();
	int64_t total = 0;

	for (size_t i = 0; i < s->nregions; i++) {
		struct session_region *r = &s->regions[i];
		int ret;

		bitmap_zero(r->fresh, r->npages);
		ret = dirty_source_sync(r->tracker, r->fresh);
		if (ret < 0)
			return session_fail(s, ret, "region %u: dirty sync failed: %s", r->id,
					    session_strerror(ret));
		total += ret;
	}
	s->last_sample_us = session_now_us();
	s->sample_cost_us = s->last_sample_us - start;
	s->sync_cost_us = s->sample_cost_us;
	return total;
}

/* How long until the final round, as far as holding a page back is concerned: what is left to
 * send live at the current rate, twice (the rounds after it send less and less), plus two
 * samples. A sample is as long as the sampler actually takes between samples (at least
 * SOURCE_SAMPLE_MIN_US): the final round is at least the final sync away, so on a slow host,
 * where samples come further apart, a page written in every sample is still one the final
 * round will carry anyway. */
static uint64_t source_horizon_us(struct rmig_session *s)
{
	uint64_t bandwidth, left = 0, sample_us = SOURCE_SAMPLE_MIN_US;
	struct predict_counters c;

	for (size_t i = 0; i < s->nregions; i++) {
		if (!s->regions[i].predict)
			continue;
		predict_counters_get(s->regions[i].predict, &c);
		if (c.mean_interval_us > sample_us)
			sample_us = c.mean_interval_us;
	}

	pthread_mutex_lock(&s->lock);
	bandwidth = s->stats.bandwidth;
	pthread_mutex_unlock(&s->lock);
	if (!bandwidth)
		bandwidth = session_round_rate(s);
	for (size_t i = 0; i < s->nregions; i++)
		left += (source_count(s->regions[i].dirty, &s->regions[i]) +
			 source_count(s->regions[i].pending, &s->regions[i])) *
			s->regions[i].page_size;
	if (!bandwidth)
		return UINT64_MAX / 4;
	return (uint64_t)(2.0 * (double)left * 1e6 / (double)bandwidth) + 2u * sample_us;
}

struct source_probe {
	uint32_t samples;
	uint64_t pages_sum;    /* pages found over the samples */
	uint64_t runs_sum;     /* contiguous runs those pages formed */
	uint64_t interval_sum; /* their intervals */
	/* per region: each sample's pages, SOURCE_PROBE_SAMPLES bitmaps end to end */
	uint64_t **taken;
	int decided;
};

struct source_sched {
	int hold;  /* predict: hold pages back */
	int force; /* sample now, due or not */
	int quiet; /* the method needs no samples (auto chose pre-copy or hybrid) */
	struct source_probe *probe;
};

static int source_auto_decide(struct rmig_session *s, struct source_probe *probe);

/* Contiguous runs of set bits in a bitmap. */
static uint64_t source_runs(const uint64_t *bm, size_t words)
{
	uint64_t runs = 0, carry = 0;

	for (size_t w = 0; w < words; w++) {
		uint64_t x = bm[w];

		runs += (uint64_t)__builtin_popcountll(x & ~((x << 1) | carry));
		carry = x >> 63;
	}
	return runs;
}

/* Between batches of the pre-copy family's rounds: sample, feed the predictor (hold pages back
 * only for predict); while auto probes, measure, and decide after enough samples. */
static int source_sched_hook(struct rmig_session *s, void *arg)
{
	struct source_sched *sched = arg;
	uint64_t last = s->last_sample_us, horizon, now;
	int64_t found;

	if (sched->quiet || (!sched->force && !source_sample_due(s)))
		return 0;
	sched->force = 0;
	found = source_sample(s);
	if (found < 0)
		return (int)found;
	now = s->last_sample_us;
	horizon = sched->hold ? source_horizon_us(s) : 0;
	for (size_t i = 0; i < s->nregions; i++) {
		struct session_region *r = &s->regions[i];

		predict_sample(r->predict, now, r->fresh, r->dirty, r->pending, r->held, horizon);
	}
	if (sched->probe && !sched->probe->decided) {
		struct source_probe *probe = sched->probe;

		for (size_t i = 0; i < s->nregions; i++) {
			size_t words = bitmap_words(s->regions[i].npages);

			probe->runs_sum += source_runs(s->regions[i].fresh, words);
			if (probe->samples < SOURCE_PROBE_SAMPLES)
				memcpy(probe->taken[i] + (size_t)probe->samples * words,
				       s->regions[i].fresh, words * sizeof(uint64_t));
		}
		probe->samples++;
		probe->pages_sum += (uint64_t)found;
		probe->interval_sum += now - last;
		if (probe->samples >= SOURCE_PROBE_SAMPLES ||
		    (probe->samples >= 2 && source_dirty_bytes(s) * 2 < s->stats.ram_bytes)) {
			int ret = source_auto_decide(s, probe);

			if (ret < 0)
				return ret;
			if (s->method == RMIG_METHOD_PREDICT)
				sched->hold = 1;
			/* Pre-copy and hybrid go by the dirty log at the round's end; sampling on
			 * would only cost the guest write-protect faults. */
			sched->quiet =
				s->method == RMIG_METHOD_PRECOPY || s->method == RMIG_METHOD_HYBRID;
			return s->method == RMIG_METHOD_POSTCOPY;
		}
	}
	return 0;
}

/* TSMC stage 2: a page written again before its turn is left to stage 3 (so it crosses twice,
 * not three times); every page written during the stage is delivered after resume. */
static int source_tsmc_hook(struct rmig_session *s, void *arg)
{
	struct source_sched *sched = arg;
	int64_t found;

	/* The first batch waits for a sample: what was written while stage 2 was planned is
	 * left out of it. */
	if (!sched->force && !source_sample_due(s))
		return 0;
	sched->force = 0;
	found = source_sample(s);
	if (found < 0)
		return (int)found;
	for (size_t i = 0; i < s->nregions; i++) {
		struct session_region *r = &s->regions[i];
		size_t words = bitmap_words(r->npages);

		predict_record(r->predict, s->last_sample_us, r->fresh);
		for (size_t w = 0; w < words; w++) {
			r->dirty[w] &= ~r->fresh[w];
			r->postcopy[w] |= r->fresh[w];
		}
	}
	return 0;
}

/* ---- the live phases ---- */

/* Classic pre-copy from the sync after `round` on. */
static int source_precopy_after(struct rmig_session *s, struct batch_pipeline *pipeline,
				uint32_t round, uint64_t last_sync_us)
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
		ret = source_decide(s, round, (uint64_t)dirty, now - last_sync_us);
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

static int source_live_precopy(struct rmig_session *s, struct batch_pipeline *pipeline)
{
	uint64_t start = session_now_us();
	int ret;

	source_mark_all_regions(s);
	ret = source_round(s, pipeline, 1, 0, batch_dirty_pages(s->regions, s->nregions), NULL,
			   NULL);
	session_round_end(s);
	if (ret < 0)
		return ret;
	return source_precopy_after(s, pipeline, 1, start);
}

/* Prediction pre-copy's own stop, on top of the policy's: once a round no longer shrinks what
 * the next must send (the guest dirties as fast as the link drains; what keeps coming back is
 * what will be rewritten before the end anyway), more rounds only resend it. Stop when what the
 * pause would carry then fits the downtime target. */
static int source_predict_settled(struct rmig_session *s, uint32_t round, uint64_t planned,
				  uint64_t previous)
{
	uint64_t projected;

	if (round < 2 || previous == UINT64_MAX || planned * 5 < previous * 4)
		return 0;
	pthread_mutex_lock(&s->lock);
	projected = s->stats.projected_downtime_ms;
	pthread_mutex_unlock(&s->lock);
	return projected <= s->params.downtime_ms;
}

/* Held pages would cross with the VM paused. When they would add more than this to the
 * downtime, one last short live round sends them, and the pause carries only what that round
 * saw written again: a transmission more for each, a downtime no longer than pre-copy's. */
#define SOURCE_FLUSH_MIN_US 2000u

static int source_predict_flush(struct rmig_session *s, struct batch_pipeline *pipeline,
				struct source_sched *sched, uint32_t round)
{
	uint64_t held = 0, bytes = 0, bandwidth;
	int ret;

	for (size_t i = 0; i < s->nregions; i++) {
		uint64_t n = source_count(s->regions[i].held, &s->regions[i]);

		held += n;
		bytes += n * s->regions[i].page_size;
	}
	pthread_mutex_lock(&s->lock);
	bandwidth = s->stats.bandwidth;
	pthread_mutex_unlock(&s->lock);
	if (!held || !bandwidth || bytes * 1000000u / bandwidth < SOURCE_FLUSH_MIN_US)
		return 0;
	for (size_t i = 0; i < s->nregions; i++) {
		struct session_region *r = &s->regions[i];

		bitmap_or(r->dirty, r->held, r->npages);
		predict_finish(r->predict, r->held);
	}
	sched->hold = 0;
	ret = source_round(s, pipeline, round + 1, 0, batch_dirty_pages(s->regions, s->nregions),
			   source_sched_hook, sched);
	session_round_end(s);
	if (ret < 0)
		return ret;
	return source_round_done(s, round + 1);
}

/* Prediction pre-copy from the end of `round` on: sample, plan (hold or send), decide. */
static int source_predict_after(struct rmig_session *s, struct batch_pipeline *pipeline,
				struct source_sched *sched, uint32_t round, uint64_t last_sync_us)
{
	uint64_t previous = UINT64_MAX;
	int ret;

	sched->hold = 1;
	for (;;) {
		uint64_t planned = 0, horizon, now;
		int64_t found;

		ret = source_round_done(s, round);
		if (ret)
			return ret;
		found = source_sample(s);
		if (found < 0)
			return (int)found;
		now = s->last_sample_us;
		horizon = source_horizon_us(s);
		for (size_t i = 0; i < s->nregions; i++) {
			struct session_region *r = &s->regions[i];

			predict_sample(r->predict, now, r->fresh, r->dirty, r->pending, r->held,
				       horizon);
		}
		/* The next round's length, and so the horizon, follows from what it will send. */
		horizon = source_horizon_us(s);
		for (size_t i = 0; i < s->nregions; i++) {
			struct session_region *r = &s->regions[i];

			planned += predict_plan_round(r->predict, r->pending, r->held, r->dirty,
						      horizon);
		}
		ret = source_decide(s, round, planned, now - last_sync_us);
		last_sync_us = now;
		if (ret < 0)
			return ret;
		if (!ret && source_predict_settled(s, round, planned, previous)) {
			ret = 1;
			pthread_mutex_lock(&s->lock);
			s->stats.stop_reason = RMIG_STOP_DOWNTIME;
			pthread_mutex_unlock(&s->lock);
		}
		previous = planned;
		{
			struct predict_counters c = {0}, sum = {0};

			for (size_t i = 0; i < s->nregions; i++) {
				predict_counters_get(s->regions[i].predict, &c);
				sum.hold_hits += c.hold_hits;
				sum.hold_misses += c.hold_misses;
				sum.send_misses += c.send_misses;
			}
			pthread_mutex_lock(&s->lock);
			s->stats.predict_hits = sum.hold_hits;
			s->stats.predict_hold_misses = sum.hold_misses;
			s->stats.predict_send_misses = sum.send_misses;
			s->stats.predict_threshold = c.threshold;
			pthread_mutex_unlock(&s->lock);
		}
		session_progress(s, RMIG_EVENT_SYNC);
		if (ret)
			return source_predict_flush(s, pipeline, sched, round);
		round++;
		ret = source_round(s, pipeline, round, 0, planned, source_sched_hook, sched);
		session_round_end(s);
		if (ret < 0)
			return ret;
	}
}

static int source_live_predict(struct rmig_session *s, struct batch_pipeline *pipeline)
{
	struct source_sched sched = {.hold = 1};
	uint64_t start = session_now_us();
	int ret;

	source_mark_all_regions(s);
	ret = source_round(s, pipeline, 1, 0, batch_dirty_pages(s->regions, s->nregions),
			   source_sched_hook, &sched);
	session_round_end(s);
	if (ret < 0)
		return ret;
	return source_predict_after(s, pipeline, &sched, 1, start);
}

/* TSMC after stage 1 (round 1): stage 2 sends what stage 1 left dirty, once, except pages the
 * history shows written more than once (left to stage 3 with those written meanwhile). */
static int source_tsmc_after(struct rmig_session *s, struct batch_pipeline *pipeline,
			     uint64_t last_sync_us)
{
	uint64_t planned = 0, now, deferred = 0;
	int64_t found;
	int ret;

	ret = source_round_done(s, 1);
	if (ret)
		return ret;
	found = source_sample(s);
	if (found < 0)
		return (int)found;
	now = s->last_sample_us;
	for (size_t i = 0; i < s->nregions; i++) {
		struct session_region *r = &s->regions[i];

		predict_sample(r->predict, now, r->fresh, r->dirty, r->pending, r->held, 0);
	}
	/* A page written in two samples or more is likely to be written again before the pause:
	 * sending it in stage 2 would risk a third crossing, so it waits for stage 3. */
	for (size_t i = 0; i < s->nregions; i++) {
		struct session_region *r = &s->regions[i];
		size_t page;

		bitmap_for_each(page, r->pending, r->npages)
		{
			if (predict_score(r->predict, page) >= PREDICT_THRESHOLD_MIN) {
				bitmap_set(r->postcopy, page);
				deferred++;
			} else {
				bitmap_set(r->dirty, page);
				planned++;
			}
		}
		bitmap_zero(r->pending, r->npages);
	}
	source_measure(s, planned + deferred, now - last_sync_us, NULL);
	pthread_mutex_lock(&s->lock);
	s->stats.remaining_bytes = source_dirty_bytes(s);
	pthread_mutex_unlock(&s->lock);
	session_progress(s, RMIG_EVENT_SYNC);
	ret = source_round(s, pipeline, 2, 0, planned, source_tsmc_hook,
			   &(struct source_sched){.force = 1});
	session_round_end(s);
	if (ret < 0)
		return ret;
	return source_round_done(s, 2);
}

static int source_live_tsmc(struct rmig_session *s, struct batch_pipeline *pipeline)
{
	struct source_sched sched = {.hold = 0};
	uint64_t start = session_now_us();
	int ret;

	source_mark_all_regions(s);
	ret = source_round(s, pipeline, 1, 0, batch_dirty_pages(s->regions, s->nregions),
			   source_sched_hook, &sched);
	session_round_end(s);
	if (ret < 0)
		return ret;
	return source_tsmc_after(s, pipeline, start);
}

static int source_live_hybrid(struct rmig_session *s, struct batch_pipeline *pipeline)
{
	uint64_t start = session_now_us();
	int ret;

	source_mark_all_regions(s);
	ret = source_round(s, pipeline, 1, 0, batch_dirty_pages(s->regions, s->nregions), NULL,
			   NULL);
	session_round_end(s);
	if (ret < 0)
		return ret;
	ret = source_round_done(s, 1);
	if (ret)
		return ret;
	source_measure(s, 0, session_now_us() - start, NULL);
	return 0;
}

/* ---- auto ---- */

static const char *source_cost_name(uint32_t method)
{
	return cost_method_name(method);
}

/* What one post-copy fault would cost, in microseconds, from the destination's test pulls of a
 * fault's worth of pages: one before any page moved (the round trip, the responder, the copy)
 * plus the wait behind the pages in flight ahead of the answer. The pulls timed while the bulk
 * round flowed show how much waits ahead of an answer on this connection; the tail never has
 * more in flight than its push window (POSTCOPY_WINDOW_US of the rate, at least
 * POSTCOPY_WINDOW_MIN bytes), which fills and drains, so an answer waits behind half of the
 * lesser of the two on average. 0 when the destination measured nothing. */
static double source_fault_latency_us(const struct rmig_session *s, double bandwidth)
{
	double window_us = POSTCOPY_WINDOW_US, ahead_us;

	if (!s->pull_idle_us)
		return 0.0;
	if (bandwidth > 0.0 && (double)POSTCOPY_WINDOW_MIN * 1e6 / bandwidth > window_us)
		window_us = (double)POSTCOPY_WINDOW_MIN * 1e6 / bandwidth;
	ahead_us = window_us;
	if (s->pull_loaded_us)
		ahead_us = s->pull_loaded_us > s->pull_idle_us
				   ? fmin((double)(s->pull_loaded_us - s->pull_idle_us), window_us)
				   : 0.0;
	return (double)s->pull_idle_us + ahead_us / 2.0;
}

/* How long auto waits at its decision for the test pulls timed under the bulk round's load, when
 * the destination sends them. */
#define SOURCE_LOADED_PULL_WAIT_MS 100

/* From what the probe measured, the cost model's choice; it becomes s->method. */
static int source_auto_decide(struct rmig_session *s, struct source_probe *probe)
{
	struct cost_projection all[COST_METHOD_COUNT], choice;
	uint64_t ram_pages = 0, early = 0, late = 0, both = 0, zero_pages, pages_sent;
	uint32_t allowed = (1u << COST_METHOD_COUNT) - 1, method, policy;
	uint32_t half = probe->samples / 2, taken = probe->samples;
	double rate, working_set, bandwidth, run_pages, fault_us;
	struct cost_model_input in = {0};
	char others[600] = "", fault[96] = "";
	size_t used = 0;
	int ret;

	probe->decided = 1;
	/* The destination's test pulls under load: all of them when they come soon enough. */
	ret = session_ctrl_poll(s, 0);
	for (uint64_t until = session_now_us() + SOURCE_LOADED_PULL_WAIT_MS * 1000u;
	     !ret && s->pull_idle_us && s->pull_loaded_pulls < POSTCOPY_PROBE_LOADED_PULLS &&
	     session_now_us() < until;)
		ret = session_ctrl_poll(s, (int)((until - session_now_us()) / 1000u) + 1);
	if (ret)
		return ret;
	if (taken > SOURCE_PROBE_SAMPLES)
		taken = SOURCE_PROBE_SAMPLES;
	for (size_t i = 0; i < s->nregions; i++) {
		const struct session_region *r = &s->regions[i];
		size_t words = bitmap_words(r->npages);

		ram_pages += r->npages;
		for (size_t w = 0; w < words; w++) {
			uint64_t a = 0, b = 0;

			for (uint32_t k = 0; k < taken; k++) {
				if (k < half)
					a |= probe->taken[i][(size_t)k * words + w];
				else
					b |= probe->taken[i][(size_t)k * words + w];
			}
			early += (uint64_t)__builtin_popcountll(a);
			late += (uint64_t)__builtin_popcountll(b);
			both += (uint64_t)__builtin_popcountll(a & b);
		}
	}
	/* Pages written per second, distinct within a sample's interval. */
	rate = probe->interval_sum ? (double)probe->pages_sum * 1e6 / (double)probe->interval_sum
				   : 0.0;
	/* Capture-recapture between the earlier and the later half of the samples: writes
	 * scattered over W pages hit both halves in about early * late / W pages. Halves, not
	 * alternate samples: a guest that sweeps through RAM (a sort, a join's appends) writes
	 * the same pages in neighbouring samples only, which alternate samples would take for a
	 * small working set. No overlap at all: no sign of a bound, assume all RAM. */
	working_set = both ? (double)early * (double)late / (double)both : (double)ram_pages;
	if (working_set > (double)ram_pages)
		working_set = (double)ram_pages;
	if (working_set < (double)(early + late - both))
		working_set = (double)(early + late - both);
	run_pages = probe->runs_sum ? (double)probe->pages_sum / (double)probe->runs_sum : 1.0;
	bandwidth = (double)session_round_rate(s);
	if (bandwidth <= 0.0)
		bandwidth = 1.0;
	fault_us = source_fault_latency_us(s, bandwidth);
	pthread_mutex_lock(&s->lock);
	zero_pages = s->stats.zero_pages;
	pages_sent = s->stats.pages_sent;
	pthread_mutex_unlock(&s->lock);
	in = (struct cost_model_input){
		.ram_bytes = s->stats.ram_bytes,
		.page_size = s->regions[0].page_size,
		.dirty_pages_rate = rate,
		.working_set_bytes = (uint64_t)(working_set * (double)s->regions[0].page_size),
		.bandwidth = bandwidth,
		.zero_fraction = pages_sent ? (double)zero_pages / (double)pages_sent : 0.0,
		.downtime_ms = s->params.downtime_ms,
		.max_rounds = s->params.max_rounds,
		.fault_latency_us = fault_us,
		.access_run_pages = run_pages,
		.pause_seconds = (double)source_pause_cost_us(s) / 1e6,
	};
	if (!(s->peer_flags & PROTOCOL_HELLO_POSTCOPY))
		allowed &= ~((1u << COST_METHOD_TSMC) | (1u << COST_METHOD_POSTCOPY) |
			     (1u << COST_METHOD_HYBRID));
	ret = cost_model_choose_among(&in, allowed, all, &choice);
	if (ret)
		return session_fail(s, ret, "auto: the cost model refused the measurements");
	cost_method_to_engine(choice.method, &method, &policy);
	for (uint32_t m = 0; m < COST_METHOD_COUNT && used < sizeof(others); m++) {
		char stall[48] = "";
		int n;

		if (m == choice.method)
			continue;
		if (all[m].stall_seconds > 0.0)
			snprintf(stall, sizeof(stall), " + %.0f ms stall",
				 all[m].stall_seconds * 1000.0);
		n = snprintf(others + used, sizeof(others) - used, "%s%s %.2f s/%.0f ms%s%s%s",
			     used ? ", " : "", source_cost_name(m), all[m].total_seconds,
			     all[m].downtime_seconds * 1000.0, stall,
			     all[m].converges ? "" : " (no convergence)",
			     allowed & (1u << m) ? "" : " (destination cannot)");
		if (n > 0)
			used += (size_t)n;
	}
	if (fault_us > 0.0 && s->pull_loaded_us)
		snprintf(
			fault, sizeof(fault),
			", post-copy fault %.2f ms (pulls timed at %u us idle, %u us under load x%u)",
			fault_us / 1000.0, s->pull_idle_us, s->pull_loaded_us,
			s->pull_loaded_pulls);
	else if (fault_us > 0.0)
		snprintf(fault, sizeof(fault),
			 ", post-copy fault %.2f ms (a pull timed at %u us idle + half the push "
			 "window)",
			 fault_us / 1000.0, s->pull_idle_us);
	session_method_set(
		s, method, policy,
		"auto chose %s: dirty rate %.0f pages/s (%.1f MiB/s) in runs of %.1f pages, "
		"working set %.1f MiB, bandwidth %.1f MiB/s%s, pause %.1f ms besides the pages, "
		"downtime target %u ms; projected %.2f s total, %.0f ms downtime, %.0f ms "
		"stall%s; others: %s",
		source_cost_name(choice.method), rate, rate * (double)in.page_size / 1048576.0,
		run_pages, working_set * (double)in.page_size / 1048576.0, bandwidth / 1048576.0,
		fault, in.pause_seconds * 1000.0, s->params.downtime_ms, choice.total_seconds,
		choice.downtime_seconds * 1000.0, choice.stall_seconds * 1000.0,
		choice.converges ? "" : " (does not converge)", others);
	pthread_mutex_lock(&s->lock);
	s->stats.auto_dirty_pages_rate = (uint64_t)rate;
	s->stats.auto_bandwidth = (uint64_t)bandwidth;
	s->stats.auto_working_set_bytes = in.working_set_bytes;
	s->stats.auto_projected_total_ms = (uint64_t)(choice.total_seconds * 1000.0);
	s->stats.auto_projected_downtime_ms = (uint64_t)(choice.downtime_seconds * 1000.0);
	s->stats.auto_fault_latency_us = (uint64_t)fault_us;
	s->stats.auto_projected_stall_ms = (uint64_t)(choice.stall_seconds * 1000.0);
	s->stats.auto_pause_cost_us = (uint64_t)(in.pause_seconds * 1e6);
	s->stats.auto_write_run_pages = run_pages;
	pthread_mutex_unlock(&s->lock);
	rmig_log_info("source: %s", s->method_reason);
	return 0;
}

static int source_live_auto(struct rmig_session *s, struct batch_pipeline *pipeline)
{
	struct source_probe probe = {0};
	struct source_sched sched = {.hold = 0, .probe = &probe};
	uint64_t start = session_now_us();
	int ret, ended;

	probe.taken = calloc(s->nregions, sizeof(*probe.taken));
	if (!probe.taken) {
		ret = session_fail(s, -ENOMEM, "auto: out of memory");
		goto out_free;
	}
	for (size_t i = 0; i < s->nregions; i++) {
		probe.taken[i] = calloc(bitmap_words(s->regions[i].npages) * SOURCE_PROBE_SAMPLES,
					sizeof(uint64_t));
		if (!probe.taken[i]) {
			ret = session_fail(s, -ENOMEM, "auto: out of memory");
			goto out_free;
		}
	}
	source_mark_all_regions(s);
	ended = source_round(s, pipeline, 1, 0, batch_dirty_pages(s->regions, s->nregions),
			     source_sched_hook, &sched);
	session_round_end(s);
	if (ended < 0) {
		ret = ended;
		goto out_free;
	}
	if (!probe.decided) {
		/* The bulk round ended before the probe had enough samples: decide from the
		 * round (one more sample, so even a fast round has one measurement). */
		sched.force = 1;
		ret = source_sched_hook(s, &sched);
		if (ret >= 0 && !probe.decided)
			ret = source_auto_decide(s, &probe);
		if (ret < 0)
			goto out_free;
		if (s->method == RMIG_METHOD_POSTCOPY) {
			char reason[SESSION_REASON_MAX];

			memcpy(reason, s->method_reason, sizeof(reason));
			reason[SESSION_REASON_MAX - 80] = '\0';
			session_method_set(
				s, RMIG_METHOD_HYBRID, s->policy,
				"%s; the bulk round had already sent all RAM once, so it "
				"runs as hybrid",
				reason);
		}
	}
	switch (s->method) {
	case RMIG_METHOD_PRECOPY:
		ret = source_precopy_after(s, pipeline, 1, start);
		break;
	case RMIG_METHOD_PREDICT:
		ret = source_predict_after(s, pipeline, &sched, 1, start);
		break;
	case RMIG_METHOD_TSMC:
		ret = source_tsmc_after(s, pipeline, start);
		break;
	default: /* hybrid, post-copy: pause now */
		ret = source_round_done(s, 1);
		if (!ret)
			source_measure(s, 0, session_now_us() - start, NULL);
		break;
	}
out_free:
	for (size_t i = 0; probe.taken && i < s->nregions; i++)
		free(probe.taken[i]);
	free(probe.taken);
	return ret;
}

/* ---- switchover ---- */

/* VM paused, pre-copy family: the last dirty pages (and those held back), the device state,
 * verification, resume. */
static int source_switchover(struct rmig_session *s, struct batch_pipeline *pipeline)
{
	uint32_t round = s->stats.rounds + 1;
	uint64_t t_start = session_now_us(), t_sync, t_pages, t_device, t_verify = 0, t_end;
	int64_t dirty;
	int ret;

	for (size_t i = 0; i < s->nregions; i++) {
		struct session_region *r = &s->regions[i];

		if (r->held) {
			bitmap_or(r->dirty, r->held, r->npages);
			if (r->predict)
				predict_finish(r->predict, r->held);
			bitmap_zero(r->held, r->npages);
		}
	}
	/* With the VM paused the host's cores are free for the final hash pass. */
	for (size_t i = 0; i < s->nregions; i++)
		if (s->regions[i].tracker)
			dirty_source_set_threads(s->regions[i].tracker, session_pause_threads());
	dirty = source_sync(s);
	if (dirty < 0)
		return (int)dirty;
	t_sync = session_now_us();
	ret = session_round_begin(s, round, 1, (uint64_t)dirty);
	if (ret)
		return session_fail(s, ret, "final round: out of memory");
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
	if (!ret && s->params.verify == RMIG_VERIFY_ALL) {
		ret = verify_source_run(s, pipeline);
		t_verify = session_now_us() - t_device;
	}
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

/* VM paused, post-copy family: what the destination holds is verified, everything else is
 * announced, the device state crosses, the destination resumes, the tail delivers the rest. */
static int source_switchover_postcopy(struct rmig_session *s, struct batch_pipeline *pipeline)
{
	uint32_t round = s->stats.rounds + 1;
	uint64_t later = 0;
	int64_t dirty;
	int ret;

	for (size_t i = 0; i < s->nregions; i++)
		if (s->regions[i].tracker)
			dirty_source_set_threads(s->regions[i].tracker, session_pause_threads());
	dirty = source_sync(s);
	if (dirty < 0)
		return (int)dirty;
	for (size_t i = 0; i < s->nregions; i++) {
		struct session_region *r = &s->regions[i];

		bitmap_or(r->postcopy, r->dirty, r->npages);
		bitmap_zero(r->dirty, r->npages);
		if (r->held) {
			bitmap_or(r->postcopy, r->held, r->npages);
			bitmap_zero(r->held, r->npages);
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
	if (!ret && s->params.verify == RMIG_VERIFY_ALL)
		ret = verify_source_postcopy(s);
	/* Unlike source_switchover(), the trackers go before the announcement: it registers the
	 * RAM once more for the push, and pinning pages that userfaultfd write-protects fails
	 * (EFAULT from ibv_reg_mr). */
	source_trackers_stop(s);
	if (!ret)
		ret = postcopy_source_announce(s);
	if (!ret)
		ret = source_device_state(s);
	if (!ret)
		ret = source_regions_readable(s, 1);
	if (!ret)
		ret = source_resume_destination(s);
	/* RESUME went out and the connection failed: the destination may run the VM already. */
	if (ret && s->point_of_no_return)
		ret = postcopy_source_recover(s, pipeline, ret);
	session_round_end(s);
	if (ret)
		return ret;
	pthread_mutex_lock(&s->lock);
	s->stats.downtime_ms = (session_now_us() - s->pause_us) / 1000u;
	pthread_mutex_unlock(&s->lock);
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

static int source_live(struct rmig_session *s, struct batch_pipeline *pipeline)
{
	switch (s->params.method) {
	case RMIG_METHOD_PREDICT:
		return source_live_predict(s, pipeline);
	case RMIG_METHOD_TSMC:
		return source_live_tsmc(s, pipeline);
	case RMIG_METHOD_HYBRID:
		return source_live_hybrid(s, pipeline);
	case RMIG_METHOD_POSTCOPY:
		/* Nothing moves while the VM runs here: every page comes after resume. */
		for (size_t i = 0; i < s->nregions; i++)
			bitmap_set_range(s->regions[i].postcopy, 0, s->regions[i].npages);
		return 0;
	case RMIG_METHOD_AUTO:
		return source_live_auto(s, pipeline);
	default:
		return source_live_precopy(s, pipeline);
	}
}

/* What the asked method needs from the destination, and the method record. */
static int source_method_setup(struct rmig_session *s)
{
	uint32_t method = s->params.method;
	int ret = 0;

	if (session_method_is_postcopy(method) && !(s->peer_flags & PROTOCOL_HELLO_POSTCOPY))
		return session_fail(s, -EOPNOTSUPP,
				    "method %s needs the destination to fill its RAM after resume "
				    "(userfaultfd), which %s cannot",
				    session_method_name(method), s->conn->peer);
	if (method != RMIG_METHOD_PRECOPY)
		ret = source_sched_alloc(s, method != RMIG_METHOD_HYBRID &&
						    method != RMIG_METHOD_POSTCOPY);
	if (ret)
		return ret;
	if (method == RMIG_METHOD_AUTO)
		session_method_set(s, RMIG_METHOD_AUTO, s->params.policy, "%s", "");
	else if (method == RMIG_METHOD_PRECOPY || method == RMIG_METHOD_PREDICT)
		session_method_set(s, method, s->params.policy, "%s asked for, %s stop policy",
				   session_method_name(method),
				   s->params.policy == RMIG_POLICY_XEN ? "xen" : "qemu");
	else
		session_method_set(s, method, s->params.policy, "%s asked for",
				   session_method_name(method));
	return 0;
}

int source_run(struct rmig_session *s)
{
	struct batch_pipeline *pipeline = NULL;
	uint64_t done_us;
	int ret;

	s->start_us = session_now_us();
	if (!s->conn) {
		ret = session_fail(s, -ENOTCONN,
				   "the source is not connected (rmig_session_connect)");
		goto out;
	}
	session_status_set(s, RMIG_STATUS_SETUP);
	ret = session_round_begin(s, 0, 0, 0);
	if (ret) {
		ret = session_fail(s, ret, "setup: out of memory");
		goto out;
	}
	ret = source_handshake(s);
	if (!ret)
		ret = source_method_setup(s);
	if (!ret && s->params.method != RMIG_METHOD_POSTCOPY)
		ret = source_trackers_start(s);
	session_round_end(s);
	if (ret)
		goto err_abort;
	pthread_mutex_lock(&s->lock);
	s->stats.setup_time_ms = (session_now_us() - s->start_us) / 1000u;
	pthread_mutex_unlock(&s->lock);

	ret = batch_pipeline_create(s->conn, s->params.bandwidth_limit, &pipeline);
	if (ret) {
		ret = session_fail(s, ret, "cannot start the batch sender: %s",
				   session_strerror(ret));
		goto err_abort;
	}
	session_status_set(s, RMIG_STATUS_ACTIVE);
	ret = source_live(s, pipeline);
	if (ret)
		goto err_abort;
	ret = source_pause(s);
	if (ret)
		goto err_abort;
	if (session_method_is_postcopy(s->method))
		ret = source_switchover_postcopy(s, pipeline);
	else
		ret = source_switchover(s, pipeline);
	if (ret)
		goto err_abort;

	done_us = session_now_us();
	pthread_mutex_lock(&s->lock);
	s->stats.total_time_ms = (done_us - s->start_us) / 1000u;
	s->stats.remaining_bytes = 0;
	pthread_mutex_unlock(&s->lock);
	session_histogram_update(s);
	batch_pipeline_destroy(pipeline);
	session_disconnect(s);
	return 0;

err_abort:
	if (pipeline)
		batch_pipeline_abandon(pipeline);
	session_abort_send(s, ret, s->last_error[0] ? s->last_error : session_strerror(ret));
	batch_pipeline_destroy(pipeline);
	source_trackers_stop(s);
	if (s->point_of_no_return && session_method_is_postcopy(s->method)) {
		/* The VM already runs on the destination with part of its RAM still here. */
		session_error_append(s, "; the destination had resumed the VM, which cannot run "
					"here again: the migration is lost, stop the VM on the "
					"destination");
		rmig_log_info("source: post-copy failed after the destination resumed the VM: "
			      "the VM is lost (it cannot run here again and lacks pages there)");
	}
	/* Whatever went wrong before the resume, the VM runs here again. */
	if (s->throttle_percent && (s->callbacks.field_mask & RMIG_CB_THROTTLE))
		s->callbacks.throttle(s->opaque, 0);
	if (s->vm_paused && !s->point_of_no_return &&
	    (s->callbacks.field_mask & RMIG_CB_RESUME_VM)) {
		int resume = s->callbacks.resume_vm(s->opaque);

		if (resume < 0)
			rmig_log_error("source: the resume_vm callback returned %d after the "
				       "migration failed: the VM may still be paused",
				       resume);
		else
			s->vm_paused = 0;
	}
	session_histogram_update(s);
	session_disconnect(s);
out:
	return ret;
}
