/* SPDX-License-Identifier: MIT */
/* tests/unit/test_holes.c - holes_open() and holes_page(): which pages of a shared tmpfs or
 * memfd mapping were never written, asked without reading (or allocating) them; a region that
 * starts inside the file; a punched page; what is refused (private, anonymous, two files). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine/holes.h"

#define PAGE 4096u
#define FILE_PAGES 64u

static long blocks_of(int fd)
{
	struct stat st;

	assert_int_equal(fstat(fd, &st), 0);
	return (long)st.st_blocks;
}

static int new_memfd(void)
{
	int fd = memfd_create("rmig-test-holes", MFD_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)FILE_PAGES * PAGE), 0);
	return fd;
}

static unsigned char *map_shared(int fd, size_t pages, size_t first_page)
{
	unsigned char *p = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
				(off_t)(first_page * PAGE));

	assert_true(p != MAP_FAILED);
	return p;
}

/* Each page asked with a fresh cursor and with one cursor carried over the pages in order
 * must agree (the cursor caches extents). */
static int hole(const struct holes *h, size_t page)
{
	struct holes_cursor c;

	holes_cursor_init(&c);
	return holes_page(h, &c, page);
}

static void expect_written(const struct holes *h, size_t npages, const int *written)
{
	struct holes_cursor c;

	holes_cursor_init(&c);
	for (size_t p = 0; p < npages; p++) {
		assert_int_equal(hole(h, p), !written[p]);
		assert_int_equal(holes_page(h, &c, p), !written[p]);
	}
}

static void test_holes_of_memfd(void **state)
{
	int written[FILE_PAGES] = {0};
	struct holes *h;
	unsigned char *ram;
	long blocks;
	int fd;

	(void)state;
	fd = new_memfd();
	ram = map_shared(fd, FILE_PAGES, 0);
	for (size_t p = 0; p < FILE_PAGES; p++) {
		written[p] = p == 3 || p == 10 || p == 11 || p == FILE_PAGES - 1;
		if (written[p])
			memset(ram + p * PAGE, 0x5a, PAGE);
	}
	/* a page written with zeros is data all the same: the file cannot tell */
	written[20] = 1;
	memset(ram + 20 * PAGE, 0, PAGE);

	assert_int_equal(holes_open(ram, FILE_PAGES * PAGE, PAGE, &h), 0);
	blocks = blocks_of(fd);
	expect_written(h, FILE_PAGES, written);
	assert_int_equal(blocks_of(fd), blocks); /* asking allocated nothing */

	/* writes after are seen by the next question */
	ram[40 * PAGE + 17] = 1;
	written[40] = 1;
	/* and a page given back to the file is a hole again */
	assert_int_equal(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 10 * PAGE, PAGE),
			 0);
	written[10] = 0;
	expect_written(h, FILE_PAGES, written);
	/* past the region: no answer */
	assert_int_equal(hole(h, FILE_PAGES), 0);
	/* every page allocated (answered from the file's block count alone) */
	for (size_t p = 0; p < FILE_PAGES; p++) {
		ram[p * PAGE] = 2;
		written[p] = 1;
	}
	expect_written(h, FILE_PAGES, written);
	assert_int_equal(holes_page(NULL, &(struct holes_cursor){0}, 0), 0);
	holes_close(h);
	munmap(ram, FILE_PAGES * PAGE);
	close(fd);
}

/* A run of data is walked to its end only once the questions go through it page by page: a
 * scattered page is answered alone (a round of a few dirty pages must not walk 100 MiB of data
 * for each), a bulk pass walks it after HOLES_WALK_AFTER pages. The answers are the same either
 * way, in any order. */
static void test_holes_scattered_pages_are_not_walked(void **state)
{
	const size_t run_end = 50, hole_end = 54;
	int written[FILE_PAGES] = {0};
	struct holes_cursor c;
	struct holes *h;
	unsigned char *ram;
	int fd;

	(void)state;
	fd = new_memfd();
	ram = map_shared(fd, FILE_PAGES, 0);
	for (size_t p = 0; p < FILE_PAGES; p++) {
		written[p] = p < run_end || p >= hole_end;
		if (written[p])
			memset(ram + p * PAGE, 0x33, PAGE);
	}
	assert_int_equal(holes_open(ram, FILE_PAGES * PAGE, PAGE, &h), 0);

	/* scattered questions: each answered on its own, nothing walked */
	holes_cursor_init(&c);
	assert_int_equal(holes_page(h, &c, 5), 0);
	assert_int_equal(c.first, 5);
	assert_int_equal(c.end, 6);
	assert_int_equal(holes_page(h, &c, 30), 0);
	assert_int_equal(c.end, 31);
	assert_int_equal(holes_page(h, &c, 31), 0); /* two in a row are still a scattered pair */
	assert_int_equal(c.end, 32);
	assert_int_equal(holes_page(h, &c, 52), 1); /* a hole is one lseek() however long */
	assert_int_equal(c.end, hole_end);

	/* page after page: walked once HOLES_WALK_AFTER pages of the run went by */
	holes_cursor_init(&c);
	for (size_t p = 0; p <= HOLES_WALK_AFTER; p++) {
		assert_int_equal(holes_page(h, &c, p), 0);
		assert_int_equal(c.end, p < HOLES_WALK_AFTER ? p + 1 : run_end);
	}
	for (size_t p = HOLES_WALK_AFTER; p < FILE_PAGES; p++)
		assert_int_equal(holes_page(h, &c, p), !written[p]);

	/* the same answers backwards and in strides, on one cursor */
	holes_cursor_init(&c);
	for (size_t p = FILE_PAGES; p-- > 0;)
		assert_int_equal(holes_page(h, &c, p), !written[p]);
	holes_cursor_init(&c);
	for (size_t k = 0; k < 7; k++)
		for (size_t p = k; p < FILE_PAGES; p += 7)
			assert_int_equal(holes_page(h, &c, p), !written[p]);
	holes_close(h);
	munmap(ram, FILE_PAGES * PAGE);
	close(fd);
}

/* A region that starts 8 pages into the file (QEMU maps RAM blocks at offsets of one file),
 * found by path for a /dev/shm file, and once unlinked through /proc/self/map_files or the
 * descriptor this process holds. */
static void test_holes_region_inside_file(void **state)
{
	char path[] = "/dev/shm/rmig-test-holes-XXXXXX";
	const size_t first = 8, npages = 32;
	int written[32] = {0};
	unsigned char *ram;
	struct holes *h;
	int fd;

	(void)state;
	fd = mkstemp(path);
	if (fd < 0) {
		skip(); /* no /dev/shm */
		return;
	}
	assert_int_equal(ftruncate(fd, (off_t)FILE_PAGES * PAGE), 0);
	ram = map_shared(fd, npages, first);
	/* file page 8 is region page 0; write file pages 7 (outside) and 9 and 39 */
	assert_int_equal(pwrite(fd, "x", 1, 7 * PAGE), 1);
	assert_int_equal(pwrite(fd, "x", 1, 9 * PAGE + 100), 1);
	assert_int_equal(pwrite(fd, "x", 1, 39 * PAGE), 1);
	written[1] = written[31] = 1;
	assert_int_equal(holes_open(ram, npages * PAGE, PAGE, &h), 0);
	expect_written(h, npages, written);
	holes_close(h);

	assert_int_equal(unlink(path), 0); /* "(deleted)": no path to open */
	assert_int_equal(holes_open(ram, npages * PAGE, PAGE, &h), 0);
	expect_written(h, npages, written);
	holes_close(h);
	munmap(ram, npages * PAGE);
	close(fd);
}

/* A path longer than any fixed line buffer (three directories of 200 characters): the maps
 * line must be read whole, and the file still found (by map_files or the descriptor). */
static void test_holes_long_path(void **state)
{
	char path[700] = "/dev/shm/rmig-test-holes-long", name[201];
	int written[16] = {0};
	unsigned char *ram;
	struct holes *h;
	int fd;

	(void)state;
	memset(name, 'd', 200);
	name[200] = '\0';
	for (int level = 0; level < 3; level++) {
		if (mkdir(path, 0700) && errno != EEXIST) {
			skip(); /* no /dev/shm */
			return;
		}
		strcat(path, "/");
		strcat(path, name);
	}
	assert_int_equal(mkdir(path, 0700) == 0 || errno == EEXIST, 1);
	strcat(path, "/ram");
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 16 * PAGE), 0);
	ram = map_shared(fd, 16, 0);
	ram[5 * PAGE] = 1;
	written[5] = 1;
	assert_int_equal(holes_open(ram, 16 * PAGE, PAGE, &h), 0);
	expect_written(h, 16, written);
	holes_close(h);
	munmap(ram, 16 * PAGE);
	close(fd);
	assert_int_equal(unlink(path), 0);
	for (int level = 0; level < 4; level++) {
		*strrchr(path, '/') = '\0';
		assert_int_equal(rmdir(path), 0);
	}
}

static void test_holes_refused(void **state)
{
	unsigned char *anon, *priv, *two;
	struct holes *h = (struct holes *)1;
	int fd = new_memfd(), other = new_memfd();

	(void)state;
	anon = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(anon != MAP_FAILED);
	assert_int_equal(holes_open(anon, 4 * PAGE, PAGE, &h), -ENOTSUP);
	assert_null(h);

	/* a private mapping's written pages are its own, not the file's */
	priv = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	assert_true(priv != MAP_FAILED);
	assert_int_equal(holes_open(priv, 4 * PAGE, PAGE, &h), -ENOTSUP);

	/* two files side by side: one region cannot be both */
	two = mmap(NULL, 8 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(two != MAP_FAILED);
	assert_true(mmap(two + 4 * PAGE, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
			 other, 0) != MAP_FAILED);
	assert_int_equal(holes_open(two, 8 * PAGE, PAGE, &h), -ENOTSUP);
	/* each half alone is fine */
	assert_int_equal(holes_open(two + 4 * PAGE, 4 * PAGE, PAGE, &h), 0);
	holes_close(h);
	/* the same file at a discontinuous offset (pages 0-3, then 0-3 again) */
	assert_true(mmap(two + 4 * PAGE, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
			 fd, 0) != MAP_FAILED);
	assert_int_equal(holes_open(two, 8 * PAGE, PAGE, &h), -ENOTSUP);
	/* a range running past the mapping */
	munmap(two + 4 * PAGE, 4 * PAGE);
	assert_int_equal(holes_open(two, 8 * PAGE, PAGE, &h), -ENOTSUP);

	munmap(anon, 4 * PAGE);
	munmap(priv, 4 * PAGE);
	munmap(two, 4 * PAGE);
	close(fd);
	close(other);
}

/* A mapping split in several VMAs (mprotect, madvise do that) is still one file. */
static void test_holes_split_mapping(void **state)
{
	int written[FILE_PAGES] = {0};
	unsigned char *ram;
	struct holes *h;
	int fd = new_memfd();

	(void)state;
	ram = map_shared(fd, FILE_PAGES, 0);
	assert_int_equal(mprotect(ram + 16 * PAGE, 8 * PAGE, PROT_READ), 0);
	memset(ram + 30 * PAGE, 1, PAGE);
	written[30] = 1;
	assert_int_equal(holes_open(ram, FILE_PAGES * PAGE, PAGE, &h), 0);
	expect_written(h, FILE_PAGES, written);
	holes_close(h);
	munmap(ram, FILE_PAGES * PAGE);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_holes_of_memfd),
		cmocka_unit_test(test_holes_scattered_pages_are_not_walked),
		cmocka_unit_test(test_holes_region_inside_file),
		cmocka_unit_test(test_holes_long_path),
		cmocka_unit_test(test_holes_refused),
		cmocka_unit_test(test_holes_split_mapping),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
