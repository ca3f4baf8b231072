/* SPDX-License-Identifier: MIT */
/* The hash-join workload keeps a valid join in RAM (tuples, table entries and results of the
 * current epoch check out) through its clear, build and probe phases, and a flipped byte in it
 * is caught; an attached read-only copy (a migrated guest) only reads, finds no error in an
 * intact copy and counts errors in a corrupted one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "bench/workloads/workload.h"

#define RAM (8u << 20)

static const struct workload_params params = {
	.page_size = 4096, .seed = 11, .threads = 2, .hot_fraction = 0.05};

static uint8_t *ram_alloc(void)
{
	void *p = mmap(NULL, RAM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	assert_true(p != MAP_FAILED);
	return p;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = 0, .tv_nsec = ms * 1000000L};

	nanosleep(&ts, NULL);
}

static void test_hash_join_validates_through_its_phases(void **state)
{
	uint8_t *ram = ram_alloc();
	struct workload *w;
	char why[256] = "";

	(void)state;
	assert_int_equal(workload_create("hash-join", ram, RAM, &params, &w), 0);
	assert_int_equal(workload_check("hash-join", ram, RAM, &params, why, sizeof(why)), 0);
	/* Clearing (a few hundred pages), building, then probing; check after each stretch. */
	for (int i = 0; i < 12; i++) {
		assert_int_equal(workload_run_ops(w, 20000), 0);
		assert_int_equal(workload_check("hash-join", ram, RAM, &params, why, sizeof(why)),
				 0);
	}
	workload_destroy(w);
	munmap(ram, RAM);
}

static void test_hash_join_corruption_is_caught(void **state)
{
	uint8_t *ram = ram_alloc();
	struct workload *w;
	char why[256] = "";

	(void)state;
	assert_int_equal(workload_create("hash-join", ram, RAM, &params, &w), 0);
	assert_int_equal(workload_run_ops(w, 150000), 0);
	assert_int_equal(workload_check("hash-join", ram, RAM, &params, why, sizeof(why)), 0);
	/* A key in the hash table (just past the header page of the first shard). */
	((uint64_t *)(ram + 4096))[2 * 5 + 1] ^= 0x40;
	((uint64_t *)(ram + 4096))[2 * 6] ^= 0x40;
	assert_int_equal(workload_check("hash-join", ram, RAM, &params, why, sizeof(why)), -EINVAL);
	assert_true(why[0] != '\0');
	workload_destroy(w);
	munmap(ram, RAM);
}

/* Page reads the attached reader must have made before it is stopped, and how long it may take
 * to make them at most (a loaded machine may not run a new thread for a long while). */
#define READER_READS 20000u
#define READER_DEADLINE_MS 60000L

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void test_attached_read_only_reads_and_checks(void **state)
{
	/* Operations before the copy is taken: hash-join's reader checks tuples only while the
	 * join probes, so stop it in the middle of a probe phase (an epoch is 12320 operations of
	 * each of the two 4 MiB shards here: 32 to clear the table, 4096 to build, 8192 to
	 * probe); sort's are whole chunk rounds. */
	static const struct {
		const char *name;
		uint64_t ops;
	} runs[] = {{"zipf-kv", 150000},
		    {"hash-join", 2 * (6 * 12320 + 32 + 4096 + 4096)},
		    {"sort", 3},
		    {"sequential", 150000},
		    {"random", 150000}};

	(void)state;
	for (size_t i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
		uint8_t *ram = ram_alloc(), *copy = ram_alloc();
		struct workload *w, *reader;
		uint64_t deadline;

		assert_int_equal(workload_create(runs[i].name, ram, RAM, &params, &w), 0);
		assert_int_equal(workload_run_ops(w, runs[i].ops), 0);
		memcpy(copy, ram, RAM);
		assert_int_equal(workload_attach(runs[i].name, copy, RAM, &params,
						 WORKLOAD_READ_ONLY, &reader),
				 0);
		assert_int_equal(workload_start(reader), 0);
		/* Stopped once it has read enough, not after a fixed time: a reader thread that
		 * the scheduler has not run yet would have read nothing. */
		deadline = now_ms() + READER_DEADLINE_MS;
		while (workload_pages_written(reader) < READER_READS && now_ms() < deadline)
			sleep_ms(5);
		assert_int_equal(workload_stop(reader), 0);
		assert_true(workload_pages_written(reader) >= READER_READS);
		assert_int_equal(workload_errors(reader), 0);
		assert_memory_equal(copy, ram, RAM);
		workload_destroy(reader);
		workload_destroy(w);
		munmap(copy, RAM);
		munmap(ram, RAM);
	}
}

static void test_attached_reader_counts_corrupt_records(void **state)
{
	uint8_t *ram = ram_alloc();
	struct workload *w, *reader;

	(void)state;
	assert_int_equal(workload_create("zipf-kv", ram, RAM, &params, &w), 0);
	/* Every record's value, garbled: a get can only find bad checksums. */
	for (size_t off = 4096; off < RAM; off += 128)
		ram[off + 20] ^= 0x01;
	assert_int_equal(workload_attach("zipf-kv", ram, RAM, &params, WORKLOAD_READ_ONLY, &reader),
			 0);
	assert_int_equal(workload_run_ops(reader, 2000), 0);
	assert_true(workload_errors(reader) > 0);
	workload_destroy(reader);
	workload_destroy(w);
	munmap(ram, RAM);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hash_join_validates_through_its_phases),
		cmocka_unit_test(test_hash_join_corruption_is_caught),
		cmocka_unit_test(test_attached_read_only_reads_and_checks),
		cmocka_unit_test(test_attached_reader_counts_corrupt_records),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
