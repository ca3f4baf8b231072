/* SPDX-License-Identifier: MIT */
/* Guest-like workloads that write into a RAM region tracked by rmig: used by `rmig demo`,
 * rmig-bench (every method on every workload) and end-to-end tests that validate the
 * destination copy of a migrated region. */
#ifndef RMIG_BENCH_WORKLOAD_H
#define RMIG_BENCH_WORKLOAD_H

#include <stddef.h>
#include <stdint.h>

struct workload;

struct workload_params {
	uint64_t field_mask_unused;
	size_t page_size;	/* 0 = the system page size */
	double write_rate;	/* page writes per second, 0 = as fast as possible */
	double hot_fraction;	/* of RAM (zipf-kv: of the keys); 0 = pure Zipf popularity */
	double hot_probability; /* share of writes that go to the hot set */
	uint64_t seed;
	unsigned threads; /* 0 = 1; each thread owns an equal shard of the region */
};

/* names: idle, sequential, random, zipf-kv, sort, hash-join; -ENOENT for any other name.
 * zipf-kv, sort and hash-join lay out their data structure in the region here (before
 * start). */
int workload_create(const char *name, void *ram, size_t length,
		    const struct workload_params *params, struct workload **workload_p);

/* Flags of workload_attach(). */
#define WORKLOAD_READ_ONLY (1u << 0) /* only the workload's reads (zipf-kv: gets) */
#define WORKLOAD_ATTACH (1u << 8)    /* internal */

/* The same workload over a region that already holds its data (the migrated RAM on the
 * destination, same length, page size, threads and hot fraction): nothing is laid out, the
 * workload carries on with random choices of its own. WORKLOAD_READ_ONLY: it only reads and
 * checks what it reads (workload_errors()), so the region stays as it arrived. */
int workload_attach(const char *name, void *ram, size_t length,
		    const struct workload_params *params, unsigned flags,
		    struct workload **workload_p);
/* Records that failed their own check when read (checksums, join keys, sort order). */
uint64_t workload_errors(const struct workload *w);
int workload_start(struct workload *w); /* runs on its own thread(s) */
int workload_stop(struct workload *w);	/* joins; safe to call twice */
void workload_destroy(struct workload *w);
/* Page writes (attached read-only: page reads). */
uint64_t workload_pages_written(const struct workload *w);
const char *const *workload_names(void); /* NULL-terminated */

/* Runs ops operations synchronously on the calling thread, unthrottled (shards in turn):
 * with the same seed, the same sequence of writes. -EBUSY while the threads run. */
int workload_run_ops(struct workload *w, uint64_t ops);

/* Validates the structure a workload keeps in ram (zipf-kv: every record's checksum, every
 * key present and reachable; sort: every finished chunk sorted with valid records; hash-join:
 * every tuple, table entry and join result of the current epoch). 0 when intact, -EINVAL with
 * a reason in why otherwise, -EOPNOTSUPP for workloads without one. */
int workload_check(const char *name, const void *ram, size_t length,
		   const struct workload_params *params, char *why, size_t why_len);

#endif
