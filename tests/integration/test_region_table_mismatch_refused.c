/* SPDX-License-Identifier: MIT */
/* The destination refuses a source whose region table differs from its own: an unknown region
 * id, or a region of another length. Both sides fail with a message naming the region; the VM
 * is never paused and never resumed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "integration/engine_harness.h"

static void run_refused(struct harness *h, int expected, const char *message)
{
	harness_sessions(h);
	harness_run(h);
	assert_int_equal(h->src_ret, expected);
	assert_int_equal(h->dst_ret, expected);
	assert_non_null(strstr(rmig_last_error(h->src), message));
	assert_non_null(strstr(rmig_last_error(h->dst), message));
	assert_false(atomic_load(&h->src_paused));
	assert_false(atomic_load(&h->dst_resumed));
}

static void test_unknown_region_refused(void **state)
{
	struct harness h;

	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	harness_init(&h, harness_transport, 16u << 20, 0);
	h.src_region_id = 7;
	h.dst_region_id = 8;
	run_refused(&h, -ENOENT, "region 7 (16777216 bytes) of the source is unknown");
	harness_fini(&h);
}

static void test_region_length_mismatch_refused(void **state)
{
	struct harness h;

	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	harness_init(&h, harness_transport, 16u << 20, 0);
	h.dst_length = 8u << 20; /* the destination's guest is smaller */
	run_refused(&h, -EINVAL, "region 1 length mismatch: 16777216 bytes on the source, 8388608");
	harness_fini(&h);
}

HARNESS_MAIN(cmocka_unit_test(test_unknown_region_refused),
	     cmocka_unit_test(test_region_length_mismatch_refused))
