/* SPDX-License-Identifier: MIT */
/* engine/dest.c - the destination side: accept the source, check its region table against the
 * regions added here, receive batches (commits: the data has landed) and track which pages
 * arrived, answer verification, take the device state and resume the VM; for the post-copy
 * family arm userfaultfd before the resume and run the tail after it (postcopy_dest.c). On
 * abort, cancel or a lost connection before the resume the destination is discarded:
 * resume_vm is never called. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define XXH_STATIC_LINKING_ONLY /* XXH64_state_t on the stack */
#include <xxhash.h>

#include "engine/bitmap.h"
#include "engine/dest.h"
#include "engine/dirty.h"
#include "engine/heartbeat.h"
#include "engine/page_hash.h"
#include "engine/postcopy.h"
#include "engine/postcopy_recover.h"
#include "engine/protocol.h"
#include "engine/session.h"
#include "engine/verify.h"
#include "transport/log.h"
#include "transport/memory.h"

#define SOURCE_LABEL "rmig-source"
#define DEST_LABEL "rmig-dest"

/* Fail with err and tell the source why. */
static int dest_refuse(struct rmig_session *s, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int dest_refuse(struct rmig_session *s, int err, const char *fmt, ...)
{
	char reason[PROTOCOL_REASON_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	session_fail(s, err, "%s", reason);
	session_abort_send(s, err, reason);
	return err;
}

/* The source may write guest RAM here only while rounds run: before the VM resumes here, and
 * when the migration is abandoned, its write access goes (rdma: from the MR, so a WRITE with
 * the old rkey fails at the NIC). Regions the post-copy arming already took back are skipped. */
static int dest_revoke_writes(struct rmig_session *s)
{
	int ret = 0;

	for (size_t i = 0; s->conn && i < s->nregions; i++) {
		int err = transport_region_revoke(s->conn, s->regions[i].id,
						  TRANSPORT_ACCESS_REMOTE_WRITE);

		if (err && err != -ENOENT && !ret)
			ret = err;
	}
	return ret;
}

/* The destination's RAM populated ahead where registering pins it (rdma): ibv_reg_mr faults in
 * every page of a region on one thread, and faulting in fresh guest RAM is most of what
 * registering takes (64 MiB under nested TCG: 0.57 to 0.71 s, against 5 to 9 ms for RAM already
 * present; zeroing is bound by one core's bandwidth). A thread per CPU (a slice of every region
 * each) does it while the source connects and says hello; the registration then finds the pages
 * there. The pages keep what they hold (MADV_POPULATE_WRITE). */
struct dest_populate_worker {
	struct dest_populate *p;
	pthread_t thread;
	unsigned index;
	int started, err;
	size_t bytes;
	uint64_t end_us; /* when it finished */
};

struct dest_populate {
	struct rmig_session *s;
	atomic_int stop;
	unsigned n;
	uint64_t start_us;
	struct dest_populate_worker workers[DIRTY_HASH_THREADS_MAX];
};

static void *dest_populate_main(void *arg)
{
	struct dest_populate_worker *w = arg;
	struct dest_populate *p = w->p;

	for (size_t i = 0; i < p->s->nregions && !w->err && !atomic_load(&p->stop); i++) {
		const struct session_region *r = &p->s->regions[i];
		size_t first = r->length * w->index / p->n,
		       last = r->length * (w->index + 1) / p->n;
		size_t done;

		first &= ~(r->page_size - 1);
		last = w->index + 1 == p->n ? r->length : last & ~(r->page_size - 1);
		if (last <= first)
			continue;
		w->err = transport_mem_populate((char *)r->addr + first, last - first, &p->stop,
						&done);
		w->bytes += done;
	}
	w->end_us = session_now_us();
	return NULL;
}

static void dest_populate_start(struct rmig_session *s)
{
	struct dest_populate *p;
	unsigned started = 0;

	if (!transport_listener_pins(s->listener) || !s->nregions || s->dst.populate)
		return;
	p = calloc(1, sizeof(*p));
	if (!p)
		return; /* the registration faults the pages in itself */
	p->s = s;
	p->n = session_pause_threads();
	p->start_us = session_now_us();
	atomic_init(&p->stop, 0);
	for (unsigned i = 0; i < p->n; i++) {
		struct dest_populate_worker *w = &p->workers[i];

		*w = (struct dest_populate_worker){.p = p, .index = i};
		w->started = !pthread_create(&w->thread, NULL, dest_populate_main, w);
		started += (unsigned)w->started;
	}
	if (!started) {
		free(p);
		return;
	}
	s->dst.populate = p;
}

/* Join the populating threads, first telling them to stop with stop; says what they did. */
static void dest_populate_finish(struct rmig_session *s, int stop)
{
	struct dest_populate *p = s->dst.populate;
	uint64_t t0 = session_now_us(), end_us = 0;
	size_t bytes = 0;
	int err = 0;

	if (!p)
		return;
	s->dst.populate = NULL;
	if (stop)
		atomic_store(&p->stop, 1);
	for (unsigned i = 0; i < p->n; i++) {
		struct dest_populate_worker *w = &p->workers[i];

		if (!w->started)
			continue;
		pthread_join(w->thread, NULL);
		bytes += w->bytes;
		err = err ? err : w->err;
		end_us = w->end_us > end_us ? w->end_us : end_us;
	}
	if (!stop)
		rmig_log_info("destination: %.1f MiB of RAM populated ahead of its registration "
			      "by %u thread(s) in %.1f ms, %.1f ms of it waited for%s%s",
			      (double)bytes / (1 << 20), p->n,
			      (double)(end_us - p->start_us) / 1000.0,
			      (double)(session_now_us() - t0) / 1000.0,
			      err ? "; the kernel would not populate the rest: " : "",
			      err ? strerror(-err) : "");
	free(p);
}

static int dest_accept(struct rmig_session *s)
{
	uint64_t deadline = session_now_us() + (uint64_t)s->params.timeout_ms * 1000u;
	struct transport_conn *conn;
	int ret;

	if (!s->listener)
		return session_fail(s, -ENOTCONN,
				    "the destination is not listening (rmig_session_listen)");
	for (;;) {
		if (session_cancelled(s))
			return session_fail(s, -ECANCELED,
					    "cancelled while waiting for the source");
		ret = transport_accept(s->listener, 100, &conn);
		if (ret == 0) {
			session_conn_set(s, conn);
			break;
		}
		if (ret != -ETIMEDOUT)
			return session_fail(s, ret, "accepting the source: %s",
					    session_strerror(ret));
		if (session_now_us() >= deadline)
			return session_fail(s, -ETIMEDOUT, "no source connected within %u ms",
					    s->params.timeout_ms);
	}
	/* One source per session. */
	transport_listener_close(s->listener);
	s->listener = NULL;
	return 0;
}

/* How this destination writes zero runs (r->dst.zero_advice), and their hash (r->dst.zero_hash,
 * so that no zero page is read for it). Clearing a zero run on fresh RAM faults in and clears
 * each page only to clear it again: where the memory allows it, pages that never arrived are
 * left reading zero without being allocated instead (a 1 GiB guest with 100 MiB in use: 900 MiB
 * the destination no longer touches). Not where the transport pinned the region (rdma: a
 * discarded page would leave the MR on the old one), nor for the post-copy family or auto
 * (their page states follow what is present), nor on private file mappings (a discarded page
 * would read the file) or raw frame mappings. */
static void dest_zero_setup(struct rmig_session *s, uint32_t method)
{
	int allowed = !s->conn->ops->registration_pins && !session_method_is_postcopy(method) &&
		      method != RMIG_METHOD_AUTO;

	for (size_t i = 0; i < s->nregions; i++) {
		struct session_region *r = &s->regions[i];
		struct dirty_memory_info info;

		r->dst.zero_hash = page_hash_zero(r->page_size);
		r->dst.zero_advice = 0;
		if (!allowed || dirty_memory_inspect(r->addr, r->length, &info) || info.pfnmap)
			continue;
		if (info.shared && !info.private)
			r->dst.zero_advice = MADV_REMOVE;
		else if (!info.shared && !info.private_file)
			r->dst.zero_advice = MADV_DONTNEED;
		if (r->dst.zero_advice)
			rmig_log_info("destination: region %u: zero pages not written yet are "
				      "discarded (%s), not cleared",
				      r->id,
				      r->dst.zero_advice == MADV_REMOVE ? "MADV_REMOVE"
									: "MADV_DONTNEED");
	}
}

/* Write a zero run: pages written before are cleared in place (cheaper than discarding them and
 * faulting them in again); a run whose first page never arrived is discarded where
 * r->dst.zero_advice says how, and cleared where the kernel refuses (then for good). */
static void dest_zero_run(struct session_region *r, uint64_t offset, uint64_t length)
{
	char *addr = (char *)r->addr + offset;

	if (r->dst.zero_advice && !bitmap_test(r->dst.arrived, offset >> r->page_shift)) {
		if (!madvise(addr, length, r->dst.zero_advice))
			return;
		rmig_log_info("destination: region %u: zero pages are cleared, not discarded "
			      "(madvise: %s)",
			      r->id, strerror(errno));
		r->dst.zero_advice = 0;
	}
	memset(addr, 0, length);
}

static int dest_handshake(struct rmig_session *s)
{
	struct protocol_region table[PROTOCOL_REGIONS_MAX];
	struct protocol_pull region_ack = {0};
	struct protocol_hello_ack ack = {0};
	struct protocol_hello hello;
	char why[TRANSPORT_ERROR_MAX];
	const void *payload;
	size_t len, count, bytes = 0;
	uint64_t t0;
	int ret, type;

	type = session_ctrl_recv(s, "the source's hello", &payload, &len);
	if (type < 0)
		return type;
	if (type != PROTOCOL_HELLO)
		return dest_refuse(s, -EPROTO, "the source opened with %s instead of hello",
				   protocol_type_name(type));
	ret = protocol_hello_from_wire(payload, len, &hello, why, sizeof(why));
	if (ret)
		return dest_refuse(s, ret, "the source broke the protocol: %s", why);
	if (hello.method > RMIG_METHOD_AUTO)
		return dest_refuse(s, -EOPNOTSUPP, "method %u is unknown to this version of rmig",
				   hello.method);
	s->dst.peer_method = hello.method;
	/* The destination runs the method the source asked for: its statistics say so. */
	pthread_mutex_lock(&s->lock);
	s->stats.method = hello.method;
	s->stats.method_used = hello.method;
	pthread_mutex_unlock(&s->lock);
	if (session_method_is_postcopy(hello.method) || hello.method == RMIG_METHOD_AUTO) {
		char reason[TRANSPORT_ERROR_MAX];

		ret = postcopy_dest_probe(s, reason, sizeof(reason));
		if (ret && hello.method != RMIG_METHOD_AUTO)
			return dest_refuse(s, -EOPNOTSUPP,
					   "method %s needs the destination to fill its RAM after "
					   "resume, and it cannot: %s",
					   session_method_name(hello.method), reason);
		if (ret)
			rmig_log_info("destination: auto may not choose the post-copy family: %s",
				      reason);
		else
			ack.flags |= PROTOCOL_HELLO_POSTCOPY;
	}
	if (!!(hello.flags & PROTOCOL_HELLO_KEY) != !!s->params.key_len)
		return dest_refuse(s, -EACCES, "a key is configured on the %s only",
				   s->params.key_len ? "destination" : "source");
	ret = protocol_nonce(ack.nonce);
	if (!ret && s->params.key_len) {
		ack.flags |= PROTOCOL_HELLO_KEY;
		ret = protocol_mac(s->key, s->params.key_len, DEST_LABEL, hello.nonce, ack.nonce,
				   ack.mac);
	}
	/* Region announcements are bound to this handshake before any can come: the source
	 * binds (source.c) only after checking our proof, and sends none before. */
	if (!ret && s->params.key_len) {
		uint8_t mine[PROTOCOL_MAC_LEN], theirs[PROTOCOL_MAC_LEN];

		ret = protocol_mac(s->key, s->params.key_len, "rmig-regions-d", hello.nonce,
				   ack.nonce, mine);
		if (!ret)
			ret = protocol_mac(s->key, s->params.key_len, "rmig-regions-s", hello.nonce,
					   ack.nonce, theirs);
		if (!ret)
			ret = transport_conn_bind(s->conn, mine, theirs);
	}
	if (ret)
		return dest_refuse(s, ret, "the destination cannot compute its key proof");
	ret = session_ctrl_send(s, protocol_hello_ack_to_wire(&ack, s->msg_buf));
	if (ret)
		return ret;
	if (s->params.key_len) {
		uint8_t mac[PROTOCOL_MAC_LEN], expected[PROTOCOL_MAC_LEN];

		type = session_ctrl_recv(s, "the source's key proof", &payload, &len);
		if (type < 0)
			return type;
		if (type != PROTOCOL_AUTH)
			return dest_refuse(s, -EPROTO,
					   "the source sent %s instead of its key proof",
					   protocol_type_name(type));
		ret = protocol_auth_from_wire(payload, len, mac, why, sizeof(why));
		if (ret)
			return dest_refuse(s, ret, "the source broke the protocol: %s", why);
		ret = protocol_mac(s->key, s->params.key_len, SOURCE_LABEL, ack.nonce, hello.nonce,
				   expected);
		if (ret || !protocol_mac_equal(mac, expected))
			return dest_refuse(s, -EACCES, "the source does not hold the session key");
	}
	/* A post-copy recovery names this migration by the two nonces. */
	ret = postcopy_recover_bind(s, hello.nonce, ack.nonce);
	if (ret)
		return dest_refuse(s, ret, "the destination cannot derive the session id");

	type = session_ctrl_recv(s, "the region table", &payload, &len);
	if (type < 0)
		return type;
	if (type != PROTOCOL_REGION_TABLE)
		return dest_refuse(s, -EPROTO, "the source sent %s instead of its region table",
				   protocol_type_name(type));
	ret = protocol_region_table_from_wire(payload, len, table, &count, why, sizeof(why));
	if (ret)
		return dest_refuse(s, ret, "the source broke the protocol: %s", why);
	for (size_t i = 0; i < count; i++) {
		struct session_region *r = session_region_find(s, table[i].id);

		if (!r)
			return dest_refuse(s, -ENOENT,
					   "region %u (%llu bytes) of the source is unknown on the "
					   "destination",
					   table[i].id, (unsigned long long)table[i].length);
		if (r->length != table[i].length)
			return dest_refuse(
				s, -EINVAL,
				"region %u length mismatch: %llu bytes on the source, %zu "
				"on the destination",
				r->id, (unsigned long long)table[i].length, r->length);
		if (r->page_shift != table[i].page_shift)
			return dest_refuse(
				s, -EINVAL,
				"region %u page size mismatch: %llu bytes on the source, "
				"%zu on the destination",
				r->id, 1ull << table[i].page_shift, r->page_size);
	}
	if (count != s->nregions) {
		for (size_t i = 0; i < s->nregions; i++) {
			size_t j;

			for (j = 0; j < count && table[j].id != s->regions[i].id; j++)
				;
			if (j == count)
				return dest_refuse(
					s, -ENOENT,
					"region %u of the destination is not sent by the "
					"source",
					s->regions[i].id);
		}
	}
	dest_populate_finish(s, 0);
	t0 = session_now_us();
	for (size_t i = 0; i < s->nregions; i++) {
		struct session_region *r = &s->regions[i];

		ret = transport_region_register(s->conn, r->id, r->addr, r->length,
						TRANSPORT_ACCESS_REMOTE_WRITE);
		if (ret)
			return dest_refuse(s, ret, "the destination cannot register region %u: %s",
					   r->id, session_strerror(ret));
		bytes += r->length;
	}
	rmig_log_info("destination: %zu region(s), %.1f MiB, registered in %.1f ms", s->nregions,
		      (double)bytes / (1 << 20), (double)(session_now_us() - t0) / 1000.0);
	dest_zero_setup(s, hello.method);
	/* The staging areas now, not with the VM paused (postcopy_dest_prepare()); auto's choice
	 * comes later, and it sets them up when it arms. */
	if (session_method_is_postcopy(hello.method)) {
		ret = postcopy_dest_prepare(s, hello.method == RMIG_METHOD_POSTCOPY, why,
					    sizeof(why));
		if (ret)
			return dest_refuse(s, ret, "post-copy: %s", why);
	}
	/* auto weighs post-copy's faults by what a pull takes on this connection. */
	if (hello.method == RMIG_METHOD_AUTO && (ack.flags & PROTOCOL_HELLO_POSTCOPY) &&
	    s->nregions) {
		ret = postcopy_dest_pull_probe(s, &region_ack);
		if (ret)
			return ret;
	}
	return session_ctrl_send(
		s, protocol_pull_to_wire(PROTOCOL_REGION_ACK, &region_ack, s->msg_buf));
}

/* Hash pages [first, first + n) as the batch committing now left them, for the verification:
 * every write to guest RAM here before the resume is a batch, and each commit rehashes its
 * pages, so the table holds what the pages hold. A zero run's pages all hash alike, and are
 * not read (a discarded page stays unallocated). */
static void dest_hash_run(struct session_region *r, uint64_t first, uint64_t n, int zero)
{
	const char *addr = (const char *)r->addr;

	for (uint64_t p = first; p < first + n; p++) {
		r->dst.hashes[p] = zero ? r->dst.zero_hash
					: page_hash(addr + (p << r->page_shift), r->page_size);
		bitmap_set(r->dst.hashed, p);
	}
}

static int dest_commit(struct rmig_session *s, const struct transport_msg *msg)
{
	uint64_t pages = 0;

	if (s->dst.postcopy)
		return dest_refuse(s, -EPROTO, "the source pushed batch %llu before the resume",
				   (unsigned long long)msg->batch_id);
	for (size_t i = 0; i < msg->nruns; i++) {
		const struct transport_run *run = &msg->runs[i];
		struct session_region *r = session_region_find(s, run->region_id);
		uint64_t first, n;

		/* The transport checked the run against the registered region; the page
		 * granularity is the engine's to check. */
		if (!r || (run->offset & (r->page_size - 1)) ||
		    (run->length & (r->page_size - 1)) || run->offset + run->length > r->length)
			return dest_refuse(
				s, -EPROTO,
				"batch %llu run %zu (region %u, offset %llu, length %llu) "
				"is not whole pages of a region here",
				(unsigned long long)msg->batch_id, i, run->region_id,
				(unsigned long long)run->offset, (unsigned long long)run->length);
		if (run->flags & TRANSPORT_RUN_ZERO)
			dest_zero_run(r, run->offset, run->length);
		first = run->offset >> r->page_shift;
		n = run->length >> r->page_shift;
		dest_hash_run(r, first, n, run->flags & TRANSPORT_RUN_ZERO);
		for (uint64_t p = first; p < first + n; p++)
			bitmap_set(r->dst.arrived, p);
		pages += n;
	}
	pthread_mutex_lock(&s->lock);
	s->stats.pages_received += pages;
	pthread_mutex_unlock(&s->lock);
	return 0;
}

static int dest_resume(struct rmig_session *s, const void *payload, size_t len,
		       int device_state_complete)
{
	struct protocol_resumed resumed = {0};
	struct protocol_resume msg;
	char why[TRANSPORT_ERROR_MAX];
	int ret;

	ret = protocol_resume_from_wire(payload, len, &msg, why, sizeof(why));
	if (ret)
		return dest_refuse(s, ret, "the source broke the protocol: %s", why);
	if (!device_state_complete)
		return dest_refuse(s, -EPROTO, "resume before the end of the device state");
	if (session_method_is_postcopy(s->dst.peer_method) ||
	    s->dst.peer_method == RMIG_METHOD_AUTO) {
		/* The page list and arming already checked arrived + announced = all. */
		if (!s->dst.postcopy && session_method_is_postcopy(s->dst.peer_method))
			return dest_refuse(s, -EPROTO,
					   "resume before the post-copy page list (method %s)",
					   session_method_name(s->dst.peer_method));
	}
	for (size_t i = 0; !s->dst.postcopy && i < s->nregions; i++) {
		struct session_region *r = &s->regions[i];
		size_t arrived = bitmap_count(r->dst.arrived, r->npages);

		if (arrived != r->npages)
			return dest_refuse(
				s, -EIO, "resume with %zu of %zu pages of region %u never received",
				r->npages - arrived, r->npages, r->id);
	}
	pthread_mutex_lock(&s->lock);
	s->stats.pages_mismatched = msg.pages_mismatched;
	pthread_mutex_unlock(&s->lock);
	pthread_mutex_lock(&s->lock);
	if (s->pause_us)
		s->stats.downtime_ms = (session_now_us() - s->pause_us) / 1000u;
	pthread_mutex_unlock(&s->lock);
	rmig_log_info("destination: resume after %.1f ms paused, %.1f ms of it answering "
		      "verification",
		      s->pause_us ? (double)(session_now_us() - s->pause_us) / 1000.0 : 0.0,
		      (double)s->stats.verify_answer_us / 1000.0);
	ret = dest_revoke_writes(s);
	if (ret)
		return dest_refuse(s, ret,
				   "the destination cannot revoke the source's write access "
				   "before the resume: %s",
				   session_strerror(ret));
	if (s->dst.postcopy)
		s->point_of_no_return = 1; /* from here cancelling cannot bring the VM back */
	if (s->callbacks.field_mask & RMIG_CB_RESUME_VM)
		ret = s->callbacks.resume_vm(s->opaque);
	resumed.status = ret < 0 ? ret : 0;
	resumed.pages_received = s->stats.pages_received;
	if (ret < 0)
		session_fail(s, ret, "the resume_vm callback returned %d (%s)", ret,
			     session_strerror(ret));
	/* The source waits for this either way: it resumes the VM there on failure. */
	if (session_ctrl_send(s, protocol_resumed_to_wire(&resumed, s->msg_buf)) == 0)
		transport_flush(s->conn, (int)s->params.timeout_ms);
	return ret < 0 ? ret : 0;
}

static int dest_receive(struct rmig_session *s)
{
	uint64_t device_offset = 0;
	int device_state_complete = 0;
	XXH64_state_t device_digest;
	char why[TRANSPORT_ERROR_MAX];
	int ret;

	XXH64_reset(&device_digest, 0);
	for (;;) {
		struct transport_msg msg;
		const void *payload;
		size_t len;
		int type;

		if (session_cancelled(s))
			return dest_refuse(s, -ECANCELED, "the destination was cancelled");
		/* The source's heartbeats keep this wait alive; its silence past the deadline
		 * ends it (-EHOSTDOWN). */
		ret = heartbeat_recv(s, &msg, 100);
		if (ret == -ETIMEDOUT)
			continue;
		if (ret == -EHOSTDOWN)
			return ret;
		if (ret)
			return session_fail(s, ret, "connection to the source %s: %s%s%s",
					    s->conn->peer, session_strerror(ret),
					    transport_error(s->conn)[0] ? ": " : "",
					    transport_error(s->conn));
		if (msg.type == TRANSPORT_MSG_COMMIT) {
			ret = dest_commit(s, &msg);
			if (ret)
				return ret;
			/* auto decides early in the bulk round: once its pages flow, time pulls
			 * under their load. */
			if (s->dst.peer_method == RMIG_METHOD_AUTO && s->stats.round == 1 &&
			    !s->dst.pull_probe_started) {
				s->dst.pull_probe_started = 1;
				ret = postcopy_dest_pull_probe_start(s);
				if (ret) {
					session_abort_send(s, ret, s->last_error);
					return ret;
				}
			}
			continue;
		}
		type = protocol_parse(msg.data, msg.len, &payload, &len, why, sizeof(why));
		if (type < 0)
			return dest_refuse(s, type, "the source broke the protocol: %s", why);
		switch (type) {
		case PROTOCOL_ROUND: {
			struct protocol_round round;

			ret = protocol_round_from_wire(payload, len, &round, why, sizeof(why));
			if (ret)
				return dest_refuse(s, ret, "the source broke the protocol: %s",
						   why);
			pthread_mutex_lock(&s->lock);
			s->stats.round = round.round;
			if (round.paused) {
				s->stats.status = RMIG_STATUS_DEVICE;
				s->pause_us = session_now_us();
			} else {
				s->stats.rounds = round.round;
			}
			pthread_mutex_unlock(&s->lock);
			session_progress(s, round.paused ? RMIG_EVENT_PAUSED : RMIG_EVENT_PROGRESS);
			break;
		}
		case PROTOCOL_ROUND_END: {
			struct protocol_round_end end, ack;

			ret = protocol_round_end_from_wire(payload, len, &end, why, sizeof(why));
			if (ret)
				return dest_refuse(s, ret, "the source broke the protocol: %s",
						   why);
			/* Their report goes before the acknowledgement. */
			postcopy_dest_pull_probe_stop(s);
			pthread_mutex_lock(&s->lock);
			ack.round = end.round;
			ack.pages = s->stats.pages_received;
			pthread_mutex_unlock(&s->lock);
			if (ack.pages != end.pages)
				return dest_refuse(
					s, -EPROTO,
					"round %u: %llu pages received, the source sent %llu",
					end.round, (unsigned long long)ack.pages,
					(unsigned long long)end.pages);
			ret = session_ctrl_send(s, protocol_round_end_to_wire(PROTOCOL_ROUND_ACK,
									      &ack, s->msg_buf));
			if (ret)
				return ret;
			session_progress(s, RMIG_EVENT_ROUND_END);
			break;
		}
		case PROTOCOL_DEVICE_STATE: {
			struct protocol_device_state chunk;

			ret = protocol_device_state_from_wire(payload, len, &chunk, why,
							      sizeof(why));
			if (ret)
				return dest_refuse(s, ret, "the source broke the protocol: %s",
						   why);
			if (chunk.offset != device_offset || device_state_complete)
				return dest_refuse(
					s, -EPROTO,
					"device state chunk at offset %llu, expected %llu",
					(unsigned long long)chunk.offset,
					(unsigned long long)device_offset);
			if (chunk.length &&
			    (s->callbacks.field_mask & RMIG_CB_DEVICE_STATE_WRITE)) {
				ret = s->callbacks.device_state_write(s->opaque, chunk.data,
								      chunk.length);
				if (ret < 0)
					return dest_refuse(
						s, ret,
						"the device_state_write callback returned %d", ret);
			}
			if (chunk.length)
				XXH64_update(&device_digest, chunk.data, chunk.length);
			if (chunk.last && chunk.digest != XXH64_digest(&device_digest))
				return dest_refuse(
					s, -EBADMSG,
					"device state damaged on the way: XXH64 %016llx of the %llu "
					"bytes received, %016llx of those the source sent",
					(unsigned long long)XXH64_digest(&device_digest),
					(unsigned long long)device_offset,
					(unsigned long long)chunk.digest);
			device_offset += chunk.length;
			device_state_complete = chunk.last;
			pthread_mutex_lock(&s->lock);
			s->stats.device_state_bytes = device_offset;
			pthread_mutex_unlock(&s->lock);
			break;
		}
		case PROTOCOL_VERIFY_REQ:
		case PROTOCOL_VERIFY_RUNS:
			ret = type == PROTOCOL_VERIFY_REQ
				      ? verify_dest_answer(s, payload, len)
				      : verify_dest_answer_runs(s, payload, len);
			if (ret) {
				session_abort_send(s, ret, s->last_error);
				return ret;
			}
			break;
		case PROTOCOL_RESUME:
			ret = dest_resume(s, payload, len, device_state_complete);
			if (!ret && s->dst.postcopy)
				ret = postcopy_dest_run(s);
			return ret;
		case PROTOCOL_POSTCOPY_PAGES:
		case PROTOCOL_POSTCOPY_BEGIN:
			if ((!session_method_is_postcopy(s->dst.peer_method) &&
			     s->dst.peer_method != RMIG_METHOD_AUTO) ||
			    s->stats.status != RMIG_STATUS_DEVICE || s->dst.postcopy)
				return dest_refuse(s, -EPROTO,
						   "the source sent %s outside a post-copy "
						   "switchover (method %s)",
						   protocol_type_name(type),
						   session_method_name(s->dst.peer_method));
			ret = type == PROTOCOL_POSTCOPY_PAGES ? postcopy_dest_pages(s, payload, len)
							      : postcopy_dest_arm(s, payload, len);
			if (ret) {
				session_abort_send(s, ret, s->last_error);
				return ret;
			}
			break;
		case PROTOCOL_ABORT: {
			struct protocol_abort abort_msg;

			ret = protocol_abort_from_wire(payload, len, &abort_msg, why, sizeof(why));
			if (ret)
				return session_fail(s, ret, "the source broke the protocol: %s",
						    why);
			return session_peer_aborted(s, &abort_msg);
		}
		default:
			return dest_refuse(s, -EPROTO, "the source sent %s during the migration",
					   protocol_type_name(type));
		}
	}
}

int dest_run(struct rmig_session *s)
{
	uint64_t done_us;
	int ret;

	session_status_set(s, RMIG_STATUS_SETUP);
	dest_populate_start(s);
	ret = dest_accept(s);
	if (ret)
		goto out;
	s->start_us = session_now_us();
	ret = dest_handshake(s);
	if (ret)
		goto out_discard;
	session_status_set(s, RMIG_STATUS_ACTIVE);
	ret = dest_receive(s);
	if (ret)
		goto out_discard;
	done_us = session_now_us();
	pthread_mutex_lock(&s->lock);
	s->stats.total_time_ms = (done_us - s->start_us) / 1000u;
	pthread_mutex_unlock(&s->lock);
	postcopy_dest_pull_probe_stop(s);
	session_disconnect(s);
	return 0;

out_discard:
	if (s->point_of_no_return) {
		session_error_append(s, "; the VM had resumed here without all of its RAM and "
					"cannot go on: stop it (its missing pages become "
					"inaccessible when the session is destroyed)");
	}
	/* The source's write access goes now (closing would take it too, after the post-copy
	 * halt and the close's own goodbye); before the resume nothing
	 * resumed here. The post-copy machinery stays until the session is destroyed: a guest
	 * touching a missing page waits rather than reading zeroes. */
	dest_revoke_writes(s);
	postcopy_dest_pull_probe_stop(s);
	postcopy_dest_halt(s);
	session_disconnect(s);
out:
	dest_populate_finish(s, 1);
	return ret;
}
