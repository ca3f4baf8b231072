/* SPDX-License-Identifier: MIT */
/* transport/memory.h - memory for rmig's own buffers (bounce buffers, receive rings): hugepages
 * when the host has them, bound to the NIC's NUMA node when libnuma works, plain pages
 * otherwise. What was obtained is recorded so callers and tests can tell. */
#ifndef RMIG_TRANSPORT_MEMORY_H
#define RMIG_TRANSPORT_MEMORY_H

#include <stdatomic.h>
#include <stddef.h>

enum {
	TRANSPORT_MEM_NO_HUGEPAGES = 1u << 0, /* skip hugepages even when available */
};

enum transport_mem_source {
	TRANSPORT_MEM_HUGETLBFS = 1, /* libhugetlbfs get_huge_pages() */
	TRANSPORT_MEM_MAP_HUGETLB,   /* mmap(MAP_HUGETLB) */
	TRANSPORT_MEM_PAGES,	     /* plain anonymous mmap */
};

struct transport_mem {
	void *addr;
	size_t length;	  /* usable bytes (>= the length asked for) */
	size_t page_size; /* page size backing addr */
	enum transport_mem_source source;
	int hugepage;  /* 1 when backed by hugepages */
	int numa_node; /* node the memory was bound to, -1 when not bound */
};

/* Allocate len bytes (zeroed), preferring hugepages, bound to numa_node (-1: no binding).
 * Falls back to plain pages with one info log line saying why. */
int transport_mem_alloc(size_t len, int numa_node, unsigned flags, struct transport_mem *mem_p);
void transport_mem_free(struct transport_mem *mem);

/* Fault in [addr, addr + len) writable ahead of use (MADV_POPULATE_WRITE), keeping what the
 * pages hold, TRANSPORT_MEM_POPULATE_STEP bytes at a time until done or *stop (when given)
 * becomes non-zero. *done_p: the bytes populated. -errno when the kernel would not
 * (-EINVAL before Linux 5.14), with *done_p what it did before. Safe from any thread. */
#define TRANSPORT_MEM_POPULATE_STEP (32u << 20)
int transport_mem_populate(void *addr, size_t len, const atomic_int *stop, size_t *done_p);

/* NUMA node of verbs device name (e.g. "rxe0"), from sysfs; -1 when unknown. */
int transport_mem_device_numa_node(const char *device_name);

#endif /* RMIG_TRANSPORT_MEMORY_H */
