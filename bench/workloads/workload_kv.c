/* SPDX-License-Identifier: MIT */
/* bench/workloads/workload_kv.c - zipf-kv: an open-addressing hash table of 128-byte records
 * per shard, 80% gets that verify their checksum and 20% puts, keys chosen by Zipf(0.99). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include "bench/workloads/workload_impl.h"

#define KV_MAGIC 0x726d69672d6b7631ULL /* "rmig-kv1" */
#define KV_RECORD_SIZE 128
#define KV_VALUE_WORDS 13
#define KV_GET_PERCENT 80
#define KV_ZIPF_THETA 0.99

struct kv_record {
	uint64_t key; /* key id + 1; 0 = empty slot */
	uint64_t version;
	uint64_t value[KV_VALUE_WORDS];
	uint64_t checksum;
};
_Static_assert(sizeof(struct kv_record) == KV_RECORD_SIZE, "kv record size");

/* Slot 0 of a kv shard holds this header instead of a record. */
struct kv_header {
	uint64_t magic;
	uint64_t keys;
	uint64_t slots;
};

static double zeta(uint64_t n, double theta)
{
	double sum = 0;

	for (uint64_t i = 1; i <= n; i++)
		sum += 1.0 / pow((double)i, theta);
	return sum;
}

/* Gray et al., "Quickly generating billion-record synthetic databases" (as in YCSB). */
static void zipf_init(struct zipf *z, uint64_t n, double theta)
{
	z->n = n;
	z->theta = theta;
	z->alpha = 1.0 / (1.0 - theta);
	z->zetan = zeta(n, theta);
	z->zeta2 = zeta(2, theta);
	z->eta = (1.0 - pow(2.0 / (double)n, 1.0 - theta)) / (1.0 - z->zeta2 / z->zetan);
}

static uint64_t zipf_next(const struct zipf *z, uint64_t *rng)
{
	double u = rng_unit(rng);
	double uz = u * z->zetan;

	if (z->n < 2 || uz < 1.0)
		return 0;
	if (uz < 1.0 + pow(0.5, z->theta))
		return 1;
	uint64_t rank = (uint64_t)((double)z->n * pow(z->eta * u - z->eta + 1.0, z->alpha));
	return rank < z->n ? rank : z->n - 1;
}

static uint64_t kv_checksum(const struct kv_record *record)
{
	uint64_t h = mix64(record->key ^ 0x6b76);

	h = mix64(h ^ record->version);
	for (int i = 0; i < KV_VALUE_WORDS; i++)
		h = mix64(h ^ record->value[i]);
	return h;
}

static void kv_layout(size_t length, uint64_t *slots_p, uint64_t *keys_p)
{
	*slots_p = length / KV_RECORD_SIZE;
	/* Half full: short probe sequences, and slot 0 is the header. */
	*keys_p = *slots_p > 2 ? (*slots_p - 1) / 2 : 0;
}

static uint64_t kv_home_slot(uint64_t key, uint64_t slots)
{
	return 1 + mix64(key * 0x2545f4914f6cdd1dULL) % (slots - 1);
}

static uint64_t kv_next_slot(uint64_t slot, uint64_t slots)
{
	return slot + 1 < slots ? slot + 1 : 1;
}

static struct kv_record *kv_lookup(uint8_t *base, uint64_t slots, uint64_t key)
{
	uint64_t slot = kv_home_slot(key, slots);

	for (uint64_t probes = 0; probes < slots - 1; probes++) {
		struct kv_record *record = (struct kv_record *)(base + slot * KV_RECORD_SIZE);

		if (record->key == key || record->key == 0)
			return record;
		slot = kv_next_slot(slot, slots);
	}
	return NULL;
}

static void kv_fill_value(struct kv_record *record, uint64_t *rng)
{
	for (int i = 0; i < KV_VALUE_WORDS; i++)
		record->value[i] = rng_next(rng);
	record->checksum = kv_checksum(record);
}

/* The table's geometry and the key popularity, from the shard's length: no writes. */
int workload_kv_shard_layout(struct workload_shard *shard)
{
	const struct workload_params *p = &shard->workload->params;

	kv_layout(shard->length, &shard->kv_slots, &shard->kv_keys);
	if (shard->kv_keys < 2) {
		workload_log_error("workload zipf-kv: shard of %zu bytes holds fewer than 2 keys",
				   shard->length);
		return -EINVAL;
	}
	shard->kv_hot_keys = shard->kv_keys;
	if (p->hot_fraction > 0 && p->hot_fraction < 1) {
		shard->kv_hot_keys = (uint64_t)(p->hot_fraction * (double)shard->kv_keys);
		if (shard->kv_hot_keys < 2)
			shard->kv_hot_keys = 2;
	}
	zipf_init(&shard->zipf, shard->kv_hot_keys, KV_ZIPF_THETA);
	return 0;
}

int workload_kv_shard_init(struct workload_shard *shard)
{
	int ret = workload_kv_shard_layout(shard);

	if (ret)
		return ret;
	memset(shard->base, 0, shard->kv_slots * KV_RECORD_SIZE);
	struct kv_header *header = (struct kv_header *)shard->base;
	header->magic = KV_MAGIC;
	header->keys = shard->kv_keys;
	header->slots = shard->kv_slots;
	for (uint64_t id = 0; id < shard->kv_keys; id++) {
		struct kv_record *record = kv_lookup(shard->base, shard->kv_slots, id + 1);

		record->key = id + 1;
		record->version = 0;
		kv_fill_value(record, &shard->rng);
	}
	return 0;
}

static uint64_t kv_pick_key(struct workload_shard *shard)
{
	const struct workload_params *p = &shard->workload->params;

	/* With a hot set: hot_probability of accesses follow Zipf over the hot keys, the rest
	 * are uniform over all keys. Without: Zipf over all keys. */
	if (shard->kv_hot_keys < shard->kv_keys) {
		double hot = p->hot_probability > 0 ? p->hot_probability : 0.9;

		if (rng_unit(&shard->rng) >= hot)
			return 1 + rng_next(&shard->rng) % shard->kv_keys;
	}
	return 1 + zipf_next(&shard->zipf, &shard->rng);
}

void workload_kv_op(struct workload_shard *shard, bool paced)
{
	bool get = rng_next(&shard->rng) % 100 < KV_GET_PERCENT;
	uint64_t key = kv_pick_key(shard);

	if (!get && paced && !workload_shard_pace(shard, 1))
		return;
	if (shard->workload->read_only && !get)
		return; /* reads only: a put becomes nothing */
	struct kv_record *record = kv_lookup(shard->base, shard->kv_slots, key);
	if (!record || record->key != key) {
		/* The first few say where; the count says how many. */
		if (atomic_fetch_add(&shard->workload->errors, 1) < 3)
			workload_log_error("workload zipf-kv: key %llu missing",
					   (unsigned long long)key);
		return;
	}
	if (get) {
		if (record->checksum != kv_checksum(record) &&
		    atomic_fetch_add(&shard->workload->errors, 1) < 3)
			workload_log_error("workload zipf-kv: key %llu fails its checksum",
					   (unsigned long long)key);
		if (shard->workload->read_only)
			workload_shard_count(shard, 1);
		return;
	}
	record->version++;
	kv_fill_value(record, &shard->rng);
	workload_shard_count(shard, 1);
}

int workload_kv_check(const uint8_t *base, size_t length, char *why, size_t why_len)
{
	uint64_t slots, keys, found = 0;
	const struct kv_header *header = (const struct kv_header *)base;

	kv_layout(length, &slots, &keys);
	if (header->magic != KV_MAGIC || header->keys != keys || header->slots != slots) {
		snprintf(why, why_len, "kv header at %p is not a table of %llu keys", (void *)base,
			 (unsigned long long)keys);
		return -EINVAL;
	}
	for (uint64_t slot = 1; slot < slots; slot++) {
		const struct kv_record *record =
			(const struct kv_record *)(base + slot * KV_RECORD_SIZE);

		if (record->key == 0) {
			/* Empty slots are never written after the table is built. */
			const uint64_t *words = (const uint64_t *)record;

			for (size_t i = 0; i < KV_RECORD_SIZE / sizeof(uint64_t); i++) {
				if (words[i]) {
					snprintf(why, why_len, "empty slot %llu is not zero",
						 (unsigned long long)slot);
					return -EINVAL;
				}
			}
			continue;
		}
		if (record->key > keys) {
			snprintf(why, why_len, "slot %llu holds key %llu beyond %llu",
				 (unsigned long long)slot, (unsigned long long)record->key,
				 (unsigned long long)keys);
			return -EINVAL;
		}
		if (record->checksum != kv_checksum(record)) {
			snprintf(why, why_len, "slot %llu (key %llu) fails its checksum",
				 (unsigned long long)slot, (unsigned long long)record->key);
			return -EINVAL;
		}
		if (kv_lookup((uint8_t *)base, slots, record->key) != record) {
			snprintf(why, why_len, "key %llu in slot %llu is unreachable by lookup",
				 (unsigned long long)record->key, (unsigned long long)slot);
			return -EINVAL;
		}
		found++;
	}
	if (found != keys) {
		snprintf(why, why_len, "table holds %llu keys, expected %llu",
			 (unsigned long long)found, (unsigned long long)keys);
		return -EINVAL;
	}
	return 0;
}
