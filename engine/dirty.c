/* SPDX-License-Identifier: MIT */
/* engine/dirty.c - the dirty source interface: checks the configuration and the state of a
 * source, picks the kind for DIRTY_KIND_AUTO and dispatches to dirty_hypervisor.c,
 * dirty_uffd.c and dirty_hash.c. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/dirty.h"
#include "engine/dirty_impl.h"
#include "transport/log.h"

const char *dirty_kind_name(enum dirty_kind kind)
{
	switch (kind) {
	case DIRTY_KIND_AUTO:
		return "auto";
	case DIRTY_KIND_HYPERVISOR:
		return "hypervisor";
	case DIRTY_KIND_UFFD_ASYNC:
		return "uffd-async";
	case DIRTY_KIND_UFFD_SYNC:
		return "uffd-sync";
	case DIRTY_KIND_HASH:
		return "hash";
	}
	return "unknown";
}

void dirty_source_init(struct dirty_source *source, const struct dirty_source_ops *ops,
		       enum dirty_kind kind, const struct dirty_source_config *config)
{
	source->ops = ops;
	source->kind = kind;
	source->state = DIRTY_STATE_CREATED;
	source->config = *config;
	source->config.kind = kind;
	source->npages = config->length / config->page_size;
}

static int dirty_smaps_header(const char *line, uintptr_t *start_p, uintptr_t *end_p, char *perms,
			      char *path, size_t path_len)
{
	unsigned long start, end;
	int consumed = 0;

	if (sscanf(line, "%lx-%lx %4s %*s %*s %*s %n", &start, &end, perms, &consumed) < 3 ||
	    !consumed)
		return 0;
	snprintf(path, path_len, "%s", line + consumed);
	path[strcspn(path, "\n")] = '\0';
	*start_p = start;
	*end_p = end;
	return 1;
}

/* /proc/self/smaps rather than maps: it names the kernel page size and hugetlbfs directly. */
int dirty_memory_inspect(const void *addr, size_t length, struct dirty_memory_info *info_p)
{
	uintptr_t begin = (uintptr_t)addr, end = begin + length, covered = begin;
	struct dirty_memory_info info = {.kernel_page_size = 0};
	int in_range = 0, ret = 0;
	char line[512], perms[8] = "", path[128];
	FILE *smaps;

	smaps = fopen("/proc/self/smaps", "re");
	if (!smaps) {
		ret = -errno;
		rmig_log_error("dirty: cannot open /proc/self/smaps: %s", strerror(errno));
		return ret;
	}
	while (fgets(line, sizeof(line), smaps)) {
		uintptr_t vma_start, vma_end;
		unsigned long value;

		if (dirty_smaps_header(line, &vma_start, &vma_end, perms, path, sizeof(path))) {
			in_range = vma_start < end && vma_end > begin;
			if (!in_range)
				continue;
			if (vma_start > covered)
				break; /* a hole inside the range */
			covered = vma_end;
			if (perms[3] == 's' && !info.shared) {
				info.shared = 1;
				snprintf(info.first_path, sizeof(info.first_path), "%s",
					 path[0] ? path : "anonymous");
			}
			if (perms[3] != 's') {
				info.private = 1;
				/* Anonymous: no path, or a pseudo-name ("[heap]", "[anon:...]"). */
				if (path[0] && path[0] != '[')
					info.private_file = 1;
			}
			continue;
		}
		if (!in_range)
			continue;
		if (sscanf(line, "KernelPageSize: %lu kB", &value) == 1 &&
		    value * 1024 > info.kernel_page_size)
			info.kernel_page_size = value * 1024;
		else if (!strncmp(line, "VmFlags:", 8)) {
			if (strstr(line, " ht"))
				info.hugetlb = 1;
			if (strstr(line, " pf") || strstr(line, " io"))
				info.pfnmap = 1;
		}
	}
	fclose(smaps);
	if (covered < end) {
		rmig_log_error("dirty: memory [%p, +%zu) is not fully mapped (hole at %#" PRIxPTR
			       ")",
			       addr, length, covered);
		return -EFAULT;
	}
	if (!info.kernel_page_size)
		info.kernel_page_size = (size_t)sysconf(_SC_PAGESIZE);
	*info_p = info;
	return 0;
}

static int dirty_config_check(const struct dirty_source_config *config)
{
	size_t page_size = config->page_size;

	if (config->kind > DIRTY_KIND_HASH) {
		rmig_log_error("dirty: region %u: unknown dirty source kind %d", config->region_id,
			       (int)config->kind);
		return -EINVAL;
	}
	if (!config->addr || !config->length || !page_size || (page_size & (page_size - 1)) ||
	    config->length % page_size || (uintptr_t)config->addr % page_size) {
		rmig_log_error("dirty: region %u: bad geometry: address %p, length %zu, page size "
			       "%zu (need a power-of-two page size dividing both)",
			       config->region_id, config->addr, config->length, page_size);
		return -EINVAL;
	}
	if (config->kind == DIRTY_KIND_HYPERVISOR && !config->hypervisor_sync) {
		rmig_log_error("dirty: region %u: the hypervisor dirty source needs a dirty_sync "
			       "callback",
			       config->region_id);
		return -EINVAL;
	}
	return 0;
}

/* AUTO: the hypervisor knows best; userfaultfd only sees writes made through this process's
 * own private mappings, so shared memory (a QEMU memory backend, a memfd) goes to hashing. */
static int dirty_source_create_auto(const struct dirty_source_config *config,
				    struct dirty_source **source_p)
{
	struct dirty_memory_info memory;
	int ret;

	if (config->hypervisor_sync)
		return dirty_hypervisor_create(config, source_p);
	ret = dirty_memory_inspect(config->addr, config->length, &memory);
	if (ret)
		return ret;
	if (memory.shared) {
		rmig_log_info("dirty: region %u: shared mapping (%s): other mappings may write it "
			      "unseen by userfaultfd, tracking by content hash",
			      config->region_id, memory.first_path);
		return dirty_hash_create(config, source_p);
	}
	ret = dirty_uffd_create(config, DIRTY_KIND_UFFD_ASYNC, &memory, 1, source_p);
	if (ret != -EOPNOTSUPP)
		return ret;
	ret = dirty_uffd_create(config, DIRTY_KIND_UFFD_SYNC, &memory, 1, source_p);
	if (ret != -EOPNOTSUPP)
		return ret;
	rmig_log_info("dirty: region %u: userfaultfd write-protect unavailable, tracking by "
		      "content hash",
		      config->region_id);
	return dirty_hash_create(config, source_p);
}

int dirty_source_create(const struct dirty_source_config *config, struct dirty_source **source_p)
{
	struct dirty_memory_info memory;
	int ret;

	if (!config || !source_p)
		return -EINVAL;
	ret = dirty_config_check(config);
	if (ret)
		return ret;
	switch (config->kind) {
	case DIRTY_KIND_AUTO:
		return dirty_source_create_auto(config, source_p);
	case DIRTY_KIND_HYPERVISOR:
		return dirty_hypervisor_create(config, source_p);
	case DIRTY_KIND_UFFD_ASYNC:
	case DIRTY_KIND_UFFD_SYNC:
		ret = dirty_memory_inspect(config->addr, config->length, &memory);
		if (ret)
			return ret;
		return dirty_uffd_create(config, config->kind, &memory, 0, source_p);
	case DIRTY_KIND_HASH:
		ret = dirty_memory_inspect(config->addr, config->length, &memory);
		if (ret)
			return ret;
		return dirty_hash_create(config, source_p);
	}
	return -EINVAL;
}

int dirty_source_start(struct dirty_source *source)
{
	int ret;

	if (source->state != DIRTY_STATE_CREATED) {
		rmig_log_error("dirty: region %u: %s source started twice",
			       source->config.region_id, dirty_kind_name(source->kind));
		return -EINVAL;
	}
	ret = source->ops->start(source);
	if (!ret)
		source->state = DIRTY_STATE_STARTED;
	return ret;
}

int dirty_source_sync(struct dirty_source *source, uint64_t *bitmap)
{
	if (source->state != DIRTY_STATE_STARTED) {
		rmig_log_error("dirty: region %u: sync on a %s source that is not running",
			       source->config.region_id, dirty_kind_name(source->kind));
		return -EINVAL;
	}
	return source->ops->sync(source, bitmap);
}

int dirty_source_stop(struct dirty_source *source)
{
	int ret = 0;

	if (source->state == DIRTY_STATE_STARTED)
		ret = source->ops->stop(source);
	source->state = DIRTY_STATE_STOPPED;
	return ret;
}

void dirty_source_destroy(struct dirty_source *source)
{
	if (!source)
		return;
	dirty_source_stop(source);
	source->ops->destroy(source);
}

enum dirty_kind dirty_source_kind(const struct dirty_source *source)
{
	return source->kind;
}

const uint64_t *dirty_source_page_hashes(const struct dirty_source *source)
{
	return source->kind == DIRTY_KIND_HASH ? dirty_hash_page_hashes(source) : NULL;
}

void dirty_source_set_threads(struct dirty_source *source, unsigned threads)
{
	if (source->kind == DIRTY_KIND_HASH)
		dirty_hash_set_threads(source, threads);
}
