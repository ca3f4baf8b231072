/* SPDX-License-Identifier: MIT */
/* engine/holes.h - which pages of a source region were never written, without reading them.
 *
 * Guest RAM a hypervisor shares with rmig is a tmpfs file or a memfd (QEMU's
 * memory-backend-file on /dev/shm, memory-backend-memfd). A page the guest never wrote is a
 * hole of that file: it reads as zeros, and reading it through the mapping makes the kernel
 * allocate and clear a page for it. lseek(SEEK_DATA / SEEK_HOLE) on the file says where the
 * holes are (a swapped-out page counts as data), so the source can send such pages as zero
 * runs and hash them as zero pages without touching them: a guest that used 100 MiB of its
 * 1 GiB costs 100 MiB of reading, not 1 GiB, and the source host does not grow by the rest.
 *
 * What a hole answer means: the page was a hole when asked. Asking is as racy as reading the
 * page would be, and is safe for the same reason: the caller asks only after the dirty sync
 * whose pages it is sending (or hashing), so a write after the question is caught by the next
 * sync. A cursor caches one extent between questions; keep it while no sync happens (the
 * kernel finds the end of a run of data by walking it, about 45 ns a page, 12 ms a GiB here, so
 * asking afresh for every batch would cost more than reading), and reset it
 * (holes_cursor_init()) at every sync, never carrying one across. That walk is taken only once
 * the questions go page after page through data (HOLES_WALK_AFTER of them): a round of
 * scattered dirty pages costs one SEEK_DATA a page (about 0.2 us), not a walk of the whole run
 * for each first page it lands in (1.2 ms for 100 MiB of data). A file with every page
 * allocated (no holes: a guest that wrote all its RAM) is answered from fstat() alone. */
#ifndef RMIG_ENGINE_HOLES_H
#define RMIG_ENGINE_HOLES_H

#include <stddef.h>

struct holes;

/* Data is answered a page at a time until this many pages in a row were asked, each right
 * after the one before; then the run is walked to its end in one lseek(SEEK_HOLE). */
#define HOLES_WALK_AFTER 32u

/* A run of pages known to be all holes or all data, from one lseek() pair. */
struct holes_cursor {
	size_t first, end; /* pages [first, end); empty (first == end) before any question */
	int hole;
	size_t streak; /* one-page data answers in a row, each page right after the previous */
};

/* Find the shared tmpfs file behind [addr, addr + length) and open it (its own open file, so
 * the hypervisor's file offset is left alone). 0 and *holes_p; -ENOTSUP when the range is not
 * one shared mapping of one tmpfs or memfd file (anonymous or private memory, hugetlbfs, a
 * disk file, several files), or the file cannot be opened: the caller reads pages as before. */
int holes_open(const void *addr, size_t length, size_t page_size, struct holes **holes_p);
void holes_close(struct holes *h);

static inline void holes_cursor_init(struct holes_cursor *c)
{
	c->first = c->end = 0;
	c->hole = 0;
	c->streak = 0;
}

/* 1 when page (of the region holes_open() was given) lies wholly in a hole of the file, so it
 * reads as zeros; 0 when it holds data or the file cannot say (the caller reads it). h may be
 * NULL (always 0). */
int holes_page(const struct holes *h, struct holes_cursor *c, size_t page);

#endif /* RMIG_ENGINE_HOLES_H */
