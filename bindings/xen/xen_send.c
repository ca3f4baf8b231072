/* SPDX-License-Identifier: MIT */
/* bindings/xen/xen_send.c - `rmig xen-send`: the transport command of
 * `xl migrate -s "" DOMAIN "exec rmig xen-send --uri URI"`. xl writes its migration stream to
 * our stdin and reads the receiver's answers from our stdout; xen-send carries the stream to
 * `rmig xen-recv` as the session's device state and speaks the receiver's side of xl's
 * handshake itself, from what the session tells it.
 *
 * Order, and why the source domain survives every failure before the destination resumes:
 *  1. connect to xen-recv (which already runs xl migrate-receive and has its banner); only then
 *     give xl the banner. A refused connection exits before xl suspends anything.
 *  2. the session's rounds cross the placeholder page; pause_vm does nothing (xl suspends
 *     the domain itself, inside its stream); device_state_read passes the stream through as
 *     xl writes it, walking its framing (xen_stream.c) to see libxl's END record.
 *  3. at END, before handing rmig the last chunk: "ready" to xl, which renames the domain
 *     away and answers "go". Then rmig asks the destination to resume: xen-recv gives its
 *     xl the go and answers with what that xl reports.
 *  4. success: the report with status 0 (xl destroys the source domain). The destination
 *     discarded its copy: status 1, then "go" back (xl renames and resumes the domain here).
 *     The session broke before the stream's end: exit, and xl, reading end of file, resumes
 *     the domain. It broke after the resume request: the outcome is unknown; exit without a
 *     report, and xl says to check both ends (its own rule for that window). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bindings/cli/cli.h"
#include "bindings/xen/xen_cli.h"
#include "bindings/xen/xen_stream.h"

struct xen_send {
	struct xen_cli_options options;
	struct xen_stream stream;
	int handshake; /* xl said "go": the domain here is renamed away */
};

static int xen_send_dirty_sync(void *opaque, uint32_t region_id, uint64_t *bitmap, size_t npages)
{
	(void)opaque;
	(void)region_id;
	(void)bitmap;
	(void)npages;
	return 0; /* the placeholder page is never written */
}

static int xen_send_pause_vm(void *opaque)
{
	(void)opaque;
	return 0; /* xl suspends the domain as part of its stream */
}

/* The stream has ended: tell xl the destination holds it, and take its go. */
static int xen_send_handshake(struct xen_send *x)
{
	int ret = xen_cli_write_all(STDOUT_FILENO, XEN_XL_READY, sizeof(XEN_XL_READY));

	if (!ret)
		ret = xen_cli_expect(STDIN_FILENO, XEN_XL_GO, sizeof(XEN_XL_GO));
	if (ret) {
		xen_cli_say(&x->options, "xl did not give the go after the stream: %s",
			    strerror(-ret));
		return ret;
	}
	x->handshake = 1;
	return 0;
}

static int xen_send_device_state_read(void *opaque, void *buf, size_t len)
{
	struct xen_send *x = opaque;
	size_t want;
	ssize_t n;
	int ret;

	if (x->stream.phase == XEN_STREAM_END)
		return x->handshake ? 0 : xen_send_handshake(x); /* 0: the stream is all sent */
	want = xen_stream_want(&x->stream, len);
	do
		n = read(STDIN_FILENO, buf, want);
	while (n < 0 && errno == EINTR);
	if (n <= 0) {
		xen_cli_say(&x->options,
			    "xl's stream ended after %llu bytes, before its end record",
			    (unsigned long long)x->stream.bytes);
		return n < 0 ? -errno : -EPIPE;
	}
	ret = xen_stream_feed(&x->stream, buf, (size_t)n);
	if (ret) {
		xen_cli_say(&x->options, "%s", x->stream.error);
		return ret;
	}
	return (int)n;
}

int rmig_cli_xen_send(int argc, char **argv)
{
	struct xen_send x = {0};
	struct rmig_callbacks callbacks = {
		.field_mask = RMIG_CB_DIRTY_SYNC | RMIG_CB_PAUSE_VM | RMIG_CB_DEVICE_STATE_READ,
		.dirty_sync = xen_send_dirty_sync,
		.pause_vm = xen_send_pause_vm,
		.device_state_read = xen_send_device_state_read,
	};
	rmig_session_t *session;
	char status;
	int ret;

	ret = xen_cli_parse(argc, argv, 1, &x.options);
	if (ret)
		return ret > 0 ? 0 : 2;
	xen_stream_init(&x.stream);
	xen_cli_pipe_grow(STDIN_FILENO);
	if (xen_cli_session(&x.options, RMIG_ROLE_SOURCE, &callbacks, &x, &session))
		return 1;
	ret = rmig_session_connect(session, x.options.uri);
	if (ret) {
		xen_cli_say(&x.options, "cannot reach xen-recv at %s: %s", x.options.uri,
			    rmig_last_error(session));
		goto out;
	}
	ret = xen_cli_write_all(STDOUT_FILENO, XEN_XL_BANNER, XEN_XL_BANNER_LEN);
	if (ret)
		goto out;
	ret = rmig_session_run(session);
	xen_cli_report(&x.options, session, &x.stream);
	if (!ret) {
		status = 0;
		ret = xen_cli_write_all(STDOUT_FILENO, XEN_XL_REPORT, sizeof(XEN_XL_REPORT));
		if (!ret)
			ret = xen_cli_write_all(STDOUT_FILENO, &status, 1);
		goto out;
	}
	xen_cli_say(&x.options, "migration failed: %s", rmig_last_error(session));
	if (x.handshake && ret == -XEN_CLI_DESTINATION_DISCARDED) {
		xen_cli_say(&x.options,
			    "the destination discarded its copy: the domain resumes here");
		status = 1;
		if (!xen_cli_write_all(STDOUT_FILENO, XEN_XL_REPORT, sizeof(XEN_XL_REPORT)) &&
		    !xen_cli_write_all(STDOUT_FILENO, &status, 1))
			xen_cli_write_all(STDOUT_FILENO, XEN_XL_GO, sizeof(XEN_XL_GO));
	} else if (x.handshake) {
		xen_cli_say(&x.options, "the destination was asked to resume the domain and did "
					"not answer: it may run there; check both hosts");
	}
out:
	xen_cli_session_destroy(session);
	return ret ? 1 : 0;
}
