/* SPDX-License-Identifier: MIT */
/* bench/rmig-bench.c - every migration method on every workload, same transport, same machine,
 * one run: an in-process guest (RAM written by a workload from bench/workloads) migrates from a
 * source session to a destination session through the public ABI, and the destination guest
 * runs on after the resume (reading only, so post-copy's faults are real and the copy can still
 * be compared byte for byte). Prints the table (total time, downtime, bytes on the wire and per
 * RAM, pages sent, most and mean transmissions per page, post-copy stall), each method's ratios
 * against Xen-classic pre-copy of the same workload in the same run, --json, and a gnuplot PNG.
 * Each cell is the median of --repeat runs, taken in turn with the other methods. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "bench/guest/guest.h"
#include "bindings/cli/options.h"
#include "rmig.h"
#include "rmig-plan.h"

#define BENCH_PAGE GUEST_PAGE_SIZE
#define BENCH_DEVICE_STATE GUEST_DEVICE_STATE_BYTES
#define BENCH_MAX_RUNS 16
#define BENCH_WARMUP_MS 300

/* The methods of the table; the first is the reference. */
struct bench_method {
	const char *name;
	uint32_t method;
	uint32_t policy;
};

static const struct bench_method bench_methods[] = {
	{"precopy-xen", RMIG_METHOD_PRECOPY, RMIG_POLICY_XEN},
	{"precopy-qemu", RMIG_METHOD_PRECOPY, RMIG_POLICY_QEMU},
	{"predict", RMIG_METHOD_PREDICT, RMIG_POLICY_XEN},
	{"tsmc", RMIG_METHOD_TSMC, RMIG_POLICY_QEMU},
	{"postcopy", RMIG_METHOD_POSTCOPY, RMIG_POLICY_QEMU},
	{"hybrid", RMIG_METHOD_HYBRID, RMIG_POLICY_QEMU},
	{"auto", RMIG_METHOD_AUTO, RMIG_POLICY_QEMU},
};
#define BENCH_NMETHODS (sizeof(bench_methods) / sizeof(bench_methods[0]))

struct bench_options {
	size_t ram;
	const char *transport;
	char workloads[256];
	char methods[256];
	double write_rate;
	double hot_fraction;
	double hot_probability;
	uint64_t seed;
	unsigned repeat;
	uint32_t downtime_ms;
	uint64_t bandwidth;
	const char *json;
	const char *png;
};

/* One migration's outcome. */
struct bench_result {
	int ok;
	char error[256];
	uint32_t method_used;
	uint32_t policy_used;
	double total_ms;
	double downtime_ms;
	double wire_bytes; /* both directions */
	double pages_sent;
	double sends_max;
	double sends_mean;
	double stall_ms;
	double postcopy_pages;
	double rounds;
	double resent;	 /* distinct pages sent more than once */
	double faults;	 /* post-copy: guest faults the destination served */
	double fault_us; /* post-copy: mean stall per fault */
	/* auto: what its probe measured, the cost model's inputs (model vs measured table) */
	double in_rate;	    /* distinct pages written per second */
	double in_ws;	    /* working set, bytes */
	double in_bw;	    /* bytes per second */
	double in_fault_us; /* one post-copy fault */
	double in_zero;	    /* share of RAM sent as zero-page markers */
	double in_pause_us; /* the pause's cost besides moving pages */
	double in_runs;	    /* pages per run of written pages */
	uint64_t guest_errors;
	char reason[1024]; /* auto: the choice and its measurements */
	char choices[128]; /* aggregated auto: what each run chose, "postcopy x3, tsmc x2" */
};

static uint64_t bench_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void bench_usage(void)
{
	fprintf(stderr,
		"usage: rmig-bench [options]\n"
		"  --ram SIZE            guest RAM per run (default 256M)\n"
		"  --transport T         tcp or loop (default tcp)\n"
		"  --workloads LIST      comma-separated (default: all of bench/workloads)\n"
		"  --methods LIST        comma-separated of precopy-xen, precopy-qemu, predict, tsmc,\n"
		"                        postcopy, hybrid, auto (default all; precopy-xen always)\n"
		"  --write-rate N        guest page writes per second (default 100000)\n"
		"  --hot-fraction F      hot set share (zipf-kv keys, hash-join table; default 0.05)\n"
		"  --hot-probability P   share of accesses to the hot set (default 0.9)\n"
		"  --seed N              workload seed (default 1)\n"
		"  --repeat N            runs per cell, the median is reported (default 3)\n"
		"  --downtime-ms N       downtime target (default 300)\n"
		"  --bandwidth RATE      cap in bytes per second (default none)\n"
		"  --json FILE           also write every result as JSON ('-': stdout)\n"
		"  --png FILE            also plot the table with gnuplot\n");
}

static int bench_parse(int argc, char **argv, struct bench_options *o)
{
	static const struct option longopts[] = {
		{"ram", required_argument, NULL, 'r'},
		{"transport", required_argument, NULL, 't'},
		{"workloads", required_argument, NULL, 'w'},
		{"methods", required_argument, NULL, 'm'},
		{"write-rate", required_argument, NULL, 'W'},
		{"hot-fraction", required_argument, NULL, 'f'},
		{"hot-probability", required_argument, NULL, 'p'},
		{"seed", required_argument, NULL, 's'},
		{"repeat", required_argument, NULL, 'n'},
		{"downtime-ms", required_argument, NULL, 'd'},
		{"bandwidth", required_argument, NULL, 'b'},
		{"json", required_argument, NULL, 'j'},
		{"png", required_argument, NULL, 'g'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	uint64_t value;
	int c;

	*o = (struct bench_options){
		.ram = 256u << 20,
		.transport = "tcp",
		.write_rate = 100000,
		.hot_fraction = 0.05,
		.hot_probability = 0.9,
		.seed = 1,
		.repeat = 3,
		.downtime_ms = 300,
	};
	for (const char *const *n = workload_names(); *n; n++) {
		size_t used = strlen(o->workloads);

		snprintf(o->workloads + used, sizeof(o->workloads) - used, "%s%s", used ? "," : "",
			 *n);
	}
	for (size_t i = 0; i < BENCH_NMETHODS; i++) {
		size_t used = strlen(o->methods);

		snprintf(o->methods + used, sizeof(o->methods) - used, "%s%s", used ? "," : "",
			 bench_methods[i].name);
	}
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'r':
			if (cli_parse_size(optarg, &value) || value < (4u << 20) ||
			    value % BENCH_PAGE) {
				fprintf(stderr, "rmig-bench: --ram %s: at least 4M, whole pages\n",
					optarg);
				return -EINVAL;
			}
			o->ram = (size_t)value;
			break;
		case 't':
			if (strcmp(optarg, "tcp") && strcmp(optarg, "loop")) {
				fprintf(stderr, "rmig-bench: --transport tcp or loop\n");
				return -EINVAL;
			}
			o->transport = optarg;
			break;
		case 'w':
			snprintf(o->workloads, sizeof(o->workloads), "%s", optarg);
			break;
		case 'm':
			snprintf(o->methods, sizeof(o->methods), "%s", optarg);
			break;
		case 'W':
			o->write_rate = strtod(optarg, NULL);
			break;
		case 'f':
			o->hot_fraction = strtod(optarg, NULL);
			break;
		case 'p':
			o->hot_probability = strtod(optarg, NULL);
			break;
		case 's':
			o->seed = strtoull(optarg, NULL, 0);
			break;
		case 'n':
			o->repeat = (unsigned)strtoul(optarg, NULL, 10);
			if (o->repeat < 1 || o->repeat > BENCH_MAX_RUNS) {
				fprintf(stderr, "rmig-bench: --repeat 1..%d\n", BENCH_MAX_RUNS);
				return -EINVAL;
			}
			break;
		case 'd':
			o->downtime_ms = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		case 'b':
			if (cli_parse_size(optarg, &o->bandwidth)) {
				fprintf(stderr, "rmig-bench: --bandwidth %s: bytes per second\n",
					optarg);
				return -EINVAL;
			}
			break;
		case 'j':
			o->json = optarg;
			break;
		case 'g':
			o->png = optarg;
			break;
		case 'h':
			bench_usage();
			return 1;
		default:
			bench_usage();
			return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "rmig-bench: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	return 0;
}

/* ---- the guest (bench/guest) ---- */

static int bench_guest_init(struct guest *g, const struct bench_options *o, const char *workload,
			    int destination)
{
	struct workload_params params = {
		.page_size = BENCH_PAGE,
		.write_rate = o->write_rate,
		.hot_fraction = o->hot_fraction,
		.hot_probability = o->hot_probability,
		.seed = o->seed,
		.threads = 1,
	};

	return guest_init(g, workload, o->ram, &params, destination);
}

static int bench_session(uint32_t role, const struct bench_options *o, const struct bench_method *m,
			 struct guest *g, rmig_session_t **session_p)
{
	/* Both ends run here: one random key per run authenticates them to each other. */
	static unsigned char key[32];
	static int have_key;
	struct rmig_params params = {
		.field_mask = RMIG_PARAM_METHOD | RMIG_PARAM_POLICY | RMIG_PARAM_DOWNTIME_MS |
			      RMIG_PARAM_BANDWIDTH_LIMIT | RMIG_PARAM_KEY,
		.method = m->method,
		.policy = m->policy,
		.downtime_ms = o->downtime_ms,
		.bandwidth_limit = o->bandwidth,
		.key = key,
		.key_len = sizeof(key),
	};
	struct rmig_callbacks cb = {0};
	rmig_session_t *s;
	int ret;

	if (!have_key) {
		if (getrandom(key, sizeof(key), 0) != (ssize_t)sizeof(key))
			return errno ? -errno : -EIO;
		have_key = 1;
	}
	guest_callbacks(role, &cb);
	ret = rmig_session_create(role, &s);
	if (ret)
		return ret;
	ret = rmig_session_set_params(s, &params);
	if (!ret)
		ret = rmig_session_set_callbacks(s, &cb, g);
	if (!ret)
		ret = rmig_region_add(s, 0, g->ram, g->length, BENCH_PAGE);
	if (ret) {
		rmig_session_destroy(s);
		return ret;
	}
	*session_p = s;
	return 0;
}

/* One migration of a fresh guest running workload by method m. */
static void bench_migrate(const struct bench_options *o, const char *workload,
			  const struct bench_method *m, struct bench_result *res)
{
	static unsigned counter;
	struct rmig_stats src_st = {.struct_size = sizeof(src_st)};
	struct rmig_stats dst_st = {.struct_size = sizeof(dst_st)};
	struct guest source, dest;
	rmig_session_t *src = NULL, *dst = NULL;
	char listen[128], uri[256];
	int ret, dst_ret;
	uint64_t pages;

	memset(res, 0, sizeof(*res));
	ret = bench_guest_init(&source, o, workload, 0);
	if (ret) {
		snprintf(res->error, sizeof(res->error), "guest: %s", rmig_strerror(ret));
		guest_fini(&source);
		return;
	}
	ret = bench_guest_init(&dest, o, workload, 1);
	if (ret) {
		snprintf(res->error, sizeof(res->error), "guest: %s", rmig_strerror(ret));
		guest_fini(&source);
		return;
	}
	if (!strcmp(o->transport, "tcp"))
		snprintf(listen, sizeof(listen), "tcp://127.0.0.1:0");
	else
		snprintf(listen, sizeof(listen), "loop:rmig-bench-%ld-%u", (long)getpid(),
			 counter++);
	ret = bench_session(RMIG_ROLE_DESTINATION, o, m, &dest, &dst);
	if (!ret)
		ret = bench_session(RMIG_ROLE_SOURCE, o, m, &source, &src);
	if (!ret)
		ret = rmig_session_listen(dst, listen);
	if (!ret)
		ret = rmig_session_listen_uri(dst, uri, sizeof(uri));
	if (!ret)
		ret = rmig_session_start(dst);
	if (!ret)
		ret = guest_start(&source);
	if (ret) {
		snprintf(res->error, sizeof(res->error), "setup: %s", rmig_strerror(ret));
		goto out;
	}
	nanosleep(&(struct timespec){.tv_nsec = BENCH_WARMUP_MS * 1000000L}, NULL);
	ret = rmig_session_connect(src, uri);
	if (!ret)
		ret = rmig_session_run(src);
	if (ret)
		rmig_session_cancel(dst);
	dst_ret = rmig_session_wait(dst, -1);
	guest_stop(&source);
	if (ret || dst_ret) {
		snprintf(res->error, sizeof(res->error), "%s", rmig_last_error(ret ? src : dst));
		if (dest.reader && dst_ret) {
			/* A post-copy failure after the resume: the guest here waits on pages that
			 * never come. */
			fprintf(stderr, "rmig-bench: %s: %s: %s\n", workload, m->name, res->error);
			_exit(1);
		}
		goto out;
	}
	guest_reader_stop(&dest, &res->guest_errors);
	rmig_session_stats(src, &src_st);
	rmig_session_stats(dst, &dst_st);
	if (!guest_identical(&source, &dest)) {
		snprintf(res->error, sizeof(res->error),
			 "destination RAM or device state differs from the source");
		goto out;
	}
	pages = src_st.pages_sent_histogram[0] + src_st.pages_sent_histogram[1] +
		src_st.pages_sent_histogram[2] + src_st.pages_sent_histogram[3];
	res->ok = res->guest_errors == 0;
	if (!res->ok)
		snprintf(res->error, sizeof(res->error),
			 "the destination guest read %" PRIu64 " bad records", res->guest_errors);
	res->method_used = src_st.method_used;
	res->policy_used = src_st.policy_used;
	res->total_ms = (double)src_st.total_time_ms;
	res->downtime_ms = (double)src_st.downtime_ms;
	res->wire_bytes = (double)(src_st.bytes + src_st.bytes_received);
	res->pages_sent = (double)src_st.pages_sent;
	res->sends_max = src_st.pages_sent_max;
	res->sends_mean = pages ? (double)src_st.pages_sent / (double)pages : 0.0;
	res->stall_ms = (double)dst_st.postcopy_stall_us / 1000.0;
	res->postcopy_pages = (double)src_st.postcopy_pages;
	res->rounds = src_st.rounds;
	res->resent = (double)src_st.pages_sent_multiple;
	res->faults = (double)dst_st.postcopy_faults;
	res->fault_us = dst_st.postcopy_faults
				? (double)dst_st.postcopy_stall_us / (double)dst_st.postcopy_faults
				: 0.0;
	if (m->method == RMIG_METHOD_AUTO) {
		snprintf(res->reason, sizeof(res->reason), "%s", rmig_session_method_reason(src));
		res->in_rate = (double)src_st.auto_dirty_pages_rate;
		res->in_ws = (double)src_st.auto_working_set_bytes;
		res->in_bw = (double)src_st.auto_bandwidth;
		res->in_fault_us = (double)src_st.auto_fault_latency_us;
		res->in_zero = (double)src_st.zero_pages / (double)(o->ram / BENCH_PAGE);
		if (res->in_zero > 1.0)
			res->in_zero = 1.0;
		res->in_pause_us = (double)src_st.auto_pause_cost_us;
		res->in_runs = src_st.auto_write_run_pages;
	}
out:
	rmig_session_destroy(src);
	rmig_session_destroy(dst);
	guest_fini(&dest);
	guest_fini(&source);
}

/* ---- aggregation and output ---- */

/* "precopy-xen", "precopy-qemu" or the method's name. */
static const char *bench_used_name(const struct bench_result *r)
{
	if (r->method_used == RMIG_METHOD_PRECOPY)
		return r->policy_used == RMIG_POLICY_XEN ? "precopy-xen" : "precopy-qemu";
	return rmig_method_name(r->method_used);
}

static int bench_compare(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double bench_median(double *values, unsigned n)
{
	qsort(values, n, sizeof(*values), bench_compare);
	return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2.0;
}

/* The median of each metric over the runs that succeeded. */
static void bench_aggregate(const struct bench_result *runs, unsigned n, struct bench_result *out)
{
	double v[BENCH_MAX_RUNS];
	unsigned ok = 0;

	memset(out, 0, sizeof(*out));
	for (unsigned i = 0; i < n; i++) {
		if (!runs[i].ok) {
			snprintf(out->error, sizeof(out->error), "%s", runs[i].error);
			continue;
		}
		ok++;
	}
	if (ok < n) {
		out->ok = 0;
		return;
	}
	out->ok = 1;
	out->method_used = runs[n - 1].method_used;
	out->policy_used = runs[n - 1].policy_used;
	snprintf(out->reason, sizeof(out->reason), "%s", runs[n - 1].reason);
	for (unsigned i = 0; i < n; i++) {
		const char *name = bench_used_name(&runs[i]);
		size_t used = strlen(out->choices);
		unsigned count = 0, k;

		for (k = 0; k < i && strcmp(bench_used_name(&runs[k]), name); k++)
			;
		if (k < i)
			continue; /* counted with its first run */
		for (k = i; k < n; k++)
			count += !strcmp(bench_used_name(&runs[k]), name);
		snprintf(out->choices + used, sizeof(out->choices) - used, "%s%s x%u",
			 used ? ", " : "", name, count);
	}
#define BENCH_MEDIAN(field)                      \
	do {                                     \
		for (unsigned i = 0; i < n; i++) \
			v[i] = runs[i].field;    \
		out->field = bench_median(v, n); \
	} while (0)
	BENCH_MEDIAN(total_ms);
	BENCH_MEDIAN(downtime_ms);
	BENCH_MEDIAN(wire_bytes);
	BENCH_MEDIAN(pages_sent);
	BENCH_MEDIAN(sends_max);
	BENCH_MEDIAN(sends_mean);
	BENCH_MEDIAN(stall_ms);
	BENCH_MEDIAN(postcopy_pages);
	BENCH_MEDIAN(rounds);
	BENCH_MEDIAN(resent);
	BENCH_MEDIAN(faults);
	BENCH_MEDIAN(fault_us);
	BENCH_MEDIAN(in_rate);
	BENCH_MEDIAN(in_ws);
	BENCH_MEDIAN(in_bw);
	BENCH_MEDIAN(in_fault_us);
	BENCH_MEDIAN(in_zero);
	BENCH_MEDIAN(in_pause_us);
	BENCH_MEDIAN(in_runs);
#undef BENCH_MEDIAN
}

static int bench_list_has(const char *list, const char *name)
{
	size_t len = strlen(name);

	for (const char *p = list; (p = strstr(p, name)); p += len) {
		if ((p == list || p[-1] == ',') && (p[len] == ',' || p[len] == '\0'))
			return 1;
	}
	return 0;
}

static double bench_percent(double value, double reference)
{
	return reference > 0 ? (value / reference - 1.0) * 100.0 : 0.0;
}

static void bench_table(const struct bench_options *o, const char *const *workloads,
			size_t nworkloads, const struct bench_method *const *methods,
			size_t nmethods, struct bench_result *cells)
{
	printf("\nrmig-bench: %zu MiB guests, transport %s, write rate %.0f pages/s, hot fraction "
	       "%.2f, downtime target %u ms, median of %u runs\n",
	       o->ram >> 20, o->transport, o->write_rate, o->hot_fraction, o->downtime_ms,
	       o->repeat);
	printf("ratios: against precopy-xen of the same workload in this run (-15%% = 15%% "
	       "less)\n\n");
	printf("%-10s %-18s %8s %9s %10s %6s %9s %4s %5s %9s %8s %8s %8s\n", "workload", "method",
	       "total s", "down ms", "wire MiB", "x RAM", "pages", "max", "mean", "stall ms",
	       "bytes", "time", "down");
	for (size_t w = 0; w < nworkloads; w++) {
		const struct bench_result *ref = &cells[w * nmethods];

		for (size_t m = 0; m < nmethods; m++) {
			const struct bench_result *c = &cells[w * nmethods + m];
			char name[32];

			if (!strcmp(methods[m]->name, "auto") && c->ok)
				snprintf(name, sizeof(name), "auto>%s", bench_used_name(c));
			else
				snprintf(name, sizeof(name), "%s", methods[m]->name);
			if (!c->ok) {
				printf("%-10s %-18s FAILED: %s\n", workloads[w], name, c->error);
				continue;
			}
			printf("%-10s %-18s %8.2f %9.0f %10.1f %6.2f %9.0f %4.0f %5.2f %9.1f",
			       workloads[w], name, c->total_ms / 1000.0, c->downtime_ms,
			       c->wire_bytes / 1048576.0, c->wire_bytes / (double)o->ram,
			       c->pages_sent, c->sends_max, c->sends_mean, c->stall_ms);
			if (m == 0 || !ref->ok)
				printf(" %8s %8s %8s\n", "ref", "ref", "ref");
			else
				printf(" %+7.1f%% %+7.1f%% %+7.1f%%\n",
				       bench_percent(c->wire_bytes, ref->wire_bytes),
				       bench_percent(c->total_ms, ref->total_ms),
				       bench_percent(c->downtime_ms, ref->downtime_ms));
		}
	}
}

/* predict against the reference, and auto against the best method of each workload: the
 * lowest total time plus post-copy stall (the time the guest lost waiting for pages) among the
 * methods within the downtime target. */
static void bench_summary(const struct bench_options *o, const char *const *workloads,
			  size_t nworkloads, const struct bench_method *const *methods,
			  size_t nmethods, const struct bench_result *cells)
{
	ssize_t predict = -1, automatic = -1;

	for (size_t m = 0; m < nmethods; m++) {
		if (!strcmp(methods[m]->name, "predict"))
			predict = (ssize_t)m;
		if (!strcmp(methods[m]->name, "auto"))
			automatic = (ssize_t)m;
	}
	printf("\n");
	for (size_t w = 0; w < nworkloads; w++) {
		const struct bench_result *ref = &cells[w * nmethods];
		const struct bench_result *best = NULL;
		size_t best_m = 0;
		int met = 1;

		if (!ref->ok)
			continue;
		if (predict >= 0 && cells[w * nmethods + (size_t)predict].ok) {
			const struct bench_result *p = &cells[w * nmethods + (size_t)predict];

			printf("%-10s predict vs precopy-xen: bytes %+.1f%%, total time %+.1f%%, "
			       "downtime %+.1f%%\n",
			       workloads[w], bench_percent(p->wire_bytes, ref->wire_bytes),
			       bench_percent(p->total_ms, ref->total_ms),
			       bench_percent(p->downtime_ms, ref->downtime_ms));
			/* A page written after its first transmission must cross again, whatever
			 * the method: that is the floor; what lies above it is the scheduler's. */
			printf("%-10s   pages sent again: precopy-xen %.0f (and %.0f sends beyond "
			       "their second), predict %.0f (and %.0f)\n",
			       "", ref->resent,
			       ref->pages_sent - (double)(o->ram / BENCH_PAGE) - ref->resent,
			       p->resent,
			       p->pages_sent - (double)(o->ram / BENCH_PAGE) - p->resent);
		}
		for (size_t m = 0; m < nmethods; m++) {
			const struct bench_result *c = &cells[w * nmethods + m];

			if ((ssize_t)m == automatic || !c->ok || c->downtime_ms > o->downtime_ms)
				continue;
			if (!best || c->total_ms + c->stall_ms < best->total_ms + best->stall_ms) {
				best = c;
				best_m = m;
			}
		}
		{
			char line[512] = "";
			size_t used = 0;

			for (size_t m = 0; m < nmethods; m++) {
				const struct bench_result *c = &cells[w * nmethods + m];
				int n;

				if (!c->ok || c->faults < 1 || used >= sizeof(line))
					continue;
				n = snprintf(line + used, sizeof(line) - used,
					     "%s%s %.0f x %.2f ms", used ? ", " : "",
					     methods[m]->name, c->faults, c->fault_us / 1000.0);
				if (n > 0)
					used += (size_t)n;
			}
			if (used)
				printf("%-10s post-copy faults (count x mean stall): %s\n",
				       workloads[w], line);
		}
		/* When no method kept the downtime target (a loaded host, a sanitizer build), the
		 * best is the fastest of them all, and the line says so. */
		if (!best) {
			for (size_t m = 0; m < nmethods; m++) {
				const struct bench_result *c = &cells[w * nmethods + m];

				if ((ssize_t)m == automatic || !c->ok)
					continue;
				if (!best ||
				    c->total_ms + c->stall_ms < best->total_ms + best->stall_ms) {
					best = c;
					best_m = m;
				}
			}
			met = 0;
		}
		if (automatic >= 0 && best && cells[w * nmethods + (size_t)automatic].ok) {
			const struct bench_result *a = &cells[w * nmethods + (size_t)automatic];

			printf("%-10s auto (chose %s) vs best (%s%s): total time + stall %+.1f%%\n",
			       workloads[w], a->choices, methods[best_m]->name,
			       met ? "" : ", none kept the downtime target",
			       bench_percent(a->total_ms + a->stall_ms,
					     best->total_ms + best->stall_ms));
			printf("%-10s   last run: %s\n", "", a->reason);
		}
	}
}

/* The auto cell of a workload's row, when it succeeded. */
static const struct bench_result *bench_auto_cell(const struct bench_method *const *methods,
						  size_t nmethods, const struct bench_result *row)
{
	for (size_t k = 0; k < nmethods; k++)
		if (methods[k]->method == RMIG_METHOD_AUTO && row[k].ok)
			return &row[k];
	return NULL;
}

/* The cost model's projection of method m on workload w, from what auto's probe measured on
 * that workload (the median of its runs): the same inputs auto decided on, with the device
 * state the bench sends. Returns 0, or -ENOENT when there is no auto run to take them from. */
static int bench_model(const struct bench_options *o, const struct bench_method *const *methods,
		       size_t nmethods, const struct bench_result *row, size_t m,
		       struct rmig_plan_cost *projection_p)
{
	const struct bench_result *a = bench_auto_cell(methods, nmethods, row);
	struct rmig_plan_cost_input in;

	if (!a || a->in_bw <= 0.0)
		return -ENOENT;
	in = (struct rmig_plan_cost_input){
		.struct_size = sizeof(in),
		.ram_bytes = o->ram,
		.page_size = BENCH_PAGE,
		.dirty_pages_rate = a->in_rate,
		.working_set_bytes = (uint64_t)a->in_ws,
		.bandwidth = a->in_bw,
		.zero_fraction = a->in_zero,
		.device_state_bytes = BENCH_DEVICE_STATE,
		.downtime_ms = o->downtime_ms,
		.fault_latency_us = a->in_fault_us,
		.pause_seconds = a->in_pause_us / 1e6,
		.access_run_pages = a->in_runs,
	};
	*projection_p = (struct rmig_plan_cost){.struct_size = sizeof(*projection_p)};
	/* -EINVAL for auto, which the model does not project: it is the choice among them. */
	return rmig_plan_cost_project(&in, methods[m]->name, projection_p);
}

/* Projected against measured, method by method: how far the model auto and the planner trust
 * is from what the same machine did. */
static void bench_model_table(const struct bench_options *o, const char *const *workloads,
			      size_t nworkloads, const struct bench_method *const *methods,
			      size_t nmethods, const struct bench_result *cells)
{
	int header = 0;

	for (size_t w = 0; w < nworkloads; w++) {
		const struct bench_result *row = &cells[w * nmethods];
		const struct bench_result *a = bench_auto_cell(methods, nmethods, row);

		if (!a || a->in_bw <= 0.0)
			continue;
		if (!header) {
			printf("\nmodel vs measured: engine/cost_model.c (what auto and rmig plan "
			       "project) fed with what auto's probe measured on the workload; "
			       "err = model / measured - 1\n\n");
			printf("%-10s %-13s %8s %8s %7s %8s %8s %8s %8s %7s\n", "workload",
			       "method", "model s", "meas s", "err", "model ms", "meas ms",
			       "model MiB", "meas MiB", "err");
			header = 1;
		}
		printf("%-10s inputs: %.0f pages/s (%.1f MiB/s), working set %.1f MiB, bandwidth "
		       "%.1f MiB/s, zero pages %.1f%%, fault %.0f us, pause %.1f ms, runs of %.1f "
		       "pages\n",
		       workloads[w], a->in_rate, a->in_rate * BENCH_PAGE / 1048576.0,
		       a->in_ws / 1048576.0, a->in_bw / 1048576.0, a->in_zero * 100.0,
		       a->in_fault_us, a->in_pause_us / 1000.0, a->in_runs);
		for (size_t m = 0; m < nmethods; m++) {
			const struct bench_result *c = &row[m];
			struct rmig_plan_cost p;

			if (!c->ok || bench_model(o, methods, nmethods, row, m, &p))
				continue;
			printf("%-10s %-13s %8.2f %8.2f %+6.0f%% %8.0f %8.0f %9.1f %8.1f %+6.0f%%\n",
			       "", methods[m]->name, p.total_seconds, c->total_ms / 1000.0,
			       bench_percent(p.total_seconds * 1000.0, c->total_ms),
			       p.downtime_seconds * 1000.0, c->downtime_ms, p.bytes / 1048576.0,
			       c->wire_bytes / 1048576.0, bench_percent(p.bytes, c->wire_bytes));
		}
	}
	if (header)
		printf("(measured bytes count both directions and wire headers; the model counts "
		       "page data and device state. The model's predict stops on the QEMU rule, "
		       "the bench's on Xen's.)\n");
}

static int bench_json(const char *path, const struct bench_options *o, const char *const *workloads,
		      size_t nworkloads, const struct bench_method *const *methods, size_t nmethods,
		      const struct bench_result *cells)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "w") : stdout;

	if (!f) {
		fprintf(stderr, "rmig-bench: %s: %s\n", path, strerror(errno));
		return -errno;
	}
	fprintf(f,
		"{\"ram_bytes\": %zu, \"transport\": \"%s\", \"write_rate\": %.0f, "
		"\"hot_fraction\": %.3f, \"hot_probability\": %.3f, \"downtime_ms\": %u, "
		"\"repeat\": %u, \"reference\": \"precopy-xen\", \"results\": [",
		o->ram, o->transport, o->write_rate, o->hot_fraction, o->hot_probability,
		o->downtime_ms, o->repeat);
	for (size_t w = 0; w < nworkloads; w++) {
		const struct bench_result *ref = &cells[w * nmethods];

		for (size_t m = 0; m < nmethods; m++) {
			const struct bench_result *c = &cells[w * nmethods + m];

			fprintf(f, "%s\n  {\"workload\": \"%s\", \"method\": \"%s\", \"ok\": %s",
				w || m ? "," : "", workloads[w], methods[m]->name,
				c->ok ? "true" : "false");
			if (!c->ok) {
				fprintf(f, ", \"error\": \"");
				for (const char *p = c->error; *p; p++)
					fprintf(f, *p == '"' || *p == '\\' ? "\\%c" : "%c", *p);
				fprintf(f, "\"}");
				continue;
			}
			fprintf(f,
				", \"method_used\": \"%s\", \"total_ms\": %.1f, \"downtime_ms\": "
				"%.1f, \"wire_bytes\": %.0f, \"wire_per_ram\": %.4f, "
				"\"pages_sent\": %.0f, \"sends_max\": %.0f, \"sends_mean\": %.4f, "
				"\"stall_ms\": %.2f, \"postcopy_pages\": %.0f, \"rounds\": %.0f, "
				"\"pages_resent\": %.0f, \"faults\": %.0f, \"fault_us\": %.1f",
				bench_used_name(c), c->total_ms, c->downtime_ms, c->wire_bytes,
				c->wire_bytes / (double)o->ram, c->pages_sent, c->sends_max,
				c->sends_mean, c->stall_ms, c->postcopy_pages, c->rounds, c->resent,
				c->faults, c->fault_us);
			if (c->reason[0]) {
				fprintf(f, ", \"choices\": \"%s\", \"reason\": \"", c->choices);
				for (const char *p = c->reason; *p; p++)
					fprintf(f, *p == '"' || *p == '\\' ? "\\%c" : "%c", *p);
				fprintf(f, "\"");
			}
			{
				struct rmig_plan_cost p;

				if (!bench_model(o, methods, nmethods, &cells[w * nmethods], m, &p))
					fprintf(f,
						", \"model_total_ms\": %.1f, \"model_downtime_ms\": "
						"%.1f, \"model_bytes\": %.0f",
						p.total_seconds * 1000.0,
						p.downtime_seconds * 1000.0, p.bytes);
			}
			if (c->in_bw > 0.0)
				fprintf(f,
					", \"probe\": {\"dirty_pages_rate\": %.0f, "
					"\"working_set_bytes\": %.0f, \"bandwidth\": %.0f, "
					"\"zero_fraction\": %.4f, \"fault_latency_us\": %.0f, "
					"\"pause_us\": %.0f, \"write_run_pages\": %.2f}",
					c->in_rate, c->in_ws, c->in_bw, c->in_zero, c->in_fault_us,
					c->in_pause_us, c->in_runs);
			if (ref->ok)
				fprintf(f,
					", \"bytes_vs_reference\": %.4f, \"time_vs_reference\": "
					"%.4f, \"downtime_vs_reference\": %.4f",
					c->wire_bytes / ref->wire_bytes,
					c->total_ms / ref->total_ms,
					ref->downtime_ms > 0 ? c->downtime_ms / ref->downtime_ms
							     : 0.0);
			fprintf(f, "}");
		}
	}
	fprintf(f, "\n]}\n");
	if (f != stdout)
		fclose(f);
	return 0;
}

/* Three bar charts (total time, bytes on the wire, downtime), one group per workload. */
static int bench_png(const char *path, const struct bench_options *o, const char *const *workloads,
		     size_t nworkloads, const struct bench_method *const *methods, size_t nmethods,
		     const struct bench_result *cells)
{
	char data[] = "/tmp/rmig-bench-XXXXXX";
	int fd = mkstemp(data), status;
	FILE *f, *gp;

	if (fd < 0 || !(f = fdopen(fd, "w"))) {
		fprintf(stderr, "rmig-bench: cannot write the plot data: %s\n", strerror(errno));
		return -errno;
	}
	for (int metric = 0; metric < 3; metric++) {
		/* Each block carries its own header: gnuplot reads column titles per index. */
		fprintf(f, "workload");
		for (size_t m = 0; m < nmethods; m++)
			fprintf(f, " %s", methods[m]->name);
		fprintf(f, "\n");
		for (size_t w = 0; w < nworkloads; w++) {
			fprintf(f, "%s", workloads[w]);
			for (size_t m = 0; m < nmethods; m++) {
				const struct bench_result *c = &cells[w * nmethods + m];
				double v = metric == 0	 ? c->total_ms / 1000.0
					   : metric == 1 ? c->wire_bytes / 1048576.0
							 : c->downtime_ms;

				fprintf(f, c->ok ? " %.3f" : " NaN", v);
			}
			fprintf(f, "\n");
		}
		fprintf(f, "\n\n");
	}
	fclose(f);
	gp = popen("gnuplot", "w");
	if (!gp) {
		fprintf(stderr, "rmig-bench: gnuplot not found (apt-get install gnuplot-nox)\n");
		unlink(data);
		return -ENOENT;
	}
	fprintf(gp,
		"set terminal pngcairo size 1400,1200 font ',10'\n"
		"set output '%s'\n"
		"set style data histogram\nset style histogram cluster gap 1\n"
		"set style fill solid 0.8 border -1\nset key outside right\n"
		"set xtics rotate by -30\nset grid ytics\nset yrange [0:*]\n"
		"set multiplot layout 3,1 title 'rmig-bench: %zu MiB guests over %s, %.0f "
		"writes/s (median of %u)'\n",
		path, o->ram >> 20, o->transport, o->write_rate, o->repeat);
	for (int metric = 0; metric < 3; metric++) {
		static const char *const labels[] = {"total time (s)", "bytes on the wire (MiB)",
						     "downtime (ms)"};

		fprintf(gp, "set ylabel '%s'\nplot", labels[metric]);
		for (size_t m = 0; m < nmethods; m++)
			fprintf(gp, "%s '%s' index %d using %zu:xtic(1) title columnheader(%zu)",
				m ? "," : "", data, metric, m + 2, m + 2);
		fprintf(gp, "\n");
	}
	fprintf(gp, "unset multiplot\n");
	status = pclose(gp);
	unlink(data);
	if (status) {
		fprintf(stderr, "rmig-bench: gnuplot failed (%d)\n", status);
		return -EIO;
	}
	fprintf(stderr, "rmig-bench: plot written to %s\n", path);
	return 0;
}

int main(int argc, char **argv)
{
	const char *workloads[16];
	const struct bench_method *methods[BENCH_NMETHODS];
	size_t nworkloads = 0, nmethods = 0, done = 0, total;
	struct bench_result *cells, *runs;
	struct bench_options o;
	char list[256], *save, *name;
	uint64_t start = bench_now_us();
	int ret, failed = 0;

	ret = bench_parse(argc, argv, &o);
	if (ret)
		return ret > 0 ? 0 : 2;
	snprintf(list, sizeof(list), "%s", o.workloads);
	for (name = strtok_r(list, ",", &save); name && nworkloads < 16;
	     name = strtok_r(NULL, ",", &save)) {
		const char *const *known = workload_names();

		while (*known && strcmp(*known, name))
			known++;
		if (!*known) {
			fprintf(stderr, "rmig-bench: unknown workload '%s'\n", name);
			return 2;
		}
		workloads[nworkloads++] = *known;
	}
	methods[nmethods++] = &bench_methods[0]; /* the reference, always */
	for (size_t i = 1; i < BENCH_NMETHODS; i++)
		if (bench_list_has(o.methods, bench_methods[i].name))
			methods[nmethods++] = &bench_methods[i];
	cells = calloc(nworkloads * nmethods, sizeof(*cells));
	if (!cells)
		return 1;
	total = nworkloads * nmethods * o.repeat;
	rmig_log_handler_install(NULL, NULL,
				 getenv("RMIG_BENCH_INFO") ? RMIG_LOG_INFO : RMIG_LOG_ERROR);
	runs = calloc(nworkloads * nmethods * o.repeat, sizeof(*runs));
	if (!runs)
		return 1;
	/* Repetitions go round the methods, so that a burst of load elsewhere on the machine
	 * falls on all of them alike rather than on one method's runs. */
	for (size_t w = 0; w < nworkloads; w++) {
		for (unsigned r = 0; r < o.repeat; r++) {
			for (size_t m = 0; m < nmethods; m++) {
				struct bench_result *res = &runs[(w * nmethods + m) * o.repeat + r];

				bench_migrate(&o, workloads[w], methods[m], res);
				done++;
				if (res->ok)
					fprintf(stderr,
						"[%3zu/%zu %4.0f s] %-10s %-12s %6.2f s %5.0f ms "
						"%8.1f MiB%s%s\n",
						done, total, (double)(bench_now_us() - start) / 1e6,
						workloads[w], methods[m]->name,
						res->total_ms / 1000.0, res->downtime_ms,
						res->wire_bytes / 1048576.0,
						methods[m]->method == RMIG_METHOD_AUTO ? " -> "
										       : "",
						methods[m]->method == RMIG_METHOD_AUTO
							? bench_used_name(res)
							: "");
				else
					fprintf(stderr, "[%3zu/%zu] %-10s %-12s FAILED: %s\n", done,
						total, workloads[w], methods[m]->name, res->error);
			}
		}
		for (size_t m = 0; m < nmethods; m++) {
			bench_aggregate(&runs[(w * nmethods + m) * o.repeat], o.repeat,
					&cells[w * nmethods + m]);
			failed += !cells[w * nmethods + m].ok;
		}
	}
	bench_table(&o, workloads, nworkloads, methods, nmethods, cells);
	bench_summary(&o, workloads, nworkloads, methods, nmethods, cells);
	bench_model_table(&o, workloads, nworkloads, methods, nmethods, cells);
	printf("\n%zu migrations in %.0f s\n", total, (double)(bench_now_us() - start) / 1e6);
	if (o.json)
		bench_json(o.json, &o, workloads, nworkloads, methods, nmethods, cells);
	if (o.png)
		bench_png(o.png, &o, workloads, nworkloads, methods, nmethods, cells);
	free(runs);
	free(cells);
	return failed ? 1 : 0;
}
