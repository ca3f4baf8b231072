/* SPDX-License-Identifier: MIT */
/* bench/rmig-bw.c - an ib_write_bw-style benchmark over rmig's transport interface: a client
 * streams batches of runs (the transport's messages) into a server's registered region, for
 * each message size, and prints bandwidth, message rate, batch round-trip latency percentiles
 * and CPU use. One process (--loopback, the default) or two (--server / --client). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bindings/cli/options.h"
#include "transport/log.h"
#include "transport/memory.h"
#include "transport/transport.h"

#define BW_MAGIC 0x52424d57u /* "RBMW" */
#define BW_VERSION 1u
#define BW_REGION_ID 1u
#define BW_MAX_SIZES 32u
#define BW_TIMEOUT_MS 60000
#define BW_MAX_REGION (64ull << 30)

/* Control messages between client and server (packed, little-endian hosts only: x86_64 and
 * aarch64, like the rest of rmig's wire). */
enum bw_msg_type {
	BW_MSG_HELLO = 1, /* client -> server: region size; server registers, answers READY */
	BW_MSG_READY = 2, /* server -> client */
	BW_MSG_PHASE =
		3,	 /* client -> server: next commits are a latency pass or a bandwidth pass */
	BW_MSG_PONG = 4, /* server -> client: a latency-pass commit has landed */
	BW_MSG_END = 5,	 /* client -> server: bandwidth pass over; answer with RESULT */
	BW_MSG_RESULT = 6, /* server -> client: what landed, and the server's CPU time */
	BW_MSG_BYE = 7,	   /* client -> server: done; the server answers, the client closes */
};

enum bw_phase { BW_PHASE_LATENCY = 1, BW_PHASE_BANDWIDTH = 2 };

struct bw_msg {
	uint32_t magic;
	uint16_t version;
	uint16_t type;
	uint32_t phase;
	uint32_t check; /* PHASE: server verifies landed bytes against the pattern */
	uint64_t value; /* HELLO: region bytes; RESULT: bytes landed */
	uint64_t batches;
	uint64_t cpu_us; /* RESULT: server CPU time during the pass */
	uint64_t errors; /* RESULT: bytes that did not match the pattern */
} __attribute__((packed));

struct bw_options {
	const char *uri;
	int server;
	int client;
	uint64_t sizes[BW_MAX_SIZES];
	size_t nsizes;
	uint32_t batch;	    /* runs per batch */
	uint32_t streams;   /* QPs or sockets */
	uint64_t iters;	    /* batches per size; 0: use duration */
	double duration;    /* seconds per size */
	uint32_t lat_iters; /* latency round trips per size */
	uint64_t region;    /* bytes */
	int check;
	int json;
	int no_hugepages;
	int memcpy_reference;
	enum transport_tls_mode tls; /* tcp: --tls none|psk|x509 */
	const char *tls_creds;
};

struct bw_result {
	uint64_t size;
	uint64_t batches;
	uint64_t runs;
	uint64_t bytes;
	double seconds;
	double gbps;
	double mpps;
	double lat_p50_us, lat_p99_us, lat_p999_us;
	double cpu_client, cpu_server; /* percent of one core */
	uint64_t errors;
};

static uint64_t bw_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t bw_cpu_us(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (uint64_t)ru.ru_utime.tv_sec * 1000000ull + (uint64_t)ru.ru_utime.tv_usec +
	       (uint64_t)ru.ru_stime.tv_sec * 1000000ull + (uint64_t)ru.ru_stime.tv_usec;
}

/* The byte every offset holds on the client: cheap to check on the server. */
static inline uint64_t bw_pattern_word(uint64_t offset)
{
	uint64_t x = offset * 0x9e3779b97f4a7c15ull;

	return x ^ (x >> 29);
}

static void bw_pattern_fill(void *addr, uint64_t len)
{
	uint64_t *w = addr;

	for (uint64_t i = 0; i < len / 8; i++)
		w[i] = bw_pattern_word(i * 8);
}

static uint64_t bw_pattern_mismatches(const void *addr, uint64_t offset, uint64_t len)
{
	const uint64_t *w = (const uint64_t *)((const char *)addr + offset);
	uint64_t bad = 0;

	for (uint64_t i = 0; i < len / 8; i++)
		if (w[i] != bw_pattern_word(offset + i * 8))
			bad += 8;
	return bad;
}

static void bw_msg_init(struct bw_msg *m, enum bw_msg_type type)
{
	memset(m, 0, sizeof(*m));
	m->magic = BW_MAGIC;
	m->version = BW_VERSION;
	m->type = (uint16_t)type;
}

static int bw_msg_send(struct transport_conn *conn, const struct bw_msg *m)
{
	return transport_ctrl_send(conn, m, sizeof(*m));
}

/* Next message of the peer: a commit (type 0 here, *commit_p set) or a bw_msg. */
static int bw_recv(struct transport_conn *conn, struct bw_msg *m, struct transport_msg *commit_p)
{
	struct transport_msg msg;
	int ret = transport_recv(conn, &msg, BW_TIMEOUT_MS);

	if (ret)
		return ret;
	if (msg.type == TRANSPORT_MSG_COMMIT) {
		if (commit_p)
			*commit_p = msg;
		return 0;
	}
	if (msg.len != sizeof(*m)) {
		fprintf(stderr, "rmig-bw: control message of %zu bytes, expected %zu\n", msg.len,
			sizeof(*m));
		return -EPROTO;
	}
	memcpy(m, msg.data, sizeof(*m));
	if (m->magic != BW_MAGIC || m->version != BW_VERSION || m->type < BW_MSG_HELLO ||
	    m->type > BW_MSG_BYE) {
		fprintf(stderr, "rmig-bw: bad control message (magic 0x%x version %u type %u)\n",
			m->magic, m->version, m->type);
		return -EPROTO;
	}
	return (int)m->type;
}

/* ---- server ---- */

struct bw_server {
	struct transport_conn *conn;
	struct transport_mem mem;
	int have_mem;
	int no_hugepages;
};

/* Serve one client until BYE or disconnect. */
static int bw_serve(struct bw_server *sv)
{
	uint32_t phase = 0, check = 0;
	uint64_t bytes = 0, batches = 0, errors = 0, cpu0 = 0;
	struct bw_msg m = {0}, out;
	int type;

	for (;;) {
		struct transport_msg commit;

		commit.type = 0;
		type = bw_recv(sv->conn, &m, &commit);
		if (type < 0)
			return type;
		if (type == 0) {
			for (size_t i = 0; i < commit.nruns; i++) {
				bytes += commit.runs[i].length;
				if (check)
					errors += bw_pattern_mismatches(sv->mem.addr,
									commit.runs[i].offset,
									commit.runs[i].length);
			}
			batches++;
			if (phase == BW_PHASE_LATENCY) {
				bw_msg_init(&out, BW_MSG_PONG);
				if ((type = bw_msg_send(sv->conn, &out)))
					return type;
			}
			continue;
		}
		switch (type) {
		case BW_MSG_HELLO:
			if (sv->have_mem || m.value == 0 || m.value > BW_MAX_REGION ||
			    m.value % 4096) {
				fprintf(stderr,
					"rmig-bw server: refusing region of %" PRIu64 " bytes\n",
					m.value);
				return -EINVAL;
			}
			type = transport_mem_alloc(
				m.value, -1, sv->no_hugepages ? TRANSPORT_MEM_NO_HUGEPAGES : 0,
				&sv->mem);
			if (type)
				return type;
			sv->have_mem = 1;
			type = transport_region_register(sv->conn, BW_REGION_ID, sv->mem.addr,
							 m.value, TRANSPORT_ACCESS_REMOTE_WRITE);
			if (type)
				return type;
			bw_msg_init(&out, BW_MSG_READY);
			if ((type = bw_msg_send(sv->conn, &out)))
				return type;
			break;
		case BW_MSG_PHASE:
			if (m.phase != BW_PHASE_LATENCY && m.phase != BW_PHASE_BANDWIDTH)
				return -EPROTO;
			phase = m.phase;
			check = m.check;
			bytes = batches = errors = 0;
			cpu0 = bw_cpu_us();
			break;
		case BW_MSG_END:
			bw_msg_init(&out, BW_MSG_RESULT);
			out.value = bytes;
			out.batches = batches;
			out.errors = errors;
			out.cpu_us = bw_cpu_us() - cpu0;
			if ((type = bw_msg_send(sv->conn, &out)))
				return type;
			break;
		case BW_MSG_BYE: {
			struct transport_msg rest;

			/* Answer, then let the client close first: closing here could cut the
			 * answer off on its way. */
			bw_msg_init(&out, BW_MSG_BYE);
			if ((type = bw_msg_send(sv->conn, &out)))
				return type;
			while (transport_recv(sv->conn, &rest, BW_TIMEOUT_MS) == 0)
				;
			return 0;
		}
		default:
			fprintf(stderr, "rmig-bw server: unexpected message type %d\n", type);
			return -EPROTO;
		}
	}
}

static void bw_server_fini(struct bw_server *sv)
{
	if (sv->conn)
		transport_close(sv->conn);
	if (sv->have_mem)
		transport_mem_free(&sv->mem);
	memset(sv, 0, sizeof(*sv));
}

struct bw_server_thread {
	struct transport_listener *listener;
	int no_hugepages;
	int ret;
};

static void *bw_server_main(void *arg)
{
	struct bw_server_thread *t = arg;
	struct bw_server sv = {.no_hugepages = t->no_hugepages};

	t->ret = transport_accept(t->listener, BW_TIMEOUT_MS, &sv.conn);
	if (!t->ret)
		t->ret = bw_serve(&sv);
	if (t->ret)
		fprintf(stderr, "rmig-bw server: %s%s%s\n", strerror(-t->ret),
			sv.conn && *transport_error(sv.conn) ? ": " : "",
			sv.conn ? transport_error(sv.conn) : "");
	bw_server_fini(&sv);
	return NULL;
}

/* ---- client ---- */

struct bw_client {
	const struct bw_options *o;
	struct transport_conn *conn;
	struct transport_mem mem;
	struct transport_run *runs;
	uint64_t cursor; /* next run's slot */
	int loopback;
};

/* Runs of size bytes at every other size-aligned slot, so contiguous runs never coalesce and
 * each run is one message on the wire, as each ib_write_bw iteration is one WRITE. */
static void bw_fill_batch(struct bw_client *c, uint64_t size)
{
	uint64_t slots = c->o->region / (2 * size);

	for (uint32_t i = 0; i < c->o->batch; i++) {
		c->runs[i] = (struct transport_run){.region_id = BW_REGION_ID,
						    .offset = (c->cursor % slots) * 2 * size,
						    .length = size};
		c->cursor++;
	}
}

static int bw_expect(struct bw_client *c, enum bw_msg_type want, struct bw_msg *m)
{
	int type = bw_recv(c->conn, m, NULL);

	if (type < 0)
		return type;
	if (type != (int)want) {
		fprintf(stderr, "rmig-bw: expected message %d from the server, got %d\n", want,
			type);
		return -EPROTO;
	}
	return 0;
}

static int bw_phase_start(struct bw_client *c, enum bw_phase phase)
{
	struct bw_msg m;

	bw_msg_init(&m, BW_MSG_PHASE);
	m.phase = phase;
	m.check = (uint32_t)c->o->check;
	return bw_msg_send(c->conn, &m);
}

static int bw_compare_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double bw_percentile(const double *sorted, size_t n, double p)
{
	size_t i = (size_t)(p * (double)(n - 1) + 0.5);

	return n ? sorted[i < n ? i : n - 1] : 0.0;
}

/* One batch at a time: post, wait for the server's PONG that its commit landed. */
static int bw_latency_pass(struct bw_client *c, uint64_t size, struct bw_result *r)
{
	uint32_t n = c->o->lat_iters;
	uint64_t start = bw_now_ns(), budget;
	double *us;
	struct bw_msg m;
	int ret;

	if (!n)
		return 0;
	budget = c->o->iters ? UINT64_MAX : (uint64_t)(c->o->duration * 0.5e9);
	us = calloc(n, sizeof(*us));
	if (!us)
		return -ENOMEM;
	ret = bw_phase_start(c, BW_PHASE_LATENCY);
	for (uint32_t i = 0; !ret && i < n; i++) {
		uint64_t t0 = bw_now_ns();

		/* Large batches take long: the latency pass gets at most half the size's time. */
		if (i >= 10 && t0 - start >= budget) {
			n = i;
			break;
		}

		bw_fill_batch(c, size);
		ret = transport_batch_post(c->conn, c->cursor, c->runs, c->o->batch);
		if (!ret)
			ret = bw_expect(c, BW_MSG_PONG, &m);
		us[i] = (double)(bw_now_ns() - t0) / 1000.0;
	}
	if (!ret) {
		qsort(us, n, sizeof(*us), bw_compare_double);
		r->lat_p50_us = bw_percentile(us, n, 0.50);
		r->lat_p99_us = bw_percentile(us, n, 0.99);
		r->lat_p999_us = bw_percentile(us, n, 0.999);
	}
	free(us);
	return ret;
}

/* Batches back to back (the transport's window bounds what is in flight), then END: the
 * server answers once every commit before it has landed, so the clock stops on landed bytes. */
static int bw_bandwidth_pass(struct bw_client *c, uint64_t size, struct bw_result *r)
{
	uint64_t t0, t1, cpu0, deadline, posted = 0;
	struct bw_msg m;
	int ret;

	ret = bw_phase_start(c, BW_PHASE_BANDWIDTH);
	if (ret)
		return ret;
	cpu0 = bw_cpu_us();
	t0 = bw_now_ns();
	deadline = t0 + (uint64_t)(c->o->duration * 1e9);
	for (;;) {
		if (c->o->iters ? posted >= c->o->iters
				: (posted & 7) == 0 && bw_now_ns() >= deadline)
			break;
		bw_fill_batch(c, size);
		ret = transport_batch_post(c->conn, c->cursor, c->runs, c->o->batch);
		if (ret)
			return ret;
		posted++;
	}
	bw_msg_init(&m, BW_MSG_END);
	ret = bw_msg_send(c->conn, &m);
	if (!ret)
		ret = bw_expect(c, BW_MSG_RESULT, &m);
	if (ret)
		return ret;
	t1 = bw_now_ns();
	if (m.batches != posted || m.value != posted * c->o->batch * size) {
		fprintf(stderr,
			"rmig-bw: the server saw %" PRIu64 " batches / %" PRIu64 " bytes, %" PRIu64
			" / %" PRIu64 " were sent\n",
			(uint64_t)m.batches, (uint64_t)m.value, posted,
			posted * c->o->batch * size);
		return -EIO;
	}
	r->size = size;
	r->batches = posted;
	r->runs = posted * c->o->batch;
	r->bytes = m.value;
	r->seconds = (double)(t1 - t0) / 1e9;
	r->gbps = (double)r->bytes * 8.0 / r->seconds / 1e9;
	r->mpps = (double)r->runs / r->seconds / 1e6;
	r->cpu_client = 100.0 * (double)(bw_cpu_us() - cpu0) / (r->seconds * 1e6);
	/* In one process the client's figure already covers both ends. */
	r->cpu_server = c->loopback ? -1 : 100.0 * (double)m.cpu_us / (r->seconds * 1e6);
	r->errors = m.errors;
	return 0;
}

static void bw_format_size(uint64_t size, char *buf, size_t len)
{
	if (size >= (1ull << 20) && size % (1ull << 20) == 0)
		snprintf(buf, len, "%" PRIu64 " MiB", size >> 20);
	else if (size >= 1024 && size % 1024 == 0)
		snprintf(buf, len, "%" PRIu64 " KiB", size >> 10);
	else
		snprintf(buf, len, "%" PRIu64 " B", size);
}

static void bw_print_header(const struct bw_options *o, const char *uri, int loopback)
{
	char region[32];

	bw_format_size(o->region, region, sizeof(region));
	printf("rmig-bw: %s%s, %u stream%s, %u runs per batch, region %s, ", uri,
	       loopback ? " (loopback, one process)" : "", o->streams, o->streams == 1 ? "" : "s",
	       o->batch, region);
	if (o->iters)
		printf("%" PRIu64 " batches per size\n", o->iters);
	else
		printf("%.1f s per size\n", o->duration);
	printf("%10s %10s %12s %9s %9s %10s %10s %10s %8s %8s\n", "size", "batches", "bytes",
	       "Gb/s", "Mpps", "p50 us", "p99 us", "p99.9 us", "cpu", "cpu srv");
}

static void bw_print_row(const struct bw_result *r)
{
	char size[32];

	bw_format_size(r->size, size, sizeof(size));
	printf("%10s %10" PRIu64 " %12" PRIu64 " %9.3f %9.4f %10.1f %10.1f %10.1f %7.0f%%", size,
	       r->batches, r->bytes, r->gbps, r->mpps, r->lat_p50_us, r->lat_p99_us, r->lat_p999_us,
	       r->cpu_client);
	if (r->cpu_server < 0)
		printf(" %8s\n", "-");
	else
		printf(" %7.0f%%\n", r->cpu_server);
	fflush(stdout);
}

static void bw_print_json_result(const struct bw_result *r, int first)
{
	printf("%s{\"size\":%" PRIu64 ",\"batches\":%" PRIu64 ",\"runs\":%" PRIu64
	       ",\"bytes\":%" PRIu64 ",\"seconds\":%.6f,\"gbps\":%.6f,\"mpps\":%.6f,"
	       "\"lat_p50_us\":%.2f,\"lat_p99_us\":%.2f,\"lat_p999_us\":%.2f,"
	       "\"cpu_client_pct\":%.1f,\"cpu_server_pct\":%.1f,\"errors\":%" PRIu64 "}",
	       first ? "" : ",", r->size, r->batches, r->runs, r->bytes, r->seconds, r->gbps,
	       r->mpps, r->lat_p50_us, r->lat_p99_us, r->lat_p999_us, r->cpu_client, r->cpu_server,
	       r->errors);
}

static void bw_print_json(const struct bw_options *o, const char *uri,
			  const struct bw_result *results, size_t n)
{
	printf("{\"uri\":\"%s\",\"transport\":\"%.*s\",\"streams\":%u,\"batch\":%u,"
	       "\"region\":%" PRIu64 ",\"results\":[",
	       uri, (int)strcspn(uri, ":"), uri, o->streams, o->batch, o->region);
	for (size_t i = 0; i < n; i++)
		bw_print_json_result(&results[i], i == 0);
	printf("]}\n");
}

/* The benchmark's TLS options: psk uses a fixed key known to both ends, not a secret. */
static struct transport_options bw_transport_options(const struct bw_options *o)
{
	static const uint8_t key[] = "rmig-bw benchmark key";

	return (struct transport_options){.streams = o->streams,
					  .tls = o->tls ? o->tls : TRANSPORT_TLS_NONE,
					  .psk = key,
					  .psk_len = sizeof(key),
					  .tls_creds_dir = o->tls_creds};
}

static int bw_client_run(const struct bw_options *o, const char *uri, int loopback)
{
	struct transport_options topts = bw_transport_options(o);
	struct bw_result *results;
	struct bw_client c = {.o = o, .loopback = loopback};
	struct bw_msg m;
	int ret;

	results = calloc(o->nsizes, sizeof(*results));
	c.runs = calloc(o->batch, sizeof(*c.runs));
	if (!results || !c.runs) {
		ret = -ENOMEM;
		goto err_free;
	}
	ret = transport_mem_alloc(o->region, -1, o->no_hugepages ? TRANSPORT_MEM_NO_HUGEPAGES : 0,
				  &c.mem);
	if (ret)
		goto err_free;
	bw_pattern_fill(c.mem.addr, o->region);
	ret = transport_connect(uri, &topts, &c.conn);
	if (ret) {
		fprintf(stderr, "rmig-bw: connecting to %s: %s\n", uri, strerror(-ret));
		goto err_mem;
	}
	ret = transport_region_register(c.conn, BW_REGION_ID, c.mem.addr, o->region,
					TRANSPORT_ACCESS_LOCAL);
	if (ret)
		goto err_close;
	bw_msg_init(&m, BW_MSG_HELLO);
	m.value = o->region;
	ret = bw_msg_send(c.conn, &m);
	if (!ret)
		ret = bw_expect(&c, BW_MSG_READY, &m);
	if (ret)
		goto err_close;
	if (!o->json)
		bw_print_header(o, uri, loopback);
	for (size_t i = 0; i < o->nsizes; i++) {
		ret = bw_latency_pass(&c, o->sizes[i], &results[i]);
		if (!ret)
			ret = bw_bandwidth_pass(&c, o->sizes[i], &results[i]);
		if (ret)
			goto err_close;
		if (results[i].errors) {
			fprintf(stderr,
				"rmig-bw: %" PRIu64 " bytes landed wrong at size %" PRIu64 "\n",
				results[i].errors, o->sizes[i]);
			ret = -EIO;
			goto err_close;
		}
		if (!o->json)
			bw_print_row(&results[i]);
	}
	if (o->json)
		bw_print_json(o, uri, results, o->nsizes);
	/* An orderly end: the server's answer means everything before it landed. */
	bw_msg_init(&m, BW_MSG_BYE);
	ret = bw_msg_send(c.conn, &m);
	if (!ret)
		ret = bw_expect(&c, BW_MSG_BYE, &m);
err_close:
	if (ret && *transport_error(c.conn))
		fprintf(stderr, "rmig-bw: %s\n", transport_error(c.conn));
	transport_close(c.conn);
err_mem:
	transport_mem_free(&c.mem);
err_free:
	free(c.runs);
	free(results);
	return ret;
}

/* ---- reference: memcpy of the same runs, one thread ---- */

/* What the loop transport is compared with: the same batches of runs copied by memcpy from one
 * region to another in this process, timed the same way. */
static int bw_memcpy_run(const struct bw_options *o)
{
	struct transport_mem src, dst;
	struct bw_client c = {.o = o};
	struct bw_result r;
	int ret;

	c.runs = calloc(o->batch, sizeof(*c.runs));
	if (!c.runs)
		return -ENOMEM;
	ret = transport_mem_alloc(o->region, -1, o->no_hugepages ? TRANSPORT_MEM_NO_HUGEPAGES : 0,
				  &src);
	if (ret)
		goto err_free;
	ret = transport_mem_alloc(o->region, -1, o->no_hugepages ? TRANSPORT_MEM_NO_HUGEPAGES : 0,
				  &dst);
	if (ret)
		goto err_src;
	bw_pattern_fill(src.addr, o->region);
	if (!o->json)
		bw_print_header(o, "memcpy", 0);
	else
		printf("{\"uri\":\"memcpy\",\"transport\":\"memcpy\",\"streams\":1,\"batch\":%u,"
		       "\"region\":%" PRIu64 ",\"results\":[",
		       o->batch, o->region);
	for (size_t i = 0; i < o->nsizes; i++) {
		uint64_t size = o->sizes[i], t0, t1, cpu0, deadline, done = 0;

		memset(&r, 0, sizeof(r));
		cpu0 = bw_cpu_us();
		t0 = bw_now_ns();
		deadline = t0 + (uint64_t)(o->duration * 1e9);
		while (o->iters ? done < o->iters : (done & 7) || bw_now_ns() < deadline) {
			bw_fill_batch(&c, size);
			for (uint32_t k = 0; k < o->batch; k++)
				memcpy((char *)dst.addr + c.runs[k].offset,
				       (char *)src.addr + c.runs[k].offset, size);
			done++;
		}
		t1 = bw_now_ns();
		r.size = size;
		r.batches = done;
		r.runs = done * o->batch;
		r.bytes = r.runs * size;
		r.seconds = (double)(t1 - t0) / 1e9;
		r.gbps = (double)r.bytes * 8.0 / r.seconds / 1e9;
		r.mpps = (double)r.runs / r.seconds / 1e6;
		r.lat_p50_us = r.lat_p99_us = r.lat_p999_us = r.seconds * 1e6 / (double)done;
		r.cpu_client = 100.0 * (double)(bw_cpu_us() - cpu0) / (r.seconds * 1e6);
		r.cpu_server = -1;
		if (bw_pattern_mismatches(dst.addr, c.runs[0].offset, size)) {
			fprintf(stderr, "rmig-bw: memcpy reference copied wrong bytes\n");
			ret = -EIO;
			break;
		}
		if (o->json)
			bw_print_json_result(&r, i == 0);
		else
			bw_print_row(&r);
	}
	if (o->json)
		printf("]}\n");
	transport_mem_free(&dst);
err_src:
	transport_mem_free(&src);
err_free:
	free(c.runs);
	return ret;
}

/* ---- options ---- */

/* A size as every rmig command takes it (cli_parse_size(): 4K, 64M, 1GiB); 0 is no size. */
static int bw_parse_size(const char *text, uint64_t *value_p)
{
	return cli_parse_size(text, value_p) || *value_p == 0 ? -EINVAL : 0;
}

static int bw_parse_sizes(char *list, struct bw_options *o)
{
	o->nsizes = 0;
	for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		if (o->nsizes == BW_MAX_SIZES || bw_parse_size(tok, &o->sizes[o->nsizes]))
			return -EINVAL;
		o->nsizes++;
	}
	return o->nsizes ? 0 : -EINVAL;
}

static void bw_usage(FILE *f)
{
	fprintf(f,
		"usage: rmig-bw [--loopback | --server | --client] --uri URI [options]\n"
		"       rmig-bw --memcpy [options]\n"
		"  --uri URI          rdma://host:port, tcp://host:port or loop:name (the server\n"
		"                     listens there; port 0 picks one in loopback mode)\n"
		"  --loopback         server and client in this process (default)\n"
		"  --server           wait for one client at URI, serve it, exit\n"
		"  --client           connect to a server at URI\n"
		"  --size LIST        message (run) sizes, e.g. 4K,64K,1M (default 4K,64K,1M)\n"
		"  --sweep            sizes 4 KiB to 4 MiB, doubling\n"
		"  --batch N          runs per batch, one commit each (default 256)\n"
		"  --streams N        QPs (rdma) or sockets (tcp) (default 1)\n"
		"  --iters N          batches per size (default: --duration)\n"
		"  --duration S       seconds per size (default 2)\n"
		"  --lat-iters N      batch round trips timed per size (default 200; 0 skips)\n"
		"  --region SIZE      registered region (default 256M; at least 2 x batch x size)\n"
		"  --check            the server verifies every landed byte\n"
		"  --no-hugepages     plain pages for the regions\n"
		"  --memcpy           the reference: the same runs copied by memcpy in one thread\n"
		"  --tls MODE         tcp: none (default), psk (a fixed benchmark key, not a secret) or\n"
		"                     x509 (with --tls-creds DIR)\n"
		"  --tls-creds DIR    ca-cert.pem, server-cert.pem, server-key.pem, client-*.pem\n"
		"  --json             one JSON object on stdout\n"
		"In one process the cpu column is the whole process (both ends), in %% of one core.\n");
}

static int bw_parse(int argc, char **argv, struct bw_options *o)
{
	static const struct option longopts[] = {
		{"uri", required_argument, NULL, 'u'},
		{"loopback", no_argument, NULL, 'L'},
		{"server", no_argument, NULL, 'S'},
		{"client", no_argument, NULL, 'C'},
		{"size", required_argument, NULL, 's'},
		{"sweep", no_argument, NULL, 'w'},
		{"batch", required_argument, NULL, 'b'},
		{"streams", required_argument, NULL, 'q'},
		{"tls", required_argument, NULL, 'T'},
		{"tls-creds", required_argument, NULL, 'R'},
		{"iters", required_argument, NULL, 'n'},
		{"duration", required_argument, NULL, 'D'},
		{"lat-iters", required_argument, NULL, 'l'},
		{"region", required_argument, NULL, 'r'},
		{"check", no_argument, NULL, 'c'},
		{"no-hugepages", no_argument, NULL, 'H'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{"memcpy", no_argument, NULL, 'M'},
		{NULL, 0, NULL, 0},
	};
	char *end;
	int c;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'u':
			o->uri = optarg;
			break;
		case 'L':
			o->server = o->client = 0;
			break;
		case 'S':
			o->server = 1;
			break;
		case 'C':
			o->client = 1;
			break;
		case 's':
			if (bw_parse_sizes(optarg, o)) {
				fprintf(stderr, "rmig-bw: --size: bad list '%s'\n", optarg);
				return -EINVAL;
			}
			break;
		case 'w':
			o->nsizes = 0;
			for (uint64_t s = 4096; s <= (4u << 20); s *= 2)
				o->sizes[o->nsizes++] = s;
			break;
		case 'b':
			o->batch = (uint32_t)strtoul(optarg, &end, 10);
			if (*end || !o->batch || o->batch > TRANSPORT_BATCH_MAX_RUNS) {
				fprintf(stderr, "rmig-bw: --batch: 1..%u\n",
					TRANSPORT_BATCH_MAX_RUNS);
				return -EINVAL;
			}
			break;
		case 'T':
			if (!strcmp(optarg, "none")) {
				o->tls = TRANSPORT_TLS_NONE;
			} else if (!strcmp(optarg, "psk")) {
				o->tls = TRANSPORT_TLS_PSK;
			} else if (!strcmp(optarg, "x509")) {
				o->tls = TRANSPORT_TLS_X509;
			} else {
				fprintf(stderr, "rmig-bw: --tls: none, psk or x509\n");
				return -EINVAL;
			}
			break;
		case 'R':
			o->tls_creds = optarg;
			break;
		case 'q':
			o->streams = (uint32_t)strtoul(optarg, &end, 10);
			if (*end || !o->streams || o->streams > 8) {
				fprintf(stderr, "rmig-bw: --streams: 1..8\n");
				return -EINVAL;
			}
			break;
		case 'n':
			o->iters = strtoull(optarg, &end, 10);
			if (*end || !o->iters) {
				fprintf(stderr, "rmig-bw: --iters: a positive count\n");
				return -EINVAL;
			}
			break;
		case 'D':
			o->duration = strtod(optarg, &end);
			if (*end || !(o->duration > 0)) {
				fprintf(stderr, "rmig-bw: --duration: positive seconds\n");
				return -EINVAL;
			}
			break;
		case 'l':
			o->lat_iters = (uint32_t)strtoul(optarg, &end, 10);
			if (*end) {
				fprintf(stderr, "rmig-bw: --lat-iters: a count\n");
				return -EINVAL;
			}
			break;
		case 'r':
			if (bw_parse_size(optarg, &o->region) || o->region % 4096 ||
			    o->region > BW_MAX_REGION) {
				fprintf(stderr,
					"rmig-bw: --region: a multiple of 4 KiB up to 64 GiB\n");
				return -EINVAL;
			}
			break;
		case 'c':
			o->check = 1;
			break;
		case 'H':
			o->no_hugepages = 1;
			break;
		case 'j':
			o->json = 1;
			break;
		case 'M':
			o->memcpy_reference = 1;
			break;
		case 'h':
			bw_usage(stdout);
			exit(0);
		default:
			bw_usage(stderr);
			return -EINVAL;
		}
	}
	if (o->memcpy_reference && !o->uri)
		o->uri = "memcpy";
	if (optind != argc || !o->uri || (o->server && o->client)) {
		bw_usage(stderr);
		return -EINVAL;
	}
	for (size_t i = 0; i < o->nsizes; i++) {
		if (o->sizes[i] % 8 || 2 * o->sizes[i] > o->region) {
			fprintf(stderr,
				"rmig-bw: size %" PRIu64
				" must be a multiple of 8 and at most half "
				"the region\n",
				o->sizes[i]);
			return -EINVAL;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct bw_options o = {
		.sizes = {4096, 65536, 1u << 20},
		.nsizes = 3,
		.batch = 256,
		.streams = 1,
		.duration = 2.0,
		.lat_iters = 200,
		.region = 256ull << 20,
	};
	struct transport_options topts;
	struct bw_server_thread st = {0};
	char uri[TRANSPORT_URI_MAX];
	pthread_t server;
	int ret;

	if (bw_parse(argc, argv, &o))
		return 2;
	if (o.memcpy_reference)
		return bw_memcpy_run(&o) ? 1 : 0;
	topts = bw_transport_options(&o);
	if (o.client)
		return bw_client_run(&o, o.uri, 0) ? 1 : 0;

	ret = transport_listen(o.uri, &topts, &st.listener);
	if (ret) {
		fprintf(stderr, "rmig-bw: listening on %s: %s\n", o.uri, strerror(-ret));
		return 1;
	}
	st.no_hugepages = o.no_hugepages;
	if (o.server) {
		transport_listener_uri(st.listener, uri, sizeof(uri));
		fprintf(stderr, "rmig-bw: server listening on %s\n", uri);
		bw_server_main(&st);
		transport_listener_close(st.listener);
		return st.ret ? 1 : 0;
	}
	ret = transport_listener_uri(st.listener, uri, sizeof(uri));
	if (!ret)
		ret = -pthread_create(&server, NULL, bw_server_main, &st);
	if (ret) {
		fprintf(stderr, "rmig-bw: %s\n", strerror(-ret));
		transport_listener_close(st.listener);
		return 1;
	}
	ret = bw_client_run(&o, uri, 1);
	pthread_join(server, NULL);
	transport_listener_close(st.listener);
	return ret || st.ret ? 1 : 0;
}
