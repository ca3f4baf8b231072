/* SPDX-License-Identifier: MIT */
/* Dirty tracking is chosen per region: with RMIG_DIRTY_AUTO a private anonymous region is
 * tracked by userfaultfd, while a MAP_SHARED memfd region (writes through another mapping would
 * be invisible to userfaultfd) is hashed. rmig_region_dirty_source() must report each region's
 * own kind, where the stats' single dirty_source names only the first region; the migration of
 * both must still end byte-identical. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "integration/engine_harness.h"

#define RAM (4u << 20)

static unsigned char *shared_memfd(size_t length)
{
	int fd = memfd_create("rmig-test-region", 0);
	void *p;

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)length), 0);
	p = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	assert_true(p != MAP_FAILED);
	return p;
}

static void test_dirty_source_reported_per_region(void **state)
{
	struct rmig_stats st = {.struct_size = sizeof(st)};
	struct harness h;
	int first, second;

	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	if (harness_dirty_source != RMIG_DIRTY_AUTO)
		skip();
	harness_init(&h, harness_transport, RAM, 0);
	h.second_length = RAM;
	h.src_second = shared_memfd(RAM);
	h.dst_second = shared_memfd(RAM);
	memset(h.src_second, 0x5c, RAM);
	harness_sessions(&h);
	assert_int_equal(rmig_region_dirty_source(h.src, HARNESS_REGION_ID), RMIG_DIRTY_AUTO);
	harness_run(&h);

	assert_int_equal(h.src_ret, 0);
	assert_int_equal(h.dst_ret, 0);
	first = rmig_region_dirty_source(h.src, HARNESS_REGION_ID);
	second = rmig_region_dirty_source(h.src, HARNESS_REGION_ID + 1);
	print_message("region 1 (private): %d, region 2 (memfd, shared): %d\n", first, second);
	assert_true(first == RMIG_DIRTY_UFFD_ASYNC || first == RMIG_DIRTY_UFFD_SYNC ||
		    first == RMIG_DIRTY_HASH);
	assert_int_equal(second, RMIG_DIRTY_HASH);
	assert_int_equal(rmig_session_stats(h.src, &st), 0);
	assert_int_equal(st.dirty_source, (uint32_t)first);
	assert_int_equal(rmig_region_dirty_source(h.src, 77), -ENOENT);
	assert_int_equal(rmig_region_dirty_source(h.dst, HARNESS_REGION_ID), -EINVAL);
	assert_memory_equal(h.src_ram, h.dst_ram, RAM);
	assert_memory_equal(h.src_second, h.dst_second, RAM);
	harness_fini(&h);
	munmap(h.src_second, RAM);
	munmap(h.dst_second, RAM);
}

HARNESS_MAIN(cmocka_unit_test(test_dirty_source_reported_per_region))
