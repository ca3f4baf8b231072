/* SPDX-License-Identifier: MIT */
/* tests/unit/test_memory.c - transport_mem_alloc(): the plain-page fallback, the hugepage path
 * when the host can reserve a few hugepages, NUMA binding, and the sysfs NUMA lookup. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>
#ifdef RMIG_HAVE_NUMA
#include <numa.h>
#include <numaif.h>
#endif

#include "transport/memory.h"

#define NR_HUGEPAGES "/proc/sys/vm/nr_hugepages"

static long hugepages_before = -1;

static long read_long(const char *path)
{
	FILE *file = fopen(path, "r");
	long value = -1;

	if (!file)
		return -1;
	if (fscanf(file, "%ld", &value) != 1)
		value = -1;
	fclose(file);
	return value;
}

static int write_long(const char *path, long value)
{
	FILE *file = fopen(path, "w");
	int ok;

	if (!file)
		return -1;
	ok = fprintf(file, "%ld\n", value) > 0;
	ok = (fclose(file) == 0) && ok;
	return ok ? 0 : -1;
}

static void fill_and_check(const struct transport_mem *mem)
{
	unsigned char *bytes = mem->addr;

	for (size_t i = 0; i < mem->length; i++)
		assert_int_equal(bytes[i], 0);
	memset(bytes, 0xa5, mem->length);
	assert_int_equal(bytes[0], 0xa5);
	assert_int_equal(bytes[mem->length - 1], 0xa5);
}

static void test_memory_fallback_gives_plain_pages_when_hugepages_refused(void **state)
{
	struct transport_mem mem;

	(void)state;
	assert_int_equal(transport_mem_alloc(3 * 4096 + 5, -1, TRANSPORT_MEM_NO_HUGEPAGES, &mem),
			 0);
	assert_int_equal(mem.hugepage, 0);
	assert_int_equal(mem.source, TRANSPORT_MEM_PAGES);
	assert_int_equal(mem.numa_node, -1);
	assert_true(mem.length >= 3 * 4096 + 5);
	assert_int_equal(mem.length % mem.page_size, 0);
	fill_and_check(&mem);
	transport_mem_free(&mem);
	assert_null(mem.addr);
}

static void test_memory_falls_back_cleanly_when_pool_is_empty(void **state)
{
	struct transport_mem mem;

	(void)state;
	if (read_long("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages") > 0)
		skip(); /* the pool has pages: the hugepage case covers this host */
	assert_int_equal(transport_mem_alloc(1 << 20, -1, 0, &mem), 0);
	assert_int_equal(mem.hugepage, 0);
	assert_int_equal(mem.source, TRANSPORT_MEM_PAGES);
	fill_and_check(&mem);
	transport_mem_free(&mem);
}

static void test_memory_uses_hugepages_when_reserved(void **state)
{
	struct transport_mem mem;

	(void)state;
	hugepages_before = read_long(NR_HUGEPAGES);
	if (hugepages_before < 0 || write_long(NR_HUGEPAGES, hugepages_before + 4) ||
	    read_long(NR_HUGEPAGES) < hugepages_before + 2) {
		if (hugepages_before >= 0)
			write_long(NR_HUGEPAGES, hugepages_before);
		skip(); /* not root, or the kernel could not find contiguous memory */
	}
	assert_int_equal(transport_mem_alloc(3 << 20, -1, 0, &mem), 0);
	assert_int_equal(mem.hugepage, 1);
	assert_true(mem.source == TRANSPORT_MEM_HUGETLBFS ||
		    mem.source == TRANSPORT_MEM_MAP_HUGETLB);
	assert_int_equal(mem.page_size, 2u << 20);
	assert_int_equal(mem.length, 4u << 20);
	fill_and_check(&mem);
	transport_mem_free(&mem);
	write_long(NR_HUGEPAGES, hugepages_before);
}

#ifdef RMIG_HAVE_NUMA
static void test_memory_binds_to_the_asked_numa_node(void **state)
{
	struct transport_mem mem;
	int node = -1;

	(void)state;
	if (numa_available() < 0)
		skip();
	assert_int_equal(transport_mem_alloc(1 << 20, 0, TRANSPORT_MEM_NO_HUGEPAGES, &mem), 0);
	assert_int_equal(mem.numa_node, 0);
	/* The kernel says where the (already touched) first page lives. */
	assert_int_equal(get_mempolicy(&node, NULL, 0, mem.addr, MPOL_F_NODE | MPOL_F_ADDR), 0);
	assert_int_equal(node, 0);
	transport_mem_free(&mem);
}
#else
/* Built with -DRMIG_NUMA=OFF: memory comes, and says it is bound nowhere. */
static void test_memory_binds_to_the_asked_numa_node(void **state)
{
	struct transport_mem mem;

	(void)state;
	assert_int_equal(transport_mem_alloc(1 << 20, 0, TRANSPORT_MEM_NO_HUGEPAGES, &mem), 0);
	assert_int_equal(mem.numa_node, -1);
	fill_and_check(&mem);
	transport_mem_free(&mem);
}
#endif

static void test_memory_ignores_a_node_that_does_not_exist(void **state)
{
	struct transport_mem mem;

	(void)state;
	assert_int_equal(transport_mem_alloc(4096, 4000, TRANSPORT_MEM_NO_HUGEPAGES, &mem), 0);
	assert_int_equal(mem.numa_node, -1);
	transport_mem_free(&mem);
}

static void test_memory_refuses_zero_length(void **state)
{
	struct transport_mem mem = {0};

	(void)state;
	assert_int_equal(transport_mem_alloc(0, -1, 0, &mem), -EINVAL);
	assert_null(mem.addr);
}

/* Pages of [addr, addr + len) the kernel has in memory. */
static size_t resident_pages(void *addr, size_t len)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE), n = len / page, count = 0;
	unsigned char *vec = calloc(n, 1);

	assert_non_null(vec);
	assert_int_equal(mincore(addr, len, vec), 0);
	for (size_t i = 0; i < n; i++)
		count += vec[i] & 1;
	free(vec);
	return count;
}

static void test_memory_populate_faults_in_every_page_and_keeps_contents(void **state)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE), len = 40u << 20, done = 0;
	char *addr = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	(void)state;
	assert_true(addr != MAP_FAILED);
	/* No THP: a huge page would make one touch populate 512 pages. */
	madvise(addr, len, MADV_NOHUGEPAGE);
	memset(addr + 5 * page, 0x5a, page);
	assert_true(resident_pages(addr, len) < 16);
	/* Not page-aligned at either end: the pages it touches are populated. More than one step
	 * (TRANSPORT_MEM_POPULATE_STEP), so the loop is crossed. */
	assert_int_equal(transport_mem_populate(addr + 100, len - 200, NULL, &done), 0);
	assert_true(done >= len - 200);
	assert_int_equal(resident_pages(addr, len), len / page);
	for (size_t i = 0; i < page; i++)
		assert_int_equal((unsigned char)addr[5 * page + i], 0x5a);
	assert_int_equal(addr[6 * page], 0);
	munmap(addr, len);
}

static void test_memory_populate_stops_when_asked(void **state)
{
	size_t len = 8u << 20, done = 1;
	char *addr = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	atomic_int stop;

	(void)state;
	assert_true(addr != MAP_FAILED);
	madvise(addr, len, MADV_NOHUGEPAGE);
	atomic_init(&stop, 1);
	assert_int_equal(transport_mem_populate(addr, len, &stop, &done), 0);
	assert_int_equal(done, 0);
	assert_int_equal(resident_pages(addr, len), 0);
	munmap(addr, len);
}

static void test_memory_populate_reports_what_the_kernel_refuses(void **state)
{
	size_t len = 1u << 20, done = 1;
	char *addr = mmap(NULL, len, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	(void)state;
	assert_true(addr != MAP_FAILED);
	/* A read-only mapping cannot be faulted in writable. */
	assert_true(transport_mem_populate(addr, len, NULL, &done) < 0);
	assert_int_equal(done, 0);
	munmap(addr, len);
}

static void test_memory_device_numa_node_unknown_device_is_minus_one(void **state)
{
	(void)state;
	assert_int_equal(transport_mem_device_numa_node("rmig-no-such-device"), -1);
	assert_int_equal(transport_mem_device_numa_node("../../etc"), -1);
	assert_int_equal(transport_mem_device_numa_node(NULL), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_memory_fallback_gives_plain_pages_when_hugepages_refused),
		cmocka_unit_test(test_memory_falls_back_cleanly_when_pool_is_empty),
		cmocka_unit_test(test_memory_uses_hugepages_when_reserved),
		cmocka_unit_test(test_memory_binds_to_the_asked_numa_node),
		cmocka_unit_test(test_memory_ignores_a_node_that_does_not_exist),
		cmocka_unit_test(test_memory_refuses_zero_length),
		cmocka_unit_test(test_memory_device_numa_node_unknown_device_is_minus_one),
		cmocka_unit_test(test_memory_populate_faults_in_every_page_and_keeps_contents),
		cmocka_unit_test(test_memory_populate_stops_when_asked),
		cmocka_unit_test(test_memory_populate_reports_what_the_kernel_refuses),
	};
	int failed = cmocka_run_group_tests(tests, NULL, NULL);

	if (hugepages_before >= 0)
		write_long(NR_HUGEPAGES, hugepages_before);
	return failed;
}
