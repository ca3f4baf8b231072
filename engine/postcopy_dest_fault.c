/* SPDX-License-Identifier: MIT */
/* engine/postcopy_dest_fault.c - the destination's fault thread during the post-copy tail: a
 * guest access to a missing page is read from the userfaultfd, the page (with up to
 * POSTCOPY_FAULT_CLUSTER missing neighbours nobody asked for) is pulled with transport_read()
 * unless the push already brings it, and copied in with UFFDIO_COPY. Also what installs a page
 * for the push (postcopy_dest.c) and counts the waits it ends. Who moves what, and why pages
 * never land in guest RAM: postcopy_dest.c. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/userfaultfd.h>

#include "engine/bitmap.h"
#include "engine/postcopy_dest.h"
#include "transport/log.h"

#define POSTCOPY_FAULT_BATCH 32

/* Copy len bytes at src into the missing pages at dst (waking whoever waits on them). Pages
 * already there are skipped: they hold what the guest made of them since. */
int postcopy_copy(int uffd, void *dst, const void *src, size_t len, size_t page_size)
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

int postcopy_zero(int uffd, void *dst, size_t len, size_t page_size)
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
void postcopy_installed_locked(struct postcopy_dest *pc, size_t index, size_t first, size_t n,
			       int pushed)
{
	struct postcopy_region *pr = &pc->regions[index];
	uint64_t now = session_now_us();

	for (size_t p = first; p < first + n; p++) {
		bitmap_clear(pr->missing, p);
		bitmap_clear(pr->requested, p);
		bitmap_clear(pr->claimed, p);
		bitmap_set(pr->r->dst.arrived, p);
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

int postcopy_fault_thread_start(struct postcopy_dest *pc)
{
	int ret = -pthread_create(&pc->fault_thread, NULL, postcopy_fault_main, pc);

	if (!ret)
		pc->fault_thread_running = 1;
	return ret;
}

void postcopy_fault_thread_stop(struct postcopy_dest *pc)
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
