/* SPDX-License-Identifier: MIT */
/* bench/workloads/workload_sort.c - sort: rounds over 4 MiB chunks of random 16-byte records,
 * filled, sorted in place with qsort() and marked sorted; read-only, the sorted chunks' order
 * is checked page by page. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/workloads/workload_impl.h"

#define SORT_MAGIC_FILLING 0x736f72742d66696cULL
#define SORT_MAGIC_SORTED 0x736f72742d736f72ULL
#define SORT_CHUNK_BYTES (4u << 20)

struct sort_record {
	uint64_t key;
	uint64_t payload; /* mix of key: a torn or misplaced record fails the check */
};

/* The first record of every sort chunk says whether the chunk is sorted. */
struct sort_chunk_header {
	uint64_t magic;
	uint64_t records;
};

static uint64_t sort_payload(uint64_t key)
{
	return mix64(key ^ 0x736f7274);
}

static void sort_layout(size_t length, size_t *chunks_p, size_t *records_p)
{
	size_t chunk = length < SORT_CHUNK_BYTES ? length : SORT_CHUNK_BYTES;

	*chunks_p = chunk ? length / chunk : 0;
	*records_p = chunk / sizeof(struct sort_record) - 1; /* the first is the header */
}

static int sort_compare(const void *a, const void *b)
{
	uint64_t x = ((const struct sort_record *)a)->key;
	uint64_t y = ((const struct sort_record *)b)->key;

	return x < y ? -1 : x > y;
}

int workload_sort_shard_layout(struct workload_shard *shard)
{
	sort_layout(shard->length, &shard->sort_chunks, &shard->sort_chunk_records);
	if (shard->sort_chunks == 0 || shard->sort_chunk_records < 2) {
		workload_log_error("workload sort: shard of %zu bytes is too small", shard->length);
		return -EINVAL;
	}
	return 0;
}

int workload_sort_shard_init(struct workload_shard *shard)
{
	int ret = workload_sort_shard_layout(shard);

	if (ret)
		return ret;
	size_t chunk_bytes = (shard->sort_chunk_records + 1) * sizeof(struct sort_record);
	for (size_t c = 0; c < shard->sort_chunks; c++) {
		struct sort_chunk_header *header =
			(struct sort_chunk_header *)(shard->base + c * chunk_bytes);

		header->magic = SORT_MAGIC_FILLING;
		header->records = 0;
	}
	return 0;
}

/* One round: fill a chunk with random records, sort it in place, verify it. */
void workload_sort_op(struct workload_shard *shard, bool paced)
{
	size_t ps = shard->workload->page_size;
	size_t n = shard->sort_chunk_records;
	size_t chunk_bytes = (n + 1) * sizeof(struct sort_record);
	uint8_t *chunk = shard->base + shard->sort_next_chunk * chunk_bytes;
	struct sort_chunk_header *header = (struct sort_chunk_header *)chunk;
	struct sort_record *records = (struct sort_record *)chunk + 1;
	size_t per_page = ps / sizeof(struct sort_record);
	size_t chunk_pages = (chunk_bytes + ps - 1) / ps;

	shard->sort_next_chunk = (shard->sort_next_chunk + 1) % shard->sort_chunks;
	header->magic = SORT_MAGIC_FILLING;
	header->records = n;
	for (size_t i = 0; i < n; i++) {
		if (paced && i % per_page == 0 && !workload_shard_pace(shard, 1))
			return;
		records[i].key = rng_next(&shard->rng);
		records[i].payload = sort_payload(records[i].key);
	}
	workload_shard_count(shard, chunk_pages);
	if (paced && !workload_shard_pace(shard, chunk_pages))
		return;
	qsort(records, n, sizeof(*records), sort_compare);
	workload_shard_count(shard, chunk_pages);
	for (size_t i = 1; i < n; i++) {
		if (records[i - 1].key > records[i].key) {
			workload_log_error("workload sort: chunk not sorted at record %zu", i);
			return;
		}
	}
	header->magic = SORT_MAGIC_SORTED;
}

int workload_sort_check(const uint8_t *base, size_t length, char *why, size_t why_len)
{
	size_t chunks, n, sorted = 0;

	sort_layout(length, &chunks, &n);
	size_t chunk_bytes = (n + 1) * sizeof(struct sort_record);
	for (size_t c = 0; c < chunks; c++) {
		const struct sort_chunk_header *header =
			(const struct sort_chunk_header *)(base + c * chunk_bytes);
		const struct sort_record *records = (const struct sort_record *)header + 1;

		if (header->magic == SORT_MAGIC_FILLING)
			continue;
		if (header->magic != SORT_MAGIC_SORTED || header->records != n) {
			snprintf(why, why_len, "chunk %zu has a corrupt header", c);
			return -EINVAL;
		}
		for (size_t i = 0; i < n; i++) {
			if (records[i].payload != sort_payload(records[i].key)) {
				snprintf(why, why_len, "chunk %zu record %zu is corrupt", c, i);
				return -EINVAL;
			}
			if (i > 0 && records[i - 1].key > records[i].key) {
				snprintf(why, why_len, "chunk %zu is out of order at record %zu", c,
					 i);
				return -EINVAL;
			}
		}
		sorted++;
	}
	(void)sorted;
	return 0;
}

/* Check one page's records of the sorted chunks, in turn. */
void workload_sort_read_op(struct workload_shard *shard, bool paced)
{
	size_t ps = shard->workload->page_size;
	size_t n = shard->sort_chunk_records;
	size_t chunk_bytes = (n + 1) * sizeof(struct sort_record);
	size_t chunk_pages = (chunk_bytes + ps - 1) / ps;
	size_t chunk = shard->sort_verify_page / chunk_pages % shard->sort_chunks;
	size_t page = shard->sort_verify_page % chunk_pages;
	const uint8_t *base = shard->base + chunk * chunk_bytes;
	const struct sort_chunk_header *header = (const struct sort_chunk_header *)base;
	const struct sort_record *records = (const struct sort_record *)base + 1;
	size_t per_page = ps / sizeof(struct sort_record);
	size_t first = page * per_page, last = first + per_page;

	if (paced && !workload_shard_pace(shard, 1))
		return;
	shard->sort_verify_page++;
	workload_shard_count(shard, 1);
	if (header->magic != SORT_MAGIC_SORTED)
		return;
	if (last > n)
		last = n;
	for (size_t i = first ? first : 1; i < last; i++) {
		if (records[i].payload != sort_payload(records[i].key) ||
		    records[i - 1].key > records[i].key) {
			atomic_fetch_add(&shard->workload->errors, 1);
			return;
		}
	}
}
