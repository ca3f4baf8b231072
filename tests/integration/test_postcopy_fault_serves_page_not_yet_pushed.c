/* SPDX-License-Identifier: MIT */
/* Post-copy resumes the VM on the destination before any page is there. The guest's first
 * access, made in resume_vm before the background push has asked for anything, faults; the page
 * is pulled from the source on demand and the guest reads the source's bytes. The push is slowed
 * down (bandwidth cap) so that it cannot have come first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "integration/engine_harness.h"

#define RAM (32u << 20)
#define TOUCHED_PAGE ((RAM / HARNESS_PAGE) - 3u) /* the push goes from the start */

struct guest_read {
	unsigned char seen[HARNESS_PAGE];
	unsigned char expected[HARNESS_PAGE];
	int done;
};

static void guest_reads_a_page(struct harness *h)
{
	struct guest_read *g = h->user;

	/* The source is paused: its copy is what the destination must show. */
	memcpy(g->expected, h->src_ram + (size_t)TOUCHED_PAGE * HARNESS_PAGE, HARNESS_PAGE);
	memcpy(g->seen, h->dst_ram + (size_t)TOUCHED_PAGE * HARNESS_PAGE, HARNESS_PAGE);
	g->done = 1;
}

static void test_postcopy_fault_serves_page_not_yet_pushed(void **state)
{
	static struct guest_read g;
	struct rmig_stats dst = {.struct_size = sizeof(dst)};
	struct rmig_stats src = {.struct_size = sizeof(src)};
	struct harness h;

	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	memset(&g, 0, sizeof(g));
	harness_init(&h, harness_transport, RAM, 0);
	harness_page_write(&h, TOUCHED_PAGE, 0x7e57ull);
	h.user = &g;
	h.on_dst_resume = guest_reads_a_page;
	h.params.field_mask = RMIG_PARAM_METHOD | RMIG_PARAM_BANDWIDTH_LIMIT;
	h.params.method = RMIG_METHOD_POSTCOPY;
	h.params.bandwidth_limit = 16u << 20; /* two seconds for the push of 32 MiB */
	harness_sessions(&h);
	harness_run(&h);

	assert_int_equal(h.src_ret, 0);
	assert_int_equal(h.dst_ret, 0);
	assert_true(g.done);
	assert_memory_equal(g.seen, g.expected, HARNESS_PAGE);
	assert_int_equal(rmig_session_stats(h.dst, &dst), 0);
	assert_int_equal(rmig_session_stats(h.src, &src), 0);
	assert_true(dst.postcopy_faults >= 1);
	assert_true(dst.postcopy_pages_fetched >= 1);
	assert_true(dst.postcopy_stall_us > 0);
	assert_int_equal(dst.postcopy_pages, harness_pages(&h));
	/* Both ends agree on who carried what; every page crossed exactly once. */
	assert_int_equal(src.postcopy_pages_fetched, dst.postcopy_pages_fetched);
	assert_int_equal(src.postcopy_faults, dst.postcopy_faults);
	assert_int_equal(src.pages_sent_max, 1);
	assert_int_equal(src.pages_sent_histogram[0], harness_pages(&h));
	assert_memory_equal(h.src_ram, h.dst_ram, h.src_length);
	harness_fini(&h);
}

HARNESS_MAIN(cmocka_unit_test(test_postcopy_fault_serves_page_not_yet_pushed))
