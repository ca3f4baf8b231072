/* SPDX-License-Identifier: MIT */
/* Workloads writing into a RAM region: idle, sequential, random, a Zipf-skewed key-value
 * store, an in-memory sort and a hash join. Each thread owns one shard of the region, so the
 * data structures need no locks and a run of N operations is reproducible from the seed.
 * workload_attach() runs the same workload over a region that already holds its data (a
 * migrated guest on the destination), reading only when asked to. This file runs the shards
 * and dispatches to one file per family (workload_impl.h says which). */
#include "bench/workloads/workload_impl.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *const workload_name_table[] = {"idle", "sequential", "random", "zipf-kv",
						  "sort", "hash-join",	NULL};

static void shard_read_op(struct workload_shard *shard, bool paced)
{
	switch (shard->workload->kind) {
	case WORKLOAD_IDLE:
		break;
	case WORKLOAD_SEQUENTIAL:
		workload_sequential_read_op(shard, paced);
		break;
	case WORKLOAD_RANDOM:
		workload_random_read_op(shard, paced);
		break;
	case WORKLOAD_ZIPF_KV:
		workload_kv_op(shard, paced);
		break;
	case WORKLOAD_SORT:
		workload_sort_read_op(shard, paced);
		break;
	case WORKLOAD_HASH_JOIN:
		workload_hj_read_op(shard, paced);
		break;
	}
}

static void shard_op(struct workload_shard *shard, bool paced)
{
	if (shard->workload->read_only) {
		shard_read_op(shard, paced);
		return;
	}
	switch (shard->workload->kind) {
	case WORKLOAD_IDLE:
		break;
	case WORKLOAD_SEQUENTIAL:
		workload_sequential_op(shard, paced);
		break;
	case WORKLOAD_RANDOM:
		workload_random_op(shard, paced);
		break;
	case WORKLOAD_ZIPF_KV:
		workload_kv_op(shard, paced);
		break;
	case WORKLOAD_SORT:
		workload_sort_op(shard, paced);
		break;
	case WORKLOAD_HASH_JOIN:
		workload_hj_op(shard, paced);
		break;
	}
}

static void *shard_thread(void *arg)
{
	struct workload_shard *shard = arg;
	struct workload *w = shard->workload;

	shard->pace_start_ns = now_ns();
	shard->pace_pages = 0;
	while (!atomic_load_explicit(&w->stop, memory_order_relaxed)) {
		if (w->kind == WORKLOAD_IDLE) {
			struct timespec ts = {.tv_sec = 0, .tv_nsec = WORKLOAD_SLEEP_SLICE_NS};
			nanosleep(&ts, NULL);
			continue;
		}
		shard_op(shard, true);
	}
	return NULL;
}

static int workload_kind_from_name(const char *name, enum workload_kind *kind_p)
{
	for (int i = 0; workload_name_table[i]; i++) {
		if (strcmp(name, workload_name_table[i]) == 0) {
			*kind_p = (enum workload_kind)i;
			return 0;
		}
	}
	return -ENOENT;
}

static size_t params_page_size(const struct workload_params *params)
{
	if (params && params->page_size)
		return params->page_size;
	return (size_t)sysconf(_SC_PAGESIZE);
}

static unsigned params_threads(const struct workload_params *params)
{
	return params && params->threads ? params->threads : 1;
}

/* Shards are whole pages; the last one takes the remainder. */
static void shard_bounds(size_t length, size_t page_size, unsigned nshards, unsigned index,
			 size_t *offset_p, size_t *length_p)
{
	size_t pages = length / page_size;
	size_t per = pages / nshards;

	*offset_p = (size_t)index * per * page_size;
	*length_p = (index + 1 == nshards ? pages - (size_t)index * per : per) * page_size;
}

static int workload_new(const char *name, void *ram, size_t length,
			const struct workload_params *params, unsigned flags,
			struct workload **workload_p)
{
	int attach = !!(flags & WORKLOAD_ATTACH), read_only = !!(flags & WORKLOAD_READ_ONLY);
	enum workload_kind kind;
	struct workload *w;
	int ret;

	if (!name || !workload_p)
		return -EINVAL;
	ret = workload_kind_from_name(name, &kind);
	if (ret) {
		workload_log_error("workload: unknown workload '%s'", name);
		return ret;
	}
	size_t page_size = params_page_size(params);
	unsigned nshards = params_threads(params);
	if (!ram || page_size < 64 || (page_size & (page_size - 1)) ||
	    length / page_size < nshards) {
		workload_log_error(
			"workload %s: region of %zu bytes, page size %zu and %u threads do "
			"not fit",
			name, length, page_size, nshards);
		return -EINVAL;
	}
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->kind = kind;
	w->ram = ram;
	w->length = length;
	if (params)
		w->params = *params;
	w->page_size = page_size;
	w->nshards = nshards;
	w->read_only = read_only;
	atomic_init(&w->stop, false);
	atomic_init(&w->pages_written, 0);
	atomic_init(&w->errors, 0);
	w->shards = calloc(nshards, sizeof(*w->shards));
	if (!w->shards) {
		ret = -ENOMEM;
		goto err_free_workload;
	}
	for (unsigned i = 0; i < nshards; i++) {
		struct workload_shard *shard = &w->shards[i];
		size_t offset;

		shard_bounds(length, page_size, nshards, i, &offset, &shard->length);
		shard->workload = w;
		shard->base = w->ram + offset;
		shard->pages = shard->length / page_size;
		/* An attached workload carries on with choices of its own. */
		shard->rng = mix64(
			(w->params.seed ^ (attach ? 0xa77ac4edULL : 0)) * 0x100000001b3ULL + i);
		shard->rate = w->params.write_rate > 0 ? w->params.write_rate / nshards : 0;
		if (kind == WORKLOAD_ZIPF_KV)
			ret = attach ? workload_kv_shard_layout(shard)
				     : workload_kv_shard_init(shard);
		else if (kind == WORKLOAD_SORT)
			ret = attach ? workload_sort_shard_layout(shard)
				     : workload_sort_shard_init(shard);
		else if (kind == WORKLOAD_HASH_JOIN)
			ret = attach ? workload_hj_shard_layout(shard)
				     : workload_hj_shard_init(shard);
		if (ret)
			goto err_free_shards;
	}
	*workload_p = w;
	return 0;

err_free_shards:
	free(w->shards);
err_free_workload:
	free(w);
	return ret;
}

int workload_create(const char *name, void *ram, size_t length,
		    const struct workload_params *params, struct workload **workload_p)
{
	return workload_new(name, ram, length, params, 0, workload_p);
}

int workload_attach(const char *name, void *ram, size_t length,
		    const struct workload_params *params, unsigned flags,
		    struct workload **workload_p)
{
	if (flags & ~(unsigned)WORKLOAD_READ_ONLY)
		return -EINVAL;
	return workload_new(name, ram, length, params, flags | WORKLOAD_ATTACH, workload_p);
}

uint64_t workload_errors(const struct workload *w)
{
	return atomic_load(&((struct workload *)w)->errors);
}

int workload_start(struct workload *w)
{
	unsigned i;
	int ret;

	if (w->running)
		return -EBUSY;
	atomic_store(&w->stop, false);
	for (i = 0; i < w->nshards; i++) {
		ret = -pthread_create(&w->shards[i].thread, NULL, shard_thread, &w->shards[i]);
		if (ret) {
			workload_log_error("workload: starting thread %u: %s", i, strerror(-ret));
			goto err_join;
		}
	}
	w->running = true;
	return 0;

err_join:
	atomic_store(&w->stop, true);
	while (i-- > 0)
		pthread_join(w->shards[i].thread, NULL);
	return ret;
}

int workload_stop(struct workload *w)
{
	if (!w->running)
		return 0;
	atomic_store(&w->stop, true);
	for (unsigned i = 0; i < w->nshards; i++)
		pthread_join(w->shards[i].thread, NULL);
	w->running = false;
	return 0;
}

void workload_destroy(struct workload *w)
{
	if (!w)
		return;
	workload_stop(w);
	free(w->shards);
	free(w);
}

uint64_t workload_pages_written(const struct workload *w)
{
	return atomic_load(&((struct workload *)w)->pages_written);
}

const char *const *workload_names(void)
{
	return workload_name_table;
}

int workload_run_ops(struct workload *w, uint64_t ops)
{
	if (w->running)
		return -EBUSY;
	for (uint64_t i = 0; i < ops; i++)
		shard_op(&w->shards[i % w->nshards], false);
	return 0;
}

int workload_check(const char *name, const void *ram, size_t length,
		   const struct workload_params *params, char *why, size_t why_len)
{
	enum workload_kind kind;
	int ret;

	ret = workload_kind_from_name(name, &kind);
	if (ret)
		return ret;
	if (kind != WORKLOAD_ZIPF_KV && kind != WORKLOAD_SORT && kind != WORKLOAD_HASH_JOIN)
		return -EOPNOTSUPP;
	size_t page_size = params_page_size(params);
	unsigned nshards = params_threads(params);
	if (page_size == 0 || length / page_size < nshards)
		return -EINVAL;
	for (unsigned i = 0; i < nshards; i++) {
		size_t offset, shard_length;

		shard_bounds(length, page_size, nshards, i, &offset, &shard_length);
		const uint8_t *base = (const uint8_t *)ram + offset;
		if (kind == WORKLOAD_ZIPF_KV)
			ret = workload_kv_check(base, shard_length, why, why_len);
		else if (kind == WORKLOAD_SORT)
			ret = workload_sort_check(base, shard_length, why, why_len);
		else
			ret = workload_hj_check(base, shard_length, params, page_size, why,
						why_len);
		if (ret)
			return ret;
	}
	return 0;
}
