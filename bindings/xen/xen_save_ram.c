/* SPDX-License-Identifier: MIT */
/* bindings/xen/xen_save_ram.c - `rmig-xen-save --method precopy|predict`: depth 3 of
 * docs/xen.md, the source. rmig owns the domain's RAM; Xen's stream carries the rest.
 *
 * Two rmig sessions to the same `rmig-xen-restore`, one after the other:
 *  A. the head: the own-RAM header (the domain's name and its populated frame ranges, which
 *     become the regions), then the start of the stream xl would send: xl's header with the
 *     configuration, libxl's header, LIBXC_CONTEXT, and libxc's stream up to PAGE_DATA
 *     records of type XALLOC for every frame (no page contents). The destination hands it to
 *     its `xl migrate-receive`, whose libxc populates the new domain's memory; once it has,
 *     the destination maps that memory and answers A's resume.
 *  B. the RAM: the domain's frames, mapped read-only here, are rmig's regions; Xen's log-dirty
 *     is the dirty_sync; rmig's method (pre-copy or predict) runs the rounds and its stop rule
 *     decides when; pause_vm suspends the domain; the device state is the rest of libxc's
 *     stream (TSC, HVM context, HVM parameters, END) and libxl's END; the destination's
 *     resume is xl's "ready"/"go" handshake, as at depths 1 and 2.
 * Failures leave the domain where xl would: running here until the resume request (resumed if
 * it was suspended), unknown when the resume request went unanswered. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bindings/xen/xen_save.h"

/* Wait before a new try to reach the destination's second listener: it listens again on the
 * same address once the first session has closed there. */
#define XEN_SAVE_RECONNECT_FIRST_MS 5u
#define XEN_SAVE_RECONNECT_MAX_MS 200u

static int xen_save_ram_head(struct xen_save *x)
{
	size_t header_len =
		xen_own_ram_header_size(strlen(x->ram.layout->name), x->ram.layout->nranges);
	size_t head_len = xen_stream_head_size(x->config_len);
	uint8_t *buf = malloc(header_len + head_len);
	long n, m = 0;
	int ret;

	if (!buf)
		return -ENOMEM;
	n = xen_own_ram_header_write(buf, header_len, x->ram.layout);
	if (n >= 0)
		m = xen_stream_write_head(buf + n, head_len, x->config, x->config_len);
	ret = n < 0 ? (int)n : m < 0 ? (int)m : xen_buf_put(&x->out, buf, (size_t)(n + m));
	free(buf);
	if (!ret)
		ret = xen_ram_write_libxc_head(&x->ram, &x->out);
	/* The walker checks what this end wrote is Xen's framing, and hashes it for the report
	 * (the destination prints the same hash of what it handed its xl). */
	if (!ret && xen_stream_feed_all(&x->stream, x->out.data + n, x->out.len - (size_t)n)) {
		xen_cli_say(&x->options, "the stream written is not Xen's: %s", x->stream.error);
		ret = -EPROTO;
	}
	return ret;
}

static int xen_save_ram_serve(struct xen_save *x, void *buf, size_t len)
{
	size_t n = x->out.len - x->out_done;

	if (n > len)
		n = len;
	memcpy(buf, x->out.data + x->out_done, n);
	x->out_done += n;
	return (int)n;
}

/* ---- session A: the head ---- */

static int xen_save_head_read(void *opaque, void *buf, size_t len)
{
	return xen_save_ram_serve(opaque, buf, len);
}

/* ---- session B: the RAM ---- */

static int xen_save_ram_dirty_sync(void *opaque, uint32_t region_id, uint64_t *bitmap,
				   size_t npages)
{
	struct xen_save *x = opaque;
	int ret = xen_ram_dirty_sync(&x->ram, region_id, bitmap, npages);

	if (ret)
		xen_cli_say(&x->options, "log-dirty of domain %u: %s", x->domid, strerror(-ret));
	return ret;
}

static int xen_save_ram_pause(void *opaque)
{
	struct xen_save *x = opaque;
	uint64_t start = xen_save_now_us();

	if (xen_save_suspend(x) != 1)
		return -ETIMEDOUT;
	x->suspend_us = xen_save_now_us();
	fprintf(stderr, "rmig xen-save: the suspend took %llu ms\n",
		(unsigned long long)((x->suspend_us - start) / 1000u));
	return 0;
}

static int xen_save_ram_tail_read(void *opaque, void *buf, size_t len)
{
	struct xen_save *x = opaque;
	uint8_t record[XEN_STREAM_RECORD_HEADER_SIZE];
	int ret;

	if (x->out_done == x->out.len && x->stream.phase == XEN_STREAM_END) {
		if (x->renamed)
			return 0;
		/* All of it sent: xl's step before its go, then rmig asks for the resume. */
		fprintf(stderr, "rmig xen-save: the stream's tail sent %llu ms after the suspend\n",
			(unsigned long long)((xen_save_now_us() - x->suspend_us) / 1000u));
		ret = xen_save_rename(x, 1);
		if (ret)
			return ret;
		x->renamed = 1;
		return 0;
	}
	if (x->out_done == x->out.len) {
		/* First call, the domain suspended: the state libxc would write last. */
		fprintf(stderr, "rmig xen-save: the last pages sent %llu ms after the suspend\n",
			(unsigned long long)((xen_save_now_us() - x->suspend_us) / 1000u));
		x->out.len = 0;
		x->out_done = 0;
		ret = xen_ram_write_libxc_tail(&x->ram, &x->out);
		if (ret) {
			xen_cli_say(&x->options, "cannot read domain %u's state: %s", x->domid,
				    strerror(-ret));
			return ret;
		}
		xen_stream_write_record_header(record, XEN_STREAM_RECORD_END, 0);
		ret = xen_buf_put(&x->out, record, sizeof(record));
		if (ret)
			return ret;
		if (xen_stream_feed_all(&x->stream, x->out.data, x->out.len) ||
		    x->stream.phase != XEN_STREAM_END) {
			xen_cli_say(&x->options, "the stream's end is not Xen's: %s",
				    x->stream.error[0] ? x->stream.error : "no END record");
			return -EPROTO;
		}
	}
	return xen_save_ram_serve(x, buf, len);
}

static void xen_save_ram_progress(void *opaque, uint32_t event, const struct rmig_stats *st)
{
	struct xen_save *x = opaque;

	if (event == RMIG_EVENT_SYNC)
		fprintf(stderr,
			"rmig xen-save: round %u: %llu pages dirty, %llu held, %.1f MB/s, "
			"projected %llu ms: %s\n",
			st->round, (unsigned long long)(st->remaining_bytes / 4096u),
			(unsigned long long)st->pages_held, (double)st->bandwidth / 1e6,
			(unsigned long long)st->projected_downtime_ms,
			st->stop_reason ? "suspend and copy" : "another round");
	else if (event == RMIG_EVENT_PAUSED)
		fprintf(stderr, "rmig xen-save: domain %u suspended after %u rounds\n", x->domid,
			st->rounds);
}

static int xen_save_retryable(int ret)
{
	return ret == -ECONNREFUSED || ret == -ECONNRESET || ret == -ECONNABORTED || ret == -EPIPE;
}

/* Session B: the destination listens again on the same address once session A has closed
 * there, a moment after A's end here: try again while the connection is refused (or reset by
 * A's closing listener), up to --timeout-ms. */
static int xen_save_ram_connect(struct xen_save *x, const struct rmig_params *tuning,
				const struct rmig_callbacks *callbacks, rmig_session_t **session_p)
{
	uint64_t deadline = xen_save_now_us() + (uint64_t)x->options.timeout_ms * 1000u;
	uint32_t wait_ms = XEN_SAVE_RECONNECT_FIRST_MS, tries = 0;

	for (;;) {
		rmig_session_t *session;
		int ret = xen_cli_session_ram(&x->options, RMIG_ROLE_SOURCE, tuning, callbacks, x,
					      &session);

		if (ret)
			return ret;
		ret = xen_ram_add_regions(&x->ram, session);
		if (ret) {
			xen_cli_say(&x->options, "cannot add domain %u's memory: %s", x->domid,
				    rmig_last_error(session));
			rmig_session_destroy(session);
			return ret;
		}
		tries++;
		ret = rmig_session_connect(session, x->options.uri);
		if (!ret) {
			*session_p = session;
			return 0;
		}
		if (!xen_save_retryable(ret) || xen_save_now_us() >= deadline) {
			xen_cli_say(&x->options,
				    "cannot reach rmig-xen-restore for the RAM (%u tries): %s",
				    tries, rmig_last_error(session));
			rmig_session_destroy(session);
			return ret;
		}
		rmig_session_destroy(session);
		nanosleep(&(struct timespec){0, (long)wait_ms * 1000000L}, NULL);
		wait_ms = wait_ms * 2 > XEN_SAVE_RECONNECT_MAX_MS ? XEN_SAVE_RECONNECT_MAX_MS
								  : wait_ms * 2;
	}
}

static void xen_save_ram_report(struct xen_save *x, rmig_session_t *session, uint64_t start_us)
{
	struct rmig_stats st = {.struct_size = sizeof(st)};

	if (rmig_session_stats(session, &st))
		return;
	xen_cli_say(
		&x->options,
		"method %s, %u rounds, stopped by %s, %llu pages sent (%llu more than once), "
		"%llu held at the stop, %llu verified at the switchover and %llu of them resent, "
		"Xen's stream %llu bytes (xxh64 %016llx), bytes on the wire %llu (RAM session "
		"%llu), rmig's pause %llu ms, total time %llu ms, %s",
		x->method == RMIG_METHOD_PREDICT ? "predict" : "precopy", st.rounds,
		st.stop_reason == RMIG_STOP_NONE ? "no stop"
						 : rmig_stop_reason_name(st.stop_reason),
		(unsigned long long)st.pages_sent, (unsigned long long)st.pages_sent_multiple,
		(unsigned long long)st.pages_held, (unsigned long long)st.pages_verified,
		(unsigned long long)st.pages_mismatched, (unsigned long long)x->stream.bytes,
		(unsigned long long)xen_stream_digest(&x->stream),
		(unsigned long long)(st.bytes + x->head_wire_bytes), (unsigned long long)st.bytes,
		(unsigned long long)st.downtime_ms,
		(unsigned long long)((xen_save_now_us() - start_us) / 1000u),
		rmig_status_name(st.status));
}

int xen_save_own_ram(struct xen_save *x, uint64_t start_us)
{
	struct rmig_callbacks head_callbacks = {
		.field_mask = RMIG_CB_DIRTY_SYNC | RMIG_CB_PAUSE_VM | RMIG_CB_DEVICE_STATE_READ,
		.dirty_sync = xen_save_dirty_sync,
		.pause_vm = xen_save_pause_vm,
		.device_state_read = xen_save_head_read,
	};
	struct rmig_callbacks ram_callbacks = {
		.field_mask = RMIG_CB_DIRTY_SYNC | RMIG_CB_PAUSE_VM | RMIG_CB_DEVICE_STATE_READ |
			      RMIG_CB_PROGRESS,
		.dirty_sync = xen_save_ram_dirty_sync,
		.pause_vm = xen_save_ram_pause,
		.device_state_read = xen_save_ram_tail_read,
		.progress = xen_save_ram_progress,
	};
	struct rmig_params tuning = {
		.field_mask = RMIG_PARAM_METHOD | RMIG_PARAM_POLICY | RMIG_PARAM_DOWNTIME_MS |
			      RMIG_PARAM_MAX_ROUNDS | RMIG_PARAM_DIRTY_SOURCE | RMIG_PARAM_VERIFY,
		.method = x->method,
		.policy = x->rule.policy,
		.downtime_ms = x->rule.downtime_ms,
		.max_rounds = x->rule.max_rounds,
		.dirty_source = RMIG_DIRTY_HYPERVISOR,
		.verify = x->verify,
	};
	struct rmig_stats st = {.struct_size = sizeof(st)};
	rmig_session_t *session = NULL;
	char why[160] = "";
	int ret;

	xen_stream_init(&x->stream);
	ret = xen_ram_open(&x->ram, x->xch, x->domid);
	if (!ret)
		ret = xen_ram_scan(&x->ram, x->domain);
	if (!ret)
		ret = xen_ram_map(&x->ram, 0, why, sizeof(why));
	if (ret) {
		xen_cli_say(&x->options, "cannot map domain %u's memory: %s", x->domid,
			    why[0] ? why : strerror(-ret));
		return ret;
	}
	ret = xen_save_ram_head(x);
	if (ret) {
		xen_cli_say(&x->options, "cannot write the stream's head: %s", strerror(-ret));
		return ret;
	}
	xen_cli_say(&x->options,
		    "migrating %s (domain %u, %llu MiB in %u ranges) to %s: rmig owns the RAM, "
		    "method %s",
		    x->domain, x->domid, (unsigned long long)(x->ram.layout->pages >> 8),
		    x->ram.layout->nranges, x->options.uri,
		    x->method == RMIG_METHOD_PREDICT ? "predict" : "precopy");

	/* A: the head, until the destination has the domain's memory mapped. */
	ret = xen_cli_session(&x->options, RMIG_ROLE_SOURCE, &head_callbacks, x, &session);
	if (ret)
		return ret;
	ret = rmig_session_connect(session, x->options.uri);
	if (ret) {
		xen_cli_say(&x->options, "cannot reach rmig-xen-restore at %s: %s", x->options.uri,
			    rmig_last_error(session));
		xen_cli_session_destroy(session);
		return ret;
	}
	ret = rmig_session_run(session);
	if (!rmig_session_stats(session, &st))
		x->head_wire_bytes = st.bytes;
	if (ret) {
		xen_cli_say(&x->options, "the destination did not build the domain: %s",
			    rmig_last_error(session));
		xen_cli_session_destroy(session);
		xen_cli_say(&x->options, "domain %u was not suspended: it runs on here", x->domid);
		return ret;
	}
	xen_cli_session_destroy(session);
	xen_cli_say(&x->options,
		    "the destination built the domain (%llu bytes of stream head); "
		    "the RAM follows",
		    (unsigned long long)x->out.len);

	/* B: the RAM, rmig's rounds, the suspend, the stream's tail. */
	x->out.len = 0;
	x->out_done = 0;
	ret = xen_save_ram_connect(x, &tuning, &ram_callbacks, &session);
	if (ret) {
		xen_cli_say(&x->options, "domain %u was not suspended: it runs on here", x->domid);
		return ret;
	}
	ret = rmig_session_run(session);
	xen_ram_logdirty_stop(&x->ram);
	xen_save_ram_report(x, session, start_us);
	if (!ret) {
		xen_cli_say(&x->options, "the domain runs at the destination; destroying it here");
		if (libxl_domain_destroy(x->ctx, x->domid, NULL))
			xen_cli_say(&x->options, "could not destroy domain %u here", x->domid);
		rmig_session_destroy(session);
		return 0;
	}
	xen_cli_say(&x->options, "migration failed: %s", rmig_last_error(session));
	rmig_session_destroy(session);
	if (x->renamed && ret != -XEN_CLI_DESTINATION_DISCARDED) {
		xen_cli_say(&x->options,
			    "the destination was asked to resume the domain and did not answer: "
			    "it may run there; domain %u is left suspended here as "
			    "%s--migratedaway; check both hosts",
			    x->domid, x->domain);
		return ret;
	}
	if (x->renamed)
		xen_save_rename(x, 0);
	if (atomic_load(&x->suspended)) {
		if (libxl_domain_resume(x->ctx, x->domid, 1, NULL))
			xen_cli_say(&x->options, "could not resume domain %u here", x->domid);
		else
			xen_cli_say(&x->options, "domain %u resumed here", x->domid);
	} else {
		xen_cli_say(&x->options, "domain %u was not suspended: it runs on here", x->domid);
	}
	return ret;
}
