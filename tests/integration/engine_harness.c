/* SPDX-License-Identifier: MIT */
/* tests/integration/engine_harness.c - see engine_harness.h. */
#include <stdarg.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <unistd.h>

#include "integration/engine_harness.h"

const char *harness_transport = "loop";
int harness_usable;
uint32_t harness_dirty_source = RMIG_DIRTY_AUTO;

/* The address to listen on for rdma: the testbed's (RMIG_TESTBED_IP: the address of its RDMA
 * device's netdev, which is the testbed's contract), else the first IPv4 address of an
 * interface that is up and not loopback. */
static int harness_rdma_address(char *buf, size_t len)
{
	const char *testbed = getenv("RMIG_TESTBED_IP");
	struct ifaddrs *ifa, *it;
	struct in_addr parsed;
	int ret = -ENODEV;

	if (testbed && *testbed) {
		if (inet_pton(AF_INET, testbed, &parsed) != 1 || strlen(testbed) >= len) {
			print_message("RMIG_TESTBED_IP=%s is not an IPv4 address\n", testbed);
			return -EINVAL;
		}
		snprintf(buf, len, "%s", testbed);
		return 0;
	}
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

int harness_transport_usable(int argc, char **argv, const char **transport_p)
{
	static const char *const dirty_names[] = {"auto", "hypervisor", "uffd-async", "uffd-sync",
						  "hash"};
	const char *transport = argc > 1 ? argv[1] : "loop";

	*transport_p = transport;
	if (argc > 2) {
		size_t i;

		for (i = 0; i < sizeof(dirty_names) / sizeof(dirty_names[0]); i++) {
			if (!strcmp(argv[2], dirty_names[i]))
				harness_dirty_source = (uint32_t)i;
		}
	}
	/* rdma-copy: rdma:// with ?reg=copy at both ends, every region carried staged */
	return rmig_transport_available(strcmp(transport, "rdma-copy") ? transport : "rdma");
}

size_t harness_pages(const struct harness *h)
{
	return h->src_length / HARNESS_PAGE;
}

void harness_page_write(struct harness *h, size_t page, uint64_t tag)
{
	uint64_t *words = (uint64_t *)(h->src_ram + page * HARNESS_PAGE);

	for (size_t i = 0; i < HARNESS_PAGE / 8; i += 16)
		words[i] = tag ^ (page * 0x9e3779b97f4a7c15ull) ^ i;
}

static unsigned char *harness_alloc(size_t length)
{
	void *p = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	assert_true(p != MAP_FAILED);
	return p;
}

void harness_init(struct harness *h, const char *transport, size_t length, unsigned zero_every)
{
	static int counter;

	memset(h, 0, sizeof(*h));
	h->transport = transport;
	h->src_length = length;
	h->dst_length = length;
	h->src_region_id = HARNESS_REGION_ID;
	h->dst_region_id = HARNESS_REGION_ID;
	h->src_ram = harness_alloc(length);
	h->dst_ram = harness_alloc(length);
	for (size_t p = 0; p < length / HARNESS_PAGE; p++) {
		if (zero_every && p % zero_every == 0)
			continue;
		harness_page_write(h, p, 0x1234567ull);
	}
	memset(h->dst_ram, 0xaa, length);
	if (!strcmp(transport, "tcp")) {
		snprintf(h->listen_uri, sizeof(h->listen_uri), "tcp://127.0.0.1:0");
	} else if (!strcmp(transport, "rdma") || !strcmp(transport, "rdma-copy")) {
		char address[64];

		assert_int_equal(harness_rdma_address(address, sizeof(address)), 0);
		snprintf(h->listen_uri, sizeof(h->listen_uri), "rdma://%s:0%s", address,
			 strcmp(transport, "rdma") ? "?reg=copy" : "");
	} else {
		snprintf(h->listen_uri, sizeof(h->listen_uri), "loop:engine-test-%ld-%d",
			 (long)getpid(), counter++);
	}
}

static void *harness_writer_main(void *arg)
{
	struct harness *h = arg;
	uint64_t state = 88172645463325252ull;
	size_t pages = harness_pages(h);

	while (!atomic_load(&h->writer_stop)) {
		size_t page;

		state ^= state << 13;
		state ^= state >> 7;
		state ^= state << 17;
		/* Nine writes in ten go to a hot set of the first 1/16 of RAM. */
		if (state % 10)
			page = (size_t)(state >> 20) % (pages / 16 + 1);
		else
			page = (size_t)(state >> 20) % pages;
		harness_page_write(h, page, state);
		atomic_fetch_add(&h->writes, 1);
		if ((atomic_load(&h->writes) & 255) == 0)
			usleep(100);
	}
	return NULL;
}

uint64_t harness_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t harness_now_ms(void)
{
	return harness_now_us() / 1000u;
}

void harness_writer_start(struct harness *h)
{
	atomic_store(&h->writer_stop, 0);
	assert_int_equal(pthread_create(&h->writer, NULL, harness_writer_main, h), 0);
	h->writer_running = 1;
}

static void harness_writer_stop(struct harness *h)
{
	if (!h->writer_running)
		return;
	atomic_store(&h->writer_stop, 1);
	pthread_join(h->writer, NULL);
	h->writer_running = 0;
}

static int harness_pause(void *opaque)
{
	struct harness *h = opaque;

	harness_writer_stop(h);
	atomic_store(&h->src_paused, 1);
	if (h->on_pause)
		h->on_pause(h);
	return 0;
}

static int harness_src_resume(void *opaque)
{
	struct harness *h = opaque;

	atomic_store(&h->src_resumed, 1);
	return 0;
}

static int harness_dst_resume(void *opaque)
{
	struct harness *h = opaque;

	atomic_store(&h->dst_resumed, 1);
	if (h->on_dst_resume)
		h->on_dst_resume(h);
	return 0;
}

static void harness_progress(void *opaque, uint32_t event, const struct rmig_stats *stats)
{
	struct harness *h = opaque;

	if (h->on_progress)
		h->on_progress(h, event, stats);
}

static void harness_dst_progress(void *opaque, uint32_t event, const struct rmig_stats *stats)
{
	struct harness *h = opaque;

	h->on_dst_progress(h, event, stats);
}

static int harness_dirty_sync(void *opaque, uint32_t region_id, uint64_t *bitmap, size_t npages)
{
	struct harness *h = opaque;

	return h->on_dirty_sync(h, region_id, bitmap, npages);
}

static int harness_device_state_read(void *opaque, void *buf, size_t len)
{
	struct harness *h = opaque;

	return h->on_device_state_read(h, buf, len);
}

static int harness_device_state_write(void *opaque, const void *buf, size_t len)
{
	struct harness *h = opaque;

	return h->on_device_state_write(h, buf, len);
}

void harness_sessions(struct harness *h)
{
	struct rmig_callbacks src_cb = {
		.field_mask = RMIG_CB_PAUSE_VM | RMIG_CB_RESUME_VM | RMIG_CB_PROGRESS,
		.pause_vm = harness_pause,
		.resume_vm = harness_src_resume,
		.progress = harness_progress,
	};
	struct rmig_callbacks dst_cb = {
		.field_mask = RMIG_CB_RESUME_VM,
		.resume_vm = harness_dst_resume,
	};
	char uri[256];

	if (h->on_dirty_sync) {
		src_cb.field_mask |= RMIG_CB_DIRTY_SYNC;
		src_cb.dirty_sync = harness_dirty_sync;
	}
	if (h->on_device_state_read) {
		src_cb.field_mask |= RMIG_CB_DEVICE_STATE_READ;
		src_cb.device_state_read = harness_device_state_read;
	}
	if (h->on_dst_progress) {
		dst_cb.field_mask |= RMIG_CB_PROGRESS;
		dst_cb.progress = harness_dst_progress;
	}
	if (h->on_device_state_write) {
		dst_cb.field_mask |= RMIG_CB_DEVICE_STATE_WRITE;
		dst_cb.device_state_write = harness_device_state_write;
	}
	h->params.field_mask |= RMIG_PARAM_TIMEOUT_MS | RMIG_PARAM_DIRTY_SOURCE;
	h->params.dirty_source = harness_dirty_source;
	if (!h->params.timeout_ms)
		h->params.timeout_ms = HARNESS_STEP_TIMEOUT_MS;
	if (!(h->params.field_mask & RMIG_PARAM_KEY)) {
		h->params.field_mask |= RMIG_PARAM_KEY;
		h->params.key = HARNESS_KEY;
		h->params.key_len = (uint32_t)strlen(HARNESS_KEY);
	}
	assert_int_equal(rmig_session_create(RMIG_ROLE_SOURCE, &h->src), 0);
	assert_int_equal(rmig_session_create(RMIG_ROLE_DESTINATION, &h->dst), 0);
	assert_int_equal(rmig_session_set_params(h->src, &h->params), 0);
	assert_int_equal(rmig_session_set_params(h->dst, &h->params), 0);
	if (h->dst_params.field_mask)
		assert_int_equal(rmig_session_set_params(h->dst, &h->dst_params), 0);
	assert_int_equal(rmig_session_set_insecure(h->src, h->src_insecure), 0);
	assert_int_equal(rmig_session_set_insecure(h->dst, h->dst_insecure), 0);
	if (!h->peer_timeout_ms)
		h->peer_timeout_ms = HARNESS_PEER_TIMEOUT_MS;
	assert_int_equal(rmig_session_set_peer_timeout(h->src, h->peer_timeout_ms), 0);
	assert_int_equal(rmig_session_set_peer_timeout(h->dst, h->peer_timeout_ms), 0);
	if (h->recovery_window_ms) {
		assert_int_equal(rmig_session_set_recovery_window(h->src, h->recovery_window_ms),
				 0);
		assert_int_equal(rmig_session_set_recovery_window(h->dst, h->recovery_window_ms),
				 0);
	}
	if (h->src_tls.struct_size)
		assert_int_equal(rmig_session_set_tls(h->src, &h->src_tls), 0);
	if (h->dst_tls.struct_size)
		assert_int_equal(rmig_session_set_tls(h->dst, &h->dst_tls), 0);
	assert_int_equal(rmig_session_set_callbacks(h->src, &src_cb, h), 0);
	assert_int_equal(rmig_session_set_callbacks(h->dst, &dst_cb, h), 0);
	assert_int_equal(
		rmig_region_add(h->src, h->src_region_id, h->src_ram, h->src_length, HARNESS_PAGE),
		0);
	assert_int_equal(
		rmig_region_add(h->dst, h->dst_region_id, h->dst_ram, h->dst_length, HARNESS_PAGE),
		0);
	if (h->second_length) {
		assert_int_equal(rmig_region_add(h->src, HARNESS_REGION_ID + 1, h->src_second,
						 h->second_length, HARNESS_PAGE),
				 0);
		assert_int_equal(rmig_region_add(h->dst, HARNESS_REGION_ID + 1, h->dst_second,
						 h->second_length, HARNESS_PAGE),
				 0);
	}
	assert_int_equal(rmig_session_listen(h->dst, h->listen_uri), 0);
	assert_int_equal(rmig_session_listen_uri(h->dst, uri, sizeof(uri)), 0);
	assert_int_equal(rmig_session_start(h->dst), 0);
	if (h->connect_via) {
		char dst_uri[sizeof(uri)];

		snprintf(dst_uri, sizeof(dst_uri), "%s", uri);
		h->connect_via(h, dst_uri, uri, sizeof(uri));
	}
	if (!strcmp(h->transport, "rdma-copy") && !strchr(uri, '?'))
		strncat(uri, "?reg=copy", sizeof(uri) - strlen(uri) - 1);
	h->connect_ret = rmig_session_connect(h->src, uri);
	if (h->connect_ret)
		print_message("source: connect: %d %s\n", h->connect_ret, rmig_last_error(h->src));
	if (!h->connect_may_fail)
		assert_int_equal(h->connect_ret, 0);
}

void harness_run(struct harness *h)
{
	h->src_ret = rmig_session_run(h->src);
	if (h->src_ret)
		print_message("source: %d %s\n", h->src_ret, rmig_last_error(h->src));
	h->dst_ret = rmig_session_wait(h->dst, 60000);
	if (h->dst_ret)
		print_message("destination: %d %s\n", h->dst_ret, rmig_last_error(h->dst));
	harness_writer_stop(h);
}

static uint64_t harness_next_random(uint64_t *state)
{
	*state ^= *state << 13;
	*state ^= *state >> 7;
	*state ^= *state << 17;
	return *state;
}

static int harness_dirty_log_sync(struct harness *h, uint32_t region_id, uint64_t *bitmap,
				  size_t npages)
{
	struct harness_dirty_log *log = h->user;
	struct rmig_stats st = {.struct_size = sizeof(st)};
	uint64_t pages;

	(void)region_id;
	/* Page data the source has handed to the wire so far. */
	if (rmig_session_stats(h->src, &st))
		return -EIO;
	pages = (st.data_bytes - log->sent_at_sync) / HARNESS_PAGE * log->per_page_sent;
	log->sent_at_sync = st.data_bytes;
	for (uint64_t i = 0; !atomic_load(&h->src_paused) && i < pages; i++) {
		size_t page = (size_t)(harness_next_random(&log->rng) % npages);

		harness_page_write(h, page, log->rng);
		log->bits[page / 64] |= 1ull << (page % 64);
		log->written++;
	}
	for (size_t w = 0; w < (npages + 63) / 64; w++) {
		bitmap[w] = log->bits[w];
		log->bits[w] = 0;
	}
	return 0;
}

void harness_dirty_log_outpace(struct harness *h, struct harness_dirty_log *log,
			       unsigned per_page_sent)
{
	memset(log, 0, sizeof(*log));
	log->bits = calloc((harness_pages(h) + 63) / 64, sizeof(uint64_t));
	assert_non_null(log->bits);
	log->rng = 88172645463325252ull;
	log->per_page_sent = per_page_sent;
	h->user = log;
	h->on_dirty_sync = harness_dirty_log_sync;
}

void harness_dirty_log_free(struct harness_dirty_log *log)
{
	free(log->bits);
	log->bits = NULL;
}

uint8_t *harness_send_counts(struct harness *h)
{
	size_t npages = harness_pages(h);

	free(h->send_counts);
	h->send_counts = calloc(npages, 1);
	assert_non_null(h->send_counts);
	assert_int_equal(rmig_region_send_counts(h->src, h->src_region_id, h->send_counts, npages),
			 (int)npages);
	return h->send_counts;
}

void harness_fini(struct harness *h)
{
	free(h->send_counts);
	h->send_counts = NULL;
	harness_writer_stop(h);
	rmig_session_destroy(h->src);
	rmig_session_destroy(h->dst);
	munmap(h->src_ram, h->src_length);
	munmap(h->dst_ram, h->dst_length);
}
