/* SPDX-License-Identifier: MIT */
/* Workloads writing into a RAM region: idle, sequential, random, a Zipf-skewed key-value
 * store, an in-memory sort and a hash join. Each thread owns one shard of the region, so the
 * data structures need no locks and a run of N operations is reproducible from the seed.
 * workload_attach() runs the same workload over a region that already holds its data (a
 * migrated guest on the destination), reading only when asked to. */
#include "bench/workloads/workload.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The workloads are a test and benchmark library beside librmig, not part of it: what goes
 * wrong in them is said on stderr. */
static void workload_log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void workload_log_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("rmig: error: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

enum workload_kind {
	WORKLOAD_IDLE,
	WORKLOAD_SEQUENTIAL,
	WORKLOAD_RANDOM,
	WORKLOAD_ZIPF_KV,
	WORKLOAD_SORT,
	WORKLOAD_HASH_JOIN,
};

static const char *const workload_name_table[] = {"idle", "sequential", "random", "zipf-kv",
						  "sort", "hash-join",	NULL};

/* A paced writer may run this many page writes ahead of rate * elapsed. */
#define WORKLOAD_BURST_PAGES 32
#define WORKLOAD_SLEEP_SLICE_NS 10000000L

#define KV_MAGIC 0x726d69672d6b7631ULL /* "rmig-kv1" */
#define KV_RECORD_SIZE 128
#define KV_VALUE_WORDS 13
#define KV_GET_PERCENT 80
#define KV_ZIPF_THETA 0.99

#define HJ_MAGIC 0x726d69672d686a31ULL /* "rmig-hj1" */
#define HJ_DEFAULT_HOT_FRACTION 0.125  /* hash table share of a shard */

#define SORT_MAGIC_FILLING 0x736f72742d66696cULL
#define SORT_MAGIC_SORTED 0x736f72742d736f72ULL
#define SORT_CHUNK_BYTES (4u << 20)

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

struct sort_record {
	uint64_t key;
	uint64_t payload; /* mix of key: a torn or misplaced record fails the check */
};

/* The first record of every sort chunk says whether the chunk is sorted. */
struct sort_chunk_header {
	uint64_t magic;
	uint64_t records;
};

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

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

static uint64_t rng_next(uint64_t *state)
{
	*state += 0x9e3779b97f4a7c15ULL;
	return mix64(*state);
}

static double rng_unit(uint64_t *state)
{
	return (double)(rng_next(state) >> 11) * (1.0 / 9007199254740992.0);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* Token bucket: before writing pages more pages, wait until rate * elapsed + burst allows
 * them. Sleeps in slices so stop is honoured quickly. Returns false when stopping. */
static bool shard_pace(struct workload_shard *shard, size_t pages)
{
	struct workload *w = shard->workload;

	if (atomic_load_explicit(&w->stop, memory_order_relaxed))
		return false;
	if (shard->rate <= 0)
		return true;
	shard->pace_pages += pages;
	if (shard->pace_pages <= WORKLOAD_BURST_PAGES)
		return true;
	uint64_t due =
		shard->pace_start_ns +
		(uint64_t)((double)(shard->pace_pages - WORKLOAD_BURST_PAGES) / shard->rate * 1e9);
	for (;;) {
		uint64_t now = now_ns();

		if (now >= due)
			return true;
		if (atomic_load_explicit(&w->stop, memory_order_relaxed))
			return false;
		uint64_t wait = due - now;
		if (wait > WORKLOAD_SLEEP_SLICE_NS)
			wait = WORKLOAD_SLEEP_SLICE_NS;
		struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)wait};
		nanosleep(&ts, NULL);
	}
}

static void shard_count(struct workload_shard *shard, size_t pages)
{
	atomic_fetch_add_explicit(&shard->workload->pages_written, pages, memory_order_relaxed);
}

/* --- sequential and random --------------------------------------------------------- */

static void sequential_op(struct workload_shard *shard, bool paced)
{
	size_t ps = shard->workload->page_size;

	if (paced && !shard_pace(shard, 1))
		return;
	uint64_t *page = (uint64_t *)(shard->base + shard->next_page * ps);
	uint64_t stamp = mix64(shard->workload->params.seed ^ shard->pass);

	for (size_t i = 0; i < ps / sizeof(uint64_t); i++)
		page[i] = stamp + i;
	shard_count(shard, 1);
	if (++shard->next_page == shard->pages) {
		shard->next_page = 0;
		shard->pass++;
	}
}

static void random_op(struct workload_shard *shard, bool paced)
{
	size_t ps = shard->workload->page_size;

	if (paced && !shard_pace(shard, 1))
		return;
	uint64_t r = rng_next(&shard->rng);
	size_t page = (size_t)(r % shard->pages);
	size_t lines = ps / 64;
	uint64_t *line = (uint64_t *)(shard->base + page * ps + (size_t)((r >> 32) % lines) * 64);

	for (int i = 0; i < 8; i++)
		line[i] = rng_next(&shard->rng);
	shard_count(shard, 1);
}

/* --- zipf-kv --------------------------------------------------------------------------- */

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
static int kv_shard_layout(struct workload_shard *shard)
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

static int kv_shard_init(struct workload_shard *shard)
{
	int ret = kv_shard_layout(shard);

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

static void kv_op(struct workload_shard *shard, bool paced)
{
	bool get = rng_next(&shard->rng) % 100 < KV_GET_PERCENT;
	uint64_t key = kv_pick_key(shard);

	if (!get && paced && !shard_pace(shard, 1))
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
			shard_count(shard, 1);
		return;
	}
	record->version++;
	kv_fill_value(record, &shard->rng);
	shard_count(shard, 1);
}

static int kv_check(const uint8_t *base, size_t length, char *why, size_t why_len)
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

/* --- sort ------------------------------------------------------------------------------ */

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

static int sort_shard_layout(struct workload_shard *shard)
{
	sort_layout(shard->length, &shard->sort_chunks, &shard->sort_chunk_records);
	if (shard->sort_chunks == 0 || shard->sort_chunk_records < 2) {
		workload_log_error("workload sort: shard of %zu bytes is too small", shard->length);
		return -EINVAL;
	}
	return 0;
}

static int sort_shard_init(struct workload_shard *shard)
{
	int ret = sort_shard_layout(shard);

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
static void sort_op(struct workload_shard *shard, bool paced)
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
		if (paced && i % per_page == 0 && !shard_pace(shard, 1))
			return;
		records[i].key = rng_next(&shard->rng);
		records[i].payload = sort_payload(records[i].key);
	}
	shard_count(shard, chunk_pages);
	if (paced && !shard_pace(shard, chunk_pages))
		return;
	qsort(records, n, sizeof(*records), sort_compare);
	shard_count(shard, chunk_pages);
	for (size_t i = 1; i < n; i++) {
		if (records[i - 1].key > records[i].key) {
			workload_log_error("workload sort: chunk not sorted at record %zu", i);
			return;
		}
	}
	header->magic = SORT_MAGIC_SORTED;
}

static int sort_check(const uint8_t *base, size_t length, char *why, size_t why_len)
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

/* --- hash join ------------------------------------------------------------------------ */

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

static int hj_shard_layout(struct workload_shard *shard)
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

static int hj_shard_init(struct workload_shard *shard)
{
	int ret = hj_shard_layout(shard);

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
static void hj_op(struct workload_shard *shard, bool paced)
{
	const struct hj_layout *l = &shard->hj;
	size_t ps = shard->workload->page_size;
	struct hj_header *h = hj_header_of(shard->base);
	struct hj_bucket *ht = HJ_AT(shard->base, l->ht_offset, struct hj_bucket);
	struct hj_tuple *r = HJ_AT(shard->base, l->r_offset, struct hj_tuple);
	struct hj_tuple *s = HJ_AT(shard->base, l->s_offset, struct hj_tuple);
	struct hj_match *out = HJ_AT(shard->base, l->out_offset, struct hj_match);

	if (paced && !shard_pace(shard, 1))
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
	shard_count(shard, 1);
}

/* Reads only: probe an S tuple already made and check what the table says about it. */
static void hj_read_op(struct workload_shard *shard, bool paced)
{
	const struct hj_layout *l = &shard->hj;
	const struct hj_header *h = hj_header_of(shard->base);
	const struct hj_bucket *ht = HJ_AT(shard->base, l->ht_offset, struct hj_bucket);
	const struct hj_tuple *r = HJ_AT(shard->base, l->r_offset, struct hj_tuple);
	const struct hj_tuple *s = HJ_AT(shard->base, l->s_offset, struct hj_tuple);
	uint64_t j, key;

	if (paced && !shard_pace(shard, 1))
		return;
	shard_count(shard, 1);
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

static int hj_check(const uint8_t *base, size_t length, const struct workload_params *params,
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

/* --- reads only (an attached destination guest) ----------------------------------------- */

static void read_page(struct workload_shard *shard, size_t page)
{
	size_t ps = shard->workload->page_size;
	const volatile uint64_t *words = (const uint64_t *)(shard->base + page * ps);

	shard->sink += words[0] + words[ps / 16];
	shard_count(shard, 1);
}

static void sequential_read_op(struct workload_shard *shard, bool paced)
{
	if (paced && !shard_pace(shard, 1))
		return;
	read_page(shard, shard->next_page);
	if (++shard->next_page == shard->pages)
		shard->next_page = 0;
}

static void random_read_op(struct workload_shard *shard, bool paced)
{
	if (paced && !shard_pace(shard, 1))
		return;
	read_page(shard, (size_t)(rng_next(&shard->rng) % shard->pages));
}

/* Check one page's records of the sorted chunks, in turn. */
static void sort_read_op(struct workload_shard *shard, bool paced)
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

	if (paced && !shard_pace(shard, 1))
		return;
	shard->sort_verify_page++;
	shard_count(shard, 1);
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

/* --- common ------------------------------------------------------------------------ */

static void shard_read_op(struct workload_shard *shard, bool paced)
{
	switch (shard->workload->kind) {
	case WORKLOAD_IDLE:
		break;
	case WORKLOAD_SEQUENTIAL:
		sequential_read_op(shard, paced);
		break;
	case WORKLOAD_RANDOM:
		random_read_op(shard, paced);
		break;
	case WORKLOAD_ZIPF_KV:
		kv_op(shard, paced);
		break;
	case WORKLOAD_SORT:
		sort_read_op(shard, paced);
		break;
	case WORKLOAD_HASH_JOIN:
		hj_read_op(shard, paced);
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
		sequential_op(shard, paced);
		break;
	case WORKLOAD_RANDOM:
		random_op(shard, paced);
		break;
	case WORKLOAD_ZIPF_KV:
		kv_op(shard, paced);
		break;
	case WORKLOAD_SORT:
		sort_op(shard, paced);
		break;
	case WORKLOAD_HASH_JOIN:
		hj_op(shard, paced);
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
			ret = attach ? kv_shard_layout(shard) : kv_shard_init(shard);
		else if (kind == WORKLOAD_SORT)
			ret = attach ? sort_shard_layout(shard) : sort_shard_init(shard);
		else if (kind == WORKLOAD_HASH_JOIN)
			ret = attach ? hj_shard_layout(shard) : hj_shard_init(shard);
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
			ret = kv_check(base, shard_length, why, why_len);
		else if (kind == WORKLOAD_SORT)
			ret = sort_check(base, shard_length, why, why_len);
		else
			ret = hj_check(base, shard_length, params, page_size, why, why_len);
		if (ret)
			return ret;
	}
	return 0;
}
