/* SPDX-License-Identifier: MIT */
/* engine/dirty_impl.h - what dirty.c shares with the dirty sources in dirty_*.c (never
 * included elsewhere): the ops table each source fills and the common part of its state. */
#ifndef RMIG_ENGINE_DIRTY_IMPL_H
#define RMIG_ENGINE_DIRTY_IMPL_H

#include <stddef.h>

#include "engine/dirty.h"

#define dirty_container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

enum dirty_state {
	DIRTY_STATE_CREATED = 0,
	DIRTY_STATE_STARTED,
	DIRTY_STATE_STOPPED,
};

/* Every op is present. dirty.c checks the state before calling start, sync and stop, so an op
 * runs only in the state it expects. */
struct dirty_source_ops {
	int (*start)(struct dirty_source *source);
	int (*sync)(struct dirty_source *source, uint64_t *bitmap);
	int (*stop)(struct dirty_source *source);
	void (*destroy)(struct dirty_source *source);
};

/* Embedded first in each source's own state. */
struct dirty_source {
	const struct dirty_source_ops *ops;
	enum dirty_kind kind;
	enum dirty_state state;
	struct dirty_source_config config;
	size_t npages;
};

/* Each fills the common part with dirty_source_init() and returns -errno without logging
 * only for -ENOMEM; any other failure is logged where it is decided. */
void dirty_source_init(struct dirty_source *source, const struct dirty_source_ops *ops,
		       enum dirty_kind kind, const struct dirty_source_config *config);
int dirty_hypervisor_create(const struct dirty_source_config *config,
			    struct dirty_source **source_p);
/* kind: DIRTY_KIND_UFFD_ASYNC or DIRTY_KIND_UFFD_SYNC. quiet: log refusals at info level (AUTO
 * falls back to the next kind) instead of error level. */
int dirty_uffd_create(const struct dirty_source_config *config, enum dirty_kind kind,
		      const struct dirty_memory_info *memory, int quiet,
		      struct dirty_source **source_p);
/* Features dirty_uffd_probe() may report (default all): tests narrow it to run the code paths
 * of an older kernel (no WP_ASYNC, no WP_UNPOPULATED) on this one. */
extern unsigned dirty_uffd_feature_mask;
int dirty_hash_create(const struct dirty_source_config *config, struct dirty_source **source_p);
const uint64_t *dirty_hash_page_hashes(const struct dirty_source *source);
void dirty_hash_set_threads(struct dirty_source *source, unsigned threads);

#endif /* RMIG_ENGINE_DIRTY_IMPL_H */
