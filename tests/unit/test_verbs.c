/* tests/unit/test_verbs.c - the rdma transport's own behaviours on a real verbs device (the
 * soft-RoCE testbed): split and chained writes, commit ordering, RDMA READ, credit pressure,
 * completion errors naming the failed work request, peer disconnect, version refusal.
 *
 * Every test is two halves that meet only through their connection: the source half (connects,
 * writes) and the destination half (listens, receives, checks what landed against the pattern
 * the source wrote). $RMIG_TESTBED_ROLE says which halves this process runs:
 *   unset        both: this process runs the source halves and starts itself again as the
 *                destination (loopback on one device, $RMIG_TESTBED_IP);
 *   source       the source halves, connecting to $RMIG_TESTBED_PEER_IP (another host);
 *   destination  the destination halves, listening on $RMIG_TESTBED_IP.
 * Test i meets on port $RMIG_TESTBED_PORT + i (default 7471 + i). Needs $RMIG_TESTBED_IP (an
 * address on the rdma device); exits 77 (skipped) without it. */
#include <errno.h>
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
static unsigned test_index; /* which test runs now: its port is port_base + test_index */

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

/* The source half's connection; the destination may not be listening yet: retry a while. */
static struct transport_conn *source_open(const struct transport_options *options)
{
	struct transport_conn *conn = NULL;
	char uri[TRANSPORT_URI_MAX];
	int ret;

	test_uri(peer_ip, uri, sizeof(uri));
	for (int attempt = 0; attempt < 300; attempt++) {
		log_quiet = attempt < 299; /* only the last attempt's failure is news */
		ret = transport_connect(uri, options, &conn);
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
	/* Every SEND completed without an error (no RNR): checked before the peer may close. */
	assert_int_equal(transport_flush(conn, TIMEOUT_MS), 0);
	assert_string_equal(transport_error(conn), "");
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

/* A wrong rkey makes the peer's NIC refuse the WRITE: the source's error names the WR and its
 * run; the destination never sees the batch's commit, and its memory stays untouched. */
static void remote_access_error_names_failed_work_request_source(void)
{
	struct transport_run run = {.region_id = 5, .offset = 8 * PAGE, .length = 2 * PAGE};
	char *source = map(64 * PAGE);
	struct transport_region remote;
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

/* A client speaking another protocol version is rejected with the reason in the reject. */
static int raw_connect_with_version(const char *host, unsigned port, uint32_t version, char *reject,
				    size_t reject_len)
{
	struct rdma_event_channel *channel;
	struct rdma_conn_param param = {0};
	struct ibv_qp_init_attr qp_attr = {0};
	struct rdma_cm_event *event;
	struct wire_hello hello;
	struct rdma_cm_id *id;
	struct addrinfo *ai;
	struct ibv_pd *pd;
	struct ibv_cq *cq;
	char port_text[8];
	int rejected;

	snprintf(port_text, sizeof(port_text), "%u", port);
	assert_int_equal(getaddrinfo(host, port_text, NULL, &ai), 0);
	channel = rdma_create_event_channel();
	assert_non_null(channel);
	assert_int_equal(rdma_create_id(channel, &id, NULL, RDMA_PS_TCP), 0);
	assert_int_equal(rdma_resolve_addr(id, NULL, ai->ai_addr, 5000), 0);
	assert_int_equal(rdma_get_cm_event(channel, &event), 0);
	assert_int_equal(event->event, RDMA_CM_EVENT_ADDR_RESOLVED);
	rdma_ack_cm_event(event);
	assert_int_equal(rdma_resolve_route(id, 5000), 0);
	assert_int_equal(rdma_get_cm_event(channel, &event), 0);
	assert_int_equal(event->event, RDMA_CM_EVENT_ROUTE_RESOLVED);
	rdma_ack_cm_event(event);
	pd = ibv_alloc_pd(id->verbs);
	cq = ibv_create_cq(id->verbs, 4, NULL, NULL, 0);
	assert_non_null(pd);
	assert_non_null(cq);
	qp_attr.send_cq = qp_attr.recv_cq = cq;
	qp_attr.qp_type = IBV_QPT_RC;
	qp_attr.cap.max_send_wr = qp_attr.cap.max_recv_wr = 1;
	qp_attr.cap.max_send_sge = qp_attr.cap.max_recv_sge = 1;
	assert_int_equal(rdma_create_qp(id, pd, &qp_attr), 0);
	wire_hello_to_wire(&hello, 1, TRANSPORT_CTRL_MAX, 32, 0);
	memcpy(&hello, &version, sizeof(version)); /* protocol_version comes first, LE */
	param.private_data = &hello;
	param.private_data_len = sizeof(hello);
	param.retry_count = 1;
	assert_int_equal(rdma_connect(id, &param), 0);
	assert_int_equal(rdma_get_cm_event(channel, &event), 0);
	rejected = event->event == RDMA_CM_EVENT_REJECTED;
	reject[0] = '\0';
	if (rejected && event->param.conn.private_data_len)
		snprintf(reject, reject_len, "%.*s", (int)event->param.conn.private_data_len,
			 (const char *)event->param.conn.private_data);
	rdma_ack_cm_event(event);
	rdma_destroy_qp(id);
	ibv_destroy_cq(cq);
	ibv_dealloc_pd(pd);
	rdma_destroy_id(id);
	rdma_destroy_event_channel(channel);
	freeaddrinfo(ai);
	return rejected;
}

static void version_mismatch_is_rejected_source(void)
{
	char reject[256] = "";
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
}

static void version_mismatch_is_rejected_destination(void)
{
	struct transport_listener *listener = destination_listen(NULL);
	struct transport_conn *conn = NULL;

	assert_int_equal(transport_accept(listener, 4 * TIMEOUT_MS, &conn), -EPROTO);
	assert_null(conn);
	transport_listener_close(listener);
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
};

#define VERBS_TEST(name)                                               \
	{                                                              \
		"test_verbs_" #name, name##_source, name##_destination \
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
};
#define VERBS_TEST_COUNT (sizeof(verbs_tests) / sizeof(verbs_tests[0]))

static void run_half(void **state)
{
	const struct verbs_test *test = *state;

	test_index = (unsigned)(test - verbs_tests);
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
	rmig_log_handler_set(log_to_stderr, NULL, RMIG_LOG_LEVEL_WARN);
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
