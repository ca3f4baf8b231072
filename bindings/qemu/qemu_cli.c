/* SPDX-License-Identifier: MIT */
/* bindings/qemu/qemu_cli.c - options, progress and the rmig half of the report for
 * `rmig qemu-send` and `rmig qemu-recv`. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bindings/cli/credentials.h"
#include "bindings/qemu/qemu_cli.h"

/* enum rmig_stop_reason in words. */
static void qemu_cli_usage(int source)
{
	if (source)
		fprintf(stderr,
			"usage: rmig qemu-send --qmp PATH --uri URI [options]\n"
			"  live-migrate the guest of an unmodified QEMU to `rmig qemu-recv`: rmig\n"
			"  carries the guest RAM (a memory-backend-file with share=on), QEMU its\n"
			"  device state (capabilities x-ignore-shared, pause-before-switchover)\n"
			"  --qmp PATH            the source QEMU's QMP socket (-qmp unix:PATH,...)\n"
			"  --uri URI             where rmig qemu-recv listens (tcp://host:port,\n"
			"                        rdma://host:port)\n"
			"  --qemu-uri URI        QEMU's own migration channel to the destination\n"
			"                        QEMU (default tcp:HOST:%d, HOST from --uri)\n"
			"  --method NAME         precopy or predict (default precopy)\n"
			"  --downtime-ms N       downtime target (default 300)\n"
			"  --policy qemu|xen     stop policy (default qemu)\n"
			"  --max-rounds N        rounds before pausing regardless (default 30)\n"
			"  --bandwidth RATE      cap in bytes per second (K, M, G suffixes)\n"
			"  --dirty auto|hash     dirty tracking (default hash: content hashes)\n"
			"  --streams N           parallel connections (default 1)\n"
			"  --timeout-ms N        longest wait for a peer or QEMU (default 30000)\n"
			"  --key-file FILE       shared secret (1 to 64 bytes), same on both hosts;\n"
			"                        required unless --insecure (or RMIG_KEY_FILE)\n"
			"  --insecure            no authentication: any host reaching the port can\n"
			"                        write (or read) the guest's RAM\n"
			"  --peer-timeout SECS   a silent peer is dead after this long (default 10)\n" CLI_TLS_USAGE
			"  --switchover-hook CMD run CMD (sh -c) when both guests are paused and all\n"
			"                        RAM is on the destination, before QEMU switches over;\n"
			"                        a non-zero exit cancels the migration\n"
			"  --json                print the report as JSON on stdout\n",
			QEMU_CLI_DEFAULT_QEMU_PORT);
	else
		fprintf(stderr,
			"usage: rmig qemu-recv --qmp PATH --listen URI [options]\n"
			"  receive a guest from `rmig qemu-send` into a QEMU started with the same\n"
			"  options plus -incoming defer\n"
			"  --qmp PATH            the destination QEMU's QMP socket\n"
			"  --listen URI          where to wait for qemu-send (tcp://addr:port,\n"
			"                        rdma://addr:port)\n"
			"  --qemu-listen URI     where the destination QEMU waits for QEMU's own\n"
			"                        migration (default tcp:ADDR:%d, ADDR from --listen)\n"
			"  --timeout-ms N        longest wait for the source or QEMU (default 600000)\n"
			"  --key-file FILE       shared secret (1 to 64 bytes), same on both hosts;\n"
			"                        required unless --insecure (or RMIG_KEY_FILE)\n"
			"  --insecure            no authentication: any host reaching the port can\n"
			"                        write (or read) the guest's RAM\n"
			"  --peer-timeout SECS   a silent peer is dead after this long (default 10)\n" CLI_TLS_USAGE
			"  --json                print the report as JSON on stdout\n",
			QEMU_CLI_DEFAULT_QEMU_PORT);
}

/* No key, no migration, unless --insecure says so (RMIG_KEY_FILE stands in for --key-file). */
static int qemu_cli_credentials_check(struct qemu_cli_options *o)
{
	struct cli_credentials c = {.key_len = o->mig.key_len,
				    .insecure = o->insecure,
				    .x509 = o->mig.tls.mode == RMIG_TLS_X509};
	int ret;

	memcpy(c.key, o->mig.key, sizeof(c.key));
	ret = cli_credentials_check(o->command, &c);
	memcpy(o->mig.key, c.key, sizeof(o->mig.key));
	o->mig.key_len = c.key_len;
	return ret;
}

int qemu_cli_session_apply(const struct qemu_cli_options *o, rmig_session_t *session)
{
	int ret = rmig_session_set_insecure(session, o->insecure);

	if (!ret)
		ret = rmig_session_set_peer_timeout(session, o->peer_timeout_ms);
	if (ret) {
		fprintf(stderr, "rmig %s: %s\n", o->command, rmig_last_error(session));
		return ret;
	}
	return cli_tls_apply(o->command, session, &o->mig.tls);
}

/* "tcp:HOST:PORT" for QEMU from an rmig uri "scheme://HOST:PORT". */
static int qemu_cli_qemu_uri(const char *rmig_uri, char *buf, size_t len)
{
	const char *host = strstr(rmig_uri, "://");
	const char *colon;

	if (!host)
		return -EINVAL;
	host += 3;
	colon = strrchr(host, ':');
	if (!colon || colon == host || (host[0] == '[' && colon[-1] != ']'))
		return -EINVAL;
	snprintf(buf, len, "tcp:%.*s:%d", (int)(colon - host), host, QEMU_CLI_DEFAULT_QEMU_PORT);
	return 0;
}

/* What an unmodified QEMU can run, checked after the shared options are parsed. */
static int qemu_cli_check(const char *command, const struct cli_migration *m)
{
	if (m->method != RMIG_METHOD_PRECOPY && m->method != RMIG_METHOD_PREDICT) {
		/* These resume the guest before all its RAM has arrived: an unmodified QEMU's
		 * vCPUs read the shared file directly and cannot wait for pages rmig has not
		 * placed yet. */
		fprintf(stderr,
			"rmig %s: --method %s resumes the guest before all its RAM is on the "
			"destination, which an unmodified QEMU cannot wait for; use precopy or "
			"predict\n",
			command, rmig_method_name(m->method));
		return -EINVAL;
	}
	if (m->verify == RMIG_VERIFY_NONE) {
		/* Content hashes miss a page that changed between hashing and sending and then
		 * went back to the hashed bytes; guests do that (lock words), and only the
		 * switchover verification catches it. */
		fprintf(stderr,
			"rmig %s: --verify none is refused: pages tracked by content hashes must be "
			"compared with the destination's at switchover, or the guest may resume on "
			"a stale page\n",
			command);
		return -EINVAL;
	}
	if (m->dirty_source != RMIG_DIRTY_AUTO && m->dirty_source != RMIG_DIRTY_HASH) {
		/* QEMU writes its RAM through its own mapping: write protection here sees none
		 * of it, and QEMU's dirty log is not ours. */
		fprintf(stderr,
			"rmig %s: --dirty auto or hash (the guest writes through QEMU's own "
			"mapping, which only content hashes can follow)\n",
			command);
		return -EINVAL;
	}
	return 0;
}

int qemu_cli_parse(int argc, char **argv, int source, struct qemu_cli_options *o)
{
	enum {
		O_QMP = 256,
		O_URI,
		O_LISTEN,
		O_QEMU_URI,
		O_QEMU_LISTEN,
		O_HOOK,
		O_SKIP_FINAL,
		O_INSECURE,
		O_PEER_TIMEOUT
	};
	static const struct option send_options[] = {
		{"qmp", required_argument, NULL, O_QMP},
		{"uri", required_argument, NULL, O_URI},
		{"qemu-uri", required_argument, NULL, O_QEMU_URI},
		{"insecure", no_argument, NULL, O_INSECURE},
		{"peer-timeout", required_argument, NULL, O_PEER_TIMEOUT},
		{"switchover-hook", required_argument, NULL, O_HOOK},
		/* Test only (tests/qemu): proves the end-to-end check sees stale RAM. */
		{"x-skip-final-round", no_argument, NULL, O_SKIP_FINAL},
		{NULL, 0, NULL, 0},
	};
	static const struct option recv_options[] = {
		{"qmp", required_argument, NULL, O_QMP},
		{"listen", required_argument, NULL, O_LISTEN},
		{"qemu-listen", required_argument, NULL, O_QEMU_LISTEN},
		{"insecure", no_argument, NULL, O_INSECURE},
		{"peer-timeout", required_argument, NULL, O_PEER_TIMEOUT},
		{NULL, 0, NULL, 0},
	};
	const uint32_t take = CLI_TAKE_TIMEOUT | CLI_TAKE_KEY_FILE | CLI_TAKE_JSON | CLI_TAKE_HELP |
			      CLI_TAKE_TLS | (source ? CLI_TAKE_TUNING | CLI_TAKE_STREAMS : 0);
	const char *command = source ? "qemu-send" : "qemu-recv";
	struct option longopts[CLI_OPTIONS_MAX];
	int c, ret;

	*o = (struct qemu_cli_options){.command = command};
	cli_migration_defaults(&o->mig);
	o->mig.dirty_source = RMIG_DIRTY_HASH;
	o->mig.timeout_ms = source ? 30000 : 600000;
	if (cli_options_table(source ? send_options : recv_options, take, longopts,
			      CLI_OPTIONS_MAX))
		return -EINVAL;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case O_QMP:
			o->qmp = optarg;
			break;
		case O_URI:
			o->uri = optarg;
			break;
		case O_LISTEN:
			o->listen = optarg;
			break;
		case O_QEMU_URI:
		case O_QEMU_LISTEN:
			if (strlen(optarg) >= sizeof(o->qemu_uri)) {
				fprintf(stderr, "rmig %s: %s: too long\n", command, optarg);
				return -EINVAL;
			}
			snprintf(o->qemu_uri, sizeof(o->qemu_uri), "%s", optarg);
			break;
		case O_INSECURE:
			o->insecure = 1;
			break;
		case O_PEER_TIMEOUT: {
			struct cli_credentials cred = {0};

			if (cli_peer_timeout_parse(command, optarg, &cred))
				return -EINVAL;
			o->peer_timeout_ms = cred.peer_timeout_ms;
			break;
		}
		case O_HOOK:
			o->hook = optarg;
			break;
		case O_SKIP_FINAL:
			o->skip_final_round = 1;
			break;
		default:
			ret = cli_migration_option(command, c, optarg, &o->mig);
			if (ret < 0)
				return -EINVAL;
			if (ret == 0) {
				qemu_cli_usage(source);
				return -EINVAL;
			}
			if (o->mig.help) {
				qemu_cli_usage(source);
				return 1;
			}
			break;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "rmig %s: unexpected argument '%s'\n", command, argv[optind]);
		return -EINVAL;
	}
	if (qemu_cli_check(command, &o->mig) || cli_tls_check(command, &o->mig.tls))
		return -EINVAL;
	if (!o->qmp) {
		fprintf(stderr, "rmig %s: --qmp PATH: the QMP socket of the %s QEMU\n", command,
			source ? "source" : "destination");
		return -EINVAL;
	}
	if (source ? !o->uri : !o->listen) {
		fprintf(stderr, "rmig %s: %s\n", command,
			source ? "--uri tcp://host:port (where rmig qemu-recv listens)"
			       : "--listen tcp://addr:port");
		return -EINVAL;
	}
	if (!o->qemu_uri[0] &&
	    qemu_cli_qemu_uri(source ? o->uri : o->listen, o->qemu_uri, sizeof(o->qemu_uri))) {
		fprintf(stderr, "rmig %s: %s: not scheme://host:port\n", command,
			source ? o->uri : o->listen);
		return -EINVAL;
	}
	return qemu_cli_credentials_check(o);
}

void qemu_cli_params(const struct qemu_cli_options *o, struct rmig_params *params)
{
	cli_migration_params(&o->mig, params);
}

const char *qemu_cli_bytes(uint64_t bytes, char *buf, size_t len)
{
	return cli_format_bytes(bytes, buf, len);
}

uint64_t qemu_cli_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void qemu_cli_progress_init(struct qemu_cli_progress *p, const char *command, int quiet)
{
	*p = (struct qemu_cli_progress){
		.command = command,
		.source = !strcmp(command, "qemu-send"),
		.tty = isatty(STDERR_FILENO),
		.quiet = quiet,
	};
}

static void qemu_cli_log(void *opaque, int level, const char *message)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};
	struct qemu_cli_progress *p = opaque;

	if (p->open)
		fputc('\n', stderr);
	p->open = 0;
	fprintf(stderr, "rmig: %s: %s\n", names[level < 0 ? 0 : (level > 3 ? 3 : level)], message);
}

void qemu_cli_log_install(struct qemu_cli_progress *p)
{
	/* -1: the level $RMIG_LOG asks for, WARN by default. */
	rmig_log_handler_install(qemu_cli_log, p, -1);
}

void qemu_cli_note(struct qemu_cli_progress *p, const char *fmt, ...)
{
	va_list ap;

	if (p->open)
		fputc('\n', stderr);
	p->open = 0;
	fprintf(stderr, "rmig %s: ", p->command);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
}

void qemu_cli_progress_event(struct qemu_cli_progress *p, uint32_t event,
			     const struct rmig_stats *st)
{
	const char *cr = p->tty ? "\r\033[K" : "";
	const char *nl = p->tty ? "" : "\n";
	char sent[32], remaining[32], rate[32];
	uint64_t bandwidth = st->bandwidth;

	if (event == RMIG_EVENT_DONE) {
		if (p->open)
			fputc('\n', stderr);
		p->open = 0;
		return;
	}
	if (p->quiet)
		return;
	if (!p->source && event == RMIG_EVENT_ROUND_END) {
		fprintf(stderr, "%sround %u received  %s so far%s", cr, st->round,
			qemu_cli_bytes(st->bytes_received, sent, 32), nl);
		p->open = p->tty;
		fflush(stderr);
		return;
	}
	if (!p->tty && event != RMIG_EVENT_SYNC && event != RMIG_EVENT_PAUSED)
		return;
	/* Before the first round ends there is no measurement yet: estimate from what left so
	 * far. */
	if (!bandwidth && st->bytes >= (1u << 20) && st->total_time_ms > st->setup_time_ms)
		bandwidth = st->bytes * 1000u / (st->total_time_ms - st->setup_time_ms);
	if (event == RMIG_EVENT_PAUSED && !p->source) {
		fprintf(stderr, "%sround %u: the guest is paused on the source, final round%s", cr,
			st->round, nl);
	} else if (event == RMIG_EVENT_PAUSED) {
		fprintf(stderr, "%sround %u: guest paused, final round (%s dirty)%s", cr,
			st->rounds + 1, qemu_cli_bytes(st->remaining_bytes, remaining, 32), nl);
	} else if (event == RMIG_EVENT_SYNC) {
		fprintf(stderr,
			"%sround %u done  sent %s  dirty now %s  rate %s/s  projected downtime "
			"%" PRIu64 " ms: %s%s",
			cr, st->round, qemu_cli_bytes(st->bytes, sent, 32),
			qemu_cli_bytes(st->remaining_bytes, remaining, 32),
			qemu_cli_bytes(bandwidth, rate, 32), st->projected_downtime_ms,
			st->stop_reason ? "stop" : "next round", nl);
	} else if (st->bytes || st->bytes_received) {
		char eta[32] = "-";

		if (bandwidth)
			snprintf(eta, sizeof(eta), "%.1f s",
				 (double)st->remaining_bytes / (double)bandwidth);
		fprintf(stderr, "%sround %u  sent %s  remaining %s  rate %s/s  ETA %s%s", cr,
			st->round,
			qemu_cli_bytes(st->bytes ? st->bytes : st->bytes_received, sent, 32),
			qemu_cli_bytes(st->remaining_bytes, remaining, 32),
			qemu_cli_bytes(bandwidth, rate, 32), eta, nl);
	} else {
		return;
	}
	p->open = p->tty;
	fflush(stderr);
}

static void *qemu_cli_signal_thread(void *arg)
{
	struct qemu_cli_signals *sig = arg;

	for (;;) {
		int signo;

		if (sigwait(&sig->set, &signo))
			continue;
		pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
		sig->signo = signo;
		pthread_mutex_lock(&sig->lock);
		if (sig->session)
			rmig_session_cancel(sig->session);
		pthread_mutex_unlock(&sig->lock);
		qemu_cli_note(sig->progress,
			      "%s: cancelling the migration (the guest stays on the "
			      "source)",
			      strsignal(signo));
		pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL);
	}
	return NULL;
}

int qemu_cli_signals_start(struct qemu_cli_signals *sig, struct qemu_cli_progress *p)
{
	int ret;

	memset(sig, 0, sizeof(*sig));
	sig->progress = p;
	pthread_mutex_init(&sig->lock, NULL);
	sigemptyset(&sig->set);
	sigaddset(&sig->set, SIGINT);
	sigaddset(&sig->set, SIGTERM);
	sigaddset(&sig->set, SIGHUP);
	ret = pthread_sigmask(SIG_BLOCK, &sig->set, NULL);
	if (!ret)
		ret = pthread_create(&sig->thread, NULL, qemu_cli_signal_thread, sig);
	if (ret) {
		pthread_sigmask(SIG_UNBLOCK, &sig->set, NULL);
		return -ret;
	}
	sig->started = 1;
	return 0;
}

void qemu_cli_signals_session(struct qemu_cli_signals *sig, rmig_session_t *session)
{
	pthread_mutex_lock(&sig->lock);
	sig->session = session;
	pthread_mutex_unlock(&sig->lock);
	if (session && sig->signo)
		rmig_session_cancel(session);
}

int qemu_cli_signals_received(const struct qemu_cli_signals *sig)
{
	return sig->signo;
}

void qemu_cli_signals_stop(struct qemu_cli_signals *sig)
{
	if (!sig->started)
		return;
	pthread_cancel(sig->thread);
	pthread_join(sig->thread, NULL);
	pthread_mutex_destroy(&sig->lock);
	sig->started = 0;
}

void qemu_cli_signals_child(const struct qemu_cli_signals *sig)
{
	pthread_sigmask(SIG_UNBLOCK, &sig->set, NULL);
}

void qemu_cli_report_rmig(const struct qemu_cli_options *o, const struct rmig_stats *st, int source)
{
	const char *stop = rmig_stop_reason_name(st->stop_reason);
	char b1[32], b2[32], b3[32];

	printf("  %-30s %s (policy %s, downtime target %u ms)\n", "method",
	       rmig_method_name(st->method), o->mig.policy == RMIG_POLICY_XEN ? "xen" : "qemu",
	       o->mig.downtime_ms);
	printf("  %-30s %s\n", "transport", source ? o->uri : o->listen);
	if (source) {
		printf("  %-30s %s\n", "dirty tracking", cli_dirty_name(st->dirty_source));
		printf("  %-30s %u live + 1 paused (stopped: %s)\n", "rounds", st->rounds, stop);
	} else {
		printf("  %-30s %u live + 1 paused\n", "rounds", st->rounds);
	}
	printf("  %-30s %" PRIu64 " ms\n", "rmig downtime", st->downtime_ms);
	printf("  %-30s %.2f s\n", "rmig total time", (double)st->total_time_ms / 1000.0);
	printf("  %-30s %s sent (%.2f x RAM; page data %s), %s received\n",
	       "rmig bytes on the wire", qemu_cli_bytes(st->bytes, b1, sizeof(b1)),
	       st->ram_bytes ? (double)st->bytes / (double)st->ram_bytes : 0.0,
	       qemu_cli_bytes(st->data_bytes, b2, sizeof(b2)),
	       qemu_cli_bytes(st->bytes_received, b3, sizeof(b3)));
	if (source) {
		printf("  %-30s %" PRIu64 " (of which %" PRIu64 " zero-page markers)\n",
		       "pages sent", st->pages_sent, st->zero_pages);
		printf("  %-30s %" PRIu64 " (sent 1x %" PRIu64 ", 2x %" PRIu64 ", 3x %" PRIu64
		       ", 4x+ %" PRIu64 ")\n",
		       "pages sent more than once", st->pages_sent_multiple,
		       st->pages_sent_histogram[0], st->pages_sent_histogram[1],
		       st->pages_sent_histogram[2], st->pages_sent_histogram[3]);
	} else {
		printf("  %-30s %" PRIu64 "\n", "pages received", st->pages_received);
	}
	printf("  %-30s %" PRIu64 " / %" PRIu64 "\n", "verified / mismatched pages",
	       st->pages_verified, st->pages_mismatched);
}

void qemu_cli_json_rmig(json_t *report, const struct qemu_cli_options *o,
			const struct rmig_stats *st)
{
	json_t *rmig = json_object();
	json_t *histogram = json_array();

	if (!rmig || !histogram) {
		json_decref(rmig);
		json_decref(histogram);
		return;
	}
	for (int i = 0; i < 4; i++)
		json_array_append_new(histogram,
				      json_integer((json_int_t)st->pages_sent_histogram[i]));
	json_object_set_new(rmig, "status", json_string(rmig_status_name(st->status)));
	json_object_set_new(rmig, "method", json_string(rmig_method_name(st->method)));
	json_object_set_new(rmig, "policy",
			    json_string(o->mig.policy == RMIG_POLICY_XEN ? "xen" : "qemu"));
	json_object_set_new(rmig, "dirty_tracking", json_string(cli_dirty_name(st->dirty_source)));
	json_object_set_new(rmig, "ram_bytes", json_integer((json_int_t)st->ram_bytes));
	json_object_set_new(rmig, "rounds", json_integer(st->rounds));
	json_object_set_new(rmig, "stop_reason",
			    json_string(rmig_stop_reason_name(st->stop_reason)));
	json_object_set_new(rmig, "downtime_ms", json_integer((json_int_t)st->downtime_ms));
	json_object_set_new(rmig, "total_time_ms", json_integer((json_int_t)st->total_time_ms));
	json_object_set_new(rmig, "bytes", json_integer((json_int_t)st->bytes));
	json_object_set_new(rmig, "bytes_received", json_integer((json_int_t)st->bytes_received));
	json_object_set_new(rmig, "data_bytes", json_integer((json_int_t)st->data_bytes));
	json_object_set_new(rmig, "pages_sent", json_integer((json_int_t)st->pages_sent));
	json_object_set_new(rmig, "zero_pages", json_integer((json_int_t)st->zero_pages));
	json_object_set_new(rmig, "pages_sent_multiple",
			    json_integer((json_int_t)st->pages_sent_multiple));
	json_object_set_new(rmig, "sends_histogram", histogram);
	json_object_set_new(rmig, "pages_verified", json_integer((json_int_t)st->pages_verified));
	json_object_set_new(rmig, "pages_mismatched",
			    json_integer((json_int_t)st->pages_mismatched));
	json_object_set_new(rmig, "pages_received", json_integer((json_int_t)st->pages_received));
	json_object_set_new(report, "rmig", rmig);
}
