/* SPDX-License-Identifier: MIT */
/* The dirty source interface itself: bad geometry and a hypervisor kind without a callback are
 * refused, a source syncs only while started, stop is idempotent, kinds have names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "engine/bitmap.h"
#include "engine/dirty.h"

#define PAGE 4096u
#define NPAGES 64u

static void *map_pages(void)
{
	void *mem = mmap(NULL, NPAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			 -1, 0);

	assert_true(mem != MAP_FAILED);
	return mem;
}

static void test_dirty_source_rejects_bad_geometry(void **state)
{
	unsigned char *mem = map_pages();
	struct dirty_source_config good = {.kind = DIRTY_KIND_HASH,
					   .region_id = 1,
					   .addr = mem,
					   .length = NPAGES * PAGE,
					   .page_size = PAGE};
	struct dirty_source_config bad;
	struct dirty_source *source = NULL;

	(void)state;
	bad = good;
	bad.page_size = 3000; /* not a power of two */
	assert_int_equal(dirty_source_create(&bad, &source), -EINVAL);
	bad = good;
	bad.length = NPAGES * PAGE - 1; /* not a whole number of pages */
	assert_int_equal(dirty_source_create(&bad, &source), -EINVAL);
	bad = good;
	bad.addr = mem + 512; /* not page aligned */
	assert_int_equal(dirty_source_create(&bad, &source), -EINVAL);
	bad = good;
	bad.length = 0;
	assert_int_equal(dirty_source_create(&bad, &source), -EINVAL);
	bad = good;
	bad.kind = (enum dirty_kind)17;
	assert_int_equal(dirty_source_create(&bad, &source), -EINVAL);
	bad = good;
	bad.kind = DIRTY_KIND_HYPERVISOR; /* no callback */
	assert_int_equal(dirty_source_create(&bad, &source), -EINVAL);
	assert_null(source);
	munmap(mem, NPAGES * PAGE);
}

static void test_dirty_source_refuses_memory_that_is_not_mapped(void **state)
{
	unsigned char *mem = map_pages();
	struct dirty_source_config config = {.kind = DIRTY_KIND_UFFD_ASYNC,
					     .region_id = 1,
					     .addr = mem,
					     .length = NPAGES * PAGE,
					     .page_size = PAGE};
	struct dirty_source *source = NULL;

	(void)state;
	assert_int_equal(munmap(mem + 8 * PAGE, PAGE), 0); /* a hole */
	assert_int_equal(dirty_source_create(&config, &source), -EFAULT);
	config.kind = DIRTY_KIND_HASH;
	assert_int_equal(dirty_source_create(&config, &source), -EFAULT);
	assert_null(source);
	munmap(mem, NPAGES * PAGE);
}

static void test_dirty_source_syncs_only_while_started(void **state)
{
	unsigned char *mem = map_pages();
	struct dirty_source_config config = {.kind = DIRTY_KIND_AUTO,
					     .region_id = 1,
					     .addr = mem,
					     .length = NPAGES * PAGE,
					     .page_size = PAGE};
	uint64_t bitmap[NPAGES / 64] = {0};
	struct dirty_source *source;

	(void)state;
	assert_int_equal(dirty_source_create(&config, &source), 0);
	assert_int_equal(dirty_source_sync(source, bitmap), -EINVAL);
	assert_int_equal(dirty_source_start(source), 0);
	assert_int_equal(dirty_source_start(source), -EINVAL);
	mem[3 * PAGE] = 1;
	assert_int_equal(dirty_source_sync(source, bitmap), 1);
	assert_int_equal(dirty_source_stop(source), 0);
	assert_int_equal(dirty_source_stop(source), 0);
	assert_int_equal(dirty_source_sync(source, bitmap), -EINVAL);
	assert_int_equal(dirty_source_start(source), -EINVAL);
	dirty_source_destroy(source);
	dirty_source_destroy(NULL);
	munmap(mem, NPAGES * PAGE);
}

static void test_dirty_kind_names(void **state)
{
	(void)state;
	assert_string_equal(dirty_kind_name(DIRTY_KIND_AUTO), "auto");
	assert_string_equal(dirty_kind_name(DIRTY_KIND_HYPERVISOR), "hypervisor");
	assert_string_equal(dirty_kind_name(DIRTY_KIND_UFFD_ASYNC), "uffd-async");
	assert_string_equal(dirty_kind_name(DIRTY_KIND_UFFD_SYNC), "uffd-sync");
	assert_string_equal(dirty_kind_name(DIRTY_KIND_HASH), "hash");
	assert_string_equal(dirty_kind_name((enum dirty_kind)42), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dirty_source_rejects_bad_geometry),
		cmocka_unit_test(test_dirty_source_refuses_memory_that_is_not_mapped),
		cmocka_unit_test(test_dirty_source_syncs_only_while_started),
		cmocka_unit_test(test_dirty_kind_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
