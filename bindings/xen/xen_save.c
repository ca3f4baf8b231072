/* SPDX-License-Identifier: MIT */
/* bindings/xen/xen_save.c - `rmig-xen-save`: depth 2 of docs/xen.md. A live Xen migration run
 * by rmig instead of `xl migrate`, in which rmig's stop rule ends Xen's own pre-copy:
 *
 *   rmig-xen-save --domain NAME --uri tcp://dest:7300 [--policy qemu|xen|libxc]
 *                 [--downtime-ms N] [--max-rounds N]
 *
 * The destination is `rmig xen-recv`, unchanged: it runs `xl migrate-receive`, which reads the
 * same stream xl would have sent. This program is the source toolstack:
 *  1. takes the domain's configuration from libxl (as xl does) and connects to xen-recv; a
 *     refused connection exits before anything touches the domain;
 *  2. once rmig's session asks for the device state, a thread writes the stream into a pipe:
 *     xl's header with the JSON configuration, libxl's stream header, LIBXC_CONTEXT, then
 *     xc_domain_save() itself (libxenguest) with a precopy_policy callback backed by
 *     rmig_policy_decide(), then libxl's END. device_state_read() hands the pipe to rmig as
 *     it fills, counting the bytes and walking the framing (xen_stream.c);
 *  3. the policy callback: libxc asks before each iteration (the dirty count known from its
 *     log-dirty CLEAN) and after it (count unknown). rmig's rule decides with the count, or,
 *     after an iteration, with all of RAM as the bound of what is dirty (so the round limit
 *     ends the loop where Xen's own would); the bandwidth is the stream's, bytes rmig carried
 *     over the last iteration's duration; the target is --downtime-ms. A stop before an
 *     iteration still sends it live (libxc does), and the pause carries what that dirtied;
 *  4. libxc's suspend callback suspends the domain as libxl does for a PVH guest: xenstore
 *     control/shutdown = "suspend", then wait (a @releaseDomain watch) until Xen reports the
 *     domain shut down for suspend;
 *  5. at END: the domain is renamed NAME--migratedaway (xl's step after "ready"), and rmig asks
 *     the destination to resume; xen-recv gives its xl the go and answers with xl's report.
 *     Success: the source domain is destroyed. The destination discarded its copy: renamed
 *     back and resumed here (libxl_domain_resume, suspend cancelled). The session broke
 *     before END: the save thread is stopped (its pipe closed) and the domain, if suspended,
 *     resumed. It broke after the resume request: unknown, as in xl; the domain stays
 *     renamed and suspended, and the message says to check both hosts.
 * PVH only: a PV domU cannot be migrated live by Debian's Xen (no shadow paging), an HVM one
 * needs its device model's records, which this sender does not write. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libxl.h>
#include <libxl_utils.h>
#include <xenctrl.h>
#include <xenguest.h>
#include <xenstore.h>
#include <xentoollog.h>

#include "bindings/cli/credentials.h"
#include "bindings/cli/options.h"
#include "bindings/xen/xen_cli.h"
#include "bindings/xen/xen_policy.h"
#include "bindings/xen/xen_save.h"
#include "bindings/xen/xen_stream.h"

uint64_t xen_save_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void xen_save_usage(void)
{
	fprintf(stderr,
		"usage: rmig-xen-save --domain NAME --uri URI [options]\n"
		"  migrate a Xen PVH domain live to `rmig xen-recv`, rmig's stop rule ending\n"
		"  Xen's pre-copy (docs/xen.md, depth 2)\n"
		"  --domain NAME      the domain (name or id)\n"
		"  --uri URI          where rmig xen-recv listens (tcp://host:port,\n"
		"                     rdma://host:port)\n"
		"  --method M         precopy or predict: depth 3, rmig owns the RAM (log-dirty,\n"
		"                     the guest's memory as rmig's regions, rmig's rounds; the\n"
		"                     destination runs rmig-xen-restore); without it, depth 2\n"
		"  --verify V         depth 3: at switchover compare the final round's pages and\n"
		"                     a random 16 MiB with the destination's, every page if\n"
		"                     one differs (sample, default), every page (all) or none\n"
		"  --policy P         qemu (default: stop when the dirty pages cross within\n"
		"                     --downtime-ms at the stream's measured rate, or at\n"
		"                     --max-rounds), xen (rmig's Xen-classic limits), or libxc\n"
		"                     (libxc's own rule, for comparison)\n"
		"  --downtime-ms N    downtime target (default 300)\n"
		"  --max-rounds N     live iterations before the domain is suspended regardless\n"
		"                     (default 30)\n"
		"  --timeout-ms N     longest wait for the peer or the guest at any step\n"
		"                     (default %u)\n"
		"  --key-file FILE    shared secret (1 to 64 bytes), same on both hosts;\n"
		"                     required unless --insecure (or RMIG_KEY_FILE)\n"
		"  --insecure         no authentication\n"
		"  --peer-timeout S   a silent peer is dead after S seconds (default 10)\n"
		"  --tls none|psk|x509 as for xen-send (docs/reliability.md)\n",
		XEN_SAVE_DEFAULT_TIMEOUT_MS);
}

static int xen_save_parse(int argc, char **argv, struct xen_save *x)
{
	enum { O_URI = 256, O_DOMAIN, O_INSECURE, O_PEER_TIMEOUT, O_POLICY };
	static const struct option own[] = {
		{"uri", required_argument, NULL, O_URI},
		{"domain", required_argument, NULL, O_DOMAIN},
		{"insecure", no_argument, NULL, O_INSECURE},
		{"peer-timeout", required_argument, NULL, O_PEER_TIMEOUT},
		{"policy", required_argument, NULL, O_POLICY},
		{NULL, 0, NULL, 0},
	};
	struct option longopts[CLI_OPTIONS_MAX];
	struct xen_cli_options *o = &x->options;
	struct cli_credentials cred = {0};
	struct cli_migration mig;
	int c, ret;

	o->command = "xen-save";
	cli_migration_defaults(&mig);
	mig.timeout_ms = XEN_SAVE_DEFAULT_TIMEOUT_MS;
	mig.method = UINT32_MAX; /* given or not: depth 3 or 2 */
	/* Xen's log-dirty is the hypervisor's own record, which xl trusts whole: compare a
	 * sample and the final round's pages, every page only if one differs. */
	mig.verify = RMIG_VERIFY_SAMPLE;
	if (cli_options_table(own,
			      CLI_TAKE_DOWNTIME | CLI_TAKE_MAX_ROUNDS | CLI_TAKE_TIMEOUT |
				      CLI_TAKE_KEY_FILE | CLI_TAKE_HELP | CLI_TAKE_TLS |
				      CLI_TAKE_METHOD | CLI_TAKE_VERIFY,
			      longopts, CLI_OPTIONS_MAX))
		return -EINVAL;
	x->rule.policy = RMIG_POLICY_QEMU;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case O_URI:
			o->uri = optarg;
			break;
		case O_DOMAIN:
			x->domain = optarg;
			break;
		case O_INSECURE:
			o->insecure = 1;
			break;
		case O_PEER_TIMEOUT:
			if (cli_peer_timeout_parse(o->command, optarg, &cred))
				return -EINVAL;
			o->peer_timeout_ms = cred.peer_timeout_ms;
			break;
		case O_POLICY:
			if (!strcmp(optarg, "qemu")) {
				x->rule.policy = RMIG_POLICY_QEMU;
			} else if (!strcmp(optarg, "xen")) {
				x->rule.policy = RMIG_POLICY_XEN;
			} else if (!strcmp(optarg, "libxc")) {
				x->libxc_policy = 1;
			} else {
				fprintf(stderr,
					"rmig-xen-save: --policy is qemu, xen or libxc, not %s\n",
					optarg);
				return -EINVAL;
			}
			break;
		case 'h':
			xen_save_usage();
			return 1;
		default:
			ret = cli_migration_option(o->command, c, optarg, &mig);
			if (ret < 0)
				return -EINVAL;
			if (ret == 0)
				goto usage;
			if (mig.help) {
				xen_save_usage();
				return 1;
			}
			break;
		}
	}
	if (optind != argc || !o->uri || !x->domain)
		goto usage;
	o->timeout_ms = mig.timeout_ms;
	o->tls = mig.tls;
	if (cli_tls_check(o->command, &o->tls))
		return -EINVAL;
	if (mig.method != UINT32_MAX) {
		if (mig.method != RMIG_METHOD_PRECOPY && mig.method != RMIG_METHOD_PREDICT) {
			fprintf(stderr,
				"rmig-xen-save: --method is precopy or predict: the post-copy "
				"family needs the destination to take the guest's page faults, "
				"which Xen keeps to itself (docs/xen.md)\n");
			return -EINVAL;
		}
		if (x->libxc_policy) {
			fprintf(stderr, "rmig-xen-save: --policy libxc is depth 2's: with --method "
					"rmig runs the rounds itself\n");
			return -EINVAL;
		}
		x->own_ram = 1;
		x->method = mig.method;
	}
	x->verify = mig.verify;
	x->rule.downtime_ms = mig.downtime_ms;
	x->rule.max_rounds = mig.max_rounds;
	cred.key_len = mig.key_len;
	cred.insecure = o->insecure;
	memcpy(cred.key, mig.key, sizeof(cred.key));
	ret = cli_credentials_check(o->command, &cred);
	memcpy(o->key, cred.key, sizeof(o->key));
	o->key_len = cred.key_len;
	return ret;
usage:
	xen_save_usage();
	return -EINVAL;
}

/* ---- the policy: rmig's stop rule over libxc's iterations ---- */

static int xen_save_precopy_policy(struct precopy_stats stats, void *data)
{
	struct xen_save *x = data;
	struct rmig_policy_decision d = {.struct_size = sizeof(d)};
	int ret;

	ret = xen_policy_step(&x->rule, stats.iteration, stats.total_written, stats.dirty_count,
			      xen_save_now_us(), atomic_load(&x->carried), &d);
	if (ret < 0) {
		xen_cli_say(&x->options, "the stop rule refused its input: %s", strerror(-ret));
		return XGS_POLICY_ABORT;
	}
	if (stats.dirty_count >= 0 || d.stop) {
		if (x->nrounds < XEN_SAVE_ROUNDS_LOGGED)
			x->rounds[x->nrounds++] = (struct xen_save_round){
				.iteration = stats.iteration,
				.stop = d.stop,
				.reason = d.reason,
			};
		fprintf(stderr,
			"rmig xen-save: iteration %u: %ld dirty, stream %.1f MB/s, "
			"projected %lld ms: %s\n",
			stats.iteration, stats.dirty_count, (double)x->rule.bandwidth / 1e6,
			d.projected_downtime_ms == UINT64_MAX ? -1LL
							      : (long long)d.projected_downtime_ms,
			d.stop ? "stop and copy" : "another iteration");
	}
	if (d.stop)
		x->stop_iteration = stats.iteration;
	return ret ? XGS_POLICY_STOP_AND_COPY : XGS_POLICY_CONTINUE_PRECOPY;
}

/* ---- suspend, as libxl suspends a PVH guest ---- */

static int xen_save_is_suspended(struct xen_save *x)
{
	xc_dominfo_t info;

	if (xc_domain_getinfo(x->xch, x->domid, 1, &info) != 1 || info.domid != x->domid)
		return -ESRCH;
	return info.shutdown && info.shutdown_reason == SHUTDOWN_suspend;
}

int xen_save_suspend(void *data)
{
	struct xen_save *x = data;
	char path[64], token[] = "rmig-xen-save";
	uint64_t deadline = xen_save_now_us() + (uint64_t)x->options.timeout_ms * 1000u;
	struct xs_handle *xsh = x->xsh;
	int ret = 0, watching;

	snprintf(path, sizeof(path), "/local/domain/%u/control/shutdown", x->domid);
	watching = xs_watch(xsh, "@releaseDomain", token);
	if (!xs_write(xsh, XBT_NULL, path, "suspend", strlen("suspend"))) {
		xen_cli_say(&x->options, "cannot ask the domain to suspend (%s): %s", path,
			    strerror(errno));
		goto out;
	}
	/* Xen fires @releaseDomain when a domain shuts down (suspend is a shutdown). */
	for (;;) {
		struct timeval tv;
		fd_set fds;
		uint64_t now;
		int fd = xs_fileno(xsh);

		ret = xen_save_is_suspended(x);
		if (ret != 0)
			break;
		now = xen_save_now_us();
		if (now >= deadline) {
			xen_cli_say(&x->options, "the domain did not suspend within %u ms",
				    x->options.timeout_ms);
			/* Withdraw the request the guest has not taken, as libxl does. */
			xs_rm(xsh, XBT_NULL, path);
			break;
		}
		if (!watching || fd < 0) {
			/* No watch: look again soon. */
			tv = (struct timeval){0, 20000};
			select(0, NULL, NULL, NULL, &tv);
			continue;
		}
		FD_ZERO(&fds);
		FD_SET(fd, &fds);
		tv = (struct timeval){0, 200000};
		if (select(fd + 1, &fds, NULL, NULL, &tv) > 0) {
			char **event;
			unsigned int n;

			event = xs_read_watch(xsh, &n);
			free(event);
		}
	}
out:
	if (watching)
		xs_unwatch(xsh, "@releaseDomain", token);
	if (ret == 1) {
		atomic_store(&x->suspended, 1);
		fprintf(stderr, "rmig xen-save: domain %u suspended\n", x->domid);
		return 1;
	}
	if (ret < 0)
		xen_cli_say(&x->options, "domain %u is gone", x->domid);
	return 0;
}

static int xen_save_switch_qemu_logdirty(uint32_t domid, unsigned enable, void *data)
{
	(void)domid;
	(void)enable;
	(void)data;
	return 0; /* a PVH domain has no device model to track writes */
}

/* ---- the stream ---- */

static int xen_save_write_all(int fd, const void *buf, size_t len)
{
	return xen_cli_write_all(fd, buf, len);
}

static void *xen_save_thread(void *opaque)
{
	struct xen_save *x = opaque;
	uint8_t record[XEN_STREAM_RECORD_HEADER_SIZE];
	struct save_callbacks callbacks = {
		.suspend = xen_save_suspend,
		.precopy_policy = x->libxc_policy ? NULL : xen_save_precopy_policy,
		.switch_qemu_logdirty = xen_save_switch_qemu_logdirty,
		.data = x,
	};
	size_t head_len = xen_stream_head_size(x->config_len);
	uint8_t *head = malloc(head_len);
	long n = head ? xen_stream_write_head(head, head_len, x->config, x->config_len) : -ENOMEM;
	int ret = n < 0 ? (int)n : xen_save_write_all(x->pipe_write, head, (size_t)n);

	free(head);
	xen_policy_start(&x->rule, xen_save_now_us(), atomic_load(&x->carried));
	if (!ret && xc_domain_save(x->xch, x->pipe_write, x->domid, XCFLAGS_LIVE, &callbacks,
				   XC_STREAM_PLAIN, -1)) {
		ret = errno ? -errno : -EIO;
		xen_cli_say(&x->options, "xc_domain_save failed: %s", strerror(-ret));
	}
	if (!ret) {
		xen_stream_write_record_header(record, XEN_STREAM_RECORD_END, 0);
		ret = xen_save_write_all(x->pipe_write, record, sizeof(record));
	}
	x->save_ret = ret;
	/* End of file for device_state_read: after END, or instead of it on a failure. */
	close(x->pipe_write);
	x->pipe_write = -1;
	return NULL;
}

static int xen_save_start_thread(struct xen_save *x)
{
	int ret = pthread_create(&x->thread, NULL, xen_save_thread, x);

	if (ret) {
		xen_cli_say(&x->options, "cannot start the save thread: %s", strerror(ret));
		return -ret;
	}
	x->thread_started = 1;
	return 0;
}

/* Stop the save thread (it may be blocked writing to the pipe no one reads) and wait for it. */
static void xen_save_stop_thread(struct xen_save *x)
{
	if (!x->thread_started)
		return;
	if (x->pipe_read >= 0) {
		close(x->pipe_read);
		x->pipe_read = -1;
	}
	pthread_join(x->thread, NULL);
	x->thread_started = 0;
}

int xen_save_rename(struct xen_save *x, int away)
{
	char *away_name = NULL;
	int ret;

	if (asprintf(&away_name, "%s--migratedaway", x->domain) < 0)
		return -ENOMEM;
	ret = away ? libxl_domain_rename(x->ctx, x->domid, x->domain, away_name)
		   : libxl_domain_rename(x->ctx, x->domid, away_name, x->domain);
	if (ret)
		xen_cli_say(&x->options, "cannot rename domain %u to %s (libxl %d)", x->domid,
			    away ? away_name : x->domain, ret);
	free(away_name);
	return ret ? -EIO : 0;
}

static int xen_save_device_state_read(void *opaque, void *buf, size_t len)
{
	struct xen_save *x = opaque;
	size_t want;
	ssize_t n;
	int ret;

	if (!x->thread_started && x->stream.phase == XEN_STREAM_XL_HEADER && !x->stream.bytes) {
		ret = xen_save_start_thread(x);
		if (ret)
			return ret;
	}
	if (x->stream.phase == XEN_STREAM_END) {
		if (x->renamed)
			return 0;
		/* The save thread wrote END and is done. */
		pthread_join(x->thread, NULL);
		x->thread_started = 0;
		if (x->save_ret)
			return x->save_ret;
		ret = xen_save_rename(x, 1);
		if (ret)
			return ret;
		x->renamed = 1;
		return 0; /* the stream is all sent: rmig asks the destination to resume */
	}
	want = xen_stream_want(&x->stream, len);
	do
		n = read(x->pipe_read, buf, want);
	while (n < 0 && errno == EINTR);
	if (n <= 0) {
		xen_cli_say(&x->options, "the stream ended after %llu bytes, before its end record",
			    (unsigned long long)x->stream.bytes);
		return n < 0 ? -errno : -EPIPE;
	}
	ret = xen_stream_feed(&x->stream, buf, (size_t)n);
	if (ret) {
		xen_cli_say(&x->options, "%s", x->stream.error);
		return ret;
	}
	atomic_fetch_add(&x->carried, (uint64_t)n);
	return (int)n;
}

int xen_save_dirty_sync(void *opaque, uint32_t region_id, uint64_t *bitmap, size_t npages)
{
	(void)opaque;
	(void)region_id;
	(void)bitmap;
	(void)npages;
	return 0; /* the placeholder page is never written; the RAM is in Xen's stream */
}

int xen_save_pause_vm(void *opaque)
{
	(void)opaque;
	return 0; /* the domain is suspended inside the stream, when the policy says stop */
}

/* ---- setup: libxl, libxc, xenstore, the domain ---- */

static int xen_save_open(struct xen_save *x)
{
	libxl_domain_config config;
	libxl_dominfo info;

	x->logger = xtl_createlogger_stdiostream(stderr, XTL_WARN, 0);
	if (!x->logger)
		return -ENOMEM;
	if (libxl_ctx_alloc(&x->ctx, LIBXL_VERSION, 0, (xentoollog_logger *)x->logger)) {
		xen_cli_say(&x->options, "cannot open libxl (is this a Xen dom0?)");
		return -ENODEV;
	}
	x->xch = xc_interface_open((xentoollog_logger *)x->logger, NULL, 0);
	if (!x->xch) {
		xen_cli_say(&x->options, "cannot open libxenctrl");
		return -ENODEV;
	}
	x->xsh = xs_open(0);
	if (!x->xsh) {
		xen_cli_say(&x->options, "cannot reach xenstore: %s", strerror(errno));
		return -ENODEV;
	}
	if (libxl_name_to_domid(x->ctx, x->domain, &x->domid)) {
		char *end;
		unsigned long id = strtoul(x->domain, &end, 10);

		if (*x->domain == '\0' || *end || id == 0 || id >= DOMID_FIRST_RESERVED) {
			xen_cli_say(&x->options, "no domain %s", x->domain);
			return -ESRCH;
		}
		x->domid = (uint32_t)id;
	}
	libxl_dominfo_init(&info);
	if (libxl_domain_info(x->ctx, &info, x->domid)) {
		xen_cli_say(&x->options, "no domain %u", x->domid);
		libxl_dominfo_dispose(&info);
		return -ESRCH;
	}
	x->rule.ram_bytes = info.current_memkb * 1024ull;
	libxl_dominfo_dispose(&info);
	/* The name xl would use: after a name lookup by id, the domain's own. */
	{
		char *name = libxl_domid_to_name(x->ctx, x->domid);

		if (!name) {
			xen_cli_say(&x->options, "domain %u has no name", x->domid);
			return -ESRCH;
		}
		x->domain = name; /* freed at exit with the process */
	}
	libxl_domain_config_init(&config);
	if (libxl_retrieve_domain_configuration(x->ctx, x->domid, &config, NULL)) {
		xen_cli_say(&x->options, "cannot retrieve domain %u's configuration", x->domid);
		libxl_domain_config_dispose(&config);
		return -EIO;
	}
	/* libxl_dominfo says "hvm" for PVH too (one domain kind to Xen): the configuration
	 * knows. */
	if (config.c_info.type != LIBXL_DOMAIN_TYPE_PVH) {
		xen_cli_say(&x->options,
			    "domain %u is %s: only PVH domains are migrated at depth 2 "
			    "(docs/xen.md)",
			    x->domid, libxl_domain_type_to_string(config.c_info.type));
		libxl_domain_config_dispose(&config);
		return -EOPNOTSUPP;
	}
	x->config = libxl_domain_config_to_json(x->ctx, &config);
	libxl_domain_config_dispose(&config);
	if (!x->config) {
		xen_cli_say(&x->options, "cannot write domain %u's configuration as JSON",
			    x->domid);
		return -EIO;
	}
	x->config_len = (uint32_t)strlen(x->config) + 1;
	return 0;
}

static void xen_save_close(struct xen_save *x)
{
	free(x->config);
	if (x->xsh)
		xs_close(x->xsh);
	if (x->xch)
		xc_interface_close(x->xch);
	if (x->ctx)
		libxl_ctx_free(x->ctx);
	if (x->logger)
		xtl_logger_destroy((xentoollog_logger *)x->logger);
}

static void xen_save_report(struct xen_save *x, rmig_session_t *session, uint64_t start_us)
{
	struct rmig_stats st = {.struct_size = sizeof(st)};
	const char *stopped = "no stop decided";
	char when[48];

	for (uint32_t i = 0; i < x->nrounds; i++)
		if (x->rounds[i].stop)
			stopped = rmig_stop_reason_name(x->rounds[i].reason);
	if (rmig_session_stats(session, &st))
		return;
	if (x->libxc_policy)
		snprintf(when, sizeof(when), "by libxc's own rule");
	else
		snprintf(when, sizeof(when), "after iteration %u (%s)", x->stop_iteration, stopped);
	xen_cli_say(&x->options,
		    "policy %s, stopped %s, Xen's stream %llu bytes (xxh64 %016llx), bytes "
		    "on the wire %llu, total time %llu ms, %s",
		    x->libxc_policy			? "libxc"
		    : x->rule.policy == RMIG_POLICY_XEN ? "xen"
							: "qemu",
		    when, (unsigned long long)st.device_state_bytes,
		    (unsigned long long)xen_stream_digest(&x->stream), (unsigned long long)st.bytes,
		    (unsigned long long)((xen_save_now_us() - start_us) / 1000u),
		    rmig_status_name(st.status));
}

int main(int argc, char **argv)
{
	struct xen_save x = {.pipe_read = -1, .pipe_write = -1};
	struct rmig_callbacks callbacks = {
		.field_mask = RMIG_CB_DIRTY_SYNC | RMIG_CB_PAUSE_VM | RMIG_CB_DEVICE_STATE_READ,
		.dirty_sync = xen_save_dirty_sync,
		.pause_vm = xen_save_pause_vm,
		.device_state_read = xen_save_device_state_read,
	};
	rmig_session_t *session = NULL;
	uint64_t start_us = xen_save_now_us();
	int pipefd[2];
	int ret;

	ret = xen_save_parse(argc, argv, &x);
	if (ret)
		return ret > 0 ? 0 : 2;
	signal(SIGPIPE, SIG_IGN);
	ret = xen_save_open(&x);
	if (ret)
		goto out;
	if (x.own_ram) {
		ret = xen_save_own_ram(&x, start_us);
		xen_ram_close(&x.ram);
		xen_buf_free(&x.out);
		goto out;
	}
	if (pipe2(pipefd, O_CLOEXEC)) {
		ret = -errno;
		goto out;
	}
	x.pipe_read = pipefd[0];
	x.pipe_write = pipefd[1];
	xen_cli_pipe_grow(x.pipe_write);
	xen_stream_init(&x.stream);
	ret = xen_cli_session(&x.options, RMIG_ROLE_SOURCE, &callbacks, &x, &session);
	if (ret)
		goto out;
	ret = rmig_session_connect(session, x.options.uri);
	if (ret) {
		xen_cli_say(&x.options, "cannot reach xen-recv at %s: %s", x.options.uri,
			    rmig_last_error(session));
		goto out;
	}
	xen_cli_say(&x.options, "migrating %s (domain %u, %llu MiB) to %s", x.domain, x.domid,
		    (unsigned long long)(x.rule.ram_bytes >> 20), x.options.uri);
	ret = rmig_session_run(session);
	xen_save_stop_thread(&x);
	xen_save_report(&x, session, start_us);
	if (!ret) {
		xen_cli_say(&x.options, "the domain runs at the destination; destroying it here");
		if (libxl_domain_destroy(x.ctx, x.domid, NULL))
			xen_cli_say(&x.options, "could not destroy domain %u here", x.domid);
		goto out;
	}
	xen_cli_say(&x.options, "migration failed: %s", rmig_last_error(session));
	if (x.renamed && ret != -XEN_CLI_DESTINATION_DISCARDED) {
		xen_cli_say(
			&x.options,
			"the destination was asked to resume the domain and did not answer: "
			"it may run there; domain %u is left suspended here as %s--migratedaway; "
			"check both hosts",
			x.domid, x.domain);
		goto out;
	}
	if (x.renamed)
		xen_save_rename(&x, 0);
	if (atomic_load(&x.suspended)) {
		if (libxl_domain_resume(x.ctx, x.domid, 1, NULL))
			xen_cli_say(&x.options, "could not resume domain %u here", x.domid);
		else
			xen_cli_say(&x.options, "domain %u resumed here", x.domid);
	} else {
		xen_cli_say(&x.options, "domain %u was not suspended: it runs on here", x.domid);
	}
out:
	xen_save_stop_thread(&x);
	if (x.pipe_read >= 0)
		close(x.pipe_read);
	if (x.pipe_write >= 0 && !x.thread_started)
		close(x.pipe_write);
	if (session)
		xen_cli_session_destroy(session);
	xen_save_close(&x);
	return ret ? 1 : 0;
}
