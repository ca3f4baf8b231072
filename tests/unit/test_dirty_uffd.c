/* SPDX-License-Identifier: MIT */
/* userfaultfd dirty sources on this machine's kernel, in both modes (async + PAGEMAP_SCAN and
 * synchronous write-protect faults): exactly the written pages are reported, first writes to
 * never-touched pages count and reads do not, no write is lost while a writer runs during
 * syncs, stop leaves memory writable, shared mappings are refused and AUTO follows the probe. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "engine/bitmap.h"
#include "engine/dirty.h"
#include "engine/dirty_impl.h"

#define PAGE 4096u
#define NPAGES 1024u /* 4 MiB */

struct tracked {
	unsigned char *mem;
	size_t npages;
	struct dirty_source *source;
	uint64_t *bitmap;
};

static unsigned char *map_private(size_t npages)
{
	unsigned char *mem = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	assert_true(mem != MAP_FAILED);
	return mem;
}

static void tracked_start(struct tracked *t, enum dirty_kind kind, size_t npages,
			  unsigned char *mem)
{
	struct dirty_source_config config = {
		.kind = kind,
		.region_id = 7,
		.addr = mem,
		.length = npages * PAGE,
		.page_size = PAGE,
	};

	t->mem = mem;
	t->npages = npages;
	assert_int_equal(dirty_source_create(&config, &t->source), 0);
	assert_int_equal(dirty_source_kind(t->source), kind);
	assert_int_equal(dirty_source_start(t->source), 0);
	t->bitmap = calloc(bitmap_words(npages), sizeof(uint64_t));
	assert_non_null(t->bitmap);
}

/* Sync into a cleared bitmap; returns what sync returned. */
static int tracked_sync(struct tracked *t)
{
	bitmap_zero(t->bitmap, t->npages);
	return dirty_source_sync(t->source, t->bitmap);
}

static void tracked_end(struct tracked *t)
{
	assert_int_equal(dirty_source_stop(t->source), 0);
	dirty_source_destroy(t->source);
	munmap(t->mem, t->npages * PAGE);
	free(t->bitmap);
}

static void expect_exactly(const struct tracked *t, const size_t *pages, size_t n)
{
	uint64_t *want = calloc(bitmap_words(t->npages), sizeof(uint64_t));

	assert_non_null(want);
	for (size_t i = 0; i < n; i++)
		bitmap_set(want, pages[i]);
	for (size_t p = 0; p < t->npages; p++) {
		if (bitmap_test(want, p) != bitmap_test(t->bitmap, p))
			fail_msg("page %zu: expected %s, got %s", p,
				 bitmap_test(want, p) ? "dirty" : "clean",
				 bitmap_test(t->bitmap, p) ? "dirty" : "clean");
	}
	free(want);
}

/* Pages 0..511 were written before start, 512..1023 never touched. The written set mixes
 * both, neighbours, word edges and the last page. */
static void check_reports_exactly_written_pages(enum dirty_kind kind)
{
	static const size_t first[] = {0, 1, 63, 64, 65, 300, 511, 512, 513, 700, 1023};
	static const size_t second[] = {1, 2, 640, 1000};
	unsigned char *mem = map_private(NPAGES);
	struct tracked t;

	memset(mem, 0x5a, 512 * PAGE);
	tracked_start(&t, kind, NPAGES, mem);
	assert_int_equal(tracked_sync(&t), 0); /* nothing written since start */

	for (size_t i = 0; i < sizeof(first) / sizeof(first[0]); i++)
		mem[first[i] * PAGE + 17] = (unsigned char)i + 1;
	assert_int_equal(tracked_sync(&t), sizeof(first) / sizeof(first[0]));
	expect_exactly(&t, first, sizeof(first) / sizeof(first[0]));

	/* re-protected: only pages written since that sync come back */
	for (size_t i = 0; i < sizeof(second) / sizeof(second[0]); i++)
		mem[second[i] * PAGE + PAGE - 1] = 0xee;
	assert_int_equal(tracked_sync(&t), sizeof(second) / sizeof(second[0]));
	expect_exactly(&t, second, sizeof(second) / sizeof(second[0]));
	assert_int_equal(tracked_sync(&t), 0);
	tracked_end(&t);
}

static void test_dirty_uffd_async_reports_exactly_written_pages(void **state)
{
	(void)state;
	check_reports_exactly_written_pages(DIRTY_KIND_UFFD_ASYNC);
}

static void test_dirty_uffd_sync_reports_exactly_written_pages(void **state)
{
	(void)state;
	check_reports_exactly_written_pages(DIRTY_KIND_UFFD_SYNC);
}

/* Reading never-touched pages maps the shared zero page: not a write. Writing one afterwards
 * is, and so is a first write straight to a never-touched page. */
static void check_reads_are_not_writes_and_zero_pages_count_once_written(enum dirty_kind kind)
{
	unsigned char *mem = map_private(NPAGES);
	volatile unsigned char sink = 0;
	static const size_t written[] = {5, 900};
	struct tracked t;

	tracked_start(&t, kind, NPAGES, mem);
	for (size_t p = 0; p < NPAGES; p++)
		sink ^= mem[p * PAGE];
	(void)sink;
	assert_int_equal(tracked_sync(&t), 0);
	mem[5 * PAGE] = 1;	 /* read before: zero page mapped */
	mem[900 * PAGE + 9] = 1; /* read before too */
	assert_int_equal(tracked_sync(&t), 2);
	expect_exactly(&t, written, 2);
	tracked_end(&t);
}

static void test_dirty_uffd_async_reads_are_not_writes(void **state)
{
	(void)state;
	check_reads_are_not_writes_and_zero_pages_count_once_written(DIRTY_KIND_UFFD_ASYNC);
}

static void test_dirty_uffd_sync_reads_are_not_writes(void **state)
{
	(void)state;
	check_reads_are_not_writes_and_zero_pages_count_once_written(DIRTY_KIND_UFFD_SYNC);
}

static void check_first_write_to_never_touched_page_is_reported(enum dirty_kind kind)
{
	unsigned char *mem = map_private(NPAGES);
	static const size_t written[] = {0, 777};
	struct tracked t;

	tracked_start(&t, kind, NPAGES, mem);
	mem[0] = 1;
	mem[777 * PAGE + 100] = 2;
	assert_int_equal(tracked_sync(&t), 2);
	expect_exactly(&t, written, 2);
	tracked_end(&t);
}

static void test_dirty_uffd_async_first_write_to_never_touched_page_is_reported(void **state)
{
	(void)state;
	check_first_write_to_never_touched_page_is_reported(DIRTY_KIND_UFFD_ASYNC);
}

static void test_dirty_uffd_sync_first_write_to_never_touched_page_is_reported(void **state)
{
	(void)state;
	check_first_write_to_never_touched_page_is_reported(DIRTY_KIND_UFFD_SYNC);
}

/* A writer thread hammering random pages while the main thread syncs over and over. */
#define WRITER_LOG_MAX (1u << 20)
#define WRITER_NPAGES 4096u /* 16 MiB */
#define WRITER_SYNCS 300

struct writer {
	unsigned char *mem;
	atomic_int stop;
	uint32_t *log; /* page of every write, in order, appended after the write */
	atomic_size_t logged;
	uint64_t counter;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	uint64_t seed = 88172645463325252ull;

	for (size_t n = 0;
	     !atomic_load_explicit(&w->stop, memory_order_relaxed) && n < WRITER_LOG_MAX; n++) {
		uint32_t page, slot;

		seed ^= seed << 13;
		seed ^= seed >> 7;
		seed ^= seed << 17;
		page = (uint32_t)(seed % WRITER_NPAGES);
		slot = (uint32_t)((seed >> 32) % (PAGE / sizeof(uint64_t)));
		/* values only grow, so no page ever returns to an earlier content */
		w->counter++;
		memcpy(w->mem + (size_t)page * PAGE + slot * sizeof(uint64_t), &w->counter,
		       sizeof(w->counter));
		w->log[n] = page;
		atomic_store_explicit(&w->logged, n + 1, memory_order_release);
	}
	return NULL;
}

/* The union of every sync plus a final one after the writer stopped covers every write the
 * writer logged; and copying the reported pages after each sync (as a migration does) ends
 * with a copy equal to the memory. */
static void check_write_during_sync_is_not_lost(enum dirty_kind kind)
{
	unsigned char *mem = map_private(WRITER_NPAGES);
	unsigned char *copy = malloc((size_t)WRITER_NPAGES * PAGE);
	uint64_t *all = calloc(bitmap_words(WRITER_NPAGES), sizeof(uint64_t));
	struct writer w = {.mem = mem};
	size_t start, len, from, seen = 0;
	pthread_t thread;
	struct tracked t;
	int ret;

	w.log = malloc(WRITER_LOG_MAX * sizeof(*w.log));
	assert_non_null(copy);
	assert_non_null(all);
	assert_non_null(w.log);
	memset(mem, 0x33, (size_t)WRITER_NPAGES * PAGE / 2);
	tracked_start(&t, kind, WRITER_NPAGES, mem);
	memcpy(copy, mem, (size_t)WRITER_NPAGES * PAGE);
	assert_int_equal(pthread_create(&thread, NULL, writer_main, &w), 0);
	for (int i = 0; i <= WRITER_SYNCS; i++) {
		/* let the writer make progress between syncs (each of its writes to a protected
		 * page waits for a fault round trip in sync mode) */
		while (atomic_load_explicit(&w.logged, memory_order_acquire) == seen &&
		       seen < WRITER_LOG_MAX)
			sched_yield();
		seen = atomic_load_explicit(&w.logged, memory_order_acquire);
		if (i == WRITER_SYNCS) {
			atomic_store(&w.stop, 1);
			assert_int_equal(pthread_join(thread, NULL), 0);
		}
		ret = tracked_sync(&t);
		assert_true(ret >= 0);
		assert_int_equal((size_t)ret, bitmap_count(t.bitmap, t.npages));
		bitmap_or(all, t.bitmap, t.npages);
		for (from = 0; dirty_bitmap_next_run(t.bitmap, t.npages, from, &start, &len);
		     from = start + len)
			memcpy(copy + start * PAGE, mem + start * PAGE, len * PAGE);
	}
	seen = atomic_load(&w.logged);
	assert_true(seen >= WRITER_SYNCS);
	print_message("%s: %zu writes during %d syncs, %zu distinct pages reported\n",
		      dirty_kind_name(kind), seen, WRITER_SYNCS, bitmap_count(all, WRITER_NPAGES));
	for (size_t i = 0; i < seen; i++)
		if (!bitmap_test(all, w.log[i]))
			fail_msg("write %zu of %zu (page %u) was never reported", i, seen,
				 w.log[i]);
	for (size_t p = 0; p < WRITER_NPAGES; p++)
		if (memcmp(copy + p * PAGE, mem + p * PAGE, PAGE))
			fail_msg("page %zu: the copy made from syncs differs from memory", p);
	/* the final sync ran with the writer stopped: nothing more is dirty */
	assert_int_equal(tracked_sync(&t), 0);
	tracked_end(&t);
	free(w.log);
	free(all);
	free(copy);
}

static void test_dirty_uffd_async_write_during_sync_is_not_lost(void **state)
{
	(void)state;
	check_write_during_sync_is_not_lost(DIRTY_KIND_UFFD_ASYNC);
}

static void test_dirty_uffd_sync_write_during_sync_is_not_lost(void **state)
{
	(void)state;
	check_write_during_sync_is_not_lost(DIRTY_KIND_UFFD_SYNC);
}

/* After stop, writes go through with nobody serving faults (a page left protected in sync mode
 * would block this thread for ever) and sync refuses. */
static void check_stop_leaves_memory_writable(enum dirty_kind kind)
{
	unsigned char *mem = map_private(NPAGES);
	struct tracked t;

	memset(mem, 1, NPAGES * PAGE / 2);
	tracked_start(&t, kind, NPAGES, mem);
	assert_int_equal(dirty_source_stop(t.source), 0);
	assert_int_equal(dirty_source_stop(t.source), 0);
	memset(mem, 2, NPAGES * PAGE);
	assert_int_equal(mem[NPAGES * PAGE - 1], 2);
	assert_int_equal(dirty_source_sync(t.source, t.bitmap), -EINVAL);
	dirty_source_destroy(t.source);
	munmap(mem, NPAGES * PAGE);
	free(t.bitmap);
}

static void test_dirty_uffd_async_stop_leaves_memory_writable(void **state)
{
	(void)state;
	check_stop_leaves_memory_writable(DIRTY_KIND_UFFD_ASYNC);
}

static void test_dirty_uffd_sync_stop_leaves_memory_writable(void **state)
{
	(void)state;
	check_stop_leaves_memory_writable(DIRTY_KIND_UFFD_SYNC);
}

/* A write made by the kernel on our behalf (read(2) into tracked memory) is a write too. */
static void check_system_call_write_is_reported(enum dirty_kind kind)
{
	unsigned char *mem = map_private(NPAGES);
	static const size_t written[] = {300};
	int fds[2];
	struct tracked t;
	unsigned features;

	assert_int_equal(dirty_uffd_probe(&features), 0);
	if (kind == DIRTY_KIND_UFFD_SYNC && (features & DIRTY_UFFD_HAS_USER_MODE_ONLY)) {
		munmap(mem, NPAGES * PAGE);
		skip(); /* restricted userfaultfd: the kernel's write fails with EFAULT */
	}
	memset(mem, 1, NPAGES * PAGE);
	tracked_start(&t, kind, NPAGES, mem);
	assert_int_equal(pipe(fds), 0);
	assert_int_equal(write(fds[1], "rmig", 4), 4);
	assert_int_equal(read(fds[0], mem + 300 * PAGE + 8, 4), 4);
	assert_memory_equal(mem + 300 * PAGE + 8, "rmig", 4);
	assert_int_equal(tracked_sync(&t), 1);
	expect_exactly(&t, written, 1);
	close(fds[0]);
	close(fds[1]);
	tracked_end(&t);
}

static void test_dirty_uffd_async_system_call_write_is_reported(void **state)
{
	(void)state;
	check_system_call_write_is_reported(DIRTY_KIND_UFFD_ASYNC);
}

static void test_dirty_uffd_sync_system_call_write_is_reported(void **state)
{
	(void)state;
	check_system_call_write_is_reported(DIRTY_KIND_UFFD_SYNC);
}

/* MAP_SHARED memory (a memfd, as a QEMU memory backend is) can be written through other
 * mappings that userfaultfd never sees: both uffd kinds refuse it, AUTO hashes it. */
static void test_dirty_uffd_refuses_shared_memfd_and_auto_hashes_it(void **state)
{
	int fd = memfd_create("rmig-test", MFD_CLOEXEC);
	struct dirty_source_config config = {
		.region_id = 2, .length = NPAGES * PAGE, .page_size = PAGE};
	struct dirty_source *source = NULL;

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, NPAGES * PAGE), 0);
	config.addr = mmap(NULL, NPAGES * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(config.addr != MAP_FAILED);
	config.kind = DIRTY_KIND_UFFD_ASYNC;
	assert_int_equal(dirty_source_create(&config, &source), -EOPNOTSUPP);
	config.kind = DIRTY_KIND_UFFD_SYNC;
	assert_int_equal(dirty_source_create(&config, &source), -EOPNOTSUPP);
	assert_null(source);
	config.kind = DIRTY_KIND_AUTO;
	assert_int_equal(dirty_source_create(&config, &source), 0);
	assert_int_equal(dirty_source_kind(source), DIRTY_KIND_HASH);
	dirty_source_destroy(source);
	munmap(config.addr, NPAGES * PAGE);
	close(fd);
}

/* Kernel major.minor from uname, for checking the probe against what the kernel should have. */
static int kernel_at_least(int major, int minor)
{
	struct utsname u;
	int maj = 0, min = 0;

	assert_int_equal(uname(&u), 0);
	assert_true(sscanf(u.release, "%d.%d", &maj, &min) == 2);
	return maj > major || (maj == major && min >= minor);
}

static void test_dirty_auto_picks_uffd_async_on_this_kernel(void **state)
{
	unsigned char *mem = map_private(NPAGES);
	struct dirty_source_config config = {.kind = DIRTY_KIND_AUTO,
					     .region_id = 1,
					     .addr = mem,
					     .length = NPAGES * PAGE,
					     .page_size = PAGE};
	struct dirty_source *source;
	enum dirty_kind expected = DIRTY_KIND_HASH;
	unsigned features = 0;

	(void)state;
	if (dirty_uffd_probe(&features) == 0) {
		if ((features & DIRTY_UFFD_HAS_WP_ASYNC) &&
		    (features & DIRTY_UFFD_HAS_PAGEMAP_SCAN))
			expected = DIRTY_KIND_UFFD_ASYNC;
		else if (features & DIRTY_UFFD_HAS_WP)
			expected = DIRTY_KIND_UFFD_SYNC;
		/* async write-protect and PAGEMAP_SCAN came with Linux 6.7, WP with 5.7 */
		if (kernel_at_least(6, 7))
			assert_int_equal(expected, DIRTY_KIND_UFFD_ASYNC);
		else if (kernel_at_least(5, 7))
			assert_int_not_equal(expected, DIRTY_KIND_HASH);
	}
	print_message("probe: features %#x, expecting %s\n", features, dirty_kind_name(expected));
	assert_int_equal(dirty_source_create(&config, &source), 0);
	assert_int_equal(dirty_source_kind(source), expected);
	dirty_source_destroy(source);
	munmap(mem, NPAGES * PAGE);
}

/* Memory already registered with another userfaultfd cannot be registered again. */
static void test_dirty_uffd_second_tracker_on_same_memory_is_refused(void **state)
{
	unsigned char *mem = map_private(NPAGES);
	struct dirty_source_config config = {.kind = DIRTY_KIND_UFFD_ASYNC,
					     .region_id = 1,
					     .addr = mem,
					     .length = NPAGES * PAGE,
					     .page_size = PAGE};
	struct dirty_source *first, *second = NULL;

	(void)state;
	assert_int_equal(dirty_source_create(&config, &first), 0);
	assert_int_equal(dirty_source_create(&config, &second), -EOPNOTSUPP);
	assert_null(second);
	dirty_source_destroy(first);
	munmap(mem, NPAGES * PAGE);
}

/* Private hugetlb memory, when the host has huge pages reserved: a write marks every page of
 * the 2 MiB huge page it falls in. */
static void check_hugetlb_reports_whole_huge_page(enum dirty_kind kind)
{
	const size_t huge = 2u << 20, npages = 2 * huge / PAGE;
	unsigned char *mem = mmap(NULL, 2 * huge, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
	struct tracked t;

	if (mem == MAP_FAILED)
		skip(); /* no huge pages reserved on this host (vm.nr_hugepages) */
	memset(mem, 1, 2 * huge);
	tracked_start(&t, kind, npages, mem);
	mem[huge + 5 * PAGE] = 2;
	assert_int_equal(tracked_sync(&t), huge / PAGE);
	for (size_t p = 0; p < npages; p++)
		assert_int_equal(bitmap_test(t.bitmap, p), p >= huge / PAGE);
	assert_int_equal(tracked_sync(&t), 0);
	tracked_end(&t);
}

static void test_dirty_uffd_async_hugetlb_reports_whole_huge_page(void **state)
{
	(void)state;
	check_hugetlb_reports_whole_huge_page(DIRTY_KIND_UFFD_ASYNC);
}

static void test_dirty_uffd_sync_hugetlb_reports_whole_huge_page(void **state)
{
	(void)state;
	check_hugetlb_reports_whole_huge_page(DIRTY_KIND_UFFD_SYNC);
}

/* Transparent huge pages: a write to one 4 KiB page of a 2 MiB THP reports that page only (the
 * kernel splits the huge mapping rather than lifting protection for all of it). */
static void check_transparent_huge_page_reports_single_pages(enum dirty_kind kind)
{
	const size_t huge = 2u << 20, npages = 2 * huge / PAGE;
	static const size_t written[] = {3, 511, 512, 1000};
	unsigned char *raw = map_private(3 * huge / PAGE), *mem;
	struct tracked t;

	/* a 2 MiB-aligned 4 MiB window of a 6 MiB mapping */
	mem = (unsigned char *)(((uintptr_t)raw + huge - 1) & ~(uintptr_t)(huge - 1));
	assert_int_equal(madvise(mem, 2 * huge, MADV_HUGEPAGE), 0);
	memset(mem, 1, 2 * huge);
	tracked_start(&t, kind, npages, mem);
	for (size_t i = 0; i < sizeof(written) / sizeof(written[0]); i++)
		mem[written[i] * PAGE + 1] = 2;
	assert_int_equal(tracked_sync(&t), sizeof(written) / sizeof(written[0]));
	expect_exactly(&t, written, sizeof(written) / sizeof(written[0]));
	assert_int_equal(dirty_source_stop(t.source), 0);
	dirty_source_destroy(t.source);
	free(t.bitmap);
	munmap(raw, 3 * huge);
}

static void test_dirty_uffd_async_transparent_huge_page_reports_single_pages(void **state)
{
	(void)state;
	check_transparent_huge_page_reports_single_pages(DIRTY_KIND_UFFD_ASYNC);
}

static void test_dirty_uffd_sync_transparent_huge_page_reports_single_pages(void **state)
{
	(void)state;
	check_transparent_huge_page_reports_single_pages(DIRTY_KIND_UFFD_SYNC);
}

/* Older kernels, acted out on this one by narrowing what the probe reports. Without
 * WP_UNPOPULATED (before 6.4) start maps never-touched pages first: their first write must
 * still be reported, and reading them must still not count. */
static void
test_dirty_uffd_sync_without_wp_unpopulated_reports_first_write_to_zero_page(void **state)
{
	(void)state;
	dirty_uffd_feature_mask = ~(unsigned)DIRTY_UFFD_HAS_WP_UNPOPULATED;
	check_first_write_to_never_touched_page_is_reported(DIRTY_KIND_UFFD_SYNC);
	check_reads_are_not_writes_and_zero_pages_count_once_written(DIRTY_KIND_UFFD_SYNC);
	check_reports_exactly_written_pages(DIRTY_KIND_UFFD_SYNC);
	dirty_uffd_feature_mask = ~0u;
}

/* Before 6.7 (no WP_ASYNC or no PAGEMAP_SCAN): AUTO falls back to sync faults, and asking for
 * async is refused. */
static void test_dirty_auto_picks_uffd_sync_without_async_write_protect(void **state)
{
	unsigned char *mem = map_private(NPAGES);
	struct dirty_source_config config = {.kind = DIRTY_KIND_AUTO,
					     .region_id = 1,
					     .addr = mem,
					     .length = NPAGES * PAGE,
					     .page_size = PAGE};
	struct dirty_source *source = NULL;

	(void)state;
	dirty_uffd_feature_mask = ~(unsigned)DIRTY_UFFD_HAS_PAGEMAP_SCAN;
	assert_int_equal(dirty_source_create(&config, &source), 0);
	assert_int_equal(dirty_source_kind(source), DIRTY_KIND_UFFD_SYNC);
	dirty_source_destroy(source);
	source = NULL;
	config.kind = DIRTY_KIND_UFFD_ASYNC;
	assert_int_equal(dirty_source_create(&config, &source), -EOPNOTSUPP);
	assert_null(source);
	/* no write-protect at all (before 5.7): hashing */
	dirty_uffd_feature_mask = ~(unsigned)DIRTY_UFFD_HAS_WP;
	config.kind = DIRTY_KIND_AUTO;
	assert_int_equal(dirty_source_create(&config, &source), 0);
	assert_int_equal(dirty_source_kind(source), DIRTY_KIND_HASH);
	dirty_source_destroy(source);
	dirty_uffd_feature_mask = ~0u;
	munmap(mem, NPAGES * PAGE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dirty_uffd_async_reports_exactly_written_pages),
		cmocka_unit_test(test_dirty_uffd_sync_reports_exactly_written_pages),
		cmocka_unit_test(test_dirty_uffd_async_reads_are_not_writes),
		cmocka_unit_test(test_dirty_uffd_sync_reads_are_not_writes),
		cmocka_unit_test(
			test_dirty_uffd_async_first_write_to_never_touched_page_is_reported),
		cmocka_unit_test(
			test_dirty_uffd_sync_first_write_to_never_touched_page_is_reported),
		cmocka_unit_test(test_dirty_uffd_async_write_during_sync_is_not_lost),
		cmocka_unit_test(test_dirty_uffd_sync_write_during_sync_is_not_lost),
		cmocka_unit_test(test_dirty_uffd_async_stop_leaves_memory_writable),
		cmocka_unit_test(test_dirty_uffd_sync_stop_leaves_memory_writable),
		cmocka_unit_test(test_dirty_uffd_async_system_call_write_is_reported),
		cmocka_unit_test(test_dirty_uffd_sync_system_call_write_is_reported),
		cmocka_unit_test(test_dirty_uffd_refuses_shared_memfd_and_auto_hashes_it),
		cmocka_unit_test(test_dirty_auto_picks_uffd_async_on_this_kernel),
		cmocka_unit_test(test_dirty_uffd_second_tracker_on_same_memory_is_refused),
		cmocka_unit_test(
			test_dirty_uffd_sync_without_wp_unpopulated_reports_first_write_to_zero_page),
		cmocka_unit_test(test_dirty_auto_picks_uffd_sync_without_async_write_protect),
		cmocka_unit_test(test_dirty_uffd_async_transparent_huge_page_reports_single_pages),
		cmocka_unit_test(test_dirty_uffd_sync_transparent_huge_page_reports_single_pages),
		cmocka_unit_test(test_dirty_uffd_async_hugetlb_reports_whole_huge_page),
		cmocka_unit_test(test_dirty_uffd_sync_hugetlb_reports_whole_huge_page),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
