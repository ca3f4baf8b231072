/* SPDX-License-Identifier: MIT */
/* The hypervisor dirty source: start makes the first call and drops what it reports (writes
 * from before the migration); each sync calls the callback with the region id, npages and a
 * zeroed bitmap, ORs what it sets into the caller's bitmap, drops bits past npages and passes
 * the callback's error on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine/bitmap.h"
#include "engine/dirty.h"

#define PAGE 4096u
#define NPAGES 100u /* the last bitmap word is partial */

struct hypervisor {
	int calls;
	uint32_t region_id;
	size_t npages;
	int bitmap_was_zero;
	int error;
	const size_t *pages; /* what the next call reports */
	size_t npages_set;
	int set_past_end;
};

static int hypervisor_sync(void *opaque, uint32_t region_id, uint64_t *bitmap, size_t npages)
{
	struct hypervisor *h = opaque;

	h->calls++;
	h->region_id = region_id;
	h->npages = npages;
	h->bitmap_was_zero = bitmap_empty(bitmap, npages) && (bitmap[1] >> 36) == 0;
	if (h->error)
		return h->error;
	for (size_t i = 0; i < h->npages_set; i++)
		bitmap_set(bitmap, h->pages[i]);
	if (h->set_past_end)
		bitmap[bitmap_words(npages) - 1] |= ~UINT64_C(0) << (npages % 64);
	return 0;
}

static struct dirty_source_config hypervisor_config(struct hypervisor *h, void *mem)
{
	return (struct dirty_source_config){.kind = DIRTY_KIND_HYPERVISOR,
					    .region_id = 9,
					    .addr = mem,
					    .length = NPAGES * PAGE,
					    .page_size = PAGE,
					    .hypervisor_sync = hypervisor_sync,
					    .hypervisor_opaque = h};
}

static struct dirty_source *hypervisor_source(struct hypervisor *h, void *mem)
{
	struct dirty_source_config config = hypervisor_config(h, mem);
	/* what the log held before the migration: every page written since boot */
	static const size_t since_boot[] = {0, 1, 2, 5, 50, 63, 64, 98, 99};
	const size_t *pages = h->pages;
	size_t npages_set = h->npages_set;
	int error = h->error;
	struct dirty_source *source;

	assert_int_equal(dirty_source_create(&config, &source), 0);
	assert_int_equal(dirty_source_kind(source), DIRTY_KIND_HYPERVISOR);
	h->pages = since_boot;
	h->npages_set = sizeof(since_boot) / sizeof(since_boot[0]);
	h->error = 0;
	assert_int_equal(dirty_source_start(source), 0);
	/* start made the log's first call */
	assert_int_equal(h->calls, 1);
	assert_int_equal(h->region_id, 9);
	h->pages = pages;
	h->npages_set = npages_set;
	h->error = error;
	h->calls = 0;
	return source;
}

static void test_dirty_hypervisor_first_call_starts_the_log_and_is_dropped(void **state)
{
	void *mem = aligned_alloc(PAGE, NPAGES * PAGE);
	struct hypervisor h = {0};
	uint64_t bitmap[2] = {0};
	struct dirty_source *source = hypervisor_source(&h, mem);

	(void)state;
	/* nothing written since start: the writes since boot that start's call reported are
	 * not reported again */
	assert_int_equal(dirty_source_sync(source, bitmap), 0);
	assert_int_equal(h.calls, 1);
	assert_int_equal(bitmap[0] | bitmap[1], 0);
	dirty_source_destroy(source);
	free(mem);
}

static void test_dirty_hypervisor_start_fails_when_the_first_call_fails(void **state)
{
	void *mem = aligned_alloc(PAGE, NPAGES * PAGE);
	struct hypervisor h = {.error = -EIO};
	struct dirty_source_config config = hypervisor_config(&h, mem);
	struct dirty_source *source;

	(void)state;
	assert_int_equal(dirty_source_create(&config, &source), 0);
	assert_int_equal(dirty_source_start(source), -EIO);
	assert_int_equal(h.calls, 1);
	dirty_source_destroy(source);
	free(mem);
}

static void test_dirty_hypervisor_passes_bitmap_through(void **state)
{
	static const size_t first[] = {0, 63, 64, 99}, second[] = {5};
	void *mem = aligned_alloc(PAGE, NPAGES * PAGE);
	struct hypervisor h = {.pages = first, .npages_set = 4};
	uint64_t bitmap[2] = {0};
	struct dirty_source *source = hypervisor_source(&h, mem);

	(void)state;
	bitmap_set(bitmap, 50); /* already dirty: stays */
	assert_int_equal(dirty_source_sync(source, bitmap), 4);
	assert_int_equal(h.calls, 1);
	assert_int_equal(h.region_id, 9);
	assert_int_equal(h.npages, NPAGES);
	assert_true(h.bitmap_was_zero);
	assert_int_equal(bitmap_count(bitmap, NPAGES), 5);
	for (size_t i = 0; i < 4; i++)
		assert_true(bitmap_test(bitmap, first[i]));
	assert_true(bitmap_test(bitmap, 50));

	/* the next call gets a zeroed bitmap again, whatever the last one set */
	h.pages = second;
	h.npages_set = 1;
	memset(bitmap, 0, sizeof(bitmap));
	assert_int_equal(dirty_source_sync(source, bitmap), 1);
	assert_int_equal(h.calls, 2);
	assert_true(h.bitmap_was_zero);
	assert_int_equal(bitmap_count(bitmap, NPAGES), 1);
	assert_true(bitmap_test(bitmap, 5));
	dirty_source_destroy(source);
	free(mem);
}

static void test_dirty_hypervisor_drops_bits_past_npages(void **state)
{
	static const size_t pages[] = {98};
	void *mem = aligned_alloc(PAGE, NPAGES * PAGE);
	struct hypervisor h = {.pages = pages, .npages_set = 1, .set_past_end = 1};
	uint64_t bitmap[2] = {0};
	struct dirty_source *source = hypervisor_source(&h, mem);

	(void)state;
	assert_int_equal(dirty_source_sync(source, bitmap), 1);
	assert_int_equal(bitmap[0], 0);
	assert_int_equal(bitmap[1], UINT64_C(1) << (98 - 64));
	dirty_source_destroy(source);
	free(mem);
}

static void test_dirty_hypervisor_callback_error_fails_sync(void **state)
{
	void *mem = aligned_alloc(PAGE, NPAGES * PAGE);
	struct hypervisor h = {.error = -EIO};
	uint64_t bitmap[2] = {0};
	struct dirty_source *source = hypervisor_source(&h, mem);

	(void)state;
	assert_int_equal(dirty_source_sync(source, bitmap), -EIO);
	assert_int_equal(bitmap[0] | bitmap[1], 0);
	dirty_source_destroy(source);
	free(mem);
}

static void test_dirty_auto_picks_hypervisor_when_a_callback_is_given(void **state)
{
	void *mem = aligned_alloc(PAGE, NPAGES * PAGE);
	struct hypervisor h = {0};
	struct dirty_source_config config = {.kind = DIRTY_KIND_AUTO,
					     .region_id = 1,
					     .addr = mem,
					     .length = NPAGES * PAGE,
					     .page_size = PAGE,
					     .hypervisor_sync = hypervisor_sync,
					     .hypervisor_opaque = &h};
	struct dirty_source *source;

	(void)state;
	assert_int_equal(dirty_source_create(&config, &source), 0);
	assert_int_equal(dirty_source_kind(source), DIRTY_KIND_HYPERVISOR);
	dirty_source_destroy(source);
	free(mem);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dirty_hypervisor_first_call_starts_the_log_and_is_dropped),
		cmocka_unit_test(test_dirty_hypervisor_start_fails_when_the_first_call_fails),
		cmocka_unit_test(test_dirty_hypervisor_passes_bitmap_through),
		cmocka_unit_test(test_dirty_hypervisor_drops_bits_past_npages),
		cmocka_unit_test(test_dirty_hypervisor_callback_error_fails_sync),
		cmocka_unit_test(test_dirty_auto_picks_hypervisor_when_a_callback_is_given),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
