/* SPDX-License-Identifier: MIT */
/* bindings/cli/demo.c - `rmig demo`, `rmig send` and `rmig recv`: live-migrate a guest whose
 * RAM lives in this process (a workload from bench/workloads keeps writing to it) through the
 * public ABI, with a live progress line and the final report. demo runs both ends here and
 * checks the destination RAM byte for byte; send/recv run one end each on two hosts and check a
 * hash of the RAM that travels with the device state. */
#include <errno.h>
#include <ifaddrs.h>
#include <inttypes.h>
#include <net/if.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "bench/guest/guest.h"
#include "bindings/cli/cli.h"
#include "bindings/cli/control.h"
#include "bindings/cli/options.h"
#include "bindings/cli/credentials.h"
#include "rmig.h"

#define DEMO_URI_MAX 256u

struct demo_options {
	size_t ram;
	const char *workload;
	const char *transport;
	const char *uri;    /* send: where the receiver listens */
	const char *listen; /* recv: where to listen */
	struct cli_migration
		mig; /* method, policy, limits, --json: shared with the other commands */
	double write_rate;
	double hot_fraction;
	double hot_probability;
	uint64_t seed;
	unsigned threads;
	struct cli_credentials
		cred; /* send/recv: --key-file (or RMIG_KEY_FILE), --insecure, --peer-timeout */
};

/* One end's guest (bench/guest) and the progress line it draws. The guest comes first: the
 * guest's own callbacks take this struct as their opaque. */
struct demo_guest {
	struct guest guest;
	int progress_tty;
	int progress_open; /* a \r progress line is on the terminal */
};

static void demo_usage(const char *command)
{
	fprintf(stderr,
		"usage: rmig %s [options]\n"
		"  --ram SIZE            guest RAM (default 1G; K, M, G suffixes)\n"
		"  --workload NAME       what the guest does (default zipf-kv)\n"
		"  --write-rate N        guest page writes per second (default 100000, 0: flat out)\n"
		"  --hot-fraction F      share of RAM in the hot set (default 0.05)\n"
		"  --hot-probability P   share of writes that go to the hot set (default 0.9)\n"
		"  --transport T         auto, rdma, tcp or loop (demo; default auto: rdma when a\n"
		"                        device exists, else tcp)\n"
		"  --uri URI             send: where rmig recv listens (tcp://host:port)\n"
		"  --listen URI          recv: where to listen (tcp://0.0.0.0:port)\n"
		"  --method M            precopy, predict, tsmc, postcopy, hybrid or auto\n"
		"                        (default precopy; see docs/methods.md)\n"
		"  --downtime-ms N       downtime target (default 300)\n"
		"  --policy qemu|xen     stop policy (default qemu)\n"
		"  --max-rounds N        rounds before pausing regardless (default 30)\n"
		"  --bandwidth RATE      cap in bytes per second (K, M, G suffixes; default none)\n"
		"  --verify all|sample|none  hash-compare every page at switchover (default all),\n"
		"                        or the final round's and a sample, all if one differs\n"
		"  --dirty KIND          auto, uffd-async, uffd-sync or hash (default auto)\n"
		"  --timeout-ms N        send/recv: longest wait for the peer at any step (default\n"
		"                        30000; recv 600000, as it waits for a person to start send)\n"
		"  --seed N              workload seed\n"
		"  --json                print the report as JSON on stdout\n"
		"send and recv (demo makes a random key of its own):\n" CLI_CREDENTIALS_USAGE
			CLI_TLS_USAGE CLI_RECOVERY_USAGE,
		command);
}

static int demo_parse(int argc, char **argv, struct demo_options *o)
{
	enum {
		O_RAM = 256,
		O_WORKLOAD,
		O_WRITE_RATE,
		O_HOT_FRACTION,
		O_HOT_PROBABILITY,
		O_TRANSPORT,
		O_URI,
		O_LISTEN,
		O_SEED,
		O_KEY_FILE,
		O_INSECURE,
		O_PEER_TIMEOUT,
	};
	static const struct option own[] = {
		{"ram", required_argument, NULL, O_RAM},
		{"workload", required_argument, NULL, O_WORKLOAD},
		{"write-rate", required_argument, NULL, O_WRITE_RATE},
		{"hot-fraction", required_argument, NULL, O_HOT_FRACTION},
		{"hot-probability", required_argument, NULL, O_HOT_PROBABILITY},
		{"transport", required_argument, NULL, O_TRANSPORT},
		{"uri", required_argument, NULL, O_URI},
		{"listen", required_argument, NULL, O_LISTEN},
		{"seed", required_argument, NULL, O_SEED},
		{"key-file", required_argument, NULL, O_KEY_FILE},
		{"insecure", no_argument, NULL, O_INSECURE},
		{"peer-timeout", required_argument, NULL, O_PEER_TIMEOUT},
		{NULL, 0, NULL, 0},
	};
	/* demo runs both ends here: no peer to wait for. */
	const uint32_t take = CLI_TAKE_TUNING | CLI_TAKE_JSON | CLI_TAKE_HELP | CLI_TAKE_TLS |
			      (strcmp(argv[0], "demo") ? CLI_TAKE_TIMEOUT | CLI_TAKE_RECOVERY : 0);
	struct option longopts[CLI_OPTIONS_MAX];
	uint64_t value;
	int c, ret;

	*o = (struct demo_options){
		.ram = 1ull << 30,
		.workload = "zipf-kv",
		.transport = "auto",
		.write_rate = 100000,
		.hot_fraction = 0.05,
		.hot_probability = 0.9,
		.seed = 1,
		.threads = 1,
	};
	cli_migration_defaults(&o->mig);
	/* recv waits for a person to start rmig send on the other host. */
	if (!strcmp(argv[0], "recv"))
		o->mig.timeout_ms = 600000;
	if (cli_options_table(own, take, longopts, CLI_OPTIONS_MAX))
		return -EINVAL;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case O_RAM:
			if (cli_parse_size(optarg, &value) || value < GUEST_PAGE_SIZE ||
			    value % GUEST_PAGE_SIZE) {
				fprintf(stderr, "rmig %s: --ram %s: a size in whole 4 KiB pages\n",
					argv[0], optarg);
				return -EINVAL;
			}
			o->ram = (size_t)value;
			break;
		case O_WORKLOAD:
			o->workload = optarg;
			break;
		case O_WRITE_RATE:
			o->write_rate = strtod(optarg, NULL);
			break;
		case O_HOT_FRACTION:
			o->hot_fraction = strtod(optarg, NULL);
			break;
		case O_HOT_PROBABILITY:
			o->hot_probability = strtod(optarg, NULL);
			break;
		case O_TRANSPORT:
			o->transport = optarg;
			break;
		case O_URI:
			o->uri = optarg;
			break;
		case O_LISTEN:
			o->listen = optarg;
			break;
		case O_SEED:
			o->seed = strtoull(optarg, NULL, 0);
			break;
		case O_KEY_FILE:
			if (cli_key_file_read(argv[0], optarg, &o->cred))
				return -EINVAL;
			break;
		case O_INSECURE:
			o->cred.insecure = 1;
			break;
		case O_PEER_TIMEOUT:
			if (cli_peer_timeout_parse(argv[0], optarg, &o->cred))
				return -EINVAL;
			break;
		default:
			ret = cli_migration_option(argv[0], c, optarg, &o->mig);
			if (ret < 0)
				return ret;
			if (ret == 0) {
				demo_usage(argv[0]);
				return -EINVAL;
			}
			if (o->mig.help) {
				demo_usage(argv[0]);
				return 1;
			}
			break;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "rmig %s: unexpected argument '%s'\n", argv[0], argv[optind]);
		return -EINVAL;
	}
	if (cli_tls_check(argv[0], &o->mig.tls))
		return -EINVAL;
	/* Applied with the credentials (cli_credentials_apply). */
	o->cred.recovery_window_ms = o->mig.recovery_window_ms;
	return 0;
}

/* "tcp://host:port, TLS psk": what the report says of the connection to or from uri. */
static const char *demo_transport_name(const struct demo_options *o, const char *uri, char *buf,
				       size_t len)
{
	int n = -1;

	if (!strncmp(uri, "tcp://", 6))
		n = snprintf(buf, len, "%s, TLS %s", uri,
			     cli_tls_name(&o->mig.tls, o->cred.key_len));
	if (n < 0 || (size_t)n >= len) /* not tcp, or no room for the TLS mode: the URI alone */
		snprintf(buf, len, "%s", uri);
	return buf;
}

static struct workload_params demo_workload_params(const struct demo_options *o)
{
	return (struct workload_params){
		.page_size = GUEST_PAGE_SIZE,
		.write_rate = o->write_rate,
		.hot_fraction = o->hot_fraction,
		.hot_probability = o->hot_probability,
		.seed = o->seed,
		.threads = o->threads,
	};
}

static void demo_progress(void *opaque, uint32_t event, const struct rmig_stats *st)
{
	struct demo_guest *g = opaque;
	char sent[32], remaining[32], rate[32], eta_text[32];
	uint64_t bandwidth = st->bandwidth;
	double eta;

	if (event == RMIG_EVENT_DONE) {
		if (g->progress_open)
			fputc('\n', stderr);
		g->progress_open = 0;
		return;
	}
	if (event == RMIG_EVENT_RECOVERING || event == RMIG_EVENT_RECOVERED) {
		fprintf(stderr, "%s%s\n", g->progress_open ? "\n" : "",
			event == RMIG_EVENT_RECOVERING
				? "post-copy paused: the connection is lost; the VM runs on the "
				  "destination; recovering (rmig recover --control PATH URI points "
				  "it at a new path)"
				: "post-copy recovered: the tail goes on over a new connection");
		g->progress_open = 0;
		fflush(stderr);
		return;
	}
	if (!g->progress_tty && event != RMIG_EVENT_SYNC && event != RMIG_EVENT_PAUSED)
		return;
	/* Before the first round ends there is no measurement yet: estimate from what left so
	 * far, once enough has left to mean something. */
	if (!bandwidth && st->bytes >= (1u << 20) && st->total_time_ms > st->setup_time_ms)
		bandwidth = st->bytes * 1000u / (st->total_time_ms - st->setup_time_ms);
	eta = bandwidth ? (double)st->remaining_bytes / (double)bandwidth : 0.0;
	if (event == RMIG_EVENT_PAUSED) {
		fprintf(stderr, "%sround %u: VM paused, final round (%s dirty)%s",
			g->progress_tty ? "\r\033[K" : "", st->rounds + 1,
			cli_format_bytes(st->remaining_bytes, remaining, sizeof(remaining)),
			g->progress_tty ? "" : "\n");
		g->progress_open = g->progress_tty;
		return;
	}
	if (event == RMIG_EVENT_SYNC) {
		fprintf(stderr,
			"%sround %u done  sent %s  dirty now %s  rate %s/s  projected downtime "
			"%" PRIu64 " ms: %s%s",
			g->progress_tty ? "\r\033[K" : "", st->round,
			cli_format_bytes(st->bytes, sent, sizeof(sent)),
			cli_format_bytes(st->remaining_bytes, remaining, sizeof(remaining)),
			cli_format_bytes(bandwidth, rate, sizeof(rate)), st->projected_downtime_ms,
			st->stop_reason ? "stop" : "next round", g->progress_tty ? "" : "\n");
		g->progress_open = g->progress_tty;
		fflush(stderr);
		return;
	}
	if (bandwidth)
		snprintf(eta_text, sizeof(eta_text), "%.1f s", eta);
	else
		snprintf(eta_text, sizeof(eta_text), "-");
	fprintf(stderr, "%sround %u  sent %s  remaining %s  rate %s/s  ETA %s%s",
		g->progress_tty ? "\r\033[K" : "", st->round,
		cli_format_bytes(st->bytes, sent, sizeof(sent)),
		cli_format_bytes(st->remaining_bytes, remaining, sizeof(remaining)),
		cli_format_bytes(bandwidth, rate, sizeof(rate)), eta_text,
		g->progress_tty ? "" : "\n");
	g->progress_open = g->progress_tty;
	fflush(stderr);
}

static int demo_guest_init(struct demo_guest *g, const struct demo_options *o, int source)
{
	struct workload_params wp = demo_workload_params(o);
	int ret;

	memset(g, 0, sizeof(*g));
	g->progress_tty = isatty(STDERR_FILENO);
	ret = guest_init(&g->guest, o->workload, o->ram, &wp, !source);
	if (ret == -ENOMEM)
		fprintf(stderr, "rmig: cannot allocate %zu bytes of guest RAM\n", o->ram);
	else if (ret)
		fprintf(stderr, "rmig: workload '%s': %s\n", o->workload, rmig_strerror(ret));
	return ret;
}

static int demo_session(uint32_t role, const struct demo_options *o, struct demo_guest *g,
			rmig_session_t **session_p)
{
	struct rmig_params params;
	struct rmig_callbacks cb = {0};
	rmig_session_t *s;
	int ret;

	cli_migration_params(&o->mig, &params);
	guest_callbacks(role, &cb);
	if (role == RMIG_ROLE_SOURCE) {
		cb.field_mask |= RMIG_CB_PROGRESS;
		cb.progress = demo_progress;
	}
	ret = rmig_session_create(role, &s);
	if (ret)
		return ret;
	ret = rmig_session_set_params(s, &params);
	if (!ret)
		ret = cli_credentials_apply(role == RMIG_ROLE_SOURCE ? "send" : "recv", s,
					    &o->cred);
	if (!ret)
		ret = cli_tls_apply(role == RMIG_ROLE_SOURCE ? "send" : "recv", s, &o->mig.tls);
	if (!ret)
		ret = rmig_session_set_callbacks(s, &cb, g);
	if (!ret)
		ret = rmig_region_add(s, GUEST_REGION_ID, g->guest.ram, g->guest.length,
				      GUEST_PAGE_SIZE);
	if (ret) {
		fprintf(stderr, "rmig: session setup: %s\n", rmig_strerror(ret));
		rmig_session_destroy(s);
		return ret;
	}
	*session_p = s;
	return 0;
}

/* The first IPv4 address of an interface that is up and not loopback: soft-RoCE devices sit
 * on such an interface, never on lo. */
static int demo_rdma_address(char *buf, size_t len)
{
	struct ifaddrs *ifa, *it;
	int ret = -ENODEV;

	if (getifaddrs(&ifa))
		return -errno;
	for (it = ifa; it; it = it->ifa_next) {
		if (!it->ifa_addr || it->ifa_addr->sa_family != AF_INET ||
		    (it->ifa_flags & IFF_LOOPBACK) || !(it->ifa_flags & IFF_UP))
			continue;
		inet_ntop(AF_INET, &((struct sockaddr_in *)it->ifa_addr)->sin_addr, buf,
			  (socklen_t)len);
		ret = 0;
		break;
	}
	freeifaddrs(ifa);
	return ret;
}

static int demo_listen_uri(const struct demo_options *o, char *buf, size_t len,
			   const char **scheme_p)
{
	const char *scheme = o->transport;
	char address[64];

	if (!strcmp(scheme, "auto"))
		scheme = rmig_transport_available("rdma") == 1 ? "rdma" : "tcp";
	*scheme_p = scheme;
	if (!strcmp(scheme, "tcp")) {
		snprintf(buf, len, "tcp://127.0.0.1:0");
	} else if (!strcmp(scheme, "loop")) {
		snprintf(buf, len, "loop:rmig-demo-%ld", (long)getpid());
	} else if (!strcmp(scheme, "rdma")) {
		if (rmig_transport_available("rdma") != 1) {
			fprintf(stderr, "rmig demo: no RDMA device here (try --transport tcp)\n");
			return -ENODEV;
		}
		if (demo_rdma_address(address, sizeof(address))) {
			fprintf(stderr, "rmig demo: no interface with an IPv4 address for rdma\n");
			return -ENODEV;
		}
		snprintf(buf, len, "rdma://%s:0", address);
	} else {
		fprintf(stderr, "rmig demo: --transport %s: auto, rdma, tcp or loop\n", scheme);
		return -EINVAL;
	}
	return 0;
}

/* What the report adds to the session's statistics. */
struct demo_extra {
	const char *method_reason;
	uint64_t guest_reads; /* destination guest after resume (0: none ran here) */
	uint64_t guest_errors;
};

/* s as a JSON string body: quotes, backslashes and control bytes escaped. */
static void demo_json_string(const char *s)
{
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", (unsigned char)*s);
		else
			putchar(*s);
	}
}

static double demo_mean_sends(const struct rmig_stats *st)
{
	uint64_t pages = st->pages_sent_histogram[0] + st->pages_sent_histogram[1] +
			 st->pages_sent_histogram[2] + st->pages_sent_histogram[3];

	return pages ? (double)st->pages_sent / (double)pages : 0.0;
}

static void demo_report(const char *command, const struct demo_options *o, const char *transport,
			const struct rmig_stats *st, const char *ram_check, int ret,
			rmig_session_t *s, const struct demo_extra *x)
{
	char b1[32], b2[32], b3[32];
	const char *stop = rmig_stop_reason_name(st->stop_reason);

	if (o->mig.json) {
		printf("{\"command\": \"%s\", \"status\": \"%s\", \"method\": \"%s\", "
		       "\"method_used\": \"%s\", \"method_reason\": \"",
		       command, rmig_status_name(st->status), rmig_method_name(st->method),
		       rmig_method_name(st->method_used));
		demo_json_string(x->method_reason);
		printf("\", \"transport\": \"%s\", \"dirty_tracking\": \"%s\", \"policy\": \"%s\", "
		       "\"ram_bytes\": %" PRIu64
		       ", \"rounds\": %u, \"stop_reason\": \"%s\", \"downtime_ms\": %" PRIu64 ", "
		       "\"total_time_ms\": %" PRIu64 ", \"bytes\": %" PRIu64
		       ", \"bytes_received\": %" PRIu64 ", \"data_bytes\": %" PRIu64
		       ", \"pages_sent\": %" PRIu64 ", \"zero_pages\": %" PRIu64
		       ", \"pages_sent_multiple\": %" PRIu64 ", \"sends_histogram\": [%" PRIu64
		       ", %" PRIu64 ", %" PRIu64 ", %" PRIu64 "], \"sends_max\": %u"
		       ", \"sends_mean\": %.3f, \"pages_verified\": %" PRIu64
		       ", \"pages_mismatched\": %" PRIu64 ", \"pages_held\": %" PRIu64
		       ", \"postcopy_pages\": %" PRIu64 ", \"postcopy_pages_fetched\": %" PRIu64
		       ", \"postcopy_faults\": %" PRIu64 ", \"postcopy_stall_us\": %" PRIu64
		       ", \"recoveries\": %" PRIu64 ", \"recovering_ms\": %" PRIu64
		       ", \"guest_reads_after_resume\": %" PRIu64
		       ", \"guest_errors_after_resume\": %" PRIu64 ", \"ram_check\": \"%s\", "
		       "\"error\": \"",
		       transport, cli_dirty_name(st->dirty_source),
		       o->mig.policy == RMIG_POLICY_XEN ? "xen" : "qemu", st->ram_bytes, st->rounds,
		       stop, st->downtime_ms, st->total_time_ms, st->bytes, st->bytes_received,
		       st->data_bytes, st->pages_sent, st->zero_pages, st->pages_sent_multiple,
		       st->pages_sent_histogram[0], st->pages_sent_histogram[1],
		       st->pages_sent_histogram[2], st->pages_sent_histogram[3], st->pages_sent_max,
		       demo_mean_sends(st), st->pages_verified, st->pages_mismatched,
		       st->pages_held, st->postcopy_pages, st->postcopy_pages_fetched,
		       st->postcopy_faults, st->postcopy_stall_us, st->recoveries,
		       st->recovering_ms, x->guest_reads, x->guest_errors, ram_check);
		demo_json_string(ret ? rmig_last_error(s) : "");
		printf("\"}\n");
		return;
	}
	printf("\nrmig %s: %s of guest RAM, workload %s\n", command,
	       cli_format_bytes(st->ram_bytes, b1, sizeof(b1)), o->workload);
	printf("  %-26s %s\n", "result", rmig_status_name(st->status));
	if (ret)
		printf("  %-26s %s\n", "error", rmig_last_error(s));
	if (st->method_used != st->method)
		printf("  %-26s %s: %s (policy %s, downtime target %u ms)\n", "method",
		       rmig_method_name(st->method), rmig_method_name(st->method_used),
		       st->policy_used == RMIG_POLICY_XEN ? "xen" : "qemu", o->mig.downtime_ms);
	else
		printf("  %-26s %s (policy %s, downtime target %u ms)\n", "method",
		       rmig_method_name(st->method),
		       o->mig.policy == RMIG_POLICY_XEN ? "xen" : "qemu", o->mig.downtime_ms);
	if (x->method_reason[0] && st->method == RMIG_METHOD_AUTO)
		printf("  %-26s %s\n", "why", x->method_reason);
	printf("  %-26s %s\n", "transport", transport);
	if (strcmp(command, "recv"))
		printf("  %-26s %s\n", "dirty tracking", cli_dirty_name(st->dirty_source));
	if (!strcmp(command, "recv"))
		printf("  %-26s %u live + 1 paused\n", "rounds", st->rounds);
	else
		printf("  %-26s %u live + 1 paused (stopped: %s)\n", "rounds", st->rounds, stop);
	printf("  %-26s %" PRIu64 " ms\n", "downtime", st->downtime_ms);
	printf("  %-26s %.2f s\n", "total time", (double)st->total_time_ms / 1000.0);
	printf("  %-26s %s sent (%.2f x RAM; page data %s), %s received\n", "bytes on the wire",
	       cli_format_bytes(st->bytes, b1, sizeof(b1)),
	       st->ram_bytes ? (double)st->bytes / (double)st->ram_bytes : 0.0,
	       cli_format_bytes(st->data_bytes, b2, sizeof(b2)),
	       cli_format_bytes(st->bytes_received, b3, sizeof(b3)));
	if (!strcmp(command, "recv")) {
		printf("  %-26s %" PRIu64 "\n", "pages received", st->pages_received);
	} else {
		printf("  %-26s %" PRIu64 " (of which %" PRIu64 " zero-page markers)\n",
		       "pages sent", st->pages_sent, st->zero_pages);
		printf("  %-26s %" PRIu64 " (sent 1x %" PRIu64 ", 2x %" PRIu64 ", 3x %" PRIu64
		       ", 4x+ %" PRIu64 "; most %u, mean %.2f)\n",
		       "pages sent more than once", st->pages_sent_multiple,
		       st->pages_sent_histogram[0], st->pages_sent_histogram[1],
		       st->pages_sent_histogram[2], st->pages_sent_histogram[3], st->pages_sent_max,
		       demo_mean_sends(st));
	}
	if (st->method_used == RMIG_METHOD_PREDICT)
		printf("  %-26s %" PRIu64 " held at the end; %" PRIu64 " hits, %" PRIu64
		       " held in vain, %" PRIu64 " sent then rewritten (threshold %u)\n",
		       "prediction", st->pages_held, st->predict_hits, st->predict_hold_misses,
		       st->predict_send_misses, st->predict_threshold);
	if (st->postcopy_pages)
		printf("  %-26s %" PRIu64 " pages after resume (%" PRIu64 " fetched on %" PRIu64
		       " faults), stall %.1f ms, tail %.2f s\n",
		       "post-copy", st->postcopy_pages, st->postcopy_pages_fetched,
		       st->postcopy_faults, (double)st->postcopy_stall_us / 1000.0,
		       (double)st->postcopy_time_ms / 1000.0);
	if (st->recoveries || st->recovering_ms)
		printf("  %-26s %" PRIu64 " new connections, %.1f s recovering\n",
		       "post-copy recovery", st->recoveries, (double)st->recovering_ms / 1000.0);
	printf("  %-26s %" PRIu64 " / %" PRIu64 "\n", "verified / mismatched pages",
	       st->pages_verified, st->pages_mismatched);
	printf("  %-26s %s\n", "device state",
	       cli_format_bytes(st->device_state_bytes, b3, sizeof(b3)));
	if (x->guest_reads)
		printf("  %-26s %" PRIu64 " page reads after resume, %" PRIu64 " bad records\n",
		       "guest on the destination", x->guest_reads, x->guest_errors);
	printf("  %-26s %s\n", "destination RAM", ram_check);
}

static void demo_workload_warmup(void)
{
	struct timespec ts = {.tv_sec = 0, .tv_nsec = 300 * 1000000L};

	/* Let the guest run a moment, so its hot set is hot when the migration starts. */
	nanosleep(&ts, NULL);
}

int rmig_cli_demo(int argc, char **argv)
{
	struct demo_options o;
	struct demo_guest source, dest;
	rmig_session_t *src = NULL, *dst = NULL;
	struct rmig_stats st = {.struct_size = sizeof(st)};
	char uri[DEMO_URI_MAX], listen_uri[DEMO_URI_MAX];
	const char *scheme, *ram_check = "not checked";
	char transport[DEMO_URI_MAX + 32];
	struct demo_extra extra = {.method_reason = ""};
	int ret, dest_ret, identical = 0;

	ret = demo_parse(argc, argv, &o);
	if (ret)
		return ret > 0 ? 0 : 2;
	/* Both ends run here: a fresh random key authenticates them to each other, so the demo
	 * needs no flag and still runs as every migration must, with a credential. */
	if (!o.cred.key_len) {
		if (getrandom(o.cred.key, 32, 0) != 32) {
			fprintf(stderr, "rmig demo: no random key: %s\n", strerror(errno));
			return 1;
		}
		o.cred.key_len = 32;
	}
	ret = demo_listen_uri(&o, listen_uri, sizeof(listen_uri), &scheme);
	if (ret)
		return 2;
	ret = demo_guest_init(&source, &o, 1);
	if (ret)
		return 1;
	ret = demo_guest_init(&dest, &o, 0);
	if (ret)
		goto out_source;
	ret = demo_session(RMIG_ROLE_DESTINATION, &o, &dest, &dst);
	if (ret)
		goto out_dest;
	ret = demo_session(RMIG_ROLE_SOURCE, &o, &source, &src);
	if (ret)
		goto out_dst_session;
	ret = rmig_session_listen(dst, listen_uri);
	if (!ret)
		ret = rmig_session_listen_uri(dst, uri, sizeof(uri));
	if (ret) {
		fprintf(stderr, "rmig demo: listen on %s: %s\n", listen_uri, rmig_last_error(dst));
		goto out_src_session;
	}
	snprintf(transport, sizeof(transport), "%s (%s)", scheme,
		 demo_transport_name(&o, uri, listen_uri, sizeof(listen_uri)));
	ret = rmig_session_start(dst);
	if (ret)
		goto out_src_session;
	ret = guest_start(&source.guest);
	if (ret) {
		fprintf(stderr, "rmig demo: workload start: %s\n", rmig_strerror(ret));
		rmig_session_cancel(dst);
		rmig_session_wait(dst, -1);
		goto out_src_session;
	}
	demo_workload_warmup();
	if (!o.mig.json)
		fprintf(stderr, "rmig demo: migrating %s guest (%s) over %s\n",
			cli_format_bytes(o.ram, listen_uri, sizeof(listen_uri)), o.workload,
			transport);
	ret = rmig_session_connect(src, uri);
	if (!ret)
		ret = rmig_session_run(src);
	if (ret)
		rmig_session_cancel(dst);
	dest_ret = rmig_session_wait(dst, -1);
	guest_stop(&source.guest);
	rmig_session_stats(src, &st);
	extra.method_reason = rmig_session_method_reason(src);
	if (dest.guest.resumed && dest_ret) {
		/* Post-copy lost the source after the guest resumed here: its threads wait on
		 * pages that will never come. Nothing can stop them; report and leave. */
		demo_report("demo", &o, transport, &st, "RESUMED, then lost pages (post-copy)",
			    dest_ret, dst, &extra);
		fflush(stdout);
		_exit(1);
	}
	extra.guest_reads = guest_reader_stop(&dest.guest, &extra.guest_errors);
	if (!ret && !dest_ret) {
		identical = guest_identical(&source.guest, &dest.guest);
		ram_check = identical ? "identical to the source at switchover (memcmp) and resumed"
				      : "DIFFERS from the source";
	} else if (ret) {
		ram_check = dest.guest.resumed ? "RESUMED after a failure"
					       : "discarded (never resumed)";
	}
	demo_report("demo", &o, transport, &st, ram_check, ret ? ret : dest_ret, ret ? src : dst,
		    &extra);
	if (!ret && dest_ret)
		fprintf(stderr, "rmig demo: destination: %s\n", rmig_last_error(dst));
	ret = (!ret && !dest_ret && identical && dest.guest.resumed && !extra.guest_errors) ? 0 : 1;

out_src_session:
	rmig_session_destroy(src);
out_dst_session:
	rmig_session_destroy(dst);
out_dest:
	guest_fini(&dest.guest);
out_source:
	guest_fini(&source.guest);
	return ret ? 1 : 0;
}

/* Where the source's guest is after `rmig send` ends: it says only what the run did to it. */
static const char *demo_send_outcome(const struct rmig_stats *st, int ret, const struct guest *g)
{
	if (st->status == RMIG_STATUS_LOST)
		return "LOST: it had resumed on the destination, which lacks pages; it cannot run "
		       "here again";
	if (!ret)
		return "checked by rmig recv against the RAM hash in the device state";
	if (!g->paused)
		return "never paused: the guest keeps running here";
	if (g->resumed)
		return "paused, then resumed here after the failure: the guest keeps running here";
	return "PAUSED here and not resumed";
}

/* Where the destination's guest is after `rmig recv` ends. */
static const char *demo_recv_outcome(const struct rmig_stats *st, int ret, const struct guest *g,
				     int match)
{
	if (st->status == RMIG_STATUS_LOST)
		return "LOST: resumed here, then pages never came (post-copy)";
	if (ret && g->resumed)
		return "RESUMED here, then the migration failed";
	if (ret)
		return "discarded (never resumed)";
	return match ? "RAM hash equals the sender's at pause, resumed"
		     : "RAM hash DIFFERS from the sender's";
}

int rmig_cli_send(int argc, char **argv)
{
	struct demo_options o;
	struct demo_guest source;
	rmig_session_t *src = NULL;
	struct cli_control *control = NULL;
	struct rmig_stats st = {.struct_size = sizeof(st)};
	char size[32], hash[17], name[DEMO_URI_MAX + 32];
	int ret;

	ret = demo_parse(argc, argv, &o);
	if (ret)
		return ret > 0 ? 0 : 2;
	if (!o.uri) {
		fprintf(stderr, "rmig send: --uri tcp://host:port (where rmig recv listens)\n");
		return 2;
	}
	o.cred.x509 = o.mig.tls.mode == RMIG_TLS_X509;
	if (cli_credentials_check("send", &o.cred))
		return 2;
	ret = demo_guest_init(&source, &o, 1);
	if (ret)
		return 1;
	source.guest.with_hash = 1;
	ret = demo_session(RMIG_ROLE_SOURCE, &o, &source, &src);
	if (ret)
		goto out_guest;
	ret = guest_start(&source.guest);
	if (ret)
		goto out_session;
	demo_workload_warmup();
	if (!o.mig.json)
		fprintf(stderr, "rmig send: migrating %s guest (%s) to %s\n",
			cli_format_bytes(o.ram, size, sizeof(size)), o.workload, o.uri);
	ret = rmig_session_connect(src, o.uri);
	if (!ret && o.mig.control)
		ret = cli_control_start("send", o.mig.control, src, &control);
	if (!ret)
		ret = rmig_session_run(src);
	cli_control_stop(control);
	guest_stop(&source.guest);
	rmig_session_stats(src, &st);
	demo_report("send", &o, demo_transport_name(&o, o.uri, name, sizeof(name)), &st,
		    demo_send_outcome(&st, ret, &source.guest), ret, src,
		    &(struct demo_extra){.method_reason = rmig_session_method_reason(src)});
	guest_sent_hash(&source.guest, hash);
	if (!ret && !o.mig.json)
		printf("  %-26s %s\n", "RAM hash at pause", hash);
out_session:
	rmig_session_destroy(src);
out_guest:
	guest_fini(&source.guest);
	return ret ? 1 : 0;
}

int rmig_cli_recv(int argc, char **argv)
{
	struct demo_options o;
	struct demo_guest dest;
	rmig_session_t *dst = NULL;
	struct cli_control *control = NULL;
	struct rmig_stats st = {.struct_size = sizeof(st)};
	char uri[DEMO_URI_MAX], expected[17] = "", actual[17] = "", name[DEMO_URI_MAX + 32];
	int ret, match = 0;

	ret = demo_parse(argc, argv, &o);
	if (ret)
		return ret > 0 ? 0 : 2;
	if (!o.listen) {
		fprintf(stderr, "rmig recv: --listen tcp://0.0.0.0:port\n");
		return 2;
	}
	o.cred.x509 = o.mig.tls.mode == RMIG_TLS_X509;
	if (cli_credentials_check("recv", &o.cred))
		return 2;
	ret = demo_guest_init(&dest, &o, 0);
	if (ret)
		return 1;
	ret = demo_session(RMIG_ROLE_DESTINATION, &o, &dest, &dst);
	if (ret)
		goto out_guest;
	ret = rmig_session_listen(dst, o.listen);
	if (!ret)
		ret = rmig_session_listen_uri(dst, uri, sizeof(uri));
	if (ret) {
		fprintf(stderr, "rmig recv: %s\n", rmig_last_error(dst));
		goto out_session;
	}
	if (o.mig.control && cli_control_start("recv", o.mig.control, dst, &control)) {
		ret = -EINVAL;
		goto out_session;
	}
	fprintf(stderr, "rmig recv: waiting for rmig send on %s (%zu bytes of guest RAM)\n", uri,
		o.ram);
	ret = rmig_session_run(dst);
	cli_control_stop(control);
	rmig_session_stats(dst, &st);
	if (!ret) {
		guest_sent_hash(&dest.guest, expected);
		guest_ram_hash(&dest.guest, actual);
		match = expected[0] && !strcmp(expected, actual);
	}
	demo_report("recv", &o, demo_transport_name(&o, uri, name, sizeof(name)), &st,
		    demo_recv_outcome(&st, ret, &dest.guest, match), ret, dst,
		    &(struct demo_extra){.method_reason = ""});
	if (!ret && !o.mig.json)
		printf("  %-26s %s (sender %s)\n", "RAM hash", actual, expected);
	if (ret && dest.guest.resumed) {
		/* The guest resumed here and waits on pages that will never come: its threads
		 * cannot be stopped. Report and leave. */
		fflush(stdout);
		_exit(1);
	}
	if (!ret && !match)
		ret = -EIO;
out_session:
	rmig_session_destroy(dst);
out_guest:
	guest_fini(&dest.guest);
	return ret ? 1 : 0;
}
