/* SPDX-License-Identifier: MIT */
/* Zero pages cross as data-less markers: the page payload on the wire is exactly the non-zero
 * pages, and the destination (which starts as garbage) still ends with zeroes there. On fresh
 * destination RAM the zero pages are not even allocated (discarded, not cleared), except where
 * the transport pins what it registers (rdma); on a private file mapping, where discarding
 * would bring back the file's bytes, they are cleared. On the source, pages of a tmpfs file (a
 * RAM file, a memfd) that were never written are sent as zero pages without being read, so the
 * source does not allocate them either. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdatomic.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "integration/engine_harness.h"

static void test_zero_pages_not_sent_as_data(void **state)
{
	struct rmig_stats st = {.struct_size = sizeof(st)};
	struct rmig_transport_stats ts = {.struct_size = sizeof(ts)};
	static const unsigned char zero[HARNESS_PAGE];
	struct harness h;
	size_t pages, zero_pages;

	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	harness_init(&h, harness_transport, 64u << 20, 3); /* every third page zero */
	pages = harness_pages(&h);
	zero_pages = (pages + 2) / 3;
	harness_sessions(&h);
	harness_run(&h);

	assert_int_equal(h.src_ret, 0);
	assert_int_equal(h.dst_ret, 0);
	assert_int_equal(rmig_session_stats(h.src, &st), 0);
	assert_int_equal(st.zero_pages, zero_pages);
	assert_int_equal(st.pages_sent, pages);
	assert_int_equal(st.data_bytes, (pages - zero_pages) * HARNESS_PAGE);
	/* What the transport itself counts as page payload. */
	assert_int_equal(rmig_session_transport_stats(h.src, &ts), 0);
	assert_int_equal(ts.data_bytes_sent, (pages - zero_pages) * HARNESS_PAGE);
	for (size_t p = 0; p < pages; p += 3)
		assert_memory_equal(h.dst_ram + p * HARNESS_PAGE, zero, HARNESS_PAGE);
	assert_memory_equal(h.src_ram, h.dst_ram, h.src_length);
	harness_fini(&h);
}

static int page_resident(const unsigned char *ram, size_t page)
{
	unsigned char vec = 0;

	assert_int_equal(mincore((void *)(ram + page * HARNESS_PAGE), HARNESS_PAGE, &vec), 0);
	return vec & 1;
}

static unsigned char *map_anonymous(size_t length)
{
	unsigned char *p =
		mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	assert_true(p != MAP_FAILED);
	/* 4 KiB pages, so that residency is the page's own. */
	assert_int_equal(madvise(p, length, MADV_NOHUGEPAGE), 0);
	return p;
}

/* The destination's second region mapped from fd (then closed) with flags, and the migration
 * run to its end, both sides successful. */
static void run_into_second_mapping(struct harness *h, int fd, int flags)
{
	h->dst_second = mmap(NULL, h->second_length, PROT_READ | PROT_WRITE, flags, fd, 0);
	assert_true(h->dst_second != MAP_FAILED);
	close(fd);
	harness_sessions(h);
	harness_run(h);
	assert_int_equal(h->src_ret, 0);
	assert_int_equal(h->dst_ret, 0);
}

/* The destination's RAM fresh, as a hypervisor's new guest has it: private anonymous memory for
 * the first region, a shared memfd (QEMU's memory-backend-memfd, or a RAM file) for the second.
 * Every third page of the first region and every other page of the second are zero. */
static void test_zero_pages_not_allocated_on_fresh_destination(void **state)
{
	static const unsigned char zero[HARNESS_PAGE];
	const size_t second = 8u << 20, second_pages = second / HARNESS_PAGE;
	struct harness h;
	size_t pages;
	int fd;

	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	harness_init(&h, harness_transport, 16u << 20, 3);
	pages = harness_pages(&h);
	assert_int_equal(madvise(h.dst_ram, h.dst_length, MADV_NOHUGEPAGE), 0);
	assert_int_equal(madvise(h.dst_ram, h.dst_length, MADV_DONTNEED), 0);
	h.second_length = second;
	h.src_second = map_anonymous(second);
	for (size_t p = 1; p < second_pages; p += 2)
		memset(h.src_second + p * HARNESS_PAGE, (int)(p & 0x7f) | 1, HARNESS_PAGE);
	fd = memfd_create("rmig-test-dst", 0);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)second), 0);
	run_into_second_mapping(&h, fd, MAP_SHARED);
	/* Residency first: reading a page below would map it. rdma pinned both regions whole at
	 * registration, so every page is there. */
	if (strcmp(harness_transport, "rdma")) {
		for (size_t p = 0; p < pages; p += 3)
			assert_false(page_resident(h.dst_ram, p));
		for (size_t p = 0; p < second_pages; p += 2)
			assert_false(page_resident(h.dst_second, p));
	}
	for (size_t p = 0; p < pages; p += 3)
		assert_memory_equal(h.dst_ram + p * HARNESS_PAGE, zero, HARNESS_PAGE);
	assert_memory_equal(h.src_ram, h.dst_ram, h.src_length);
	assert_memory_equal(h.src_second, h.dst_second, second);
	harness_fini(&h);
	munmap(h.src_second, second);
	munmap(h.dst_second, second);
}

/* A destination region mapping a file privately: a discarded page would read the file again,
 * so zero pages must be cleared. The file holds 0xab everywhere. */
static void test_zero_pages_cleared_on_private_file_mapping(void **state)
{
	const size_t second = 4u << 20, second_pages = second / HARNESS_PAGE;
	char path[] = "/tmp/rmig-test-private-XXXXXX";
	unsigned char *fill;
	struct harness h;
	int fd;

	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	harness_init(&h, harness_transport, 4u << 20, 3);
	h.second_length = second;
	h.src_second = map_anonymous(second);
	for (size_t p = 1; p < second_pages; p += 2)
		memset(h.src_second + p * HARNESS_PAGE, 0x5c, HARNESS_PAGE);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	fill = malloc(second);
	assert_non_null(fill);
	memset(fill, 0xab, second);
	assert_int_equal(write(fd, fill, second), (ssize_t)second);
	free(fill);
	run_into_second_mapping(&h, fd, MAP_PRIVATE);
	assert_memory_equal(h.src_second, h.dst_second, second);
	assert_memory_equal(h.src_ram, h.dst_ram, h.src_length);
	harness_fini(&h);
	munmap(h.src_second, second);
	munmap(h.dst_second, second);
}

static long blocks_of(int fd)
{
	struct stat st;

	assert_int_equal(fstat(fd, &st), 0);
	return (long)st.st_blocks;
}

/* The source's second region a shared memfd mapped from 64 KiB into the file, of which only
 * every 16th page was written (one of them with zeros): the migration reads none of the
 * rest, so the file holds no more blocks after it than before (but on rdma, whose registration
 * pins every page), whichever dirty source tracks
 * it (hash, as for an unmodified QEMU's RAM file, hashes the holes unread too; with a
 * hypervisor's log, as QEMU linked with librmig has, the verification does). The
 * destination ends byte-identical, the holes crossed as zero pages, and the verification
 * found no page to resend. */
/* The hypervisor's dirty log for a guest that writes nothing during the migration: the
 * verification then hashes the source's pages itself (no tracker keeps hashes). */
static int no_writes_logged(struct harness *h, uint32_t region_id, uint64_t *bitmap, size_t npages)
{
	(void)h;
	(void)region_id;
	(void)bitmap;
	(void)npages;
	return 0;
}

static void run_source_holes(uint32_t dirty_source)
{
	const size_t second = 8u << 20, pages = second / HARNESS_PAGE, skip = 16;
	const uint32_t saved = harness_dirty_source;
	struct rmig_stats st = {.struct_size = sizeof(st)};
	struct harness h;
	long blocks;
	int fd;

	harness_dirty_source = dirty_source;
	harness_init(&h, harness_transport, 4u << 20, 3);
	if (dirty_source == RMIG_DIRTY_HYPERVISOR)
		h.on_dirty_sync = no_writes_logged;
	h.second_length = second;
	fd = memfd_create("rmig-test-src", MFD_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)(second + (64u << 10))), 0);
	h.src_second = mmap(NULL, second, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 64u << 10);
	assert_true(h.src_second != MAP_FAILED);
	for (size_t p = 0; p < pages; p += skip)
		memset(h.src_second + p * HARNESS_PAGE, p == skip ? 0 : (int)(p & 0x7f) | 1,
		       HARNESS_PAGE);
	h.dst_second = map_anonymous(second);
	memset(h.dst_second, 0xee, second); /* stale bytes the holes must clear */
	blocks = blocks_of(fd);
	harness_sessions(&h);
	harness_run(&h);
	harness_dirty_source = saved;
	assert_int_equal(h.src_ret, 0);
	assert_int_equal(h.dst_ret, 0);
	/* rdma registers (pins) the source's regions whole: every page is allocated there */
	if (strcmp(harness_transport, "rdma"))
		assert_int_equal(blocks_of(fd), blocks);
	assert_int_equal(rmig_session_stats(h.src, &st), 0);
	assert_true(st.zero_pages >= pages - pages / skip);
	/* the verification (all pages, the library's default) hashed the holes as zero pages,
	 * and the destination's hashes of what landed agreed with every one */
	assert_true(st.pages_verified >= pages);
	assert_int_equal(st.pages_mismatched, 0);
	assert_memory_equal(h.src_second, h.dst_second, second);
	assert_memory_equal(h.src_ram, h.dst_ram, h.src_length);
	harness_fini(&h);
	munmap(h.src_second, second);
	munmap(h.dst_second, second);
	close(fd);
}

/* Each live round's end writes a page in the middle of the memfd's one long hole, after the
 * batch builder has learnt that the whole hole is one. The next sync reports the page, and the
 * builder must ask the file again rather than trust what it learnt before the sync: with the
 * verification off (it would repair a lost page), the destination must still end
 * byte-identical. */
struct holes_filler {
	unsigned char *ram;
	size_t pages;
	unsigned rounds;
};

static void fill_hole_at_round_end(struct harness *h, uint32_t event, const struct rmig_stats *st)
{
	struct holes_filler *f = h->user;
	size_t page;

	(void)st;
	if (event != RMIG_EVENT_ROUND_END || atomic_load(&h->src_paused))
		return;
	page = f->pages / 2 + f->rounds++ * 7;
	if (page < f->pages)
		memset(f->ram + page * HARNESS_PAGE, 0x40 + (int)(f->rounds & 0x3f), HARNESS_PAGE);
}

static void run_source_holes_filled(uint32_t dirty_source)
{
	const size_t second = 8u << 20, pages = second / HARNESS_PAGE;
	const uint32_t saved = harness_dirty_source;
	struct holes_filler f = {.pages = pages};
	struct harness h;
	int fd;

	harness_dirty_source = dirty_source;
	harness_init(&h, harness_transport, 8u << 20, 5);
	h.params.field_mask |= RMIG_PARAM_VERIFY;
	h.params.verify = RMIG_VERIFY_NONE;
	h.second_length = second;
	fd = memfd_create("rmig-test-src-fill", MFD_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)second), 0);
	h.src_second = mmap(NULL, second, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(h.src_second != MAP_FAILED);
	close(fd);
	memset(h.src_second, 0x11, HARNESS_PAGE); /* one page of data, then one long hole */
	f.ram = h.src_second;
	h.user = &f;
	h.on_progress = fill_hole_at_round_end;
	h.dst_second = map_anonymous(second);
	memset(h.dst_second, 0xee, second);
	harness_sessions(&h);
	harness_writer_start(&h); /* keeps rounds coming */
	harness_run(&h);
	harness_dirty_source = saved;
	assert_int_equal(h.src_ret, 0);
	assert_int_equal(h.dst_ret, 0);
	assert_true(f.rounds >= 1);
	assert_memory_equal(h.src_second, h.dst_second, second);
	assert_memory_equal(h.src_ram, h.dst_ram, h.src_length);
	harness_fini(&h);
	munmap(h.src_second, second);
	munmap(h.dst_second, second);
}

static void test_source_does_not_read_its_holes(void **state)
{
	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	run_source_holes(harness_dirty_source);
	if (harness_dirty_source != RMIG_DIRTY_HASH)
		run_source_holes(RMIG_DIRTY_HASH);
	run_source_holes(RMIG_DIRTY_HYPERVISOR);
}

static void test_source_holes_written_between_rounds(void **state)
{
	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	run_source_holes_filled(harness_dirty_source);
	if (harness_dirty_source != RMIG_DIRTY_HASH)
		run_source_holes_filled(RMIG_DIRTY_HASH);
}

HARNESS_MAIN(cmocka_unit_test(test_zero_pages_not_sent_as_data),
	     cmocka_unit_test(test_zero_pages_not_allocated_on_fresh_destination),
	     cmocka_unit_test(test_zero_pages_cleared_on_private_file_mapping),
	     cmocka_unit_test(test_source_does_not_read_its_holes),
	     cmocka_unit_test(test_source_holes_written_between_rounds))
