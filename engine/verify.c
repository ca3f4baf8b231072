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
#include "engine/holes.h"
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
		uint64_t n = VERIFY_COST_SAMPLE_BYTES / sample->page_size, run, stride, found = 0;
		struct holes_cursor cursor;
		uint64_t sink = 0, *data;
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
		data = malloc(n * sizeof(*data));
		if (!data)
			return 0; /* no rate yet, asked again next time */
		/* A hole costs the verification nothing, and reading it would allocate it: the
		 * pages with data are picked first, and only their hashing is timed. */
		holes_cursor_init(&cursor);
		for (uint64_t first = 0; first + run <= sample->npages && found < n;
		     first += stride)
			for (uint64_t k = 0; k < run && found < n; k++)
				if (!holes_page(sample->src.holes, &cursor, first + k))
					data[found++] = first + k;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		for (uint64_t i = 0; i < found; i++)
			sink ^= verify_page_hash(sample, data[i]);
		/* The hashes are used, as far as the compiler knows: the loop stays. */
		__asm__ volatile("" : : "r"(sink) : "memory");
		clock_gettime(CLOCK_MONOTONIC, &t1);
		free(data);
		ns = (int64_t)(t1.tv_sec - t0.tv_sec) * 1000000000 + (t1.tv_nsec - t0.tv_nsec);
		/* Nothing but holes where it looked: no rate yet, asked again next time. */
		if (!found)
			return 0;
		s->src.verify_ns_per_page = ns > (int64_t)found ? (uint64_t)ns / found : 1;
	}
	return pages * s->src.verify_ns_per_page / session_pause_threads() / 1000u;
}

/* The source's own hashes of a region with no tracker hashes, taken with the VM paused (so
 * they stay valid through every resend pass), one slice of pages per thread. Pages in `skip`
 * (post-copy: those delivered after the resume, which the comparison ignores) are not read. */
struct verify_slice {
	const struct session_region *r;
	const uint64_t *skip;
	const uint64_t *only; /* when set, only these pages are read and their entries written */
	uint64_t *hashes;
	uint64_t first, end;
	uint64_t zero_hash; /* of one of r's pages, for those in holes */
};

/* A source page's hash with the VM paused: a page in a hole of the tmpfs file behind the
 * region is a zero page, hashed without reading it (reading would allocate it). */
static uint64_t verify_source_page_hash(const struct verify_slice *slice,
					struct holes_cursor *cursor, uint64_t page)
{
	if (holes_page(slice->r->src.holes, cursor, page))
		return slice->zero_hash;
	return verify_page_hash(slice->r, page);
}

static void *verify_slice_main(void *arg)
{
	struct verify_slice *slice = arg;
	struct holes_cursor cursor;
	size_t start, len;

	holes_cursor_init(&cursor);
	if (!slice->only) {
		for (uint64_t page = slice->first; page < slice->end; page++)
			slice->hashes[page] =
				slice->skip && bitmap_test(slice->skip, page)
					? 0
					: verify_source_page_hash(slice, &cursor, page);
		return NULL;
	}
	/* Only the runs asked for, and only their entries of the table: it is as large as the
	 * region (2 MiB a GiB, freshly allocated), and writing every entry would fault all of it
	 * in with the VM paused, for pages a sample never compares. */
	for (size_t from = slice->first;
	     from < slice->end &&
	     dirty_bitmap_next_run(slice->only, slice->end, from, &start, &len);
	     from = start + len)
		for (uint64_t page = start; page < start + len; page++)
			slice->hashes[page] = verify_source_page_hash(slice, &cursor, page);
	return NULL;
}

static void verify_hash_region(const struct session_region *r, const uint64_t *skip,
			       const uint64_t *only, uint64_t *hashes)
{
	struct verify_slice slices[DIRTY_HASH_THREADS_MAX];
	pthread_t threads[DIRTY_HASH_THREADS_MAX];
	int started[DIRTY_HASH_THREADS_MAX] = {0};
	unsigned n = session_pause_threads();
	uint64_t zero_hash = page_hash_zero(r->page_size);

	for (unsigned t = 0; t < n; t++)
		slices[t] = (struct verify_slice){.r = r,
						  .skip = skip,
						  .only = only,
						  .hashes = hashes,
						  .zero_hash = zero_hash,
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

/* One request of a comparison, of s->regions[region]: with nparts 0 a VERIFY_REQ of the pages
 * [first, first + npages); else a VERIFY_RUNS of plan->parts[part0, part0 + nparts), npages
 * pages in all (first: the first part's first page). */
struct verify_run {
	size_t region;
	uint64_t first, npages;
	size_t part0;
	uint32_t nparts;
};

/* The requests of a comparison and the page runs their VERIFY_RUNS name. */
struct verify_plan {
	struct verify_run *runs;
	size_t n, cap;
	struct protocol_page_run *parts;
	size_t nparts, cap_parts;
};

static void verify_plan_free(struct verify_plan *plan)
{
	free(plan->runs);
	free(plan->parts);
	*plan = (struct verify_plan){0};
}

/* Room for one more request and one more part. 0 or -ENOMEM. */
static int verify_plan_reserve(struct verify_plan *plan)
{
	if (plan->n == plan->cap) {
		size_t cap = plan->cap ? 2 * plan->cap : 64;
		struct verify_run *grown = realloc(plan->runs, cap * sizeof(*grown));

		if (!grown)
			return -ENOMEM;
		plan->runs = grown;
		plan->cap = cap;
	}
	if (plan->nparts == plan->cap_parts) {
		size_t cap = plan->cap_parts ? 2 * plan->cap_parts : 64;
		struct protocol_page_run *grown = realloc(plan->parts, cap * sizeof(*grown));

		if (!grown)
			return -ENOMEM;
		plan->parts = grown;
		plan->cap_parts = cap;
	}
	return 0;
}

/* Add the pages [first, first + npages) of region i to the plan's last VERIFY_RUNS request,
 * or to a new one when that is of another region or full. npages <= PROTOCOL_HASHES_MAX. */
static int verify_plan_add(struct verify_plan *plan, size_t i, uint64_t first, uint32_t npages)
{
	struct verify_run *last;

	if (verify_plan_reserve(plan))
		return -ENOMEM;
	last = plan->n ? &plan->runs[plan->n - 1] : NULL;
	if (!last || !last->nparts || last->region != i ||
	    last->nparts == PROTOCOL_VERIFY_RUNS_MAX ||
	    last->npages + npages > PROTOCOL_HASHES_MAX) {
		last = &plan->runs[plan->n++];
		*last = (struct verify_run){.region = i, .first = first, .part0 = plan->nparts};
	}
	plan->parts[plan->nparts++] =
		(struct protocol_page_run){.first_page = first, .npages = npages};
	last->nparts++;
	last->npages += npages;
	return 0;
}

/* The requests for the pages in want[] (a page bitmap per region, same order as s->regions):
 * their runs, packed into VERIFY_RUNS requests, so that the destination answers those pages
 * and no others, in as few messages as the pages need, however far apart they lie. want NULL:
 * every page, one VERIFY_REQ a region. 0 or -ENOMEM (the plan freed). */
static int verify_runs(const struct rmig_session *s, uint64_t *const *want,
		       struct verify_plan *plan)
{
	*plan = (struct verify_plan){0};
	for (size_t i = 0; i < s->nregions; i++) {
		const struct session_region *r = &s->regions[i];
		size_t start, len, from = 0;

		if (!want) {
			if (!r->npages)
				continue;
			if (verify_plan_reserve(plan))
				goto fail;
			plan->runs[plan->n++] =
				(struct verify_run){.region = i, .npages = r->npages};
			continue;
		}
		while (dirty_bitmap_next_run(want[i], r->npages, from, &start, &len)) {
			from = start + len;
			while (len) {
				uint32_t piece =
					(uint32_t)(len < PROTOCOL_HASHES_MAX ? len
									     : PROTOCOL_HASHES_MAX);

				if (verify_plan_add(plan, i, start, piece))
					goto fail;
				start += piece;
				len -= piece;
			}
		}
	}
	return 0;
fail:
	verify_plan_free(plan);
	return -ENOMEM;
}

/* Send request `run` of the plan. */
static int verify_request(struct rmig_session *s, const struct verify_plan *plan,
			  const struct verify_run *run)
{
	const struct session_region *r = &s->regions[run->region];
	struct protocol_verify_req req = {
		.region_id = r->id, .first_page = run->first, .npages = run->npages};

	if (run->nparts)
		return session_ctrl_send(s, protocol_verify_runs_to_wire(r->id,
									 &plan->parts[run->part0],
									 run->nparts, s->msg_buf));
	return session_ctrl_send(s, protocol_verify_req_to_wire(&req, s->msg_buf));
}

/* What the source hashes of its own while the destination answers the first requests. */
enum verify_own {
	VERIFY_OWN_NONE,    /* nothing: the pages were hashed before */
	VERIFY_OWN_ALL,	    /* every page (not those of the postcopy bitmaps with skip) */
	VERIFY_OWN_CHECKED, /* the pages of the regions' `checked` bitmaps */
};

static int64_t verify_collect(struct rmig_session *s, const struct verify_plan *plan,
			      const struct verify_run *run, uint64_t **mismatch,
			      uint64_t *const *own, int checked_only);

/* At most this many requests go unanswered: an answer is read before each further request,
 * so that neither side can fill the other's receive buffers while both send (an RDMA
 * connection posts 32); as many as that allows, as each batch of requests costs both hosts a
 * round trip (2 ms each on a Xen dom0 of one vCPU under TCG). */
#define VERIFY_WINDOW 24u

/* Send the plan's requests, compare the answers with the source's hashes, mark the pages that
 * differ in mismatch[] (with checked_only, compare only the pages of the regions' `checked`
 * bitmaps). The first requests go before the source hashes what `hash_own` says, so that both
 * hosts work at once. Returns the number of pages that differ or -errno. */
static int64_t verify_exchange(struct rmig_session *s, const struct verify_plan *plan,
			       enum verify_own hash_own, int skip_postcopy, uint64_t **mismatch,
			       uint64_t *const *own, int checked_only)
{
	int64_t mismatched = 0, found;
	uint64_t t0 = session_now_us(), t_hashed;
	size_t sent = 0, n = plan->n;
	int ret = 0;

	for (; sent < n && sent < VERIFY_WINDOW && !ret; sent++)
		ret = verify_request(s, plan, &plan->runs[sent]);
	for (size_t i = 0; i < s->nregions && !ret && hash_own != VERIFY_OWN_NONE; i++)
		if (own[i])
			verify_hash_region(
				&s->regions[i], skip_postcopy ? s->regions[i].postcopy : NULL,
				hash_own == VERIFY_OWN_CHECKED ? s->regions[i].src.checked : NULL,
				own[i]);
	t_hashed = session_now_us();
	/* The answers come in the order of the requests, each covering its request exactly. */
	for (size_t done = 0; done < n && !ret; done++) {
		found = verify_collect(s, plan, &plan->runs[done], mismatch, own, checked_only);
		if (found < 0) {
			ret = (int)found;
			break;
		}
		mismatched += found;
		if (sent < n)
			ret = verify_request(s, plan, &plan->runs[sent++]);
	}
	if (!ret)
		rmig_log_info("source: verification: %zu requests (%zu runs), %.1f ms hashing "
			      "here, then %.1f ms for the answers",
			      n, plan->nparts ? plan->nparts : n, (double)(t_hashed - t0) / 1000.0,
			      (double)(session_now_us() - t_hashed) / 1000.0);
	return ret ? ret : mismatched;
}

/* verify_exchange() of the pages of want[] (see verify_runs()). */
static int64_t verify_exchange_pages(struct rmig_session *s, uint64_t *const *want,
				     enum verify_own hash_own, int skip_postcopy,
				     uint64_t **mismatch, uint64_t *const *own, int checked_only)
{
	struct verify_plan plan;
	int64_t found;

	if (verify_runs(s, want, &plan))
		return session_fail(s, -ENOMEM, "verification: out of memory");
	found = verify_exchange(s, &plan, hash_own, skip_postcopy, mismatch, own, checked_only);
	verify_plan_free(&plan);
	return found;
}

/* Compare count hashes of m, from its index `from`, with the source's for the pages from
 * `page` of region r (index `index` of s->regions); mark those that differ. */
static int64_t verify_compare_hashes(struct rmig_session *s, size_t index,
				     const struct protocol_verify_hashes *m, uint32_t from,
				     uint64_t page, uint32_t count, uint64_t **mismatch,
				     uint64_t *const *own, int checked_only)
{
	struct session_region *r = &s->regions[index];
	const uint64_t *known = verify_source_hashes(r);
	int64_t mismatched = 0;

	if (!known)
		known = own[index];
	for (uint32_t i = 0; i < count; i++, page++) {
		if (checked_only && !bitmap_test(r->src.checked, page))
			continue;
		if (known[page] != protocol_hash_at(m, from + i)) {
			bitmap_set(mismatch[index], page);
			mismatched++;
		}
	}
	return mismatched;
}

/* Receive the answer to request `run`: one VERIFY_HASHES for a VERIFY_RUNS, as many as its
 * pages need for a VERIFY_REQ, each exactly the pages asked, in order. Mark mismatches in
 * mismatch[] (one bitmap per region, same order as s->regions); when `checked_only`, compare
 * only the pages of the regions' `checked` bitmaps. Returns the number of mismatching pages or
 * -errno. */
static int64_t verify_collect(struct rmig_session *s, const struct verify_plan *plan,
			      const struct verify_run *run, uint64_t **mismatch,
			      uint64_t *const *own, int checked_only)
{
	const struct session_region *r = &s->regions[run->region];
	uint64_t done = 0;
	char why[TRANSPORT_ERROR_MAX];
	int64_t mismatched = 0;

	while (done < run->npages) {
		struct protocol_verify_hashes m;
		const void *payload;
		size_t len;
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
		if (m.region_id != r->id || m.first_page != run->first + (run->nparts ? 0 : done) ||
		    m.count > run->npages - done || (run->nparts && m.count != run->npages))
			return session_fail(
				s, -EPROTO,
				"%s sent hashes of region %u pages %llu+%u; region %u pages "
				"%llu+%llu (%u runs) were asked, %llu answered",
				s->conn->peer, m.region_id, (unsigned long long)m.first_page,
				m.count, r->id, (unsigned long long)run->first,
				(unsigned long long)run->npages, run->nparts,
				(unsigned long long)done);
		if (!run->nparts) {
			mismatched += verify_compare_hashes(s, run->region, &m, 0, m.first_page,
							    m.count, mismatch, own, checked_only);
		} else {
			uint32_t from = 0;

			for (uint32_t p = 0; p < run->nparts; p++) {
				const struct protocol_page_run *part = &plan->parts[run->part0 + p];

				mismatched += verify_compare_hashes(s, run->region, &m, from,
								    part->first_page, part->npages,
								    mismatch, own, checked_only);
				from += part->npages;
			}
		}
		done += m.count;
	}
	return mismatched;
}

/* 1 when the first comparison is RMIG_VERIFY_SAMPLE's: every region has its planned pages
 * (verify_source_plan()). */
static int verify_sample_planned(const struct rmig_session *s)
{
	if (s->params.verify != RMIG_VERIFY_SAMPLE)
		return 0;
	for (size_t i = 0; i < s->nregions; i++)
		if (!s->regions[i].src.checked)
			return 0;
	return 1;
}

/* The source's own hashes for the first comparison, taken by a thread of their own while the
 * final round's pages and the device state go: with the VM paused the pages are final from the
 * last sync on, and the final round only reads them. What it took and how long the comparison
 * still waited for it are logged. */
struct verify_prehash {
	struct rmig_session *s;
	uint64_t **mismatch, **own;
	enum verify_own what; /* VERIFY_OWN_CHECKED or VERIFY_OWN_ALL */
	pthread_t thread;
	int started;
	uint64_t pages, took_us;
};

static void *verify_prehash_main(void *arg)
{
	struct verify_prehash *pre = arg;
	struct rmig_session *s = pre->s;
	uint64_t t0 = session_now_us();

	for (size_t i = 0; i < s->nregions; i++)
		if (pre->own[i])
			verify_hash_region(
				&s->regions[i], NULL,
				pre->what == VERIFY_OWN_CHECKED ? s->regions[i].src.checked : NULL,
				pre->own[i]);
	pre->took_us = session_now_us() - t0;
	return NULL;
}

int verify_source_prehash_start(struct rmig_session *s)
{
	struct verify_prehash *pre;
	int sample = verify_sample_planned(s), ret;

	if (s->params.verify == RMIG_VERIFY_NONE || s->src.verify_prehash)
		return 0;
	pre = calloc(1, sizeof(*pre));
	if (!pre)
		return session_fail(s, -ENOMEM, "verification: out of memory");
	ret = verify_tables_alloc(s, &pre->mismatch, &pre->own);
	if (ret) {
		free(pre);
		return ret;
	}
	pre->s = s;
	pre->what = sample ? VERIFY_OWN_CHECKED : VERIFY_OWN_ALL;
	for (size_t i = 0; i < s->nregions; i++)
		if (pre->own[i])
			pre->pages += sample ? bitmap_count(s->regions[i].src.checked,
							    s->regions[i].npages)
					     : s->regions[i].npages;
	/* Where it cannot start, verify_source_run() hashes as it did before. */
	pre->started = pre->pages && !pthread_create(&pre->thread, NULL, verify_prehash_main, pre);
	s->src.verify_prehash = pre;
	return 0;
}

/* Wait for the background hashing; returns it (no longer the session's), NULL when none. */
static struct verify_prehash *verify_prehash_take(struct rmig_session *s)
{
	struct verify_prehash *pre = s->src.verify_prehash;
	uint64_t t0 = session_now_us();

	if (!pre)
		return NULL;
	s->src.verify_prehash = NULL;
	if (pre->started) {
		pthread_join(pre->thread, NULL);
		rmig_log_info("source: verification: %llu own pages hashed beside the final "
			      "round in %.1f ms, %.1f ms of it waited for",
			      (unsigned long long)pre->pages, (double)pre->took_us / 1000.0,
			      (double)(session_now_us() - t0) / 1000.0);
	}
	return pre;
}

void verify_source_prehash_stop(struct rmig_session *s)
{
	struct verify_prehash *pre = verify_prehash_take(s);

	if (!pre)
		return;
	verify_tables_free(s, pre->mismatch, pre->own);
	free(pre);
}

/* The first comparison. RMIG_VERIFY_SAMPLE compares the planned pages (verify_source_plan())
 * and every page only when one of them differs; RMIG_VERIFY_ALL every page at once. With
 * skip_postcopy the pages in the regions' postcopy bitmaps, which the destination will not
 * keep, are not compared (the caller ignores them in the full comparison). Returns the number
 * of mismatching pages or -errno; *compared_p: the pages compared. */
static int64_t verify_compare(struct rmig_session *s, uint64_t **mismatch, uint64_t *const *own,
			      int skip_postcopy, int prehashed, uint64_t *compared_p)
{
	int sample = verify_sample_planned(s);
	uint64_t compared = 0, **checked;
	int64_t found;

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
		found = verify_exchange_pages(s, checked,
					      prehashed ? VERIFY_OWN_NONE : VERIFY_OWN_CHECKED, 0,
					      mismatch, own, 1);
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
	/* The background hashing took every page only when every page was to be compared. */
	found = verify_exchange_pages(s, NULL,
				      prehashed && !sample ? VERIFY_OWN_NONE : VERIFY_OWN_ALL,
				      skip_postcopy, mismatch, own, 0);
	compared = 0;
	for (size_t i = 0; i < s->nregions; i++)
		compared += s->regions[i].npages;
	if (found >= 0)
		*compared_p = compared;
	return found;
}

int verify_source_run(struct rmig_session *s, struct batch_pipeline *pipeline)
{
	struct verify_prehash *pre = verify_prehash_take(s);
	uint64_t **mismatch, **own;
	uint64_t verified = 0;
	int64_t mismatched, first_mismatched = 0;
	struct verify_plan plan;
	int ret = 0;

	if (pre) {
		mismatch = pre->mismatch;
		own = pre->own;
	} else {
		ret = verify_tables_alloc(s, &mismatch, &own);
		if (ret)
			return ret;
	}
	mismatched = verify_compare(s, mismatch, own, 0, pre && pre->started, &verified);
	free(pre);
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
		if (verify_runs(s, mismatch, &plan)) {
			ret = session_fail(s, -ENOMEM, "verification: out of memory");
			goto out_free;
		}
		for (size_t i = 0; i < s->nregions; i++)
			bitmap_zero(mismatch[i], s->regions[i].npages);
		mismatched = verify_exchange(s, &plan, VERIFY_OWN_NONE, 0, mismatch, own, 0);
		verify_plan_free(&plan);
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
	/* The resends' counts reach the histogram after the resume (source_run()), not in the
	 * pause: it reads a counter per page of the RAM. */

out_free:
	verify_tables_free(s, mismatch, own);
	return ret;
}

/* Destination: count an answer of `pages` started at start_us (its pages only when ret is 0);
 * returns ret. */
static int verify_dest_answered(struct rmig_session *s, uint64_t start_us, uint64_t pages, int ret)
{
	pthread_mutex_lock(&s->lock);
	s->stats.verify_answer_us += session_now_us() - start_us;
	if (!ret)
		s->stats.pages_verified += pages;
	pthread_mutex_unlock(&s->lock);
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
	return verify_dest_answered(s, start_us, req.npages, ret);
}

int verify_dest_answer_runs(struct rmig_session *s, const void *payload, size_t len)
{
	struct protocol_verify_runs req;
	struct protocol_page_run last;
	char why[TRANSPORT_ERROR_MAX];
	struct session_region *r;
	uint64_t *hashes, start_us, first_page;
	uint32_t n = 0;
	int ret;

	ret = protocol_verify_runs_from_wire(payload, len, &req, why, sizeof(why));
	if (ret)
		return session_fail(s, ret, "%s broke the protocol: %s", s->conn->peer, why);
	r = session_region_find(s, req.region_id);
	/* The runs ascend without overlap (the decoder checked): the last one inside the region
	 * puts them all there. */
	last = protocol_verify_run_at(&req, req.count - 1);
	if (!r || last.first_page > r->npages || last.npages > r->npages - last.first_page)
		return session_fail(s, -EPROTO,
				    "%s asked for hashes of %u runs of region %u, outside the "
				    "regions here",
				    s->conn->peer, req.count, req.region_id);
	hashes = malloc(req.pages * sizeof(*hashes));
	if (!hashes)
		return session_fail(s, -ENOMEM, "verification: out of memory");
	start_us = session_now_us();
	first_page = protocol_verify_run_at(&req, 0).first_page;
	for (uint32_t i = 0; i < req.count; i++) {
		struct protocol_page_run run = protocol_verify_run_at(&req, i);

		for (uint32_t p = 0; p < run.npages; p++)
			hashes[n++] = verify_dest_hash(r, run.first_page + p);
	}
	ret = session_ctrl_send(
		s, protocol_verify_hashes_to_wire(r->id, first_page, hashes, n, s->msg_buf));
	free(hashes);
	return verify_dest_answered(s, start_us, req.pages, ret);
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
	found = verify_compare(s, mismatch, own, 1, 0, &compared);
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
