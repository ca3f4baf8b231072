/* SPDX-License-Identifier: MIT */
/* engine/postcopy_dest_arm.c - arming the destination for the post-copy tail and disarming it:
 * whether userfaultfd can serve every region (the probe), the pages the source announces as
 * coming after the resume, and at POSTCOPY_BEGIN the switch of the guest RAM from transport
 * region to userfaultfd-guarded memory with staging regions beside it (why: postcopy_dest.c).
 * Disarming makes pages that never arrived inaccessible. */
#include <errno.h>
#include <fcntl.h>
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
#include "engine/postcopy_dest.h"
#include "engine/protocol.h"
#include "transport/log.h"

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

void postcopy_dest_halt(struct rmig_session *s)
{
	if (s->dst.postcopy)
		postcopy_fault_thread_stop(s->dst.postcopy);
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
	struct postcopy_dest *pc = s->dst.postcopy;

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
	s->dst.postcopy = NULL;
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
			bitmap_clear(r->dst.hashed, p);
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

int postcopy_dest_prepare(struct rmig_session *s, int all_later, char *why, size_t why_len)
{
	uint32_t next_id = POSTCOPY_STAGING_ID_BASE;
	int ret;

	postcopy_dest_unprepare(s); /* an earlier handshake's, should there be one */
	for (size_t i = 0; i < s->nregions; i++) {
		struct session_region *r = &s->regions[i];
		void *area = mmap(NULL, r->length, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

		if (area == MAP_FAILED) {
			snprintf(why, why_len,
				 "cannot map a staging area of %zu bytes for region %u", r->length,
				 r->id);
			return -ENOMEM;
		}
		r->dst.staging = area;
		r->dst.staging_id = postcopy_staging_id(s, next_id);
		next_id = r->dst.staging_id + 1;
		ret = transport_region_register(s->conn, r->dst.staging_id, area, r->length,
						TRANSPORT_ACCESS_REMOTE_WRITE);
		if (ret) {
			snprintf(why, why_len, "cannot register the staging area of region %u: %s",
				 r->id, session_strerror(ret));
			return ret;
		}
		r->dst.staging_registered = 1;
		if (all_later) {
			struct dirty_memory_info info;

			ret = transport_region_deregister(s->conn, r->id);
			if (ret) {
				snprintf(why, why_len, "cannot revoke region %u: %s", r->id,
					 session_strerror(ret));
				return ret;
			}
			r->dst.revoked = 1;
			ret = dirty_memory_inspect(r->addr, r->length, &info);
			if (!ret &&
			    madvise(r->addr, r->length, info.shared ? MADV_REMOVE : MADV_DONTNEED))
				ret = -errno;
			if (ret) {
				snprintf(why, why_len, "cannot discard the pages of region %u: %s",
					 r->id, strerror(-ret));
				return ret;
			}
			bitmap_zero(r->dst.hashed, r->npages);
		}
	}
	return 0;
}

void postcopy_dest_unprepare(struct rmig_session *s)
{
	for (size_t i = 0; i < s->nregions; i++) {
		struct session_region *r = &s->regions[i];

		if (r->dst.staging_registered && s->conn)
			transport_region_deregister(s->conn, r->dst.staging_id);
		r->dst.staging_registered = 0;
		if (r->dst.staging)
			munmap(r->dst.staging, r->length);
		r->dst.staging = NULL;
	}
}

int postcopy_dest_arm(struct rmig_session *s, const void *payload, size_t len)
{
	struct protocol_staging staging[PROTOCOL_REGIONS_MAX];
	struct protocol_postcopy_begin begin;
	char why[TRANSPORT_ERROR_MAX];
	struct postcopy_dest *pc;
	uint64_t announced = 0;
	uint64_t t_start = session_now_us(), t, revoke_us = 0, discard_us = 0, uffd_us = 0;
	uint64_t staging_us = 0;
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
			uint64_t never = ~(r->dst.arrived[w] | r->postcopy[w]);

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
	s->dst.postcopy = pc;
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
	/* auto's staging areas (the explicit post-copy methods set theirs up at the handshake) */
	if (!s->nregions || !s->regions[0].dst.staging) {
		t = session_now_us();
		ret = postcopy_dest_prepare(s, 0, why, sizeof(why));
		staging_us = session_now_us() - t;
		if (ret) {
			ret = session_fail(s, ret, "post-copy: %s", why);
			goto err_free;
		}
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
		t = session_now_us();
		ret = r->dst.revoked ? 0 : transport_region_deregister(s->conn, r->id);
		revoke_us += session_now_us() - t;
		if (ret) {
			ret = session_fail(s, ret, "post-copy: cannot revoke region %u: %s", r->id,
					   session_strerror(ret));
			goto err_free;
		}
		t = session_now_us();
		ret = postcopy_discard(pr);
		discard_us += session_now_us() - t;
		if (ret) {
			ret = session_fail(s, ret,
					   "post-copy: cannot discard the stale pages of "
					   "region %u: %s",
					   r->id, strerror(-ret));
			goto err_free;
		}
		t = session_now_us();
		ret = postcopy_register(pc->uffd, r, &pr->zeropage, why, sizeof(why));
		uffd_us += session_now_us() - t;
		if (ret) {
			ret = session_fail(s, ret, "post-copy: %s", why);
			goto err_free;
		}
		pr->uffd_registered = 1;
		/* Take the staging area over from postcopy_dest_prepare(). */
		pr->staging = r->dst.staging;
		pr->staging_id = r->dst.staging_id;
		pr->staging_registered = r->dst.staging_registered;
		r->dst.staging = NULL;
		r->dst.staging_registered = 0;
		staging[i] =
			(struct protocol_staging){.region_id = r->id, .staging_id = pr->staging_id};
	}
	ret = postcopy_fault_thread_start(pc);
	if (ret) {
		ret = session_fail(s, ret, "post-copy: cannot start the fault thread");
		goto err_free;
	}
	ret = session_ctrl_send(s,
				protocol_postcopy_ready_to_wire(staging, s->nregions, s->msg_buf));
	if (ret)
		goto err_free;
	rmig_log_info("destination: post-copy armed in %.1f ms (revoking the transport's access "
		      "%.1f ms, discarding %.1f ms, userfaultfd %.1f ms, staging registration %.1f "
		      "ms), %llu pages to come after resume",
		      (double)(session_now_us() - t_start) / 1000.0, (double)revoke_us / 1000.0,
		      (double)discard_us / 1000.0, (double)uffd_us / 1000.0,
		      (double)staging_us / 1000.0, (unsigned long long)pc->missing);
	return 0;

err_free:
	/* Not resumed: nothing is lost, the source keeps the VM. */
	pc->missing = 0;
	s->dst.postcopy = NULL;
	postcopy_dest_free(pc);
	return ret;
}
