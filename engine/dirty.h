/* SPDX-License-Identifier: MIT */
/* engine/dirty.h - dirty page sources behind one interface: the hypervisor's bitmap,
 * userfaultfd write-protect (async + PAGEMAP_SCAN, or synchronous faults) for memory in this
 * process, and per-page content hashing for memory that can be read but not tracked. */
#ifndef RMIG_ENGINE_DIRTY_H
#define RMIG_ENGINE_DIRTY_H

#include <stddef.h>
#include <stdint.h>

enum dirty_kind {
	DIRTY_KIND_AUTO = 0,
	DIRTY_KIND_HYPERVISOR,
	DIRTY_KIND_UFFD_ASYNC,
	DIRTY_KIND_UFFD_SYNC,
	DIRTY_KIND_HASH,
};

/* Hypervisor callback: fill bitmap (npages bits, already zeroed) with the pages written since
 * the previous call; return 0 or -errno. */
typedef int (*dirty_hypervisor_sync_fn)(void *opaque, uint32_t region_id, uint64_t *bitmap,
					size_t npages);

struct dirty_source_config {
	enum dirty_kind kind;
	uint32_t region_id;
	void *addr;	  /* page_size aligned */
	size_t length;	  /* a multiple of page_size */
	size_t page_size; /* a power of two */
	dirty_hypervisor_sync_fn hypervisor_sync;
	void *hypervisor_opaque;
	/* hash: pages in holes of the file behind the region hash as zero pages unread
	 * (engine/holes.h); NULL reads every page. Not owned. */
	const struct holes *holes;
};

struct dirty_source;

/* Bits of dirty_uffd_probe()'s *features_p. */
#define DIRTY_UFFD_HAS_WP (1u << 0)		/* UFFDIO_REGISTER_MODE_WP on anonymous memory */
#define DIRTY_UFFD_HAS_WP_ASYNC (1u << 1)	/* UFFD_FEATURE_WP_ASYNC */
#define DIRTY_UFFD_HAS_WP_UNPOPULATED (1u << 2) /* UFFD_FEATURE_WP_UNPOPULATED */
#define DIRTY_UFFD_HAS_PAGEMAP_SCAN (1u << 3)	/* PAGEMAP_SCAN on /proc/self/pagemap */
#define DIRTY_UFFD_HAS_WP_HUGETLBFS (1u << 4)	/* UFFD_FEATURE_WP_HUGETLBFS_SHMEM */
#define DIRTY_UFFD_HAS_USER_MODE_ONLY (1u << 5) /* needed UFFD_USER_MODE_ONLY to open */

/* AUTO: hypervisor if a callback is given, else uffd async if the kernel has it, else uffd
 * sync, else hash. -EOPNOTSUPP with a clear log when the asked kind is unavailable (or cannot
 * track this kind of memory), -EINVAL for a bad config, -ENOMEM. */
int dirty_source_create(const struct dirty_source_config *config, struct dirty_source **source_p);
/* From now on writes are recorded (hash: baseline hashes of every page). */
int dirty_source_start(struct dirty_source *source);
/* OR into bitmap (bitmap_words(npages) words) every page written since start or the previous
 * sync; returns the number of pages it reported (>= 0) or -errno; tracking continues. */
int dirty_source_sync(struct dirty_source *source, uint64_t *bitmap);
/* Stop tracking; the memory stays writable. Safe to call twice. */
int dirty_source_stop(struct dirty_source *source);
/* Stops tracking if still running, then frees. NULL is allowed. */
void dirty_source_destroy(struct dirty_source *source);
enum dirty_kind dirty_source_kind(const struct dirty_source *source);
/* The hash source's hash of every page as of its last sync (or start): npages entries, kept by
 * stop, freed by destroy. NULL for the other kinds. With the VM paused, the last sync's hashes
 * are the pages' current hashes, so verification can compare them with the destination's
 * instead of hashing all RAM again. */
const uint64_t *dirty_source_page_hashes(const struct dirty_source *source);
/* How many threads a hash sync may use (1 at creation; at most DIRTY_HASH_THREADS_MAX): the
 * final sync, with the VM paused, has the host's cores to itself. The other kinds ignore it. */
#define DIRTY_HASH_THREADS_MAX 8u
void dirty_source_set_threads(struct dirty_source *source, unsigned threads);
/* "auto", "hypervisor", "uffd-async", "uffd-sync", "hash" ("unknown" otherwise). */
const char *dirty_kind_name(enum dirty_kind kind);
/* What this kernel offers (DIRTY_UFFD_HAS_* bits), for messages and tests. Returns 0, or
 * -errno when userfaultfd cannot be opened at all (then *features_p is not set). */
int dirty_uffd_probe(unsigned *features_p);

/* What /proc/self/smaps says about the mapping behind a range (the dirty sources pick their
 * kind by it; post-copy on the destination picks how to discard pages by it). */
struct dirty_memory_info {
	int shared;		 /* some part is MAP_SHARED: other mappings may write it */
	int private;		 /* some part is MAP_PRIVATE */
	int private_file;	 /* some MAP_PRIVATE part maps a file (not anonymous memory) */
	int pfnmap;		 /* some part maps raw frames (VM_PFNMAP or VM_IO: a device's) */
	int hugetlb;		 /* some part is hugetlbfs */
	size_t kernel_page_size; /* largest KernelPageSize over the range */
	char first_path[128];	 /* backing of the first shared part, for messages */
};

/* -EFAULT (logged) when part of the range is not mapped. */
int dirty_memory_inspect(const void *addr, size_t length, struct dirty_memory_info *info_p);

#endif /* RMIG_ENGINE_DIRTY_H */
