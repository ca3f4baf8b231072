/* SPDX-License-Identifier: MIT */
/* The peer reaches guest RAM only while it needs to. Pre-copy: the destination's regions take
 * the source's writes while rounds run, and the write access is gone when resume_vm runs (rdma:
 * from the MR, so the source's old rkey no longer works). Post-copy: the source's RAM cannot be
 * read before the resume (the destination's pull is refused), and can from the resume on (a
 * fault is served by a pull of the source's bytes); the destination's guest RAM is out of the
 * source's reach from the handshake on, as no page of it comes before the resume. The regions are looked at through each
 * session's own connection. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "engine/session.h"
#include "integration/engine_harness.h"
#include "transport/transport.h"

#define RAM (16u << 20)
#define PULLED_PAGE 17u

struct seen {
	int paused;
	int dst_region_at_pause;    /* transport_region_find() of the guest region, source paused */
	unsigned dst_access_paused; /* and its access */
	unsigned src_access_paused; /* the source's guest region, source paused */
	int pull_paused;	    /* the destination's pull of the source's RAM then */
	int resumed;
	int dst_region_at_resume;    /* transport_region_find() of the guest region at resume */
	unsigned dst_access_resumed; /* and its access */
	unsigned src_access_resumed;
	int pull_resumed;
	unsigned char pulled[HARNESS_PAGE];
	unsigned char expected[HARNESS_PAGE];
};

static unsigned local_access(rmig_session_t *s)
{
	struct transport_region region;

	assert_non_null(s->conn);
	assert_int_equal(transport_region_find(s->conn, 0, HARNESS_REGION_ID, &region), 0);
	return region.access;
}

static void at_pause(struct harness *h)
{
	struct seen *seen = h->user;

	struct transport_region region;

	seen->paused = 1;
	seen->dst_region_at_pause =
		transport_region_find(h->dst->conn, 0, HARNESS_REGION_ID, &region);
	seen->dst_access_paused = seen->dst_region_at_pause ? 0 : region.access;
	seen->src_access_paused = local_access(h->src);
	seen->pull_paused = transport_read(h->dst->conn, HARNESS_REGION_ID, 0, seen->pulled,
					   HARNESS_PAGE, 10000);
}

static void at_dst_resume(struct harness *h)
{
	struct seen *seen = h->user;
	struct transport_region region;

	seen->resumed = 1;
	seen->dst_region_at_resume =
		transport_region_find(h->dst->conn, 0, HARNESS_REGION_ID, &region);
	seen->dst_access_resumed = seen->dst_region_at_resume ? 0 : region.access;
	seen->src_access_resumed = local_access(h->src); /* the source waits for RESUMED */
	memcpy(seen->expected, h->src_ram + (size_t)PULLED_PAGE * HARNESS_PAGE, HARNESS_PAGE);
	memset(seen->pulled, 0, HARNESS_PAGE);
	seen->pull_resumed = transport_read(h->dst->conn, HARNESS_REGION_ID,
					    (uint64_t)PULLED_PAGE * HARNESS_PAGE, seen->pulled,
					    HARNESS_PAGE, 10000);
}

static void migrate(struct harness *h, struct seen *seen, uint32_t method)
{
	memset(seen, 0, sizeof(*seen));
	harness_init(h, harness_transport, RAM, 0);
	harness_page_write(h, PULLED_PAGE, 0x5c0bedull);
	h->user = seen;
	h->on_pause = at_pause;
	h->on_dst_resume = at_dst_resume;
	h->params.field_mask = RMIG_PARAM_METHOD;
	h->params.method = method;
	harness_sessions(h);
	harness_run(h);
	assert_int_equal(h->src_ret, 0);
	assert_int_equal(h->dst_ret, 0);
	assert_true(seen->paused);
	assert_true(seen->resumed);
	assert_memory_equal(h->src_ram, h->dst_ram, h->src_length);
}

static void test_precopy_destination_revokes_write_before_resume(void **state)
{
	static struct seen seen;
	struct harness h;

	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	migrate(&h, &seen, RMIG_METHOD_PRECOPY);
	/* The final round is still to come at the pause: writable then. */
	assert_int_equal(seen.dst_region_at_pause, 0);
	assert_int_equal(seen.dst_access_paused, TRANSPORT_ACCESS_REMOTE_WRITE);
	/* Registered still (for local use), but no longer writable by the source. */
	assert_int_equal(seen.dst_region_at_resume, 0);
	assert_int_equal(seen.dst_access_resumed, TRANSPORT_ACCESS_LOCAL);
	/* Pre-copy never lets the destination read the source. */
	assert_int_equal(seen.src_access_paused, TRANSPORT_ACCESS_LOCAL);
	assert_int_equal(seen.src_access_resumed, TRANSPORT_ACCESS_LOCAL);
	assert_int_equal(seen.pull_paused, -ENOENT);
	harness_fini(&h);
}

static void test_postcopy_source_readable_only_from_resume(void **state)
{
	static struct seen seen;
	struct harness h;

	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	migrate(&h, &seen, RMIG_METHOD_POSTCOPY);
	assert_int_equal(seen.src_access_paused, TRANSPORT_ACCESS_LOCAL);
	assert_int_equal(seen.pull_paused, -ENOENT);
	assert_int_equal(seen.src_access_resumed, TRANSPORT_ACCESS_REMOTE_READ);
	assert_int_equal(seen.pull_resumed, 0);
	assert_memory_equal(seen.pulled, seen.expected, HARNESS_PAGE);
	/* Every page comes after the resume: the guest RAM here was out of the source's reach
	 * before the pause already. */
	assert_int_equal(seen.dst_region_at_pause, -ENOENT);
	assert_int_equal(seen.dst_region_at_resume, -ENOENT);
	harness_fini(&h);
}

HARNESS_MAIN(cmocka_unit_test(test_precopy_destination_revokes_write_before_resume),
	     cmocka_unit_test(test_postcopy_source_readable_only_from_resume))
