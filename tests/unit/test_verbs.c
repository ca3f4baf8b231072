/* tests/unit/test_verbs.c - the rdma transport's own behaviours on a real verbs device (the
 * soft-RoCE testbed): split and chained writes, commit ordering, RDMA READ, credit pressure,
 * completion errors naming the failed work request, peer disconnect, version refusal.
 * Needs $RMIG_TESTBED_IP (an address on the rxe device); exits 77 (skipped) without it. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <cmocka.h>
#include <infiniband/verbs.h>
#include <netdb.h>
#include <rdma/rdma_cma.h>

#include "transport/transport.h"
#include "transport/wire.h"

#define TIMEOUT_MS 30000
#define PAGE 4096u
#define GIB (1ull << 30)

struct pair {
	struct transport_listener *listener;
	struct transport_conn *source;
	struct transport_conn *destination;
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

static void pair_open_with(struct pair *p, const struct transport_options *options)
{
	struct connect_job job = {.options = options};
	char uri[TRANSPORT_URI_MAX];
	pthread_t thread;

	memset(p, 0, sizeof(*p));
	snprintf(uri, sizeof(uri), "rdma://%s:0", getenv("RMIG_TESTBED_IP"));
	assert_int_equal(transport_listen(uri, options, &p->listener), 0);
	assert_int_equal(transport_listener_uri(p->listener, job.uri, sizeof(job.uri)), 0);
	assert_int_equal(pthread_create(&thread, NULL, connect_main, &job), 0);
	assert_int_equal(transport_accept(p->listener, TIMEOUT_MS, &p->destination), 0);
	pthread_join(thread, NULL);
	assert_int_equal(job.ret, 0);
	p->source = job.conn;
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

static void *map(size_t len)
{
	void *addr = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	assert_true(addr != MAP_FAILED);
	return addr;
}

static void fill(void *addr, size_t len, uint64_t seed)
{
	uint64_t *words = addr;

	for (size_t i = 0; i < len / 8; i++)
		words[i] = (i * 0x9e3779b97f4a7c15ull) ^ seed;
}

static void expect_ctrl(struct transport_conn *conn, const char *text)
{
	struct transport_msg msg;

	assert_int_equal(transport_recv(conn, &msg, TIMEOUT_MS), 0);
	assert_int_equal(msg.type, TRANSPORT_MSG_CTRL);
	assert_int_equal(msg.len, strlen(text));
	assert_memory_equal(msg.data, text, msg.len);
}

/* Both sides have seen each other's region announcements once a ctrl round trip is done. */
static void pair_sync(struct pair *p)
{
	assert_int_equal(transport_ctrl_send(p->source, "s", 1), 0);
	assert_int_equal(transport_ctrl_send(p->destination, "d", 1), 0);
	expect_ctrl(p->destination, "s");
	expect_ctrl(p->source, "d");
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

static void test_verbs_ctrl_messages_cross_both_ways(void **state)
{
	struct pair p;

	(void)state;
	pair_open(&p);
	pair_sync(&p);
	assert_int_equal(transport_ctrl_send(p.source, "hello", 5), 0);
	expect_ctrl(p.destination, "hello");
	pair_close(&p);
}

/* 1 GiB destination, scattered runs, device max message forced to 8 KiB: runs longer than that
 * are split into several WRs, adjacent runs are coalesced, and every byte lands in place. */
static void test_verbs_scattered_runs_split_at_small_max_message_land_byte_exact(void **state)
{
	const size_t length = GIB;
	struct transport_run runs[] = {
		{.region_id = 7, .offset = 0, .length = PAGE},
		{.region_id = 7, .offset = PAGE, .length = 3 * PAGE}, /* continues the first */
		{.region_id = 7, .offset = 100 * PAGE, .length = 37 * PAGE},
		{.region_id = 7,
		 .offset = 5000 * PAGE,
		 .length = PAGE,
		 .flags = TRANSPORT_RUN_ZERO},
		{.region_id = 7, .offset = GIB - 64 * PAGE, .length = 64 * PAGE},
		{.region_id = 7, .offset = (GIB / 2) + 123 * PAGE, .length = 1 << 20},
	};
	struct transport_stats stats;
	char *source, *destination;
	uint64_t data = 0;
	struct pair p;

	(void)state;
	setenv("RMIG_RDMA_MAX_MSG", "8192", 1);
	source = map(length);
	destination = map(length);
	for (size_t i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
		fill(source + runs[i].offset, runs[i].length, i + 1);
		if (!(runs[i].flags & TRANSPORT_RUN_ZERO))
			data += runs[i].length;
	}
	pair_open(&p);
	assert_int_equal(transport_region_register(p.source, 7, source, length, 0), 0);
	assert_int_equal(transport_region_register(p.destination, 7, destination, length,
						   TRANSPORT_ACCESS_REMOTE_WRITE),
			 0);
	pair_sync(&p);
	assert_int_equal(transport_batch_post(p.source, 42, runs, 6), 0);
	expect_commit(p.destination, 42, runs, 6);
	for (size_t i = 0; i < 6; i++) {
		if (runs[i].flags & TRANSPORT_RUN_ZERO)
			continue;
		assert_memory_equal(destination + runs[i].offset, source + runs[i].offset,
				    runs[i].length);
	}
	/* The zero run carried nothing: the destination page is still untouched. */
	assert_int_equal(destination[5000 * PAGE], 0);
	assert_int_equal(destination[5000 * PAGE + PAGE - 1], 0);
	assert_int_equal(transport_flush(p.source, TIMEOUT_MS), 0);
	transport_stats_get(p.source, &stats);
	assert_int_equal(stats.data_bytes_sent, data);
	transport_stats_get(p.destination, &stats);
	assert_int_equal(stats.data_bytes_received, data);
	pair_close(&p);
	unsetenv("RMIG_RDMA_MAX_MSG");
	munmap(source, length);
	munmap(destination, length);
}

/* Commits and control messages come out in the order they were posted, each after its data. */
static void test_verbs_commits_and_ctrl_keep_posting_order(void **state)
{
	const size_t length = 256 * PAGE;
	char *source = map(length), *destination = map(length);
	struct pair p;

	(void)state;
	pair_open(&p);
	assert_int_equal(transport_region_register(p.source, 1, source, length, 0), 0);
	assert_int_equal(transport_region_register(p.destination, 1, destination, length,
						   TRANSPORT_ACCESS_REMOTE_WRITE),
			 0);
	pair_sync(&p);
	for (uint64_t batch = 0; batch < 64; batch++) {
		struct transport_run run = {
			.region_id = 1, .offset = batch * 4 * PAGE, .length = 4 * PAGE};
		char text[32];

		fill(source + run.offset, run.length, batch + 100);
		assert_int_equal(transport_batch_post(p.source, batch, &run, 1), 0);
		snprintf(text, sizeof(text), "after-%llu", (unsigned long long)batch);
		assert_int_equal(transport_ctrl_send(p.source, text, strlen(text)), 0);
	}
	for (uint64_t batch = 0; batch < 64; batch++) {
		struct transport_run run = {
			.region_id = 1, .offset = batch * 4 * PAGE, .length = 4 * PAGE};
		char text[32];

		expect_commit(p.destination, batch, &run, 1);
		assert_memory_equal(destination + run.offset, source + run.offset, run.length);
		snprintf(text, sizeof(text), "after-%llu", (unsigned long long)batch);
		expect_ctrl(p.destination, text);
	}
	pair_close(&p);
	munmap(source, length);
	munmap(destination, length);
}

/* READ into plain memory goes through the bounce buffer (larger than it, so in pieces);
 * READ into a registered region lands directly. */
static void test_verbs_read_pulls_remote_read_region(void **state)
{
	const size_t length = 4u << 20;
	char *remote = map(length), *local = map(length), *plain = malloc(3u << 20);
	struct transport_stats stats;
	struct pair p;

	(void)state;
	assert_non_null(plain);
	fill(remote, length, 0x5151);
	pair_open(&p);
	assert_int_equal(transport_region_register(p.source, 3, remote, length,
						   TRANSPORT_ACCESS_REMOTE_READ),
			 0);
	assert_int_equal(transport_region_register(p.destination, 9, local, length, 0), 0);
	pair_sync(&p);
	assert_int_equal(transport_read(p.destination, 3, PAGE, plain, 3u << 20, TIMEOUT_MS), 0);
	assert_memory_equal(plain, remote + PAGE, 3u << 20);
	assert_int_equal(
		transport_read(p.destination, 3, 0, local + 8 * PAGE, 2u << 20, TIMEOUT_MS), 0);
	assert_memory_equal(local + 8 * PAGE, remote, 2u << 20);
	/* Beyond the end, and a region id never announced: refused locally. */
	assert_int_equal(
		transport_read(p.destination, 3, length - PAGE, plain, 2 * PAGE, TIMEOUT_MS),
		-ERANGE);
	assert_int_equal(transport_read(p.destination, 4, 0, plain, PAGE, TIMEOUT_MS), -ENOENT);
	transport_stats_get(p.destination, &stats);
	assert_int_equal(stats.reads, 2);
	assert_int_equal(stats.read_bytes, (3u << 20) + (2u << 20));
	pair_close(&p);
	free(plain);
	munmap(remote, length);
	munmap(local, length);
}

struct flood_job {
	struct transport_conn *conn;
	unsigned count;
	int ret;
};

static void *flood_main(void *arg)
{
	struct flood_job *job = arg;
	struct transport_run run = {.region_id = 1, .offset = 0, .length = PAGE};

	for (unsigned i = 0; i < job->count && !job->ret; i++) {
		char text[16];

		snprintf(text, sizeof(text), "m%u", i);
		job->ret = transport_ctrl_send(job->conn, text, strlen(text));
		if (!job->ret && i % 4 == 0)
			job->ret = transport_batch_post(job->conn, i, &run, 1);
	}
	return NULL;
}

/* Far more SENDs than receive buffers, with a receiver that lags: credits hold the sender back,
 * nothing fails with RNR, and every message arrives in order. */
static void test_verbs_credit_pressure_never_loses_or_reorders(void **state)
{
	const unsigned count = 2000;
	char *source = map(PAGE), *destination = map(PAGE);
	struct flood_job job;
	pthread_t thread;
	struct pair p;

	(void)state;
	pair_open(&p);
	assert_int_equal(transport_region_register(p.source, 1, source, PAGE, 0), 0);
	assert_int_equal(transport_region_register(p.destination, 1, destination, PAGE,
						   TRANSPORT_ACCESS_REMOTE_WRITE),
			 0);
	pair_sync(&p);
	job = (struct flood_job){.conn = p.source, .count = count};
	assert_int_equal(pthread_create(&thread, NULL, flood_main, &job), 0);
	for (unsigned i = 0; i < count; i++) {
		struct transport_msg msg;
		char text[16];

		snprintf(text, sizeof(text), "m%u", i);
		assert_int_equal(transport_recv(p.destination, &msg, TIMEOUT_MS), 0);
		assert_int_equal(msg.type, TRANSPORT_MSG_CTRL);
		assert_int_equal(msg.len, strlen(text));
		assert_memory_equal(msg.data, text, msg.len);
		if (i % 4 == 0) {
			assert_int_equal(transport_recv(p.destination, &msg, TIMEOUT_MS), 0);
			assert_int_equal(msg.type, TRANSPORT_MSG_COMMIT);
			assert_int_equal(msg.batch_id, i);
		}
	}
	pthread_join(thread, NULL);
	assert_int_equal(job.ret, 0);
	assert_string_equal(transport_error(p.source), "");
	assert_string_equal(transport_error(p.destination), "");
	pair_close(&p);
	munmap(source, PAGE);
	munmap(destination, PAGE);
}

static void test_verbs_write_to_deregistered_region_refused_locally(void **state)
{
	char *source = map(16 * PAGE), *destination = map(16 * PAGE);
	struct transport_run run = {.region_id = 2, .offset = 0, .length = PAGE};
	struct pair p;

	(void)state;
	pair_open(&p);
	assert_int_equal(transport_region_register(p.source, 2, source, 16 * PAGE, 0), 0);
	assert_int_equal(transport_region_register(p.destination, 2, destination, 16 * PAGE,
						   TRANSPORT_ACCESS_REMOTE_WRITE),
			 0);
	pair_sync(&p);
	assert_int_equal(transport_region_deregister(p.destination, 2), 0);
	pair_sync(&p);
	assert_int_equal(transport_batch_post(p.source, 1, &run, 1), -ENOENT);
	assert_string_equal(transport_error(p.source), ""); /* refused, connection healthy */
	pair_sync(&p);
	pair_close(&p);
	munmap(source, 16 * PAGE);
	munmap(destination, 16 * PAGE);
}

/* A wrong rkey makes the peer's NIC refuse the WRITE: the error names the WR and its run. */
static void test_verbs_remote_access_error_names_failed_work_request(void **state)
{
	char *source = map(64 * PAGE), *destination = map(64 * PAGE);
	struct transport_run run = {.region_id = 5, .offset = 8 * PAGE, .length = 2 * PAGE};
	struct transport_region remote;
	int ret;
	struct pair p;

	(void)state;
	pair_open(&p);
	assert_int_equal(transport_region_register(p.source, 5, source, 64 * PAGE, 0), 0);
	assert_int_equal(transport_region_register(p.destination, 5, destination, 64 * PAGE,
						   TRANSPORT_ACCESS_REMOTE_WRITE),
			 0);
	pair_sync(&p);
	/* Corrupt the advertised rkey through the shared region table. */
	assert_int_equal(transport_region_remove(p.source, 1, 5, &remote), 0);
	remote.rkey ^= 0x5a5a00;
	assert_int_equal(transport_region_add(p.source, 1, &remote), 0);
	ret = transport_batch_post(p.source, 77, &run, 1);
	if (!ret)
		ret = transport_flush(p.source, TIMEOUT_MS);
	assert_int_equal(ret, -EIO);
	assert_non_null(strstr(transport_error(p.source), "RDMA WRITE"));
	assert_non_null(strstr(transport_error(p.source), "region 5 [32768, +8192)"));
	assert_non_null(strstr(transport_error(p.source), "batch 77"));
	pair_close(&p);
	munmap(source, 64 * PAGE);
	munmap(destination, 64 * PAGE);
}

/* The source vanishes between batches: the destination gets what was committed, then
 * -ECONNRESET, and never hangs. */
static void test_verbs_peer_disconnect_mid_stream_gives_connreset(void **state)
{
	const size_t length = 64 * PAGE;
	char *source = map(length), *destination = map(length);
	struct transport_run run = {.region_id = 1, .offset = 0, .length = length};
	struct transport_msg msg;
	int ret;
	struct pair p;

	(void)state;
	pair_open(&p);
	assert_int_equal(transport_region_register(p.source, 1, source, length, 0), 0);
	assert_int_equal(transport_region_register(p.destination, 1, destination, length,
						   TRANSPORT_ACCESS_REMOTE_WRITE),
			 0);
	pair_sync(&p);
	for (int i = 0; i < 8; i++)
		assert_int_equal(transport_batch_post(p.source, (uint64_t)i, &run, 1), 0);
	transport_close(p.source);
	p.source = NULL;
	do {
		ret = transport_recv(p.destination, &msg, TIMEOUT_MS);
	} while (ret == 0);
	assert_int_equal(ret, -ECONNRESET);
	/* The destination disconnecting under a writer: the writer fails too, no hang. */
	transport_close(p.destination);
	transport_listener_close(p.listener);
	munmap(source, length);
	munmap(destination, length);
}

static void test_verbs_destination_gone_fails_sender(void **state)
{
	const size_t length = 256 * PAGE;
	char *source = map(length), *destination = map(length);
	struct transport_run run = {.region_id = 1, .offset = 0, .length = length};
	int ret = 0;
	struct pair p;

	(void)state;
	pair_open(&p);
	assert_int_equal(transport_region_register(p.source, 1, source, length, 0), 0);
	assert_int_equal(transport_region_register(p.destination, 1, destination, length,
						   TRANSPORT_ACCESS_REMOTE_WRITE),
			 0);
	pair_sync(&p);
	transport_close(p.destination);
	p.destination = NULL;
	for (int i = 0; i < 10000 && !ret; i++)
		ret = transport_batch_post(p.source, (uint64_t)i, &run, 1);
	if (!ret)
		ret = transport_flush(p.source, TIMEOUT_MS);
	assert_true(ret == -ECONNRESET || ret == -EIO);
	assert_string_not_equal(transport_error(p.source), "");
	transport_close(p.source);
	transport_listener_close(p.listener);
	munmap(source, length);
	munmap(destination, length);
}

/* A client speaking another protocol version is rejected with the reason in the reject. */
static void test_verbs_version_mismatch_is_rejected(void **state)
{
	struct transport_listener *listener;
	struct transport_conn *conn = NULL;
	char uri[TRANSPORT_URI_MAX], port[8];
	struct rdma_event_channel *channel;
	struct rdma_conn_param param = {0};
	struct ibv_qp_init_attr qp_attr = {0};
	struct rdma_cm_event *event;
	struct transport_uri parsed;
	struct wire_hello hello;
	struct rdma_cm_id *id;
	struct addrinfo *ai;
	struct ibv_pd *pd;
	struct ibv_cq *cq;

	(void)state;
	snprintf(uri, sizeof(uri), "rdma://%s:0", getenv("RMIG_TESTBED_IP"));
	assert_int_equal(transport_listen(uri, NULL, &listener), 0);
	assert_int_equal(transport_listener_uri(listener, uri, sizeof(uri)), 0);
	assert_int_equal(transport_uri_parse(uri, &parsed), 0);
	snprintf(port, sizeof(port), "%u", parsed.port);
	assert_int_equal(getaddrinfo(parsed.host, port, NULL, &ai), 0);
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
	qp_attr.send_cq = qp_attr.recv_cq = cq;
	qp_attr.qp_type = IBV_QPT_RC;
	qp_attr.cap.max_send_wr = qp_attr.cap.max_recv_wr = 1;
	qp_attr.cap.max_send_sge = qp_attr.cap.max_recv_sge = 1;
	assert_int_equal(rdma_create_qp(id, pd, &qp_attr), 0);
	wire_hello_to_wire(&hello, 1, TRANSPORT_CTRL_MAX, 32, 0);
	((unsigned char *)&hello)[0] = 99; /* protocol_version, little-endian */
	param.private_data = &hello;
	param.private_data_len = sizeof(hello);
	param.retry_count = 1;
	assert_int_equal(rdma_connect(id, &param), 0);
	assert_int_equal(transport_accept(listener, TIMEOUT_MS, &conn), -EPROTO);
	assert_null(conn);
	assert_int_equal(rdma_get_cm_event(channel, &event), 0);
	assert_int_equal(event->event, RDMA_CM_EVENT_REJECTED);
	assert_true(event->param.conn.private_data_len > 0);
	assert_non_null(strstr(event->param.conn.private_data, "protocol_version"));
	rdma_ack_cm_event(event);
	rdma_destroy_qp(id);
	ibv_destroy_cq(cq);
	ibv_dealloc_pd(pd);
	rdma_destroy_id(id);
	rdma_destroy_event_channel(channel);
	freeaddrinfo(ai);
	transport_listener_close(listener);
}

/* Chunked registration: the sending region is registered piecewise on first use; data
 * crossing a 2 MiB chunk boundary still lands exactly. */
static void test_verbs_chunked_registration_sends_across_chunk_boundaries(void **state)
{
	const size_t length = 8u << 20;
	struct transport_options options = {.reg_mode = TRANSPORT_REG_CHUNKED};
	char *source = map(length), *destination = map(length);
	struct transport_run run = {
		.region_id = 4, .offset = (2u << 20) - 3 * PAGE, .length = (2u << 20) + 6 * PAGE};
	struct pair p;

	(void)state;
	fill(source, length, 0xc0ffee);
	pair_open_with(&p, &options);
	assert_int_equal(transport_region_register(p.source, 4, source + PAGE, length - PAGE, 0),
			 0);
	assert_int_equal(transport_region_register(p.destination, 4, destination + PAGE,
						   length - PAGE, TRANSPORT_ACCESS_REMOTE_WRITE),
			 0);
	pair_sync(&p);
	assert_int_equal(transport_batch_post(p.source, 5, &run, 1), 0);
	expect_commit(p.destination, 5, &run, 1);
	assert_memory_equal(destination + PAGE + run.offset, source + PAGE + run.offset,
			    run.length);
	pair_close(&p);
	munmap(source, length);
	munmap(destination, length);
}

/* ODP on a device without it is refused at connect time, clearly, not at first fault. */
static void test_verbs_odp_refused_where_device_lacks_it(void **state)
{
	struct transport_options options = {.reg_mode = TRANSPORT_REG_ODP};
	struct ibv_device_attr_ex attr = {0};
	struct ibv_device **list;
	struct ibv_context *ctx;
	struct transport_listener *listener;
	struct transport_conn *conn = NULL;
	char uri[TRANSPORT_URI_MAX];
	int num = 0, odp;

	(void)state;
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
	snprintf(uri, sizeof(uri), "rdma://%s:0", getenv("RMIG_TESTBED_IP"));
	assert_int_equal(transport_listen(uri, NULL, &listener), 0);
	assert_int_equal(transport_listener_uri(listener, uri, sizeof(uri)), 0);
	assert_int_equal(transport_connect(uri, &options, &conn), -EOPNOTSUPP);
	assert_null(conn);
	transport_listener_close(listener);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_verbs_ctrl_messages_cross_both_ways),
		cmocka_unit_test(
			test_verbs_scattered_runs_split_at_small_max_message_land_byte_exact),
		cmocka_unit_test(test_verbs_commits_and_ctrl_keep_posting_order),
		cmocka_unit_test(test_verbs_read_pulls_remote_read_region),
		cmocka_unit_test(test_verbs_credit_pressure_never_loses_or_reorders),
		cmocka_unit_test(test_verbs_write_to_deregistered_region_refused_locally),
		cmocka_unit_test(test_verbs_remote_access_error_names_failed_work_request),
		cmocka_unit_test(test_verbs_peer_disconnect_mid_stream_gives_connreset),
		cmocka_unit_test(test_verbs_destination_gone_fails_sender),
		cmocka_unit_test(test_verbs_version_mismatch_is_rejected),
		cmocka_unit_test(test_verbs_chunked_registration_sends_across_chunk_boundaries),
		cmocka_unit_test(test_verbs_odp_refused_where_device_lacks_it),
	};

	if (!getenv("RMIG_TESTBED_IP") || !transport_available("rdma")) {
		fprintf(stderr, "verbs: needs $RMIG_TESTBED_IP and an active verbs device\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
