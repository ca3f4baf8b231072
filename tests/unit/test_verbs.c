/* SPDX-License-Identifier: MIT */
/* tests/unit/test_verbs.c - the rdma transport's own behaviours on a real verbs device (the
 * soft-RoCE testbed): split and chained writes, commit ordering, RDMA READ, credit pressure,
 * completion errors naming the failed work request, peer disconnect, version refusal, staged
 * regions (reg=copy at either end or both, a device BAR the kernel will not pin, registered
 * whole or chunked, and staged messages a hostile peer crafts on its send ring).
 *
 * Every test is two halves that meet only through their connection: the source half (connects,
 * writes) and the destination half (listens, receives, checks what landed against the pattern
 * the source wrote). Several run twice or three times: with one queue pair per connection and
 * with 2 or 4 (`_streams2`, `_streams4`, transport_options.streams on the source; the listener
 * follows). Queue pairs and memory regions are counted through the kernel's own view of this
 * process (`rdma -j resource show qp|mr`, iproute2's rdma tool). $RMIG_TESTBED_ROLE says which
 * halves this process runs:
 *   unset        both: this process runs the source halves and starts itself again as the
 *                destination (loopback on one device, $RMIG_TESTBED_IP);
 *   source       the source halves, connecting to $RMIG_TESTBED_PEER_IP (another host);
 *   destination  the destination halves, listening on $RMIG_TESTBED_IP.
 * Test i meets on port $RMIG_TESTBED_PORT + i (default 7471 + i). Needs $RMIG_TESTBED_IP (an
 * address on the rdma device); exits 77 (skipped) without it. $RMIG_VERBS_FILTER (a cmocka
 * pattern, e.g. '*staged*') runs only the tests it names, in both halves; $RMIG_VERBS_INFO (any
 * value) shows the transport's info lines too. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <infiniband/verbs.h>
#include <netdb.h>
#include <rdma/rdma_cma.h>

#include "transport/log.h"
#include "transport/rdma/rdma.h"
#include "transport/transport.h"
#include "transport/wire.h"

#define TIMEOUT_MS 30000
#define PAGE 4096u
#define GIB (1ull << 30)

extern char **environ;

enum role { ROLE_SOURCE, ROLE_DESTINATION };

static enum role role;
static const char *local_ip; /* where the destination listens */
static const char *peer_ip;  /* where the source connects */
static unsigned port_base = 7471;
static unsigned test_index;   /* which test runs now: its port is port_base + test_index */
static unsigned test_streams; /* queue pairs the source asks for in this test */

/* ---- meeting the other half ---- */

/* Quiet while the source retries a peer that is not listening yet; errors otherwise. */
static int log_quiet;

static void log_to_stderr(void *opaque, int level, const char *message)
{
	(void)opaque;
	if (!log_quiet)
		fprintf(stderr, "rmig: %s: %s\n", level == RMIG_LOG_LEVEL_ERROR ? "error" : "warn",
			message);
}

static void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static void test_uri(const char *host, char *buf, size_t len)
{
	snprintf(buf, len, "rdma://%s:%u", host, port_base + test_index);
}

static struct transport_listener *destination_listen(const struct transport_options *options)
{
	struct transport_listener *listener;
	char uri[TRANSPORT_URI_MAX];

	test_uri(local_ip, uri, sizeof(uri));
	assert_int_equal(transport_listen(uri, options, &listener), 0);
	return listener;
}

/* The destination half's connection: listen on this test's port, accept one source. */
static struct transport_conn *destination_open(const struct transport_options *options,
					       struct transport_listener **listener_p)
{
	struct transport_listener *listener = destination_listen(options);
	struct transport_conn *conn = NULL;

	assert_int_equal(transport_accept(listener, 4 * TIMEOUT_MS, &conn), 0);
	*listener_p = listener;
	return conn;
}

/* The source half's connection, with this test's queue pair count unless options names one;
 * the destination may not be listening yet: retry a while. */
static struct transport_conn *source_open(const struct transport_options *options)
{
	struct transport_options with = {0};
	struct transport_conn *conn = NULL;
	char uri[TRANSPORT_URI_MAX];
	int ret;

	if (options)
		with = *options;
	if (!with.streams)
		with.streams = test_streams;
	test_uri(peer_ip, uri, sizeof(uri));
	for (int attempt = 0; attempt < 300; attempt++) {
		log_quiet = attempt < 299; /* only the last attempt's failure is news */
		ret = transport_connect(uri, &with, &conn);
		log_quiet = 0;
		if (ret != -ECONNREFUSED && ret != -ETIMEDOUT && ret != -ECONNABORTED)
			break;
		sleep_ms(100);
	}
	assert_int_equal(ret, 0);
	return conn;
}

static void expect_ctrl(struct transport_conn *conn, const char *text)
{
	struct transport_msg msg;

	assert_int_equal(transport_recv(conn, &msg, TIMEOUT_MS), 0);
	assert_int_equal(msg.type, TRANSPORT_MSG_CTRL);
	assert_int_equal(msg.len, strlen(text));
	assert_memory_equal(msg.data, text, msg.len);
}

/* Both halves call it the same number of times: a control message each way, so each side has
 * seen every region announcement the other made before it. */
static void sync_with_peer(struct transport_conn *conn)
{
	const char *mine = role == ROLE_SOURCE ? "sync-s" : "sync-d";
	const char *theirs = role == ROLE_SOURCE ? "sync-d" : "sync-s";

	assert_int_equal(transport_ctrl_send(conn, mine, strlen(mine)), 0);
	expect_ctrl(conn, theirs);
}

/* The destination has checked everything: the source may now close (and unmap). */
static void destination_done(struct transport_conn *conn)
{
	assert_int_equal(transport_ctrl_send(conn, "done", 4), 0);
}

static void source_wait_done(struct transport_conn *conn)
{
	expect_ctrl(conn, "done");
}

static void *map(size_t len)
{
	void *addr = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	assert_true(addr != MAP_FAILED);
	return addr;
}

/* The source's content: a function of the seed and the word's index from addr, so the
 * destination can recompute what must have landed. */
static void fill(void *addr, size_t len, uint64_t seed)
{
	uint64_t *words = addr;

	for (size_t i = 0; i < len / 8; i++)
		words[i] = (i * 0x9e3779b97f4a7c15ull) ^ seed;
}

static void assert_filled(const void *addr, size_t len, uint64_t seed)
{
	const uint64_t *words = addr;

	for (size_t i = 0; i < len / 8; i++)
		if (words[i] != ((i * 0x9e3779b97f4a7c15ull) ^ seed))
			fail_msg("word %zu of %zu differs from the source's pattern (seed %#llx)",
				 i, len / 8, (unsigned long long)seed);
}

/* Like assert_filled, for [offset, offset+len) of a region filled whole from its base. */
static void assert_filled_at(const void *base, uint64_t offset, uint64_t len, uint64_t seed)
{
	const uint64_t *words = (const uint64_t *)((const char *)base + offset);

	for (uint64_t i = 0; i < len / 8; i++)
		if (words[i] != (((offset / 8 + i) * 0x9e3779b97f4a7c15ull) ^ seed))
			fail_msg("byte %llu of region [%llu, +%llu) differs from the source's "
				 "pattern: a commit came before its data",
				 (unsigned long long)(i * 8), (unsigned long long)offset,
				 (unsigned long long)len);
}

/* ---- the kernel's view of this process: its RC queue pairs and memory regions ---- */

struct own_qp {
	unsigned long lqpn;
	unsigned long sq_psn;
	int ready; /* state RTS */
};

/* The number field "name":N of one JSON object of rdma's output; -1 when absent. */
static long json_number(const char *object, const char *name)
{
	char key[32];
	const char *at;

	snprintf(key, sizeof(key), "\"%s\":", name);
	at = strstr(object, key);
	return at ? strtol(at + strlen(key), NULL, 10) : -1;
}

/* Run `rdma -j resource show WHAT` and call each(object) for every object of this process. */
static void own_resources(const char *what, void (*each)(const char *object, void *arg), void *arg)
{
	static char output[1 << 20];
	char command[64];
	size_t got = 0, n;
	FILE *pipe;

	snprintf(command, sizeof(command), "rdma -j resource show %s 2>&1", what);
	pipe = popen(command, "r");
	assert_non_null(pipe);
	while (got < sizeof(output) - 1 &&
	       (n = fread(output + got, 1, sizeof(output) - 1 - got, pipe)) > 0)
		got += n;
	output[got] = '\0';
	if (pclose(pipe) != 0 || output[0] != '[')
		fail_msg("'%s' failed (iproute2's rdma tool is needed): %.200s", command, output);
	for (char *object = strchr(output, '{'); object; object = strchr(object + 1, '{')) {
		char *end = strchr(object, '}');

		assert_non_null(end);
		*end = '\0';
		if (json_number(object, "pid") == (long)getpid())
			each(object, arg);
		*end = '}';
	}
}

struct own_qps {
	struct own_qp qp[16];
	size_t count;
};

static void own_qp_add(const char *object, void *arg)
{
	struct own_qps *qps = arg;

	if (!strstr(object, "\"type\":\"RC\"") || qps->count == 16)
		return;
	qps->qp[qps->count++] = (struct own_qp){
		.lqpn = (unsigned long)json_number(object, "lqpn"),
		.sq_psn = (unsigned long)json_number(object, "sq-psn"),
		.ready = strstr(object, "\"state\":\"RTS\"") != NULL,
	};
}

/* This process's RC queue pairs, leaving out those in except (NULL: none), so a connection an
 * earlier failed test left open does not count. */
static void own_rc_qps(struct own_qps *qps, const struct own_qps *except)
{
	struct own_qps all;

	memset(&all, 0, sizeof(all));
	own_resources("qp", own_qp_add, &all);
	memset(qps, 0, sizeof(*qps));
	for (size_t i = 0; i < all.count; i++) {
		int old = 0;

		for (size_t j = 0; except && j < except->count; j++)
			old |= except->qp[j].lqpn == all.qp[i].lqpn;
		if (!old)
			qps->qp[qps->count++] = all.qp[i];
	}
}

struct mr_count {
	long length;
	unsigned count;
};

static void own_mr_count(const char *object, void *arg)
{
	struct mr_count *mrs = arg;

	if (json_number(object, "mrlen") == mrs->length)
		mrs->count++;
}

/* How many memory regions of exactly length bytes this process has registered. */
static unsigned own_mrs_of_length(size_t length)
{
	struct mr_count mrs = {.length = (long)length};

	own_resources("mr", own_mr_count, &mrs);
	return mrs.count;
}

/* Every one of this process's n RC queue pairs is up, and each sent at least min_packets
 * packets (its send PSN moved on; 24 bits, wrapping) between before and after. */
static void assert_each_qp_sent(const struct own_qps *before, const struct own_qps *after, size_t n,
				unsigned long min_packets)
{
	assert_int_equal(before->count, n);
	assert_int_equal(after->count, n);
	for (size_t i = 0; i < n; i++) {
		const struct own_qp *now = NULL;

		for (size_t j = 0; j < n; j++)
			if (after->qp[j].lqpn == before->qp[i].lqpn)
				now = &after->qp[j];
		assert_non_null(now);
		assert_true(now->ready);
		if (((now->sq_psn - before->qp[i].sq_psn) & 0xffffff) < min_packets)
			fail_msg("queue pair %lu sent %lu packets, expected at least %lu: the work "
				 "was not spread over every queue pair",
				 now->lqpn, (now->sq_psn - before->qp[i].sq_psn) & 0xffffff,
				 min_packets);
	}
}

static void expect_commit(struct transport_conn *conn, uint64_t batch_id,
			  const struct transport_run *runs, size_t nruns)
{
	struct transport_msg msg;

	assert_int_equal(transport_recv(conn, &msg, TIMEOUT_MS), 0);
	assert_int_equal(msg.type, TRANSPORT_MSG_COMMIT);
	assert_int_equal(msg.batch_id, batch_id);
	assert_int_equal(msg.nruns, nruns);
	for (size_t i = 0; i < nruns; i++) {
		assert_int_equal(msg.runs[i].region_id, runs[i].region_id);
		assert_int_equal(msg.runs[i].offset, runs[i].offset);
		assert_int_equal(msg.runs[i].length, runs[i].length);
		assert_int_equal(msg.runs[i].flags, runs[i].flags);
	}
}

/* ---- the tests, as halves ---- */

static void ctrl_messages_cross_both_ways_source(void)
{
	struct transport_conn *conn = source_open(NULL);

	sync_with_peer(conn);
	assert_int_equal(transport_ctrl_send(conn, "hello", 5), 0);
	source_wait_done(conn);
	transport_close(conn);
}

static void ctrl_messages_cross_both_ways_destination(void)
{
	struct transport_listener *listener;
	struct transport_conn *conn = destination_open(NULL, &listener);

	sync_with_peer(conn);
	expect_ctrl(conn, "hello");
	destination_done(conn);
	transport_close(conn);
	transport_listener_close(listener);
}

/* 1 GiB destination, scattered runs, device max message forced to 8 KiB on the source: runs
 * longer than that are split into several WRs, adjacent runs are coalesced, and every byte
 * lands in place. */
static const struct transport_run scattered_runs[] = {
	{.region_id = 7, .offset = 0, .length = PAGE},
	{.region_id = 7, .offset = PAGE, .length = 3 * PAGE}, /* continues the first */
	{.region_id = 7, .offset = 100 * PAGE, .length = 37 * PAGE},
	{.region_id = 7, .offset = 5000 * PAGE, .length = PAGE, .flags = TRANSPORT_RUN_ZERO},
	{.region_id = 7, .offset = GIB - 64 * PAGE, .length = 64 * PAGE},
	{.region_id = 7, .offset = (GIB / 2) + 123 * PAGE, .length = 1 << 20},
};
#define SCATTERED_NRUNS (sizeof(scattered_runs) / sizeof(scattered_runs[0]))

static uint64_t scattered_data_bytes(void)
{
	uint64_t data = 0;

	for (size_t i = 0; i < SCATTERED_NRUNS; i++)
		if (!(scattered_runs[i].flags & TRANSPORT_RUN_ZERO))
			data += scattered_runs[i].length;
	return data;
}

static void scattered_runs_split_at_small_max_message_land_byte_exact_source(void)
{
	struct transport_stats stats;
	struct transport_conn *conn;
	char *source = map(GIB);

	for (size_t i = 0; i < SCATTERED_NRUNS; i++)
		fill(source + scattered_runs[i].offset, scattered_runs[i].length, i + 1);
	setenv("RMIG_RDMA_MAX_MSG", "8192", 1);
	conn = source_open(NULL);
	unsetenv("RMIG_RDMA_MAX_MSG");
	assert_int_equal(transport_region_register(conn, 7, source, GIB, 0), 0);
	sync_with_peer(conn);
	assert_int_equal(transport_batch_post(conn, 42, scattered_runs, SCATTERED_NRUNS), 0);
	assert_int_equal(transport_flush(conn, TIMEOUT_MS), 0);
	transport_stats_get(conn, &stats);
	assert_int_equal(stats.data_bytes_sent, scattered_data_bytes());
	source_wait_done(conn);
	transport_close(conn);
	munmap(source, GIB);
}

static void scattered_runs_split_at_small_max_message_land_byte_exact_destination(void)
{
	struct transport_listener *listener;
	struct transport_stats stats;
	struct transport_conn *conn = destination_open(NULL, &listener);
	char *destination = map(GIB);

	assert_int_equal(
		transport_region_register(conn, 7, destination, GIB, TRANSPORT_ACCESS_REMOTE_WRITE),
		0);
	sync_with_peer(conn);
	expect_commit(conn, 42, scattered_runs, SCATTERED_NRUNS);
	for (size_t i = 0; i < SCATTERED_NRUNS; i++) {
		if (scattered_runs[i].flags & TRANSPORT_RUN_ZERO)
			continue;
		assert_filled(destination + scattered_runs[i].offset, scattered_runs[i].length,
			      i + 1);
	}
	/* The zero run carried nothing: the destination page is still untouched. */
	assert_int_equal(destination[5000 * PAGE], 0);
	assert_int_equal(destination[5000 * PAGE + PAGE - 1], 0);
	transport_stats_get(conn, &stats);
	assert_int_equal(stats.data_bytes_received, scattered_data_bytes());
	destination_done(conn);
	transport_close(conn);
	transport_listener_close(listener);
	munmap(destination, GIB);
}

/* Commits and control messages come out in the order they were posted, each after its data,
 * even when the destination starts reading only once most of them were sent. */
static void commits_and_ctrl_keep_posting_order_source(void)
{
	const size_t length = 256 * PAGE;
	char *source = map(length);
	struct transport_conn *conn = source_open(NULL);

	assert_int_equal(transport_region_register(conn, 1, source, length, 0), 0);
	sync_with_peer(conn);
	for (uint64_t batch = 0; batch < 64; batch++) {
		struct transport_run run = {
			.region_id = 1, .offset = batch * 4 * PAGE, .length = 4 * PAGE};
		char text[32];

		fill(source + run.offset, run.length, batch + 100);
		assert_int_equal(transport_batch_post(conn, batch, &run, 1), 0);
		snprintf(text, sizeof(text), "after-%llu", (unsigned long long)batch);
		assert_int_equal(transport_ctrl_send(conn, text, strlen(text)), 0);
	}
	source_wait_done(conn);
	transport_close(conn);
	munmap(source, length);
}

static void commits_and_ctrl_keep_posting_order_destination(void)
{
	const size_t length = 256 * PAGE;
	char *destination = map(length);
	struct transport_listener *listener;
	struct transport_conn *conn = destination_open(NULL, &listener);

	assert_int_equal(transport_region_register(conn, 1, destination, length,
						   TRANSPORT_ACCESS_REMOTE_WRITE),
			 0);
	sync_with_peer(conn);
	sleep_ms(1000); /* a reader that lags: far more messages than receive buffers queue up */
	for (uint64_t batch = 0; batch < 64; batch++) {
		struct transport_run run = {
			.region_id = 1, .offset = batch * 4 * PAGE, .length = 4 * PAGE};
		char text[32];

		expect_commit(conn, batch, &run, 1);
		assert_filled(destination + run.offset, run.length, batch + 100);
		snprintf(text, sizeof(text), "after-%llu", (unsigned long long)batch);
		expect_ctrl(conn, text);
	}
	destination_done(conn);
	transport_close(conn);
	transport_listener_close(listener);
	munmap(destination, length);
}

/* The destination pulls from the source's REMOTE_READ region: into plain memory through the
 * bounce buffer (larger than it, so in pieces), into a registered region directly. */
#define READ_REGION (4u << 20)

static void read_pulls_remote_read_region_source(void)
{
	char *remote = map(READ_REGION);
	struct transport_conn *conn = source_open(NULL);

	fill(remote, READ_REGION, 0x5151);
	assert_int_equal(transport_region_register(conn, 3, remote, READ_REGION,
						   TRANSPORT_ACCESS_REMOTE_READ),
			 0);
	sync_with_peer(conn);
	source_wait_done(conn); /* the region must stay until the reads are done */
	transport_close(conn);
	munmap(remote, READ_REGION);
}

static void read_pulls_remote_read_region_destination(void)
{
	char *local = map(READ_REGION), *plain = malloc(3u << 20), *expect = map(READ_REGION);
	struct transport_listener *listener;
	struct transport_stats stats;
	struct transport_conn *conn = destination_open(NULL, &listener);

	assert_non_null(plain);
	fill(expect, READ_REGION, 0x5151);
	assert_int_equal(transport_region_register(conn, 9, local, READ_REGION, 0), 0);
	sync_with_peer(conn);
	assert_int_equal(transport_read(conn, 3, PAGE, plain, 3u << 20, TIMEOUT_MS), 0);
	assert_memory_equal(plain, expect + PAGE, 3u << 20);
	assert_int_equal(transport_read(conn, 3, 0, local + 8 * PAGE, 2u << 20, TIMEOUT_MS), 0);
	assert_memory_equal(local + 8 * PAGE, expect, 2u << 20);
	/* Beyond the end, and a region id never announced: refused locally. */
	assert_int_equal(transport_read(conn, 3, READ_REGION - PAGE, plain, 2 * PAGE, TIMEOUT_MS),
			 -ERANGE);
	assert_int_equal(transport_read(conn, 4, 0, plain, PAGE, TIMEOUT_MS), -ENOENT);
	transport_stats_get(conn, &stats);
	assert_int_equal(stats.reads, 2);
	assert_int_equal(stats.read_bytes, (3u << 20) + (2u << 20));
	assert_string_equal(transport_error(conn), "");
	destination_done(conn);
	transport_close(conn);
	transport_listener_close(listener);
	free(plain);
	munmap(local, READ_REGION);
	munmap(expect, READ_REGION);
}

/* Far more SENDs than receive buffers, with a receiver that lags: credits hold the sender back,
 * nothing fails with RNR, and every message arrives in order. */
#define FLOOD_COUNT 2000u

static void credit_pressure_never_loses_or_reorders_source(void)
{
	struct transport_run run = {.region_id = 1, .offset = 0, .length = PAGE};
	char *source = map(PAGE);
	struct transport_conn *conn = source_open(NULL);

	assert_int_equal(transport_region_register(conn, 1, source, PAGE, 0), 0);
	sync_with_peer(conn);
	for (unsigned i = 0; i < FLOOD_COUNT; i++) {
		char text[16];

		snprintf(text, sizeof(text), "m%u", i);
		assert_int_equal(transport_ctrl_send(conn, text, strlen(text)), 0);
		if (i % 4 == 0)
			assert_int_equal(transport_batch_post(conn, i, &run, 1), 0);
	}
	/* Every SEND completed without an error (no RNR): flush says 0 only then, even when the
	 * destination, having everything, closed meanwhile. */
	assert_int_equal(transport_flush(conn, TIMEOUT_MS), 0);
	if (strcmp(transport_error(conn), "") &&
	    strcmp(transport_error(conn), "peer closed the connection"))
		fail_msg("unexpected error: %s", transport_error(conn));
	source_wait_done(conn);
	transport_close(conn);
	munmap(source, PAGE);
}

static void credit_pressure_never_loses_or_reorders_destination(void)
{
	char *destination = map(PAGE);
	struct transport_listener *listener;
	struct transport_conn *conn = destination_open(NULL, &listener);

	assert_int_equal(transport_region_register(conn, 1, destination, PAGE,
						   TRANSPORT_ACCESS_REMOTE_WRITE),
			 0);
	sync_with_peer(conn);
	sleep_ms(300);
	for (unsigned i = 0; i < FLOOD_COUNT; i++) {
		struct transport_msg msg;
		char text[16];

		snprintf(text, sizeof(text), "m%u", i);
		assert_int_equal(transport_recv(conn, &msg, TIMEOUT_MS), 0);
		assert_int_equal(msg.type, TRANSPORT_MSG_CTRL);
		assert_int_equal(msg.len, strlen(text));
		assert_memory_equal(msg.data, text, msg.len);
		if (i % 4 == 0) {
			assert_int_equal(transport_recv(conn, &msg, TIMEOUT_MS), 0);
			assert_int_equal(msg.type, TRANSPORT_MSG_COMMIT);
			assert_int_equal(msg.batch_id, i);
		}
	}
	assert_string_equal(transport_error(conn), "");
	destination_done(conn);
	transport_close(conn);
	transport_listener_close(listener);
	munmap(destination, PAGE);
}

/* The destination revokes its region: the source's next batch naming it is refused before
 * anything leaves, and the connection stays healthy. */
static void write_to_deregistered_region_refused_locally_source(void)
{
	struct transport_run run = {.region_id = 2, .offset = 0, .length = PAGE};
	char *source = map(16 * PAGE);
	struct transport_conn *conn = source_open(NULL);

	assert_int_equal(transport_region_register(conn, 2, source, 16 * PAGE, 0), 0);
	sync_with_peer(conn);
	sync_with_peer(conn); /* the revocation has arrived */
	assert_int_equal(transport_batch_post(conn, 1, &run, 1), -ENOENT);
	assert_string_equal(transport_error(conn), "");
	sync_with_peer(conn);
	source_wait_done(conn);
	transport_close(conn);
	munmap(source, 16 * PAGE);
}

static void write_to_deregistered_region_refused_locally_destination(void)
{
	char *destination = map(16 * PAGE);
	struct transport_listener *listener;
	struct transport_conn *conn = destination_open(NULL, &listener);

	assert_int_equal(transport_region_register(conn, 2, destination, 16 * PAGE,
						   TRANSPORT_ACCESS_REMOTE_WRITE),
			 0);
	sync_with_peer(conn);
	assert_int_equal(transport_region_deregister(conn, 2), 0);
	sync_with_peer(conn);
	sync_with_peer(conn); /* no commit came in between: the control message is next */
	for (size_t i = 0; i < 16 * PAGE; i++)
		assert_int_equal(destination[i], 0);
	destination_done(conn);
	transport_close(conn);
	transport_listener_close(listener);
	munmap(destination, 16 * PAGE);
}

/* A wrong rkey makes the peer's NIC refuse the WRITE: the source's error names the WR, its run
 * and its queue pair; the destination never sees the batch's commit, and its memory stays
 * untouched. With several queue pairs the WRITE fails on a QP other than the commit's (QP 0):
 * only holding the commit until the other QPs' WRITEs completed keeps it from the peer. */
static void remote_access_error_names_failed_work_request_source(void)
{
	struct transport_run run = {.region_id = 5, .offset = 8 * PAGE, .length = 2 * PAGE};
	char *source = map(64 * PAGE);
	struct transport_region remote;
	char qp[32];
	struct transport_conn *conn = source_open(NULL);
	int ret;

	fill(source, 64 * PAGE, 5);
	assert_int_equal(transport_region_register(conn, 5, source, 64 * PAGE, 0), 0);
	sync_with_peer(conn);
	/* Corrupt the advertised rkey through the shared region table. */
	assert_int_equal(transport_region_remove(conn, 1, 5, &remote), 0);
	remote.rkey ^= 0x5a5a00;
	assert_int_equal(transport_region_add(conn, 1, &remote), 0);
	ret = transport_batch_post(conn, 77, &run, 1);
	if (!ret)
		ret = transport_flush(conn, TIMEOUT_MS);
	assert_int_equal(ret, -EIO);
	assert_non_null(strstr(transport_error(conn), "RDMA WRITE"));
	assert_non_null(strstr(transport_error(conn), "region 5 [32768, +8192)"));
	assert_non_null(strstr(transport_error(conn), "batch 77"));
	/* and the queue pair that carried it */
	snprintf(qp, sizeof(qp), "of %u (qp_num", test_streams);
	assert_non_null(strstr(transport_error(conn), "queue pair "));
	assert_non_null(strstr(transport_error(conn), qp));
	if (test_streams > 1)
		assert_null(strstr(transport_error(conn), "queue pair 0 of"));
	transport_close(conn);
	munmap(source, 64 * PAGE);
}

static void remote_access_error_names_failed_work_request_destination(void)
{
	char *destination = map(64 * PAGE);
	struct transport_listener *listener;
	struct transport_conn *conn = destination_open(NULL, &listener);
	struct transport_msg msg;
	int ret;

	assert_int_equal(transport_region_register(conn, 5, destination, 64 * PAGE,
						   TRANSPORT_ACCESS_REMOTE_WRITE),
			 0);
	sync_with_peer(conn);
	ret = transport_recv(conn, &msg, 4 * TIMEOUT_MS);
	assert_int_equal(ret, -ECONNRESET);
	for (size_t i = 0; i < 64 * PAGE; i++)
		assert_int_equal(destination[i], 0);
	transport_close(conn);
	transport_listener_close(listener);
	munmap(destination, 64 * PAGE);
}

/* The source closes right after posting 8 batches: the destination gets all 8 commits, each
 * after its data, then -ECONNRESET, and never hangs. */
#define DISCONNECT_LENGTH (64 * PAGE)

static void peer_disconnect_mid_stream_gives_connreset_source(void)
{
	struct transport_run run = {.region_id = 1, .offset = 0, .length = DISCONNECT_LENGTH};
	char *source = map(DISCONNECT_LENGTH);
	struct transport_conn *conn = source_open(NULL);

	fill(source, DISCONNECT_LENGTH, 8);
	assert_int_equal(transport_region_register(conn, 1, source, DISCONNECT_LENGTH, 0), 0);
	sync_with_peer(conn);
	for (int i = 0; i < 8; i++)
		assert_int_equal(transport_batch_post(conn, (uint64_t)i, &run, 1), 0);
	transport_close(conn);
	munmap(source, DISCONNECT_LENGTH);
}

static void peer_disconnect_mid_stream_gives_connreset_destination(void)
{
	char *destination = map(DISCONNECT_LENGTH);
	struct transport_listener *listener;
	struct transport_conn *conn = destination_open(NULL, &listener);
	struct transport_msg msg;
	unsigned commits = 0;
	int ret;

	assert_int_equal(transport_region_register(conn, 1, destination, DISCONNECT_LENGTH,
						   TRANSPORT_ACCESS_REMOTE_WRITE),
			 0);
	sync_with_peer(conn);
	while ((ret = transport_recv(conn, &msg, TIMEOUT_MS)) == 0) {
		assert_int_equal(msg.type, TRANSPORT_MSG_COMMIT);
		assert_int_equal(msg.batch_id, commits);
		assert_filled(destination, DISCONNECT_LENGTH, 8);
		commits++;
	}
	assert_int_equal(ret, -ECONNRESET);
	assert_int_equal(commits, 8);
	/* Every later call fails the same way, promptly. */
	assert_int_equal(transport_recv(conn, &msg, TIMEOUT_MS), -ECONNRESET);
	transport_close(conn);
	transport_listener_close(listener);
	munmap(destination, DISCONNECT_LENGTH);
}

/* The destination disconnects under a writer: the writer fails with a reason, no hang. */
static void destination_gone_fails_sender_source(void)
{
	const size_t length = 256 * PAGE;
	struct transport_run run = {.region_id = 1, .offset = 0, .length = length};
	char *source = map(length);
	struct transport_conn *conn = source_open(NULL);
	int ret = 0;

	assert_int_equal(transport_region_register(conn, 1, source, length, 0), 0);
	sync_with_peer(conn);
	for (int i = 0; i < 10000 && !ret; i++)
		ret = transport_batch_post(conn, (uint64_t)i, &run, 1);
	if (!ret)
		ret = transport_flush(conn, TIMEOUT_MS);
	assert_true(ret == -ECONNRESET || ret == -EIO);
	assert_string_not_equal(transport_error(conn), "");
	transport_close(conn);
	munmap(source, length);
}

static void destination_gone_fails_sender_destination(void)
{
	const size_t length = 256 * PAGE;
	char *destination = map(length);
	struct transport_listener *listener;
	struct transport_conn *conn = destination_open(NULL, &listener);

	assert_int_equal(transport_region_register(conn, 1, destination, length,
						   TRANSPORT_ACCESS_REMOTE_WRITE),
			 0);
	sync_with_peer(conn);
	transport_close(conn);
	transport_listener_close(listener);
	munmap(destination, length);
}

/* A raw rdma_cm client, for hellos rmig itself would never send: one queue pair, kept open when
 * the listener accepts it. */
struct raw_stream {
	struct rdma_event_channel *channel;
	struct rdma_cm_id *id;
	struct ibv_pd *pd;
	struct ibv_cq *cq;
};

static void raw_stream_close(struct raw_stream *raw)
{
	if (raw->id && raw->id->qp)
		rdma_destroy_qp(raw->id);
	if (raw->cq)
		ibv_destroy_cq(raw->cq);
	if (raw->pd)
		ibv_dealloc_pd(raw->pd);
	if (raw->id)
		rdma_destroy_id(raw->id);
	if (raw->channel)
		rdma_destroy_event_channel(raw->channel);
	memset(raw, 0, sizeof(*raw));
}

/* Connect one queue pair whose hello says version, streams and session_tag. Returns 1 when the
 * listener accepted it (raw stays open: raw_stream_close disconnects it), 0 when it was
 * rejected (the reason, if any, in reject; raw is closed). */
static int raw_stream_open(const char *host, unsigned port, uint32_t version, uint32_t streams,
			   uint64_t session_tag, struct raw_stream *raw, char *reject,
			   size_t reject_len)
{
	struct rdma_conn_param param = {0};
	struct ibv_qp_init_attr qp_attr = {0};
	struct rdma_cm_event *event;
	struct wire_hello hello;
	struct addrinfo *ai;
	char port_text[8];
	int established;

	memset(raw, 0, sizeof(*raw));
	snprintf(port_text, sizeof(port_text), "%u", port);
	assert_int_equal(getaddrinfo(host, port_text, NULL, &ai), 0);
	raw->channel = rdma_create_event_channel();
	assert_non_null(raw->channel);
	assert_int_equal(rdma_create_id(raw->channel, &raw->id, NULL, RDMA_PS_TCP), 0);
	assert_int_equal(rdma_resolve_addr(raw->id, NULL, ai->ai_addr, 5000), 0);
	freeaddrinfo(ai);
	assert_int_equal(rdma_get_cm_event(raw->channel, &event), 0);
	assert_int_equal(event->event, RDMA_CM_EVENT_ADDR_RESOLVED);
	rdma_ack_cm_event(event);
	assert_int_equal(rdma_resolve_route(raw->id, 5000), 0);
	assert_int_equal(rdma_get_cm_event(raw->channel, &event), 0);
	assert_int_equal(event->event, RDMA_CM_EVENT_ROUTE_RESOLVED);
	rdma_ack_cm_event(event);
	raw->pd = ibv_alloc_pd(raw->id->verbs);
	raw->cq = ibv_create_cq(raw->id->verbs, 4, NULL, NULL, 0);
	assert_non_null(raw->pd);
	assert_non_null(raw->cq);
	qp_attr.send_cq = qp_attr.recv_cq = raw->cq;
	qp_attr.qp_type = IBV_QPT_RC;
	qp_attr.cap.max_send_wr = qp_attr.cap.max_recv_wr = 1;
	qp_attr.cap.max_send_sge = qp_attr.cap.max_recv_sge = 1;
	assert_int_equal(rdma_create_qp(raw->id, raw->pd, &qp_attr), 0);
	wire_hello_to_wire(&hello, streams, TRANSPORT_CTRL_MAX, 32, session_tag);
	memcpy(&hello, &version, sizeof(version)); /* protocol_version comes first, LE */
	param.private_data = &hello;
	param.private_data_len = sizeof(hello);
	param.responder_resources = param.initiator_depth = 1;
	param.retry_count = 1;
	assert_int_equal(rdma_connect(raw->id, &param), 0);
	assert_int_equal(rdma_get_cm_event(raw->channel, &event), 0);
	established = event->event == RDMA_CM_EVENT_ESTABLISHED;
	reject[0] = '\0';
	if (event->event == RDMA_CM_EVENT_REJECTED && event->param.conn.private_data_len)
		snprintf(reject, reject_len, "%.*s", (int)event->param.conn.private_data_len,
			 (const char *)event->param.conn.private_data);
	rdma_ack_cm_event(event);
	if (!established)
		raw_stream_close(raw);
	return established;
}

/* A client speaking another protocol version is rejected with the reason in the reject. */
static int raw_connect_with_version(const char *host, unsigned port, uint32_t version, char *reject,
				    size_t reject_len)
{
	struct raw_stream raw;

	if (raw_stream_open(host, port, version, 1, 0, &raw, reject, reject_len)) {
		raw_stream_close(&raw);
		return 0;
	}
	return 1;
}

static void version_mismatch_is_rejected_source(void)
{
	struct transport_conn *conn = NULL;
	char reject[256] = "", uri[TRANSPORT_URI_MAX];
	int attempt;

	/* Until the destination listens, the reject comes from the CM (no reason text). */
	for (attempt = 0; attempt < 300; attempt++) {
		assert_true(raw_connect_with_version(peer_ip, port_base + test_index, 99, reject,
						     sizeof(reject)));
		if (strstr(reject, "protocol_version"))
			break;
		sleep_ms(100);
	}
	if (!strstr(reject, "protocol_version"))
		fail_msg("expected a reject naming protocol_version, got '%s'", reject);
	/* The listener went on: a client of our version gets through. */
	test_uri(peer_ip, uri, sizeof(uri));
	assert_int_equal(transport_connect(uri, NULL, &conn), 0);
	transport_close(conn);
}

/* The listener refuses the other version and goes on: accept does not fail, and hands on the
 * next client, which speaks ours. */
static void version_mismatch_is_rejected_destination(void)
{
	struct transport_listener *listener = destination_listen(NULL);
	struct transport_conn *conn = NULL;

	assert_int_equal(transport_accept(listener, 4 * TIMEOUT_MS, &conn), 0);
	assert_non_null(conn);
	transport_close(conn);
	transport_listener_close(listener);
}

/* Queue pairs connect in order and are grouped by the session tag of their hello: a queue pair
 * of a connection the listener is not setting up (stray), or one it has already (duplicate), is
 * refused with the reason, and the connection being set up is not disturbed by either. */
#define RAW_TAG 0x5eed00ull

static void stray_and_duplicate_queue_pairs_refused_source(void)
{
	struct raw_stream first, second, intruder;
	char reject[256] = "";
	const unsigned port = port_base + test_index;
	int attempt;

	/* Queue pair 1 before any queue pair 0; until the destination listens, the CM rejects
	 * without a reason. */
	for (attempt = 0; attempt < 300; attempt++) {
		assert_false(raw_stream_open(peer_ip, port, TRANSPORT_PROTOCOL_VERSION, 2,
					     0x7700ull | 1, &intruder, reject, sizeof(reject)));
		if (strstr(reject, "stray"))
			break;
		sleep_ms(100);
	}
	if (!strstr(reject, "stray queue pair 1"))
		fail_msg("expected a reject naming the stray queue pair 1, got '%s'", reject);
	/* Queue pair 0 of a two-pair connection: accepted, the listener waits for queue pair 1. */
	assert_true(raw_stream_open(peer_ip, port, TRANSPORT_PROTOCOL_VERSION, 2, RAW_TAG, &first,
				    reject, sizeof(reject)));
	/* Queue pair 0 of the same connection again. */
	assert_false(raw_stream_open(peer_ip, port, TRANSPORT_PROTOCOL_VERSION, 2, RAW_TAG,
				     &intruder, reject, sizeof(reject)));
	if (!strstr(reject, "duplicate queue pair 0"))
		fail_msg("expected a reject naming the duplicate queue pair 0, got '%s'", reject);
	/* Queue pair 1 of another connection. */
	assert_false(raw_stream_open(peer_ip, port, TRANSPORT_PROTOCOL_VERSION, 2,
				     (RAW_TAG + 0x100) | 1, &intruder, reject, sizeof(reject)));
	if (!strstr(reject, "stray queue pair 1"))
		fail_msg("expected a reject naming the stray queue pair 1, got '%s'", reject);
	/* A count that differs from queue pair 0's. */
	assert_false(raw_stream_open(peer_ip, port, TRANSPORT_PROTOCOL_VERSION, 3, RAW_TAG | 1,
				     &intruder, reject, sizeof(reject)));
	if (!strstr(reject, "hello.streams"))
		fail_msg("expected a reject naming hello.streams, got '%s'", reject);
	/* The right queue pair 1 still completes the connection. */
	assert_true(raw_stream_open(peer_ip, port, TRANSPORT_PROTOCOL_VERSION, 2, RAW_TAG | 1,
				    &second, reject, sizeof(reject)));
	raw_stream_close(&second);
	raw_stream_close(&first);
}

static void stray_and_duplicate_queue_pairs_refused_destination(void)
{
	struct transport_listener *listener = destination_listen(NULL);
	struct transport_conn *conn = NULL;
	struct transport_msg msg;

	/* The refusals do not end the accept: the connection comes out of the first one. */
	assert_int_equal(transport_accept(listener, 4 * TIMEOUT_MS, &conn), 0);
	assert_non_null(conn);
	/* The raw client disconnects without a goodbye. */
	assert_int_equal(transport_recv(conn, &msg, 4 * TIMEOUT_MS), -ECONNRESET);
	assert_non_null(strstr(transport_error(conn), "without closing"));
	transport_close(conn);
	transport_listener_close(listener);
}

/* More queue pairs than the wire can name are refused before anything reaches the peer. */
static void more_than_eight_queue_pairs_refused_source(void)
{
	struct transport_options options = {.streams = WIRE_STREAMS_MAX + 1};
	struct transport_conn *conn = NULL;
	char uri[TRANSPORT_URI_MAX];

	test_uri(peer_ip, uri, sizeof(uri));
	assert_int_equal(transport_connect(uri, &options, &conn), -EINVAL);
	assert_null(conn);
}

static void more_than_eight_queue_pairs_refused_destination(void)
{
}

/* Each side of an n-pair connection has n RC queue pairs up and one memory region per region
 * (one rkey for every QP); one 4 MiB run is cut into 256 KiB blocks dealt over all of them, so
 * each QP sends at least its quarter. */
#define SPREAD_SOURCE_LENGTH ((8u << 20) + 5 * PAGE)
#define SPREAD_DESTINATION_LENGTH ((8u << 20) + 7 * PAGE)
#define SPREAD_RUN_LENGTH (4u << 20)
static const struct transport_run spread_run = {
	.region_id = 11, .offset = 0, .length = SPREAD_RUN_LENGTH};

static void queue_pairs_each_carry_part_of_a_batch_and_share_one_mr_source(void)
{
	char *source = map(SPREAD_SOURCE_LENGTH);
	struct own_qps earlier, before, after;
	struct transport_conn *conn;

	own_rc_qps(&earlier, NULL);
	conn = source_open(NULL);

	fill(source, SPREAD_RUN_LENGTH, 0x5bead);
	assert_int_equal(transport_region_register(conn, 11, source, SPREAD_SOURCE_LENGTH, 0), 0);
	assert_int_equal(own_mrs_of_length(SPREAD_SOURCE_LENGTH), 1);
	sync_with_peer(conn);
	own_rc_qps(&before, &earlier);
	assert_int_equal(transport_batch_post(conn, 3, &spread_run, 1), 0);
	assert_int_equal(transport_flush(conn, TIMEOUT_MS), 0);
	own_rc_qps(&after, &earlier);
	/* a 4096-byte path MTU at most: a quarter of the run is at least this many packets */
	assert_each_qp_sent(&before, &after, test_streams, SPREAD_RUN_LENGTH / test_streams / 4096);
	source_wait_done(conn);
	transport_close(conn);
	munmap(source, SPREAD_SOURCE_LENGTH);
}

static void queue_pairs_each_carry_part_of_a_batch_and_share_one_mr_destination(void)
{
	char *destination = map(SPREAD_DESTINATION_LENGTH);
	struct transport_listener *listener;
	struct own_qps earlier, qps;
	struct transport_conn *conn;

	own_rc_qps(&earlier, NULL);
	conn = destination_open(NULL, &listener);

	assert_int_equal(transport_region_register(conn, 11, destination, SPREAD_DESTINATION_LENGTH,
						   TRANSPORT_ACCESS_REMOTE_WRITE),
			 0);
	assert_int_equal(own_mrs_of_length(SPREAD_DESTINATION_LENGTH), 1);
	own_rc_qps(&qps, &earlier);
	assert_int_equal(qps.count, test_streams);
	for (size_t i = 0; i < qps.count; i++)
		assert_true(qps.qp[i].ready);
	sync_with_peer(conn);
	expect_commit(conn, 3, &spread_run, 1);
	assert_filled(destination, SPREAD_RUN_LENGTH, 0x5bead);
	destination_done(conn);
	transport_close(conn);
	transport_listener_close(listener);
	munmap(destination, SPREAD_DESTINATION_LENGTH);
}

/* Pulls one after another go to every queue pair in turn and land byte for byte. */
#define ROTATE_READS 8u
#define ROTATE_PIECE (512u << 10)

static void reads_rotate_over_every_queue_pair_source(void)
{
	char *remote = map(ROTATE_READS * ROTATE_PIECE);
	struct transport_conn *conn = source_open(NULL);

	fill(remote, ROTATE_READS * ROTATE_PIECE, 0x4ead);
	assert_int_equal(transport_region_register(conn, 3, remote, ROTATE_READS * ROTATE_PIECE,
						   TRANSPORT_ACCESS_REMOTE_READ),
			 0);
	sync_with_peer(conn);
	source_wait_done(conn);
	transport_close(conn);
	munmap(remote, ROTATE_READS * ROTATE_PIECE);
}

static void reads_rotate_over_every_queue_pair_destination(void)
{
	char *local = map(ROTATE_READS * ROTATE_PIECE);
	struct transport_listener *listener;
	struct own_qps earlier, before, after;
	struct transport_conn *conn;

	own_rc_qps(&earlier, NULL);
	conn = destination_open(NULL, &listener);

	assert_int_equal(transport_region_register(conn, 9, local, ROTATE_READS * ROTATE_PIECE, 0),
			 0);
	sync_with_peer(conn);
	own_rc_qps(&before, &earlier);
	for (unsigned i = 0; i < ROTATE_READS; i++)
		assert_int_equal(transport_read(conn, 3, (uint64_t)i * ROTATE_PIECE,
						local + (size_t)i * ROTATE_PIECE, ROTATE_PIECE,
						TIMEOUT_MS),
				 0);
	own_rc_qps(&after, &earlier);
	/* A READ moves its requester's PSN on by the response packets it expects. */
	assert_each_qp_sent(&before, &after, test_streams,
			    ROTATE_READS / test_streams * ROTATE_PIECE / 4096);
	assert_filled(local, ROTATE_READS * ROTATE_PIECE, 0x4ead);
	destination_done(conn);
	transport_close(conn);
	transport_listener_close(listener);
	munmap(local, ROTATE_READS * ROTATE_PIECE);
}

/* Batch after batch without waiting, never the same bytes twice; the destination checks every
 * run of each commit the moment it receives it, so a commit that overtook any of its data
 * fails. With several queue pairs each batch has a page or a few in one 256 KiB block (the
 * transport's unit of spreading) and about 768 KiB in the next three, which go to other QPs:
 * whenever the light block is QP 0's, a commit posted behind QP 0's own WRITEs alone would
 * reach the destination while the others are still on their way. */
#define OVERTAKE_BLOCK (256u << 10)
#define OVERTAKE_BATCHES 32u
#define OVERTAKE_LENGTH (5u * OVERTAKE_BLOCK * OVERTAKE_BATCHES)
#define OVERTAKE_NRUNS 3u
#define OVERTAKE_SEED 0x0fe27a4eull

static void overtake_runs(unsigned batch, struct transport_run *runs)
{
	uint64_t light = (uint64_t)batch * 5 * OVERTAKE_BLOCK; /* 5b: the light block rotates */

	runs[0] = (struct transport_run){
		.region_id = 6, .offset = light + (batch % 7) * PAGE, .length = PAGE};
	runs[1] = (struct transport_run){
		.region_id = 6, .offset = light + 8 * PAGE, .length = (1 + batch % 5) * PAGE};
	runs[2] = (struct transport_run){.region_id = 6,
					 .offset = light + OVERTAKE_BLOCK + (batch % 3) * PAGE,
					 .length = 3 * OVERTAKE_BLOCK - 4 * PAGE};
}

static void commits_never_overtake_their_data_source(void)
{
	char *source = map(OVERTAKE_LENGTH);
	struct transport_conn *conn = source_open(NULL);

	fill(source, OVERTAKE_LENGTH, OVERTAKE_SEED);
	assert_int_equal(transport_region_register(conn, 6, source, OVERTAKE_LENGTH, 0), 0);
	sync_with_peer(conn);
	for (unsigned b = 0; b < OVERTAKE_BATCHES; b++) {
		struct transport_run runs[OVERTAKE_NRUNS];

		overtake_runs(b, runs);
		assert_int_equal(transport_batch_post(conn, b, runs, OVERTAKE_NRUNS), 0);
		if (b % 3 == 0)
			assert_int_equal(transport_ctrl_send(conn, "mark", 4), 0);
	}
	source_wait_done(conn);
	transport_close(conn);
	munmap(source, OVERTAKE_LENGTH);
}

static void commits_never_overtake_their_data_destination(void)
{
	char *destination = map(OVERTAKE_LENGTH);
	struct transport_listener *listener;
	struct transport_conn *conn = destination_open(NULL, &listener);

	assert_int_equal(transport_region_register(conn, 6, destination, OVERTAKE_LENGTH,
						   TRANSPORT_ACCESS_REMOTE_WRITE),
			 0);
	sync_with_peer(conn);
	for (unsigned b = 0; b < OVERTAKE_BATCHES; b++) {
		struct transport_run runs[OVERTAKE_NRUNS];

		overtake_runs(b, runs);
		expect_commit(conn, b, runs, OVERTAKE_NRUNS);
		for (unsigned r = 0; r < OVERTAKE_NRUNS; r++)
			assert_filled_at(destination, runs[r].offset, runs[r].length,
					 OVERTAKE_SEED);
		if (b % 3 == 0)
			expect_ctrl(conn, "mark"); /* and control messages stay behind commits */
	}
	destination_done(conn);
	transport_close(conn);
	transport_listener_close(listener);
	munmap(destination, OVERTAKE_LENGTH);
}

/* Chunked registration: the sending region is registered piecewise on first use; data
 * crossing a 2 MiB chunk boundary still lands exactly. */
#define CHUNKED_LENGTH (8u << 20)
static const struct transport_options chunked_options = {.reg_mode = TRANSPORT_REG_CHUNKED};
static const struct transport_run chunked_run = {
	.region_id = 4, .offset = (2u << 20) - 3 * PAGE, .length = (2u << 20) + 6 * PAGE};

static void chunked_registration_sends_across_chunk_boundaries_source(void)
{
	char *source = map(CHUNKED_LENGTH);
	struct transport_conn *conn = source_open(&chunked_options);

	fill(source + PAGE + chunked_run.offset, chunked_run.length, 0xc0ffee);
	assert_int_equal(
		transport_region_register(conn, 4, source + PAGE, CHUNKED_LENGTH - PAGE, 0), 0);
	sync_with_peer(conn);
	assert_int_equal(transport_batch_post(conn, 5, &chunked_run, 1), 0);
	source_wait_done(conn);
	transport_close(conn);
	munmap(source, CHUNKED_LENGTH);
}

static void chunked_registration_sends_across_chunk_boundaries_destination(void)
{
	char *destination = map(CHUNKED_LENGTH);
	struct transport_listener *listener;
	struct transport_conn *conn = destination_open(&chunked_options, &listener);

	assert_int_equal(transport_region_register(conn, 4, destination + PAGE,
						   CHUNKED_LENGTH - PAGE,
						   TRANSPORT_ACCESS_REMOTE_WRITE),
			 0);
	sync_with_peer(conn);
	expect_commit(conn, 5, &chunked_run, 1);
	assert_filled(destination + PAGE + chunked_run.offset, chunked_run.length, 0xc0ffee);
	destination_done(conn);
	transport_close(conn);
	transport_listener_close(listener);
	munmap(destination, CHUNKED_LENGTH);
}

/* Staged regions: with reg=copy at one end or both, a region's bytes cross as WIRE_STAGED
 * messages on the send ring, a commit still follows its data, and bytes sent again land over
 * their first copy. Two batches over the same runs, each checked as its commit arrives. */
#define STAGED_LENGTH (3u << 20)
static const struct transport_options copy_options = {.reg_mode = TRANSPORT_REG_COPY};
static const struct transport_run staged_runs[] = {
	{.region_id = 6, .offset = 0, .length = 5 * PAGE},
	{.region_id = 6, .offset = 64 * PAGE, .length = (1u << 20) + 3 * PAGE},
	{.region_id = 6, .offset = STAGED_LENGTH - 2 * PAGE, .length = 2 * PAGE},
};
#define STAGED_RUNS (sizeof(staged_runs) / sizeof(staged_runs[0]))

static void staged_source(int copy)
{
	char *source = map(STAGED_LENGTH);
	struct transport_conn *conn = source_open(copy ? &copy_options : NULL);
	struct transport_stats stats;

	assert_int_equal(transport_region_register(conn, 6, source, STAGED_LENGTH, 0), 0);
	sync_with_peer(conn);
	for (uint64_t batch = 1; batch <= 2; batch++) {
		fill(source, STAGED_LENGTH, 0x57a6ed00 + batch);
		assert_int_equal(transport_batch_post(conn, batch, staged_runs, STAGED_RUNS), 0);
		/* The next batch's bytes go over these only once the destination checked them. */
		expect_ctrl(conn, "checked");
	}
	source_wait_done(conn);
	transport_stats_get(conn, &stats);
	assert_int_equal(stats.data_bytes_sent, 2 * ((1u << 20) + 10 * PAGE));
	transport_close(conn);
	munmap(source, STAGED_LENGTH);
}

static void staged_destination(int copy)
{
	char *destination = map(STAGED_LENGTH);
	struct transport_listener *listener;
	struct transport_conn *conn = destination_open(copy ? &copy_options : NULL, &listener);

	assert_int_equal(transport_region_register(conn, 6, destination, STAGED_LENGTH,
						   TRANSPORT_ACCESS_REMOTE_WRITE),
			 0);
	sync_with_peer(conn);
	for (uint64_t batch = 1; batch <= 2; batch++) {
		expect_commit(conn, batch, staged_runs, STAGED_RUNS);
		for (size_t i = 0; i < STAGED_RUNS; i++)
			assert_filled_at(destination, staged_runs[i].offset, staged_runs[i].length,
					 0x57a6ed00 + batch);
		assert_int_equal(transport_ctrl_send(conn, "checked", 7), 0);
	}
	/* Between the runs nothing was written. */
	for (size_t i = 5 * PAGE; i < 64 * PAGE; i++)
		if (destination[i])
			fail_msg("byte %zu, outside every run, was written", i);
	destination_done(conn);
	transport_close(conn);
	transport_listener_close(listener);
	munmap(destination, STAGED_LENGTH);
}

static void staged_copy_at_both_ends_lands_byte_exact_source(void)
{
	staged_source(1);
}

static void staged_copy_at_both_ends_lands_byte_exact_destination(void)
{
	staged_destination(1);
}

static void staged_copy_at_source_only_lands_byte_exact_source(void)
{
	staged_source(1);
}

static void staged_copy_at_source_only_lands_byte_exact_destination(void)
{
	staged_destination(0);
}

static void staged_copy_at_destination_only_lands_byte_exact_source(void)
{
	staged_source(0);
}

static void staged_copy_at_destination_only_lands_byte_exact_destination(void)
{
	staged_destination(1);
}

/* A mapping the kernel will not pin: a RAM-backed PCI BAR mapped from sysfs (VM_IO|VM_PFNMAP,
 * as Xen's privcmd foreign mappings are), here QEMU's standard VGA framebuffer (1234:1111,
 * BAR 0, 16 MiB), which the testbed's guest has. ibv_reg_mr must fail on it with EFAULT, and
 * the transport must carry it staged by itself, next to a region it registers. The source
 * uses the BAR's third quarter, the destination its first. */
#define BAR_LENGTH (16u << 20)
#define BAR_REGION (4u << 20)

static char *vga_bar_map(void)
{
	char path[300], text[32];
	struct dirent *entry;
	char *bar = NULL;
	DIR *dir = opendir("/sys/bus/pci/devices");

	if (!dir)
		return NULL;
	while (!bar && (entry = readdir(dir))) {
		int matches = 1, fd;

		for (int k = 0; k < 2 && matches; k++) {
			FILE *f;

			snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/%s", entry->d_name,
				 k ? "device" : "vendor");
			f = fopen(path, "r");
			matches = f && fgets(text, sizeof(text), f) &&
				  !strcmp(text, k ? "0x1111\n" : "0x1234\n");
			if (f)
				fclose(f);
		}
		if (!matches)
			continue;
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/resource0", entry->d_name);
		fd = open(path, O_RDWR | O_SYNC);
		if (fd < 0)
			continue;
		bar = mmap(NULL, BAR_LENGTH, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		close(fd);
		if (bar == MAP_FAILED)
			bar = NULL;
	}
	closedir(dir);
	return bar;
}

/* The premise: the verbs stack itself refuses to register the mapping, with EFAULT. */
static void assert_unregistrable(void *addr, size_t len)
{
	struct ibv_device **list;
	struct ibv_context *ctx;
	struct ibv_pd *pd;
	struct ibv_mr *mr;
	int num = 0, err;

	list = ibv_get_device_list(&num);
	assert_true(num > 0);
	ctx = ibv_open_device(list[0]);
	assert_non_null(ctx);
	pd = ibv_alloc_pd(ctx);
	assert_non_null(pd);
	errno = 0;
	mr = ibv_reg_mr(pd, addr, len, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
	err = errno;
	if (mr)
		ibv_dereg_mr(mr);
	ibv_dealloc_pd(pd);
	ibv_close_device(ctx);
	ibv_free_device_list(list);
	assert_null(mr);
	assert_int_equal(err, EFAULT);
}

static const struct transport_run bar_runs[] = {
	{.region_id = 10, .offset = 0, .length = 3 * PAGE},
	{.region_id = 11, .offset = 0, .length = 300 * PAGE},
	{.region_id = 10, .offset = 17 * PAGE, .length = (1u << 20) + PAGE},
	{.region_id = 11, .offset = BAR_REGION - (1u << 20), .length = 1u << 20},
	{.region_id = 10, .offset = BAR_REGION - PAGE, .length = PAGE},
};
#define BAR_RUNS (sizeof(bar_runs) / sizeof(bar_runs[0]))

/* The source registers whole regions (options NULL; the destination maps the BAR too) or chunk
 * by chunk (reg=chunked, which registers a region's first chunk at once: the BAR is staged
 * there too, by the source alone, its destination region being plain memory; and the plain
 * region is registered in chunks as its runs first use them). */
static void unregistrable_source(const struct transport_options *options)
{
	char *bar = vga_bar_map(), *plain = map(BAR_REGION);
	struct transport_conn *conn;

	if (!bar)
		skip(); /* no QEMU standard VGA here (a host with a NIC): nothing to map */
	assert_unregistrable(bar + BAR_LENGTH / 2, BAR_REGION);
	conn = source_open(options);
	assert_int_equal(transport_region_register(conn, 10, bar + BAR_LENGTH / 2, BAR_REGION, 0),
			 0);
	assert_int_equal(transport_region_register(conn, 11, plain, BAR_REGION, 0), 0);
	sync_with_peer(conn);
	for (uint64_t batch = 1; batch <= 2; batch++) {
		fill(bar + BAR_LENGTH / 2, BAR_REGION, 0xba40 + batch);
		fill(plain, BAR_REGION, 0x91a140 + batch);
		assert_int_equal(transport_batch_post(conn, batch, bar_runs, BAR_RUNS), 0);
		assert_int_equal(transport_flush(conn, TIMEOUT_MS), 0);
		expect_ctrl(conn, "checked");
	}
	source_wait_done(conn);
	transport_close(conn);
	munmap(plain, BAR_REGION);
	munmap(bar, BAR_LENGTH);
}

static void unregistrable_mapping_is_carried_staged_source(void)
{
	unregistrable_source(NULL);
}

static void unregistrable_mapping_chunked_is_carried_staged_source(void)
{
	unregistrable_source(&chunked_options);
}

/* bar_here: the destination's region 10 is the BAR too (staged at both ends); else plain
 * memory it registers, so only the source's own staging can carry region 10. */
static void unregistrable_destination(int bar_here)
{
	char *bar = vga_bar_map(), *plain = map(BAR_REGION), *ten;
	struct transport_listener *listener;
	struct transport_conn *conn;

	if (!bar)
		skip();
	ten = bar_here ? bar : map(BAR_REGION);
	memset(ten, 0, BAR_REGION);
	conn = destination_open(NULL, &listener);
	assert_int_equal(
		transport_region_register(conn, 10, ten, BAR_REGION, TRANSPORT_ACCESS_REMOTE_WRITE),
		0);
	assert_int_equal(transport_region_register(conn, 11, plain, BAR_REGION,
						   TRANSPORT_ACCESS_REMOTE_WRITE),
			 0);
	sync_with_peer(conn);
	for (uint64_t batch = 1; batch <= 2; batch++) {
		expect_commit(conn, batch, bar_runs, BAR_RUNS);
		for (size_t i = 0; i < BAR_RUNS; i++)
			assert_filled_at(bar_runs[i].region_id == 10 ? ten : plain,
					 bar_runs[i].offset, bar_runs[i].length,
					 bar_runs[i].region_id == 10 ? 0xba40 + batch
								     : 0x91a140 + batch);
		assert_int_equal(transport_ctrl_send(conn, "checked", 7), 0);
	}
	destination_done(conn);
	transport_close(conn);
	transport_listener_close(listener);
	if (!bar_here)
		munmap(ten, BAR_REGION);
	munmap(plain, BAR_REGION);
	munmap(bar, BAR_LENGTH);
}

static void unregistrable_mapping_is_carried_staged_destination(void)
{
	unregistrable_destination(1);
}

static void unregistrable_mapping_chunked_is_carried_staged_destination(void)
{
	unregistrable_destination(0);
}

/* A hostile peer's staged messages, crafted on its own send ring: into a region of no one's
 * staging, an unknown region, past a region's end, at an offset that wraps. Each fails the
 * connection with the field named, after a staged batch that landed, and writes nothing: the
 * page after the region keeps its guard bytes. The source stages region 8 (reg=copy), so
 * staged data for it is what the destination expects; region 7 is staged on neither side. */
#define HOSTILE_LENGTH (8 * PAGE)
static const struct {
	uint32_t region_id;
	uint64_t offset;
	const char *error;
} hostile_staged[] = {
	{7, 0, "staged on neither side"},
	{99, 0, "staged.region_id: 99 is not a local region"},
	{8, HOSTILE_LENGTH - PAGE, "staged.offset"},
	{8, UINT64_MAX - 16, "staged.offset"},
};
#define HOSTILE_CASES (sizeof(hostile_staged) / sizeof(hostile_staged[0]))
static const struct transport_run hostile_good_run = {
	.region_id = 8, .offset = PAGE, .length = 2 * PAGE};

static void hostile_staged_messages_refused_source(void)
{
	char *source = map(HOSTILE_LENGTH), *bytes = map(2 * PAGE);

	memset(bytes, 0xee, 2 * PAGE);
	fill(source, HOSTILE_LENGTH, 0x4057);
	for (size_t c = 0; c < HOSTILE_CASES; c++) {
		struct transport_conn *conn = source_open(&copy_options);
		struct rdma_conn *rc = rdma_conn_of(conn);
		struct transport_msg msg;
		struct wire_data data;
		int ret;

		assert_int_equal(transport_region_register(conn, 8, source, HOSTILE_LENGTH, 0), 0);
		sync_with_peer(conn);
		assert_int_equal(transport_batch_post(conn, 1, &hostile_good_run, 1), 0);
		wire_data_to_wire(&data, hostile_staged[c].region_id, hostile_staged[c].offset);
		pthread_mutex_lock(&rc->lock);
		ret = rdma_send_queue(rc, WIRE_STAGED, &data, sizeof(data), bytes, 2 * PAGE, NULL,
				      NULL);
		pthread_mutex_unlock(&rc->lock);
		assert_int_equal(ret, 0);
		/* The destination drops the connection: wait for that. */
		assert_true(transport_recv(conn, &msg, TIMEOUT_MS) < 0);
		transport_close(conn);
	}
	munmap(bytes, 2 * PAGE);
	munmap(source, HOSTILE_LENGTH);
}

static void hostile_staged_messages_refused_destination(void)
{
	struct transport_listener *listener = destination_listen(NULL);
	char *destination = map(HOSTILE_LENGTH + PAGE), *other = map(HOSTILE_LENGTH);

	for (size_t c = 0; c < HOSTILE_CASES; c++) {
		struct transport_conn *conn = NULL;
		struct transport_msg msg;

		memset(destination, 0, HOSTILE_LENGTH);
		memset(destination + HOSTILE_LENGTH, 0x5a, PAGE);
		memset(other, 0, HOSTILE_LENGTH);
		assert_int_equal(transport_accept(listener, 4 * TIMEOUT_MS, &conn), 0);
		assert_int_equal(transport_region_register(conn, 7, other, HOSTILE_LENGTH,
							   TRANSPORT_ACCESS_REMOTE_WRITE),
				 0);
		assert_int_equal(transport_region_register(conn, 8, destination, HOSTILE_LENGTH,
							   TRANSPORT_ACCESS_REMOTE_WRITE),
				 0);
		sync_with_peer(conn);
		expect_commit(conn, 1, &hostile_good_run, 1);
		assert_filled_at(destination, hostile_good_run.offset, hostile_good_run.length,
				 0x4057);
		assert_int_equal(transport_recv(conn, &msg, TIMEOUT_MS), -ECONNRESET);
		if (!strstr(transport_error(conn), hostile_staged[c].error))
			fail_msg("case %zu: error '%s' does not name '%s'", c,
				 transport_error(conn), hostile_staged[c].error);
		for (size_t i = 0; i < PAGE; i++)
			assert_int_equal((unsigned char)destination[HOSTILE_LENGTH + i], 0x5a);
		for (size_t i = 0; i < HOSTILE_LENGTH; i++)
			assert_int_equal(other[i], 0);
		for (size_t i = HOSTILE_LENGTH - PAGE; i < HOSTILE_LENGTH; i++)
			assert_int_equal(destination[i], 0);
		transport_close(conn);
	}
	transport_listener_close(listener);
	munmap(other, HOSTILE_LENGTH);
	munmap(destination, HOSTILE_LENGTH + PAGE);
}

/* ODP on a device without it is refused at connect time, clearly, not at first fault. The
 * source refuses before it reaches the peer: the destination half has nothing to do. */
static void odp_refused_where_device_lacks_it_source(void)
{
	struct transport_options options = {.reg_mode = TRANSPORT_REG_ODP};
	struct ibv_device_attr_ex attr = {0};
	struct transport_conn *conn = NULL;
	char uri[TRANSPORT_URI_MAX];
	struct ibv_device **list;
	struct ibv_context *ctx;
	int num = 0, odp;

	list = ibv_get_device_list(&num);
	assert_true(num > 0);
	ctx = ibv_open_device(list[0]);
	assert_non_null(ctx);
	assert_int_equal(ibv_query_device_ex(ctx, NULL, &attr), 0);
	odp = !!(attr.odp_caps.general_caps & IBV_ODP_SUPPORT);
	ibv_close_device(ctx);
	ibv_free_device_list(list);
	if (odp)
		skip();
	test_uri(peer_ip, uri, sizeof(uri));
	assert_int_equal(transport_connect(uri, &options, &conn), -EOPNOTSUPP);
	assert_null(conn);
}

static void odp_refused_where_device_lacks_it_destination(void)
{
}

/* ---- running the halves ---- */

struct verbs_test {
	const char *name;
	void (*source)(void);
	void (*destination)(void);
	unsigned streams; /* queue pairs the source asks for */
};

#define VERBS_TEST(name)                                                  \
	{                                                                 \
		"test_verbs_" #name, name##_source, name##_destination, 1 \
	}
#define VERBS_TEST_STREAMS(name, n)                                                     \
	{                                                                               \
		"test_verbs_" #name "_streams" #n, name##_source, name##_destination, n \
	}

static const struct verbs_test verbs_tests[] = {
	VERBS_TEST(ctrl_messages_cross_both_ways),
	VERBS_TEST(scattered_runs_split_at_small_max_message_land_byte_exact),
	VERBS_TEST(commits_and_ctrl_keep_posting_order),
	VERBS_TEST(read_pulls_remote_read_region),
	VERBS_TEST(credit_pressure_never_loses_or_reorders),
	VERBS_TEST(write_to_deregistered_region_refused_locally),
	VERBS_TEST(remote_access_error_names_failed_work_request),
	VERBS_TEST(peer_disconnect_mid_stream_gives_connreset),
	VERBS_TEST(destination_gone_fails_sender),
	VERBS_TEST(version_mismatch_is_rejected),
	VERBS_TEST(chunked_registration_sends_across_chunk_boundaries),
	VERBS_TEST(odp_refused_where_device_lacks_it),
	/* several queue pairs per connection */
	VERBS_TEST_STREAMS(queue_pairs_each_carry_part_of_a_batch_and_share_one_mr, 4),
	VERBS_TEST_STREAMS(scattered_runs_split_at_small_max_message_land_byte_exact, 4),
	VERBS_TEST(commits_never_overtake_their_data),
	VERBS_TEST_STREAMS(commits_never_overtake_their_data, 2),
	VERBS_TEST_STREAMS(commits_never_overtake_their_data, 4),
	VERBS_TEST_STREAMS(commits_and_ctrl_keep_posting_order, 4),
	VERBS_TEST_STREAMS(read_pulls_remote_read_region, 2),
	VERBS_TEST_STREAMS(reads_rotate_over_every_queue_pair, 4),
	VERBS_TEST_STREAMS(credit_pressure_never_loses_or_reorders, 4),
	VERBS_TEST_STREAMS(remote_access_error_names_failed_work_request, 4),
	VERBS_TEST_STREAMS(peer_disconnect_mid_stream_gives_connreset, 4),
	VERBS_TEST_STREAMS(destination_gone_fails_sender, 4),
	VERBS_TEST_STREAMS(chunked_registration_sends_across_chunk_boundaries, 2),
	VERBS_TEST(stray_and_duplicate_queue_pairs_refused),
	VERBS_TEST(more_than_eight_queue_pairs_refused),
	/* staged regions (reg=copy, unregistrable mappings) */
	VERBS_TEST(staged_copy_at_both_ends_lands_byte_exact),
	VERBS_TEST(staged_copy_at_source_only_lands_byte_exact),
	VERBS_TEST(staged_copy_at_destination_only_lands_byte_exact),
	VERBS_TEST_STREAMS(staged_copy_at_both_ends_lands_byte_exact, 4),
	VERBS_TEST(unregistrable_mapping_is_carried_staged),
	VERBS_TEST_STREAMS(unregistrable_mapping_is_carried_staged, 4),
	VERBS_TEST(unregistrable_mapping_chunked_is_carried_staged),
	VERBS_TEST(hostile_staged_messages_refused),
};
#define VERBS_TEST_COUNT (sizeof(verbs_tests) / sizeof(verbs_tests[0]))

static void run_half(void **state)
{
	const struct verbs_test *test = *state;

	test_index = (unsigned)(test - verbs_tests);
	test_streams = test->streams;
	if (role == ROLE_SOURCE)
		test->source();
	else
		test->destination();
}

/* Loopback: this binary again, as the destination, next to this process. */
static pid_t destination_spawn(const char *self)
{
	char *argv[] = {(char *)self, NULL};
	size_t n = 0;
	char **env;
	pid_t pid;

	while (environ[n])
		n++;
	env = calloc(n + 2, sizeof(*env));
	assert_non_null(env);
	for (size_t i = 0; i < n; i++)
		env[i] = environ[i];
	env[n] = "RMIG_TESTBED_ROLE=destination";
	if (posix_spawn(&pid, "/proc/self/exe", NULL, NULL, argv, env)) {
		perror("verbs: cannot start the destination half");
		exit(1);
	}
	free(env);
	return pid;
}

int main(int argc, char **argv)
{
	struct CMUnitTest tests[VERBS_TEST_COUNT];
	const char *role_text = getenv("RMIG_TESTBED_ROLE");
	const char *port_text = getenv("RMIG_TESTBED_PORT");
	const char *filter = getenv("RMIG_VERBS_FILTER");
	pid_t destination = -1;
	int failed, status;

	(void)argc;
	local_ip = getenv("RMIG_TESTBED_IP");
	if (!local_ip || !transport_available("rdma")) {
		fprintf(stderr, "verbs: needs $RMIG_TESTBED_IP and an active verbs device\n");
		return 77;
	}
	if (port_text)
		port_base = (unsigned)strtoul(port_text, NULL, 10);
	if (role_text && !strcmp(role_text, "destination")) {
		role = ROLE_DESTINATION;
	} else if (role_text && !strcmp(role_text, "source")) {
		role = ROLE_SOURCE;
		peer_ip = getenv("RMIG_TESTBED_PEER_IP");
		if (!peer_ip) {
			fprintf(stderr, "verbs: the source role needs $RMIG_TESTBED_PEER_IP\n");
			return 2;
		}
	} else if (!role_text || !*role_text) {
		role = ROLE_SOURCE;
		peer_ip = local_ip;
		destination = destination_spawn(argv[0]);
	} else {
		fprintf(stderr, "verbs: RMIG_TESTBED_ROLE is '%s': source or destination\n",
			role_text);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	rmig_log_handler_set(log_to_stderr, NULL,
			     getenv("RMIG_VERBS_INFO") ? RMIG_LOG_LEVEL_INFO : RMIG_LOG_LEVEL_WARN);
	if (filter && *filter)
		cmocka_set_test_filter(filter);
	for (size_t i = 0; i < VERBS_TEST_COUNT; i++)
		tests[i] = (struct CMUnitTest){.name = verbs_tests[i].name,
					       .test_func = run_half,
					       .initial_state = (void *)&verbs_tests[i]};
	failed = cmocka_run_group_tests_name(
		role == ROLE_SOURCE ? "verbs source" : "verbs destination", tests, NULL, NULL);
	if (destination > 0) {
		if (waitpid(destination, &status, 0) != destination || !WIFEXITED(status) ||
		    WEXITSTATUS(status) != 0) {
			fprintf(stderr, "verbs: the destination half failed (status %#x)\n",
				status);
			failed = failed ? failed : 1;
		}
	}
	return failed ? 1 : 0;
}
