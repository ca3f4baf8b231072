/* SPDX-License-Identifier: MIT */
/* engine/dirty_uffd.c - userfaultfd write-protect dirty sources for memory mapped privately in
 * this process. Async mode (kernel >= 6.7): the kernel lifts protection itself on a write and
 * each sync is one PAGEMAP_SCAN that reports and re-protects written pages atomically per page.
 * Sync mode (kernel >= 5.7): a fault thread records each write-protect fault and lifts the
 * protection of that page; a sync takes the recorded set and protects those pages again. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/fs.h>
#include <linux/userfaultfd.h>

#include "engine/bitmap.h"
#include "engine/dirty_impl.h"
#include "transport/log.h"

/* Debian 12's kernel headers (6.1) predate async write-protect and PAGEMAP_SCAN; these match
 * include/uapi/linux/userfaultfd.h and include/uapi/linux/fs.h of Linux 6.7+ exactly. */
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef UFFD_FEATURE_WP_HUGETLBFS_SHMEM
#define UFFD_FEATURE_WP_HUGETLBFS_SHMEM (1 << 12)
#endif
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif
#ifndef PAGEMAP_SCAN
#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#define PAGE_IS_WPALLOWED (1 << 0)
#define PAGE_IS_WRITTEN (1 << 1)
#define PAGE_IS_FILE (1 << 2)
#define PAGE_IS_PRESENT (1 << 3)
#define PAGE_IS_SWAPPED (1 << 4)
#define PAGE_IS_PFNZERO (1 << 5)
#define PAGE_IS_HUGE (1 << 6)
#define PM_SCAN_WP_MATCHING (1 << 0)
#define PM_SCAN_CHECK_WPASYNC (1 << 1)
struct page_region {
	__u64 start;
	__u64 end; /* exclusive */
	__u64 categories;
};
struct pm_scan_arg {
	__u64 size;
	__u64 flags;
	__u64 start;
	__u64 end;
	__u64 walk_end;
	__u64 vec;
	__u64 vec_len;
	__u64 max_pages;
	__u64 category_inverted;
	__u64 category_mask;
	__u64 category_anyof_mask;
	__u64 return_mask;
};
#endif
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

_Static_assert(sizeof(struct page_region) == 24, "struct page_region must match the kernel");
_Static_assert(sizeof(struct pm_scan_arg) == 96, "struct pm_scan_arg must match the kernel");

/* Regions per PAGEMAP_SCAN call: written pages come back merged into runs, so one call covers
 * up to this many separate runs; more take further calls from walk_end. */
#define DIRTY_UFFD_SCAN_REGIONS 1024
#define DIRTY_UFFD_FAULT_BATCH 64

struct dirty_uffd {
	struct dirty_source source;
	int uffd;
	int pagemap_fd;	    /* async */
	int populate_first; /* no WP_UNPOPULATED: map never-touched pages before protecting */
	int user_mode_only; /* the fd only sees faults from user mode */
	int registered;
	size_t unit;		     /* protection granularity: page size or hugetlb page size */
	struct page_region *regions; /* async */
	uint64_t *found;	     /* async: pages found by this sync */
	/* sync mode: the fault thread and sync serialize on lock (see dirty_uffd_sync_sync) */
	pthread_mutex_t lock;
	uint64_t *written; /* pages written since the last sync, under lock */
	int stop_fd;	   /* eventfd that ends the fault thread */
	pthread_t fault_thread;
	int fault_thread_running;
	int fault_error; /* first error of the fault thread (-errno), under lock */
};

static int dirty_uffd_open(int *user_mode_only_p)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (fd >= 0) {
		*user_mode_only_p = 0;
		return fd;
	}
	/* vm.unprivileged_userfaultfd = 0 without CAP_SYS_PTRACE: only user-mode faults */
	if (errno == EPERM) {
		fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
		if (fd >= 0) {
			*user_mode_only_p = 1;
			return fd;
		}
	}
	return -errno;
}

static int dirty_pagemap_scan_present(void)
{
	static long probe_page[512] __attribute__((aligned(4096)));
	struct page_region region;
	struct pm_scan_arg arg = {
		.size = sizeof(arg),
		.start = (uintptr_t)probe_page,
		.end = (uintptr_t)probe_page + sizeof(probe_page),
		.vec = (uintptr_t)&region,
		.vec_len = 1,
		.category_mask = PAGE_IS_PRESENT,
		.return_mask = PAGE_IS_PRESENT,
	};
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC), ret;

	if (fd < 0)
		return 0;
	ret = ioctl(fd, PAGEMAP_SCAN, &arg);
	close(fd);
	return ret >= 0;
}

unsigned dirty_uffd_feature_mask = ~0u;

int dirty_uffd_probe(unsigned *features_p)
{
	struct uffdio_api api = {.api = UFFD_API};
	unsigned features = 0;
	int user_mode_only, fd = dirty_uffd_open(&user_mode_only), ret;

	if (fd < 0)
		return fd;
	/* features 0 asks for nothing and makes the kernel answer everything it supports */
	if (ioctl(fd, UFFDIO_API, &api)) {
		ret = -errno;
		close(fd);
		return ret;
	}
	close(fd);
	if (api.features & UFFD_FEATURE_PAGEFAULT_FLAG_WP)
		features |= DIRTY_UFFD_HAS_WP;
	if (api.features & UFFD_FEATURE_WP_ASYNC)
		features |= DIRTY_UFFD_HAS_WP_ASYNC;
	if (api.features & UFFD_FEATURE_WP_UNPOPULATED)
		features |= DIRTY_UFFD_HAS_WP_UNPOPULATED;
	if (api.features & UFFD_FEATURE_WP_HUGETLBFS_SHMEM)
		features |= DIRTY_UFFD_HAS_WP_HUGETLBFS;
	if (user_mode_only)
		features |= DIRTY_UFFD_HAS_USER_MODE_ONLY;
	if (dirty_pagemap_scan_present())
		features |= DIRTY_UFFD_HAS_PAGEMAP_SCAN;
	*features_p = features & (dirty_uffd_feature_mask | DIRTY_UFFD_HAS_USER_MODE_ONLY);
	return 0;
}

/* UFFDIO_WRITEPROTECT may fail with EAGAIN while the address space is changing (fork, mremap);
 * the change ends soon, so retry. */
static int dirty_uffd_protect(struct dirty_uffd *u, uintptr_t start, size_t len, int protect)
{
	struct uffdio_writeprotect wp = {
		.range = {.start = start, .len = len},
		.mode = protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};

	while (ioctl(u->uffd, UFFDIO_WRITEPROTECT, &wp)) {
		if (errno != EAGAIN && errno != EINTR)
			return -errno;
	}
	return 0;
}

/* Mark every page that [start, end) (addresses) touches, clipped to the region. */
static void dirty_uffd_mark(struct dirty_uffd *u, uint64_t *bitmap, uintptr_t start, uintptr_t end)
{
	uintptr_t base = (uintptr_t)u->source.config.addr;
	size_t page_size = u->source.config.page_size, first, last;

	if (end <= base || start >= base + u->source.config.length)
		return;
	if (start < base)
		start = base;
	if (end > base + u->source.config.length)
		end = base + u->source.config.length;
	first = (start - base) / page_size;
	last = (end - base + page_size - 1) / page_size;
	bitmap_set_range(bitmap, first, last - first);
}

/* ---- async mode ---- */

static int dirty_uffd_async_sync(struct dirty_source *source, uint64_t *bitmap)
{
	struct dirty_uffd *u = dirty_container_of(source, struct dirty_uffd, source);
	uintptr_t end = (uintptr_t)source->config.addr + source->config.length;
	struct pm_scan_arg arg = {
		.size = sizeof(arg),
		.flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
		.start = (uintptr_t)source->config.addr,
		.end = end,
		.vec = (uintptr_t)u->regions,
		.vec_len = DIRTY_UFFD_SCAN_REGIONS,
		.category_mask = PAGE_IS_WRITTEN,
		.return_mask = PAGE_IS_WRITTEN,
	};
	size_t reported;

	/* Found pages go to a bitmap of our own first: a walk the kernel retries (page tables
	 * changing under a concurrent fault) can report a page twice, and the count must not. */
	bitmap_zero(u->found, source->npages);
	for (;;) {
		int n = ioctl(u->pagemap_fd, PAGEMAP_SCAN, &arg);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			n = -errno;
			rmig_log_error(
				"dirty: region %u: PAGEMAP_SCAN of [%#llx, %#llx) failed: %s%s",
				source->config.region_id, (unsigned long long)arg.start,
				(unsigned long long)arg.end, strerror(-n),
				n == -EPERM ? " (memory no longer write-protect tracked: "
					      "unmapped or remapped?)"
					    : "");
			return n;
		}
		for (int i = 0; i < n; i++)
			dirty_uffd_mark(u, u->found, u->regions[i].start, u->regions[i].end);
		/* walk_end short of end: the region array filled up; carry on from there */
		if (arg.walk_end >= end || arg.walk_end <= arg.start)
			break;
		arg.start = arg.walk_end;
	}
	reported = bitmap_count(u->found, source->npages);
	bitmap_or(bitmap, u->found, source->npages);
	return reported > INT_MAX ? INT_MAX : (int)reported;
}

/* ---- sync mode ---- */

/* Record first, then lift the protection (which wakes the writer), both under lock. The lock
 * makes "record + unprotect" atomic with respect to a sync's "take + re-protect": without it a
 * sync could take the page's bit and re-protect it between our two steps, after which our
 * unprotect would leave the page writable and unrecorded and every later write to it would be
 * lost. */
static int dirty_uffd_fault(struct dirty_uffd *u, uintptr_t address)
{
	uintptr_t base = (uintptr_t)u->source.config.addr, unit_start;
	int ret;

	if (address < base || address - base >= u->source.config.length)
		return 0; /* not ours: cannot happen with one registered range */
	unit_start = base + (address - base) / u->unit * u->unit;
	pthread_mutex_lock(&u->lock);
	dirty_uffd_mark(u, u->written, unit_start, unit_start + u->unit);
	ret = dirty_uffd_protect(u, unit_start, u->unit, 0);
	if (ret && !u->fault_error)
		u->fault_error = ret;
	pthread_mutex_unlock(&u->lock);
	if (ret) {
		struct uffdio_range range = {.start = unit_start, .len = u->unit};

		rmig_log_error("dirty: region %u: cannot lift write protection at %#lx: %s",
			       u->source.config.region_id, (unsigned long)unit_start,
			       strerror(-ret));
		/* never leave the writer blocked, even if its page stays protected */
		ioctl(u->uffd, UFFDIO_WAKE, &range);
	}
	return ret;
}

/* If reading faults fails, nobody would ever wake a blocked writer: lift all protection so
 * writers run on, and fail the next sync, since writes are no longer recorded. */
static void dirty_uffd_fault_thread_fail(struct dirty_uffd *u, int error)
{
	struct uffdio_range range = {.start = (uintptr_t)u->source.config.addr,
				     .len = u->source.config.length};

	rmig_log_error("dirty: region %u: reading userfaultfd faults failed: %s; tracking stops",
		       u->source.config.region_id, strerror(-error));
	pthread_mutex_lock(&u->lock);
	if (!u->fault_error)
		u->fault_error = error;
	ioctl(u->uffd, UFFDIO_UNREGISTER, &range);
	pthread_mutex_unlock(&u->lock);
}

static void *dirty_uffd_fault_main(void *arg)
{
	struct dirty_uffd *u = arg;
	struct uffd_msg msgs[DIRTY_UFFD_FAULT_BATCH];

	for (;;) {
		struct pollfd fds[2] = {{.fd = u->uffd, .events = POLLIN},
					{.fd = u->stop_fd, .events = POLLIN}};
		ssize_t n;

		if (poll(fds, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			dirty_uffd_fault_thread_fail(u, -errno);
			break;
		}
		if (fds[1].revents)
			break;
		n = read(u->uffd, msgs, sizeof(msgs));
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			dirty_uffd_fault_thread_fail(u, -errno);
			break;
		}
		for (size_t i = 0; i < (size_t)n / sizeof(msgs[0]); i++) {
			if (msgs[i].event == UFFD_EVENT_PAGEFAULT &&
			    (msgs[i].arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP))
				dirty_uffd_fault(u, (uintptr_t)msgs[i].arg.pagefault.address);
		}
	}
	return NULL;
}

/* Take the recorded set and re-protect it, under the lock the fault thread records under.
 * A page in the set is writable. A write to it after we take its bit and before we protect it
 * goes through without a fault; it is not lost: the page is reported by this sync and the
 * engine reads it after we return, so it reads that write. A write after we protect it faults,
 * and the fault thread, once we drop the lock, records it for the next sync. A fault still
 * queued in the userfaultfd is a write not yet made (its writer is blocked): it belongs to a
 * later sync. Nothing is reported before it is protected again, so nothing is reported twice
 * for one write, and everything reported is OR-ed in before protecting, so an ioctl failure
 * loses nothing either. */
static int dirty_uffd_sync_sync(struct dirty_source *source, uint64_t *bitmap)
{
	struct dirty_uffd *u = dirty_container_of(source, struct dirty_uffd, source);
	uintptr_t base = (uintptr_t)source->config.addr;
	size_t page_size = source->config.page_size, reported, from = 0, start, len;
	int ret = 0;

	pthread_mutex_lock(&u->lock);
	if (u->fault_error) {
		ret = u->fault_error;
		goto out_unlock;
	}
	reported = bitmap_count(u->written, source->npages);
	bitmap_or(bitmap, u->written, source->npages);
	while (dirty_bitmap_next_run(u->written, source->npages, from, &start, &len)) {
		ret = dirty_uffd_protect(u, base + start * page_size, len * page_size, 1);
		if (ret) {
			rmig_log_error(
				"dirty: region %u: cannot write-protect pages %zu+%zu again: "
				"%s",
				source->config.region_id, start, len, strerror(-ret));
			goto out_unlock;
		}
		from = start + len;
	}
	bitmap_zero(u->written, source->npages);
	ret = reported > INT_MAX ? INT_MAX : (int)reported;
out_unlock:
	pthread_mutex_unlock(&u->lock);
	return ret;
}

/* ---- common ---- */

static int dirty_uffd_start(struct dirty_source *source)
{
	struct dirty_uffd *u = dirty_container_of(source, struct dirty_uffd, source);
	const struct dirty_source_config *config = &source->config;
	int ret;

	/* Without WP_UNPOPULATED, protection skips pages never touched, and the first write to
	 * one would allocate a writable page unseen. Mapping them first (read: the shared zero
	 * page, no memory) gives them a page table entry to protect. */
	if (u->populate_first && madvise(config->addr, config->length, MADV_POPULATE_READ)) {
		volatile const unsigned char *p = config->addr;

		for (size_t off = 0; off < config->length; off += u->unit)
			(void)p[off];
	}
	if (source->kind == DIRTY_KIND_UFFD_SYNC) {
		ret = pthread_create(&u->fault_thread, NULL, dirty_uffd_fault_main, u);
		if (ret) {
			rmig_log_error("dirty: region %u: cannot start the fault thread: %s",
				       config->region_id, strerror(ret));
			return -ret;
		}
		u->fault_thread_running = 1;
	}
	ret = dirty_uffd_protect(u, (uintptr_t)config->addr, config->length, 1);
	if (ret) {
		rmig_log_error("dirty: region %u: cannot write-protect [%p, +%zu): %s",
			       config->region_id, config->addr, config->length, strerror(-ret));
		return ret; /* stop/destroy ends the thread */
	}
	return 0;
}

static void dirty_uffd_fault_thread_end(struct dirty_uffd *u)
{
	uint64_t one = 1;

	if (!u->fault_thread_running)
		return;
	if (write(u->stop_fd, &one, sizeof(one)) != sizeof(one))
		rmig_log_error("dirty: region %u: cannot signal the fault thread: %s",
			       u->source.config.region_id, strerror(errno));
	pthread_join(u->fault_thread, NULL);
	u->fault_thread_running = 0;
}

/* Unregistering lifts every protection and wakes writers blocked on a fault; only then may the
 * fault thread go, or a writer could stay blocked on a fault nobody reads. */
static int dirty_uffd_unregister(struct dirty_uffd *u)
{
	struct uffdio_range range = {.start = (uintptr_t)u->source.config.addr,
				     .len = u->source.config.length};
	int ret = 0;

	if (u->uffd < 0)
		return 0;
	if (u->registered && ioctl(u->uffd, UFFDIO_UNREGISTER, &range)) {
		ret = -errno;
		rmig_log_error("dirty: region %u: cannot unregister from userfaultfd: %s",
			       u->source.config.region_id, strerror(errno));
	}
	dirty_uffd_fault_thread_end(u);
	/* closing the fd releases whatever unregister could not */
	close(u->uffd);
	u->uffd = -1;
	return ret;
}

static int dirty_uffd_stop(struct dirty_source *source)
{
	return dirty_uffd_unregister(dirty_container_of(source, struct dirty_uffd, source));
}

static void dirty_uffd_destroy(struct dirty_source *source)
{
	struct dirty_uffd *u = dirty_container_of(source, struct dirty_uffd, source);

	dirty_uffd_unregister(u);
	if (u->stop_fd >= 0)
		close(u->stop_fd);
	if (u->pagemap_fd >= 0)
		close(u->pagemap_fd);
	pthread_mutex_destroy(&u->lock);
	free(u->written);
	free(u->found);
	free(u->regions);
	free(u);
}

static const struct dirty_source_ops dirty_uffd_async_ops = {
	.start = dirty_uffd_start,
	.sync = dirty_uffd_async_sync,
	.stop = dirty_uffd_stop,
	.destroy = dirty_uffd_destroy,
};

static const struct dirty_source_ops dirty_uffd_sync_ops = {
	.start = dirty_uffd_start,
	.sync = dirty_uffd_sync_sync,
	.stop = dirty_uffd_stop,
	.destroy = dirty_uffd_destroy,
};

#define dirty_uffd_refuse(quiet, fmt, ...) \
	rmig_log_write((quiet) ? RMIG_LOG_LEVEL_INFO : RMIG_LOG_LEVEL_ERROR, fmt, ##__VA_ARGS__)

/* What this kernel and this memory allow; -EOPNOTSUPP (logged) when the kind cannot work. */
static int dirty_uffd_check(const struct dirty_source_config *config, enum dirty_kind kind,
			    const struct dirty_memory_info *memory, int quiet, unsigned *features_p)
{
	const char *name = dirty_kind_name(kind);
	unsigned features;
	int ret = dirty_uffd_probe(&features);

	if (ret) {
		dirty_uffd_refuse(quiet, "dirty: region %u: %s: userfaultfd unavailable: %s",
				  config->region_id, name, strerror(-ret));
		return -EOPNOTSUPP;
	}
	if (memory->shared) {
		dirty_uffd_refuse(quiet,
				  "dirty: region %u: %s: the memory is a shared mapping (%s); "
				  "userfaultfd only sees writes through this process's mapping, "
				  "not through other mappings of it (use hash or hypervisor)",
				  config->region_id, name, memory->first_path);
		return -EOPNOTSUPP;
	}
	if (!(features & DIRTY_UFFD_HAS_WP)) {
		dirty_uffd_refuse(quiet,
				  "dirty: region %u: %s: this kernel has no userfaultfd "
				  "write-protect (Linux >= 5.7)",
				  config->region_id, name);
		return -EOPNOTSUPP;
	}
	if (kind == DIRTY_KIND_UFFD_ASYNC &&
	    (features & (DIRTY_UFFD_HAS_WP_ASYNC | DIRTY_UFFD_HAS_PAGEMAP_SCAN)) !=
		    (DIRTY_UFFD_HAS_WP_ASYNC | DIRTY_UFFD_HAS_PAGEMAP_SCAN)) {
		dirty_uffd_refuse(quiet,
				  "dirty: region %u: %s: this kernel lacks %s (Linux >= 6.7)",
				  config->region_id, name,
				  features & DIRTY_UFFD_HAS_WP_ASYNC ? "PAGEMAP_SCAN"
								     : "UFFD_FEATURE_WP_ASYNC");
		return -EOPNOTSUPP;
	}
	if (memory->hugetlb && !(features & DIRTY_UFFD_HAS_WP_HUGETLBFS)) {
		dirty_uffd_refuse(
			quiet,
			"dirty: region %u: %s: this kernel cannot write-protect hugetlbfs "
			"memory (Linux >= 5.19)",
			config->region_id, name);
		return -EOPNOTSUPP;
	}
	if (config->page_size < (size_t)sysconf(_SC_PAGESIZE) ||
	    (uintptr_t)config->addr % memory->kernel_page_size ||
	    config->length % memory->kernel_page_size) {
		dirty_uffd_refuse(quiet,
				  "dirty: region %u: %s: [%p, +%zu) with %zu-byte pages does not "
				  "fall on the memory's %zu-byte kernel pages",
				  config->region_id, name, config->addr, config->length,
				  config->page_size, memory->kernel_page_size);
		return -EOPNOTSUPP;
	}
	*features_p = features;
	return 0;
}

int dirty_uffd_create(const struct dirty_source_config *config, enum dirty_kind kind,
		      const struct dirty_memory_info *memory, int quiet,
		      struct dirty_source **source_p)
{
	struct uffdio_register reg = {
		.range = {.start = (uintptr_t)config->addr, .len = config->length},
		.mode = UFFDIO_REGISTER_MODE_WP,
	};
	struct uffdio_api api = {.api = UFFD_API};
	unsigned features;
	struct dirty_uffd *u;
	int ret;

	ret = dirty_uffd_check(config, kind, memory, quiet, &features);
	if (ret)
		return ret;
	u = calloc(1, sizeof(*u));
	if (!u)
		return -ENOMEM;
	dirty_source_init(&u->source,
			  kind == DIRTY_KIND_UFFD_ASYNC ? &dirty_uffd_async_ops
							: &dirty_uffd_sync_ops,
			  kind, config);
	u->uffd = u->pagemap_fd = u->stop_fd = -1;
	u->unit = config->page_size > memory->kernel_page_size ? config->page_size
							       : memory->kernel_page_size;
	pthread_mutex_init(&u->lock, NULL);
	ret = -ENOMEM;
	if (kind == DIRTY_KIND_UFFD_ASYNC) {
		u->regions = calloc(DIRTY_UFFD_SCAN_REGIONS, sizeof(*u->regions));
		u->found = calloc(bitmap_words(u->source.npages), sizeof(uint64_t));
		if (!u->regions || !u->found)
			goto err_free;
		u->pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
		if (u->pagemap_fd < 0) {
			ret = -errno;
			rmig_log_error("dirty: region %u: cannot open /proc/self/pagemap: %s",
				       config->region_id, strerror(errno));
			goto err_free;
		}
	} else {
		u->written = calloc(bitmap_words(u->source.npages), sizeof(uint64_t));
		if (!u->written)
			goto err_free;
		u->stop_fd = eventfd(0, EFD_CLOEXEC);
		if (u->stop_fd < 0) {
			ret = -errno;
			rmig_log_error("dirty: region %u: cannot create an eventfd: %s",
				       config->region_id, strerror(errno));
			goto err_free;
		}
	}
	u->uffd = dirty_uffd_open(&u->user_mode_only);
	if (u->uffd < 0) {
		ret = u->uffd;
		rmig_log_error("dirty: region %u: cannot open a userfaultfd: %s", config->region_id,
			       strerror(-ret));
		goto err_free;
	}
	if (u->user_mode_only)
		rmig_log_warn("dirty: region %u: userfaultfd restricted to user-mode faults "
			      "(vm.unprivileged_userfaultfd = 0): a system call writing this "
			      "memory %s",
			      config->region_id,
			      kind == DIRTY_KIND_UFFD_SYNC ? "fails with EFAULT"
							   : "is still tracked");
	/* Never-touched pages count as protected with WP_UNPOPULATED, so a first write to a page
	 * that was zero at start is seen; without it start maps them first. */
	if (kind == DIRTY_KIND_UFFD_ASYNC)
		api.features |= UFFD_FEATURE_WP_ASYNC;
	if (features & DIRTY_UFFD_HAS_WP_UNPOPULATED)
		api.features |= UFFD_FEATURE_WP_UNPOPULATED;
	else
		u->populate_first = !memory->hugetlb;
	if (memory->hugetlb)
		api.features |= UFFD_FEATURE_WP_HUGETLBFS_SHMEM;
	if (ioctl(u->uffd, UFFDIO_API, &api)) {
		ret = -errno;
		rmig_log_error("dirty: region %u: %s: UFFDIO_API (features %#llx) failed: %s",
			       config->region_id, dirty_kind_name(kind),
			       (unsigned long long)api.features, strerror(errno));
		goto err_free;
	}
	if (ioctl(u->uffd, UFFDIO_REGISTER, &reg)) {
		ret = errno == EINVAL || errno == EBUSY ? -EOPNOTSUPP : -errno;
		dirty_uffd_refuse(quiet,
				  "dirty: region %u: %s: cannot register [%p, +%zu) for "
				  "write-protect: %s%s",
				  config->region_id, dirty_kind_name(kind), config->addr,
				  config->length, strerror(errno),
				  errno == EBUSY ? " (another userfaultfd already tracks it)" : "");
		goto err_free;
	}
	u->registered = 1;
	if (!(reg.ioctls & (1ull << _UFFDIO_WRITEPROTECT))) {
		ret = -EOPNOTSUPP;
		dirty_uffd_refuse(quiet,
				  "dirty: region %u: %s: the kernel offers no UFFDIO_WRITEPROTECT "
				  "on this memory",
				  config->region_id, dirty_kind_name(kind));
		goto err_free;
	}
	*source_p = &u->source;
	return 0;

err_free:
	dirty_uffd_destroy(&u->source);
	return ret;
}
