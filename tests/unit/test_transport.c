/* SPDX-License-Identifier: MIT */
/* tests/unit/test_transport.c - one test body for every transport: `test_transport loop`,
 * `test_transport tcp`, `test_transport rdma` (inside the soft-RoCE testbed, which sets
 * $RMIG_TESTBED_IP; the rdma run repeats the placement, read, ordering and disconnect bodies
 * over connections of 4 queue pairs, `_rdma_streams4`). Placement is checked byte for byte,
 * rejections by code and by the field the message names; the tcp run adds a hostile peer
 * speaking raw frames at a region fenced by guard pages. $RMIG_TEST_REGION_MIB shrinks the 1 GiB region (e.g. under valgrind);
 * $RMIG_TEST_FILTER (a glob, e.g. '*revoke*') runs only the tests it matches. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "transport/log.h"
#include "transport/transport.h"
#include "transport/deadline.h"
#include "transport/transport_impl.h"
#include "transport/wire.h"

#define TEST_TIMEOUT_MS 20000
#define TEST_PAGE 4096u
#define TEST_SMALL_REGION (16u << 20)

static const char *test_scheme;	 /* "loop", "tcp" or "rdma" */
static uint32_t default_streams; /* streams of pairs opened without options; 0: the default */
static size_t test_big_region;	 /* the 1 GiB of the issue, unless $RMIG_TEST_REGION_MIB */

/* ---- log capture: rejections must name the field ---- */

static pthread_mutex_t captured_lock = PTHREAD_MUTEX_INITIALIZER;
static char captured[4096];

static void capture_log(void *opaque, int level, const char *message)
{
	(void)opaque;
	if (level > RMIG_LOG_LEVEL_WARN) /* a listener's refusals are warnings: it goes on */
		return;
	pthread_mutex_lock(&captured_lock);
	snprintf(captured, sizeof(captured), "%s", message);
	pthread_mutex_unlock(&captured_lock);
}

static void captured_clear(void)
{
	pthread_mutex_lock(&captured_lock);
	captured[0] = '\0';
	pthread_mutex_unlock(&captured_lock);
}

static void assert_captured_names(const char *field)
{
	pthread_mutex_lock(&captured_lock);
	if (!strstr(captured, field))
		fail_msg("expected the logged error to name '%s', got '%s'", field, captured);
	pthread_mutex_unlock(&captured_lock);
}

/* ---- deterministic randomness and content ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng_next(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t rng_below(uint64_t bound)
{
	return rng_next() % bound;
}

/* Every byte of a source region is a function of its offset, so overlapping runs agree. */
static void pattern_fill(void *addr, size_t len, uint64_t seed)
{
	uint64_t *words = addr;

	for (size_t i = 0; i < len / 8; i++)
		words[i] = (i * 0x9e3779b97f4a7c15ull) ^ seed ^ (i << 17);
}

/* ---- regions ---- */

struct region {
	void *addr;
	size_t len;
};

static void region_map(struct region *r, size_t len)
{
	r->addr = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	assert_true(r->addr != MAP_FAILED);
	r->len = len;
}

static void region_unmap(struct region *r)
{
	if (r->addr)
		munmap(r->addr, r->len);
	r->addr = NULL;
}

/* ---- connected pairs ---- */

struct pair {
	struct transport_listener *listener;
	struct transport_conn *source;	    /* connected */
	struct transport_conn *destination; /* accepted */
	struct transport_options options;
};

struct connect_job {
	char uri[TRANSPORT_URI_MAX];
	const struct transport_options *options;
	struct transport_conn *conn;
	int ret;
};

static void *connect_main(void *arg)
{
	struct connect_job *job = arg;

	job->ret = transport_connect(job->uri, job->options, &job->conn);
	return NULL;
}

static int scheme_is(const char *scheme)
{
	return !strcmp(test_scheme, scheme);
}

static void listen_uri(char *buf, size_t len)
{
	static unsigned counter;

	if (scheme_is("loop"))
		snprintf(buf, len, "loop:test-transport-%d-%u", (int)getpid(), counter++);
	else if (scheme_is("tcp"))
		snprintf(buf, len, "tcp://127.0.0.1:0");
	else
		snprintf(buf, len, "rdma://%s:0", getenv("RMIG_TESTBED_IP"));
}

/* Connects on a second thread, since rdma's connect waits for the accept. */
static void pair_open_with(struct pair *p, const struct transport_options *options)
{
	const struct transport_options streams = {.streams = default_streams};
	struct connect_job job = {.options = options};
	char uri[TRANSPORT_URI_MAX];
	pthread_t thread;

	if (!options && default_streams)
		options = job.options = &streams;
	memset(p, 0, sizeof(*p));
	if (options)
		p->options = *options;
	listen_uri(uri, sizeof(uri));
	assert_int_equal(transport_listen(uri, options, &p->listener), 0);
	assert_int_equal(transport_listener_uri(p->listener, job.uri, sizeof(job.uri)), 0);
	assert_int_equal(pthread_create(&thread, NULL, connect_main, &job), 0);
	assert_int_equal(transport_accept(p->listener, TEST_TIMEOUT_MS, &p->destination), 0);
	pthread_join(thread, NULL);
	assert_int_equal(job.ret, 0);
	p->source = job.conn;
	assert_string_equal(transport_scheme(p->source), test_scheme);
	assert_string_equal(transport_scheme(p->destination), test_scheme);
}

static void pair_open(struct pair *p)
{
	pair_open_with(p, NULL);
}

static void pair_close(struct pair *p)
{
	transport_close(p->source);
	transport_close(p->destination);
	transport_listener_close(p->listener);
}

static void expect_ctrl(struct transport_conn *conn, const char *text)
{
	struct transport_msg msg;

	assert_int_equal(transport_recv(conn, &msg, TEST_TIMEOUT_MS), 0);
	assert_int_equal(msg.type, TRANSPORT_MSG_CTRL);
	assert_int_equal(msg.len, strlen(text));
	assert_memory_equal(msg.data, text, msg.len);
}

/* Region announcements travel ahead of control messages: one round trip each way proves both
 * sides know each other's regions. */
static void pair_sync(struct pair *p)
{
	assert_int_equal(transport_ctrl_send(p->source, "sync-s", 6), 0);
	assert_int_equal(transport_ctrl_send(p->destination, "sync-d", 6), 0);
	expect_ctrl(p->destination, "sync-s");
	expect_ctrl(p->source, "sync-d");
}

static void expect_commit(struct transport_conn *conn, uint64_t batch_id,
			  const struct transport_run *runs, size_t nruns)
{
	struct transport_msg msg;

	assert_int_equal(transport_recv(conn, &msg, TEST_TIMEOUT_MS), 0);
	assert_int_equal(msg.type, TRANSPORT_MSG_COMMIT);
	assert_int_equal(msg.batch_id, batch_id);
	assert_int_equal(msg.nruns, nruns);
	for (size_t i = 0; i < nruns; i++) {
		assert_int_equal(msg.runs[i].region_id, runs[i].region_id);
		assert_int_equal(msg.runs[i].flags, runs[i].flags);
		assert_int_equal(msg.runs[i].offset, runs[i].offset);
		assert_int_equal(msg.runs[i].length, runs[i].length);
	}
}

static int transport_unavailable(void)
{
	if (scheme_is("rdma") && (!getenv("RMIG_TESTBED_IP") || !transport_available("rdma")))
		return 1;
	return 0;
}

#define SKIP_UNLESS_AVAILABLE()              \
	do {                                 \
		if (transport_unavailable()) \
			skip();              \
	} while (0)

/* ---- the common body ---- */

static void test_transport_connects_and_exchanges_ctrl(void **state)
{
	struct transport_stats stats;
	struct pair p;
	char big[TRANSPORT_CTRL_MAX];
	struct transport_msg msg;

	(void)state;
	SKIP_UNLESS_AVAILABLE();
	pair_open(&p);
	assert_string_equal(transport_error(p.source), "");
	pair_sync(&p);
	/* The largest control message goes through intact. */
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)(i * 7 + 3);
	assert_int_equal(transport_ctrl_send(p.source, big, sizeof(big)), 0);
	assert_int_equal(transport_recv(p.destination, &msg, TEST_TIMEOUT_MS), 0);
	assert_int_equal(msg.type, TRANSPORT_MSG_CTRL);
	assert_int_equal(msg.len, sizeof(big));
	assert_memory_equal(msg.data, big, sizeof(big));
	assert_int_equal(transport_ctrl_send(p.source, big, TRANSPORT_CTRL_MAX + 1), -EMSGSIZE);
	transport_stats_get(p.destination, &stats);
	assert_int_equal(stats.ctrl_received, 2);
	assert_true(stats.bytes_received >= sizeof(big) + 6);
	pair_close(&p);
}

static void test_transport_times_out_when_nothing_comes(void **state)
{
	struct transport_msg msg;
	struct pair p;

	(void)state;
	SKIP_UNLESS_AVAILABLE();
	pair_open(&p);
	assert_int_equal(transport_recv(p.destination, &msg, 50), -ETIMEDOUT);
	assert_int_equal(transport_recv(p.source, &msg, 0), -ETIMEDOUT);
	pair_close(&p);
}

struct interval {
	uint64_t start, end;
};

static int interval_compare(const void *a, const void *b)
{
	const struct interval *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

static int all_zero(const unsigned char *p, size_t len)
{
	static const unsigned char zeroes[65536];

	while (len) {
		size_t chunk = len < sizeof(zeroes) ? len : sizeof(zeroes);

		if (memcmp(p, zeroes, chunk))
			return 0;
		p += chunk;
		len -= chunk;
	}
	return 1;
}

/* A run of one of three shapes: whole pages, arbitrary bytes, or a long one crossing many of
 * the transport's frames. The end of the region is reached on purpose now and then. */
static struct transport_run random_run(uint32_t region_id, size_t region_len)
{
	struct transport_run run = {.region_id = region_id};

	switch (rng_below(4)) {
	case 0:
		run.length = (1 + rng_below(64)) * TEST_PAGE;
		run.offset = rng_below((region_len - run.length) / TEST_PAGE + 1) * TEST_PAGE;
		break;
	case 1:
		run.length = 1 + rng_below(3 * TEST_PAGE);
		run.offset = rng_below(region_len - run.length + 1);
		break;
	case 2:
		run.length = (4u << 20) + 1 + rng_below(5u << 20);
		run.offset = rng_below(region_len - run.length + 1);
		break;
	default:
		run.length = 1 + rng_below(2 * TEST_PAGE);
		run.offset = region_len - run.length;
		break;
	}
	return run;
}

static void test_transport_places_scattered_batches_byte_for_byte(void **state)
{
	const size_t len = test_big_region;
	struct region src, dst;
	struct transport_stats before, after;
	struct interval *placed;
	size_t nplaced = 0, batches = 24;
	uint64_t expect_data = 0, covered = 0;
	struct pair p;

	(void)state;
	SKIP_UNLESS_AVAILABLE();
	region_map(&src, len);
	region_map(&dst, len);
	pattern_fill(src.addr, len, 0x5eed);
	pair_open(&p);
	assert_int_equal(
		transport_region_register(p.source, 1, src.addr, len, TRANSPORT_ACCESS_REMOTE_READ),
		0);
	assert_int_equal(transport_region_register(p.destination, 1, dst.addr, len,
						   TRANSPORT_ACCESS_REMOTE_WRITE),
			 0);
	pair_sync(&p);
	transport_stats_get(p.source, &before);

	placed = calloc(batches * 48, sizeof(*placed));
	assert_non_null(placed);
	for (size_t b = 0; b < batches; b++) {
		struct transport_run runs[48];
		size_t nruns = 1 + rng_below(48);

		for (size_t i = 0; i < nruns; i++) {
			runs[i] = random_run(1, len);
			placed[nplaced++] =
				(struct interval){runs[i].offset, runs[i].offset + runs[i].length};
			expect_data += runs[i].length;
		}
		assert_int_equal(transport_batch_post(p.source, 100 + b, runs, nruns), 0);
		expect_commit(p.destination, 100 + b, runs, nruns);
	}
	assert_int_equal(transport_flush(p.source, TEST_TIMEOUT_MS), 0);

	/* Inside the runs: the source's bytes. Everywhere else: untouched zeroes. */
	qsort(placed, nplaced, sizeof(*placed), interval_compare);
	uint64_t cursor = 0;
	for (size_t i = 0; i < nplaced; i++) {
		uint64_t start = placed[i].start > cursor ? placed[i].start : cursor;

		if (placed[i].start > cursor)
			assert_true(all_zero((unsigned char *)dst.addr + cursor,
					     placed[i].start - cursor));
		if (placed[i].end > start) {
			assert_memory_equal((char *)dst.addr + start, (char *)src.addr + start,
					    placed[i].end - start);
			covered += placed[i].end - start;
			cursor = placed[i].end;
		}
	}
	assert_true(all_zero((unsigned char *)dst.addr + cursor, len - cursor));
	assert_true(covered > 0);

	transport_stats_get(p.source, &after);
	assert_int_equal(after.data_bytes_sent - before.data_bytes_sent, expect_data);
	assert_int_equal(after.batches_sent - before.batches_sent, batches);
	/* Headers are counted too, so the wire carried more than the payload. */
	assert_true(after.bytes_sent - before.bytes_sent > expect_data);
	transport_stats_get(p.destination, &after);
	assert_int_equal(after.data_bytes_received, expect_data);
	assert_int_equal(after.batches_received, batches);

	/* And back by pull: the destination reads the source's region, up to its last byte. */
	for (unsigned i = 0; i < 8; i++) {
		size_t want = i == 0 ? (9u << 20) : 1 + (size_t)rng_below(3u << 20);
		uint64_t offset = i == 0 ? len - want : rng_below(len - want + 1);
		char *pulled = malloc(want);

		assert_non_null(pulled);
		assert_int_equal(
			transport_read(p.destination, 1, offset, pulled, want, TEST_TIMEOUT_MS), 0);
		assert_memory_equal(pulled, (char *)src.addr + offset, want);
		free(pulled);
	}

	free(placed);
	pair_close(&p);
	region_unmap(&dst);
	region_unmap(&src);
}

static void test_transport_zero_runs_carry_no_data(void **state)
{
	struct region src, dst;
	struct transport_stats sent_before, sent_after, received_before, received_after;
	const struct transport_run runs[] = {
		{.region_id = 7, .flags = TRANSPORT_RUN_ZERO, .offset = 0, .length = 65536},
		{.region_id = 7, .offset = 65536, .length = 8192},
		{.region_id = 7, .flags = TRANSPORT_RUN_ZERO, .offset = 100000, .length = 1},
	};
	struct pair p;

	(void)state;
	SKIP_UNLESS_AVAILABLE();
	region_map(&src, TEST_SMALL_REGION);
	region_map(&dst, TEST_SMALL_REGION);
	pattern_fill(src.addr, TEST_SMALL_REGION, 1);
	/* What the receiver's engine would overwrite with zeroes; the transport must not. */
	memset(dst.addr, 0xab, 65536);
	((unsigned char *)dst.addr)[100000] = 0xcd;
	pair_open(&p);
	assert_int_equal(transport_region_register(p.source, 7, src.addr, src.len, 0), 0);
	assert_int_equal(transport_region_register(p.destination, 7, dst.addr, dst.len,
						   TRANSPORT_ACCESS_REMOTE_WRITE),
			 0);
	pair_sync(&p);
	transport_stats_get(p.source, &sent_before);
	transport_stats_get(p.destination, &received_before);
	assert_int_equal(transport_batch_post(p.source, 1, runs, 3), 0);
	expect_commit(p.destination, 1, runs, 3);
	for (size_t i = 0; i < 65536; i++)
		assert_int_equal(((unsigned char *)dst.addr)[i], 0xab);
	assert_int_equal(((unsigned char *)dst.addr)[100000], 0xcd);
	assert_memory_equal((char *)dst.addr + 65536, (char *)src.addr + 65536, 8192);
	transport_stats_get(p.source, &sent_after);
	transport_stats_get(p.destination, &received_after);
	assert_int_equal(sent_after.data_bytes_sent - sent_before.data_bytes_sent, 8192);
	assert_int_equal(received_after.data_bytes_received - received_before.data_bytes_received,
			 8192);
	pair_close(&p);
	region_unmap(&dst);
	region_unmap(&src);
}

static void test_transport_reads_back_by_pull(void **state)
{
	struct region src, dst;
	struct transport_stats stats;
	const size_t sizes[] = {1, 4096, 4096 * 3 + 17, 9u << 20};
	unsigned char *buf;
	struct pair p;

	(void)state;
	SKIP_UNLESS_AVAILABLE();
	region_map(&src, TEST_SMALL_REGION);
	region_map(&dst, TEST_SMALL_REGION);
	pattern_fill(src.addr, TEST_SMALL_REGION, 2);
	pair_open(&p);
	assert_int_equal(transport_region_register(p.source, 3, src.addr, src.len,
						   TRANSPORT_ACCESS_REMOTE_READ),
			 0);
	assert_int_equal(transport_region_register(p.destination, 3, dst.addr, dst.len,
						   TRANSPORT_ACCESS_REMOTE_WRITE),
			 0);
	pair_sync(&p);
	buf = dst.addr; /* reads land in any local memory; here, the destination's region */
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint64_t offset = rng_below(TEST_SMALL_REGION - sizes[i] + 1);

		memset(buf, 0, sizes[i]);
		assert_int_equal(
			transport_read(p.destination, 3, offset, buf, sizes[i], TEST_TIMEOUT_MS),
			0);
		assert_memory_equal(buf, (char *)src.addr + offset, sizes[i]);
	}
	/* The very last byte. */
	assert_int_equal(
		transport_read(p.destination, 3, TEST_SMALL_REGION - 1, buf, 1, TEST_TIMEOUT_MS),
		0);
	assert_int_equal(buf[0], ((unsigned char *)src.addr)[TEST_SMALL_REGION - 1]);
	transport_stats_get(p.destination, &stats);
	assert_int_equal(stats.reads, 5);
	assert_int_equal(stats.read_bytes, 1 + 4096 + 4096 * 3 + 17 + (9u << 20) + 1);
	pair_close(&p);
	region_unmap(&dst);
	region_unmap(&src);
}

/* Both directions of a pair with one small region each, registered and known to the peer. */
static void pair_open_small(struct pair *p, struct region *src, struct region *dst,
			    unsigned dst_access)
{
	region_map(src, TEST_SMALL_REGION);
	region_map(dst, TEST_SMALL_REGION);
	pattern_fill(src->addr, src->len, 3);
	pair_open(p);
	assert_int_equal(transport_region_register(p->source, 1, src->addr, src->len,
						   TRANSPORT_ACCESS_REMOTE_READ),
			 0);
	assert_int_equal(
		transport_region_register(p->destination, 1, dst->addr, dst->len, dst_access), 0);
	pair_sync(p);
}

/* Regions src and dst of len bytes (src filled with the pattern of seed), a pair opened with
 * options, src registered on the source and dst remote-writable on the destination, both
 * announced. */
static void pair_open_regions(struct pair *p, struct region *src, struct region *dst, size_t len,
			      unsigned seed, const struct transport_options *options)
{
	region_map(src, len);
	region_map(dst, len);
	pattern_fill(src->addr, src->len, seed);
	pair_open_with(p, options);
	assert_int_equal(transport_region_register(p->source, 1, src->addr, src->len, 0), 0);
	assert_int_equal(transport_region_register(p->destination, 1, dst->addr, dst->len,
						   TRANSPORT_ACCESS_REMOTE_WRITE),
			 0);
	pair_sync(p);
}

static void pair_close_small(struct pair *p, struct region *src, struct region *dst)
{
	pair_close(p);
	region_unmap(dst);
	region_unmap(src);
}

static void test_transport_rejects_offset_beyond_region(void **state)
{
	struct transport_run run = {
		.region_id = 1, .offset = TEST_SMALL_REGION - 100, .length = 101};
	struct region src, dst;
	struct transport_stats stats;
	struct pair p;
	char byte;

	(void)state;
	SKIP_UNLESS_AVAILABLE();
	pair_open_small(&p, &src, &dst, TRANSPORT_ACCESS_REMOTE_WRITE);
	captured_clear();
	assert_int_equal(transport_batch_post(p.source, 1, &run, 1), -ERANGE);
	assert_captured_names("runs[0].offset");
	/* offset + length wraps around */
	run.offset = 4096;
	run.length = UINT64_MAX - 100;
	captured_clear();
	assert_int_equal(transport_batch_post(p.source, 2, &run, 1), -ERANGE);
	assert_captured_names("runs[0].offset");
	captured_clear();
	assert_int_equal(
		transport_read(p.destination, 1, TEST_SMALL_REGION, &byte, 1, TEST_TIMEOUT_MS),
		-ERANGE);
	assert_captured_names("offset");
	/* Refused before anything left: the connection stays healthy and nothing was sent. */
	assert_string_equal(transport_error(p.source), "");
	transport_stats_get(p.source, &stats);
	assert_int_equal(stats.batches_sent, 0);
	assert_true(all_zero(dst.addr, dst.len));
	pair_sync(&p);
	pair_close_small(&p, &src, &dst);
}

static void test_transport_rejects_unknown_region(void **state)
{
	struct transport_run run = {.region_id = 42, .offset = 0, .length = 4096};
	struct region src, dst;
	struct pair p;
	char byte;

	(void)state;
	SKIP_UNLESS_AVAILABLE();
	pair_open_small(&p, &src, &dst, TRANSPORT_ACCESS_REMOTE_WRITE);
	captured_clear();
	assert_int_equal(transport_batch_post(p.source, 1, &run, 1), -ENOENT);
	assert_captured_names("runs[0].region_id");
	captured_clear();
	assert_int_equal(transport_read(p.destination, 42, 0, &byte, 1, TEST_TIMEOUT_MS), -ENOENT);
	assert_captured_names("region_id");
	/* Registered here, but the peer has no region 9: refused as well. */
	assert_int_equal(transport_region_register(p.source, 9, src.addr, 4096, 0), 0);
	run.region_id = 9;
	captured_clear();
	assert_int_equal(transport_batch_post(p.source, 2, &run, 1), -ENOENT);
	assert_captured_names("runs[0].region_id");
	assert_string_equal(transport_error(p.source), "");
	pair_close_small(&p, &src, &dst);
}

static void test_transport_rejects_region_without_remote_write(void **state)
{
	struct transport_run run = {.region_id = 1, .offset = 0, .length = 4096};
	struct region src, dst;
	struct pair p;

	(void)state;
	SKIP_UNLESS_AVAILABLE();
	pair_open_small(&p, &src, &dst, TRANSPORT_ACCESS_REMOTE_READ);
	captured_clear();
	assert_int_equal(transport_batch_post(p.source, 1, &run, 1), -EACCES);
	assert_captured_names("region_id");
	assert_true(all_zero(dst.addr, dst.len));
	pair_close_small(&p, &src, &dst);
}

static void test_transport_rejects_empty_and_oversized_batches(void **state)
{
	struct transport_run runs[TRANSPORT_BATCH_MAX_RUNS + 1];
	struct region src, dst;
	struct pair p;

	(void)state;
	SKIP_UNLESS_AVAILABLE();
	pair_open_small(&p, &src, &dst, TRANSPORT_ACCESS_REMOTE_WRITE);
	for (size_t i = 0; i < TRANSPORT_BATCH_MAX_RUNS + 1; i++)
		runs[i] = (struct transport_run){.region_id = 1, .offset = i * 8, .length = 8};
	assert_int_equal(transport_batch_post(p.source, 1, runs, 0), -EINVAL);
	assert_int_equal(transport_batch_post(p.source, 1, runs, TRANSPORT_BATCH_MAX_RUNS + 1),
			 -EINVAL);
	runs[0].length = 0;
	captured_clear();
	assert_int_equal(transport_batch_post(p.source, 1, runs, 1), -EINVAL);
	assert_captured_names("runs[0].length");
	/* The most runs a batch may carry go through. */
	runs[0].length = 8;
	assert_int_equal(transport_batch_post(p.source, 2, runs, TRANSPORT_BATCH_MAX_RUNS), 0);
	expect_commit(p.destination, 2, runs, TRANSPORT_BATCH_MAX_RUNS);
	assert_memory_equal(dst.addr, src.addr, TRANSPORT_BATCH_MAX_RUNS * 8);
	pair_close_small(&p, &src, &dst);
}

static void test_transport_refuses_deregistered_region(void **state)
{
	struct transport_run run = {.region_id = 1, .offset = 0, .length = 4096};
	struct region src, dst;
	struct pair p;

	(void)state;
	SKIP_UNLESS_AVAILABLE();
	pair_open_small(&p, &src, &dst, TRANSPORT_ACCESS_REMOTE_WRITE);
	assert_int_equal(transport_region_register(p.destination, 1, dst.addr, 4096,
						   TRANSPORT_ACCESS_REMOTE_WRITE),
			 -EEXIST);
	assert_int_equal(transport_region_deregister(p.destination, 1), 0);
	assert_int_equal(transport_region_deregister(p.destination, 1), -ENOENT);
	pair_sync(&p); /* the revocation has reached the source */
	assert_int_equal(transport_batch_post(p.source, 1, &run, 1), -ENOENT);
	assert_true(all_zero(dst.addr, dst.len));
	assert_string_equal(transport_error(p.source), "");
	pair_close_small(&p, &src, &dst);
}

/* Revoked remote write: an honest source is refused before anything leaves, and a source that
 * ignores the revocation and writes with what it was told before (rdma: the old rkey) is
 * refused by the destination's side (loop: its check, tcp: its receiver, rdma: its NIC); the
 * destination's memory keeps what landed before. */
static void test_transport_write_after_revoke_refused_memory_unchanged(void **state)
{
	struct transport_run run = {.region_id = 1, .offset = 0, .length = 8 * TEST_PAGE};
	struct transport_region told;
	struct transport_msg msg;
	struct region src, dst;
	unsigned char *landed;
	struct pair p;
	int ret;

	(void)state;
	SKIP_UNLESS_AVAILABLE();
	pair_open_small(&p, &src, &dst, TRANSPORT_ACCESS_REMOTE_WRITE);
	assert_int_equal(transport_batch_post(p.source, 1, &run, 1), 0);
	expect_commit(p.destination, 1, &run, 1);
	assert_memory_equal(dst.addr, src.addr, run.length);
	landed = malloc(run.length);
	assert_non_null(landed);
	memcpy(landed, dst.addr, run.length);
	assert_int_equal(transport_region_find(p.source, 1, 1, &told), 0);

	assert_int_equal(transport_region_revoke(p.destination, 1, TRANSPORT_ACCESS_REMOTE_WRITE),
			 0);
	/* Again: nothing left to revoke. Unknown ids and other bits are refused. */
	assert_int_equal(transport_region_revoke(p.destination, 1, TRANSPORT_ACCESS_REMOTE_WRITE),
			 0);
	assert_int_equal(transport_region_revoke(p.destination, 42, TRANSPORT_ACCESS_REMOTE_WRITE),
			 -ENOENT);
	assert_int_equal(transport_region_grant(p.destination, 1, 1u << 7), -EINVAL);
	pair_sync(&p); /* the revocation has reached the source */
	assert_int_equal(transport_batch_post(p.source, 2, &run, 1), -ENOENT);
	assert_string_equal(transport_error(p.source), "");

	pattern_fill(src.addr, src.len, 77);
	assert_int_equal(transport_region_add(p.source, 1, &told), 0);
	ret = transport_batch_post(p.source, 3, &run, 1);
	if (scheme_is("loop")) {
		assert_int_equal(ret, -EACCES);
	} else if (scheme_is("tcp")) {
		assert_int_equal(ret, 0);
		assert_int_equal(transport_recv(p.destination, &msg, TEST_TIMEOUT_MS), -EPROTO);
		assert_non_null(strstr(transport_error(p.destination), "not remote-writable"));
	} else {
		if (!ret)
			ret = transport_flush(p.source, TEST_TIMEOUT_MS);
		assert_int_equal(ret, -EIO);
		assert_non_null(strstr(transport_error(p.source), "remote access error"));
	}
	assert_memory_equal(dst.addr, landed, run.length);
	assert_true(all_zero((unsigned char *)dst.addr + run.length, dst.len - run.length));
	free(landed);
	pair_close_small(&p, &src, &dst);
}

/* Post-copy before the resume: the source's RAM is registered for local use only. A reader
 * that was told nothing is refused before anything leaves; one that presents the key of the
 * source's local registration (never announced) is refused by the source's side. */
static void test_transport_read_refused_until_granted(void **state)
{
	struct transport_region forged;
	struct region src;
	unsigned char *buf;
	struct pair p;
	int ret;

	(void)state;
	SKIP_UNLESS_AVAILABLE();
	region_map(&src, TEST_SMALL_REGION);
	pattern_fill(src.addr, src.len, 4);
	pair_open(&p);
	assert_int_equal(transport_region_register(p.source, 4, src.addr, src.len, 0), 0);
	pair_sync(&p);
	buf = calloc(1, TEST_PAGE);
	assert_non_null(buf);
	assert_int_equal(transport_read(p.destination, 4, 0, buf, TEST_PAGE, TEST_TIMEOUT_MS),
			 -ENOENT);
	assert_int_equal(transport_region_find(p.source, 0, 4, &forged), 0);
	forged.access = TRANSPORT_ACCESS_REMOTE_READ;
	forged.addr = NULL;
	forged.priv = NULL;
	assert_int_equal(transport_region_add(p.destination, 1, &forged), 0);
	ret = transport_read(p.destination, 4, TEST_PAGE, buf, TEST_PAGE, TEST_TIMEOUT_MS);
	if (scheme_is("rdma"))
		assert_int_equal(ret, -EIO);
	else
		assert_int_equal(ret, -EACCES);
	assert_true(all_zero(buf, TEST_PAGE));
	free(buf);
	pair_close(&p);
	region_unmap(&src);
}

/* Granted (post-copy: at the resume), the source's RAM is read; revoked (the tail's end), a
 * reader that kept what it was told (rdma: the rkey) is refused, and the source's own use of
 * the region goes on. */
static void test_transport_read_works_while_granted_refused_after_revoke(void **state)
{
	struct transport_run run = {.region_id = 4, .offset = 0, .length = TEST_PAGE};
	struct transport_region told;
	struct region src, dst;
	unsigned char *buf;
	struct pair p;
	int ret;

	(void)state;
	SKIP_UNLESS_AVAILABLE();
	region_map(&src, TEST_SMALL_REGION);
	region_map(&dst, TEST_SMALL_REGION);
	pattern_fill(src.addr, src.len, 5);
	pair_open(&p);
	assert_int_equal(transport_region_register(p.source, 4, src.addr, src.len, 0), 0);
	assert_int_equal(transport_region_register(p.destination, 4, dst.addr, dst.len,
						   TRANSPORT_ACCESS_REMOTE_WRITE),
			 0);
	assert_int_equal(transport_region_grant(p.source, 4, TRANSPORT_ACCESS_REMOTE_READ), 0);
	pair_sync(&p);
	buf = calloc(1, 2 * TEST_PAGE);
	assert_non_null(buf);
	assert_int_equal(transport_read(p.destination, 4, 3 * TEST_PAGE, buf, 2 * TEST_PAGE,
					TEST_TIMEOUT_MS),
			 0);
	assert_memory_equal(buf, (char *)src.addr + 3 * TEST_PAGE, 2 * TEST_PAGE);
	assert_int_equal(transport_region_find(p.destination, 1, 4, &told), 0);

	assert_int_equal(transport_region_revoke(p.source, 4, TRANSPORT_ACCESS_REMOTE_READ), 0);
	pair_sync(&p);
	memset(buf, 0, 2 * TEST_PAGE);
	assert_int_equal(transport_read(p.destination, 4, 0, buf, TEST_PAGE, TEST_TIMEOUT_MS),
			 -ENOENT);
	/* The source still sends from it. */
	assert_int_equal(transport_batch_post(p.source, 1, &run, 1), 0);
	expect_commit(p.destination, 1, &run, 1);
	assert_memory_equal(dst.addr, src.addr, TEST_PAGE);
	assert_int_equal(transport_region_add(p.destination, 1, &told), 0);
	ret = transport_read(p.destination, 4, 0, buf, TEST_PAGE, TEST_TIMEOUT_MS);
	if (scheme_is("rdma"))
		assert_int_equal(ret, -EIO);
	else
		assert_int_equal(ret, -EACCES);
	assert_true(all_zero(buf, 2 * TEST_PAGE));
	free(buf);
	pair_close(&p);
	region_unmap(&dst);
	region_unmap(&src);
}

/* Region announcements bound to the handshake (transport_conn_bind): with matching keys every
 * announcement goes through, grants and revocations included; with a key that differs, or a
 * peer that sends announcements without a MAC, the first one fails the connection before the
 * region is known. loop has no wire to forge on: tcp and rdma only. */
static void expect_announcement_refused(struct transport_conn *conn)
{
	struct transport_msg msg;
	int ret = transport_recv(conn, &msg, TEST_TIMEOUT_MS);

	assert_true(ret < 0 && ret != -ETIMEDOUT);
	if (!strstr(transport_error(conn), "region-add.mac"))
		fail_msg("expected the error to name region-add.mac, got '%s'",
			 transport_error(conn));
	assert_int_equal(transport_region_find(conn, 1, 1, &(struct transport_region){0}), -ENOENT);
}

static void test_transport_announcements_bound_to_the_handshake(void **state)
{
	struct transport_run run = {.region_id = 1, .offset = 0, .length = 4 * TEST_PAGE};
	uint8_t key_s[TRANSPORT_BIND_KEY_LEN], key_d[TRANSPORT_BIND_KEY_LEN];
	uint8_t wrong[TRANSPORT_BIND_KEY_LEN];
	struct region src, dst;
	unsigned char buf[64];
	struct pair p;

	(void)state;
	SKIP_UNLESS_AVAILABLE();
	if (scheme_is("loop"))
		skip();
	memset(key_s, 0x51, sizeof(key_s));
	memset(key_d, 0xd2, sizeof(key_d));
	memset(wrong, 0x77, sizeof(wrong));
	region_map(&src, TEST_SMALL_REGION);
	region_map(&dst, TEST_SMALL_REGION);
	pattern_fill(src.addr, src.len, 6);

	pair_open(&p);
	assert_int_equal(transport_conn_bind(p.source, key_s, key_d), 0);
	assert_int_equal(transport_conn_bind(p.source, key_s, key_d), -EALREADY);
	assert_int_equal(transport_conn_bind(p.destination, key_d, key_s), 0);
	assert_int_equal(transport_region_register(p.source, 1, src.addr, src.len,
						   TRANSPORT_ACCESS_REMOTE_READ),
			 0);
	assert_int_equal(transport_region_register(p.destination, 1, dst.addr, dst.len,
						   TRANSPORT_ACCESS_REMOTE_WRITE),
			 0);
	assert_int_equal(transport_region_revoke(p.destination, 1, TRANSPORT_ACCESS_REMOTE_WRITE),
			 0);
	assert_int_equal(transport_region_grant(p.destination, 1, TRANSPORT_ACCESS_REMOTE_WRITE),
			 0);
	pair_sync(&p);
	assert_int_equal(transport_batch_post(p.source, 1, &run, 1), 0);
	expect_commit(p.destination, 1, &run, 1);
	assert_memory_equal(dst.addr, src.addr, run.length);
	assert_int_equal(transport_read(p.destination, 1, 100, buf, sizeof(buf), TEST_TIMEOUT_MS),
			 0);
	assert_memory_equal(buf, (char *)src.addr + 100, sizeof(buf));
	pair_close(&p);

	/* The destination's key is not the one the source expects. */
	pair_open(&p);
	assert_int_equal(transport_conn_bind(p.source, key_s, key_d), 0);
	assert_int_equal(transport_conn_bind(p.destination, wrong, key_s), 0);
	assert_int_equal(transport_region_register(p.destination, 1, dst.addr, dst.len,
						   TRANSPORT_ACCESS_REMOTE_WRITE),
			 0);
	expect_announcement_refused(p.source);
	pair_close(&p);

	/* A destination that sends its announcements without a MAC. */
	pair_open(&p);
	assert_int_equal(transport_conn_bind(p.source, key_s, key_d), 0);
	assert_int_equal(transport_region_register(p.destination, 1, dst.addr, dst.len,
						   TRANSPORT_ACCESS_REMOTE_WRITE),
			 0);
	expect_announcement_refused(p.source);
	pair_close(&p);
	region_unmap(&dst);
	region_unmap(&src);
}

static void test_transport_orders_ctrl_after_batches(void **state)
{
	struct region src, dst;
	struct transport_run runs[3];
	char text[32];
	struct pair p;

	(void)state;
	SKIP_UNLESS_AVAILABLE();
	pair_open_small(&p, &src, &dst, TRANSPORT_ACCESS_REMOTE_WRITE);
	for (unsigned i = 0; i < 20; i++) {
		for (unsigned r = 0; r < 3; r++)
			runs[r] = random_run(1, TEST_SMALL_REGION);
		assert_int_equal(transport_batch_post(p.source, i, runs, 1 + i % 3), 0);
		snprintf(text, sizeof(text), "after-%u", i);
		assert_int_equal(transport_ctrl_send(p.source, text, strlen(text)), 0);
	}
	for (unsigned i = 0; i < 20; i++) {
		struct transport_msg msg;

		assert_int_equal(transport_recv(p.destination, &msg, TEST_TIMEOUT_MS), 0);
		assert_int_equal(msg.type, TRANSPORT_MSG_COMMIT);
		assert_int_equal(msg.batch_id, i);
		assert_int_equal(msg.nruns, 1 + i % 3);
		/* The data of a delivered commit is in place. */
		for (size_t r = 0; r < msg.nruns; r++)
			assert_memory_equal((char *)dst.addr + msg.runs[r].offset,
					    (char *)src.addr + msg.runs[r].offset,
					    msg.runs[r].length);
		snprintf(text, sizeof(text), "after-%u", i);
		expect_ctrl(p.destination, text);
	}
	pair_close_small(&p, &src, &dst);
}

static void test_transport_delivers_before_reporting_peer_close(void **state)
{
	struct transport_run run = {.region_id = 1, .offset = 8192, .length = 300000};
	struct region src, dst;
	struct transport_msg msg;
	struct pair p;

	(void)state;
	SKIP_UNLESS_AVAILABLE();
	pair_open_small(&p, &src, &dst, TRANSPORT_ACCESS_REMOTE_WRITE);
	assert_int_equal(transport_batch_post(p.source, 5, &run, 1), 0);
	assert_int_equal(transport_ctrl_send(p.source, "bye", 3), 0);
	assert_int_equal(transport_flush(p.source, TEST_TIMEOUT_MS), 0);
	transport_close(p.source);
	p.source = NULL;
	expect_commit(p.destination, 5, &run, 1);
	assert_memory_equal((char *)dst.addr + 8192, (char *)src.addr + 8192, 300000);
	expect_ctrl(p.destination, "bye");
	assert_int_equal(transport_recv(p.destination, &msg, TEST_TIMEOUT_MS), -ECONNRESET);
	assert_true(strlen(transport_error(p.destination)) > 0);
	/* Every later call fails the same way, promptly. */
	assert_int_equal(transport_recv(p.destination, &msg, TEST_TIMEOUT_MS), -ECONNRESET);
	assert_int_equal(transport_ctrl_send(p.destination, "x", 1), -ECONNRESET);
	pair_close_small(&p, &src, &dst);
}

struct ctrl_flood {
	struct transport_conn *conn;
	unsigned count;
	int ret;
};

static void *ctrl_flood_main(void *arg)
{
	struct ctrl_flood *flood = arg;
	static char message[TRANSPORT_CTRL_MAX];

	for (unsigned i = 0; i < flood->count && !flood->ret; i++) {
		memcpy(message, &i, sizeof(i));
		flood->ret = transport_ctrl_send(flood->conn, message, sizeof(message));
	}
	return NULL;
}

/* More control data than a transport may hold for an engine that is not reading: the sender
 * is slowed down, nothing is lost or reordered. */
static void test_transport_delivers_unread_ctrl_flood_in_order(void **state)
{
	struct ctrl_flood flood;
	pthread_t thread;
	struct pair p;

	(void)state;
	SKIP_UNLESS_AVAILABLE();
	pair_open(&p);
	flood = (struct ctrl_flood){.conn = p.source, .count = 1500};
	assert_int_equal(pthread_create(&thread, NULL, ctrl_flood_main, &flood), 0);
	usleep(300 * 1000); /* let it run ahead; correctness below does not depend on it */
	for (unsigned i = 0; i < flood.count; i++) {
		struct transport_msg msg;
		unsigned seq;

		assert_int_equal(transport_recv(p.destination, &msg, TEST_TIMEOUT_MS), 0);
		assert_int_equal(msg.type, TRANSPORT_MSG_CTRL);
		assert_int_equal(msg.len, TRANSPORT_CTRL_MAX);
		memcpy(&seq, msg.data, sizeof(seq));
		assert_int_equal(seq, i);
	}
	pthread_join(thread, NULL);
	assert_int_equal(flood.ret, 0);
	pair_close(&p);
}

struct poster {
	struct transport_conn *conn;
	int ret;
	unsigned posted;
};

static void *poster_main(void *arg)
{
	struct poster *poster = arg;
	struct transport_run runs[4];

	for (unsigned r = 0; r < 4; r++)
		runs[r] = (struct transport_run){
			.region_id = 1, .offset = r * (3u << 20), .length = 3u << 20};
	/* Until the peer's departure shows; bounded so a transport that never notices fails. */
	for (poster->posted = 0; poster->posted < 100000; poster->posted++) {
		poster->ret = transport_batch_post(poster->conn, poster->posted, runs, 4);
		if (poster->ret)
			break;
	}
	return NULL;
}

/* Post batches on p's source from a thread, let data flow, then close the destination while
 * batches are in flight; returns once the poster gave up, which it must, with the error a
 * vanished peer gives. */
static void post_until_destination_vanishes(struct pair *p, struct poster *poster)
{
	struct transport_msg msg;
	pthread_t thread;

	*poster = (struct poster){.conn = p->source};
	assert_int_equal(pthread_create(&thread, NULL, poster_main, poster), 0);
	assert_int_equal(transport_recv(p->destination, &msg, TEST_TIMEOUT_MS), 0);
	assert_int_equal(msg.type, TRANSPORT_MSG_COMMIT);
	transport_close(p->destination);
	p->destination = NULL;
	pthread_join(thread, NULL);
	assert_true(poster->ret == -ECONNRESET || poster->ret == -EPIPE ||
		    poster->ret == -ENOTCONN);
	assert_true(poster->posted < 100000);
}

static void test_transport_survives_peer_disconnect_mid_batch(void **state)
{
	struct region src, dst;
	struct transport_msg msg;
	struct poster poster;
	struct pair p;

	(void)state;
	SKIP_UNLESS_AVAILABLE();
	pair_open_small(&p, &src, &dst, TRANSPORT_ACCESS_REMOTE_WRITE);
	post_until_destination_vanishes(&p, &poster);
	assert_int_equal(transport_recv(p.source, &msg, TEST_TIMEOUT_MS), poster.ret);
	assert_true(strlen(transport_error(p.source)) > 0);
	pair_close_small(&p, &src, &dst);
}

static void test_transport_streams_place_and_commit_in_order(void **state)
{
	const struct transport_options options = {.streams = 4};
	struct region src, dst;
	struct transport_run runs[16];
	struct pair p;

	(void)state;
	SKIP_UNLESS_AVAILABLE();
	pair_open_regions(&p, &src, &dst, TEST_SMALL_REGION * 4, 4, &options);
	for (unsigned b = 0; b < 8; b++) {
		for (unsigned r = 0; r < 16; r++)
			runs[r] = random_run(1, src.len);
		assert_int_equal(transport_batch_post(p.source, b, runs, 16), 0);
		assert_int_equal(transport_ctrl_send(p.source, "mark", 4), 0);
	}
	for (unsigned b = 0; b < 8; b++) {
		struct transport_msg msg;

		assert_int_equal(transport_recv(p.destination, &msg, TEST_TIMEOUT_MS), 0);
		assert_int_equal(msg.type, TRANSPORT_MSG_COMMIT);
		assert_int_equal(msg.batch_id, b);
		for (size_t r = 0; r < msg.nruns; r++)
			assert_memory_equal((char *)dst.addr + msg.runs[r].offset,
					    (char *)src.addr + msg.runs[r].offset,
					    msg.runs[r].length);
		expect_ctrl(p.destination, "mark");
	}
	pair_close(&p);
	region_unmap(&dst);
	region_unmap(&src);
}

/* Bytes sent again in a later batch must land after their earlier copy, even when the
 * transport spreads data over several streams (as migration resends re-dirtied pages). */
static void test_transport_later_batch_wins_on_overlap(void **state)
{
	enum { ROUNDS = 300 };
	const struct transport_options options = {.streams = 4};
	const size_t len = TEST_SMALL_REGION, block = 4u << 20;
	struct transport_run *runs;
	struct region src, dst;
	struct pair p;

	(void)state;
	SKIP_UNLESS_AVAILABLE();
	region_map(&src, len);
	region_map(&dst, len);
	runs = calloc(ROUNDS + 1, sizeof(*runs));
	assert_non_null(runs);
	pair_open_with(&p, &options);
	assert_int_equal(transport_region_register(p.source, 1, src.addr, len, 0), 0);
	assert_int_equal(transport_region_register(p.destination, 1, dst.addr, len,
						   TRANSPORT_ACCESS_REMOTE_WRITE),
			 0);
	pair_sync(&p);
	for (unsigned i = 1; i <= ROUNDS; i++) {
		/* Around the 4 MiB marks, where a transport may cut and spread data. */
		uint64_t mark = block * (1 + rng_below(2));
		struct transport_run *run = &runs[i];

		*run = (struct transport_run){.region_id = 1,
					      .offset = mark - rng_below(1u << 20),
					      .length = 1 + rng_below(2u << 20)};
		memset((char *)src.addr + run->offset, (int)(i & 0xff), run->length);
		assert_int_equal(transport_batch_post(p.source, i, run, 1), 0);
		/* The source may change its memory once the transport is done with it. */
		assert_int_equal(transport_flush(p.source, TEST_TIMEOUT_MS), 0);
	}
	for (unsigned i = 1; i <= ROUNDS; i++) {
		struct transport_msg msg;

		assert_int_equal(transport_recv(p.destination, &msg, TEST_TIMEOUT_MS), 0);
		assert_int_equal(msg.batch_id, i);
	}
	/* Every byte shows the batch that last covered it. */
	for (size_t at = block - (1u << 20); at < 2 * block + (1u << 20); at += 97) {
		unsigned expect = 0;

		for (unsigned i = 1; i <= ROUNDS; i++)
			if (at >= runs[i].offset && at - runs[i].offset < runs[i].length)
				expect = i & 0xff;
		assert_int_equal(((unsigned char *)dst.addr)[at], expect);
	}
	free(runs);
	pair_close(&p);
	region_unmap(&dst);
	region_unmap(&src);
}

/* ---- rdma with several queue pairs: the same bodies over a connection of 4 ---- */

static int streams_reset(void **state)
{
	(void)state;
	default_streams = 0;
	return 0;
}

#define RDMA_STREAMS4(body)                                        \
	static void body##_rdma_streams4(void **state)             \
	{                                                          \
		if (!scheme_is("rdma") || transport_unavailable()) \
			skip();                                    \
		default_streams = 4;                               \
		body(state);                                       \
	}

RDMA_STREAMS4(test_transport_places_scattered_batches_byte_for_byte)
RDMA_STREAMS4(test_transport_zero_runs_carry_no_data)
RDMA_STREAMS4(test_transport_reads_back_by_pull)
RDMA_STREAMS4(test_transport_orders_ctrl_after_batches)
RDMA_STREAMS4(test_transport_delivers_before_reporting_peer_close)
RDMA_STREAMS4(test_transport_survives_peer_disconnect_mid_batch)

/* ---- tcp only: a hostile peer speaking raw frames ---- */

/* A region fenced by inaccessible pages, with canary bytes in the pages next to it. */
struct fenced {
	unsigned char *map;
	size_t map_len;
	unsigned char *addr;
	size_t len;
};

#define FENCE_CANARY 0x5a

static void fenced_map(struct fenced *f, size_t len)
{
	f->len = len;
	f->map_len = len + 4 * TEST_PAGE;
	f->map = mmap(NULL, f->map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(f->map != MAP_FAILED);
	memset(f->map, FENCE_CANARY, f->map_len);
	f->addr = f->map + 2 * TEST_PAGE;
	memset(f->addr, 0, len);
	assert_int_equal(mprotect(f->map, TEST_PAGE, PROT_NONE), 0);
	assert_int_equal(mprotect(f->map + f->map_len - TEST_PAGE, TEST_PAGE, PROT_NONE), 0);
}

static void fenced_assert_untouched(const struct fenced *f)
{
	for (size_t i = TEST_PAGE; i < 2 * TEST_PAGE; i++)
		assert_int_equal(f->map[i], FENCE_CANARY);
	for (size_t i = 2 * TEST_PAGE + f->len; i < f->map_len - TEST_PAGE; i++)
		assert_int_equal(f->map[i], FENCE_CANARY);
	assert_true(all_zero(f->addr, f->len));
}

static void fenced_unmap(struct fenced *f)
{
	munmap(f->map, f->map_len);
}

struct hostile {
	struct transport_listener *listener;
	struct transport_conn *conn; /* ours, accepted */
	int fd;			     /* the hostile peer's socket */
	struct fenced region;
};

static void raw_send(int fd, const void *buf, size_t len)
{
	assert_int_equal(send(fd, buf, len, MSG_NOSIGNAL), (ssize_t)len);
}

static void raw_hello(int fd, uint32_t streams, uint64_t tag)
{
	struct {
		struct wire_hdr hdr;
		struct wire_hello hello;
	} __attribute__((packed)) msg;

	wire_hdr_to_wire(&msg.hdr, WIRE_HELLO, sizeof(msg.hello), 0);
	wire_hello_to_wire(&msg.hello, streams, TRANSPORT_CTRL_MAX, 0, tag);
	raw_send(fd, &msg, sizeof(msg));
}

static int raw_connect(const char *uri)
{
	struct transport_uri parsed;
	struct sockaddr_in sin = {.sin_family = AF_INET};
	int fd;

	assert_int_equal(transport_uri_parse(uri, &parsed), 0);
	sin.sin_port = htons(parsed.port);
	assert_int_equal(inet_pton(AF_INET, parsed.host, &sin.sin_addr), 1);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	return fd;
}

/* Accept the hostile peer after a well-formed hello and give it a fenced region to aim at. */
static void hostile_open(struct hostile *h)
{
	char uri[TRANSPORT_URI_MAX];

	memset(h, 0, sizeof(*h));
	assert_int_equal(transport_listen("tcp://127.0.0.1:0", NULL, &h->listener), 0);
	assert_int_equal(transport_listener_uri(h->listener, uri, sizeof(uri)), 0);
	h->fd = raw_connect(uri);
	raw_hello(h->fd, 1, 0x7700); /* tcp puts the stream's index in the tag's low byte */
	assert_int_equal(transport_accept(h->listener, TEST_TIMEOUT_MS, &h->conn), 0);
	fenced_map(&h->region, 16 * TEST_PAGE);
	assert_int_equal(transport_region_register(h->conn, 1, h->region.addr, h->region.len,
						   TRANSPORT_ACCESS_REMOTE_WRITE),
			 0);
}

/* Our side must break the connection, say which field was wrong, and have written nothing. */
static void hostile_expect_rejection(struct hostile *h, int err, const char *field)
{
	struct transport_msg msg;

	assert_int_equal(transport_recv(h->conn, &msg, TEST_TIMEOUT_MS), err);
	if (!strstr(transport_error(h->conn), field))
		fail_msg("expected the error to name '%s', got '%s'", field,
			 transport_error(h->conn));
	fenced_assert_untouched(&h->region);
	/* Later calls fail the same way instead of touching the dead stream. */
	assert_int_equal(transport_ctrl_send(h->conn, "x", 1), err);
}

static void hostile_close(struct hostile *h)
{
	close(h->fd);
	transport_close(h->conn);
	transport_listener_close(h->listener);
	fenced_unmap(&h->region);
}

static void send_header(int fd, unsigned type, uint32_t length)
{
	struct wire_hdr hdr;

	wire_hdr_to_wire(&hdr, (enum wire_type)type, length, 0);
	raw_send(fd, &hdr, sizeof(hdr));
}

static void send_data_frame(int fd, uint32_t region_id, uint64_t offset, uint32_t payload)
{
	struct wire_data data;
	unsigned char *bytes = malloc(payload);

	assert_non_null(bytes);
	memset(bytes, 0xee, payload);
	send_header(fd, WIRE_DATA, (uint32_t)sizeof(data) + payload);
	wire_data_to_wire(&data, region_id, offset);
	raw_send(fd, &data, sizeof(data));
	raw_send(fd, bytes, payload);
	free(bytes);
}

#define SKIP_UNLESS_TCP()              \
	do {                           \
		if (!scheme_is("tcp")) \
			skip();        \
	} while (0)

/* ---- a librmig built with -DRMIG_RDMA=OFF ---- */

#ifndef RMIG_HAVE_RDMA
static char last_error[512];

static void keep_last_error(void *opaque, int level, const char *message)
{
	(void)opaque;
	if (level == RMIG_LOG_LEVEL_ERROR)
		snprintf(last_error, sizeof(last_error), "%s", message);
}

/* rdma:// is refused at once, as unsupported, with a message that names the build option. */
static void test_rdma_refused_with_build_option_when_built_without_rdma(void **state)
{
	struct transport_listener *listener = NULL;
	struct transport_conn *conn = NULL;

	(void)state;
	assert_false(transport_available("rdma"));
	rmig_log_handler_set(keep_last_error, NULL, RMIG_LOG_LEVEL_ERROR);
	assert_int_equal(transport_connect("rdma://192.0.2.1:7000", NULL, &conn), -EPROTONOSUPPORT);
	assert_null(conn);
	assert_non_null(strstr(last_error, "-DRMIG_RDMA=OFF"));
	last_error[0] = 0;
	assert_int_equal(transport_listen("rdma://0.0.0.0:0", NULL, &listener), -EPROTONOSUPPORT);
	assert_null(listener);
	assert_non_null(strstr(last_error, "-DRMIG_RDMA=OFF"));
	rmig_log_handler_set(NULL, NULL, RMIG_LOG_LEVEL_WARN);
}
#endif

static void test_tcp_rejects_bad_magic(void **state)
{
	struct wire_hdr hdr;
	struct hostile h;

	(void)state;
	SKIP_UNLESS_TCP();
	hostile_open(&h);
	wire_hdr_to_wire(&hdr, WIRE_CTRL, 0, 0);
	hdr.magic ^= 1;
	raw_send(h.fd, &hdr, sizeof(hdr));
	hostile_expect_rejection(&h, -EPROTO, "header.magic");
	hostile_close(&h);
}

static void test_tcp_rejects_unknown_frame_type(void **state)
{
	struct hostile h;

	(void)state;
	SKIP_UNLESS_TCP();
	hostile_open(&h);
	send_header(h.fd, WIRE_TYPE_MAX + 1, 0);
	hostile_expect_rejection(&h, -EPROTO, "header.type");
	hostile_close(&h);
}

static void test_tcp_rejects_data_for_unregistered_region(void **state)
{
	struct hostile h;

	(void)state;
	SKIP_UNLESS_TCP();
	hostile_open(&h);
	send_data_frame(h.fd, 99, 0, 4096);
	hostile_expect_rejection(&h, -EPROTO, "data.region_id");
	hostile_close(&h);
}

/* A raw peer that keeps writing after the revocation: its frames are refused, nothing lands. */
static void test_tcp_rejects_data_for_revoked_region(void **state)
{
	struct hostile h;

	(void)state;
	SKIP_UNLESS_TCP();
	hostile_open(&h);
	assert_int_equal(transport_region_revoke(h.conn, 1, TRANSPORT_ACCESS_REMOTE_WRITE), 0);
	send_data_frame(h.fd, 1, 0, 4096);
	hostile_expect_rejection(&h, -EPROTO, "data.region_id");
	hostile_close(&h);
}

/* A raw peer on a connection bound to the handshake: an announcement with a valid MAC is taken,
 * the same bytes sent again (a replay) are refused, and so is one without a MAC. */
static void send_region_frame(int fd, unsigned type, uint32_t id, const uint8_t *mac)
{
	const struct transport_region region = {
		.id = id, .access = TRANSPORT_ACCESS_REMOTE_WRITE, .length = 16 * TEST_PAGE};
	struct wire_region wire;

	wire_region_to_wire(&wire, &region);
	send_header(fd, type, (uint32_t)(sizeof(wire) + (mac ? TRANSPORT_REGION_MAC_LEN : 0)));
	raw_send(fd, &wire, sizeof(wire));
	if (mac)
		raw_send(fd, mac, TRANSPORT_REGION_MAC_LEN);
}

static void region_frame_mac(const uint8_t *key, unsigned type, uint32_t id, uint8_t *mac)
{
	const struct transport_region region = {
		.id = id, .access = TRANSPORT_ACCESS_REMOTE_WRITE, .length = 16 * TEST_PAGE};
	struct transport_conn sealer;
	struct wire_region wire;

	/* What a peer holding the key computes: a connection of our own bound with it. */
	assert_int_equal(transport_conn_init(&sealer, &tcp_transport_ops, "sealer"), 0);
	assert_int_equal(transport_conn_bind(&sealer, key, key), 0);
	wire_region_to_wire(&wire, &region);
	assert_int_equal(transport_region_seal(&sealer, type, &wire, mac),
			 TRANSPORT_REGION_MAC_LEN);
	transport_conn_fini(&sealer);
}

static void test_tcp_rejects_replayed_region_announcement(void **state)
{
	uint8_t key[TRANSPORT_BIND_KEY_LEN], mac[TRANSPORT_REGION_MAC_LEN];
	struct transport_region told;
	struct hostile h;

	(void)state;
	SKIP_UNLESS_TCP();
	memset(key, 0x3c, sizeof(key));
	hostile_open(&h);
	assert_int_equal(transport_conn_bind(h.conn, key, key), 0);
	region_frame_mac(key, WIRE_REGION_ADD, 5, mac);
	send_region_frame(h.fd, WIRE_REGION_ADD, 5, mac);
	send_region_frame(h.fd, WIRE_REGION_ADD, 5, mac);
	hostile_expect_rejection(&h, -EPROTO, "region-add.mac: announcement 1");
	assert_int_equal(transport_region_find(h.conn, 1, 5, &told), 0); /* the first one */
	hostile_close(&h);
}

static void test_tcp_rejects_region_announcement_without_mac(void **state)
{
	uint8_t key[TRANSPORT_BIND_KEY_LEN];
	struct hostile h;

	(void)state;
	SKIP_UNLESS_TCP();
	memset(key, 0x3c, sizeof(key));
	hostile_open(&h);
	assert_int_equal(transport_conn_bind(h.conn, key, key), 0);
	send_region_frame(h.fd, WIRE_REGION_ADD, 5, NULL);
	hostile_expect_rejection(&h, -EPROTO, "region-add.mac: missing");
	assert_int_equal(transport_region_find(h.conn, 1, 5, &(struct transport_region){0}),
			 -ENOENT);
	hostile_close(&h);
}

static void test_tcp_rejects_data_offset_past_region_end(void **state)
{
	struct hostile h;

	(void)state;
	SKIP_UNLESS_TCP();
	hostile_open(&h);
	/* Starts inside, ends one byte past the end: not one byte may land. */
	send_data_frame(h.fd, 1, h.region.len - 4095, 4096);
	hostile_expect_rejection(&h, -EPROTO, "data.offset");
	hostile_close(&h);
}

static void test_tcp_rejects_data_offset_that_wraps(void **state)
{
	struct hostile h;

	(void)state;
	SKIP_UNLESS_TCP();
	hostile_open(&h);
	send_data_frame(h.fd, 1, UINT64_MAX - 10, 4096);
	hostile_expect_rejection(&h, -EPROTO, "data.offset");
	hostile_close(&h);
}

static void test_tcp_rejects_oversize_header_length(void **state)
{
	struct hostile h;

	(void)state;
	SKIP_UNLESS_TCP();
	hostile_open(&h);
	send_header(h.fd, WIRE_DATA, UINT32_MAX);
	hostile_expect_rejection(&h, -EPROTO, "header.length");
	hostile_close(&h);
}

static void test_tcp_rejects_oversize_ctrl(void **state)
{
	struct hostile h;

	(void)state;
	SKIP_UNLESS_TCP();
	hostile_open(&h);
	send_header(h.fd, WIRE_CTRL, TRANSPORT_CTRL_MAX + 1);
	hostile_expect_rejection(&h, -EPROTO, "header.length");
	hostile_close(&h);
}

static void send_commit(int fd, const struct transport_run *runs, size_t nruns,
			uint32_t stream_count)
{
	struct wire_commit_host commit = {
		.batch_id = 9, .stream_count = stream_count, .nruns = nruns};
	unsigned char buf[sizeof(struct wire_commit) + 4 * sizeof(struct wire_run)];
	int len;

	commit.stream_bytes[0] = 0;
	len = wire_commit_to_wire(buf, sizeof(buf), &commit, runs);
	assert_true(len > 0);
	send_header(fd, WIRE_COMMIT, (uint32_t)len);
	raw_send(fd, buf, (size_t)len);
}

static void test_tcp_rejects_commit_for_revoked_region(void **state)
{
	const struct transport_run run = {.region_id = 1, .offset = 0, .length = 4096};
	struct hostile h;

	(void)state;
	SKIP_UNLESS_TCP();
	hostile_open(&h);
	assert_int_equal(transport_region_revoke(h.conn, 1, TRANSPORT_ACCESS_REMOTE_WRITE), 0);
	send_commit(h.fd, &run, 1, 1);
	hostile_expect_rejection(&h, -EPROTO, "remote-write");
	hostile_close(&h);
}

static void test_tcp_rejects_commit_beyond_region(void **state)
{
	struct transport_run run = {.region_id = 1, .offset = 0, .length = 16 * TEST_PAGE + 1};
	struct hostile h;

	(void)state;
	SKIP_UNLESS_TCP();
	hostile_open(&h);
	send_commit(h.fd, &run, 1, 1);
	hostile_expect_rejection(&h, -EPROTO, "runs[0].offset");
	hostile_close(&h);
}

static void test_tcp_rejects_commit_with_overflowing_run(void **state)
{
	struct transport_run run = {.region_id = 1, .offset = UINT64_MAX - 1, .length = 4};
	struct hostile h;

	(void)state;
	SKIP_UNLESS_TCP();
	hostile_open(&h);
	send_commit(h.fd, &run, 1, 1);
	hostile_expect_rejection(&h, -EPROTO, "commit.runs[0].offset");
	hostile_close(&h);
}

static void test_tcp_rejects_commit_for_unknown_region(void **state)
{
	struct transport_run run = {.region_id = 5, .offset = 0, .length = 1};
	struct hostile h;

	(void)state;
	SKIP_UNLESS_TCP();
	hostile_open(&h);
	send_commit(h.fd, &run, 1, 1);
	hostile_expect_rejection(&h, -EPROTO, "runs[0].region_id");
	hostile_close(&h);
}

static void test_tcp_rejects_commit_with_wrong_stream_count(void **state)
{
	struct transport_run run = {.region_id = 1, .offset = 0, .length = 1};
	struct hostile h;

	(void)state;
	SKIP_UNLESS_TCP();
	hostile_open(&h);
	send_commit(h.fd, &run, 1, 3);
	hostile_expect_rejection(&h, -EPROTO, "commit.stream_count");
	hostile_close(&h);
}

static void test_tcp_rejects_read_response_never_requested(void **state)
{
	struct wire_read_resp resp;
	struct hostile h;

	(void)state;
	SKIP_UNLESS_TCP();
	hostile_open(&h);
	wire_read_resp_to_wire(&resp, 12345, 0);
	send_header(h.fd, WIRE_READ_RESP, sizeof(resp) + 4096);
	raw_send(h.fd, &resp, sizeof(resp));
	hostile_expect_rejection(&h, -EPROTO, "read-resp.request_id");
	hostile_close(&h);
}

static void test_tcp_rejects_region_add_twice(void **state)
{
	struct transport_region region = {
		.id = 4, .access = TRANSPORT_ACCESS_REMOTE_READ, .length = 4096};
	struct wire_region wire;
	struct hostile h;

	(void)state;
	SKIP_UNLESS_TCP();
	hostile_open(&h);
	wire_region_to_wire(&wire, &region);
	for (int i = 0; i < 2; i++) {
		send_header(h.fd, WIRE_REGION_ADD, sizeof(wire));
		raw_send(h.fd, &wire, sizeof(wire));
	}
	hostile_expect_rejection(&h, -EPROTO, "region-add.region_id");
	hostile_close(&h);
}

static void test_tcp_reports_truncated_data_frame(void **state)
{
	unsigned char bytes[100];
	struct wire_data data;
	struct transport_msg msg;
	struct hostile h;

	(void)state;
	SKIP_UNLESS_TCP();
	hostile_open(&h);
	/* Promises 8 KiB, delivers 100 bytes, hangs up. */
	send_header(h.fd, WIRE_DATA, sizeof(data) + 8192);
	wire_data_to_wire(&data, 1, 0);
	raw_send(h.fd, &data, sizeof(data));
	memset(bytes, 0xee, sizeof(bytes));
	raw_send(h.fd, bytes, sizeof(bytes));
	shutdown(h.fd, SHUT_WR);
	assert_int_equal(transport_recv(h.conn, &msg, TEST_TIMEOUT_MS), -ECONNRESET);
	assert_non_null(strstr(transport_error(h.conn), "truncated"));
	/* The 100 bytes that came were inside the region; nothing beyond it moved. */
	assert_int_equal(h.region.addr[0], 0xee);
	memset(h.region.addr, 0, sizeof(bytes));
	fenced_assert_untouched(&h.region);
	hostile_close(&h);
}

/* Valid frames a peer could send after the hello, in one buffer, for mutation. */
static size_t hostile_script(unsigned char *buf, size_t cap, size_t region_len)
{
	struct transport_region region = {
		.id = 2, .access = TRANSPORT_ACCESS_REMOTE_READ, .length = 4096};
	struct transport_run run = {.region_id = 1, .offset = 100, .length = 200};
	struct wire_commit_host commit = {.batch_id = 1, .stream_count = 1, .nruns = 1};
	struct wire_read_req req;
	struct wire_region wire_region;
	struct wire_data data;
	size_t len = 0;
	int commit_len;

#define PUT(ptr, n)                            \
	do {                                   \
		assert_true(len + (n) <= cap); \
		memcpy(buf + len, (ptr), (n)); \
		len += (n);                    \
	} while (0)
#define PUT_HDR(type, length)                                          \
	do {                                                           \
		struct wire_hdr hdr;                                   \
		wire_hdr_to_wire(&hdr, (type), (uint32_t)(length), 0); \
		PUT(&hdr, sizeof(hdr));                                \
	} while (0)

	wire_region_to_wire(&wire_region, &region);
	PUT_HDR(WIRE_REGION_ADD, sizeof(wire_region));
	PUT(&wire_region, sizeof(wire_region));
	switch (rng_below(3)) {
	case 0: /* data that ends at the last byte of the region */
		wire_data_to_wire(&data, 1, region_len - 300);
		PUT_HDR(WIRE_DATA, sizeof(data) + 300);
		PUT(&data, sizeof(data));
		memset(buf + len, 0xee, 300);
		len += 300;
		break;
	case 1:
		wire_data_to_wire(&data, 1, 100);
		PUT_HDR(WIRE_DATA, sizeof(data) + 200);
		PUT(&data, sizeof(data));
		memset(buf + len, 0xee, 200);
		len += 200;
		commit.stream_bytes[0] = 200;
		PUT_HDR(WIRE_COMMIT, sizeof(struct wire_commit) + sizeof(struct wire_run));
		commit_len = wire_commit_to_wire(buf + len, cap - len, &commit, &run);
		assert_true(commit_len > 0);
		len += (size_t)commit_len;
		break;
	default:
		wire_read_req_to_wire(&req, 1, 1, 0, 64);
		PUT_HDR(WIRE_READ_REQ, sizeof(req));
		PUT(&req, sizeof(req));
		PUT_HDR(WIRE_CTRL, 3);
		PUT("abc", 3);
		break;
	}
	PUT_HDR(WIRE_CLOSE, 0);
#undef PUT_HDR
#undef PUT
	return len;
}

static void test_tcp_survives_random_frames(void **state)
{
	unsigned char script[1024];

	(void)state;
	SKIP_UNLESS_TCP();
	for (unsigned round = 0; round < 150; round++) {
		struct transport_msg msg;
		struct hostile h;
		size_t len;
		int ret;

		hostile_open(&h);
		len = hostile_script(script, sizeof(script), h.region.len);
		for (unsigned m = 0, n = 1 + (unsigned)rng_below(4); m < n; m++) {
			size_t at = (size_t)rng_below(len);

			switch (rng_below(4)) {
			case 0:
				script[at] ^= (unsigned char)(1u << rng_below(8));
				break;
			case 1:
				script[at] = 0xff;
				break;
			case 2:
				script[at] = 0;
				break;
			default:
				len = at + 1;
				break;
			}
		}
		raw_send(h.fd, script, len);
		shutdown(h.fd, SHUT_WR);
		/* Whatever came, the connection ends (never a hang) and nothing outside the
		 * region moved: guard pages would fault, the canaries would differ. */
		do
			ret = transport_recv(h.conn, &msg, TEST_TIMEOUT_MS);
		while (ret == 0);
		assert_int_not_equal(ret, -ETIMEDOUT);
		assert_true(strlen(transport_error(h.conn)) > 0);
		memset(h.region.addr, 0, h.region.len);
		fenced_assert_untouched(&h.region);
		hostile_close(&h);
	}
}

/* What a raw receiver saw on each of a connection's sockets. */
#define SPREAD_STREAMS 3
#define SPREAD_BLOCK (4u << 20)
#define SPREAD_REGION (16u << 20)

struct spread {
	int fd[SPREAD_STREAMS];
	pthread_mutex_t lock;
	int block_stream[SPREAD_REGION / SPREAD_BLOCK]; /* -1: not seen yet, -2: on two streams */
	unsigned data_on_stream_zero;
	unsigned frames;
};

struct spread_reader {
	struct spread *spread;
	int index;
};

static int read_exact(int fd, void *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = recv(fd, (char *)buf + got, len - got, 0);

		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	return 0;
}

static void *spread_reader_main(void *arg)
{
	struct spread_reader *reader = arg;
	struct spread *spread = reader->spread;
	const uint32_t payload_max = (4u << 20) + 64;
	char *payload = malloc(payload_max);
	int fd = spread->fd[reader->index];

	while (payload) {
		struct wire_hdr_host hdr;
		struct wire_hdr raw;
		struct wire_data data;
		char why[TRANSPORT_ERROR_MAX];
		uint32_t region_id;
		uint64_t offset, length;

		if (read_exact(fd, &raw, sizeof(raw)) ||
		    wire_hdr_from_wire(&raw, sizeof(raw), payload_max, &hdr, why, sizeof(why)))
			break;
		if (hdr.type != WIRE_DATA) {
			if (read_exact(fd, payload, hdr.length))
				break;
			continue;
		}
		if (read_exact(fd, &data, sizeof(data)) ||
		    read_exact(fd, payload, hdr.length - sizeof(data)))
			break;
		wire_data_from_wire(&data, sizeof(data), &region_id, &offset, why, sizeof(why));
		length = hdr.length - sizeof(data);
		pthread_mutex_lock(&spread->lock);
		spread->frames++;
		if (reader->index == 0)
			spread->data_on_stream_zero++;
		for (uint64_t b = offset / SPREAD_BLOCK; b <= (offset + length - 1) / SPREAD_BLOCK;
		     b++) {
			int *seen = &spread->block_stream[b];

			if (*seen == -1)
				*seen = reader->index;
			else if (*seen != reader->index)
				*seen = -2;
		}
		pthread_mutex_unlock(&spread->lock);
	}
	free(payload);
	return NULL;
}

static void test_tcp_streams_keep_each_byte_on_one_stream(void **state)
{
	const struct transport_options options = {.streams = SPREAD_STREAMS};
	struct transport_region advertised = {
		.id = 1, .access = TRANSPORT_ACCESS_REMOTE_WRITE, .length = SPREAD_REGION};
	struct spread_reader readers[SPREAD_STREAMS];
	pthread_t threads[SPREAD_STREAMS];
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
	socklen_t sin_len = sizeof(sin);
	struct transport_conn *conn;
	struct spread spread;
	struct wire_region wire;
	struct region src;
	char uri[64];
	int listen_fd;

	(void)state;
	SKIP_UNLESS_TCP();
	memset(&spread, 0, sizeof(spread));
	pthread_mutex_init(&spread.lock, NULL);
	for (size_t b = 0; b < SPREAD_REGION / SPREAD_BLOCK; b++)
		spread.block_stream[b] = -1;
	listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(listen_fd >= 0);
	assert_int_equal(bind(listen_fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(listen_fd, 8), 0);
	assert_int_equal(getsockname(listen_fd, (struct sockaddr *)&sin, &sin_len), 0);
	snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%u", ntohs(sin.sin_port));
	/* connect opens every stream and sends its hellos without waiting for answers. */
	assert_int_equal(transport_connect(uri, &options, &conn), 0);
	for (int i = 0; i < SPREAD_STREAMS; i++) {
		struct {
			struct wire_hdr hdr;
			struct wire_hello hello;
		} __attribute__((packed)) hello_frame;
		struct wire_hello hello;
		char why[TRANSPORT_ERROR_MAX];

		spread.fd[i] = accept(listen_fd, NULL, NULL);
		assert_true(spread.fd[i] >= 0);
		assert_int_equal(read_exact(spread.fd[i], &hello_frame, sizeof(hello_frame)), 0);
		assert_int_equal(wire_hello_from_wire(&hello_frame.hello, sizeof(hello), &hello,
						      why, sizeof(why)),
				 0);
		raw_hello(spread.fd[i], SPREAD_STREAMS, hello.session_tag);
	}
	wire_region_to_wire(&wire, &advertised);
	send_header(spread.fd[0], WIRE_REGION_ADD, sizeof(wire));
	raw_send(spread.fd[0], &wire, sizeof(wire));
	send_header(spread.fd[0], WIRE_CTRL, 2);
	raw_send(spread.fd[0], "go", 2);
	expect_ctrl(conn, "go"); /* the region is known now */
	for (int i = 0; i < SPREAD_STREAMS; i++) {
		readers[i] = (struct spread_reader){.spread = &spread, .index = i};
		assert_int_equal(pthread_create(&threads[i], NULL, spread_reader_main, &readers[i]),
				 0);
	}

	region_map(&src, SPREAD_REGION);
	assert_int_equal(transport_region_register(conn, 1, src.addr, src.len, 0), 0);
	for (unsigned i = 0; i < 60; i++) {
		struct transport_run runs[3];

		for (unsigned r = 0; r < 3; r++)
			runs[r] = random_run(1, SPREAD_REGION);
		assert_int_equal(transport_batch_post(conn, i, runs, 3), 0);
	}
	transport_close(conn); /* the readers see the end of every stream */
	for (int i = 0; i < SPREAD_STREAMS; i++) {
		pthread_join(threads[i], NULL);
		close(spread.fd[i]);
	}
	close(listen_fd);
	assert_true(spread.frames > 60);
	assert_int_equal(spread.data_on_stream_zero, 0);
	for (size_t b = 0; b < SPREAD_REGION / SPREAD_BLOCK; b++)
		assert_int_not_equal(spread.block_stream[b], -2);
	pthread_mutex_destroy(&spread.lock);
	region_unmap(&src);
}

/* A stream is known by the index in its hello, not by the order it was accepted in. */
static void test_tcp_accepts_streams_in_any_order(void **state)
{
	static const unsigned order[3] = {2, 0, 1};
	struct transport_listener *listener;
	struct transport_conn *conn;
	char uri[TRANSPORT_URI_MAX];
	int fds[3];

	(void)state;
	SKIP_UNLESS_TCP();
	assert_int_equal(transport_listen("tcp://127.0.0.1:0", NULL, &listener), 0);
	assert_int_equal(transport_listener_uri(listener, uri, sizeof(uri)), 0);
	for (int i = 0; i < 3; i++) {
		fds[order[i]] = raw_connect(uri);
		raw_hello(fds[order[i]], 3, 0xab00 | order[i]);
	}
	assert_int_equal(transport_accept(listener, TEST_TIMEOUT_MS, &conn), 0);
	/* Control messages are only allowed on stream 0: this one must be taken as such. */
	send_header(fds[0], WIRE_CTRL, 2);
	raw_send(fds[0], "s0", 2);
	expect_ctrl(conn, "s0");
	for (int i = 0; i < 3; i++)
		close(fds[i]);
	transport_close(conn);
	transport_listener_close(listener);
}

/* The listener drops a refused peer and goes on: a real peer connecting after it is accepted,
 * and the refused socket has been closed by then. */
static void expect_refused_then_served(struct transport_listener *listener, const char *uri,
				       const int *bad, int nbad, const char *field)
{
	struct transport_conn *conn;
	char byte;
	int good;

	good = raw_connect(uri);
	raw_hello(good, 1, 0x5500);
	assert_int_equal(transport_accept(listener, TEST_TIMEOUT_MS, &conn), 0);
	assert_captured_names(field);
	for (int i = 0; i < nbad; i++)
		assert_int_equal(recv(bad[i], &byte, 1, 0), 0);
	send_header(good, WIRE_CTRL, 2);
	raw_send(good, "ok", 2);
	expect_ctrl(conn, "ok");
	transport_close(conn);
	close(good);
}

static void test_tcp_refuses_repeated_stream(void **state)
{
	struct transport_listener *listener;
	char uri[TRANSPORT_URI_MAX];
	int fds[2];

	(void)state;
	SKIP_UNLESS_TCP();
	assert_int_equal(transport_listen("tcp://127.0.0.1:0", NULL, &listener), 0);
	assert_int_equal(transport_listener_uri(listener, uri, sizeof(uri)), 0);
	captured_clear();
	for (int i = 0; i < 2; i++) {
		fds[i] = raw_connect(uri);
		raw_hello(fds[i], 2, 0xab00);
	}
	/* One of the two is kept waiting for its sibling, the other refused as a repeat. */
	expect_refused_then_served(listener, uri, NULL, 0, "hello.session_tag");
	for (int i = 0; i < 2; i++)
		close(fds[i]);
	transport_listener_close(listener);
}

static void test_tcp_refuses_bad_hello(void **state)
{
	struct transport_listener *listener;
	char uri[TRANSPORT_URI_MAX];
	int fd;

	(void)state;
	SKIP_UNLESS_TCP();
	assert_int_equal(transport_listen("tcp://127.0.0.1:0", NULL, &listener), 0);
	assert_int_equal(transport_listener_uri(listener, uri, sizeof(uri)), 0);
	captured_clear();
	fd = raw_connect(uri);
	raw_hello(fd, WIRE_STREAMS_MAX + 1, 1);
	expect_refused_then_served(listener, uri, &fd, 1, "hello.streams");
	close(fd);
	/* Not a hello at all. */
	captured_clear();
	fd = raw_connect(uri);
	send_header(fd, WIRE_CTRL, 0);
	expect_refused_then_served(listener, uri, &fd, 1, "header.type");
	close(fd);
	transport_listener_close(listener);
}

/* 64 bytes of garbage, a valid hello followed by silence, and 200 connections that say
 * nothing are all open when the real peer connects: it is accepted while they still are (the
 * idle ones are still open: their deadline has not passed), and the garbage is refused. */
#define IDLE_PEERS 200
static void test_tcp_listener_serves_real_peer_among_garbage_and_idle(void **state)
{
	struct transport_listener *listener;
	struct transport_conn *conn;
	char uri[TRANSPORT_URI_MAX], garbage[64], byte;
	int idle[IDLE_PEERS], junk, silent, good;
	int64_t start;

	(void)state;
	SKIP_UNLESS_TCP();
	assert_int_equal(transport_listen("tcp://127.0.0.1:0", NULL, &listener), 0);
	assert_int_equal(transport_listener_uri(listener, uri, sizeof(uri)), 0);
	for (int i = 0; i < IDLE_PEERS; i++)
		idle[i] = raw_connect(uri);
	junk = raw_connect(uri);
	for (size_t i = 0; i < sizeof(garbage); i++)
		garbage[i] = (char)(0xa5 ^ i);
	raw_send(junk, garbage, sizeof(garbage));
	silent = raw_connect(uri);
	raw_hello(silent, 2, 0x7700); /* stream 0 of 2; stream 1 never comes */
	captured_clear();
	start = transport_now_ms();
	good = raw_connect(uri);
	raw_hello(good, 1, 0x5500);
	assert_int_equal(transport_accept(listener, TEST_TIMEOUT_MS, &conn), 0);
	print_message("real peer accepted %lld ms after connecting, among %d idle, one garbage "
		      "and one silent connection\n",
		      (long long)(transport_now_ms() - start), IDLE_PEERS);
	/* The garbage was refused; the idle ones are still open (a refused one reads EOF). */
	{
		ssize_t r = recv(junk, &byte, 1, 0);

		/* closed with its garbage unread: an end of stream or a reset */
		assert_true(r == 0 || (r < 0 && errno == ECONNRESET));
	}
	for (int i = 0; i < IDLE_PEERS; i++)
		assert_int_equal(recv(idle[i], &byte, 1, MSG_DONTWAIT), -1);
	send_header(good, WIRE_CTRL, 2);
	raw_send(good, "ok", 2);
	expect_ctrl(conn, "ok");
	transport_close(conn);
	for (int i = 0; i < IDLE_PEERS; i++)
		close(idle[i]);
	close(junk);
	close(silent);
	close(good);
	transport_listener_close(listener);
}

/* TLS 1.3 with a pre-shared key: a pair exchanges a batch and control messages; a peer with
 * another key and a plaintext peer are refused, and the listener then serves the real one. */
struct tls_connect {
	const char *uri;
	struct transport_options options;
	struct transport_conn *conn;
	int ret;
};

static void *tls_connect_main(void *arg)
{
	struct tls_connect *c = arg;

	c->ret = transport_connect(c->uri, &c->options, &c->conn);
	return NULL;
}

/* The peer with the wrong key first, the real one only once it has been refused. */
static void *tls_connect_wrong_then_right(void *arg)
{
	struct tls_connect *c = arg;

	tls_connect_main(&c[0]);
	tls_connect_main(&c[1]);
	return NULL;
}

static void test_tcp_tls_psk_refuses_wrong_key_and_plaintext(void **state)
{
	static const uint8_t key[] = "correct horse battery staple";
	static const uint8_t other[] = "correct horse battery stapler";
	const struct transport_options options = {
		.tls = TRANSPORT_TLS_PSK, .psk = key, .psk_len = sizeof(key)};
	struct transport_listener *listener;
	struct transport_conn *conn, *plain;
	struct tls_connect peers[2], right;
	char uri[TRANSPORT_URI_MAX];
	struct transport_msg msg;
	pthread_t thread;

	(void)state;
	SKIP_UNLESS_TCP();
	assert_int_equal(transport_listen("tcp://127.0.0.1:0", &options, &listener), 0);
	assert_int_equal(transport_listener_uri(listener, uri, sizeof(uri)), 0);

	/* A plaintext peer: its hello is not a TLS handshake. */
	assert_int_equal(transport_connect(uri, NULL, &plain), 0);
	/* Another key, then the real peer: the listener refuses the first and serves the second. */
	peers[0] = (struct tls_connect){.uri = uri, .options = options};
	peers[0].options.psk = other;
	peers[0].options.psk_len = sizeof(other);
	peers[1] = (struct tls_connect){.uri = uri, .options = options};
	assert_int_equal(pthread_create(&thread, NULL, tls_connect_wrong_then_right, peers), 0);
	assert_int_equal(transport_accept(listener, TEST_TIMEOUT_MS, &conn), 0);
	assert_int_equal(pthread_join(thread, NULL), 0);
	assert_true(peers[0].ret < 0);
	assert_int_equal(peers[1].ret, 0);
	right = peers[1];
	/* The plaintext peer was refused by then: its connection reports the listener left. */
	assert_true(transport_recv(plain, &msg, TEST_TIMEOUT_MS) < 0);

	assert_int_equal(transport_ctrl_send(right.conn, "over tls", 8), 0);
	expect_ctrl(conn, "over tls");
	assert_int_equal(transport_ctrl_send(conn, "and back", 8), 0);
	expect_ctrl(right.conn, "and back");
	transport_close(plain);
	transport_close(right.conn);
	transport_close(conn);
	transport_listener_close(listener);
}

/* A TLS peer that vanishes while batches are in flight: the poster gets an error, never a
 * SIGPIPE, with SIGPIPE at its default action (which kills the process) meanwhile. The records
 * go out through rmig's MSG_NOSIGNAL BIO after the handshake (or with SIGPIPE blocked where
 * kernel TLS sends); a write(2) on the dead socket would end the test here. */
static void test_tcp_tls_peer_vanishing_raises_no_sigpipe(void **state)
{
	static const uint8_t key[] = "correct horse battery staple";
	const struct transport_options options = {
		.tls = TRANSPORT_TLS_PSK, .psk = key, .psk_len = sizeof(key)};
	struct region src, dst;
	struct poster poster;
	sigset_t pending;
	struct pair p;

	(void)state;
	SKIP_UNLESS_TCP();
	pair_open_regions(&p, &src, &dst, TEST_SMALL_REGION, 5, &options);
	assert_true(signal(SIGPIPE, SIG_DFL) != SIG_ERR);
	post_until_destination_vanishes(&p, &poster);
	/* the process is alive; nothing was left pending for a thread to take later */
	assert_int_equal(sigpending(&pending), 0);
	assert_false(sigismember(&pending, SIGPIPE));
	assert_true(signal(SIGPIPE, SIG_IGN) != SIG_ERR);
	pair_close(&p);
	region_unmap(&dst);
	region_unmap(&src);
}

/* A key and TLS off: the listener asks every stream for the key proof in its hello (a
 * challenge, its answer and proof, then the peer's proof) before it hands the connection on.
 * A plain hello, a proof that is not one and a peer with another key are refused, each while
 * the listener goes on, and then the real peer (two streams, each proving the key) is served. */
struct keyed_peers {
	const char *uri;
	struct transport_options options; /* the real peer's */
	const uint8_t *other_key;
	size_t other_key_len;
	ssize_t plain_end, answer_len, wrong_proof_end; /* what the raw peers read */
	char plain_refused[sizeof(captured)], wrong_proof_refused[sizeof(captured)];
	int other_key_ret, ret;
	struct transport_conn *other_conn, *conn;
};

static void raw_keyed_hello(int fd, enum wire_hello_key_step step, const uint8_t *mac)
{
	struct {
		struct wire_hdr hdr;
		struct wire_hello hello;
		struct wire_hello_key key;
	} __attribute__((packed)) msg;
	uint8_t nonce[WIRE_HELLO_KEY_NONCE_LEN];

	memset(nonce, 0x5a, sizeof(nonce));
	wire_hdr_to_wire(&msg.hdr, WIRE_HELLO, sizeof(msg.hello) + sizeof(msg.key), 0);
	wire_hello_to_wire(&msg.hello, 1, TRANSPORT_CTRL_MAX, 0, 0x6600);
	wire_hello_key_to_wire(&msg.key, step, step == WIRE_HELLO_KEY_CHALLENGE ? nonce : NULL,
			       mac);
	send(fd, &msg, sizeof(msg), MSG_NOSIGNAL);
}

/* Read to the end of the stream: 0 when the listener closed it (a reset counts: it closed
 * with our bytes unread), else what recv said. */
static ssize_t raw_read_end(int fd)
{
	char byte;
	ssize_t r = recv(fd, &byte, 1, 0);

	return r < 0 && errno == ECONNRESET ? 0 : r;
}

static void captured_copy(char *buf, size_t len)
{
	pthread_mutex_lock(&captured_lock);
	snprintf(buf, len, "%s", captured);
	pthread_mutex_unlock(&captured_lock);
}

/* One after the other, each only once the one before was dealt with (no asserts off the
 * test's thread: results are kept for it). */
static void *keyed_peers_main(void *arg)
{
	struct keyed_peers *k = arg;
	struct transport_options other = k->options;
	unsigned char answer[sizeof(struct wire_hdr) + sizeof(struct wire_hello) +
			     sizeof(struct wire_hello_key)];
	uint8_t not_a_proof[WIRE_HELLO_KEY_MAC_LEN];
	int fd;

	/* A plain hello: no key proof. */
	fd = raw_connect(k->uri);
	raw_hello(fd, 1, 0x6500);
	k->plain_end = raw_read_end(fd);
	captured_copy(k->plain_refused, sizeof(k->plain_refused));
	close(fd);
	/* A keyed challenge, then a proof made without the key. */
	memset(not_a_proof, 0xa5, sizeof(not_a_proof));
	fd = raw_connect(k->uri);
	raw_keyed_hello(fd, WIRE_HELLO_KEY_CHALLENGE, NULL);
	k->answer_len = recv(fd, answer, sizeof(answer), MSG_WAITALL);
	raw_keyed_hello(fd, WIRE_HELLO_KEY_PROOF, not_a_proof);
	k->wrong_proof_end = raw_read_end(fd);
	captured_copy(k->wrong_proof_refused, sizeof(k->wrong_proof_refused));
	close(fd);
	/* Another key: this side refuses the listener's proof and gives none. */
	other.psk = k->other_key;
	other.psk_len = k->other_key_len;
	k->other_key_ret = transport_connect(k->uri, &other, &k->other_conn);
	/* The real peer. */
	k->ret = transport_connect(k->uri, &k->options, &k->conn);
	return NULL;
}

static void test_tcp_keyed_hello_serves_key_holder_and_refuses_others(void **state)
{
	static const uint8_t key[] = "correct horse battery staple";
	static const uint8_t other[] = "correct horse battery stapler";
	struct keyed_peers k = {.options = {.tls = TRANSPORT_TLS_NONE,
					    .psk = key,
					    .psk_len = sizeof(key),
					    .streams = 2},
				.other_key = other,
				.other_key_len = sizeof(other)};
	struct transport_listener *listener;
	struct transport_conn *conn;
	char uri[TRANSPORT_URI_MAX];
	pthread_t thread;

	(void)state;
	SKIP_UNLESS_TCP();
	assert_int_equal(transport_listen("tcp://127.0.0.1:0", &k.options, &listener), 0);
	assert_int_equal(transport_listener_uri(listener, uri, sizeof(uri)), 0);
	k.uri = uri;
	captured_clear();
	assert_int_equal(pthread_create(&thread, NULL, keyed_peers_main, &k), 0);
	assert_int_equal(transport_accept(listener, TEST_TIMEOUT_MS, &conn), 0);
	assert_int_equal(pthread_join(thread, NULL), 0);
	assert_int_equal(k.plain_end, 0);
	assert_non_null(strstr(k.plain_refused, "without the key proof"));
	assert_int_equal(k.answer_len, (ssize_t)sizeof(struct wire_hdr) +
					       sizeof(struct wire_hello) +
					       sizeof(struct wire_hello_key));
	assert_int_equal(k.wrong_proof_end, 0);
	assert_non_null(strstr(k.wrong_proof_refused, "hello.key.mac"));
	assert_int_equal(k.other_key_ret, -EACCES);
	assert_int_equal(k.ret, 0);
	assert_int_equal(transport_ctrl_send(k.conn, "keyed", 5), 0);
	expect_ctrl(conn, "keyed");
	assert_int_equal(transport_ctrl_send(conn, "and back", 8), 0);
	expect_ctrl(k.conn, "and back");
	transport_close(k.conn);
	transport_close(conn);
	transport_listener_close(listener);
}

/* The other way round: a listener without a key (an explicit opt-out) refuses a peer that
 * offers a key proof, says why, and serves a plain peer after it. */
struct keyed_against_plain {
	const char *uri;
	struct transport_options keyed;
	int keyed_ret, plain_ret;
	char keyed_error[sizeof(captured)];
	struct transport_conn *keyed_conn, *plain_conn;
};

static void *keyed_against_plain_main(void *arg)
{
	struct keyed_against_plain *k = arg;

	k->keyed_ret = transport_connect(k->uri, &k->keyed, &k->keyed_conn);
	captured_copy(k->keyed_error, sizeof(k->keyed_error));
	k->plain_ret = transport_connect(k->uri, NULL, &k->plain_conn);
	return NULL;
}

static void test_tcp_listener_without_key_refuses_keyed_hello(void **state)
{
	static const uint8_t key[] = "correct horse battery staple";
	struct keyed_against_plain k = {
		.keyed = {.tls = TRANSPORT_TLS_NONE, .psk = key, .psk_len = sizeof(key)}};
	struct transport_listener *listener;
	struct transport_conn *conn;
	char uri[TRANSPORT_URI_MAX];
	pthread_t thread;

	(void)state;
	SKIP_UNLESS_TCP();
	assert_int_equal(transport_listen("tcp://127.0.0.1:0", NULL, &listener), 0);
	assert_int_equal(transport_listener_uri(listener, uri, sizeof(uri)), 0);
	k.uri = uri;
	captured_clear();
	assert_int_equal(pthread_create(&thread, NULL, keyed_against_plain_main, &k), 0);
	assert_int_equal(transport_accept(listener, TEST_TIMEOUT_MS, &conn), 0);
	assert_int_equal(pthread_join(thread, NULL), 0);
	assert_int_equal(k.keyed_ret, -ECONNRESET);
	assert_non_null(strstr(k.keyed_error, "--tls must match on both sides, and the key"));
	assert_int_equal(k.plain_ret, 0);
	assert_int_equal(transport_ctrl_send(k.plain_conn, "plain", 5), 0);
	expect_ctrl(conn, "plain");
	transport_close(k.plain_conn);
	transport_close(conn);
	transport_listener_close(listener);
}

static void test_tcp_wildcard_listener_reports_connectable_address(void **state)
{
	struct transport_listener *listener;
	struct transport_conn *client, *server;
	struct transport_uri parsed;
	char uri[TRANSPORT_URI_MAX];

	(void)state;
	SKIP_UNLESS_TCP();
	assert_int_equal(transport_listen("tcp://0.0.0.0:0", NULL, &listener), 0);
	assert_int_equal(transport_listener_uri(listener, uri, sizeof(uri)), 0);
	assert_int_equal(transport_uri_parse(uri, &parsed), 0);
	assert_string_equal(parsed.scheme, "tcp");
	assert_string_not_equal(parsed.host, "0.0.0.0");
	assert_int_not_equal(parsed.port, 0);
	assert_int_equal(transport_connect(uri, NULL, &client), 0);
	assert_int_equal(transport_accept(listener, TEST_TIMEOUT_MS, &server), 0);
	assert_int_equal(transport_ctrl_send(client, "hi", 2), 0);
	expect_ctrl(server, "hi");
	transport_close(client);
	transport_close(server);
	transport_listener_close(listener);
}

static void test_tcp_accept_times_out_without_peer(void **state)
{
	struct transport_listener *listener;
	struct transport_conn *conn;

	(void)state;
	SKIP_UNLESS_TCP();
	assert_int_equal(transport_listen("tcp://127.0.0.1:0", NULL, &listener), 0);
	assert_int_equal(transport_accept(listener, 20, &conn), -ETIMEDOUT);
	transport_listener_close(listener);
}

static void test_tcp_connect_fails_cleanly_without_listener(void **state)
{
	struct transport_listener *listener;
	struct transport_conn *conn;
	char uri[TRANSPORT_URI_MAX];

	(void)state;
	SKIP_UNLESS_TCP();
	/* A port that was just free. */
	assert_int_equal(transport_listen("tcp://127.0.0.1:0", NULL, &listener), 0);
	assert_int_equal(transport_listener_uri(listener, uri, sizeof(uri)), 0);
	transport_listener_close(listener);
	assert_int_equal(transport_connect(uri, NULL, &conn), -ECONNREFUSED);
}

static void test_loop_connect_fails_without_listener(void **state)
{
	struct transport_conn *conn;

	(void)state;
	if (!scheme_is("loop"))
		skip();
	assert_int_equal(transport_connect("loop:nobody-listens-here", NULL, &conn), -ECONNREFUSED);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_transport_connects_and_exchanges_ctrl),
		cmocka_unit_test(test_transport_times_out_when_nothing_comes),
		cmocka_unit_test(test_transport_places_scattered_batches_byte_for_byte),
		cmocka_unit_test(test_transport_zero_runs_carry_no_data),
		cmocka_unit_test(test_transport_reads_back_by_pull),
		cmocka_unit_test(test_transport_rejects_offset_beyond_region),
		cmocka_unit_test(test_transport_rejects_unknown_region),
		cmocka_unit_test(test_transport_rejects_region_without_remote_write),
		cmocka_unit_test(test_transport_rejects_empty_and_oversized_batches),
		cmocka_unit_test(test_transport_refuses_deregistered_region),
		cmocka_unit_test(test_transport_write_after_revoke_refused_memory_unchanged),
		cmocka_unit_test(test_transport_read_refused_until_granted),
		cmocka_unit_test(test_transport_read_works_while_granted_refused_after_revoke),
		cmocka_unit_test(test_transport_announcements_bound_to_the_handshake),
		cmocka_unit_test(test_transport_orders_ctrl_after_batches),
		cmocka_unit_test(test_transport_delivers_before_reporting_peer_close),
		cmocka_unit_test(test_transport_survives_peer_disconnect_mid_batch),
		cmocka_unit_test(test_transport_delivers_unread_ctrl_flood_in_order),
		cmocka_unit_test(test_transport_streams_place_and_commit_in_order),
		cmocka_unit_test(test_transport_later_batch_wins_on_overlap),
		cmocka_unit_test_teardown(
			test_transport_places_scattered_batches_byte_for_byte_rdma_streams4,
			streams_reset),
		cmocka_unit_test_teardown(test_transport_zero_runs_carry_no_data_rdma_streams4,
					  streams_reset),
		cmocka_unit_test_teardown(test_transport_reads_back_by_pull_rdma_streams4,
					  streams_reset),
		cmocka_unit_test_teardown(test_transport_orders_ctrl_after_batches_rdma_streams4,
					  streams_reset),
		cmocka_unit_test_teardown(
			test_transport_delivers_before_reporting_peer_close_rdma_streams4,
			streams_reset),
		cmocka_unit_test_teardown(
			test_transport_survives_peer_disconnect_mid_batch_rdma_streams4,
			streams_reset),
		cmocka_unit_test(test_tcp_rejects_bad_magic),
		cmocka_unit_test(test_tcp_rejects_unknown_frame_type),
		cmocka_unit_test(test_tcp_rejects_data_for_unregistered_region),
		cmocka_unit_test(test_tcp_rejects_data_for_revoked_region),
		cmocka_unit_test(test_tcp_rejects_replayed_region_announcement),
		cmocka_unit_test(test_tcp_rejects_region_announcement_without_mac),
		cmocka_unit_test(test_tcp_rejects_commit_for_revoked_region),
		cmocka_unit_test(test_tcp_rejects_data_offset_past_region_end),
		cmocka_unit_test(test_tcp_rejects_data_offset_that_wraps),
		cmocka_unit_test(test_tcp_rejects_oversize_header_length),
		cmocka_unit_test(test_tcp_rejects_oversize_ctrl),
		cmocka_unit_test(test_tcp_rejects_commit_beyond_region),
		cmocka_unit_test(test_tcp_rejects_commit_with_overflowing_run),
		cmocka_unit_test(test_tcp_rejects_commit_for_unknown_region),
		cmocka_unit_test(test_tcp_rejects_commit_with_wrong_stream_count),
		cmocka_unit_test(test_tcp_rejects_read_response_never_requested),
		cmocka_unit_test(test_tcp_rejects_region_add_twice),
		cmocka_unit_test(test_tcp_reports_truncated_data_frame),
		cmocka_unit_test(test_tcp_survives_random_frames),
		cmocka_unit_test(test_tcp_streams_keep_each_byte_on_one_stream),
		cmocka_unit_test(test_tcp_accepts_streams_in_any_order),
		cmocka_unit_test(test_tcp_refuses_repeated_stream),
		cmocka_unit_test(test_tcp_refuses_bad_hello),
		cmocka_unit_test(test_tcp_listener_serves_real_peer_among_garbage_and_idle),
		cmocka_unit_test(test_tcp_tls_psk_refuses_wrong_key_and_plaintext),
		cmocka_unit_test(test_tcp_tls_peer_vanishing_raises_no_sigpipe),
		cmocka_unit_test(test_tcp_keyed_hello_serves_key_holder_and_refuses_others),
		cmocka_unit_test(test_tcp_listener_without_key_refuses_keyed_hello),
		cmocka_unit_test(test_tcp_wildcard_listener_reports_connectable_address),
		cmocka_unit_test(test_tcp_accept_times_out_without_peer),
		cmocka_unit_test(test_tcp_connect_fails_cleanly_without_listener),
		cmocka_unit_test(test_loop_connect_fails_without_listener),
	};
	const char *mib = getenv("RMIG_TEST_REGION_MIB");
	char name[64];

	if (argc != 2 ||
	    (strcmp(argv[1], "loop") && strcmp(argv[1], "tcp") && strcmp(argv[1], "rdma"))) {
		fprintf(stderr, "usage: %s loop|tcp|rdma\n", argv[0]);
		return 2;
	}
	test_scheme = argv[1];
#ifndef RMIG_HAVE_RDMA
	if (scheme_is("rdma")) {
		const struct CMUnitTest refused[] = {
			cmocka_unit_test(
				test_rdma_refused_with_build_option_when_built_without_rdma),
		};

		return cmocka_run_group_tests_name("transport_rdma_disabled", refused, NULL, NULL);
	}
#endif
	if (transport_unavailable()) {
		/* ctest reports this as skipped (SKIP_RETURN_CODE), not as a pass. */
		fprintf(stderr, "transport_%s: needs $RMIG_TESTBED_IP and a verbs device\n",
			test_scheme);
		return 77;
	}
	test_big_region = (mib ? strtoull(mib, NULL, 10) : 1024) << 20;
	if (test_big_region < (64u << 20))
		test_big_region = 64u << 20;
	signal(SIGPIPE, SIG_IGN); /* the hostile peer's socket; the transport never needs it */
	rmig_log_handler_set(capture_log, NULL, RMIG_LOG_LEVEL_WARN);
	/* A glob over test names, for one test at a time inside the slow testbed guest. */
	if (getenv("RMIG_TEST_FILTER"))
		cmocka_set_test_filter(getenv("RMIG_TEST_FILTER"));
	snprintf(name, sizeof(name), "transport_%s", test_scheme);
	return cmocka_run_group_tests_name(name, tests, NULL, NULL);
}
