/* SPDX-License-Identifier: MIT */
/* engine/batch.c - build batches from dirty bitmaps and post them on a sender thread.
 * The builder (the session's thread) reads guest pages to find zero pages (pages in holes of
 * a tmpfs file behind the region are zero unread, engine/holes.h, through a cursor each sync
 * of the region resets) and coalesces
 * contiguous pages of the same kind into runs; the sender thread posts batches in order while
 * the builder keeps up to BATCH_PIPELINE_DEPTH - 1 batches ahead. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/batch.h"
#include "engine/bitmap.h"
#include "engine/holes.h"
#include "engine/page_hash.h"
#include "transport/log.h"

uint64_t batch_dirty_pages(const struct session_region *regions, size_t nregions)
{
	uint64_t n = 0;

	for (size_t i = 0; i < nregions; i++)
		n += bitmap_count(regions[i].src.dirty, regions[i].npages);
	return n;
}

/* The transport region a run of r names: r's own, or its staging region on the destination in
 * the post-copy tail. */
static uint32_t batch_wire_id(const struct session_region *r)
{
	return r->src.to_staging ? r->src.staging_id : r->id;
}

/* Append page (of kind zero or data) to b, extending the last run when it continues it.
 * Returns 0, or -ENOSPC when a new run is needed and b is full. */
static int batch_add_page(struct batch *b, const struct session_region *r, size_t page, int zero)
{
	uint64_t offset = (uint64_t)page << r->page_shift;
	uint32_t flags = zero ? TRANSPORT_RUN_ZERO : 0;

	if (b->nruns) {
		struct transport_run *last = &b->runs[b->nruns - 1];

		if (last->region_id == batch_wire_id(r) && last->flags == flags &&
		    last->offset + last->length == offset &&
		    (zero || last->length + r->page_size <= BATCH_RUN_MAX_BYTES)) {
			last->length += r->page_size;
			return 0;
		}
	}
	if (b->nruns == TRANSPORT_BATCH_MAX_RUNS)
		return -ENOSPC;
	b->runs[b->nruns++] = (struct transport_run){
		.region_id = batch_wire_id(r),
		.flags = flags,
		.offset = offset,
		.length = r->page_size,
	};
	return 0;
}

int batch_build(struct session_region *regions, size_t nregions, struct batch_cursor *cursor,
		struct batch *b)
{
	return batch_build_limited(regions, nregions, cursor, b, BATCH_MAX_BYTES);
}

int batch_build_limited(struct session_region *regions, size_t nregions,
			struct batch_cursor *cursor, struct batch *b, uint64_t max_bytes)
{
	b->nruns = 0;
	b->pages = 0;
	b->zero_pages = 0;
	b->data_bytes = 0;

	while (cursor->region < nregions) {
		struct session_region *r = &regions[cursor->region];
		size_t start, len, page;

		if (!dirty_bitmap_next_run(r->src.dirty, r->npages, cursor->page, &start, &len)) {
			cursor->region++;
			cursor->page = 0;
			continue;
		}
		for (page = start; page < start + len; page++) {
			const void *addr = (const char *)r->addr + ((size_t)page << r->page_shift);
			int zero = holes_page(r->src.holes, &r->src.holes_cursor, page) ||
				   page_is_zero(addr, r->page_size);

			if (!zero && b->data_bytes && b->data_bytes + r->page_size > max_bytes)
				break;
			if (batch_add_page(b, r, page, zero))
				break;
			bitmap_clear(r->src.dirty, page);
			if (r->src.send_count[page] < UINT8_MAX)
				r->src.send_count[page]++;
			b->pages++;
			if (zero)
				b->zero_pages++;
			else
				b->data_bytes += r->page_size;
		}
		cursor->page = page;
		if (page < start + len)
			break; /* the batch is full */
	}
	return b->nruns > 0;
}

struct batch_pipeline {
	struct transport_conn *conn;
	uint64_t bandwidth_limit;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t changed;
	struct batch *slots[BATCH_PIPELINE_DEPTH];
	struct batch *free_list[BATCH_PIPELINE_DEPTH];
	size_t nfree;
	struct batch *queue[BATCH_PIPELINE_DEPTH]; /* submitted, oldest first */
	size_t queue_head;
	size_t queue_count;
	int posting; /* the sender holds a batch outside the queue */
	int error;
	int stop;
	uint64_t next_id;
	uint64_t pace_start_us;
	uint64_t paced_bytes;
};

static uint64_t batch_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Sleep so that the bytes posted since the pacing clock started stay under the cap. */
static void batch_pace(struct batch_pipeline *p, uint64_t bytes)
{
	uint64_t due_us, now;

	if (!p->bandwidth_limit)
		return;
	p->paced_bytes += bytes;
	due_us = p->pace_start_us + p->paced_bytes * 1000000u / p->bandwidth_limit;
	now = batch_now_us();
	if (due_us > now) {
		struct timespec ts = {
			.tv_sec = (time_t)((due_us - now) / 1000000u),
			.tv_nsec = (long)((due_us - now) % 1000000u) * 1000L,
		};

		nanosleep(&ts, NULL);
	}
}

static void *batch_sender_main(void *arg)
{
	struct batch_pipeline *p = arg;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		struct batch *b;
		int ret;

		while (!p->queue_count && !p->stop)
			pthread_cond_wait(&p->changed, &p->lock);
		if (!p->queue_count && p->stop)
			break;
		b = p->queue[p->queue_head];
		p->queue_head = (p->queue_head + 1) % BATCH_PIPELINE_DEPTH;
		p->queue_count--;
		p->posting = 1;
		ret = p->error;
		pthread_mutex_unlock(&p->lock);

		if (!ret) {
			ret = transport_batch_post(p->conn, b->id, b->runs, b->nruns);
			if (!ret)
				batch_pace(p, b->data_bytes);
		}

		pthread_mutex_lock(&p->lock);
		if (ret && !p->error)
			p->error = ret;
		p->posting = 0;
		p->free_list[p->nfree++] = b;
		pthread_cond_broadcast(&p->changed);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int batch_pipeline_create(struct transport_conn *conn, uint64_t bandwidth_limit,
			  struct batch_pipeline **pipeline_p)
{
	struct batch_pipeline *p;
	int ret;

	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->conn = conn;
	p->bandwidth_limit = bandwidth_limit;
	p->next_id = 1;
	for (size_t i = 0; i < BATCH_PIPELINE_DEPTH; i++) {
		p->slots[i] = malloc(sizeof(struct batch));
		if (!p->slots[i]) {
			ret = -ENOMEM;
			goto err_free_slots;
		}
		p->free_list[p->nfree++] = p->slots[i];
	}
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->changed, NULL);
	p->pace_start_us = batch_now_us();
	ret = -pthread_create(&p->thread, NULL, batch_sender_main, p);
	if (ret) {
		rmig_log_error("engine: cannot create the batch sender thread: %d", ret);
		goto err_destroy_lock;
	}
	*pipeline_p = p;
	return 0;

err_destroy_lock:
	pthread_cond_destroy(&p->changed);
	pthread_mutex_destroy(&p->lock);
err_free_slots:
	for (size_t i = 0; i < BATCH_PIPELINE_DEPTH; i++)
		free(p->slots[i]);
	free(p);
	return ret;
}

void batch_pipeline_destroy(struct batch_pipeline *p)
{
	if (!p)
		return;
	batch_pipeline_abandon(p);
	pthread_mutex_lock(&p->lock);
	p->stop = 1;
	pthread_cond_broadcast(&p->changed);
	pthread_mutex_unlock(&p->lock);
	pthread_join(p->thread, NULL);
	pthread_cond_destroy(&p->changed);
	pthread_mutex_destroy(&p->lock);
	for (size_t i = 0; i < BATCH_PIPELINE_DEPTH; i++)
		free(p->slots[i]);
	free(p);
}

int batch_pipeline_acquire(struct batch_pipeline *p, struct batch **batch_p)
{
	int ret;

	pthread_mutex_lock(&p->lock);
	while (!p->nfree && !p->error)
		pthread_cond_wait(&p->changed, &p->lock);
	ret = p->error;
	if (!ret)
		*batch_p = p->free_list[--p->nfree];
	pthread_mutex_unlock(&p->lock);
	return ret;
}

void batch_pipeline_submit(struct batch_pipeline *p, struct batch *b)
{
	pthread_mutex_lock(&p->lock);
	b->id = p->next_id++;
	p->queue[(p->queue_head + p->queue_count) % BATCH_PIPELINE_DEPTH] = b;
	p->queue_count++;
	pthread_cond_broadcast(&p->changed);
	pthread_mutex_unlock(&p->lock);
}

void batch_pipeline_release(struct batch_pipeline *p, struct batch *b)
{
	pthread_mutex_lock(&p->lock);
	p->free_list[p->nfree++] = b;
	pthread_cond_broadcast(&p->changed);
	pthread_mutex_unlock(&p->lock);
}

int batch_pipeline_drain(struct batch_pipeline *p, int timeout_ms)
{
	int ret;

	pthread_mutex_lock(&p->lock);
	while ((p->queue_count || p->posting) && !p->error)
		pthread_cond_wait(&p->changed, &p->lock);
	ret = p->error;
	pthread_mutex_unlock(&p->lock);
	if (ret)
		return ret;
	return transport_flush(p->conn, timeout_ms);
}

void batch_pipeline_abandon(struct batch_pipeline *p)
{
	pthread_mutex_lock(&p->lock);
	while (p->queue_count) {
		p->free_list[p->nfree++] = p->queue[p->queue_head];
		p->queue_head = (p->queue_head + 1) % BATCH_PIPELINE_DEPTH;
		p->queue_count--;
	}
	while (p->posting)
		pthread_cond_wait(&p->changed, &p->lock);
	pthread_cond_broadcast(&p->changed);
	pthread_mutex_unlock(&p->lock);
}

void batch_pipeline_rebind(struct batch_pipeline *p, struct transport_conn *conn)
{
	batch_pipeline_abandon(p);
	pthread_mutex_lock(&p->lock);
	p->conn = conn;
	p->error = 0;
	pthread_mutex_unlock(&p->lock);
}

void batch_pipeline_pace_reset(struct batch_pipeline *p)
{
	pthread_mutex_lock(&p->lock);
	p->pace_start_us = batch_now_us();
	p->paced_bytes = 0;
	pthread_mutex_unlock(&p->lock);
}
