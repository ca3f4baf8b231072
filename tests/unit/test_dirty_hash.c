/* SPDX-License-Identifier: MIT */
/* The content-hash dirty source and the page helpers it stands on: a change is reported, a
 * rewrite with the same bytes is not, a page changed back is reported again, a sync split over
 * threads reports the same and keeps the current hashes; page_hash() is XXH3 and
 * page_is_zero() finds a single non-zero byte anywhere. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <xxhash.h>

#include "engine/bitmap.h"
#include "engine/dirty.h"
#include "engine/page_hash.h"

#define PAGE 4096u
#define NPAGES 256u

struct hashed {
	unsigned char *mem;
	struct dirty_source *source;
	uint64_t bitmap[NPAGES / 64];
};

static void hashed_start(struct hashed *h, int shared)
{
	struct dirty_source_config config = {.kind = DIRTY_KIND_HASH,
					     .region_id = 4,
					     .length = NPAGES * PAGE,
					     .page_size = PAGE};

	h->mem = mmap(NULL, NPAGES * PAGE, PROT_READ | PROT_WRITE,
		      (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS, -1, 0);
	assert_true(h->mem != MAP_FAILED);
	for (size_t p = 0; p < NPAGES; p += 2)
		memset(h->mem + p * PAGE, (int)p, PAGE);
	config.addr = h->mem;
	assert_int_equal(dirty_source_create(&config, &h->source), 0);
	assert_int_equal(dirty_source_kind(h->source), DIRTY_KIND_HASH);
	assert_int_equal(dirty_source_start(h->source), 0);
}

static int hashed_sync(struct hashed *h)
{
	memset(h->bitmap, 0, sizeof(h->bitmap));
	return dirty_source_sync(h->source, h->bitmap);
}

static void hashed_end(struct hashed *h)
{
	dirty_source_destroy(h->source);
	munmap(h->mem, NPAGES * PAGE);
}

static void test_dirty_hash_detects_change_and_ignores_same_content_rewrite(void **state)
{
	struct hashed h;

	(void)state;
	hashed_start(&h, 0);
	assert_int_equal(hashed_sync(&h), 0);
	h.mem[10 * PAGE + 4095] ^= 1;	     /* changed */
	memset(h.mem + 20 * PAGE, 20, PAGE); /* rewritten with the bytes it held */
	h.mem[255 * PAGE] = 9;		     /* was zero: changed */
	memset(h.mem + 31 * PAGE, 0, PAGE);  /* zero page rewritten with zeros */
	assert_int_equal(hashed_sync(&h), 2);
	assert_int_equal(bitmap_count(h.bitmap, NPAGES), 2);
	assert_true(bitmap_test(h.bitmap, 10));
	assert_true(bitmap_test(h.bitmap, 255));
	assert_int_equal(hashed_sync(&h), 0);
	hashed_end(&h);
}

/* The baseline moves with each sync: a page changed and then changed back is reported both
 * times. */
static void test_dirty_hash_reports_page_changed_back_after_a_sync(void **state)
{
	struct hashed h;

	(void)state;
	hashed_start(&h, 0);
	h.mem[7 * PAGE] = 0x77;
	assert_int_equal(hashed_sync(&h), 1);
	assert_true(bitmap_test(h.bitmap, 7));
	h.mem[7 * PAGE] = 0;
	assert_int_equal(hashed_sync(&h), 1);
	assert_true(bitmap_test(h.bitmap, 7));
	hashed_end(&h);
}

/* Sync ORs: bits already set in the caller's bitmap stay set. */
static void test_dirty_hash_sync_keeps_bits_already_set(void **state)
{
	struct hashed h;

	(void)state;
	hashed_start(&h, 0);
	memset(h.bitmap, 0, sizeof(h.bitmap));
	bitmap_set(h.bitmap, 100);
	h.mem[5 * PAGE] = 1;
	assert_int_equal(dirty_source_sync(h.source, h.bitmap), 1);
	assert_true(bitmap_test(h.bitmap, 100));
	assert_true(bitmap_test(h.bitmap, 5));
	assert_int_equal(bitmap_count(h.bitmap, NPAGES), 2);
	hashed_end(&h);
}

/* What the hash source is for: shared memory, written here through a second mapping of the
 * same memfd that the tracked mapping never sees written. */
static void test_dirty_hash_sees_writes_through_another_mapping(void **state)
{
	int fd = memfd_create("rmig-hash", MFD_CLOEXEC);
	struct dirty_source_config config = {.kind = DIRTY_KIND_HASH,
					     .region_id = 1,
					     .length = NPAGES * PAGE,
					     .page_size = PAGE};
	uint64_t bitmap[NPAGES / 64] = {0};
	struct dirty_source *source;
	unsigned char *other;

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, NPAGES * PAGE), 0);
	config.addr = mmap(NULL, NPAGES * PAGE, PROT_READ, MAP_SHARED, fd, 0);
	other = mmap(NULL, NPAGES * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(config.addr != MAP_FAILED && other != MAP_FAILED);
	assert_int_equal(dirty_source_create(&config, &source), 0);
	assert_int_equal(dirty_source_start(source), 0);
	other[42 * PAGE + 3] = 1;
	assert_int_equal(dirty_source_sync(source, bitmap), 1);
	assert_true(bitmap_test(bitmap, 42));
	dirty_source_destroy(source);
	munmap(other, NPAGES * PAGE);
	munmap(config.addr, NPAGES * PAGE);
	close(fd);
}

/* A writer changes pages while syncs run (every value it writes is new, so no page returns to
 * an earlier content); copying the reported pages after each sync ends, once the writer stops
 * and a last sync runs, with a copy equal to the memory: torn hashes cost resends only. */
struct writer {
	unsigned char *mem;
	atomic_int stop;
	atomic_size_t writes;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	uint64_t seed = 0x9e3779b97f4a7c15ull, value = 0;

	while (!atomic_load_explicit(&w->stop, memory_order_relaxed)) {
		seed ^= seed << 13;
		seed ^= seed >> 7;
		seed ^= seed << 17;
		value++;
		memcpy(w->mem + (seed % NPAGES) * PAGE + ((seed >> 32) % (PAGE / 8)) * 8, &value,
		       sizeof(value));
		atomic_fetch_add_explicit(&w->writes, 1, memory_order_release);
	}
	return NULL;
}

static void test_dirty_hash_copy_from_syncs_converges_while_a_writer_runs(void **state)
{
	unsigned char *copy = malloc(NPAGES * PAGE);
	struct writer w = {0};
	size_t start, len, from, seen = 0;
	pthread_t thread;
	struct hashed h;

	(void)state;
	assert_non_null(copy);
	hashed_start(&h, 0);
	memcpy(copy, h.mem, NPAGES * PAGE);
	w.mem = h.mem;
	assert_int_equal(pthread_create(&thread, NULL, writer_main, &w), 0);
	for (int i = 0; i <= 100; i++) {
		while (atomic_load_explicit(&w.writes, memory_order_acquire) == seen)
			sched_yield();
		seen = atomic_load_explicit(&w.writes, memory_order_acquire);
		if (i == 100) {
			atomic_store(&w.stop, 1);
			assert_int_equal(pthread_join(thread, NULL), 0);
		}
		assert_true(hashed_sync(&h) >= 0);
		for (from = 0; dirty_bitmap_next_run(h.bitmap, NPAGES, from, &start, &len);
		     from = start + len)
			memcpy(copy + start * PAGE, h.mem + start * PAGE, len * PAGE);
	}
	for (size_t p = 0; p < NPAGES; p++)
		if (memcmp(copy + p * PAGE, h.mem + p * PAGE, PAGE))
			fail_msg("page %zu: the copy made from syncs differs from memory", p);
	assert_int_equal(hashed_sync(&h), 0);
	hashed_end(&h);
	free(copy);
}

/* A sync split over threads reports exactly the changed pages, also those either side of
 * where one thread's share ends and the next begins (shares are whole bitmap words, so every
 * page either side of a multiple of 64 changes), and leaves every page's current hash (what
 * the verification reuses) in the table. The region is large enough to be split and not a
 * multiple of the split. */
#define BIG_PAGES (8192u + 8u * 64u + 37u)

static int big_page_changes(size_t p)
{
	return p % 64 == 0 || p % 64 == 63 || p == BIG_PAGES - 1;
}

static void test_dirty_hash_threaded_sync_reports_changes_and_keeps_current_hashes(void **state)
{
	struct dirty_source_config config = {.kind = DIRTY_KIND_HASH,
					     .region_id = 2,
					     .length = (size_t)BIG_PAGES * PAGE,
					     .page_size = PAGE};
	uint64_t *bitmap = calloc(bitmap_words(BIG_PAGES), sizeof(uint64_t));
	struct dirty_source *source;
	const uint64_t *hashes = NULL;
	size_t nchanged = 0;
	unsigned char *mem;

	(void)state;
	assert_non_null(bitmap);
	mem = mmap(NULL, config.length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(mem != MAP_FAILED);
	for (size_t p = 0; p < BIG_PAGES; p++) {
		if (p % 3 == 0)
			memset(mem + p * PAGE, (int)(p & 0xff) | 1, 64);
		nchanged += (size_t)big_page_changes(p);
	}
	config.addr = mem;
	assert_int_equal(dirty_source_create(&config, &source), 0);
	assert_int_equal(dirty_source_start(source), 0);
	for (unsigned threads = 1; threads <= 4; threads++) {
		dirty_source_set_threads(source, threads);
		memset(bitmap, 0, bitmap_words(BIG_PAGES) * sizeof(uint64_t));
		for (size_t p = 0; p < BIG_PAGES; p++)
			if (big_page_changes(p))
				mem[p * PAGE + 100 + threads] ^= 0x5a;
		assert_int_equal(dirty_source_sync(source, bitmap), (int)nchanged);
		for (size_t p = 0; p < BIG_PAGES; p++)
			if (bitmap_test(bitmap, p) != big_page_changes(p))
				fail_msg("%u threads: page %zu %s", threads, p,
					 big_page_changes(p) ? "changed and was not reported"
							     : "reported, not changed");
		hashes = dirty_source_page_hashes(source);
		assert_non_null(hashes);
		for (size_t p = 0; p < BIG_PAGES; p++)
			if (hashes[p] != XXH3_64bits(mem + p * PAGE, PAGE))
				fail_msg("%u threads: page %zu: the kept hash is not the page's",
					 threads, p);
		memset(bitmap, 0, bitmap_words(BIG_PAGES) * sizeof(uint64_t));
		assert_int_equal(dirty_source_sync(source, bitmap), 0);
	}
	/* Stopped, the table stays for the verification. */
	assert_int_equal(dirty_source_stop(source), 0);
	assert_true(dirty_source_page_hashes(source) == hashes);
	dirty_source_destroy(source);
	munmap(mem, config.length);
	free(bitmap);
}

static void test_page_hash_is_xxh3_of_the_page(void **state)
{
	unsigned char page[PAGE];

	(void)state;
	for (size_t i = 0; i < PAGE; i++)
		page[i] = (unsigned char)(i * 31 + 7);
	assert_int_equal(page_hash(page, PAGE), XXH3_64bits(page, PAGE));
	page[2048] ^= 0x80;
	assert_int_equal(page_hash(page, PAGE), XXH3_64bits(page, PAGE));
	assert_int_not_equal(page_hash(page, PAGE), page_hash(page, PAGE - 1));
}

static void test_page_hash_zero_is_the_hash_of_zero_pages(void **state)
{
	static const size_t sizes[] = {0, 1, 4096, 4097, 12288, 2u << 20};
	unsigned char *zero = calloc(1, 2u << 20);

	(void)state;
	assert_non_null(zero);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		assert_int_equal(page_hash_zero(sizes[i]), page_hash(zero, sizes[i]));
	zero[4096] = 1;
	assert_int_not_equal(page_hash_zero(8192), page_hash(zero, 8192));
	free(zero);
}

static void test_page_is_zero_finds_one_nonzero_byte_anywhere(void **state)
{
	unsigned char *page = calloc(1, PAGE + 64);

	(void)state;
	assert_non_null(page);
	assert_true(page_is_zero(page, PAGE));
	for (size_t i = 0; i < PAGE; i++) {
		page[i] = 1;
		if (page_is_zero(page, PAGE))
			fail_msg("byte %zu set, page still called zero", i);
		page[i] = 0;
	}
	/* lengths that are no multiple of 64, and an address that is not 8-byte aligned */
	page[PAGE + 2] = 1;
	assert_true(page_is_zero(page + 1, PAGE + 1));
	assert_false(page_is_zero(page + 1, PAGE + 2));
	assert_true(page_is_zero(page, 0));
	free(page);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_page_hash_zero_is_the_hash_of_zero_pages),
		cmocka_unit_test(test_dirty_hash_detects_change_and_ignores_same_content_rewrite),
		cmocka_unit_test(test_dirty_hash_reports_page_changed_back_after_a_sync),
		cmocka_unit_test(test_dirty_hash_sync_keeps_bits_already_set),
		cmocka_unit_test(test_dirty_hash_sees_writes_through_another_mapping),
		cmocka_unit_test(test_dirty_hash_copy_from_syncs_converges_while_a_writer_runs),
		cmocka_unit_test(
			test_dirty_hash_threaded_sync_reports_changes_and_keeps_current_hashes),
		cmocka_unit_test(test_page_hash_is_xxh3_of_the_page),
		cmocka_unit_test(test_page_is_zero_finds_one_nonzero_byte_anywhere),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
