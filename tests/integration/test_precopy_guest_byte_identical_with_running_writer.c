/* SPDX-License-Identifier: MIT */
/* A guest whose writer keeps running during the migration ends up byte-identical on the
 * destination at switchover, and resumes there (not on the source). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "integration/engine_harness.h"

static void test_precopy_guest_byte_identical_with_running_writer(void **state)
{
	struct rmig_stats st = {.struct_size = sizeof(st)};
	struct harness h;

	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	harness_init(&h, harness_transport, 128u << 20, 5);
	harness_sessions(&h);
	harness_writer_start(&h);
	harness_run(&h);

	assert_int_equal(h.src_ret, 0);
	assert_int_equal(h.dst_ret, 0);
	assert_true(atomic_load(&h.writes) > 0);
	assert_true(atomic_load(&h.src_paused));
	assert_false(atomic_load(&h.src_resumed));
	assert_true(atomic_load(&h.dst_resumed));
	assert_memory_equal(h.src_ram, h.dst_ram, h.src_length);
	assert_int_equal(rmig_session_stats(h.src, &st), 0);
	assert_int_equal(st.status, RMIG_STATUS_COMPLETED);
	assert_true(st.rounds >= 1);
	if (harness_dirty_source != RMIG_DIRTY_AUTO)
		assert_int_equal(st.dirty_source, harness_dirty_source);
	else
		assert_int_not_equal(st.dirty_source, RMIG_DIRTY_AUTO);
	assert_int_equal(st.pages_verified, harness_pages(&h));
	/* The dirty log, not the verification safety net, carried the changes. */
	assert_int_equal(st.pages_mismatched, 0);
	harness_fini(&h);
}

HARNESS_MAIN(cmocka_unit_test(test_precopy_guest_byte_identical_with_running_writer))
