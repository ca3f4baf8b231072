/* SPDX-License-Identifier: MIT */
/* auto weighs post-copy by pulls the destination times at the handshake and during the bulk
 * round, yet the source's guest RAM is no more readable before the switchover than for any other
 * method: the pulls read a buffer of the source's that holds no guest data, announced like a
 * region and withdrawn once auto decided. Every registration, grant, withdrawal and read the
 * engine asks of the transport is recorded here (the linker's --wrap, so it holds for every
 * transport), with whether the guest still ran at the source, or had resumed at the
 * destination, when it was asked. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "integration/engine_harness.h"
#include "transport/transport.h"

#define RAM (16u << 20)
#define DIRTY_PER_PAGE_SENT 2u

struct seen {
	pthread_mutex_t lock;
	/* guest regions made remote-readable while the guest ran at the source / once paused */
	unsigned guest_readable_running;
	unsigned guest_readable_paused;
	/* reads the destination asked for of a guest region before its resume_vm */
	unsigned guest_reads_before_resume;
	/* the other region the source made remote-readable (the pulls' target) */
	int target_seen;
	uint32_t target_id;
	unsigned target_reads;
	unsigned target_reads_failed;
	int target_withdrawn_running; /* withdrawn while the guest still ran at the source */
};

static struct seen seen = {.lock = PTHREAD_MUTEX_INITIALIZER};
static struct harness *watched;

static int guest_id(uint32_t id)
{
	return id == HARNESS_REGION_ID || id == HARNESS_REGION_ID + 1;
}

static void seen_readable(uint32_t id, unsigned access)
{
	if (!watched || !(access & TRANSPORT_ACCESS_REMOTE_READ))
		return;
	pthread_mutex_lock(&seen.lock);
	if (!guest_id(id)) {
		seen.target_seen = 1;
		seen.target_id = id;
	} else if (atomic_load(&watched->src_paused))
		seen.guest_readable_paused++;
	else
		seen.guest_readable_running++;
	pthread_mutex_unlock(&seen.lock);
}

int __real_transport_region_register(struct transport_conn *conn, uint32_t id, void *addr,
				     size_t len, unsigned access);
int __wrap_transport_region_register(struct transport_conn *conn, uint32_t id, void *addr,
				     size_t len, unsigned access);
int __real_transport_region_grant(struct transport_conn *conn, uint32_t id, unsigned access);
int __wrap_transport_region_grant(struct transport_conn *conn, uint32_t id, unsigned access);
int __real_transport_region_deregister(struct transport_conn *conn, uint32_t id);
int __wrap_transport_region_deregister(struct transport_conn *conn, uint32_t id);
int __real_transport_read(struct transport_conn *conn, uint32_t region_id, uint64_t offset,
			  void *dst, size_t len, int timeout_ms);
int __wrap_transport_read(struct transport_conn *conn, uint32_t region_id, uint64_t offset,
			  void *dst, size_t len, int timeout_ms);

int __wrap_transport_region_register(struct transport_conn *conn, uint32_t id, void *addr,
				     size_t len, unsigned access)
{
	/* Recorded before the peer can use it. */
	seen_readable(id, access);
	return __real_transport_region_register(conn, id, addr, len, access);
}

int __wrap_transport_region_grant(struct transport_conn *conn, uint32_t id, unsigned access)
{
	seen_readable(id, access);
	return __real_transport_region_grant(conn, id, access);
}

int __wrap_transport_region_deregister(struct transport_conn *conn, uint32_t id)
{
	int ret = __real_transport_region_deregister(conn, id);

	pthread_mutex_lock(&seen.lock);
	if (watched && !ret && seen.target_seen && id == seen.target_id &&
	    !atomic_load(&watched->src_paused))
		seen.target_withdrawn_running = 1;
	pthread_mutex_unlock(&seen.lock);
	return ret;
}

int __wrap_transport_read(struct transport_conn *conn, uint32_t region_id, uint64_t offset,
			  void *dst, size_t len, int timeout_ms)
{
	int ret, resumed = watched && atomic_load(&watched->dst_resumed);

	ret = __real_transport_read(conn, region_id, offset, dst, len, timeout_ms);
	pthread_mutex_lock(&seen.lock);
	if (guest_id(region_id) && !resumed)
		seen.guest_reads_before_resume++;
	if (seen.target_seen && region_id == seen.target_id) {
		seen.target_reads++;
		if (ret)
			seen.target_reads_failed++;
	}
	pthread_mutex_unlock(&seen.lock);
	return ret;
}

static void watch(struct harness *h)
{
	pthread_mutex_lock(&seen.lock);
	seen.guest_readable_running = 0;
	seen.guest_readable_paused = 0;
	seen.guest_reads_before_resume = 0;
	seen.target_seen = 0;
	seen.target_id = 0;
	seen.target_reads = 0;
	seen.target_reads_failed = 0;
	seen.target_withdrawn_running = 0;
	watched = h;
	pthread_mutex_unlock(&seen.lock);
}

static void unwatch(void)
{
	pthread_mutex_lock(&seen.lock);
	watched = NULL;
	pthread_mutex_unlock(&seen.lock);
}

/* What holds whatever auto chose: no guest byte readable while the guest ran, the destination's
 * timed pulls all of the other buffer, which was gone before the pause, and auto weighed the
 * faults by them. */
static void assert_pulls_timed_on_no_guest_data(struct harness *h, struct rmig_stats *st,
						struct seen *got)
{
	assert_int_equal(h->src_ret, 0);
	assert_int_equal(h->dst_ret, 0);
	assert_int_equal(rmig_session_stats(h->src, st), 0);
	print_message("%s\n", rmig_session_method_reason(h->src));
	/* A copy: a failed assert must not leave the lock held for the next test. */
	pthread_mutex_lock(&seen.lock);
	*got = seen;
	pthread_mutex_unlock(&seen.lock);
	print_message("guest regions made readable: %u while running, %u paused; guest reads "
		      "before resume %u; pull target %u: %u reads (%u failed), withdrawn while "
		      "running: %d\n",
		      got->guest_readable_running, got->guest_readable_paused,
		      got->guest_reads_before_resume, got->target_id, got->target_reads,
		      got->target_reads_failed, got->target_withdrawn_running);
	assert_int_equal(got->guest_readable_running, 0);
	assert_int_equal(got->guest_reads_before_resume, 0);
	assert_true(got->target_seen);
	assert_true(got->target_reads > 0);
	assert_int_equal(got->target_reads_failed, 0);
	assert_true(got->target_withdrawn_running);
	assert_int_equal(st->method, RMIG_METHOD_AUTO);
	assert_true(st->auto_fault_latency_us > 0);
	/* "pulls timed at ..." or, when none came under load in time, "a pull timed at ..." */
	assert_non_null(strstr(rmig_session_method_reason(h->src), " timed at "));
	assert_memory_equal(h->src_ram, h->dst_ram, h->src_length);
}

static void test_auto_choosing_precopy_never_exposes_guest_ram(void **state)
{
	struct rmig_stats st = {.struct_size = sizeof(st)};
	struct seen got;
	struct harness h;

	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	harness_init(&h, harness_transport, RAM, 7);
	h.params.field_mask = RMIG_PARAM_METHOD;
	h.params.method = RMIG_METHOD_AUTO;
	watch(&h);
	harness_sessions(&h);
	harness_run(&h);
	unwatch();

	assert_pulls_timed_on_no_guest_data(&h, &st, &got);
	assert_int_equal(st.method_used, RMIG_METHOD_PRECOPY);
	/* pre-copy never lets the destination read the source's RAM */
	assert_int_equal(got.guest_readable_paused, 0);
	harness_fini(&h);
}

static void test_auto_choosing_postcopy_exposes_guest_ram_only_at_switchover(void **state)
{
	struct rmig_stats st = {.struct_size = sizeof(st)};
	struct harness_dirty_log log;
	struct seen got;
	struct harness h;

	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	harness_init(&h, harness_transport, RAM, 0);
	/* a guest that outpaces the link: auto picks the post-copy family */
	harness_dirty_log_outpace(&h, &log, DIRTY_PER_PAGE_SENT);
	h.params.field_mask = RMIG_PARAM_METHOD | RMIG_PARAM_BANDWIDTH_LIMIT;
	h.params.method = RMIG_METHOD_AUTO;
	/* slow enough that the bulk round is still running when auto has its samples */
	h.params.bandwidth_limit = 8u << 20;
	watch(&h);
	harness_sessions(&h);
	harness_run(&h);
	unwatch();

	assert_pulls_timed_on_no_guest_data(&h, &st, &got);
	assert_true(st.method_used == RMIG_METHOD_POSTCOPY || st.method_used == RMIG_METHOD_TSMC ||
		    st.method_used == RMIG_METHOD_HYBRID);
	/* readable from the switchover on, for the faults after the resume */
	assert_true(got.guest_readable_paused > 0);
	harness_fini(&h);
	harness_dirty_log_free(&log);
}

HARNESS_MAIN(cmocka_unit_test(test_auto_choosing_precopy_never_exposes_guest_ram),
	     cmocka_unit_test(test_auto_choosing_postcopy_exposes_guest_ram_only_at_switchover))
