/* SPDX-License-Identifier: MIT */
/* bench/workloads: every workload runs inside its region only, is reproducible from its seed,
 * honours its write rate as an upper bound, and keeps its data structure valid. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "bench/workloads/workload.h"

#define TEST_RAM (16u << 20)

struct guarded {
	uint8_t *map;
	size_t map_len;
	uint8_t *ram;
};

/* The region sits between two PROT_NONE pages: a stray write kills the test. */
static void guarded_alloc(struct guarded *g, size_t length)
{
	size_t ps = (size_t)sysconf(_SC_PAGESIZE);

	g->map_len = length + 2 * ps;
	g->map = mmap(NULL, g->map_len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(g->map != MAP_FAILED);
	g->ram = g->map + ps;
	assert_int_equal(mprotect(g->ram, length, PROT_READ | PROT_WRITE), 0);
}

static void guarded_free(struct guarded *g)
{
	munmap(g->map, g->map_len);
}

static uint64_t image_hash(const uint8_t *ram, size_t length)
{
	uint64_t h = 1469598103934665603ULL;
	const uint64_t *words = (const uint64_t *)ram;

	for (size_t i = 0; i < length / 8; i++)
		h = (h ^ words[i]) * 1099511628211ULL;
	return h;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* Wait until w has written more than `after` pages: the event the caller needs, however long
 * a loaded machine takes to schedule the workload's threads. Fails naming the workload after
 * a minute without one write. */
static void wait_for_writes(struct workload *w, const char *name, uint64_t after)
{
	double deadline = now_s() + 60.0;

	while (workload_pages_written(w) <= after) {
		if (now_s() > deadline)
			fail_msg("workload %s wrote no page in 60 s (%llu pages before)", name,
				 (unsigned long long)after);
		sleep_ms(1);
	}
}

static void test_workload_unknown_name_is_enoent(void **state)
{
	struct guarded g;
	struct workload *w;

	(void)state;
	guarded_alloc(&g, TEST_RAM);
	assert_int_equal(workload_create("no-such-workload", g.ram, TEST_RAM, NULL, &w), -ENOENT);
	guarded_free(&g);
}

static void test_workload_every_name_runs_inside_its_region(void **state)
{
	const char *const *names = workload_names();
	struct workload_params params = {.seed = 7, .threads = 2};

	(void)state;
	for (int i = 0; names[i]; i++) {
		struct guarded g;
		struct workload *w;

		guarded_alloc(&g, TEST_RAM);
		assert_int_equal(workload_create(names[i], g.ram, TEST_RAM, &params, &w), 0);
		assert_int_equal(workload_start(w), 0);
		if (strcmp(names[i], "idle") != 0)
			wait_for_writes(w, names[i], 0);
		assert_int_equal(workload_stop(w), 0);
		assert_int_equal(workload_stop(w), 0);
		workload_destroy(w);
		guarded_free(&g);
	}
}

static void test_workload_idle_writes_nothing(void **state)
{
	struct guarded g;
	struct workload *w;

	(void)state;
	guarded_alloc(&g, TEST_RAM);
	memset(g.ram, 0x5a, TEST_RAM);
	uint64_t before = image_hash(g.ram, TEST_RAM);
	assert_int_equal(workload_create("idle", g.ram, TEST_RAM, NULL, &w), 0);
	assert_int_equal(workload_start(w), 0);
	sleep_ms(50);
	assert_int_equal(workload_stop(w), 0);
	assert_int_equal(workload_run_ops(w, 1000), 0);
	assert_int_equal(workload_pages_written(w), 0);
	assert_true(image_hash(g.ram, TEST_RAM) == before);
	workload_destroy(w);
	guarded_free(&g);
}

static uint64_t run_image(const char *name, uint64_t seed, uint64_t ops)
{
	struct workload_params params = {.seed = seed, .threads = 2};
	struct guarded g;
	struct workload *w;

	guarded_alloc(&g, TEST_RAM);
	assert_int_equal(workload_create(name, g.ram, TEST_RAM, &params, &w), 0);
	assert_int_equal(workload_run_ops(w, ops), 0);
	assert_true(workload_pages_written(w) > 0);
	uint64_t h = image_hash(g.ram, TEST_RAM);
	workload_destroy(w);
	guarded_free(&g);
	return h;
}

static void test_workload_same_seed_gives_same_image(void **state)
{
	const char *names[] = {"sequential", "random", "zipf-kv", "sort"};

	(void)state;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		uint64_t ops = strcmp(names[i], "sort") == 0 ? 6 : 20000;

		assert_true(run_image(names[i], 42, ops) == run_image(names[i], 42, ops));
		assert_true(run_image(names[i], 42, ops) != run_image(names[i], 43, ops));
	}
}

static void test_workload_write_rate_is_an_upper_bound(void **state)
{
	const double rate = 2000;
	struct workload_params params = {.seed = 1, .write_rate = rate, .threads = 2};
	struct guarded g;
	struct workload *w;

	(void)state;
	guarded_alloc(&g, TEST_RAM);
	assert_int_equal(workload_create("random", g.ram, TEST_RAM, &params, &w), 0);
	double start = now_s();
	assert_int_equal(workload_start(w), 0);
	/* past the first bursts, so that the rate, not the burst, bounds the count */
	wait_for_writes(w, "random", 256);
	assert_int_equal(workload_stop(w), 0);
	double elapsed = now_s() - start;
	/* burst of 32 pages per thread */
	assert_true((double)workload_pages_written(w) <= rate * elapsed * 1.5 + 64);
	assert_true(workload_pages_written(w) > 0);
	workload_destroy(w);
	guarded_free(&g);
}

static void check_structure_after_run(const char *name)
{
	struct workload_params params = {
		.seed = 3, .threads = 2, .hot_fraction = 0.1, .hot_probability = 0.9};
	struct guarded g;
	struct workload *w;
	char why[256] = "";

	guarded_alloc(&g, TEST_RAM);
	assert_int_equal(workload_create(name, g.ram, TEST_RAM, &params, &w), 0);
	assert_int_equal(workload_run_ops(w, strcmp(name, "sort") == 0 ? 4 : 50000), 0);
	/* the threads run over what the single-threaded ops left, and stop mid-structure */
	uint64_t before = workload_pages_written(w);
	assert_int_equal(workload_start(w), 0);
	wait_for_writes(w, name, before);
	assert_int_equal(workload_stop(w), 0);
	assert_int_equal(workload_check(name, g.ram, TEST_RAM, &params, why, sizeof(why)), 0);
	/* A stop may leave a sort chunk half filled, which the check rightly skips: two more
	 * rounds per shard refill and sort both chunks of each shard, so that the byte flipped
	 * below lies in data the check reads. */
	if (strcmp(name, "sort") == 0)
		assert_int_equal(workload_run_ops(w, 4), 0);
	/* A flipped byte in the structure must be caught. */
	uint64_t *word = (uint64_t *)(g.ram + TEST_RAM / 4 + 4096 + 200);
	*word ^= 0x10000;
	assert_int_equal(workload_check(name, g.ram, TEST_RAM, &params, why, sizeof(why)), -EINVAL);
	assert_true(why[0] != '\0');
	workload_destroy(w);
	guarded_free(&g);
}

static void test_workload_zipf_kv_table_validates_after_run(void **state)
{
	(void)state;
	check_structure_after_run("zipf-kv");
}

static void test_workload_sort_chunks_validate_after_run(void **state)
{
	(void)state;
	check_structure_after_run("sort");
}

static void test_workload_check_unsupported_for_unstructured(void **state)
{
	uint8_t ram[8192] = {0};
	char why[64];

	(void)state;
	assert_int_equal(workload_check("random", ram, sizeof(ram), NULL, why, sizeof(why)),
			 -EOPNOTSUPP);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_workload_unknown_name_is_enoent),
		cmocka_unit_test(test_workload_every_name_runs_inside_its_region),
		cmocka_unit_test(test_workload_idle_writes_nothing),
		cmocka_unit_test(test_workload_same_seed_gives_same_image),
		cmocka_unit_test(test_workload_write_rate_is_an_upper_bound),
		cmocka_unit_test(test_workload_zipf_kv_table_validates_after_run),
		cmocka_unit_test(test_workload_sort_chunks_validate_after_run),
		cmocka_unit_test(test_workload_check_unsupported_for_unstructured),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
