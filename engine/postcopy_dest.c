/* SPDX-License-Identifier: MIT */
/* engine/postcopy_dest.c - the destination side of the post-copy tail.
 *
 * Memory. Pages that land by RDMA WRITE or tcp recv() must never land in guest RAM registered
 * with userfaultfd: the kernel would block the receiving thread on its own fault, and a guest
 * could see a page half written. So once armed the guest regions are no longer transport
 * regions at all (deregistered: the source loses write access, RDMA unpins them); pages the
 * source announced as coming after resume are discarded (MADV_DONTNEED, or MADV_REMOVE for
 * shared memory) so that they are missing, and the guest RAM is registered in missing mode.
 * Pushed pages land in a staging region of the same length (anonymous, MAP_NORESERVE: only what
 * is in flight takes memory), announced to the source under a fresh id, and are copied into the
 * guest by UFFDIO_COPY (zero runs: UFFDIO_ZEROPAGE) after their commit, then released.
 *
 * Who moves what. The destination decides every page's way exactly once: a page is either
 * requested from the background push (PUSH_REQ, a bounded window ahead of what is installed)
 * or claimed by a fault and pulled with transport_read() (RDMA READ of the source's region, or
 * a tcp read request its responder thread serves), never both. A fault on a page already
 * requested waits for the push; a fault on any other missing page is pulled at once, with up
 * to POSTCOPY_FAULT_CLUSTER missing neighbours, and moves the push to that place, so the push
 * follows the guest. Stall time is measured per fault from the moment the fault thread reads it
 * to the moment the page is in. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/userfaultfd.h>

#include "engine/bitmap.h"
#include "engine/dirty.h"
#include "engine/heartbeat.h"
#include "engine/postcopy.h"
#include "engine/postcopy_recover.h"
#include "engine/protocol.h"
#include "engine/session.h"
#include "transport/log.h"

#define POSTCOPY_STAGING_ID_BASE 0x80000000u
#define POSTCOPY_WINDOW_MAX (16u * 1024u * 1024u)
#define POSTCOPY_WINDOW_INITIAL (2u * 1024u * 1024u)
#define POSTCOPY_FAULT_BATCH 32

struct postcopy_region {
	struct session_region *r;
	uint32_t staging_id;
	void *staging;
	int staging_registered;
	int uffd_registered;
	int shared;	     /* discard with MADV_REMOVE */
	int zeropage;	     /* UFFDIO_ZEROPAGE is offered for this range */
	uint64_t *missing;   /* not installed yet */
	uint64_t *requested; /* asked from the push, not installed yet */
	uint64_t *claimed;   /* taken by a fault, being pulled */
};

struct postcopy_waiter {
	size_t region;
	size_t page;
	uint64_t since_us;
};

struct postcopy_dest {
	struct rmig_session *s;
	struct postcopy_region *regions;
	size_t nregions;
	int uffd;
	int stop_fd;
	pthread_t fault_thread;
	int fault_thread_running;
	void *bounce; /* the fault thread's read buffer */
	size_t bounce_len;
	uint64_t *scratch; /* PROTOCOL_BITMAP_WORDS_MAX words: a push request being built */

	pthread_mutex_t lock; /* everything below */
	uint64_t missing;     /* pages not installed, all regions */
	uint64_t outstanding; /* pages requested from the push, not installed */
	size_t cursor_region; /* where the next push request starts */
	size_t cursor_page;
	struct postcopy_waiter *waiters;
	size_t nwaiters, waiters_capacity;
	uint64_t faults, fetched, pushed, stall_us;
	int error; /* the fault thread's first error */
	/* a pull failed with this (the connection is lost): faults wait for a recovery */
	int disconnected;

	uint64_t window_bytes;
	uint64_t rate_start_us, rate_start_pushed;
	uint64_t resumed_us;
};

static int postcopy_uffd_open(int features, int *uffd_p, char *why, size_t why_len)
{
	struct uffdio_api api = {.api = UFFD_API, .features = (uint64_t)features};
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (fd < 0) {
		int err = -errno;

		snprintf(why, why_len,
			 "userfaultfd: %s (post-copy needs it; vm.unprivileged_userfaultfd=1 or "
			 "CAP_SYS_PTRACE)",
			 strerror(-err));
		return err == -ENOSYS || err == -EPERM ? -EOPNOTSUPP : err;
	}
	if (ioctl(fd, UFFDIO_API, &api)) {
		snprintf(why, why_len, "userfaultfd: UFFDIO_API with features 0x%x: %s", features,
			 strerror(errno));
		close(fd);
		return -EOPNOTSUPP;
	}
	*uffd_p = fd;
	return 0;
}

static int postcopy_features(const struct dirty_memory_info *info)
{
	int features = 0;

	if (info->hugetlb)
		features |= UFFD_FEATURE_MISSING_HUGETLBFS;
	else if (info->shared)
		features |= UFFD_FEATURE_MISSING_SHMEM;
	return features;
}

static int postcopy_register(int uffd, const struct session_region *r, int *zeropage_p, char *why,
			     size_t why_len)
{
	struct uffdio_register reg = {
		.range = {.start = (uintptr_t)r->addr, .len = r->length},
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};

	if (ioctl(uffd, UFFDIO_REGISTER, &reg)) {
		snprintf(why, why_len,
			 "region %u: userfaultfd missing mode refused this memory: %s", r->id,
			 strerror(errno));
		return -EOPNOTSUPP;
	}
	if (!(reg.ioctls & (1ull << _UFFDIO_COPY))) {
		struct uffdio_range range = reg.range;

		ioctl(uffd, UFFDIO_UNREGISTER, &range);
		snprintf(why, why_len, "region %u: userfaultfd cannot copy pages into this memory",
			 r->id);
		return -EOPNOTSUPP;
	}
	*zeropage_p = !!(reg.ioctls & (1ull << _UFFDIO_ZEROPAGE));
	return 0;
}

int postcopy_dest_probe(struct rmig_session *s, char *why, size_t why_len)
{
	for (size_t i = 0; i < s->nregions; i++) {
		struct session_region *r = &s->regions[i];
		struct dirty_memory_info info;
		struct uffdio_range range = {.start = (uintptr_t)r->addr, .len = r->length};
		int uffd, zeropage, ret;

		ret = dirty_memory_inspect(r->addr, r->length, &info);
		if (ret) {
			snprintf(why, why_len, "region %u: cannot inspect its mapping", r->id);
			return -EOPNOTSUPP;
		}
		if (info.kernel_page_size != r->page_size) {
			snprintf(why, why_len,
				 "region %u: kernel pages of %zu bytes, the region's pages are %zu",
				 r->id, info.kernel_page_size, r->page_size);
			return -EOPNOTSUPP;
		}
		ret = postcopy_uffd_open(postcopy_features(&info), &uffd, why, why_len);
		if (ret)
			return -EOPNOTSUPP;
		ret = postcopy_register(uffd, r, &zeropage, why, why_len);
		if (!ret)
			ioctl(uffd, UFFDIO_UNREGISTER, &range);
		close(uffd);
		if (ret)
			return ret;
	}
	return 0;
}

static int postcopy_compare_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* POSTCOPY_PROBE_PULLS pulls of a fault's worth of pages spread over the source's first region,
 * each waiting at most timeout_ms: 0 with their median in *m, or the first pull's -errno. */
static int postcopy_pulls_time(struct rmig_session *s, void *buf, int timeout_ms,
			       struct protocol_pull *m)
{
	struct session_region *r = &s->regions[0];
	size_t pages = r->npages < POSTCOPY_FAULT_CLUSTER ? r->npages : POSTCOPY_FAULT_CLUSTER;
	uint64_t took[POSTCOPY_PROBE_PULLS], step = (r->npages - pages) / POSTCOPY_PROBE_PULLS;

	for (uint32_t i = 0; i < POSTCOPY_PROBE_PULLS; i++) {
		uint64_t page = step * i;
		uint64_t start = session_now_us();
		int ret;

		ret = transport_read(s->conn, r->id, page << r->page_shift, buf,
				     pages * r->page_size, timeout_ms);
		if (ret)
			return ret;
		took[i] = session_now_us() - start;
	}
	qsort(took, POSTCOPY_PROBE_PULLS, sizeof(took[0]), postcopy_compare_u64);
	*m = (struct protocol_pull){
		.flags = PROTOCOL_PULL_MEASURED,
		.pull_us =
			(uint32_t)(took[POSTCOPY_PROBE_PULLS / 2] > UINT32_MAX ? UINT32_MAX
				   : took[POSTCOPY_PROBE_PULLS / 2] ? took[POSTCOPY_PROBE_PULLS / 2]
								    : 1u),
		.pull_bytes = (uint32_t)(pages * r->page_size),
		.pulls = POSTCOPY_PROBE_PULLS,
	};
	return 0;
}

int postcopy_dest_pull_probe(struct rmig_session *s, struct protocol_pull *m)
{
	void *buf = malloc(POSTCOPY_FAULT_CLUSTER * s->regions[0].page_size);
	int ret;

	if (!buf)
		return session_fail(s, -ENOMEM, "destination: out of memory for a test pull");
	ret = postcopy_pulls_time(s, buf, (int)s->params.timeout_ms, m);
	if (ret && s->conn->failed) {
		ret = session_fail(s, ret,
				   "destination: a test pull of region %u from %s failed: %s",
				   s->regions[0].id, s->conn->peer, session_strerror(ret));
	} else if (ret) {
		rmig_log_warn(
			"destination: a test pull of region %u from %s failed (%s): post-copy "
			"faults could not be served, auto stays with pre-copy",
			s->regions[0].id, s->conn->peer, session_strerror(ret));
		*m = (struct protocol_pull){.flags = PROTOCOL_PULL_FAILED};
		ret = 0;
	} else {
		s->pull_idle_us = m->pull_us;
		s->pull_bytes = m->pull_bytes;
		rmig_log_info("destination: a pull of %u bytes from %s takes %u us before any page "
			      "moves (median of %u)",
			      m->pull_bytes, s->conn->peer, m->pull_us, m->pulls);
	}
	free(buf);
	return ret;
}

/* The pulls timed while the bulk round's pages flow, on a thread of their own (the receive loop
 * goes on applying commits meanwhile). */
struct postcopy_pull_probe {
	struct rmig_session *s;
	pthread_t thread;
	void *buf; /* the pulled pages */
	void *msg; /* TRANSPORT_CTRL_MAX: the report */
};

/* A pull behind the bulk round's data waits for what is in flight ahead of it; past this it
 * says nothing useful (and must not hold up the end of the round). */
#define POSTCOPY_PROBE_LOADED_TIMEOUT_MS 2000

/* Each pull is reported as soon as it is in (the median of those so far): auto decides within a
 * few samples of the bulk round's start, and a pull behind the round's data may take a while. */
static void *postcopy_pull_probe_main(void *arg)
{
	struct postcopy_pull_probe *probe = arg;
	struct rmig_session *s = probe->s;
	struct session_region *r = &s->regions[0];
	size_t pages = r->npages < POSTCOPY_FAULT_CLUSTER ? r->npages : POSTCOPY_FAULT_CLUSTER;
	uint64_t took[POSTCOPY_PROBE_LOADED_PULLS], sorted[POSTCOPY_PROBE_LOADED_PULLS];
	uint64_t step = (r->npages - pages) / POSTCOPY_PROBE_LOADED_PULLS;

	for (uint32_t i = 0; i < POSTCOPY_PROBE_LOADED_PULLS; i++) {
		/* Pages other than those pulled before the round. */
		uint64_t page = step * i + step / 2u, start = session_now_us();
		struct protocol_pull m;
		int ret;

		ret = transport_read(s->conn, r->id, page << r->page_shift, probe->buf,
				     pages * r->page_size, POSTCOPY_PROBE_LOADED_TIMEOUT_MS);
		if (ret) {
			/* The source then goes by the pulls timed before the round. */
			rmig_log_warn("destination: a test pull during the bulk round failed (%s)",
				      session_strerror(ret));
			return NULL;
		}
		took[i] = session_now_us() - start;
		memcpy(sorted, took, (i + 1) * sizeof(took[0]));
		qsort(sorted, i + 1, sizeof(sorted[0]), postcopy_compare_u64);
		m = (struct protocol_pull){
			.flags = PROTOCOL_PULL_MEASURED,
			.pull_us = (uint32_t)(sorted[i / 2] > UINT32_MAX ? UINT32_MAX
					      : sorted[i / 2]		 ? sorted[i / 2]
									 : 1u),
			.pull_bytes = (uint32_t)(pages * r->page_size),
			.pulls = i + 1,
		};
		if (transport_ctrl_send(
			    s->conn, probe->msg,
			    protocol_pull_to_wire(PROTOCOL_PULL_REPORT, &m, probe->msg))) {
			rmig_log_warn("destination: cannot report the bulk round's test pulls");
			return NULL;
		}
		if (i + 1 == POSTCOPY_PROBE_LOADED_PULLS)
			rmig_log_info("destination: a pull of %u bytes from %s takes %u us while "
				      "the bulk round flows (median of %u)",
				      m.pull_bytes, s->conn->peer, m.pull_us, m.pulls);
	}
	return NULL;
}

int postcopy_dest_pull_probe_start(struct rmig_session *s)
{
	struct postcopy_pull_probe *probe;
	int ret;

	if (s->pull_probe || !s->pull_idle_us)
		return 0;
	probe = calloc(1, sizeof(*probe));
	if (!probe)
		return session_fail(s, -ENOMEM, "destination: out of memory for test pulls");
	probe->s = s;
	probe->buf = malloc(POSTCOPY_FAULT_CLUSTER * s->regions[0].page_size);
	probe->msg = malloc(TRANSPORT_CTRL_MAX);
	if (!probe->buf || !probe->msg) {
		ret = session_fail(s, -ENOMEM, "destination: out of memory for test pulls");
		goto err_free;
	}
	ret = -pthread_create(&probe->thread, NULL, postcopy_pull_probe_main, probe);
	if (ret) {
		ret = session_fail(s, ret, "destination: cannot start the test pulls: %s",
				   strerror(-ret));
		goto err_free;
	}
	s->pull_probe = probe;
	return 0;

err_free:
	free(probe->msg);
	free(probe->buf);
	free(probe);
	return ret;
}

void postcopy_dest_pull_probe_stop(struct rmig_session *s)
{
	struct postcopy_pull_probe *probe = s->pull_probe;

	if (!probe)
		return;
	pthread_join(probe->thread, NULL);
	free(probe->msg);
	free(probe->buf);
	free(probe);
	s->pull_probe = NULL;
}

static struct session_region *postcopy_region_check(struct rmig_session *s, uint32_t region_id,
						    uint64_t first_word, uint32_t nwords)
{
	struct session_region *r = session_region_find(s, region_id);

	if (!r || first_word > bitmap_words(r->npages) ||
	    nwords > bitmap_words(r->npages) - first_word)
		return NULL;
	return r;
}

int postcopy_dest_pages(struct rmig_session *s, const void *payload, size_t len)
{
	struct protocol_page_bitmap m;
	char why[TRANSPORT_ERROR_MAX];
	struct session_region *r;
	int ret;

	ret = protocol_page_bitmap_from_wire(payload, len, &m, why, sizeof(why));
	if (ret)
		return session_fail(s, ret, "the source broke the protocol: %s", why);
	r = postcopy_region_check(s, m.region_id, m.first_word, m.nwords);
	if (!r)
		return session_fail(s, -EPROTO,
				    "the source announced post-copy pages of region %u words "
				    "%llu+%u, outside the regions here",
				    m.region_id, (unsigned long long)m.first_word, m.nwords);
	if (!r->postcopy) {
		r->postcopy = calloc(bitmap_words(r->npages), sizeof(uint64_t));
		if (!r->postcopy)
			return session_fail(s, -ENOMEM, "post-copy: out of memory");
	}
	for (uint32_t i = 0; i < m.nwords; i++) {
		uint64_t word = protocol_word_at(&m, i);
		size_t index = (size_t)m.first_word + i;

		/* Bits past the last page would claim pages that do not exist. */
		if (index == bitmap_words(r->npages) - 1 && (r->npages % 64) &&
		    (word >> (r->npages % 64)))
			return session_fail(s, -EPROTO,
					    "the source announced post-copy pages past the end "
					    "of region %u",
					    r->id);
		r->postcopy[index] |= word;
	}
	return 0;
}

static void postcopy_fault_thread_stop(struct postcopy_dest *pc)
{
	if (pc->fault_thread_running) {
		uint64_t one = 1;

		if (write(pc->stop_fd, &one, sizeof(one)) != sizeof(one))
			rmig_log_warn("post-copy: cannot signal the fault thread");
		pthread_join(pc->fault_thread, NULL);
		pc->fault_thread_running = 0;
		/* Consumed, so that a fault thread started after a recovery runs. */
		if (read(pc->stop_fd, &one, sizeof(one)) != sizeof(one))
			rmig_log_warn("post-copy: cannot reset the fault thread's stop signal");
	}
}

void postcopy_dest_halt(struct rmig_session *s)
{
	if (s->postcopy)
		postcopy_fault_thread_stop(s->postcopy);
}

static void postcopy_dest_free(struct postcopy_dest *pc)
{
	struct rmig_session *s = pc->s;

	postcopy_fault_thread_stop(pc);
	for (size_t i = 0; pc->regions && i < pc->nregions; i++) {
		struct postcopy_region *pr = &pc->regions[i];

		if (pr->uffd_registered) {
			struct uffdio_range range = {.start = (uintptr_t)pr->r->addr,
						     .len = pr->r->length};

			ioctl(pc->uffd, UFFDIO_UNREGISTER, &range);
		}
		if (pr->staging_registered && s->conn)
			transport_region_deregister(s->conn, pr->staging_id);
		if (pr->staging)
			munmap(pr->staging, pr->r->length);
		free(pr->missing);
		free(pr->requested);
		free(pr->claimed);
	}
	if (pc->uffd >= 0)
		close(pc->uffd);
	if (pc->stop_fd >= 0)
		close(pc->stop_fd);
	free(pc->regions);
	free(pc->waiters);
	free(pc->bounce);
	free(pc->scratch);
	pthread_mutex_destroy(&pc->lock);
	free(pc);
}

void postcopy_dest_destroy(struct rmig_session *s)
{
	struct postcopy_dest *pc = s->postcopy;

	if (!pc)
		return;
	if (pc->missing) {
		/* The VM lost these pages with the source: make any access fail rather than read
		 * zeroes once userfaultfd no longer holds it. */
		for (size_t i = 0; i < pc->nregions; i++) {
			struct postcopy_region *pr = &pc->regions[i];
			size_t start, len, from = 0;

			while (pr->missing && dirty_bitmap_next_run(pr->missing, pr->r->npages,
								    from, &start, &len)) {
				mprotect((char *)pr->r->addr + (start << pr->r->page_shift),
					 len << pr->r->page_shift, PROT_NONE);
				from = start + len;
			}
		}
		rmig_log_error("destination: post-copy ended with %llu pages missing; they are "
			       "now inaccessible",
			       (unsigned long long)pc->missing);
	}
	postcopy_dest_free(pc);
	s->postcopy = NULL;
}

static struct postcopy_region *postcopy_find_staging(struct postcopy_dest *pc, uint32_t id)
{
	for (size_t i = 0; i < pc->nregions; i++)
		if (pc->regions[i].staging_id == id)
			return &pc->regions[i];
	return NULL;
}

/* Copy len bytes at src into the missing pages at dst (waking whoever waits on them). Pages
 * already there are skipped: they hold what the guest made of them since. */
static int postcopy_copy(int uffd, void *dst, const void *src, size_t len, size_t page_size)
{
	size_t done = 0;

	while (done < len) {
		struct uffdio_copy copy = {
			.dst = (uintptr_t)dst + done,
			.src = (uintptr_t)src + done,
			.len = len - done,
		};

		if (ioctl(uffd, UFFDIO_COPY, &copy) == 0)
			return 0;
		if (errno == EAGAIN) {
			if (copy.copy > 0)
				done += (size_t)copy.copy;
			continue;
		}
		if (errno == EEXIST) {
			if (copy.copy > 0)
				done += (size_t)copy.copy;
			done += page_size;
			continue;
		}
		return -errno;
	}
	return 0;
}

static int postcopy_zero(int uffd, void *dst, size_t len, size_t page_size)
{
	size_t done = 0;

	while (done < len) {
		struct uffdio_zeropage zero = {
			.range = {.start = (uintptr_t)dst + done, .len = len - done},
		};

		if (ioctl(uffd, UFFDIO_ZEROPAGE, &zero) == 0)
			return 0;
		if (errno == EAGAIN) {
			if (zero.zeropage > 0)
				done += (size_t)zero.zeropage;
			continue;
		}
		if (errno == EEXIST) {
			if (zero.zeropage > 0)
				done += (size_t)zero.zeropage;
			done += page_size;
			continue;
		}
		return -errno;
	}
	return 0;
}

/* Under pc->lock: pages [first, first + n) of region index are in. */
static void postcopy_installed_locked(struct postcopy_dest *pc, size_t index, size_t first,
				      size_t n, int pushed)
{
	struct postcopy_region *pr = &pc->regions[index];
	uint64_t now = session_now_us();

	for (size_t p = first; p < first + n; p++) {
		bitmap_clear(pr->missing, p);
		bitmap_clear(pr->requested, p);
		bitmap_clear(pr->claimed, p);
		bitmap_set(pr->r->arrived, p);
	}
	pc->missing -= n;
	if (pushed) {
		pc->outstanding -= n;
		pc->pushed += n;
	} else {
		pc->fetched += n;
	}
	for (size_t w = 0; w < pc->nwaiters;) {
		struct postcopy_waiter *waiter = &pc->waiters[w];

		if (waiter->region == index && waiter->page >= first && waiter->page < first + n) {
			pc->faults++;
			pc->stall_us += now - waiter->since_us;
			*waiter = pc->waiters[--pc->nwaiters];
			continue;
		}
		w++;
	}
}

static int postcopy_waiter_add(struct postcopy_dest *pc, size_t index, size_t page, uint64_t since)
{
	if (pc->nwaiters == pc->waiters_capacity) {
		size_t capacity = pc->waiters_capacity ? pc->waiters_capacity * 2 : 64;
		struct postcopy_waiter *grown = realloc(pc->waiters, capacity * sizeof(*grown));

		if (!grown)
			return -ENOMEM;
		pc->waiters = grown;
		pc->waiters_capacity = capacity;
	}
	pc->waiters[pc->nwaiters++] =
		(struct postcopy_waiter){.region = index, .page = page, .since_us = since};
	return 0;
}

/* One fault at addr, read at since: pull the page (and missing neighbours nobody asked for)
 * unless the push already brings it. waiting: the fault is already a waiter (after a recovery),
 * counted when its page is installed. */
static int postcopy_fault(struct postcopy_dest *pc, uintptr_t addr, uint64_t since, int waiting)
{
	struct rmig_session *s = pc->s;
	struct postcopy_region *pr = NULL;
	size_t index, page, n = 0, page_size;
	int ret;

	for (index = 0; index < pc->nregions; index++) {
		struct session_region *r = pc->regions[index].r;

		if (addr >= (uintptr_t)r->addr && addr < (uintptr_t)r->addr + r->length) {
			pr = &pc->regions[index];
			break;
		}
	}
	if (!pr)
		return session_fail(s, -EFAULT, "post-copy: a fault at %#lx outside every region",
				    (unsigned long)addr);
	page_size = pr->r->page_size;
	page = (addr - (uintptr_t)pr->r->addr) >> pr->r->page_shift;

	pthread_mutex_lock(&pc->lock);
	if (!bitmap_test(pr->missing, page)) {
		/* Installed between the fault and now: the copy woke the guest already. */
		pc->faults++;
		pthread_mutex_unlock(&pc->lock);
		return 0;
	}
	if (bitmap_test(pr->requested, page) || bitmap_test(pr->claimed, page) ||
	    pc->disconnected) {
		/* The push brings it, another pull does, or the connection is lost: the guest
		 * waits (after a recovery, the fault thread pulls what waiters wait for). */
		ret = waiting ? 0 : postcopy_waiter_add(pc, index, page, since);
		pthread_mutex_unlock(&pc->lock);
		return ret ? session_fail(s, ret, "post-copy: out of memory") : 0;
	}
	while (n < POSTCOPY_FAULT_CLUSTER && page + n < pr->r->npages &&
	       (n + 1) * page_size <= pc->bounce_len && bitmap_test(pr->missing, page + n) &&
	       !bitmap_test(pr->requested, page + n) && !bitmap_test(pr->claimed, page + n)) {
		bitmap_set(pr->claimed, page + n);
		n++;
	}
	/* The guest works here now: the push follows it. */
	pc->cursor_region = index;
	pc->cursor_page = page + n;
	pthread_mutex_unlock(&pc->lock);

	ret = transport_read(s->conn, pr->r->id, (uint64_t)page << pr->r->page_shift, pc->bounce,
			     n * page_size, (int)s->params.timeout_ms);
	if (ret) {
		/* Nothing is lost: the pages go back to missing, the guest waits on this one, and
		 * the run thread decides between a recovery and the end. */
		rmig_log_warn("destination: post-copy: cannot pull region %u page %zu from the "
			      "source (%s); the guest waits",
			      pr->r->id, page, session_strerror(ret));
		pthread_mutex_lock(&pc->lock);
		for (size_t p = page; p < page + n; p++)
			bitmap_clear(pr->claimed, p);
		if (!pc->disconnected)
			pc->disconnected = ret;
		ret = waiting ? 0 : postcopy_waiter_add(pc, index, page, since);
		pthread_mutex_unlock(&pc->lock);
		return ret ? session_fail(s, ret, "post-copy: out of memory") : 0;
	}
	ret = postcopy_copy(pc->uffd, (char *)pr->r->addr + (page << pr->r->page_shift), pc->bounce,
			    n * page_size, page_size);
	if (ret)
		return session_fail(s, ret, "post-copy: UFFDIO_COPY into region %u page %zu: %s",
				    pr->r->id, page, strerror(-ret));
	pthread_mutex_lock(&pc->lock);
	postcopy_installed_locked(pc, index, page, n, 0);
	if (!waiting) {
		pc->faults++;
		pc->stall_us += session_now_us() - since;
	}
	pthread_mutex_unlock(&pc->lock);
	return 0;
}

/* After a recovery: pull what the guest waits for and nobody brings (the pulls and pushes of the
 * lost connection are forgotten). Each waiter's wait is counted when its page is in. */
static int postcopy_waiters_pull(struct postcopy_dest *pc)
{
	for (;;) {
		struct postcopy_waiter waiter;
		int found = 0, ret;

		pthread_mutex_lock(&pc->lock);
		for (size_t w = 0; w < pc->nwaiters && !found; w++) {
			struct postcopy_region *pr = &pc->regions[pc->waiters[w].region];
			size_t page = pc->waiters[w].page;

			if (bitmap_test(pr->missing, page) && !bitmap_test(pr->requested, page) &&
			    !bitmap_test(pr->claimed, page)) {
				waiter = pc->waiters[w];
				found = 1;
			}
		}
		pthread_mutex_unlock(&pc->lock);
		if (!found)
			return 0;
		/* As a fault of its own: its page is pulled (the waiter is served with it). */
		ret = postcopy_fault(
			pc,
			(uintptr_t)pc->regions[waiter.region].r->addr +
				(waiter.page << pc->regions[waiter.region].r->page_shift),
			waiter.since_us, 1);
		if (ret)
			return ret;
		pthread_mutex_lock(&pc->lock);
		found = pc->disconnected;
		pthread_mutex_unlock(&pc->lock);
		if (found)
			return 0;
	}
}

static void *postcopy_fault_main(void *arg)
{
	struct postcopy_dest *pc = arg;
	struct uffd_msg msgs[POSTCOPY_FAULT_BATCH];
	int first = postcopy_waiters_pull(pc);

	if (first) {
		pthread_mutex_lock(&pc->lock);
		if (!pc->error)
			pc->error = first;
		pthread_mutex_unlock(&pc->lock);
		return NULL;
	}

	for (;;) {
		struct pollfd pfd[2] = {{.fd = pc->uffd, .events = POLLIN},
					{.fd = pc->stop_fd, .events = POLLIN}};
		ssize_t got;
		uint64_t since;
		int ret = 0;

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
		} else if (pfd[1].revents) {
			break;
		}
		if (!ret) {
			got = read(pc->uffd, msgs, sizeof(msgs));
			if (got < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (got < 0)
				ret = -errno;
			since = session_now_us();
			for (ssize_t i = 0; !ret && got > 0 && i < got / (ssize_t)sizeof(msgs[0]);
			     i++) {
				if (msgs[i].event != UFFD_EVENT_PAGEFAULT)
					continue;
				ret = postcopy_fault(pc, (uintptr_t)msgs[i].arg.pagefault.address,
						     since, 0);
			}
		}
		if (ret) {
			pthread_mutex_lock(&pc->lock);
			if (!pc->error)
				pc->error = ret;
			pthread_mutex_unlock(&pc->lock);
			break;
		}
	}
	return NULL;
}

static int postcopy_discard(struct postcopy_region *pr)
{
	struct session_region *r = pr->r;
	size_t start, len, from = 0;

	while (dirty_bitmap_next_run(r->postcopy, r->npages, from, &start, &len)) {
		void *addr = (char *)r->addr + (start << r->page_shift);

		if (madvise(addr, len << r->page_shift, pr->shared ? MADV_REMOVE : MADV_DONTNEED))
			return -errno;
		/* Discarded: a hash taken at a commit no longer says what the page holds. */
		for (size_t p = start; p < start + len; p++)
			bitmap_clear(r->hashed, p);
		from = start + len;
	}
	return 0;
}

static uint32_t postcopy_staging_id(struct rmig_session *s, uint32_t after)
{
	for (uint32_t id = after;; id++) {
		if (!session_region_find(s, id))
			return id;
	}
}

int postcopy_dest_arm(struct rmig_session *s, const void *payload, size_t len)
{
	struct protocol_staging staging[PROTOCOL_REGIONS_MAX];
	struct protocol_postcopy_begin begin;
	char why[TRANSPORT_ERROR_MAX];
	struct postcopy_dest *pc;
	uint64_t announced = 0;
	uint32_t next_id = POSTCOPY_STAGING_ID_BASE;
	size_t bounce_len = 0;
	int ret, features = 0;

	ret = protocol_postcopy_begin_from_wire(payload, len, &begin, why, sizeof(why));
	if (ret)
		return session_fail(s, ret, "the source broke the protocol: %s", why);
	for (size_t i = 0; i < s->nregions; i++) {
		struct session_region *r = &s->regions[i];

		if (!r->postcopy) {
			r->postcopy = calloc(bitmap_words(r->npages), sizeof(uint64_t));
			if (!r->postcopy)
				return session_fail(s, -ENOMEM, "post-copy: out of memory");
		}
		announced += bitmap_count(r->postcopy, r->npages);
		for (size_t w = 0; w < bitmap_words(r->npages); w++) {
			uint64_t never = ~(r->arrived[w] | r->postcopy[w]);

			if (w == bitmap_words(r->npages) - 1 && r->npages % 64)
				never &= (1ull << (r->npages % 64)) - 1;
			if (never)
				return session_fail(s, -EPROTO,
						    "region %u page %zu never arrived and is not "
						    "announced for post-copy",
						    r->id, bitmap_word_first(w, never));
		}
		if (r->page_size * POSTCOPY_FAULT_CLUSTER > bounce_len)
			bounce_len = r->page_size * POSTCOPY_FAULT_CLUSTER;
	}
	if (announced != begin.pages)
		return session_fail(s, -EPROTO,
				    "the source announced %llu post-copy pages but listed %llu",
				    (unsigned long long)begin.pages, (unsigned long long)announced);

	pc = calloc(1, sizeof(*pc));
	if (!pc)
		return session_fail(s, -ENOMEM, "post-copy: out of memory");
	pc->s = s;
	pc->uffd = -1;
	pc->stop_fd = -1;
	pthread_mutex_init(&pc->lock, NULL);
	pc->nregions = s->nregions;
	pc->regions = calloc(s->nregions, sizeof(*pc->regions));
	pc->bounce = malloc(bounce_len);
	pc->bounce_len = bounce_len;
	pc->scratch = malloc(PROTOCOL_BITMAP_WORDS_MAX * sizeof(uint64_t));
	pc->window_bytes = POSTCOPY_WINDOW_INITIAL;
	pc->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (!pc->regions || !pc->bounce || !pc->scratch || pc->stop_fd < 0) {
		ret = session_fail(s, -ENOMEM, "post-copy: out of memory");
		goto err_free;
	}
	s->postcopy = pc;
	for (size_t i = 0; i < s->nregions; i++) {
		struct dirty_memory_info info;

		ret = dirty_memory_inspect(s->regions[i].addr, s->regions[i].length, &info);
		if (ret) {
			ret = session_fail(s, -EOPNOTSUPP, "region %u: cannot inspect its mapping",
					   s->regions[i].id);
			goto err_free;
		}
		pc->regions[i].shared = info.shared;
		features |= postcopy_features(&info);
	}
	ret = postcopy_uffd_open(features, &pc->uffd, why, sizeof(why));
	if (ret) {
		ret = session_fail(s, ret, "post-copy: %s", why);
		goto err_free;
	}

	for (size_t i = 0; i < s->nregions; i++) {
		struct postcopy_region *pr = &pc->regions[i];
		struct session_region *r = &s->regions[i];
		size_t words = bitmap_words(r->npages);

		pr->r = r;
		pr->missing = calloc(words, sizeof(uint64_t));
		pr->requested = calloc(words, sizeof(uint64_t));
		pr->claimed = calloc(words, sizeof(uint64_t));
		if (!pr->missing || !pr->requested || !pr->claimed) {
			ret = session_fail(s, -ENOMEM, "post-copy: out of memory");
			goto err_free;
		}
		memcpy(pr->missing, r->postcopy, words * sizeof(uint64_t));
		pc->missing += bitmap_count(pr->missing, r->npages);
		/* No transfer may land in guest RAM from here on. */
		ret = transport_region_deregister(s->conn, r->id);
		if (ret) {
			ret = session_fail(s, ret, "post-copy: cannot revoke region %u: %s", r->id,
					   session_strerror(ret));
			goto err_free;
		}
		ret = postcopy_discard(pr);
		if (ret) {
			ret = session_fail(s, ret,
					   "post-copy: cannot discard the stale pages of "
					   "region %u: %s",
					   r->id, strerror(-ret));
			goto err_free;
		}
		ret = postcopy_register(pc->uffd, r, &pr->zeropage, why, sizeof(why));
		if (ret) {
			ret = session_fail(s, ret, "post-copy: %s", why);
			goto err_free;
		}
		pr->uffd_registered = 1;
		pr->staging = mmap(NULL, r->length, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (pr->staging == MAP_FAILED) {
			pr->staging = NULL;
			ret = session_fail(s, -ENOMEM,
					   "post-copy: cannot map a staging area of %zu bytes for "
					   "region %u",
					   r->length, r->id);
			goto err_free;
		}
		pr->staging_id = postcopy_staging_id(s, next_id);
		next_id = pr->staging_id + 1;
		ret = transport_region_register(s->conn, pr->staging_id, pr->staging, r->length,
						TRANSPORT_ACCESS_REMOTE_WRITE);
		if (ret) {
			ret = session_fail(s, ret,
					   "post-copy: cannot register the staging area of region "
					   "%u: %s",
					   r->id, session_strerror(ret));
			goto err_free;
		}
		pr->staging_registered = 1;
		staging[i] =
			(struct protocol_staging){.region_id = r->id, .staging_id = pr->staging_id};
	}
	ret = -pthread_create(&pc->fault_thread, NULL, postcopy_fault_main, pc);
	if (ret) {
		ret = session_fail(s, ret, "post-copy: cannot start the fault thread");
		goto err_free;
	}
	pc->fault_thread_running = 1;
	ret = session_ctrl_send(s,
				protocol_postcopy_ready_to_wire(staging, s->nregions, s->msg_buf));
	if (ret)
		goto err_free;
	rmig_log_info("destination: post-copy armed, %llu pages to come after resume",
		      (unsigned long long)pc->missing);
	return 0;

err_free:
	/* Not resumed: nothing is lost, the source keeps the VM. */
	pc->missing = 0;
	s->postcopy = NULL;
	postcopy_dest_free(pc);
	return ret;
}

/* Ask for more pages while the window allows. */
static int postcopy_request_more(struct postcopy_dest *pc)
{
	struct rmig_session *s = pc->s;
	uint64_t *scratch = pc->scratch;
	int ret;

	for (;;) {
		uint64_t window_pages, max_pages, taken = 0, first_word = 0;
		struct postcopy_region *pr = NULL;
		uint32_t nwords = 0;
		size_t scanned = 0, index = 0;

		pthread_mutex_lock(&pc->lock);
		window_pages = pc->window_bytes / pc->regions[0].r->page_size;
		if (pc->outstanding >= window_pages / 2 || pc->missing == pc->outstanding) {
			pthread_mutex_unlock(&pc->lock);
			return 0;
		}
		max_pages = window_pages - pc->outstanding;
		if (max_pages > POSTCOPY_PUSH_MAX_PAGES)
			max_pages = POSTCOPY_PUSH_MAX_PAGES;
		/* From the cursor, the first region with pages nobody asked for. */
		for (; scanned <= pc->nregions && !nwords; scanned++) {
			size_t words;

			index = pc->cursor_region % pc->nregions;
			pr = &pc->regions[index];
			words = bitmap_words(pr->r->npages);
			for (size_t w = pc->cursor_page / 64; w < words && taken < max_pages; w++) {
				uint64_t bits =
					pr->missing[w] & ~pr->requested[w] & ~pr->claimed[w];

				if (!nwords && !bits)
					continue;
				if (!nwords)
					first_word = w;
				while ((uint64_t)__builtin_popcountll(bits) > max_pages - taken)
					bits &= ~(1ull << (63 - __builtin_clzll(bits)));
				scratch[nwords++] = bits;
				pr->requested[w] |= bits;
				taken += (uint64_t)__builtin_popcountll(bits);
				if (nwords == PROTOCOL_BITMAP_WORDS_MAX)
					break;
			}
			if (!nwords) {
				pc->cursor_region = index + 1;
				pc->cursor_page = 0;
			} else {
				/* The last word may hold pages this request left out. */
				pc->cursor_page = (size_t)(first_word + nwords - 1) * 64;
			}
		}
		pc->outstanding += taken;
		pthread_mutex_unlock(&pc->lock);
		if (!nwords)
			return 0;
		ret = session_ctrl_send(
			s, protocol_page_bitmap_to_wire(PROTOCOL_PUSH_REQ, pr->r->id, first_word,
							scratch, nwords, s->msg_buf));
		if (ret)
			return ret;
	}
}

static int postcopy_install(struct postcopy_dest *pc, const struct transport_msg *msg)
{
	struct rmig_session *s = pc->s;

	for (size_t i = 0; i < msg->nruns; i++) {
		const struct transport_run *run = &msg->runs[i];
		struct postcopy_region *pr = postcopy_find_staging(pc, run->region_id);
		struct session_region *r;
		size_t first, n, index;
		char *guest;
		int ret;

		if (!pr || (run->offset & (pr->r->page_size - 1)) ||
		    (run->length & (pr->r->page_size - 1)) ||
		    run->offset + run->length > pr->r->length)
			return session_fail(s, -EPROTO,
					    "post-copy batch %llu run %zu (region %u, offset %llu, "
					    "length %llu) is not whole pages of a staging region",
					    (unsigned long long)msg->batch_id, i, run->region_id,
					    (unsigned long long)run->offset,
					    (unsigned long long)run->length);
		r = pr->r;
		index = (size_t)(pr - pc->regions);
		first = run->offset >> r->page_shift;
		n = run->length >> r->page_shift;
		pthread_mutex_lock(&pc->lock);
		for (size_t p = first; p < first + n; p++) {
			if (!bitmap_test(pr->requested, p)) {
				pthread_mutex_unlock(&pc->lock);
				return session_fail(s, -EPROTO,
						    "post-copy: the source pushed region %u page "
						    "%zu, which was not asked for",
						    r->id, p);
			}
		}
		pthread_mutex_unlock(&pc->lock);
		guest = (char *)r->addr + run->offset;
		if ((run->flags & TRANSPORT_RUN_ZERO) && pr->zeropage)
			ret = postcopy_zero(pc->uffd, guest, run->length, r->page_size);
		else
			ret = postcopy_copy(pc->uffd, guest, (char *)pr->staging + run->offset,
					    run->length, r->page_size);
		if (ret)
			return session_fail(s, ret,
					    "post-copy: cannot place region %u pages %zu+%zu: %s",
					    r->id, first, n, strerror(-ret));
		if (!(run->flags & TRANSPORT_RUN_ZERO))
			madvise((char *)pr->staging + run->offset, run->length, MADV_DONTNEED);
		pthread_mutex_lock(&pc->lock);
		postcopy_installed_locked(pc, index, first, n, 1);
		pthread_mutex_unlock(&pc->lock);
	}
	return 0;
}

/* The window covers POSTCOPY_WINDOW_US of the push rate measured so far. */
static void postcopy_window_adapt(struct postcopy_dest *pc, uint64_t now)
{
	uint64_t elapsed = now - pc->rate_start_us, pushed, rate;

	if (elapsed < 50000)
		return;
	pthread_mutex_lock(&pc->lock);
	pushed = pc->pushed - pc->rate_start_pushed;
	pc->rate_start_pushed = pc->pushed;
	pthread_mutex_unlock(&pc->lock);
	pc->rate_start_us = now;
	rate = pushed * pc->regions[0].r->page_size * 1000000u / elapsed;
	if (!rate)
		return;
	pc->window_bytes = rate * POSTCOPY_WINDOW_US / 1000000u;
	if (pc->window_bytes < POSTCOPY_WINDOW_MIN)
		pc->window_bytes = POSTCOPY_WINDOW_MIN;
	if (pc->window_bytes > POSTCOPY_WINDOW_MAX)
		pc->window_bytes = POSTCOPY_WINDOW_MAX;
}

static void postcopy_stats_publish(struct postcopy_dest *pc, uint64_t now)
{
	struct rmig_session *s = pc->s;
	uint64_t faults, fetched, pushed, stall;

	pthread_mutex_lock(&pc->lock);
	faults = pc->faults;
	fetched = pc->fetched;
	pushed = pc->pushed;
	stall = pc->stall_us;
	pthread_mutex_unlock(&pc->lock);
	pthread_mutex_lock(&s->lock);
	s->stats.postcopy_faults = faults;
	s->stats.postcopy_pages_fetched = fetched;
	s->stats.postcopy_pages = fetched + pushed;
	s->stats.postcopy_stall_us = stall;
	s->stats.postcopy_time_ms = (now - pc->resumed_us) / 1000u;
	pthread_mutex_unlock(&s->lock);
}

/* After a recovery's proofs, over the new connection: the staging regions again (the lost
 * connection took their registration with it), the pages still missing (RECOVER_PAGES,
 * RECOVER_READY) and the staging table (POSTCOPY_READY); then the fault thread again. */
static int postcopy_dest_resync(struct postcopy_dest *pc)
{
	struct protocol_staging staging[PROTOCOL_REGIONS_MAX];
	struct protocol_recover_ready ready;
	struct rmig_session *s = pc->s;
	int ret;

	pthread_mutex_lock(&pc->lock);
	ready.pages_missing = pc->missing;
	pthread_mutex_unlock(&pc->lock);
	for (size_t i = 0; i < pc->nregions; i++) {
		struct postcopy_region *pr = &pc->regions[i];
		struct session_region *r = pr->r;
		size_t words = bitmap_words(r->npages);

		ret = transport_region_register(s->conn, pr->staging_id, pr->staging, r->length,
						TRANSPORT_ACCESS_REMOTE_WRITE);
		if (ret)
			return session_fail(s, ret,
					    "post-copy recovery: cannot register the staging area "
					    "of region %u: %s",
					    r->id, session_strerror(ret));
		pr->staging_registered = 1;
		staging[i] =
			(struct protocol_staging){.region_id = r->id, .staging_id = pr->staging_id};
		/* Only this thread installs pages while the fault thread is stopped: missing holds
		 * still. */
		for (size_t w = 0; w < words; w += PROTOCOL_BITMAP_WORDS_MAX) {
			uint32_t n = (uint32_t)(words - w < PROTOCOL_BITMAP_WORDS_MAX
							? words - w
							: PROTOCOL_BITMAP_WORDS_MAX);
			size_t pages = (size_t)n * 64 < r->npages - w * 64 ? (size_t)n * 64
									   : r->npages - w * 64;

			if (bitmap_empty(pr->missing + w, pages))
				continue;
			ret = session_ctrl_send(
				s, protocol_page_bitmap_to_wire(PROTOCOL_RECOVER_PAGES, r->id, w,
								pr->missing + w, n, s->msg_buf));
			if (ret)
				return ret;
		}
	}
	ret = session_ctrl_send(s, protocol_recover_ready_to_wire(&ready, s->msg_buf));
	if (!ret)
		ret = session_ctrl_send(
			s, protocol_postcopy_ready_to_wire(staging, pc->nregions, s->msg_buf));
	return ret;
}

/* The connection is lost (err) with the VM running here: stop the pulls, forget what the lost
 * connection was bringing, and wait for the source to come back (postcopy_recover.c). 0 when a
 * new connection carries the tail on; 1 when end_only and the source did not come back in its
 * shorter window (every page is here); else the error that loses the VM. */
static int postcopy_dest_recover(struct postcopy_dest *pc, int err, int end_only)
{
	struct rmig_session *s = pc->s;
	int ret;

	if (!postcopy_recover_possible(s, err))
		return err;
	postcopy_fault_thread_stop(pc);
	pthread_mutex_lock(&pc->lock);
	for (size_t i = 0; i < pc->nregions; i++) {
		struct postcopy_region *pr = &pc->regions[i];
		size_t bytes = bitmap_words(pr->r->npages) * sizeof(uint64_t);

		/* Asked for or being pulled on the lost connection: missing still, asked for
		 * again after the recovery. The guest waits on them meanwhile. */
		memset(pr->requested, 0, bytes);
		memset(pr->claimed, 0, bytes);
		pr->staging_registered = 0;
	}
	pc->outstanding = 0;
	pc->disconnected = 0;
	pthread_mutex_unlock(&pc->lock);
	postcopy_recover_begin(s, err, end_only);
	for (;;) {
		ret = postcopy_recover_accept(s);
		if (ret)
			return ret;
		ret = postcopy_dest_resync(pc);
		if (!ret)
			break;
		ret = postcopy_recover_retry(s, ret);
		if (ret)
			return ret;
	}
	ret = -pthread_create(&pc->fault_thread, NULL, postcopy_fault_main, pc);
	if (ret)
		return session_fail(s, ret, "post-copy: cannot start the fault thread again");
	pc->fault_thread_running = 1;
	postcopy_recover_end(s);
	return 0;
}

int postcopy_dest_run(struct rmig_session *s)
{
	struct postcopy_dest *pc = s->postcopy;
	struct protocol_postcopy_done done;
	uint64_t last_progress, before_pushed = 0;
	char why[TRANSPORT_ERROR_MAX];
	const void *payload;
	size_t plen;
	int ret, type;

	pc->resumed_us = session_now_us();
	pc->rate_start_us = pc->resumed_us;
	last_progress = pc->resumed_us;
	session_status_set(s, RMIG_STATUS_POSTCOPY);
	for (;;) {
		struct transport_msg msg;
		uint64_t missing, now, progress;
		int error, lost;

		pthread_mutex_lock(&pc->lock);
		missing = pc->missing;
		error = pc->error;
		lost = pc->disconnected;
		progress = pc->pushed + pc->fetched;
		pthread_mutex_unlock(&pc->lock);
		now = session_now_us();
		if (error)
			return session_fail(s, error, "post-copy failed with %llu pages missing",
					    (unsigned long long)missing);
		if (!missing)
			break;
		if (lost) {
			/* A pull failed: the connection is gone (or the source no longer serves
			 * reads, which only a new connection can tell). */
			ret = postcopy_dest_recover(pc, lost, 0);
			if (ret)
				return session_fail(s, ret,
						    "post-copy: lost the source with %llu pages "
						    "missing: %s",
						    (unsigned long long)missing,
						    session_strerror(ret));
			last_progress = pc->rate_start_us = session_now_us();
			continue;
		}
		if (progress != before_pushed) {
			before_pushed = progress;
			last_progress = now;
		} else if (now - last_progress > (uint64_t)s->params.timeout_ms * 1000u) {
			return session_fail(s, -ETIMEDOUT,
					    "post-copy: no page arrived for %u ms, %llu missing",
					    s->params.timeout_ms, (unsigned long long)missing);
		}
		postcopy_window_adapt(pc, now);
		ret = postcopy_request_more(pc);
		if (!ret) {
			if (now - s->last_progress_us >= SESSION_PROGRESS_INTERVAL_US) {
				postcopy_stats_publish(pc, now);
				session_progress(s, RMIG_EVENT_PROGRESS);
			}
			ret = heartbeat_recv(s, &msg, 20);
			if (ret == -ETIMEDOUT)
				continue;
		}
		if (ret) {
			int recovered;

			if (ret != -EHOSTDOWN && !postcopy_recover_possible(s, ret))
				return session_fail(s, ret,
						    "post-copy: lost the source %s with %llu pages "
						    "missing: %s%s%s",
						    s->conn->peer, (unsigned long long)missing,
						    session_strerror(ret),
						    transport_error(s->conn)[0] ? ": " : "",
						    transport_error(s->conn));
			recovered = postcopy_dest_recover(pc, ret, 0);
			if (recovered)
				return recovered;
			last_progress = pc->rate_start_us = session_now_us();
			continue;
		}
		if (msg.type == TRANSPORT_MSG_COMMIT) {
			ret = postcopy_install(pc, &msg);
			if (ret)
				return ret;
			continue;
		}
		type = protocol_parse(msg.data, msg.len, &payload, &plen, why, sizeof(why));
		if (type == PROTOCOL_ABORT) {
			struct protocol_abort abort_msg;

			if (protocol_abort_from_wire(payload, plen, &abort_msg, why, sizeof(why)))
				return session_fail(s, -EPROTO, "the source broke the protocol: %s",
						    why);
			return session_peer_aborted(s, &abort_msg);
		}
		return session_fail(s, -EPROTO, "the source sent %s during post-copy",
				    type < 0 ? why : protocol_type_name(type));
	}
	postcopy_stats_publish(pc, session_now_us());
	pthread_mutex_lock(&pc->lock);
	done = (struct protocol_postcopy_done){
		.pages_pushed = pc->pushed,
		.pages_fetched = pc->fetched,
		.faults = pc->faults,
		.stall_us = pc->stall_us,
	};
	pthread_mutex_unlock(&pc->lock);
	pthread_mutex_lock(&s->lock);
	s->stats.pages_received += done.pages_pushed + done.pages_fetched;
	pthread_mutex_unlock(&s->lock);
	/* Every page is here. A connection lost before the source acknowledged the end gets a
	 * shorter recovery: the source comes back to learn the end, or the migration completes
	 * without its word. */
	for (;;) {
		ret = session_ctrl_send(s, protocol_postcopy_done_to_wire(&done, s->msg_buf));
		if (!ret) {
			type = session_ctrl_recv(s, "the end of post-copy", &payload, &plen);
			if (type == PROTOCOL_POSTCOPY_END)
				break;
			if (type >= 0)
				return session_fail(s, -EPROTO,
						    "the source answered post-copy done with %s",
						    protocol_type_name(type));
			ret = type;
		}
		ret = postcopy_dest_recover(pc, ret, 1);
		if (ret == 1)
			break;
		if (ret)
			return ret;
	}
	postcopy_dest_destroy(s);
	return 0;
}
