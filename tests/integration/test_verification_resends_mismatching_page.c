/* A destination page that differs from the source at switchover (here: overwritten while the
 * VM is paused, after it had arrived) is found by the hash comparison, resent and counted;
 * the VM resumes on identical memory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "integration/engine_harness.h"

#define CORRUPTED 777u

static void corrupt_destination_page(struct harness *h)
{
	memset(h->dst_ram + CORRUPTED * HARNESS_PAGE, 0x5a, HARNESS_PAGE);
}

static void test_verification_resends_mismatching_page(void **state)
{
	struct rmig_stats st = {.struct_size = sizeof(st)};
	struct rmig_stats dst_st = {.struct_size = sizeof(dst_st)};
	struct harness h;

	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	harness_init(&h, harness_transport, 32u << 20, 0);
	h.on_pause = corrupt_destination_page;
	harness_sessions(&h);
	harness_run(&h);

	assert_int_equal(h.src_ret, 0);
	assert_int_equal(h.dst_ret, 0);
	assert_int_equal(rmig_session_stats(h.src, &st), 0);
	assert_int_equal(st.pages_verified, harness_pages(&h));
	assert_int_equal(st.pages_mismatched, 1);
	assert_int_equal(st.pages_sent_multiple, 1);
	assert_int_equal(rmig_session_stats(h.dst, &dst_st), 0);
	assert_int_equal(dst_st.pages_mismatched, 1);
	assert_memory_equal(h.src_ram, h.dst_ram, h.src_length);
	assert_true(atomic_load(&h.dst_resumed));
	harness_fini(&h);
}

HARNESS_MAIN(cmocka_unit_test(test_verification_resends_mismatching_page))
