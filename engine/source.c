/* SPDX-License-Identifier: MIT */
/* engine/source.c - the source side's run: handshake and region table, dirty tracking, then the
 * method through its ops (engine/methods/): its live phase, the pause, and the switchover of the
 * method that ran (auto's choice for auto). A failure before the destination resumed leaves the
 * VM running here. The parts the methods are made of: engine/source.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "engine/batch.h"
#include "engine/dirty.h"
#include "engine/holes.h"
#include "engine/methods/method.h"
#include "engine/postcopy_recover.h"
#include "engine/protocol.h"
#include "engine/session.h"
#include "engine/source.h"
#include "transport/log.h"

#define SOURCE_LABEL "rmig-source"
#define DEST_LABEL "rmig-dest"

/* The peer may read guest RAM here only while post-copy faults pull it (RDMA READ without this
 * side's CPU): from the switchover, VM paused, just before the resume, to the end of the tail.
 * Every method registers it for local use only at the handshake, auto too: the pulls the
 * destination times to choose a method read the pull target instead
 * (source_pull_target_expose()). */
int source_regions_readable(struct rmig_session *s, int readable)
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

/* auto, towards a destination that can post-copy: the buffer its test pulls read, one fault's
 * pull of bytes that are no guest's (a fixed pattern, written so every page is backed as guest
 * RAM is), registered remote-readable like the RAM a fault pulls, so the pull takes the same
 * path (rdma: an RDMA READ of an MR; tcp: the responder thread). Announced with the guest
 * regions, after the key proof and the bind, so the announcement carries its MAC. */
static int source_pull_target_expose(struct rmig_session *s)
{
	size_t bytes = session_pull_target_bytes(s);
	uint32_t id = session_pull_target_id(s);
	void *buf;
	int ret;

	buf = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		return session_fail(s, -ENOMEM, "cannot map %zu bytes for the test pulls", bytes);
	memset(buf, 0x5a, bytes);
	s->src.pull_target = buf;
	s->src.pull_target_bytes = bytes;
	ret = transport_region_register(s->conn, id, buf, bytes, TRANSPORT_ACCESS_REMOTE_READ);
	if (ret == -EOPNOTSUPP) {
		/* This side's memory is carried staged (rdma ?reg=copy): nothing here can be
		 * read remotely, guest RAM included. The target is announced without remote
		 * access, so the destination's test pull is refused and it reports the pull
		 * failed; auto stays with the pre-copy family (source_staged_check()). */
		ret = transport_region_register(s->conn, id, buf, bytes, TRANSPORT_ACCESS_LOCAL);
	}
	if (ret)
		return session_fail(s, ret, "cannot register the test pulls' region %u: %s", id,
				    session_strerror(ret));
	s->src.pull_target_registered = 1;
	return 0;
}

int source_pull_target_withdraw(struct rmig_session *s)
{
	uint32_t id;
	int ret;

	if (s->src.pull_target_registered && s->conn) {
		id = session_pull_target_id(s);
		ret = transport_region_deregister(s->conn, id);
		if (ret)
			return session_fail(s, ret, "cannot withdraw the test pulls' region %u: %s",
					    id, session_strerror(ret));
		s->src.pull_target_registered = 0;
	}
	/* A registration that could not be withdrawn keeps its buffer until the connection is
	 * closed, which takes the registration with it (source_run() comes here again then). */
	if (s->src.pull_target && (!s->src.pull_target_registered || !s->conn)) {
		munmap(s->src.pull_target, s->src.pull_target_bytes);
		s->src.pull_target = NULL;
		s->src.pull_target_registered = 0;
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

/* After this side registered its guest regions: one carried staged cannot be read by
 * post-copy's faults, so the post-copy family is out (auto leaves it, and asking for it fails
 * in source_method_setup() before anything moves). */
static void source_staged_check(struct rmig_session *s)
{
	for (size_t i = 0; i < s->nregions; i++) {
		struct transport_region region;

		if (transport_region_find(s->conn, 0, s->regions[i].id, &region) ||
		    !(region.flags & TRANSPORT_REGION_STAGED))
			continue;
		s->src.staged = 1;
		s->src.staged_region = s->regions[i].id;
		if (s->params.method == RMIG_METHOD_AUTO &&
		    (s->src.peer_flags & PROTOCOL_HELLO_POSTCOPY))
			rmig_log_warn(
				"source: region %u is carried staged (rdma ?reg=copy, or "
				"memory the kernel will not pin): post-copy's faults could not "
				"read it, auto will not choose the post-copy family",
				region.id);
		s->src.peer_flags &= ~PROTOCOL_HELLO_POSTCOPY;
		return;
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
	struct protocol_pull region_ack;
	struct protocol_hello_ack ack;
	char why[TRANSPORT_ERROR_MAX];
	const void *payload;
	size_t len;
	int ret, type;
	uint64_t t0 = session_now_us(), t_hello, t_table, t_registered;

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
	s->src.peer_flags = ack.flags;
	t_hello = session_now_us();
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

	for (size_t i = 0; i < s->nregions; i++)
		table[i] = (struct protocol_region){
			.id = s->regions[i].id,
			.page_shift = s->regions[i].page_shift,
			.length = s->regions[i].length,
		};
	/* The destination times pulls only for auto, and only when it can post-copy. */
	if (s->params.method == RMIG_METHOD_AUTO && (s->src.peer_flags & PROTOCOL_HELLO_POSTCOPY) &&
	    s->nregions) {
		ret = source_pull_target_expose(s);
		if (ret)
			return ret;
	}
	ret = session_ctrl_send(s, protocol_region_table_to_wire(table, s->nregions, s->msg_buf));
	if (ret)
		return ret;
	t_table = session_now_us();
	/* The source's own registration (local access: nothing of it goes to the peer) while the
	 * destination registers its regions for the table: pinning guest RAM takes time on both
	 * hosts (on a large guest, seconds), and the two need not follow each other. */
	for (size_t i = 0; i < s->nregions; i++) {
		struct session_region *r = &s->regions[i];

		ret = transport_region_register(s->conn, r->id, r->addr, r->length,
						TRANSPORT_ACCESS_LOCAL);
		if (ret)
			return session_fail(s, ret, "cannot register region %u (%zu bytes): %s",
					    r->id, r->length, session_strerror(ret));
	}
	t_registered = session_now_us();
	source_staged_check(s);
	type = session_ctrl_recv(s, "the region table answer", &payload, &len);
	if (type < 0)
		return type;
	/* Where a slow setup goes: the destination's registration is in the table's answer. */
	rmig_log_info("source: handshake %.1f ms: hello answered in %.1f ms, region table "
		      "answered %.1f ms after it went (this side's registration %.1f ms)",
		      (double)(session_now_us() - t0) / 1000.0, (double)(t_hello - t0) / 1000.0,
		      (double)(session_now_us() - t_table) / 1000.0,
		      (double)(t_registered - t_table) / 1000.0);
	if (type != PROTOCOL_REGION_ACK)
		return session_fail(s, -EPROTO, "%s answered the region table with %s",
				    s->conn->peer, protocol_type_name(type));
	ret = protocol_pull_from_wire(payload, len, &region_ack, why, sizeof(why));
	if (ret)
		return session_fail(s, ret, "%s broke the protocol: %s", s->conn->peer, why);
	if ((region_ack.flags & PROTOCOL_PULL_FAILED) && !s->src.staged) {
		/* Faults would be pulled the same way: the tail could not serve them. */
		rmig_log_warn("source: %s could not pull a page from here; auto will not choose "
			      "the post-copy family",
			      s->conn->peer);
		s->src.peer_flags &= ~PROTOCOL_HELLO_POSTCOPY;
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
		if (!r->src.holes && !holes_open(r->addr, r->length, r->page_size, &r->src.holes))
			rmig_log_info("source: region %u: a tmpfs file; its holes (pages never "
				      "written) are sent as zero pages unread",
				      r->id);
		config.holes = r->src.holes;
		ret = dirty_source_create(&config, &r->src.tracker);
		if (ret)
			return session_fail(s, ret, "region %u: cannot track dirty pages (%s): %s",
					    r->id, dirty_kind_name(config.kind),
					    session_strerror(ret));
		ret = dirty_source_start(r->src.tracker);
		if (ret)
			return session_fail(
				s, ret, "region %u: cannot start dirty tracking (%s): %s", r->id,
				dirty_kind_name(dirty_source_kind(r->src.tracker)),
				session_strerror(ret));
		rmig_log_info("source: region %u: dirty tracking by %s", r->id,
			      dirty_kind_name(dirty_source_kind(r->src.tracker)));
		/* enum dirty_kind and enum rmig_dirty_source number the kinds alike. The
		 * stats carry the first region's; each region's is asked for by id. */
		pthread_mutex_lock(&s->lock);
		r->src.dirty_kind = (uint32_t)dirty_source_kind(r->src.tracker);
		if (i == 0)
			s->stats.dirty_source = r->src.dirty_kind;
		pthread_mutex_unlock(&s->lock);
	}
	s->src.last_sample_us = session_now_us();
	return 0;
}

/* What the asked method needs from the destination, and the method record. */
static int source_method_setup(struct rmig_session *s, const struct method_ops *ops)
{
	uint32_t method = s->params.method;
	int ret = 0;

	if (ops->postcopy && s->src.staged)
		return session_fail(
			s, -EOPNOTSUPP,
			"method %s reads faulted pages from this side's RAM by RDMA "
			"READ, and region %u is carried staged (rdma ?reg=copy, or memory "
			"the kernel will not pin): use a pre-copy method, or rdma without "
			"reg=copy",
			session_method_name(method), s->src.staged_region);
	if (ops->postcopy && !(s->src.peer_flags & PROTOCOL_HELLO_POSTCOPY))
		return session_fail(s, -EOPNOTSUPP,
				    "method %s needs the destination to fill its RAM after resume "
				    "(userfaultfd), which %s cannot",
				    session_method_name(method), s->conn->peer);
	if (ops->needs & METHOD_NEEDS_SCHED)
		ret = source_sched_alloc(s, !!(ops->needs & METHOD_NEEDS_PREDICTOR));
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
	const struct method_ops *ops = method_ops_find(s->params.method), *ran;
	struct batch_pipeline *pipeline = NULL;
	uint64_t done_us, tracking_us, setup_us;
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
		ret = source_method_setup(s, ops);
	tracking_us = session_now_us();
	if (!ret && (ops->needs & METHOD_NEEDS_TRACKING))
		ret = source_trackers_start(s);
	session_round_end(s);
	if (ret)
		goto err_abort;
	setup_us = session_now_us();
	rmig_log_info("source: setup %.1f ms, of which starting the dirty tracking %.1f ms",
		      (double)(setup_us - s->start_us) / 1000.0,
		      (double)(setup_us - tracking_us) / 1000.0);
	pthread_mutex_lock(&s->lock);
	s->stats.setup_time_ms = (setup_us - s->start_us) / 1000u;
	pthread_mutex_unlock(&s->lock);

	ret = batch_pipeline_create(s->conn, s->params.bandwidth_limit, &pipeline);
	if (ret) {
		ret = session_fail(s, ret, "cannot start the batch sender: %s",
				   session_strerror(ret));
		goto err_abort;
	}
	session_status_set(s, RMIG_STATUS_ACTIVE);
	ret = ops->live(s, pipeline);
	if (ret)
		goto err_abort;
	ret = source_pause(s);
	if (ret)
		goto err_abort;
	/* The switchover of the method that ran: auto's choice for auto. */
	ran = method_ops_find(s->method);
	if (ran->switchover)
		ret = ran->switchover(s, pipeline);
	else
		ret = session_fail(s, -EINVAL, "method %s has no switchover",
				   session_method_name(s->method));
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
	source_pull_target_withdraw(s);
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
	if (s->src.throttle_percent && (s->callbacks.field_mask & RMIG_CB_THROTTLE))
		s->callbacks.throttle(s->opaque, 0);
	if (s->src.vm_paused && !s->point_of_no_return &&
	    (s->callbacks.field_mask & RMIG_CB_RESUME_VM)) {
		int resume = s->callbacks.resume_vm(s->opaque);

		if (resume < 0)
			rmig_log_error("source: the resume_vm callback returned %d after the "
				       "migration failed: the VM may still be paused",
				       resume);
		else
			s->src.vm_paused = 0;
	}
	session_histogram_update(s);
	session_disconnect(s);
	source_pull_target_withdraw(s);
out:
	return ret;
}
