/* SPDX-License-Identifier: MIT */
/* A post-copy migration that fails after the destination resumed the VM has lost it: the source
 * cannot take it back and the destination lacks pages. Both ends must say so in their status
 * (RMIG_STATUS_LOST, not the RMIG_STATUS_FAILED after which the source VM runs again), so a
 * toolstack can tell the two apart without parsing messages. Here the destination's resume_vm
 * holds its thread until the source, which sent RESUME and then heard nothing within its
 * timeout, has given up; the destination then finds the source gone during the tail. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>
#include <time.h>

#include "integration/engine_harness.h"

#define RAM (8u << 20)

static uint32_t status_of(rmig_session_t *s)
{
	struct rmig_stats st = {.struct_size = sizeof(st)};

	assert_int_equal(rmig_session_stats(s, &st), 0);
	return st.status;
}

/* The destination's resume_vm: wait for the source's run to end (its status leaves "device"). */
static void hold_until_source_gave_up(struct harness *h)
{
	struct timespec tick = {.tv_nsec = 1000000};
	time_t deadline = time(NULL) + 120;

	while (status_of(h->src) != RMIG_STATUS_LOST && status_of(h->src) != RMIG_STATUS_FAILED &&
	       time(NULL) < deadline)
		nanosleep(&tick, NULL);
}

static void test_postcopy_failure_after_resume_reports_lost(void **state)
{
	struct rmig_stats src = {.struct_size = sizeof(src)};
	struct rmig_stats dst = {.struct_size = sizeof(dst)};
	struct harness h;

	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	harness_init(&h, harness_transport, RAM, 0);
	h.on_dst_resume = hold_until_source_gave_up;
	h.params.field_mask = RMIG_PARAM_METHOD | RMIG_PARAM_TIMEOUT_MS;
	h.params.method = RMIG_METHOD_POSTCOPY;
	h.params.timeout_ms = 3000; /* the source's wait for the resume acknowledgement */
	h.dst_params.field_mask = RMIG_PARAM_TIMEOUT_MS;
	h.dst_params.timeout_ms = 20000;
	harness_sessions(&h);
	harness_run(&h);

	assert_true(h.src_ret < 0);
	assert_true(h.dst_ret < 0);
	assert_int_equal(rmig_session_stats(h.src, &src), 0);
	assert_int_equal(rmig_session_stats(h.dst, &dst), 0);
	assert_int_equal(src.status, RMIG_STATUS_LOST);
	assert_int_equal(dst.status, RMIG_STATUS_LOST);
	assert_string_equal(rmig_status_name(src.status), "lost");
	assert_non_null(strstr(rmig_last_error(h.src), "lost"));
	/* the source never ran the VM again: no resume_vm there */
	assert_int_equal(atomic_load(&h.src_resumed), 0);
	assert_int_equal(atomic_load(&h.dst_resumed), 1);
	/* the guest sat paused from the pause until the source gave up */
	assert_true(src.downtime_ms >= 1000);
	harness_fini(&h);
}

HARNESS_MAIN(cmocka_unit_test(test_postcopy_failure_after_resume_reports_lost))
