/* SPDX-License-Identifier: MIT */
/* Building batches from dirty bitmaps: contiguous dirty pages coalesce into runs of one kind,
 * zero pages become data-less ZERO runs, runs and batches respect their caps, taken pages are
 * cleared and counted, and the cursor carries on across batches and regions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "engine/batch.h"
#include "engine/bitmap.h"

#define PAGE 4096u

static struct session_region make_region(uint32_t id, size_t npages)
{
	struct session_region r = {.id = id,
				   .page_size = PAGE,
				   .page_shift = 12,
				   .npages = npages,
				   .length = npages * PAGE};

	r.addr = calloc(npages, PAGE);
	r.src.dirty = calloc(bitmap_words(npages), sizeof(uint64_t));
	r.src.send_count = calloc(npages, 1);
	assert_non_null(r.addr);
	return r;
}

static void free_region(struct session_region *r)
{
	free(r->addr);
	free(r->src.dirty);
	free(r->src.send_count);
}

static void fill_page(struct session_region *r, size_t page)
{
	memset((char *)r->addr + page * PAGE, 0x11, PAGE);
}

static void test_batch_coalesces_dirty_pages_and_marks_zero_runs(void **state)
{
	struct session_region r = make_region(3, 64);
	struct batch_cursor cursor = {0};
	struct batch *b = malloc(sizeof(*b));

	(void)state;
	/* pages 2..5 data, 6..7 zero, 8 data; 20 data; 30 not dirty */
	for (size_t p = 2; p <= 8; p++)
		bitmap_set(r.src.dirty, p);
	bitmap_set(r.src.dirty, 20);
	for (size_t p = 2; p <= 5; p++)
		fill_page(&r, p);
	fill_page(&r, 8);
	fill_page(&r, 20);
	fill_page(&r, 30);

	assert_int_equal(batch_build(&r, 1, &cursor, b), 1);
	assert_int_equal(b->nruns, 4);
	assert_int_equal(b->runs[0].offset, 2 * PAGE);
	assert_int_equal(b->runs[0].length, 4 * PAGE);
	assert_int_equal(b->runs[0].flags, 0);
	assert_int_equal(b->runs[1].offset, 6 * PAGE);
	assert_int_equal(b->runs[1].length, 2 * PAGE);
	assert_int_equal(b->runs[1].flags, TRANSPORT_RUN_ZERO);
	assert_int_equal(b->runs[2].offset, 8 * PAGE);
	assert_int_equal(b->runs[3].offset, 20 * PAGE);
	assert_int_equal(b->runs[3].region_id, 3);
	assert_int_equal(b->pages, 8);
	assert_int_equal(b->zero_pages, 2);
	assert_int_equal(b->data_bytes, 6 * PAGE);
	assert_int_equal(bitmap_count(r.src.dirty, r.npages), 0);
	assert_int_equal(r.src.send_count[2], 1);
	assert_int_equal(r.src.send_count[30], 0);
	assert_int_equal(batch_build(&r, 1, &cursor, b), 0);
	free(b);
	free_region(&r);
}

static void test_batch_caps_run_length_and_batch_bytes(void **state)
{
	size_t npages = (2 * BATCH_MAX_BYTES) / PAGE;
	struct session_region r = make_region(1, npages);
	struct batch_cursor cursor = {0};
	struct batch *b = malloc(sizeof(*b));
	uint64_t total = 0;
	int batches = 0;

	(void)state;
	for (size_t p = 0; p < npages; p++) {
		fill_page(&r, p);
		bitmap_set(r.src.dirty, p);
	}
	while (batch_build(&r, 1, &cursor, b)) {
		assert_true(b->data_bytes <= BATCH_MAX_BYTES);
		for (size_t i = 0; i < b->nruns; i++)
			assert_true(b->runs[i].length <= BATCH_RUN_MAX_BYTES);
		total += b->data_bytes;
		batches++;
	}
	assert_int_equal(batches, 2);
	assert_int_equal(total, npages * PAGE);
	free(b);
	free_region(&r);
}

static void test_batch_stops_at_max_runs_and_continues_across_regions(void **state)
{
	size_t npages = 3 * TRANSPORT_BATCH_MAX_RUNS;
	struct session_region r[2] = {make_region(1, npages), make_region(2, 4)};
	struct batch_cursor cursor = {0};
	struct batch *b = malloc(sizeof(*b));
	uint64_t pages = 0;
	int batches = 0;

	(void)state;
	/* Alternating data and zero pages: every page starts a run. */
	for (size_t p = 0; p < npages; p++) {
		if (p % 2)
			fill_page(&r[0], p);
		bitmap_set(r[0].src.dirty, p);
	}
	bitmap_set(r[1].src.dirty, 1);
	while (batch_build(r, 2, &cursor, b)) {
		assert_true(b->nruns <= TRANSPORT_BATCH_MAX_RUNS);
		pages += b->pages;
		batches++;
	}
	assert_int_equal(batches, 4); /* three full batches of region 1, then region 2 */
	assert_int_equal(pages, npages + 1);
	assert_int_equal(r[1].src.send_count[1], 1);
	free(b);
	free_region(&r[0]);
	free_region(&r[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_batch_coalesces_dirty_pages_and_marks_zero_runs),
		cmocka_unit_test(test_batch_caps_run_length_and_batch_bytes),
		cmocka_unit_test(test_batch_stops_at_max_runs_and_continues_across_regions),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
