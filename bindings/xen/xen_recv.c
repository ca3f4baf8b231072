/* SPDX-License-Identifier: MIT */
/* bindings/xen/xen_recv.c - `rmig xen-recv`: the destination of `rmig xen-send`. It runs
 * `xl migrate-receive` with its stdin and stdout on two pipes, checks its banner, listens, and
 * writes the session's device state (Xen's stream) into it as it arrives. rmig's resume_vm is
 * the end of xl's handshake: wait for "ready" (the domain is built, paused), give the go, and
 * answer with xl's report: 0 when the domain runs here, XEN_CLI_DESTINATION_DISCARDED when xl
 * destroyed its copy. Any failure before that closes xl's stdin, and xl migrate-receive
 * destroys the half-built domain.
 *
 * Depth 3 (rmig-xen-save --method) comes as two sessions: the first carries the own-RAM header
 * and the head of Xen's stream (no page data); its resume is "the new domain's memory is
 * mapped here" (rmig-xen-restore's prepare); the second carries the RAM into those mappings,
 * then the stream's tail, and its resume is xl's handshake as above. `rmig xen-recv` links no
 * Xen library and refuses depth 3, naming rmig-xen-restore. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bindings/cli/cli.h"
#include "bindings/xen/xen_cli.h"
#include "bindings/xen/xen_recv.h"
#include "bindings/xen/xen_stream.h"

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

/* Bytes of Xen's stream: walked, then handed to xl. */
static int xen_recv_to_xl(struct xen_recv *x, const uint8_t *buf, size_t len)
{
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

/* The own-RAM header, as it arrives after its fixed part: 0, or -EPROTO having said why. */
static int xen_recv_header(struct xen_recv *x, const uint8_t **buf, size_t *len)
{
	size_t take;

	if (!x->header) {
		long size = xen_own_ram_header_size_from(x->fixed);

		if (size < 0) {
			xen_cli_say(&x->options,
				    "refusing what arrived: a malformed own-RAM header");
			return -EPROTO;
		}
		x->header = malloc((size_t)size);
		x->layout = calloc(1, sizeof(*x->layout));
		if (!x->header || !x->layout)
			return -ENOMEM;
		x->header_len = (size_t)size;
		memcpy(x->header, x->fixed, XEN_OWN_RAM_FIXED_SIZE);
		x->header_have = XEN_OWN_RAM_FIXED_SIZE;
	}
	take = x->header_len - x->header_have < *len ? x->header_len - x->header_have : *len;
	memcpy(x->header + x->header_have, *buf, take);
	x->header_have += take;
	*buf += take;
	*len -= take;
	if (x->header_have < x->header_len)
		return 0;
	if (xen_own_ram_header_parse(x->header, x->header_len, x->layout)) {
		xen_cli_say(&x->options, "refusing what arrived: a malformed own-RAM header");
		return -EPROTO;
	}
	xen_cli_say(&x->options, "depth 3: domain %s, %llu MiB in %u ranges; Xen's stream follows",
		    x->layout->name, (unsigned long long)(x->layout->pages >> 8),
		    x->layout->nranges);
	return 0;
}

static int xen_recv_device_state_write(void *opaque, const void *data, size_t len)
{
	struct xen_recv *x = opaque;
	const uint8_t *buf = data;
	int ret;

	/* The first bytes say which: Xen's stream (xl's magic) or the own-RAM header. */
	while (!x->kind && len) {
		size_t want = XEN_OWN_RAM_FIXED_SIZE - x->fixed_have;
		size_t take = want < len ? want : len;

		memcpy(x->fixed + x->fixed_have, buf, take);
		x->fixed_have += take;
		buf += take;
		len -= take;
		if (x->fixed_have < XEN_OWN_RAM_MAGIC_LEN)
			continue;
		if (memcmp(x->fixed, XEN_OWN_RAM_MAGIC, XEN_OWN_RAM_MAGIC_LEN)) {
			x->kind = 1;
			ret = xen_recv_to_xl(x, x->fixed, x->fixed_have);
			if (ret)
				return ret;
		} else if (!x->own_ram) {
			xen_cli_say(&x->options,
				    "refusing what arrived: a depth-3 migration (rmig-xen-save "
				    "--method), whose RAM rmig writes into the new domain: run "
				    "rmig-xen-restore on this host instead (docs/xen.md)");
			return -EPROTO;
		} else if (x->fixed_have == XEN_OWN_RAM_FIXED_SIZE) {
			x->kind = 3;
		}
	}
	if (x->kind == 3 && (!x->header || x->header_have < x->header_len)) {
		ret = xen_recv_header(x, &buf, &len);
		if (ret)
			return ret;
	}
	return len ? xen_recv_to_xl(x, buf, len) : 0;
}

static uint64_t xen_recv_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int xen_recv_resume_vm(void *opaque)
{
	struct xen_recv *x = opaque;
	uint64_t start, ready;
	char status;
	int ret;

	if (x->kind == 3 && !x->prepared) {
		/* Depth 3's first session: its "resume" is the new domain's memory, mapped. */
		if (!x->layout || x->header_have != x->header_len) {
			xen_cli_say(&x->options, "the own-RAM header ended early");
			return -EPROTO;
		}
		ret = x->own_ram->prepare(x, x->layout);
		if (ret)
			return ret;
		x->prepared = 1;
		return 0;
	}

	start = xen_recv_now_ms();
	ret = xen_cli_expect(x->from_xl, XEN_XL_READY, sizeof(XEN_XL_READY));
	if (ret) {
		xen_cli_say(&x->options, "xl migrate-receive did not build the domain");
		return -XEN_CLI_DESTINATION_DISCARDED;
	}
	ready = xen_recv_now_ms();
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
	xen_cli_say(
		&x->options,
		"the domain runs here (xl ready %llu ms after the stream's end, running %llu ms "
		"after its go)",
		(unsigned long long)(ready - start),
		(unsigned long long)(xen_recv_now_ms() - ready));
	return 0;
}

/* Depth 3's second session: the RAM into the mapped domain, then the stream's tail. The first
 * session has closed its listener: the source tries again until this one listens. */
static int xen_recv_ram_session(struct xen_recv *x, const struct rmig_callbacks *callbacks,
				rmig_session_t **session_p)
{
	/* The destination follows the method and verification the source announces. */
	struct rmig_params tuning = {0};
	rmig_session_t *session;
	int ret;

	ret = xen_cli_session_ram(&x->options, RMIG_ROLE_DESTINATION, &tuning, callbacks, x,
				  &session);
	if (ret)
		return ret;
	*session_p = session;
	ret = x->own_ram->add_regions(x, session);
	if (ret)
		return ret;
	ret = rmig_session_listen(session, x->options.uri);
	if (ret) {
		xen_cli_say(&x->options, "cannot listen again on %s: %s", x->options.uri,
			    rmig_last_error(session));
		return ret;
	}
	xen_cli_say(&x->options, "the domain's memory is mapped; waiting for the RAM");
	return rmig_session_run(session);
}

int xen_recv_main(int argc, char **argv, const struct xen_recv_own_ram_ops *own_ram)
{
	struct xen_recv x = {.xl = -1, .to_xl = -1, .from_xl = -1, .own_ram = own_ram};
	struct rmig_callbacks callbacks = {
		.field_mask = RMIG_CB_DEVICE_STATE_WRITE | RMIG_CB_RESUME_VM,
		.device_state_write = xen_recv_device_state_write,
		.resume_vm = xen_recv_resume_vm,
	};
	rmig_session_t *session = NULL;
	char uri[256];
	int ret, wstatus = 0, placeholder = 1;

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
	if (!ret && x.kind == 3) {
		xen_cli_session_destroy(session);
		session = NULL;
		placeholder = 0;
		ret = xen_recv_ram_session(&x, &callbacks, &session);
	}
	if (session)
		xen_cli_report(&x.options, session, &x.stream);
	if (ret)
		xen_cli_say(&x.options, "migration failed: %s",
			    session ? rmig_last_error(session) : rmig_strerror(ret));
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
	if (x.own_ram && x.prepared)
		x.own_ram->release(&x);
	if (session && placeholder)
		xen_cli_session_destroy(session);
	else if (session)
		rmig_session_destroy(session);
	free(x.header);
	free(x.layout);
	return ret ? 1 : 0;
}

int rmig_cli_xen_recv(int argc, char **argv)
{
	return xen_recv_main(argc, argv, NULL);
}
