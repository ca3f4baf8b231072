/* SPDX-License-Identifier: MIT */
/* engine/postcopy_dest.c - the destination side of the post-copy tail.
 *
 * Memory. Pages that land by RDMA WRITE or tcp recv() must never land in guest RAM registered
 * with userfaultfd: the kernel would block the receiving thread on its own fault, and a guest
 * could see a page half written. So once armed the guest regions are no longer transport
 * regions at all (deregistered: the source loses write access, RDMA unpins them); pages the
 * source announced as coming after resume are discarded (MADV_DONTNEED, or MADV_REMOVE for
 * shared memory) so that they are missing, and the guest RAM is registered in missing mode.
 * Pushed pages land in a staging region of the same length (anonymous, MAP_NORESERVE: only what
 * is in flight takes memory), announced to the source under a fresh id, and are copied into the
 * guest by UFFDIO_COPY (zero runs: UFFDIO_ZEROPAGE) after their commit, then released.
 *
 * Who moves what. The destination decides every page's way exactly once: a page is either
 * requested from the background push (PUSH_REQ, a bounded window ahead of what is installed)
 * or claimed by a fault and pulled with transport_read() (RDMA READ of the source's region, or
 * a tcp read request its responder thread serves), never both. A fault on a page already
 * requested waits for the push; a fault on any other missing page is pulled at once, with up
 * to POSTCOPY_FAULT_CLUSTER missing neighbours, and moves the push to that place, so the push
 * follows the guest. Stall time is measured per fault from the moment the fault thread reads it
 * to the moment the page is in.
 *
 * This file is the run after the resume (the push schedule, installing pushed pages, the
 * window, a lost connection's recovery); arming: postcopy_dest_arm.c; the fault thread:
 * postcopy_dest_fault.c; auto's test pulls: postcopy_dest_pull.c. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "engine/bitmap.h"
#include "engine/heartbeat.h"
#include "engine/postcopy_dest.h"
#include "engine/postcopy_recover.h"
#include "engine/protocol.h"
#include "transport/log.h"

static struct postcopy_region *postcopy_find_staging(struct postcopy_dest *pc, uint32_t id)
{
	for (size_t i = 0; i < pc->nregions; i++)
		if (pc->regions[i].staging_id == id)
			return &pc->regions[i];
	return NULL;
}

/* Ask for more pages while the window allows. */
static int postcopy_request_more(struct postcopy_dest *pc)
{
	struct rmig_session *s = pc->s;
	uint64_t *scratch = pc->scratch;
	int ret;

	for (;;) {
		uint64_t window_pages, max_pages, taken = 0, first_word = 0;
		struct postcopy_region *pr = NULL;
		uint32_t nwords = 0;
		size_t scanned = 0, index = 0;

		pthread_mutex_lock(&pc->lock);
		window_pages = pc->window_bytes / pc->regions[0].r->page_size;
		if (pc->outstanding >= window_pages / 2 || pc->missing == pc->outstanding) {
			pthread_mutex_unlock(&pc->lock);
			return 0;
		}
		max_pages = window_pages - pc->outstanding;
		if (max_pages > POSTCOPY_PUSH_MAX_PAGES)
			max_pages = POSTCOPY_PUSH_MAX_PAGES;
		/* From the cursor, the first region with pages nobody asked for. */
		for (; scanned <= pc->nregions && !nwords; scanned++) {
			size_t words;

			index = pc->cursor_region % pc->nregions;
			pr = &pc->regions[index];
			words = bitmap_words(pr->r->npages);
			for (size_t w = pc->cursor_page / 64; w < words && taken < max_pages; w++) {
				uint64_t bits =
					pr->missing[w] & ~pr->requested[w] & ~pr->claimed[w];

				if (!nwords && !bits)
					continue;
				if (!nwords)
					first_word = w;
				while ((uint64_t)__builtin_popcountll(bits) > max_pages - taken)
					bits &= ~(1ull << (63 - __builtin_clzll(bits)));
				scratch[nwords++] = bits;
				pr->requested[w] |= bits;
				taken += (uint64_t)__builtin_popcountll(bits);
				if (nwords == PROTOCOL_BITMAP_WORDS_MAX)
					break;
			}
			if (!nwords) {
				pc->cursor_region = index + 1;
				pc->cursor_page = 0;
			} else {
				/* The last word may hold pages this request left out. */
				pc->cursor_page = (size_t)(first_word + nwords - 1) * 64;
			}
		}
		pc->outstanding += taken;
		pthread_mutex_unlock(&pc->lock);
		if (!nwords)
			return 0;
		ret = session_ctrl_send(
			s, protocol_page_bitmap_to_wire(PROTOCOL_PUSH_REQ, pr->r->id, first_word,
							scratch, nwords, s->msg_buf));
		if (ret)
			return ret;
	}
}

static int postcopy_install(struct postcopy_dest *pc, const struct transport_msg *msg)
{
	struct rmig_session *s = pc->s;

	for (size_t i = 0; i < msg->nruns; i++) {
		const struct transport_run *run = &msg->runs[i];
		struct postcopy_region *pr = postcopy_find_staging(pc, run->region_id);
		struct session_region *r;
		size_t first, n, index;
		char *guest;
		int ret;

		if (!pr || (run->offset & (pr->r->page_size - 1)) ||
		    (run->length & (pr->r->page_size - 1)) ||
		    run->offset + run->length > pr->r->length)
			return session_fail(s, -EPROTO,
					    "post-copy batch %llu run %zu (region %u, offset %llu, "
					    "length %llu) is not whole pages of a staging region",
					    (unsigned long long)msg->batch_id, i, run->region_id,
					    (unsigned long long)run->offset,
					    (unsigned long long)run->length);
		r = pr->r;
		index = (size_t)(pr - pc->regions);
		first = run->offset >> r->page_shift;
		n = run->length >> r->page_shift;
		pthread_mutex_lock(&pc->lock);
		for (size_t p = first; p < first + n; p++) {
			if (!bitmap_test(pr->requested, p)) {
				pthread_mutex_unlock(&pc->lock);
				return session_fail(s, -EPROTO,
						    "post-copy: the source pushed region %u page "
						    "%zu, which was not asked for",
						    r->id, p);
			}
		}
		pthread_mutex_unlock(&pc->lock);
		guest = (char *)r->addr + run->offset;
		if ((run->flags & TRANSPORT_RUN_ZERO) && pr->zeropage)
			ret = postcopy_zero(pc->uffd, guest, run->length, r->page_size);
		else
			ret = postcopy_copy(pc->uffd, guest, (char *)pr->staging + run->offset,
					    run->length, r->page_size);
		if (ret)
			return session_fail(s, ret,
					    "post-copy: cannot place region %u pages %zu+%zu: %s",
					    r->id, first, n, strerror(-ret));
		if (!(run->flags & TRANSPORT_RUN_ZERO))
			madvise((char *)pr->staging + run->offset, run->length, MADV_DONTNEED);
		pthread_mutex_lock(&pc->lock);
		postcopy_installed_locked(pc, index, first, n, 1);
		pthread_mutex_unlock(&pc->lock);
	}
	return 0;
}

/* The window covers POSTCOPY_WINDOW_US of the push rate measured so far. */
static void postcopy_window_adapt(struct postcopy_dest *pc, uint64_t now)
{
	uint64_t elapsed = now - pc->rate_start_us, pushed, rate;

	if (elapsed < 50000)
		return;
	pthread_mutex_lock(&pc->lock);
	pushed = pc->pushed - pc->rate_start_pushed;
	pc->rate_start_pushed = pc->pushed;
	pthread_mutex_unlock(&pc->lock);
	pc->rate_start_us = now;
	rate = pushed * pc->regions[0].r->page_size * 1000000u / elapsed;
	if (!rate)
		return;
	pc->window_bytes = rate * POSTCOPY_WINDOW_US / 1000000u;
	if (pc->window_bytes < POSTCOPY_WINDOW_MIN)
		pc->window_bytes = POSTCOPY_WINDOW_MIN;
	if (pc->window_bytes > POSTCOPY_WINDOW_MAX)
		pc->window_bytes = POSTCOPY_WINDOW_MAX;
}

static void postcopy_stats_publish(struct postcopy_dest *pc, uint64_t now)
{
	struct rmig_session *s = pc->s;
	uint64_t faults, fetched, pushed, stall;

	pthread_mutex_lock(&pc->lock);
	faults = pc->faults;
	fetched = pc->fetched;
	pushed = pc->pushed;
	stall = pc->stall_us;
	pthread_mutex_unlock(&pc->lock);
	pthread_mutex_lock(&s->lock);
	s->stats.postcopy_faults = faults;
	s->stats.postcopy_pages_fetched = fetched;
	s->stats.postcopy_pages = fetched + pushed;
	s->stats.postcopy_stall_us = stall;
	s->stats.postcopy_time_ms = (now - pc->resumed_us) / 1000u;
	pthread_mutex_unlock(&s->lock);
}

/* After a recovery's proofs, over the new connection: the staging regions again (the lost
 * connection took their registration with it), the pages still missing (RECOVER_PAGES,
 * RECOVER_READY) and the staging table (POSTCOPY_READY); then the fault thread again. */
static int postcopy_dest_resync(struct postcopy_dest *pc)
{
	struct protocol_staging staging[PROTOCOL_REGIONS_MAX];
	struct protocol_recover_ready ready;
	struct rmig_session *s = pc->s;
	int ret;

	pthread_mutex_lock(&pc->lock);
	ready.pages_missing = pc->missing;
	pthread_mutex_unlock(&pc->lock);
	for (size_t i = 0; i < pc->nregions; i++) {
		struct postcopy_region *pr = &pc->regions[i];
		struct session_region *r = pr->r;
		size_t words = bitmap_words(r->npages);

		ret = transport_region_register(s->conn, pr->staging_id, pr->staging, r->length,
						TRANSPORT_ACCESS_REMOTE_WRITE);
		if (ret)
			return session_fail(s, ret,
					    "post-copy recovery: cannot register the staging area "
					    "of region %u: %s",
					    r->id, session_strerror(ret));
		pr->staging_registered = 1;
		staging[i] =
			(struct protocol_staging){.region_id = r->id, .staging_id = pr->staging_id};
		/* Only this thread installs pages while the fault thread is stopped: missing holds
		 * still. */
		for (size_t w = 0; w < words; w += PROTOCOL_BITMAP_WORDS_MAX) {
			uint32_t n = (uint32_t)(words - w < PROTOCOL_BITMAP_WORDS_MAX
							? words - w
							: PROTOCOL_BITMAP_WORDS_MAX);
			size_t pages = (size_t)n * 64 < r->npages - w * 64 ? (size_t)n * 64
									   : r->npages - w * 64;

			if (bitmap_empty(pr->missing + w, pages))
				continue;
			ret = session_ctrl_send(
				s, protocol_page_bitmap_to_wire(PROTOCOL_RECOVER_PAGES, r->id, w,
								pr->missing + w, n, s->msg_buf));
			if (ret)
				return ret;
		}
	}
	ret = session_ctrl_send(s, protocol_recover_ready_to_wire(&ready, s->msg_buf));
	if (!ret)
		ret = session_ctrl_send(
			s, protocol_postcopy_ready_to_wire(staging, pc->nregions, s->msg_buf));
	return ret;
}

/* The connection is lost (err) with the VM running here: stop the pulls, forget what the lost
 * connection was bringing, and wait for the source to come back (postcopy_recover.c). 0 when a
 * new connection carries the tail on; 1 when end_only and the source did not come back in its
 * shorter window (every page is here); else the error that loses the VM. */
static int postcopy_dest_recover(struct postcopy_dest *pc, int err, int end_only)
{
	struct rmig_session *s = pc->s;
	int ret;

	if (!postcopy_recover_possible(s, err))
		return err;
	postcopy_fault_thread_stop(pc);
	pthread_mutex_lock(&pc->lock);
	for (size_t i = 0; i < pc->nregions; i++) {
		struct postcopy_region *pr = &pc->regions[i];
		size_t bytes = bitmap_words(pr->r->npages) * sizeof(uint64_t);

		/* Asked for or being pulled on the lost connection: missing still, asked for
		 * again after the recovery. The guest waits on them meanwhile. */
		memset(pr->requested, 0, bytes);
		memset(pr->claimed, 0, bytes);
		pr->staging_registered = 0;
	}
	pc->outstanding = 0;
	pc->disconnected = 0;
	pthread_mutex_unlock(&pc->lock);
	postcopy_recover_begin(s, err, end_only);
	for (;;) {
		ret = postcopy_recover_accept(s);
		if (ret)
			return ret;
		ret = postcopy_dest_resync(pc);
		if (!ret)
			break;
		ret = postcopy_recover_retry(s, ret);
		if (ret)
			return ret;
	}
	ret = postcopy_fault_thread_start(pc);
	if (ret)
		return session_fail(s, ret, "post-copy: cannot start the fault thread again");
	postcopy_recover_end(s);
	return 0;
}

int postcopy_dest_run(struct rmig_session *s)
{
	struct postcopy_dest *pc = s->dst.postcopy;
	struct protocol_postcopy_done done;
	uint64_t last_progress, before_pushed = 0;
	char why[TRANSPORT_ERROR_MAX];
	const void *payload;
	size_t plen;
	int ret, type;

	pc->resumed_us = session_now_us();
	pc->rate_start_us = pc->resumed_us;
	last_progress = pc->resumed_us;
	session_status_set(s, RMIG_STATUS_POSTCOPY);
	session_progress(s, RMIG_EVENT_POSTCOPY);
	for (;;) {
		struct transport_msg msg;
		uint64_t missing, now, progress;
		int error, lost;

		pthread_mutex_lock(&pc->lock);
		missing = pc->missing;
		error = pc->error;
		lost = pc->disconnected;
		progress = pc->pushed + pc->fetched;
		pthread_mutex_unlock(&pc->lock);
		now = session_now_us();
		if (error)
			return session_fail(s, error, "post-copy failed with %llu pages missing",
					    (unsigned long long)missing);
		if (!missing)
			break;
		if (lost) {
			/* A pull failed: the connection is gone (or the source no longer serves
			 * reads, which only a new connection can tell). */
			ret = postcopy_dest_recover(pc, lost, 0);
			if (ret)
				return session_fail(s, ret,
						    "post-copy: lost the source with %llu pages "
						    "missing: %s",
						    (unsigned long long)missing,
						    session_strerror(ret));
			last_progress = pc->rate_start_us = session_now_us();
			continue;
		}
		if (progress != before_pushed) {
			before_pushed = progress;
			last_progress = now;
		} else if (now - last_progress > (uint64_t)s->params.timeout_ms * 1000u) {
			return session_fail(s, -ETIMEDOUT,
					    "post-copy: no page arrived for %u ms, %llu missing",
					    s->params.timeout_ms, (unsigned long long)missing);
		}
		postcopy_window_adapt(pc, now);
		ret = postcopy_request_more(pc);
		if (!ret) {
			if (now - s->last_progress_us >= SESSION_PROGRESS_INTERVAL_US) {
				postcopy_stats_publish(pc, now);
				session_progress(s, RMIG_EVENT_PROGRESS);
			}
			ret = heartbeat_recv(s, &msg, 20);
			if (ret == -ETIMEDOUT)
				continue;
		}
		if (ret) {
			int recovered;

			if (ret != -EHOSTDOWN && !postcopy_recover_possible(s, ret))
				return session_fail(s, ret,
						    "post-copy: lost the source %s with %llu pages "
						    "missing: %s%s%s",
						    s->conn->peer, (unsigned long long)missing,
						    session_strerror(ret),
						    transport_error(s->conn)[0] ? ": " : "",
						    transport_error(s->conn));
			recovered = postcopy_dest_recover(pc, ret, 0);
			if (recovered)
				return recovered;
			last_progress = pc->rate_start_us = session_now_us();
			continue;
		}
		if (msg.type == TRANSPORT_MSG_COMMIT) {
			ret = postcopy_install(pc, &msg);
			if (ret)
				return ret;
			continue;
		}
		type = protocol_parse(msg.data, msg.len, &payload, &plen, why, sizeof(why));
		if (type == PROTOCOL_ABORT) {
			struct protocol_abort abort_msg;

			if (protocol_abort_from_wire(payload, plen, &abort_msg, why, sizeof(why)))
				return session_fail(s, -EPROTO, "the source broke the protocol: %s",
						    why);
			return session_peer_aborted(s, &abort_msg);
		}
		return session_fail(s, -EPROTO, "the source sent %s during post-copy",
				    type < 0 ? why : protocol_type_name(type));
	}
	postcopy_stats_publish(pc, session_now_us());
	pthread_mutex_lock(&pc->lock);
	done = (struct protocol_postcopy_done){
		.pages_pushed = pc->pushed,
		.pages_fetched = pc->fetched,
		.faults = pc->faults,
		.stall_us = pc->stall_us,
	};
	pthread_mutex_unlock(&pc->lock);
	pthread_mutex_lock(&s->lock);
	s->stats.pages_received += done.pages_pushed + done.pages_fetched;
	pthread_mutex_unlock(&s->lock);
	/* Every page is here. A connection lost before the source acknowledged the end gets a
	 * shorter recovery: the source comes back to learn the end, or the migration completes
	 * without its word. */
	for (;;) {
		ret = session_ctrl_send(s, protocol_postcopy_done_to_wire(&done, s->msg_buf));
		if (!ret) {
			type = session_ctrl_recv(s, "the end of post-copy", &payload, &plen);
			if (type == PROTOCOL_POSTCOPY_END)
				break;
			if (type >= 0)
				return session_fail(s, -EPROTO,
						    "the source answered post-copy done with %s",
						    protocol_type_name(type));
			ret = type;
		}
		ret = postcopy_dest_recover(pc, ret, 1);
		if (ret == 1)
			break;
		if (ret)
			return ret;
	}
	postcopy_dest_destroy(s);
	return 0;
}
