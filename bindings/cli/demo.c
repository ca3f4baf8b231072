/* SPDX-License-Identifier: MIT */
/* bindings/cli/demo.c - `rmig demo`, `rmig send` and `rmig recv`: live-migrate a guest whose
 * RAM lives in this process (a workload from bench/workloads keeps writing to it) through the
 * public ABI, with a live progress line and the final report. demo runs both ends here and
 * checks the destination RAM byte for byte; send/recv run one end each on two hosts and check a
 * hash of the RAM that travels with the device state. */
#include <errno.h>
#include <getopt.h>
#include <ifaddrs.h>
#include <inttypes.h>
#include <net/if.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "bench/workloads/workload.h"
#include "bindings/cli/cli.h"
#include "bindings/cli/credentials.h"
#include "rmig.h"
#include "transport/transport.h"

#define DEMO_PAGE_SIZE 4096u
#define DEMO_REGION_ID 0u
#define DEMO_DEVICE_STATE_BYTES (160u * 1024u) /* vCPU and device state stand-in */
#define DEMO_HASH_TAG "rmig-demo ram-hash "

struct demo_options {
	size_t ram;
	const char *workload;
	const char *transport;
	const char *uri;    /* send: where the receiver listens */
	const char *listen; /* recv: where to listen */
	uint32_t method;
	uint32_t downtime_ms;
	uint32_t policy;
	uint32_t max_rounds;
	uint32_t verify;
	uint32_t dirty_source;
	uint64_t bandwidth;
	double write_rate;
	double hot_fraction;
	double hot_probability;
	uint64_t seed;
	unsigned threads;
	int json;
	struct cli_credentials cred; /* send/recv: --key-file, --insecure, --peer-timeout */
};

/* One end's guest: its RAM, the workload standing in for its vCPUs, its device state. */
struct demo_guest {
	void *ram;
	size_t length;
	struct workload *workload;
	int running;
	int with_hash; /* send/recv: the RAM hash travels in the device state */
	unsigned char *device_state;
	size_t device_state_len;
	size_t device_state_pos;
	int resumed;
	int destination;	 /* this guest resumes here after the migration */
	struct workload *reader; /* destination: the guest running on, reading its RAM */
	int progress_tty;
	int progress_open; /* a \r progress line is on the terminal */
	const struct demo_options *options;
};

/* enum rmig_dirty_source, by name ("hypervisor" needs a hypervisor). */
static const char *const demo_dirty_names[] = {"auto", "hypervisor", "uffd-async", "uffd-sync",
					       "hash"};

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
		"  --verify all|none     hash-compare every page at switchover (default all)\n"
		"  --dirty KIND          auto, uffd-async, uffd-sync or hash (default auto)\n"
		"  --seed N              workload seed\n"
		"  --json                print the report as JSON on stdout\n"
		"send and recv (demo makes a random key of its own):\n" CLI_CREDENTIALS_USAGE,
		command);
}

static int demo_parse_size(const char *text, uint64_t *value_p)
{
	char *end;
	double v = strtod(text, &end);

	if (end == text || v < 0)
		return -EINVAL;
	switch (*end) {
	case 'k':
	case 'K':
		v *= 1024.0;
		end++;
		break;
	case 'm':
	case 'M':
		v *= 1024.0 * 1024.0;
		end++;
		break;
	case 'g':
	case 'G':
		v *= 1024.0 * 1024.0 * 1024.0;
		end++;
		break;
	case 't':
	case 'T':
		v *= 1024.0 * 1024.0 * 1024.0 * 1024.0;
		end++;
		break;
	default:
		break;
	}
	if (*end == 'i')
		end++;
	if (*end == 'B' || *end == 'b')
		end++;
	if (*end)
		return -EINVAL;
	*value_p = (uint64_t)v;
	return 0;
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
		O_METHOD,
		O_DOWNTIME,
		O_POLICY,
		O_MAX_ROUNDS,
		O_BANDWIDTH,
		O_VERIFY,
		O_DIRTY,
		O_SEED,
		O_JSON,
		O_KEY_FILE,
		O_INSECURE,
		O_PEER_TIMEOUT,
		O_HELP
	};
	static const struct option longopts[] = {
		{"ram", required_argument, NULL, O_RAM},
		{"workload", required_argument, NULL, O_WORKLOAD},
		{"write-rate", required_argument, NULL, O_WRITE_RATE},
		{"hot-fraction", required_argument, NULL, O_HOT_FRACTION},
		{"hot-probability", required_argument, NULL, O_HOT_PROBABILITY},
		{"transport", required_argument, NULL, O_TRANSPORT},
		{"uri", required_argument, NULL, O_URI},
		{"listen", required_argument, NULL, O_LISTEN},
		{"method", required_argument, NULL, O_METHOD},
		{"downtime-ms", required_argument, NULL, O_DOWNTIME},
		{"policy", required_argument, NULL, O_POLICY},
		{"max-rounds", required_argument, NULL, O_MAX_ROUNDS},
		{"bandwidth", required_argument, NULL, O_BANDWIDTH},
		{"verify", required_argument, NULL, O_VERIFY},
		{"dirty", required_argument, NULL, O_DIRTY},
		{"seed", required_argument, NULL, O_SEED},
		{"json", no_argument, NULL, O_JSON},
		{"key-file", required_argument, NULL, O_KEY_FILE},
		{"insecure", no_argument, NULL, O_INSECURE},
		{"peer-timeout", required_argument, NULL, O_PEER_TIMEOUT},
		{"help", no_argument, NULL, O_HELP},
		{NULL, 0, NULL, 0},
	};
	uint64_t value;
	int c;

	*o = (struct demo_options){
		.ram = 1ull << 30,
		.workload = "zipf-kv",
		.transport = "auto",
		.downtime_ms = 300,
		.policy = RMIG_POLICY_QEMU,
		.max_rounds = 30,
		.verify = RMIG_VERIFY_ALL,
		.write_rate = 100000,
		.hot_fraction = 0.05,
		.hot_probability = 0.9,
		.seed = 1,
		.threads = 1,
	};
	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case O_RAM:
			if (demo_parse_size(optarg, &value) || value < DEMO_PAGE_SIZE ||
			    value % DEMO_PAGE_SIZE) {
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
		case O_METHOD: {
			uint32_t m;

			for (m = RMIG_METHOD_PRECOPY; m <= RMIG_METHOD_AUTO; m++) {
				if (!strcmp(optarg, rmig_method_name(m)))
					break;
			}
			if (m > RMIG_METHOD_AUTO) {
				fprintf(stderr,
					"rmig %s: --method precopy, predict, tsmc, postcopy, hybrid "
					"or auto\n",
					argv[0]);
				return -EINVAL;
			}
			o->method = m;
			break;
		}
		case O_DOWNTIME:
			o->downtime_ms = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		case O_POLICY:
			if (!strcmp(optarg, "qemu")) {
				o->policy = RMIG_POLICY_QEMU;
			} else if (!strcmp(optarg, "xen")) {
				o->policy = RMIG_POLICY_XEN;
			} else {
				fprintf(stderr, "rmig %s: --policy qemu or xen\n", argv[0]);
				return -EINVAL;
			}
			break;
		case O_MAX_ROUNDS:
			o->max_rounds = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		case O_BANDWIDTH:
			if (demo_parse_size(optarg, &o->bandwidth)) {
				fprintf(stderr, "rmig %s: --bandwidth %s: bytes per second\n",
					argv[0], optarg);
				return -EINVAL;
			}
			break;
		case O_VERIFY:
			if (!strcmp(optarg, "all")) {
				o->verify = RMIG_VERIFY_ALL;
			} else if (!strcmp(optarg, "none")) {
				o->verify = RMIG_VERIFY_NONE;
			} else {
				fprintf(stderr, "rmig %s: --verify all or none\n", argv[0]);
				return -EINVAL;
			}
			break;
		case O_DIRTY: {
			size_t i;

			for (i = 0; i < sizeof(demo_dirty_names) / sizeof(demo_dirty_names[0]);
			     i++) {
				if (!strcmp(optarg, demo_dirty_names[i]))
					break;
			}
			if (i == sizeof(demo_dirty_names) / sizeof(demo_dirty_names[0])) {
				fprintf(stderr,
					"rmig %s: --dirty auto, uffd-async, uffd-sync or hash\n",
					argv[0]);
				return -EINVAL;
			}
			o->dirty_source = (uint32_t)i;
			break;
		}
		case O_SEED:
			o->seed = strtoull(optarg, NULL, 0);
			break;
		case O_JSON:
			o->json = 1;
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
		case O_HELP:
			demo_usage(argv[0]);
			return 1;
		default:
			demo_usage(argv[0]);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "rmig %s: unexpected argument '%s'\n", argv[0], argv[optind]);
		return -EINVAL;
	}
	return 0;
}

static const char *demo_bytes(uint64_t bytes, char *buf, size_t len)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double v = (double)bytes;
	unsigned u = 0;

	while (v >= 1024.0 && u < 4) {
		v /= 1024.0;
		u++;
	}
	snprintf(buf, len, u ? "%.2f %s" : "%.0f %s", v, units[u]);
	return buf;
}

static void *demo_ram_alloc(size_t length)
{
	void *ram = mmap(NULL, length, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	return ram == MAP_FAILED ? NULL : ram;
}

/* Give the guest a memory image before it boots: most pages hold data, one in eight stays
 * zero (as freshly booted guests have plenty of), so zero-page markers show in the report. */
static void demo_ram_fill(void *ram, size_t length, uint64_t seed)
{
	uint64_t *words = ram;
	uint64_t state = seed * 0x9e3779b97f4a7c15ull + 1;
	size_t pages = length / DEMO_PAGE_SIZE;

	for (size_t p = 0; p < pages; p++) {
		uint64_t *page = words + p * (DEMO_PAGE_SIZE / 8);

		if (p % 8 == 7)
			continue;
		for (size_t w = 0; w < DEMO_PAGE_SIZE / 8; w += 8) {
			state ^= state << 13;
			state ^= state >> 7;
			state ^= state << 17;
			page[w] = state;
		}
	}
}

static void demo_device_state_make(struct demo_guest *g, uint64_t seed)
{
	uint64_t state = seed ^ 0x5bd1e995u;

	g->device_state_len = DEMO_DEVICE_STATE_BYTES;
	for (size_t i = 0; i < g->device_state_len; i++) {
		state = state * 6364136223846793005ull + 1442695040888963407ull;
		g->device_state[i] = (unsigned char)(state >> 56);
	}
	if (g->with_hash) {
		/* The paused guest's RAM, as the receiver must find it. */
		uint64_t hash = XXH3_64bits(g->ram, g->length);

		snprintf((char *)g->device_state, 64, DEMO_HASH_TAG "%016" PRIx64 "\n", hash);
	}
}

static int demo_pause_vm(void *opaque)
{
	struct demo_guest *g = opaque;

	if (g->running) {
		workload_stop(g->workload);
		g->running = 0;
	}
	demo_device_state_make(g, g->options->seed);
	return 0;
}

static struct workload_params demo_workload_params(const struct demo_options *o)
{
	return (struct workload_params){
		.page_size = DEMO_PAGE_SIZE,
		.write_rate = o->write_rate,
		.hot_fraction = o->hot_fraction,
		.hot_probability = o->hot_probability,
		.seed = o->seed,
		.threads = o->threads,
	};
}

static int demo_resume_vm(void *opaque)
{
	struct demo_guest *g = opaque;

	g->resumed = 1;
	if (g->destination && !g->reader) {
		/* The guest runs on here at once; it only reads, so that its RAM can still be
		 * compared with the source's afterwards. With post-copy its accesses are what
		 * faults pages in. */
		struct workload_params wp = demo_workload_params(g->options);

		if (workload_attach(g->options->workload, g->ram, g->length, &wp,
				    WORKLOAD_READ_ONLY, &g->reader) == 0 &&
		    workload_start(g->reader) != 0) {
			workload_destroy(g->reader);
			g->reader = NULL;
		}
		return 0;
	}
	/* Source side: the migration failed after the pause; the guest runs here again. */
	if (g->workload && !g->running && workload_start(g->workload) == 0)
		g->running = 1;
	return 0;
}

static int demo_device_state_read(void *opaque, void *buf, size_t len)
{
	struct demo_guest *g = opaque;
	size_t n = g->device_state_len - g->device_state_pos;

	if (n > len)
		n = len;
	memcpy(buf, g->device_state + g->device_state_pos, n);
	g->device_state_pos += n;
	return (int)n;
}

static int demo_device_state_write(void *opaque, const void *buf, size_t len)
{
	struct demo_guest *g = opaque;

	if (g->device_state_pos + len > DEMO_DEVICE_STATE_BYTES)
		return -EMSGSIZE;
	memcpy(g->device_state + g->device_state_pos, buf, len);
	g->device_state_pos += len;
	g->device_state_len = g->device_state_pos;
	return 0;
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
			demo_bytes(st->remaining_bytes, remaining, sizeof(remaining)),
			g->progress_tty ? "" : "\n");
		g->progress_open = g->progress_tty;
		return;
	}
	if (event == RMIG_EVENT_SYNC) {
		fprintf(stderr,
			"%sround %u done  sent %s  dirty now %s  rate %s/s  projected downtime "
			"%" PRIu64 " ms: %s%s",
			g->progress_tty ? "\r\033[K" : "", st->round,
			demo_bytes(st->bytes, sent, sizeof(sent)),
			demo_bytes(st->remaining_bytes, remaining, sizeof(remaining)),
			demo_bytes(bandwidth, rate, sizeof(rate)), st->projected_downtime_ms,
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
		demo_bytes(st->bytes, sent, sizeof(sent)),
		demo_bytes(st->remaining_bytes, remaining, sizeof(remaining)),
		demo_bytes(bandwidth, rate, sizeof(rate)), eta_text, g->progress_tty ? "" : "\n");
	g->progress_open = g->progress_tty;
	fflush(stderr);
}

static int demo_guest_init(struct demo_guest *g, const struct demo_options *o, int source)
{
	memset(g, 0, sizeof(*g));
	g->options = o;
	g->length = o->ram;
	g->progress_tty = isatty(STDERR_FILENO);
	g->device_state = malloc(DEMO_DEVICE_STATE_BYTES);
	g->ram = demo_ram_alloc(o->ram);
	if (!g->ram || !g->device_state) {
		fprintf(stderr, "rmig: cannot allocate %zu bytes of guest RAM\n", o->ram);
		free(g->device_state);
		if (g->ram)
			munmap(g->ram, g->length);
		return -ENOMEM;
	}
	if (source) {
		struct workload_params wp = demo_workload_params(o);
		int ret;

		demo_ram_fill(g->ram, g->length, o->seed);
		ret = workload_create(o->workload, g->ram, g->length, &wp, &g->workload);
		if (ret) {
			fprintf(stderr, "rmig: workload '%s': %s\n", o->workload,
				rmig_strerror(ret));
			munmap(g->ram, g->length);
			free(g->device_state);
			return ret;
		}
	}
	return 0;
}

/* Stop the destination's guest; returns the reads it made and sets *errors_p. */
static uint64_t demo_reader_stop(struct demo_guest *g, uint64_t *errors_p)
{
	uint64_t reads = 0;

	*errors_p = 0;
	if (g->reader) {
		workload_stop(g->reader);
		reads = workload_pages_written(g->reader);
		*errors_p = workload_errors(g->reader);
	}
	return reads;
}

static void demo_guest_fini(struct demo_guest *g)
{
	if (g->reader)
		workload_destroy(g->reader);
	if (g->workload) {
		workload_stop(g->workload);
		workload_destroy(g->workload);
	}
	if (g->ram)
		munmap(g->ram, g->length);
	free(g->device_state);
}

static int demo_session(uint32_t role, const struct demo_options *o, struct demo_guest *g,
			rmig_session_t **session_p)
{
	struct rmig_params params = {
		.field_mask = RMIG_PARAM_METHOD | RMIG_PARAM_POLICY | RMIG_PARAM_DOWNTIME_MS |
			      RMIG_PARAM_MAX_ROUNDS | RMIG_PARAM_BANDWIDTH_LIMIT |
			      RMIG_PARAM_VERIFY | RMIG_PARAM_DIRTY_SOURCE | RMIG_PARAM_TIMEOUT_MS,
		.dirty_source = o->dirty_source,
		.method = o->method,
		.policy = o->policy,
		.downtime_ms = o->downtime_ms,
		.max_rounds = o->max_rounds,
		.bandwidth_limit = o->bandwidth,
		.verify = o->verify,
		/* recv waits for a person to start rmig send on the other host. */
		.timeout_ms = o->listen ? 600000 : 30000,
	};
	struct rmig_callbacks cb = {0};
	rmig_session_t *s;
	int ret;

	if (role == RMIG_ROLE_SOURCE) {
		cb.field_mask = RMIG_CB_PAUSE_VM | RMIG_CB_DEVICE_STATE_READ | RMIG_CB_RESUME_VM |
				RMIG_CB_PROGRESS;
		cb.pause_vm = demo_pause_vm;
		cb.device_state_read = demo_device_state_read;
		cb.resume_vm = demo_resume_vm;
		cb.progress = demo_progress;
	} else {
		cb.field_mask = RMIG_CB_DEVICE_STATE_WRITE | RMIG_CB_RESUME_VM;
		cb.device_state_write = demo_device_state_write;
		cb.resume_vm = demo_resume_vm;
	}
	ret = rmig_session_create(role, &s);
	if (ret)
		return ret;
	ret = rmig_session_set_params(s, &params);
	if (!ret)
		ret = cli_credentials_apply(role == RMIG_ROLE_SOURCE ? "send" : "recv", s,
					    &o->cred);
	if (!ret)
		ret = rmig_session_set_callbacks(s, &cb, g);
	if (!ret)
		ret = rmig_region_add(s, DEMO_REGION_ID, g->ram, g->length, DEMO_PAGE_SIZE);
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
		scheme = transport_available("rdma") ? "rdma" : "tcp";
	*scheme_p = scheme;
	if (!strcmp(scheme, "tcp")) {
		snprintf(buf, len, "tcp://127.0.0.1:0");
	} else if (!strcmp(scheme, "loop")) {
		snprintf(buf, len, "loop:rmig-demo-%ld", (long)getpid());
	} else if (!strcmp(scheme, "rdma")) {
		if (!transport_available("rdma")) {
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
	static const char *const stop_reasons[] = {"none", "downtime target", "round limit",
						   "few dirty pages", "3x RAM sent"};
	char b1[32], b2[32], b3[32];
	const char *stop = st->stop_reason < 5 ? stop_reasons[st->stop_reason] : "?";

	if (o->json) {
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
		       ", \"guest_reads_after_resume\": %" PRIu64
		       ", \"guest_errors_after_resume\": %" PRIu64 ", \"ram_check\": \"%s\", "
		       "\"error\": \"",
		       transport, st->dirty_source < 5 ? demo_dirty_names[st->dirty_source] : "?",
		       o->policy == RMIG_POLICY_XEN ? "xen" : "qemu", st->ram_bytes, st->rounds,
		       stop, st->downtime_ms, st->total_time_ms, st->bytes, st->bytes_received,
		       st->data_bytes, st->pages_sent, st->zero_pages, st->pages_sent_multiple,
		       st->pages_sent_histogram[0], st->pages_sent_histogram[1],
		       st->pages_sent_histogram[2], st->pages_sent_histogram[3], st->pages_sent_max,
		       demo_mean_sends(st), st->pages_verified, st->pages_mismatched,
		       st->pages_held, st->postcopy_pages, st->postcopy_pages_fetched,
		       st->postcopy_faults, st->postcopy_stall_us, x->guest_reads, x->guest_errors,
		       ram_check);
		demo_json_string(ret ? rmig_last_error(s) : "");
		printf("\"}\n");
		return;
	}
	printf("\nrmig %s: %s of guest RAM, workload %s\n", command,
	       demo_bytes(st->ram_bytes, b1, sizeof(b1)), o->workload);
	printf("  %-26s %s\n", "result", rmig_status_name(st->status));
	if (ret)
		printf("  %-26s %s\n", "error", rmig_last_error(s));
	if (st->method_used != st->method)
		printf("  %-26s %s: %s (policy %s, downtime target %u ms)\n", "method",
		       rmig_method_name(st->method), rmig_method_name(st->method_used),
		       st->policy_used == RMIG_POLICY_XEN ? "xen" : "qemu", o->downtime_ms);
	else
		printf("  %-26s %s (policy %s, downtime target %u ms)\n", "method",
		       rmig_method_name(st->method), o->policy == RMIG_POLICY_XEN ? "xen" : "qemu",
		       o->downtime_ms);
	if (x->method_reason[0] && st->method == RMIG_METHOD_AUTO)
		printf("  %-26s %s\n", "why", x->method_reason);
	printf("  %-26s %s\n", "transport", transport);
	if (strcmp(command, "recv"))
		printf("  %-26s %s\n", "dirty tracking",
		       st->dirty_source < 5 ? demo_dirty_names[st->dirty_source] : "?");
	if (!strcmp(command, "recv"))
		printf("  %-26s %u live + 1 paused\n", "rounds", st->rounds);
	else
		printf("  %-26s %u live + 1 paused (stopped: %s)\n", "rounds", st->rounds, stop);
	printf("  %-26s %" PRIu64 " ms\n", "downtime", st->downtime_ms);
	printf("  %-26s %.2f s\n", "total time", (double)st->total_time_ms / 1000.0);
	printf("  %-26s %s sent (%.2f x RAM; page data %s), %s received\n", "bytes on the wire",
	       demo_bytes(st->bytes, b1, sizeof(b1)),
	       st->ram_bytes ? (double)st->bytes / (double)st->ram_bytes : 0.0,
	       demo_bytes(st->data_bytes, b2, sizeof(b2)),
	       demo_bytes(st->bytes_received, b3, sizeof(b3)));
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
	printf("  %-26s %" PRIu64 " / %" PRIu64 "\n", "verified / mismatched pages",
	       st->pages_verified, st->pages_mismatched);
	printf("  %-26s %s\n", "device state", demo_bytes(st->device_state_bytes, b3, sizeof(b3)));
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
	char uri[TRANSPORT_URI_MAX], listen_uri[TRANSPORT_URI_MAX];
	const char *scheme, *ram_check = "not checked";
	char transport[TRANSPORT_URI_MAX + 32];
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
	dest.destination = 1; /* the guest runs on here after the resume */
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
	snprintf(transport, sizeof(transport), "%s (%s)", scheme, uri);
	ret = rmig_session_start(dst);
	if (ret)
		goto out_src_session;
	ret = workload_start(source.workload);
	if (ret) {
		fprintf(stderr, "rmig demo: workload start: %s\n", rmig_strerror(ret));
		rmig_session_cancel(dst);
		rmig_session_wait(dst, -1);
		goto out_src_session;
	}
	source.running = 1;
	demo_workload_warmup();
	if (!o.json)
		fprintf(stderr, "rmig demo: migrating %s guest (%s) over %s\n",
			demo_bytes(o.ram, listen_uri, sizeof(listen_uri)), o.workload, transport);
	ret = rmig_session_connect(src, uri);
	if (!ret)
		ret = rmig_session_run(src);
	if (ret)
		rmig_session_cancel(dst);
	dest_ret = rmig_session_wait(dst, -1);
	if (source.running) {
		workload_stop(source.workload);
		source.running = 0;
	}
	rmig_session_stats(src, &st);
	extra.method_reason = rmig_session_method_reason(src);
	if (dest.resumed && dest_ret) {
		/* Post-copy lost the source after the guest resumed here: its threads wait on
		 * pages that will never come. Nothing can stop them; report and leave. */
		demo_report("demo", &o, transport, &st, "RESUMED, then lost pages (post-copy)",
			    dest_ret, dst, &extra);
		fflush(stdout);
		_exit(1);
	}
	extra.guest_reads = demo_reader_stop(&dest, &extra.guest_errors);
	if (!ret && !dest_ret) {
		identical = !memcmp(source.ram, dest.ram, o.ram) &&
			    dest.device_state_len == source.device_state_len &&
			    !memcmp(source.device_state, dest.device_state, dest.device_state_len);
		ram_check = identical ? "identical to the source at switchover (memcmp) and resumed"
				      : "DIFFERS from the source";
	} else if (ret) {
		ram_check = dest.resumed ? "RESUMED after a failure" : "discarded (never resumed)";
	}
	demo_report("demo", &o, transport, &st, ram_check, ret ? ret : dest_ret, ret ? src : dst,
		    &extra);
	if (!ret && dest_ret)
		fprintf(stderr, "rmig demo: destination: %s\n", rmig_last_error(dst));
	ret = (!ret && !dest_ret && identical && dest.resumed && !extra.guest_errors) ? 0 : 1;

out_src_session:
	rmig_session_destroy(src);
out_dst_session:
	rmig_session_destroy(dst);
out_dest:
	demo_guest_fini(&dest);
out_source:
	demo_guest_fini(&source);
	return ret ? 1 : 0;
}

int rmig_cli_send(int argc, char **argv)
{
	struct demo_options o;
	struct demo_guest source;
	rmig_session_t *src = NULL;
	struct rmig_stats st = {.struct_size = sizeof(st)};
	char size[32];
	int ret;

	ret = demo_parse(argc, argv, &o);
	if (ret)
		return ret > 0 ? 0 : 2;
	if (!o.uri) {
		fprintf(stderr, "rmig send: --uri tcp://host:port (where rmig recv listens)\n");
		return 2;
	}
	if (cli_credentials_check("send", &o.cred))
		return 2;
	ret = demo_guest_init(&source, &o, 1);
	if (ret)
		return 1;
	source.with_hash = 1;
	ret = demo_session(RMIG_ROLE_SOURCE, &o, &source, &src);
	if (ret)
		goto out_guest;
	ret = workload_start(source.workload);
	if (ret)
		goto out_session;
	source.running = 1;
	demo_workload_warmup();
	if (!o.json)
		fprintf(stderr, "rmig send: migrating %s guest (%s) to %s\n",
			demo_bytes(o.ram, size, sizeof(size)), o.workload, o.uri);
	ret = rmig_session_connect(src, o.uri);
	if (!ret)
		ret = rmig_session_run(src);
	if (source.running) {
		workload_stop(source.workload);
		source.running = 0;
	}
	rmig_session_stats(src, &st);
	demo_report("send", &o, o.uri, &st,
		    st.status == RMIG_STATUS_LOST
			    ? "LOST: it had resumed on the destination, which lacks pages; it "
			      "cannot run here again"
		    : ret ? "the guest keeps running here"
			  : "checked by rmig recv against the RAM hash in the device state",
		    ret, src,
		    &(struct demo_extra){.method_reason = rmig_session_method_reason(src)});
	if (!ret && !o.json)
		printf("  %-26s %.*s\n", "RAM hash at pause", 16,
		       (const char *)source.device_state + strlen(DEMO_HASH_TAG));
out_session:
	rmig_session_destroy(src);
out_guest:
	demo_guest_fini(&source);
	return ret ? 1 : 0;
}

int rmig_cli_recv(int argc, char **argv)
{
	struct demo_options o;
	struct demo_guest dest;
	rmig_session_t *dst = NULL;
	struct rmig_stats st = {.struct_size = sizeof(st)};
	char uri[TRANSPORT_URI_MAX], expected[17] = "", actual[17];
	int ret, match = 0;

	ret = demo_parse(argc, argv, &o);
	if (ret)
		return ret > 0 ? 0 : 2;
	if (!o.listen) {
		fprintf(stderr, "rmig recv: --listen tcp://0.0.0.0:port\n");
		return 2;
	}
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
	fprintf(stderr, "rmig recv: waiting for rmig send on %s (%zu bytes of guest RAM)\n", uri,
		o.ram);
	ret = rmig_session_run(dst);
	rmig_session_stats(dst, &st);
	if (!ret) {
		const char *tag = (const char *)dest.device_state;

		if (dest.device_state_len > strlen(DEMO_HASH_TAG) + 16 &&
		    !strncmp(tag, DEMO_HASH_TAG, strlen(DEMO_HASH_TAG)))
			memcpy(expected, tag + strlen(DEMO_HASH_TAG), 16);
		snprintf(actual, sizeof(actual), "%016" PRIx64, XXH3_64bits(dest.ram, dest.length));
		match = !strcmp(expected, actual);
	}
	demo_report("recv", &o, uri, &st,
		    st.status == RMIG_STATUS_LOST
			    ? "LOST: resumed here, then pages never came (post-copy)"
		    : ret   ? "discarded (never resumed)"
		    : match ? "RAM hash equals the sender's at pause, resumed"
			    : "RAM hash DIFFERS from the sender's",
		    ret, dst, &(struct demo_extra){.method_reason = ""});
	if (!ret && !o.json)
		printf("  %-26s %s (sender %s)\n", "RAM hash", actual, expected);
	if (!ret && !match)
		ret = -EIO;
out_session:
	rmig_session_destroy(dst);
out_guest:
	demo_guest_fini(&dest);
	return ret ? 1 : 0;
}
