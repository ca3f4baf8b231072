/* SPDX-License-Identifier: MIT */
/* bench/workloads/workload_simple.c - the sequential and random workloads (whole pages in
 * order, one 64-byte line in a random page per op) and their read-only forms for an attached
 * guest. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/workloads/workload_impl.h"

/* --- sequential and random --------------------------------------------------------- */

void workload_sequential_op(struct workload_shard *shard, bool paced)
{
	size_t ps = shard->workload->page_size;

	if (paced && !workload_shard_pace(shard, 1))
		return;
	uint64_t *page = (uint64_t *)(shard->base + shard->next_page * ps);
	uint64_t stamp = mix64(shard->workload->params.seed ^ shard->pass);

	for (size_t i = 0; i < ps / sizeof(uint64_t); i++)
		page[i] = stamp + i;
	workload_shard_count(shard, 1);
	if (++shard->next_page == shard->pages) {
		shard->next_page = 0;
		shard->pass++;
	}
}

void workload_random_op(struct workload_shard *shard, bool paced)
{
	size_t ps = shard->workload->page_size;

	if (paced && !workload_shard_pace(shard, 1))
		return;
	uint64_t r = rng_next(&shard->rng);
	size_t page = (size_t)(r % shard->pages);
	size_t lines = ps / 64;
	uint64_t *line = (uint64_t *)(shard->base + page * ps + (size_t)((r >> 32) % lines) * 64);

	for (int i = 0; i < 8; i++)
		line[i] = rng_next(&shard->rng);
	workload_shard_count(shard, 1);
}

static void read_page(struct workload_shard *shard, size_t page)
{
	size_t ps = shard->workload->page_size;
	const volatile uint64_t *words = (const uint64_t *)(shard->base + page * ps);

	shard->sink += words[0] + words[ps / 16];
	workload_shard_count(shard, 1);
}

void workload_sequential_read_op(struct workload_shard *shard, bool paced)
{
	if (paced && !workload_shard_pace(shard, 1))
		return;
	read_page(shard, shard->next_page);
	if (++shard->next_page == shard->pages)
		shard->next_page = 0;
}

void workload_random_read_op(struct workload_shard *shard, bool paced)
{
	if (paced && !workload_shard_pace(shard, 1))
		return;
	read_page(shard, (size_t)(rng_next(&shard->rng) % shard->pages));
}
