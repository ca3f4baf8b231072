/* SPDX-License-Identifier: MIT */
/* bindings/xen/xen_recv.c - `rmig xen-recv`: the destination of `rmig xen-send`. It runs
 * `xl migrate-receive` with its stdin and stdout on two pipes, checks its banner, listens, and
 * writes the session's device state (Xen's stream) into it as it arrives. rmig's resume_vm is
 * the end of xl's handshake: wait for "ready" (the domain is built, paused), give the go, and
 * answer with xl's report: 0 when the domain runs here, XEN_CLI_DESTINATION_DISCARDED when xl
 * destroyed its copy. Any failure before that closes xl's stdin, and xl migrate-receive
 * destroys the half-built domain. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bindings/cli/cli.h"
#include "bindings/xen/xen_cli.h"
#include "bindings/xen/xen_stream.h"

struct xen_recv {
	struct xen_cli_options options;
	pid_t xl;
	int to_xl;		  /* xl migrate-receive's stdin */
	int from_xl;		  /* its stdout */
	struct xen_stream stream; /* what went to xl: walked, so garbage never reaches it */
};

static int xen_recv_spawn(struct xen_recv *x)
{
	int in[2], out[2];

	if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC))
		return -errno;
	x->xl = fork();
	if (x->xl < 0)
		return -errno;
	if (x->xl == 0) {
		if (dup2(in[0], STDIN_FILENO) < 0 || dup2(out[1], STDOUT_FILENO) < 0)
			_exit(127);
		execlp(x->options.xl, x->options.xl, "migrate-receive", (char *)NULL);
		fprintf(stderr, "rmig xen-recv: cannot run %s: %s\n", x->options.xl,
			strerror(errno));
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	x->to_xl = in[1];
	xen_cli_pipe_grow(x->to_xl);
	x->from_xl = out[0];
	return 0;
}

static int xen_recv_device_state_write(void *opaque, const void *buf, size_t len)
{
	struct xen_recv *x = opaque;
	int ret = xen_stream_feed_all(&x->stream, buf, len);

	if (ret) {
		xen_cli_say(&x->options, "refusing what arrived: %s", x->stream.error);
		return ret;
	}
	ret = xen_cli_write_all(x->to_xl, buf, len);
	if (ret)
		xen_cli_say(&x->options, "xl migrate-receive stopped reading the stream: %s",
			    strerror(-ret));
	return ret;
}

static int xen_recv_resume_vm(void *opaque)
{
	struct xen_recv *x = opaque;
	char status;
	int ret;

	ret = xen_cli_expect(x->from_xl, XEN_XL_READY, sizeof(XEN_XL_READY));
	if (ret) {
		xen_cli_say(&x->options, "xl migrate-receive did not build the domain");
		return -XEN_CLI_DESTINATION_DISCARDED;
	}
	ret = xen_cli_write_all(x->to_xl, XEN_XL_GO, sizeof(XEN_XL_GO));
	if (!ret)
		ret = xen_cli_expect(x->from_xl, XEN_XL_REPORT, sizeof(XEN_XL_REPORT));
	if (!ret)
		ret = xen_cli_read_exact(x->from_xl, &status, 1);
	if (ret) {
		/* xl may or may not have unpaused the domain: not a "discarded" answer. */
		xen_cli_say(&x->options, "no report from xl migrate-receive: %s", strerror(-ret));
		return ret;
	}
	if (status) {
		xen_cli_say(&x->options, "xl migrate-receive could not start the domain (%d)",
			    status);
		return -XEN_CLI_DESTINATION_DISCARDED;
	}
	xen_cli_say(&x->options, "the domain runs here");
	return 0;
}

int rmig_cli_xen_recv(int argc, char **argv)
{
	struct xen_recv x = {.xl = -1, .to_xl = -1, .from_xl = -1};
	struct rmig_callbacks callbacks = {
		.field_mask = RMIG_CB_DEVICE_STATE_WRITE | RMIG_CB_RESUME_VM,
		.device_state_write = xen_recv_device_state_write,
		.resume_vm = xen_recv_resume_vm,
	};
	rmig_session_t *session = NULL;
	char uri[256];
	int ret, wstatus = 0;

	ret = xen_cli_parse(argc, argv, 0, &x.options);
	if (ret)
		return ret > 0 ? 0 : 2;
	xen_stream_init(&x.stream);
	signal(SIGPIPE, SIG_IGN);
	ret = xen_recv_spawn(&x);
	if (ret) {
		xen_cli_say(&x.options, "cannot start xl migrate-receive: %s", strerror(-ret));
		return 1;
	}
	ret = xen_cli_expect(x.from_xl, XEN_XL_BANNER, XEN_XL_BANNER_LEN);
	if (ret) {
		xen_cli_say(&x.options, "no banner from %s migrate-receive", x.options.xl);
		goto out;
	}
	ret = xen_cli_session(&x.options, RMIG_ROLE_DESTINATION, &callbacks, &x, &session);
	if (ret)
		goto out;
	ret = rmig_session_listen(session, x.options.uri);
	if (ret) {
		xen_cli_say(&x.options, "cannot listen on %s: %s", x.options.uri,
			    rmig_last_error(session));
		goto out;
	}
	if (rmig_session_listen_uri(session, uri, sizeof(uri)))
		snprintf(uri, sizeof(uri), "%s", x.options.uri);
	xen_cli_say(&x.options, "listening on %s", uri);
	ret = rmig_session_run(session);
	xen_cli_report(&x.options, session, &x.stream);
	if (ret)
		xen_cli_say(&x.options, "migration failed: %s", rmig_last_error(session));
out:
	/* End of file on its stdin makes xl migrate-receive give up and destroy a domain it
	 * has not started. */
	close(x.to_xl);
	close(x.from_xl);
	if (waitpid(x.xl, &wstatus, 0) == x.xl && ret == 0 &&
	    !(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0)) {
		xen_cli_say(&x.options, "xl migrate-receive exited with status %d", wstatus);
		ret = -EIO;
	}
	if (session)
		xen_cli_session_destroy(session);
	return ret ? 1 : 0;
}
