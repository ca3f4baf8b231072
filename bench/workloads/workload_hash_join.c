/* SPDX-License-Identifier: MIT */
/* bench/workloads/workload_hash_join.c - hash join: per shard, epochs of clearing a hash
 * table, building it from fresh R tuples and probing it with S tuples, every match appended to
 * the output area; the rest of the shard is data the join never touches. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/workloads/workload_impl.h"

#define HJ_MAGIC 0x726d69672d686a31ULL /* "rmig-hj1" */
#define HJ_DEFAULT_HOT_FRACTION 0.125  /* hash table share of a shard */

/* hash join: one build relation R, one probe relation S, an open-addressing hash table over R
 * and the join output, rebuilt from fresh tuples every epoch (clear, build, probe). */
enum hj_phase { HJ_CLEAR = 0, HJ_BUILD = 1, HJ_PROBE = 2 };

struct hj_header {
	uint64_t magic;
	uint64_t epoch;
	uint64_t phase;
	uint64_t cleared; /* HT pages cleared this epoch */
	uint64_t r_done;  /* R tuples made and inserted */
	uint64_t s_done;  /* S tuples made and probed */
	uint64_t out_count;
	uint64_t overflow; /* matches the output area had no room for */
};

struct hj_tuple {
	uint64_t key;
	uint64_t payload;
};

struct hj_bucket {
	uint64_t key; /* key + 1; 0 = empty */
	uint64_t r_index;
};

struct hj_match {
	uint32_t s_index;
	uint32_t r_index;
	uint64_t key;
	uint64_t check;
};

static void hj_layout_of(size_t length, size_t page_size, double hot_fraction, struct hj_layout *l)
{
	double share =
		hot_fraction > 0 && hot_fraction < 1 ? hot_fraction : HJ_DEFAULT_HOT_FRACTION;
	size_t usable = length > page_size ? length - page_size : 0;
	uint64_t buckets = 1;
	size_t rest;

	memset(l, 0, sizeof(*l));
	/* The hash table: the largest power of two of buckets within its share. */
	while ((buckets * 2) * sizeof(struct hj_bucket) <= (size_t)(share * (double)usable))
		buckets *= 2;
	if (buckets * sizeof(struct hj_bucket) > usable / 2)
		buckets = 0;
	l->buckets = buckets;
	l->r_count = buckets / 2; /* load factor one half */
	l->key_space = l->r_count * 2 > 0 ? l->r_count * 2 : 1;
	l->ht_offset = page_size;
	l->r_offset = l->ht_offset + buckets * sizeof(struct hj_bucket);
	rest = length > l->r_offset + l->r_count * sizeof(struct hj_tuple)
		       ? length - l->r_offset - l->r_count * sizeof(struct hj_tuple)
		       : 0;
	/* Probe tuples (twice as many as build tuples, as far as the rest holds them) and room
	 * for one match each on average; what remains is data the join never touches. */
	l->s_count = rest / (sizeof(struct hj_tuple) + sizeof(struct hj_match));
	if (l->s_count > l->r_count * 2)
		l->s_count = l->r_count * 2;
	l->s_offset = l->r_offset + l->r_count * sizeof(struct hj_tuple);
	l->out_offset = l->s_offset + l->s_count * sizeof(struct hj_tuple);
	l->out_capacity = l->s_count;
}

static uint64_t hj_payload(uint64_t key, uint64_t index, uint64_t epoch, uint64_t side)
{
	return mix64(key ^ (index * 0x9e3779b97f4a7c15ULL) ^ (epoch << 40) ^ side);
}

static uint64_t hj_match_check(const struct hj_match *m)
{
	return mix64(m->key ^ ((uint64_t)m->s_index << 32 | m->r_index) ^ 0x686a);
}

static struct hj_header *hj_header_of(uint8_t *base)
{
	return (struct hj_header *)base;
}

#define HJ_AT(base, offset, type) ((type *)((base) + (offset)))

int workload_hj_shard_layout(struct workload_shard *shard)
{
	const struct workload_params *p = &shard->workload->params;

	hj_layout_of(shard->length, shard->workload->page_size, p->hot_fraction, &shard->hj);
	if (shard->hj.buckets < 64 || shard->hj.s_count < 64) {
		workload_log_error("workload hash-join: shard of %zu bytes is too small",
				   shard->length);
		return -EINVAL;
	}
	return 0;
}

int workload_hj_shard_init(struct workload_shard *shard)
{
	int ret = workload_hj_shard_layout(shard);

	if (ret)
		return ret;
	memset(shard->base, 0, shard->hj.r_offset);
	*hj_header_of(shard->base) = (struct hj_header){.magic = HJ_MAGIC, .phase = HJ_CLEAR};
	return 0;
}

static uint64_t hj_home(uint64_t key, uint64_t buckets)
{
	return mix64(key * 0x2545f4914f6cdd1dULL) & (buckets - 1);
}

/* One step of the join: clear a page of the table, or build one R tuple into it, or make one
 * S tuple and probe it. */
void workload_hj_op(struct workload_shard *shard, bool paced)
{
	const struct hj_layout *l = &shard->hj;
	size_t ps = shard->workload->page_size;
	struct hj_header *h = hj_header_of(shard->base);
	struct hj_bucket *ht = HJ_AT(shard->base, l->ht_offset, struct hj_bucket);
	struct hj_tuple *r = HJ_AT(shard->base, l->r_offset, struct hj_tuple);
	struct hj_tuple *s = HJ_AT(shard->base, l->s_offset, struct hj_tuple);
	struct hj_match *out = HJ_AT(shard->base, l->out_offset, struct hj_match);

	if (paced && !workload_shard_pace(shard, 1))
		return;
	switch (h->phase) {
	case HJ_CLEAR: {
		size_t bytes = l->buckets * sizeof(struct hj_bucket);
		size_t at = (size_t)h->cleared * ps;

		memset((uint8_t *)ht + at, 0, bytes - at < ps ? bytes - at : ps);
		h->cleared++;
		if ((size_t)h->cleared * ps >= bytes) {
			h->r_done = h->s_done = h->out_count = h->overflow = 0;
			h->phase = HJ_BUILD;
		}
		break;
	}
	case HJ_BUILD: {
		uint64_t i = h->r_done, key = rng_next(&shard->rng) % l->key_space;
		uint64_t slot = hj_home(key, l->buckets);

		r[i] = (struct hj_tuple){.key = key, .payload = hj_payload(key, i, h->epoch, 1)};
		while (ht[slot].key)
			slot = (slot + 1) & (l->buckets - 1);
		ht[slot] = (struct hj_bucket){.key = key + 1, .r_index = i};
		h->r_done = i + 1;
		if (h->r_done == l->r_count)
			h->phase = HJ_PROBE;
		break;
	}
	case HJ_PROBE: {
		uint64_t j = h->s_done, key = rng_next(&shard->rng) % l->key_space;

		s[j] = (struct hj_tuple){.key = key, .payload = hj_payload(key, j, h->epoch, 2)};
		for (uint64_t slot = hj_home(key, l->buckets); ht[slot].key;
		     slot = (slot + 1) & (l->buckets - 1)) {
			if (ht[slot].key != key + 1)
				continue;
			if (h->out_count == l->out_capacity) {
				h->overflow++;
				continue;
			}
			struct hj_match *m = &out[h->out_count];
			*m = (struct hj_match){.s_index = (uint32_t)j,
					       .r_index = (uint32_t)ht[slot].r_index,
					       .key = key};
			m->check = hj_match_check(m);
			h->out_count++;
		}
		h->s_done = j + 1;
		if (h->s_done == l->s_count) {
			h->epoch++;
			h->cleared = 0;
			h->phase = HJ_CLEAR;
		}
		break;
	}
	}
	workload_shard_count(shard, 1);
}

/* Reads only: probe an S tuple already made and check what the table says about it. */
void workload_hj_read_op(struct workload_shard *shard, bool paced)
{
	const struct hj_layout *l = &shard->hj;
	const struct hj_header *h = hj_header_of(shard->base);
	const struct hj_bucket *ht = HJ_AT(shard->base, l->ht_offset, struct hj_bucket);
	const struct hj_tuple *r = HJ_AT(shard->base, l->r_offset, struct hj_tuple);
	const struct hj_tuple *s = HJ_AT(shard->base, l->s_offset, struct hj_tuple);
	uint64_t j, key;

	if (paced && !workload_shard_pace(shard, 1))
		return;
	workload_shard_count(shard, 1);
	if (h->magic != HJ_MAGIC) {
		atomic_fetch_add(&shard->workload->errors, 1);
		return;
	}
	if (h->phase != HJ_PROBE || !h->s_done)
		return;
	j = rng_next(&shard->rng) % h->s_done;
	key = s[j].key;
	if (s[j].payload != hj_payload(key, j, h->epoch, 2)) {
		atomic_fetch_add(&shard->workload->errors, 1);
		return;
	}
	for (uint64_t slot = hj_home(key, l->buckets); ht[slot].key;
	     slot = (slot + 1) & (l->buckets - 1)) {
		if (ht[slot].key == key + 1 &&
		    (ht[slot].r_index >= h->r_done || r[ht[slot].r_index].key != key))
			atomic_fetch_add(&shard->workload->errors, 1);
	}
}

int workload_hj_check(const uint8_t *base, size_t length, const struct workload_params *params,
		      size_t page_size, char *why, size_t why_len)
{
	struct hj_layout l;
	const struct hj_header *h = (const struct hj_header *)base;

	hj_layout_of(length, page_size, params ? params->hot_fraction : 0, &l);
	const struct hj_bucket *ht = HJ_AT(base, l.ht_offset, const struct hj_bucket);
	const struct hj_tuple *r = HJ_AT(base, l.r_offset, const struct hj_tuple);
	const struct hj_tuple *s = HJ_AT(base, l.s_offset, const struct hj_tuple);
	const struct hj_match *out = HJ_AT(base, l.out_offset, const struct hj_match);
	uint64_t r_done = 0, s_done = 0, out_count = 0, entries = 0;

	if (h->magic != HJ_MAGIC || h->phase > HJ_PROBE) {
		snprintf(why, why_len, "hash join header at %p is corrupt", (const void *)base);
		return -EINVAL;
	}
	if (h->phase != HJ_CLEAR) {
		r_done = h->r_done;
		s_done = h->phase == HJ_PROBE ? h->s_done : 0;
		out_count = h->phase == HJ_PROBE ? h->out_count : 0;
	}
	if (r_done > l.r_count || s_done > l.s_count || out_count > l.out_capacity) {
		snprintf(why, why_len, "hash join counters beyond the layout");
		return -EINVAL;
	}
	for (uint64_t i = 0; i < r_done; i++) {
		if (r[i].key >= l.key_space ||
		    r[i].payload != hj_payload(r[i].key, i, h->epoch, 1)) {
			snprintf(why, why_len, "R tuple %llu is corrupt", (unsigned long long)i);
			return -EINVAL;
		}
	}
	for (uint64_t j = 0; j < s_done; j++) {
		if (s[j].payload != hj_payload(s[j].key, j, h->epoch, 2)) {
			snprintf(why, why_len, "S tuple %llu is corrupt", (unsigned long long)j);
			return -EINVAL;
		}
	}
	if (h->phase != HJ_CLEAR) {
		for (uint64_t b = 0; b < l.buckets; b++) {
			if (!ht[b].key)
				continue;
			if (ht[b].r_index >= r_done || r[ht[b].r_index].key + 1 != ht[b].key) {
				snprintf(why, why_len, "hash table bucket %llu is corrupt",
					 (unsigned long long)b);
				return -EINVAL;
			}
			entries++;
		}
		if (entries != r_done) {
			snprintf(why, why_len, "hash table holds %llu entries, %llu were built",
				 (unsigned long long)entries, (unsigned long long)r_done);
			return -EINVAL;
		}
	}
	for (uint64_t k = 0; k < out_count; k++) {
		const struct hj_match *m = &out[k];

		if (m->check != hj_match_check(m) || m->s_index >= s_done || m->r_index >= r_done ||
		    s[m->s_index].key != m->key || r[m->r_index].key != m->key) {
			snprintf(why, why_len, "join output %llu is wrong", (unsigned long long)k);
			return -EINVAL;
		}
	}
	return 0;
}
