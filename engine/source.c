/* engine/source.c - the source side of pre-copy: handshake and region table, a bulk round, then
 * rounds of dirty sync -> batches -> transport with bandwidth and dirty-rate measurement and a
 * stop decision; then pause, the final round, device state, verification and the resume on the
 * destination. Any failure leaves the VM running here. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/batch.h"
#include "engine/bitmap.h"
#include "engine/dirty.h"
#include "engine/policy.h"
#include "engine/protocol.h"
#include "engine/session.h"
#include "transport/log.h"

#define SOURCE_LABEL "rmig-source"
#define DEST_LABEL "rmig-dest"

/* The peer may read guest RAM here only when the method pulls pages (post-copy faults are
 * served by RDMA READ without this side's CPU); pre-copy only pushes. */
static unsigned source_region_access(uint32_t method)
{
	switch (method) {
	case RMIG_METHOD_POSTCOPY:
	case RMIG_METHOD_HYBRID:
	case RMIG_METHOD_TSMC:
	case RMIG_METHOD_AUTO:
		return TRANSPORT_ACCESS_REMOTE_READ;
	default:
		return TRANSPORT_ACCESS_LOCAL;
	}
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
		if (ret)
			return session_fail(s, ret, "cannot compute the key proof");
		ret = session_ctrl_send(s, protocol_auth_to_wire(mine, s->msg_buf));
		if (ret)
			return ret;
	}

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
	if (type != PROTOCOL_REGION_ACK || len != 0)
		return session_fail(s, -EPROTO, "%s answered the region table with %s",
				    s->conn->peer, protocol_type_name(type));
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
		/* enum dirty_kind and enum rmig_dirty_source number the kinds alike. */
		pthread_mutex_lock(&s->lock);
		s->stats.dirty_source = (uint32_t)dirty_source_kind(r->tracker);
		pthread_mutex_unlock(&s->lock);
	}
	return 0;
}

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

/* OR every page written since the previous sync into the dirty bitmaps; returns the number of
 * pages now marked dirty. */
static int64_t source_sync(struct rmig_session *s)
{
	for (size_t i = 0; i < s->nregions; i++) {
		struct session_region *r = &s->regions[i];
		int ret = dirty_source_sync(r->tracker, r->dirty);

		if (ret < 0)
			return session_fail(s, ret, "region %u: dirty sync failed: %s", r->id,
					    session_strerror(ret));
	}
	return (int64_t)batch_dirty_pages(s->regions, s->nregions);
}

/* What the pages still marked dirty will cost to send. */
static uint64_t source_dirty_bytes(struct rmig_session *s)
{
	uint64_t bytes = 0;

	for (size_t i = 0; i < s->nregions; i++)
		bytes += (uint64_t)bitmap_count(s->regions[i].dirty, s->regions[i].npages) *
			 s->regions[i].page_size;
	return bytes;
}

static void source_mark_all(struct session_region *r)
{
	bitmap_set_range(r->dirty, 0, r->npages);
}

/* A failed post leaves its reason in the transport; the peer may also have said why. */
static int source_post_failed(struct rmig_session *s, int err)
{
	struct transport_msg msg;

	if (transport_recv(s->conn, &msg, 0) == 0 && msg.type == TRANSPORT_MSG_CTRL) {
		char why[TRANSPORT_ERROR_MAX];
		struct protocol_abort abort_msg;
		const void *payload;
		size_t len;

		if (protocol_parse(msg.data, msg.len, &payload, &len, why, sizeof(why)) ==
			    PROTOCOL_ABORT &&
		    protocol_abort_from_wire(payload, len, &abort_msg, why, sizeof(why)) == 0)
			return session_peer_aborted(s, &abort_msg);
	}
	return session_fail(s, err, "sending pages to %s: %s%s%s", s->conn->peer,
			    session_strerror(err), transport_error(s->conn)[0] ? ": " : "",
			    transport_error(s->conn));
}

/* Send every page marked in the dirty bitmaps, clearing them. */
int source_send_pages(struct rmig_session *s, struct batch_pipeline *pipeline)
{
	struct batch_cursor cursor = {0};
	int first = 1, ret;

	for (;;) {
		struct batch *b;

		if (session_cancelled(s) && !s->point_of_no_return)
			return session_fail(s, -ECANCELED, "cancelled in round %u", s->stats.round);
		ret = batch_pipeline_acquire(pipeline, &b);
		if (ret)
			return source_post_failed(s, ret);
		if (!batch_build(s->regions, s->nregions, &cursor, b)) {
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
	return 0;
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

static int source_round(struct rmig_session *s, struct batch_pipeline *pipeline, uint32_t round,
			uint32_t paused, uint64_t dirty_pages)
{
	struct protocol_round msg = {.round = round, .paused = paused};
	int ret;

	ret = session_round_begin(s, round, paused, dirty_pages);
	if (ret)
		return session_fail(s, ret, "round %u: out of memory", round);
	batch_pipeline_pace_reset(pipeline);
	ret = session_ctrl_send(s, protocol_round_to_wire(&msg, s->msg_buf));
	if (!ret)
		ret = source_send_pages(s, pipeline);
	if (!ret)
		ret = source_round_barrier(s, round);
	return ret;
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

/* Measurements after a live round; returns 1 to stop iterating. */
static int source_decide(struct rmig_session *s, uint32_t round, uint64_t dirty_pages,
			 uint64_t since_sync_us)
{
	struct rmig_round_stats last;
	struct policy_decision decision;
	struct policy_input in = {
		.policy = s->params.policy,
		.round = round,
		.max_rounds = s->params.max_rounds,
		.downtime_ms = s->params.downtime_ms,
		.dirty_pages = dirty_pages,
	};
	uint64_t bandwidth;

	pthread_mutex_lock(&s->lock);
	last = s->rounds[s->nrounds - 1];
	in.bytes_sent = s->stats.data_bytes;
	in.ram_bytes = s->stats.ram_bytes;
	pthread_mutex_unlock(&s->lock);

	in.remaining_bytes = source_dirty_bytes(s);
	bandwidth = policy_rate(last.bytes, last.duration_us);
	in.bandwidth = bandwidth;
	policy_decide(&in, &decision);

	pthread_mutex_lock(&s->lock);
	s->stats.bandwidth = bandwidth;
	s->stats.dirty_pages_rate = policy_rate(dirty_pages, since_sync_us);
	s->stats.remaining_bytes = in.remaining_bytes;
	s->stats.projected_downtime_ms = decision.projected_downtime_ms;
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

static int source_iterate(struct rmig_session *s, struct batch_pipeline *pipeline)
{
	uint64_t last_sync_us;
	uint32_t round = 1;
	int64_t dirty;
	int ret;

	for (size_t i = 0; i < s->nregions; i++)
		source_mark_all(&s->regions[i]);
	last_sync_us = session_now_us();
	dirty = (int64_t)batch_dirty_pages(s->regions, s->nregions);
	for (;;) {
		uint64_t now;

		ret = source_round(s, pipeline, round, 0, (uint64_t)dirty);
		session_round_end(s);
		if (ret)
			return ret;
		session_histogram_update(s);
		session_progress(s, RMIG_EVENT_ROUND_END);
		if (session_cancelled(s))
			return session_fail(s, -ECANCELED, "cancelled after round %u", round);
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
	}
}

/* VM paused: the last dirty pages, the device state, verification, resume. */
static int source_switchover(struct rmig_session *s, struct batch_pipeline *pipeline)
{
	uint32_t round = s->stats.rounds + 1;
	int64_t dirty;
	int ret;

	dirty = source_sync(s);
	if (dirty < 0)
		return (int)dirty;
	source_trackers_stop(s);
	ret = session_round_begin(s, round, 1, (uint64_t)dirty);
	if (ret)
		return session_fail(s, ret, "final round: out of memory");
	ret = session_ctrl_send(
		s, protocol_round_to_wire(&(struct protocol_round){.round = round, .paused = 1},
					  s->msg_buf));
	if (!ret)
		ret = source_send_pages(s, pipeline);
	if (!ret)
		ret = source_round_barrier(s, round);
	if (!ret)
		ret = source_device_state(s);
	if (!ret && s->params.verify == RMIG_VERIFY_ALL)
		ret = verify_source_run(s, pipeline);
	if (!ret)
		ret = source_resume_destination(s);
	session_round_end(s);
	return ret;
}

int source_run(struct rmig_session *s)
{
	struct batch_pipeline *pipeline = NULL;
	uint64_t done_us;
	int ret;

	s->start_us = session_now_us();
	if (s->params.method != RMIG_METHOD_PRECOPY) {
		ret = session_fail(
			s, -EOPNOTSUPP,
			"method %s is not available in this version of rmig; use precopy",
			session_method_name(s->params.method));
		goto out;
	}
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
	ret = source_iterate(s, pipeline);
	if (ret)
		goto err_abort;
	ret = source_pause(s);
	if (ret)
		goto err_abort;
	ret = source_switchover(s, pipeline);
	if (ret)
		goto err_abort;

	done_us = session_now_us();
	pthread_mutex_lock(&s->lock);
	s->stats.downtime_ms = (done_us - s->pause_us) / 1000u;
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
	/* Whatever went wrong, the VM runs here again. */
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
