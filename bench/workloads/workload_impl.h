/* SPDX-License-Identifier: MIT */
/* bench/workloads/workload_impl.h - what the workload families share: the workload and its
 * shards, the generator and the pacing. Private to bench/workloads/: workload.c runs the
 * shards and dispatches to one file per family (workload_simple.c: sequential and random;
 * workload_kv.c: zipf-kv; workload_sort.c; workload_hash_join.c), which call only
 * workload_pace.c. */
#ifndef RMIG_BENCH_WORKLOAD_IMPL_H
#define RMIG_BENCH_WORKLOAD_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "bench/workloads/workload.h"

enum workload_kind {
	WORKLOAD_IDLE,
	WORKLOAD_SEQUENTIAL,
	WORKLOAD_RANDOM,
	WORKLOAD_ZIPF_KV,
	WORKLOAD_SORT,
	WORKLOAD_HASH_JOIN,
};

/* A paced writer may run this many page writes ahead of rate * elapsed. */
#define WORKLOAD_BURST_PAGES 32
#define WORKLOAD_SLEEP_SLICE_NS 10000000L

/* Where everything of a shard lives, from its length alone. */
struct hj_layout {
	size_t ht_offset, r_offset, s_offset, out_offset;
	uint64_t buckets, r_count, s_count, out_capacity, key_space;
};

struct zipf {
	uint64_t n;
	double theta, alpha, zetan, eta, zeta2;
};

struct workload_shard {
	struct workload *workload;
	uint8_t *base;
	size_t length;
	size_t pages;
	uint64_t rng;
	pthread_t thread;
	/* pacing */
	uint64_t pace_start_ns;
	uint64_t pace_pages;
	double rate;
	/* sequential */
	size_t next_page;
	uint64_t pass;
	/* zipf-kv */
	uint64_t kv_slots, kv_keys, kv_hot_keys;
	struct zipf zipf;
	/* sort */
	size_t sort_chunks, sort_chunk_records, sort_next_chunk;
	size_t sort_verify_page; /* read-only: next page to verify */
	/* hash join */
	struct hj_layout hj;
	/* read-only: where reads land, so they are not optimised away */
	uint64_t sink;
};

struct workload {
	enum workload_kind kind;
	uint8_t *ram;
	size_t length;
	struct workload_params params;
	size_t page_size;
	unsigned nshards;
	struct workload_shard *shards;
	atomic_bool stop;
	atomic_uint_fast64_t pages_written;
	atomic_uint_fast64_t errors; /* read-only: records that failed their own checks */
	bool running;
	bool read_only; /* attached: reads only */
};

static inline uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

static inline uint64_t rng_next(uint64_t *state)
{
	*state += 0x9e3779b97f4a7c15ULL;
	return mix64(*state);
}

static inline double rng_unit(uint64_t *state)
{
	return (double)(rng_next(state) >> 11) * (1.0 / 9007199254740992.0);
}

static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* The workloads are a test and benchmark library beside librmig, not part of it: what goes
 * wrong in them is said on stderr. */
void workload_log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Token bucket: before writing pages more pages, wait until rate * elapsed + burst allows
 * them. Sleeps in slices so stop is honoured quickly. Returns false when stopping. */
bool workload_shard_pace(struct workload_shard *shard, size_t pages);
/* pages page writes (or reads, attached read-only) done. */
void workload_shard_count(struct workload_shard *shard, size_t pages);

/* One operation of a shard (paced: wait for the token bucket first). The families' layout
 * functions find an existing shard's structure (attached), init ones build it; checks read a
 * copy and say what is wrong in why (-EBADMSG or the like). */
void workload_sequential_op(struct workload_shard *shard, bool paced);
void workload_random_op(struct workload_shard *shard, bool paced);
void workload_sequential_read_op(struct workload_shard *shard, bool paced);
void workload_random_read_op(struct workload_shard *shard, bool paced);

int workload_kv_shard_layout(struct workload_shard *shard);
int workload_kv_shard_init(struct workload_shard *shard);
/* zipf-kv's op reads and writes alike (gets verify their checksum). */
void workload_kv_op(struct workload_shard *shard, bool paced);
int workload_kv_check(const uint8_t *base, size_t length, char *why, size_t why_len);

int workload_sort_shard_layout(struct workload_shard *shard);
int workload_sort_shard_init(struct workload_shard *shard);
void workload_sort_op(struct workload_shard *shard, bool paced);
void workload_sort_read_op(struct workload_shard *shard, bool paced);
int workload_sort_check(const uint8_t *base, size_t length, char *why, size_t why_len);

int workload_hj_shard_layout(struct workload_shard *shard);
int workload_hj_shard_init(struct workload_shard *shard);
void workload_hj_op(struct workload_shard *shard, bool paced);
void workload_hj_read_op(struct workload_shard *shard, bool paced);
int workload_hj_check(const uint8_t *base, size_t length, const struct workload_params *params,
		      size_t page_size, char *why, size_t why_len);

#endif /* RMIG_BENCH_WORKLOAD_IMPL_H */
