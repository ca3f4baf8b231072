/* SPDX-License-Identifier: MIT */
/* bindings/xen/xen_cli.c - options, the session and xl's pipes for `rmig xen-send` and
 * `rmig xen-recv` (docs/xen.md). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bindings/cli/options.h"
#include "bindings/cli/credentials.h"
#include "bindings/xen/xen_cli.h"
#include "bindings/xen/xen_stream.h"

#define XEN_CLI_PAGE 4096u
#define XEN_CLI_DEFAULT_TIMEOUT_MS 120000u

/* The placeholder region of each session (one process runs one session). */
static void *xen_cli_page;

static void xen_cli_usage(int source)
{
	if (source)
		fprintf(stderr,
			"usage: xl migrate -s \"\" DOMAIN \"exec rmig xen-send --uri URI [options]\"\n"
			"  carry a live Xen migration's stream to `rmig xen-recv` over rmig's\n"
			"  transports; stdin and stdout are xl's pipes\n"
			"  --uri URI          where rmig xen-recv listens (tcp://host:port,\n"
			"                     rdma://host:port)\n"
			"  --timeout-ms N     longest wait for the peer at any step (default %u)\n"
			"  --key-file FILE    shared secret (1 to 64 bytes), same on both hosts;\n"
			"                     required unless --insecure (or RMIG_KEY_FILE)\n"
			"  --insecure         no authentication: any host reaching the port can\n"
			"                     write (or read) the domain's stream\n"
			"  --peer-timeout S   a silent peer is dead after S seconds (default 10)\n" CLI_TLS_USAGE,
			XEN_CLI_DEFAULT_TIMEOUT_MS);
	else
		fprintf(stderr,
			"usage: rmig xen-recv --listen URI [options]\n"
			"  receive a domain from `rmig xen-send`: runs `xl migrate-receive` and feeds\n"
			"  it Xen's stream\n"
			"  --listen URI       where to wait for xen-send (tcp://addr:port,\n"
			"                     rdma://addr:port)\n"
			"  --xl PATH          the xl program (default xl)\n"
			"  --timeout-ms N     longest wait for the peer at any step (default %u)\n"
			"  --key-file FILE    shared secret (1 to 64 bytes), same on both hosts;\n"
			"                     required unless --insecure (or RMIG_KEY_FILE)\n"
			"  --insecure         no authentication: any host reaching the port can\n"
			"                     write (or read) the domain's stream\n"
			"  --peer-timeout S   a silent peer is dead after S seconds (default 10)\n" CLI_TLS_USAGE,
			XEN_CLI_DEFAULT_TIMEOUT_MS);
}

int xen_cli_parse(int argc, char **argv, int source, struct xen_cli_options *o)
{
	enum { O_URI = 256, O_LISTEN, O_XL, O_INSECURE, O_PEER_TIMEOUT };
	static const struct option send_options[] = {
		{"uri", required_argument, NULL, O_URI},
		{"insecure", no_argument, NULL, O_INSECURE},
		{"peer-timeout", required_argument, NULL, O_PEER_TIMEOUT},
		{NULL, 0, NULL, 0},
	};
	static const struct option recv_options[] = {
		{"listen", required_argument, NULL, O_LISTEN},
		{"xl", required_argument, NULL, O_XL},
		{"insecure", no_argument, NULL, O_INSECURE},
		{"peer-timeout", required_argument, NULL, O_PEER_TIMEOUT},
		{NULL, 0, NULL, 0},
	};
	struct option longopts[CLI_OPTIONS_MAX];
	struct cli_migration mig;
	int c, ret;

	memset(o, 0, sizeof(*o));
	o->command = source ? "xen-send" : "xen-recv";
	o->xl = "xl";
	cli_migration_defaults(&mig);
	mig.timeout_ms = XEN_CLI_DEFAULT_TIMEOUT_MS;
	if (cli_options_table(source ? send_options : recv_options,
			      CLI_TAKE_TIMEOUT | CLI_TAKE_KEY_FILE | CLI_TAKE_HELP | CLI_TAKE_TLS,
			      longopts, CLI_OPTIONS_MAX))
		return -EINVAL;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case O_URI:
		case O_LISTEN:
			o->uri = optarg;
			break;
		case O_XL:
			o->xl = optarg;
			break;
		case O_INSECURE:
			o->insecure = 1;
			break;
		case O_PEER_TIMEOUT: {
			struct cli_credentials cred = {0};

			if (cli_peer_timeout_parse(o->command, optarg, &cred))
				return -EINVAL;
			o->peer_timeout_ms = cred.peer_timeout_ms;
			break;
		}
		case 'h':
			xen_cli_usage(source);
			return 1;
		default:
			ret = cli_migration_option(o->command, c, optarg, &mig);
			if (ret < 0)
				return -EINVAL;
			if (ret == 0)
				goto usage;
			if (mig.help) {
				xen_cli_usage(source);
				return 1;
			}
			break;
		}
	}
	o->timeout_ms = mig.timeout_ms;
	o->tls = mig.tls;
	if (cli_tls_check(o->command, &o->tls))
		return -EINVAL;
	o->key_len = mig.key_len;
	memcpy(o->key, mig.key, sizeof(o->key));
	if (optind == argc && o->uri) {
		/* No key, no migration, unless --insecure says so. */
		struct cli_credentials cred = {.key_len = o->key_len,
					       .insecure = o->insecure,
					       .x509 = o->tls.mode == RMIG_TLS_X509};

		memcpy(cred.key, o->key, sizeof(cred.key));
		ret = cli_credentials_check(o->command, &cred);
		memcpy(o->key, cred.key, sizeof(o->key));
		o->key_len = cred.key_len;
		return ret;
	}
usage:
	xen_cli_usage(source);
	return -EINVAL;
}

void xen_cli_say(const struct xen_cli_options *o, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "rmig %s: ", o->command);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* A session with @params, the options' credentials and @callbacks; no region yet. */
static int xen_cli_session_create(const struct xen_cli_options *o, uint32_t role,
				  struct rmig_params *params,
				  const struct rmig_callbacks *callbacks, void *opaque,
				  rmig_session_t **session_p)
{
	rmig_session_t *session;
	int ret;

	params->field_mask |= RMIG_PARAM_TIMEOUT_MS;
	params->timeout_ms = o->timeout_ms;
	if (o->key_len) {
		params->field_mask |= RMIG_PARAM_KEY;
		params->key = o->key;
		params->key_len = o->key_len;
	}
	ret = rmig_session_create(role, &session);
	if (ret)
		return ret;
	ret = rmig_session_set_params(session, params);
	if (!ret)
		ret = rmig_session_set_insecure(session, o->insecure);
	if (!ret)
		ret = rmig_session_set_peer_timeout(session, o->peer_timeout_ms);
	if (!ret)
		ret = rmig_session_set_tls(session, &(struct rmig_tls){
							    .struct_size = sizeof(struct rmig_tls),
							    .mode = o->tls.mode,
							    .creds_dir = o->tls.creds_dir,
							    .ca_file = o->tls.ca_file,
							    .cert_file = o->tls.cert_file,
							    .key_file = o->tls.key_file,
							    .peer_name = o->tls.peer_name,
						    });
	if (!ret)
		ret = rmig_session_set_callbacks(session, callbacks, opaque);
	if (ret) {
		rmig_session_destroy(session);
		return ret;
	}
	*session_p = session;
	return 0;
}

int xen_cli_session(const struct xen_cli_options *o, uint32_t role,
		    const struct rmig_callbacks *callbacks, void *opaque,
		    rmig_session_t **session_p)
{
	/* rmig decides nothing here: Xen's stream carries the RAM and its own rounds; the one
	 * page is what a session needs to exist and is never written. */
	struct rmig_params params = {
		.field_mask = RMIG_PARAM_METHOD | RMIG_PARAM_DIRTY_SOURCE | RMIG_PARAM_VERIFY,
		.method = RMIG_METHOD_PRECOPY,
		.dirty_source = RMIG_DIRTY_HYPERVISOR,
		.verify = RMIG_VERIFY_NONE,
	};
	rmig_session_t *session;
	int ret;

	ret = xen_cli_session_create(o, role, &params, callbacks, opaque, &session);
	if (ret)
		goto err;
	ret = posix_memalign(&xen_cli_page, XEN_CLI_PAGE, XEN_CLI_PAGE);
	if (ret) {
		ret = -ret;
		goto err_destroy;
	}
	memset(xen_cli_page, 0, XEN_CLI_PAGE);
	ret = rmig_region_add(session, 0, xen_cli_page, XEN_CLI_PAGE, XEN_CLI_PAGE);
	if (ret)
		goto err_free;
	*session_p = session;
	return 0;

err_free:
	free(xen_cli_page);
	xen_cli_page = NULL;
err_destroy:
	rmig_session_destroy(session);
err:
	xen_cli_say(o, "cannot set up the session: %s", rmig_strerror(ret));
	return ret;
}

int xen_cli_session_ram(const struct xen_cli_options *o, uint32_t role,
			const struct rmig_params *tuning, const struct rmig_callbacks *callbacks,
			void *opaque, rmig_session_t **session_p)
{
	struct rmig_params params = *tuning;
	int ret = xen_cli_session_create(o, role, &params, callbacks, opaque, session_p);

	if (ret)
		xen_cli_say(o, "cannot set up the session: %s", rmig_strerror(ret));
	return ret;
}

void xen_cli_session_destroy(rmig_session_t *session)
{
	rmig_session_destroy(session);
	free(xen_cli_page);
	xen_cli_page = NULL;
}

void xen_cli_pipe_grow(int fd)
{
	(void)fcntl(fd, F_SETPIPE_SZ, 1 << 20);
}

int xen_cli_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int xen_cli_read_exact(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len) {
		ssize_t n = read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EPIPE;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int xen_cli_expect(int fd, const char *message, size_t len)
{
	char buf[128];
	int ret;

	if (len > sizeof(buf))
		return -EINVAL;
	ret = xen_cli_read_exact(fd, buf, len);
	if (ret)
		return ret;
	return memcmp(buf, message, len) ? -EPROTO : 0;
}

void xen_cli_report(const struct xen_cli_options *o, rmig_session_t *session,
		    const struct xen_stream *stream)
{
	struct rmig_stats st = {.struct_size = sizeof(st)};

	if (rmig_session_stats(session, &st))
		return;
	xen_cli_say(o,
		    "Xen's stream %llu bytes (xxh64 %016llx), bytes on the wire %llu "
		    "(received %llu), total time %llu ms, %s",
		    (unsigned long long)st.device_state_bytes,
		    (unsigned long long)xen_stream_digest(stream), (unsigned long long)st.bytes,
		    (unsigned long long)st.bytes_received, (unsigned long long)st.total_time_ms,
		    rmig_status_name(st.status));
}
