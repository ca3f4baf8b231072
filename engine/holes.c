/* SPDX-License-Identifier: MIT */
/* engine/holes.c - see holes.h. The file behind a mapping is found from /proc/self/maps (its
 * device, inode and offset), then opened by its path, by /proc/self/map_files (needs
 * CAP_SYS_ADMIN) or through a descriptor of this process that names the same inode (a memfd
 * has no path; QEMU keeps its RAM block's descriptor open); each candidate is checked against
 * the device and inode the mapping names. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "engine/holes.h"
#include "transport/log.h"

#ifndef TMPFS_MAGIC
#define TMPFS_MAGIC 0x01021994
#endif

struct holes {
	int fd;
	uint64_t file_offset; /* of the region's first byte */
	size_t page_size;
	size_t npages;
};

/* The mapping behind a range: one file, shared, at contiguous offsets. */
struct holes_backing {
	unsigned dev_major, dev_minor;
	uint64_t inode;
	uint64_t file_offset;
	uintptr_t first_start, first_end; /* the first mapping's bounds, for map_files */
	char path[256];
};

static int holes_maps_line(const char *line, uintptr_t *start, uintptr_t *end, char *perms,
			   uint64_t *offset, unsigned *major_p, unsigned *minor_p, uint64_t *inode,
			   char *path, size_t path_len)
{
	unsigned long s, e;
	unsigned long long off, ino;
	int consumed = 0;

	if (sscanf(line, "%lx-%lx %4s %llx %x:%x %llu %n", &s, &e, perms, &off, major_p, minor_p,
		   &ino, &consumed) < 7)
		return 0;
	snprintf(path, path_len, "%s", consumed ? line + consumed : "");
	path[strcspn(path, "\n")] = '\0';
	*start = s;
	*end = e;
	*offset = off;
	*inode = ino;
	return 1;
}

/* 0 when [begin, end) is covered by shared mappings of one file at contiguous offsets. */
static int holes_find_backing(uintptr_t begin, uintptr_t end, struct holes_backing *b)
{
	uintptr_t covered = begin;
	char *line = NULL, perms[8], path[256];
	int found = 0, ret = -ENOTSUP;
	FILE *maps = fopen("/proc/self/maps", "re");
	size_t line_len = 0;

	if (!maps)
		return -errno;
	/* getline(): a long path must not split a line into two that parse */
	while (getline(&line, &line_len, maps) > 0) {
		uintptr_t start, stop;
		uint64_t offset, inode;
		unsigned major_n, minor_n;

		if (!holes_maps_line(line, &start, &stop, perms, &offset, &major_n, &minor_n,
				     &inode, path, sizeof(path)))
			continue;
		if (stop <= covered || start >= end)
			continue;
		if (start > covered || perms[3] != 's' || !inode)
			break; /* a gap, or a part that is not a shared file */
		if (!found) {
			*b = (struct holes_backing){
				.dev_major = major_n,
				.dev_minor = minor_n,
				.inode = inode,
				.file_offset = offset + (begin - start),
				.first_start = start,
				.first_end = stop,
			};
			snprintf(b->path, sizeof(b->path), "%s", path);
			found = 1;
		} else if (major_n != b->dev_major || minor_n != b->dev_minor ||
			   inode != b->inode ||
			   offset + (covered - start) != b->file_offset + (covered - begin)) {
			break;
		}
		covered = stop;
		if (covered >= end) {
			ret = 0;
			break;
		}
	}
	free(line);
	fclose(maps);
	return ret;
}

static int holes_is_backing(const struct stat *st, const struct holes_backing *b)
{
	return S_ISREG(st->st_mode) && (uint64_t)st->st_ino == b->inode &&
	       major(st->st_dev) == b->dev_major && minor(st->st_dev) == b->dev_minor;
}

/* Open path read-only if it is the backing file; else -1. */
static int holes_try_open(const char *path, const struct holes_backing *b)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	if (fstat(fd, &st) || !holes_is_backing(&st, b)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* A descriptor of this process on the same inode, reopened as our own open file. */
static int holes_open_via_fds(const struct holes_backing *b)
{
	DIR *dir = opendir("/proc/self/fd");
	struct dirent *de;
	int fd = -1;

	if (!dir)
		return -1;
	while (fd < 0 && (de = readdir(dir))) {
		char path[32 + sizeof(de->d_name)];
		struct stat st;

		if (de->d_name[0] == '.')
			continue;
		if (fstatat(dirfd(dir), de->d_name, &st, 0) || !holes_is_backing(&st, b))
			continue;
		snprintf(path, sizeof(path), "/proc/self/fd/%s", de->d_name);
		fd = holes_try_open(path, b);
	}
	closedir(dir);
	return fd;
}

static int holes_open_backing(const struct holes_backing *b)
{
	static const char deleted[] = " (deleted)";
	size_t len = strlen(b->path);
	char map_file[64];
	int fd = -1;

	if (b->path[0] == '/' &&
	    (len < sizeof(deleted) - 1 || strcmp(b->path + len - (sizeof(deleted) - 1), deleted)))
		fd = holes_try_open(b->path, b);
	if (fd < 0) {
		snprintf(map_file, sizeof(map_file), "/proc/self/map_files/%lx-%lx",
			 (unsigned long)b->first_start, (unsigned long)b->first_end);
		fd = holes_try_open(map_file, b);
	}
	if (fd < 0)
		fd = holes_open_via_fds(b);
	return fd;
}

int holes_open(const void *addr, size_t length, size_t page_size, struct holes **holes_p)
{
	struct holes_backing b;
	struct statfs sfs;
	struct holes *h;
	int fd;

	*holes_p = NULL;
	if (!length || !page_size)
		return -EINVAL;
	if (holes_find_backing((uintptr_t)addr, (uintptr_t)addr + length, &b))
		return -ENOTSUP;
	fd = holes_open_backing(&b);
	if (fd < 0) {
		rmig_log_debug("holes: cannot open the file behind %p (%s): pages are read", addr,
			       b.path);
		return -ENOTSUP;
	}
	/* tmpfs (memfd too) keeps every written page in its page cache or swap, both of which
	 * SEEK_DATA reports; hugetlbfs and disk files are left to reading. */
	if (fstatfs(fd, &sfs) || sfs.f_type != TMPFS_MAGIC ||
	    (lseek(fd, (off_t)b.file_offset, SEEK_DATA) < 0 && errno != ENXIO)) {
		close(fd);
		return -ENOTSUP;
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		close(fd);
		return -ENOMEM;
	}
	*h = (struct holes){
		.fd = fd,
		.file_offset = b.file_offset,
		.page_size = page_size,
		.npages = length / page_size,
	};
	rmig_log_debug("holes: %p (%s) is a tmpfs file: its holes are not read", addr, b.path);
	*holes_p = h;
	return 0;
}

void holes_close(struct holes *h)
{
	if (!h)
		return;
	close(h->fd);
	free(h);
}

/* Every page of the file allocated: no holes anywhere, nothing to walk. */
static int holes_none(const struct holes *h)
{
	struct stat st;

	return !fstat(h->fd, &st) && (uint64_t)st.st_blocks * 512u >= (uint64_t)st.st_size;
}

int holes_page(const struct holes *h, struct holes_cursor *c, size_t page)
{
	uint64_t at, next;
	size_t streak;
	off_t found;

	if (!h || page >= h->npages)
		return 0;
	if (page >= c->first && page < c->end)
		return c->hole;
	/* Once per cursor (per sync): a file with holes would otherwise pay an fstat() for
	 * every extent besides its two lseek()s. */
	if (c->first == c->end && holes_none(h)) {
		*c = (struct holes_cursor){.first = page, .end = h->npages};
		return 0;
	}
	at = h->file_offset + (uint64_t)page * h->page_size;
	found = lseek(h->fd, (off_t)at, SEEK_DATA);
	if (found < 0 && errno == ENXIO) {
		/* no data from here to the end of the file */
		*c = (struct holes_cursor){.first = page, .end = h->npages, .hole = 1};
		return 1;
	}
	if (found < 0)
		return 0;
	if ((uint64_t)found > at) {
		/* pages wholly before the data are holes; the page the data starts in is not */
		next = ((uint64_t)found - h->file_offset) / h->page_size;
		if (next == page)
			return 0;
		*c = (struct holes_cursor){
			.first = page, .end = next < h->npages ? next : h->npages, .hole = 1};
		return 1;
	}
	/* Data at page. Walk to the end of its run only when the questions are going through it
	 * page by page (a bulk round); a scattered page is answered on its own. */
	streak = page == c->end && c->end > c->first && !c->hole ? c->streak + 1 : 0;
	if (streak < HOLES_WALK_AFTER) {
		*c = (struct holes_cursor){.first = page, .end = page + 1, .streak = streak};
		return 0;
	}
	found = lseek(h->fd, (off_t)at, SEEK_HOLE);
	if (found < 0 || (uint64_t)found <= at) {
		*c = (struct holes_cursor){.first = page, .end = page + 1};
		return 0;
	}
	next = ((uint64_t)found - h->file_offset + h->page_size - 1) / h->page_size;
	*c = (struct holes_cursor){.first = page, .end = next < h->npages ? next : h->npages};
	return 0;
}
