/* SPDX-License-Identifier: MIT */
/* transport/memory.c - hugepage, NUMA-local memory for rmig's own buffers, with a clean fallback
 * to plain pages. Hugepages cut TLB misses and let one registration cover more bytes per
 * translation entry on the NIC; NUMA locality keeps DMA off the inter-socket link. libnuma and
 * libhugetlbfs are optional (RMIG_NUMA, RMIG_HUGETLBFS): without them nothing is bound and
 * hugepages come from mmap(MAP_HUGETLB) alone. */
#include "transport/memory.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifdef RMIG_HAVE_HUGETLBFS
#include <hugetlbfs.h>
#endif
#ifdef RMIG_HAVE_NUMA
#include <numa.h>
#endif

#include "transport/log.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

static size_t memory_round_up(size_t len, size_t unit)
{
	return (len + unit - 1) / unit * unit;
}

/* Bind [addr, addr+len) to node; the pages are not touched yet, so the binding decides where
 * they land. Returns 1 when bound, 0 when libnuma is unusable or the node does not exist. */
static int memory_bind(void *addr, size_t len, int numa_node)
{
#ifndef RMIG_HAVE_NUMA
	(void)addr;
	(void)len;
	(void)numa_node;
	return 0;
#else
	if (numa_node < 0)
		return 0;
	if (numa_available() < 0)
		return 0;
	if (numa_node > numa_max_node())
		return 0;
	numa_tonode_memory(addr, len, numa_node);
	return 1;
#endif
}

/* The default hugepage size, 0 when unknown. */
static long memory_huge_page_size(void)
{
#ifdef RMIG_HAVE_HUGETLBFS
	return gethugepagesize();
#else
	long kib = 0;
	char line[128];
	FILE *file = fopen("/proc/meminfo", "r");

	if (!file)
		return 0;
	while (fgets(line, sizeof(line), file))
		if (sscanf(line, "Hugepagesize: %ld kB", &kib) == 1)
			break;
	fclose(file);
	return kib * 1024;
#endif
}

static int memory_try_hugetlbfs(size_t len, struct transport_mem *mem)
{
#ifndef RMIG_HAVE_HUGETLBFS
	(void)len;
	(void)mem;
	return -ENOENT;
#else
	long huge_size = gethugepagesize();
	size_t length;
	void *addr;

	/* libhugetlbfs needs a mounted hugetlbfs and a page size; no pool means no point. */
	if (huge_size <= 0 || hugetlbfs_find_path() == NULL)
		return -ENOENT;
	length = memory_round_up(len, (size_t)huge_size);
	addr = get_huge_pages(length, GHP_DEFAULT);
	if (!addr)
		return -ENOMEM;
	mem->addr = addr;
	mem->length = length;
	mem->page_size = (size_t)huge_size;
	mem->source = TRANSPORT_MEM_HUGETLBFS;
	mem->hugepage = 1;
	return 0;
#endif
}

static int memory_try_map_hugetlb(size_t len, struct transport_mem *mem)
{
	long huge_size = memory_huge_page_size();
	size_t length;
	void *addr;

	if (huge_size <= 0)
		huge_size = 2L * 1024 * 1024;
	length = memory_round_up(len, (size_t)huge_size);
	addr = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB,
		    -1, 0);
	if (addr == MAP_FAILED)
		return -errno;
	mem->addr = addr;
	mem->length = length;
	mem->page_size = (size_t)huge_size;
	mem->source = TRANSPORT_MEM_MAP_HUGETLB;
	mem->hugepage = 1;
	return 0;
}

static int memory_map_pages(size_t len, struct transport_mem *mem)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t length = memory_round_up(len, page);
	void *addr;

	addr = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (addr == MAP_FAILED)
		return -errno;
	mem->addr = addr;
	mem->length = length;
	mem->page_size = page;
	mem->source = TRANSPORT_MEM_PAGES;
	mem->hugepage = 0;
	return 0;
}

int transport_mem_alloc(size_t len, int numa_node, unsigned flags, struct transport_mem *mem_p)
{
	struct transport_mem mem = {.numa_node = -1};
	int ret = -ENOENT;

	if (len == 0)
		return -EINVAL;
	if (!(flags & TRANSPORT_MEM_NO_HUGEPAGES)) {
		ret = memory_try_hugetlbfs(len, &mem);
		if (ret)
			ret = memory_try_map_hugetlb(len, &mem);
	}
	if (ret) {
		ret = memory_map_pages(len, &mem);
		if (ret) {
			rmig_log_error("memory: mmap of %zu bytes failed: %s", len, strerror(-ret));
			return ret;
		}
		if (!(flags & TRANSPORT_MEM_NO_HUGEPAGES))
			rmig_log_info("memory: no hugepages for %zu bytes (pool empty or hugetlbfs "
				      "not mounted), using %zu-byte pages",
				      len, mem.page_size);
	}
	if (memory_bind(mem.addr, mem.length, numa_node))
		mem.numa_node = numa_node;
	/* Touch now so the binding takes effect and the first DMA does not fault. */
	memset(mem.addr, 0, mem.length);
	*mem_p = mem;
	return 0;
}

void transport_mem_free(struct transport_mem *mem)
{
	if (!mem || !mem->addr)
		return;
#ifdef RMIG_HAVE_HUGETLBFS
	if (mem->source == TRANSPORT_MEM_HUGETLBFS)
		free_huge_pages(mem->addr);
	else
#endif
		munmap(mem->addr, mem->length);
	mem->addr = NULL;
	mem->length = 0;
}

int transport_mem_device_numa_node(const char *device_name)
{
	char path[256];
	FILE *file;
	int node = -1;

	if (!device_name || strchr(device_name, '/'))
		return -1;
	snprintf(path, sizeof(path), "/sys/class/infiniband/%s/device/numa_node", device_name);
	file = fopen(path, "r");
	if (!file)
		return -1;
	if (fscanf(file, "%d", &node) != 1)
		node = -1;
	fclose(file);
	return node < 0 ? -1 : node;
}

int transport_mem_populate(void *addr, size_t len, const atomic_int *stop, size_t *done_p)
{
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t at = (uintptr_t)addr & ~(page - 1), end = (uintptr_t)addr + len;

	*done_p = 0;
	if (!addr || !len)
		return 0;
	end = (end + page - 1) & ~(page - 1);
	while (at < end && !(stop && atomic_load(stop))) {
		size_t step = end - at < TRANSPORT_MEM_POPULATE_STEP ? end - at
								     : TRANSPORT_MEM_POPULATE_STEP;

		if (madvise((void *)at, step, MADV_POPULATE_WRITE)) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		at += step;
		*done_p += step;
	}
	return 0;
}
