/* SPDX-License-Identifier: MIT */
/* engine/verify.c - switchover verification: the destination sends the hashes of the pages it
 * holds, the source compares them with its own (VM paused, so its pages are final) and resends
 * every page that differs, then checks those again, before the VM may resume on the
 * destination.
 *
 * Neither side rereads all RAM for it when it need not. The source's hash tracker has just
 * hashed every page in the final sync, with the VM paused: those are the current hashes. Other
 * trackers only say which pages were written, and verification is what checks them, so there
 * the source hashes its pages here. The destination hashed each page when the batch that last
 * wrote it committed (dest.c); nothing else writes its guest RAM before the resume, so those
 * hashes are what it holds.
 *
 * RMIG_VERIFY_SAMPLE compares fewer pages first: those the final round sent and runs drawn at
 * random (verify_source_plan(), with the VM paused and before those pages go). A dirty log that
 * misses writes makes some of them differ; then every page is compared, as RMIG_VERIFY_ALL
 * does. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "engine/batch.h"
#include "engine/bitmap.h"
#include "engine/dirty.h"
#include "engine/page_hash.h"
#include "engine/protocol.h"
#include "engine/session.h"
#include "engine/source.h"
#include "engine/verify.h"
#include "rmig.h"
#include "transport/log.h"

/* Passes after the first before a page that keeps differing fails the migration. */
#define VERIFY_RESEND_PASSES 3

/* RMIG_VERIFY_SAMPLE draws its sample in runs of this many bytes (a page at least): pages
 * next to each other are read and answered together. */
#define VERIFY_SAMPLE_RUN_BYTES (64u << 10)
/* RMIG_VERIFY_SAMPLE: pages to compare closer than this go in one request (the destination
 * answers the pages between too, 8 bytes each, which the source does not compare); the
 * distance grows with the RAM so that about one window of requests (VERIFY_WINDOW) covers the
 * sample. A request costs a round trip, a page between 8 bytes: on a Xen dom0 of one vCPU
 * under TCG, 135 requests took 0.5 to 0.8 s to answer, four requests for every page 8 ms. */
#define VERIFY_MERGE_PAGES 64u

static uint64_t verify_page_hash(const struct session_region *r, uint64_t page)
{
	return page_hash((const char *)r->addr + (page << r->page_shift), r->page_size);
}

/* Source: the tracker's hashes of the final sync, or NULL when the pages must be hashed. */
static const uint64_t *verify_source_hashes(const struct session_region *r)
{
	return r->src.tracker ? dirty_source_page_hashes(r->src.tracker) : NULL;
}

/* What the destination answers for a page no batch ever wrote: what such a page holds is not
 * the source's (a pre-copy source then sees a mismatch and resends it; the post-copy family
 * delivers it after the resume anyway), so reading it would only cost time with the VM paused,
 * and reading guest RAM that was never touched faults every page in (tens of microseconds a
 * page: seconds for a few GiB). A real page hashing to this value would be taken for one that
 * never arrived and resent: harmless. */
#define VERIFY_HASH_NEVER_RECEIVED 0x6e65766572726376ull /* "neverrcv" */

/* Destination: the page's hash as of its last commit, hashed now when none is known, or
 * VERIFY_HASH_NEVER_RECEIVED. */
static uint64_t verify_dest_hash(const struct session_region *r, uint64_t page)
{
	if (r->dst.hashed && bitmap_test(r->dst.hashed, page))
		return r->dst.hashes[page];
	if (r->dst.arrived && !bitmap_test(r->dst.arrived, page))
		return VERIFY_HASH_NEVER_RECEIVED;
	return verify_page_hash(r, page);
}

/* The sample verify_source_cost_us() times: runs of pages spread over the region, read in
 * order as the verification reads them, so that neither the cache nor the lack of prefetch
 * skews the rate. */
#define VERIFY_COST_SAMPLE_BYTES (4u << 20)
#define VERIFY_COST_SAMPLE_RUNS 16u

/* RMIG_VERIFY_SAMPLE: the pages of r its sample takes, r's share by size of
 * RMIG_VERIFY_SAMPLE_BYTES among the regions without tracker hashes (all of them at most). */
static uint64_t verify_sample_pages(const struct rmig_session *s, const struct session_region *r)
{
	uint64_t total = 0, pages;

	for (size_t i = 0; i < s->nregions; i++)
		if (!verify_source_hashes(&s->regions[i]))
			total += s->regions[i].length;
	if (!total)
		return 0;
	pages = (uint64_t)((double)RMIG_VERIFY_SAMPLE_BYTES * ((double)r->length / (double)total) /
			   (double)r->page_size) +
		1;
	return pages < r->npages ? pages : r->npages;
}

/* splitmix64: the sample's positions, from a seed drawn once per switchover. */
static uint64_t verify_random(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

int verify_source_plan(struct rmig_session *s)
{
	uint64_t seed = 0;

	if (s->params.verify != RMIG_VERIFY_SAMPLE)
		return 0;
	/* Where the sample falls must not be known beforehand, to the guest least of all. */
	if (getrandom(&seed, sizeof(seed), 0) != (ssize_t)sizeof(seed))
		seed ^= session_now_us() ^ (uint64_t)(uintptr_t)s;
	for (size_t i = 0; i < s->nregions; i++) {
		struct session_region *r = &s->regions[i];
		uint64_t want, run;

		if (!r->src.checked)
			r->src.checked = calloc(bitmap_words(r->npages), sizeof(uint64_t));
		if (!r->src.checked)
			return session_fail(s, -ENOMEM, "verification: out of memory");
		bitmap_zero(r->src.checked, r->npages);
		want = verify_sample_pages(s, r);
		if (verify_source_hashes(r) || want >= r->npages) {
			bitmap_set_range(r->src.checked, 0, r->npages);
			continue;
		}
		bitmap_or(r->src.checked, r->src.dirty, r->npages);
		run = VERIFY_SAMPLE_RUN_BYTES / r->page_size;
		if (run < 1)
			run = 1;
		if (run > want)
			run = want;
		for (uint64_t taken = 0; taken < want; taken += run)
			bitmap_set_range(r->src.checked,
					 verify_random(&seed) % (r->npages - run + 1), run);
	}
	return 0;
}

uint64_t verify_source_cost_us(struct rmig_session *s)
{
	const struct session_region *sample = NULL;
	uint64_t pages = 0;

	if (s->params.verify == RMIG_VERIFY_NONE)
		return 0;
	for (size_t i = 0; i < s->nregions; i++) {
		if (verify_source_hashes(&s->regions[i]))
			continue;
		pages += s->params.verify == RMIG_VERIFY_SAMPLE
				 ? verify_sample_pages(s, &s->regions[i])
				 : s->regions[i].npages;
		if (!sample || s->regions[i].npages > sample->npages)
			sample = &s->regions[i];
	}
	if (!pages)
		return 0;
	if (!s->src.verify_ns_per_page) {
		uint64_t n = VERIFY_COST_SAMPLE_BYTES / sample->page_size, run, stride, hashed = 0;
		uint64_t sink = 0;
		struct timespec t0, t1;
		int64_t ns;

		if (n < VERIFY_COST_SAMPLE_RUNS)
			n = VERIFY_COST_SAMPLE_RUNS;
		if (n > sample->npages)
			n = sample->npages;
		run = n / VERIFY_COST_SAMPLE_RUNS ? n / VERIFY_COST_SAMPLE_RUNS : 1;
		stride = sample->npages / VERIFY_COST_SAMPLE_RUNS;
		if (stride < run)
			stride = run;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		for (uint64_t first = 0; first + run <= sample->npages && hashed < n;
		     first += stride)
			for (uint64_t k = 0; k < run; k++, hashed++)
				sink ^= verify_page_hash(sample, first + k);
		/* The hashes are used, as far as the compiler knows: the loop stays. */
		__asm__ volatile("" : : "r"(sink) : "memory");
		clock_gettime(CLOCK_MONOTONIC, &t1);
		ns = (int64_t)(t1.tv_sec - t0.tv_sec) * 1000000000 + (t1.tv_nsec - t0.tv_nsec);
		s->src.verify_ns_per_page =
			hashed && ns > (int64_t)hashed ? (uint64_t)ns / hashed : 1;
	}
	return pages * s->src.verify_ns_per_page / session_pause_threads() / 1000u;
}

/* The source's own hashes of a region with no tracker hashes, taken with the VM paused (so
 * they stay valid through every resend pass), one slice of pages per thread. Pages in `skip`
 * (post-copy: those delivered after the resume, which the comparison ignores) are not read. */
struct verify_slice {
	const struct session_region *r;
	const uint64_t *skip;
	const uint64_t *only; /* when set, only these pages are read */
	uint64_t *hashes;
	uint64_t first, end;
};

static void *verify_slice_main(void *arg)
{
	struct verify_slice *slice = arg;

	for (uint64_t page = slice->first; page < slice->end; page++)
		slice->hashes[page] =
			(slice->skip && bitmap_test(slice->skip, page)) ||
					(slice->only && !bitmap_test(slice->only, page))
				? 0
				: verify_page_hash(slice->r, page);
	return NULL;
}

static void verify_hash_region(const struct session_region *r, const uint64_t *skip,
			       const uint64_t *only, uint64_t *hashes)
{
	struct verify_slice slices[DIRTY_HASH_THREADS_MAX];
	pthread_t threads[DIRTY_HASH_THREADS_MAX];
	int started[DIRTY_HASH_THREADS_MAX] = {0};
	unsigned n = session_pause_threads();

	for (unsigned t = 0; t < n; t++)
		slices[t] = (struct verify_slice){.r = r,
						  .skip = skip,
						  .only = only,
						  .hashes = hashes,
						  .first = r->npages * t / n,
						  .end = r->npages * (t + 1) / n};
	/* A thread that cannot start leaves its slice to this one. */
	for (unsigned t = 1; t < n; t++)
		started[t] = !pthread_create(&threads[t], NULL, verify_slice_main, &slices[t]);
	verify_slice_main(&slices[0]);
	for (unsigned t = 1; t < n; t++) {
		if (started[t])
			pthread_join(threads[t], NULL);
		else
			verify_slice_main(&slices[t]);
	}
}

/* Ask for the hashes of [first, first + npages) of r. */
static int verify_request(struct rmig_session *s, const struct session_region *r, uint64_t first,
			  uint64_t npages)
{
	struct protocol_verify_req req = {
		.region_id = r->id, .first_page = first, .npages = npages};

	return session_ctrl_send(s, protocol_verify_req_to_wire(&req, s->msg_buf));
}

/* mismatch[]: a page bitmap per region, same order as s->regions; own[]: the source's hashes
 * of each region no tracker hashed, NULL where one did. */
static void verify_tables_free(struct rmig_session *s, uint64_t **mismatch, uint64_t **own)
{
	for (size_t i = 0; i < s->nregions; i++) {
		free(mismatch ? mismatch[i] : NULL);
		free(own ? own[i] : NULL);
	}
	free(mismatch);
	free(own);
}

static int verify_tables_alloc(struct rmig_session *s, uint64_t ***mismatch_p, uint64_t ***own_p)
{
	uint64_t **mismatch = calloc(s->nregions, sizeof(*mismatch));
	uint64_t **own = calloc(s->nregions, sizeof(*own));
	int ok = mismatch && own;

	for (size_t i = 0; ok && i < s->nregions; i++) {
		const struct session_region *r = &s->regions[i];

		mismatch[i] = calloc(bitmap_words(r->npages), sizeof(uint64_t));
		if (!verify_source_hashes(r))
			own[i] = malloc(r->npages * sizeof(uint64_t));
		ok = mismatch[i] && (own[i] || verify_source_hashes(r));
	}
	if (!ok) {
		verify_tables_free(s, mismatch, own);
		return session_fail(s, -ENOMEM, "verification: out of memory");
	}
	*mismatch_p = mismatch;
	*own_p = own;
	return 0;
}

/* One request of a comparison: the hashes of pages [first, first + npages) of s->regions[region]. */
struct verify_run {
	size_t region;
	uint64_t first, npages;
};

/* The runs of the pages in want[] (a page bitmap per region, same order as s->regions; NULL:
 * every page), runs closer than `merge` pages joined into one. Returns their number (*runs_p
 * allocated, to be freed) or -ENOMEM. */
static int64_t verify_runs(const struct rmig_session *s, uint64_t *const *want, uint64_t merge,
			   struct verify_run **runs_p)
{
	struct verify_run *runs = NULL;
	size_t n = 0, cap = 0;

	for (size_t i = 0; i < s->nregions; i++) {
		const struct session_region *r = &s->regions[i];
		size_t start = 0, len = r->npages, next, next_len, end, from = 0;

		while (want ? dirty_bitmap_next_run(want[i], r->npages, from, &start, &len)
			    : from == 0 && r->npages) {
			end = start + len;
			while (want &&
			       dirty_bitmap_next_run(want[i], r->npages, end, &next, &next_len) &&
			       next - end <= merge)
				end = next + next_len;
			if (n == cap) {
				struct verify_run *grown;

				cap = cap ? 2 * cap : 64;
				grown = realloc(runs, cap * sizeof(*runs));
				if (!grown) {
					free(runs);
					return -ENOMEM;
				}
				runs = grown;
			}
			runs[n++] = (struct verify_run){
				.region = i, .first = start, .npages = end - start};
			from = end;
		}
	}
	*runs_p = runs;
	return (int64_t)n;
}

/* What the source hashes of its own while the destination answers the first requests. */
enum verify_own {
	VERIFY_OWN_NONE,    /* nothing: the pages were hashed before */
	VERIFY_OWN_ALL,	    /* every page (not those of the postcopy bitmaps with skip) */
	VERIFY_OWN_CHECKED, /* the pages of the regions' `checked` bitmaps */
};

static int64_t verify_collect(struct rmig_session *s, uint64_t expected, uint64_t **mismatch,
			      uint64_t *const *own, int checked_only);

/* At most this many requests go unanswered: an answer is read before each further request,
 * so that neither side can fill the other's receive buffers while both send (an RDMA
 * connection posts 32); as many as that allows, as each batch of requests costs both hosts a
 * round trip (2 ms each on a Xen dom0 of one vCPU under TCG). */
#define VERIFY_WINDOW 24u

/* Ask for the hashes of the n runs, compare them with the source's, mark the pages that differ
 * in mismatch[] (with checked_only, compare only the pages of the regions' `checked` bitmaps).
 * The first requests go before the source hashes what `hash_own` says, so that both hosts work
 * at once. Returns the number of pages that differ or -errno. */
static int64_t verify_exchange(struct rmig_session *s, const struct verify_run *runs, size_t n,
			       enum verify_own hash_own, int skip_postcopy, uint64_t **mismatch,
			       uint64_t *const *own, int checked_only)
{
	int64_t mismatched = 0, found;
	uint64_t t0 = session_now_us(), t_hashed;
	size_t sent = 0;
	int ret = 0;

	for (; sent < n && sent < VERIFY_WINDOW && !ret; sent++)
		ret = verify_request(s, &s->regions[runs[sent].region], runs[sent].first,
				     runs[sent].npages);
	for (size_t i = 0; i < s->nregions && !ret && hash_own != VERIFY_OWN_NONE; i++)
		if (own[i])
			verify_hash_region(
				&s->regions[i], skip_postcopy ? s->regions[i].postcopy : NULL,
				hash_own == VERIFY_OWN_CHECKED ? s->regions[i].src.checked : NULL,
				own[i]);
	t_hashed = session_now_us();
	/* The answers come in the order of the requests, each covering its run exactly. */
	for (size_t done = 0; done < n && !ret; done++) {
		found = verify_collect(s, runs[done].npages, mismatch, own, checked_only);
		if (found < 0) {
			ret = (int)found;
			break;
		}
		mismatched += found;
		if (sent < n) {
			ret = verify_request(s, &s->regions[runs[sent].region], runs[sent].first,
					     runs[sent].npages);
			sent++;
		}
	}
	if (!ret)
		rmig_log_info(
			"source: verification: %zu requests, %.1f ms hashing here, then %.1f ms "
			"for the answers",
			n, (double)(t_hashed - t0) / 1000.0,
			(double)(session_now_us() - t_hashed) / 1000.0);
	return ret ? ret : mismatched;
}

/* verify_exchange() of the runs of want[] (see verify_runs()). */
static int64_t verify_exchange_pages(struct rmig_session *s, uint64_t *const *want, uint64_t merge,
				     enum verify_own hash_own, int skip_postcopy,
				     uint64_t **mismatch, uint64_t *const *own, int checked_only)
{
	struct verify_run *runs;
	int64_t n, found;

	n = verify_runs(s, want, merge, &runs);
	if (n < 0)
		return session_fail(s, (int)n, "verification: out of memory");
	found = verify_exchange(s, runs, (size_t)n, hash_own, skip_postcopy, mismatch, own,
				checked_only);
	free(runs);
	return found;
}

/* Receive hashes until `expected` pages are covered; mark mismatches in mismatch[] (one bitmap
 * per region, same order as s->regions); when `checked_only`, compare only the pages of the
 * regions' `checked` bitmaps. Returns the number of mismatching pages or -errno. */
static int64_t verify_collect(struct rmig_session *s, uint64_t expected, uint64_t **mismatch,
			      uint64_t *const *own, int checked_only)
{
	char why[TRANSPORT_ERROR_MAX];
	int64_t mismatched = 0;

	while (expected) {
		struct protocol_verify_hashes m;
		struct session_region *r;
		const uint64_t *known;
		const void *payload;
		size_t len, index;
		int type, ret;

		type = session_ctrl_recv(s, "page hashes", &payload, &len);
		if (type < 0)
			return type;
		if (type != PROTOCOL_VERIFY_HASHES)
			return session_fail(s, -EPROTO,
					    "%s sent %s while page hashes were expected",
					    s->conn->peer, protocol_type_name(type));
		ret = protocol_verify_hashes_from_wire(payload, len, &m, why, sizeof(why));
		if (ret)
			return session_fail(s, ret, "%s broke the protocol: %s", s->conn->peer,
					    why);
		r = session_region_find(s, m.region_id);
		if (!r || m.first_page > r->npages || m.count > r->npages - m.first_page ||
		    m.count > expected)
			return session_fail(
				s, -EPROTO,
				"%s sent hashes of region %u pages %llu+%u, outside what "
				"was asked",
				s->conn->peer, m.region_id, (unsigned long long)m.first_page,
				m.count);
		index = (size_t)(r - s->regions);
		known = verify_source_hashes(r);
		if (!known)
			known = own[index];
		for (uint32_t i = 0; i < m.count; i++) {
			uint64_t page = m.first_page + i;

			if (checked_only && !bitmap_test(r->src.checked, page))
				continue;
			if (known[page] != protocol_hash_at(&m, i)) {
				bitmap_set(mismatch[index], page);
				mismatched++;
			}
		}
		expected -= m.count;
	}
	return mismatched;
}

/* How far apart RMIG_VERIFY_SAMPLE's runs may be and still go in one request. */
static uint64_t verify_merge_pages(const struct rmig_session *s)
{
	uint64_t total = 0;

	for (size_t i = 0; i < s->nregions; i++)
		total += s->regions[i].npages;
	return total / VERIFY_WINDOW > VERIFY_MERGE_PAGES ? total / VERIFY_WINDOW
							  : VERIFY_MERGE_PAGES;
}

/* The first comparison. RMIG_VERIFY_SAMPLE compares the planned pages (verify_source_plan())
 * and every page only when one of them differs; RMIG_VERIFY_ALL every page at once. With
 * skip_postcopy the pages in the regions' postcopy bitmaps, which the destination will not
 * keep, are not compared (the caller ignores them in the full comparison). Returns the number
 * of mismatching pages or -errno; *compared_p: the pages compared. */
static int64_t verify_compare(struct rmig_session *s, uint64_t **mismatch, uint64_t *const *own,
			      int skip_postcopy, uint64_t *compared_p)
{
	int sample = s->params.verify == RMIG_VERIFY_SAMPLE;
	uint64_t compared = 0, **checked;
	int64_t found;

	for (size_t i = 0; sample && i < s->nregions; i++)
		sample = s->regions[i].src.checked != NULL;
	if (sample) {
		for (size_t i = 0; i < s->nregions; i++) {
			struct session_region *r = &s->regions[i];

			if (skip_postcopy)
				bitmap_andnot(r->src.checked, r->postcopy, r->npages);
			compared += bitmap_count(r->src.checked, r->npages);
		}
		checked = calloc(s->nregions, sizeof(*checked));
		if (!checked)
			return session_fail(s, -ENOMEM, "verification: out of memory");
		for (size_t i = 0; i < s->nregions; i++)
			checked[i] = s->regions[i].src.checked;
		found = verify_exchange_pages(s, checked, verify_merge_pages(s), VERIFY_OWN_CHECKED,
					      0, mismatch, own, 1);
		free(checked);
		if (found <= 0) {
			*compared_p = compared;
			if (!found)
				rmig_log_info(
					"source: verification: %llu pages compared (the final "
					"round's and a sample), none differ",
					(unsigned long long)compared);
			return found;
		}
		rmig_log_warn("source: verification: %lld of %llu sampled pages differ on the "
			      "destination, so the dirty log missed writes; comparing every page",
			      (long long)found, (unsigned long long)compared);
		for (size_t i = 0; i < s->nregions; i++)
			bitmap_zero(mismatch[i], s->regions[i].npages);
	}
	found = verify_exchange_pages(s, NULL, 0, VERIFY_OWN_ALL, skip_postcopy, mismatch, own, 0);
	compared = 0;
	for (size_t i = 0; i < s->nregions; i++)
		compared += s->regions[i].npages;
	if (found >= 0)
		*compared_p = compared;
	return found;
}

int verify_source_run(struct rmig_session *s, struct batch_pipeline *pipeline)
{
	uint64_t **mismatch, **own;
	uint64_t verified = 0;
	int64_t mismatched, first_mismatched = 0, nruns;
	struct verify_run *runs;
	int ret;

	ret = verify_tables_alloc(s, &mismatch, &own);
	if (ret)
		return ret;
	mismatched = verify_compare(s, mismatch, own, 0, &verified);
	if (mismatched < 0) {
		ret = (int)mismatched;
		goto out_free;
	}
	first_mismatched = mismatched;
	pthread_mutex_lock(&s->lock);
	s->stats.pages_verified = verified;
	s->stats.pages_mismatched = (uint64_t)first_mismatched;
	pthread_mutex_unlock(&s->lock);
	if (mismatched)
		rmig_log_warn("source: verification: %lld of %llu pages differ on the destination; "
			      "resending them",
			      (long long)mismatched, (unsigned long long)verified);

	for (int pass = 0; mismatched && pass < VERIFY_RESEND_PASSES; pass++) {
		for (size_t i = 0; i < s->nregions; i++) {
			struct session_region *r = &s->regions[i];

			memcpy(r->src.dirty, mismatch[i],
			       bitmap_words(r->npages) * sizeof(uint64_t));
		}
		ret = source_send_pages(s, pipeline, NULL, NULL);
		if (ret)
			goto out_free;
		/* The resent pages, asked about again; what still differs is marked anew. */
		nruns = verify_runs(s, mismatch, 0, &runs);
		if (nruns < 0) {
			ret = session_fail(s, (int)nruns, "verification: out of memory");
			goto out_free;
		}
		for (size_t i = 0; i < s->nregions; i++)
			bitmap_zero(mismatch[i], s->regions[i].npages);
		mismatched = verify_exchange(s, runs, (size_t)nruns, VERIFY_OWN_NONE, 0, mismatch,
					     own, 0);
		free(runs);
		if (mismatched < 0) {
			ret = (int)mismatched;
			goto out_free;
		}
	}
	if (mismatched) {
		ret = session_fail(
			s, -EIO,
			"verification: %lld pages still differ on the destination after %d "
			"resends",
			(long long)mismatched, VERIFY_RESEND_PASSES);
		goto out_free;
	}
	session_histogram_update(s);

out_free:
	verify_tables_free(s, mismatch, own);
	return ret;
}

int verify_dest_answer(struct rmig_session *s, const void *payload, size_t len)
{
	struct protocol_verify_req req;
	char why[TRANSPORT_ERROR_MAX];
	struct session_region *r;
	uint64_t *hashes, start_us;
	int ret = 0;

	ret = protocol_verify_req_from_wire(payload, len, &req, why, sizeof(why));
	if (ret)
		return session_fail(s, ret, "%s broke the protocol: %s", s->conn->peer, why);
	r = session_region_find(s, req.region_id);
	if (!r || req.npages == 0 || req.first_page > r->npages ||
	    req.npages > r->npages - req.first_page)
		return session_fail(s, -EPROTO,
				    "%s asked for hashes of region %u pages %llu+%llu, outside the "
				    "regions here",
				    s->conn->peer, req.region_id,
				    (unsigned long long)req.first_page,
				    (unsigned long long)req.npages);
	hashes = malloc(PROTOCOL_HASHES_MAX * sizeof(*hashes));
	if (!hashes)
		return session_fail(s, -ENOMEM, "verification: out of memory");
	start_us = session_now_us();
	for (uint64_t done = 0; done < req.npages && !ret;) {
		uint32_t count =
			(uint32_t)(req.npages - done < PROTOCOL_HASHES_MAX ? req.npages - done
									   : PROTOCOL_HASHES_MAX);
		uint64_t first = req.first_page + done;

		for (uint32_t i = 0; i < count; i++)
			hashes[i] = verify_dest_hash(r, first + i);
		ret = session_ctrl_send(
			s, protocol_verify_hashes_to_wire(r->id, first, hashes, count, s->msg_buf));
		done += count;
	}
	free(hashes);
	pthread_mutex_lock(&s->lock);
	s->stats.verify_answer_us += session_now_us() - start_us;
	if (!ret)
		s->stats.pages_verified += req.npages;
	pthread_mutex_unlock(&s->lock);
	return ret;
}

int verify_source_postcopy(struct rmig_session *s)
{
	uint64_t **mismatch, **own;
	uint64_t kept = 0, mismatched = 0, compared = 0;
	int64_t found;
	int ret;

	/* The pages the destination keeps: those not coming after resume. */
	for (size_t i = 0; i < s->nregions; i++)
		kept += s->regions[i].npages -
			bitmap_count(s->regions[i].postcopy, s->regions[i].npages);
	if (!kept)
		return 0;
	ret = verify_tables_alloc(s, &mismatch, &own);
	if (ret)
		return ret;
	/* Whole regions, in few messages; the pages coming later differ there and do not
	 * count. A sample leaves them out. */
	ret = verify_source_plan(s);
	if (ret)
		goto out_free;
	found = verify_compare(s, mismatch, own, 1, &compared);
	if (found < 0) {
		ret = (int)found;
		goto out_free;
	}
	for (size_t i = 0; i < s->nregions; i++) {
		struct session_region *r = &s->regions[i];

		bitmap_andnot(mismatch[i], r->postcopy, r->npages);
		mismatched += bitmap_or(r->postcopy, mismatch[i], r->npages);
	}
	if (mismatched)
		rmig_log_warn("source: verification: %llu of %llu pages differ on the destination; "
			      "they will come after resume",
			      (unsigned long long)mismatched, (unsigned long long)kept);
	pthread_mutex_lock(&s->lock);
	s->stats.pages_verified = compared < kept ? compared : kept;
	s->stats.pages_mismatched = mismatched;
	pthread_mutex_unlock(&s->lock);

out_free:
	verify_tables_free(s, mismatch, own);
	return ret;
}
