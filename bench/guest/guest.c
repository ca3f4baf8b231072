/* SPDX-License-Identifier: MIT */
/* bench/guest/guest.c - the in-process guest: RAM, the workload that writes it, a device-state
 * blob, and the rmig callbacks that pause, resume and move it (guest.h). */
#include "bench/guest/guest.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <xxhash.h>

/* Give the guest a memory image before it boots: most pages hold data, one in eight stays
 * zero (as freshly booted guests have plenty of), so zero-page markers show in reports. */
static void guest_ram_fill(void *ram, size_t length, uint64_t seed)
{
	uint64_t *words = ram;
	uint64_t state = seed * 0x9e3779b97f4a7c15ull + 1;
	size_t pages = length / GUEST_PAGE_SIZE;

	for (size_t p = 0; p < pages; p++) {
		uint64_t *page = words + p * (GUEST_PAGE_SIZE / 8);

		if (p % 8 == 7)
			continue;
		for (size_t w = 0; w < GUEST_PAGE_SIZE / 8; w += 8) {
			state ^= state << 13;
			state ^= state >> 7;
			state ^= state << 17;
			page[w] = state;
		}
	}
}

static void guest_device_state_fill(struct guest *g)
{
	uint64_t state = g->seed ^ 0x5bd1e995u;

	g->device_state_len = GUEST_DEVICE_STATE_BYTES;
	for (size_t i = 0; i < g->device_state_len; i++) {
		state = state * 6364136223846793005ull + 1442695040888963407ull;
		g->device_state[i] = (unsigned char)(state >> 56);
	}
}

int guest_init(struct guest *g, const char *workload, size_t length,
	       const struct workload_params *params, int destination)
{
	int ret;

	memset(g, 0, sizeof(*g));
	if (!length || length % GUEST_PAGE_SIZE)
		return -EINVAL;
	g->length = length;
	g->workload_name = workload;
	g->params = *params;
	g->params.page_size = GUEST_PAGE_SIZE;
	g->seed = params->seed;
	g->destination = destination;
	g->ram = mmap(NULL, length, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (g->ram == MAP_FAILED) {
		g->ram = NULL;
		return -ENOMEM;
	}
	g->device_state = malloc(GUEST_DEVICE_STATE_BYTES);
	if (!g->device_state) {
		ret = -ENOMEM;
		goto err_unmap;
	}
	if (destination)
		return 0;
	guest_device_state_fill(g);
	guest_ram_fill(g->ram, length, g->seed);
	ret = workload_create(workload, g->ram, length, &g->params, &g->workload);
	if (ret)
		goto err_free_state;
	return 0;

err_free_state:
	free(g->device_state);
	g->device_state = NULL;
err_unmap:
	munmap(g->ram, length);
	g->ram = NULL;
	return ret;
}

void guest_fini(struct guest *g)
{
	if (g->reader)
		workload_destroy(g->reader);
	if (g->workload) {
		workload_stop(g->workload);
		workload_destroy(g->workload);
	}
	if (g->ram)
		munmap(g->ram, g->length);
	free(g->device_state);
	memset(g, 0, sizeof(*g));
}

int guest_start(struct guest *g)
{
	int ret;

	if (!g->workload)
		return -EINVAL;
	if (g->running)
		return 0;
	ret = workload_start(g->workload);
	if (!ret)
		g->running = 1;
	return ret;
}

void guest_stop(struct guest *g)
{
	if (g->running) {
		workload_stop(g->workload);
		g->running = 0;
	}
}

uint64_t guest_reader_stop(struct guest *g, uint64_t *errors_p)
{
	*errors_p = 0;
	if (!g->reader)
		return 0;
	workload_stop(g->reader);
	*errors_p = workload_errors(g->reader);
	return workload_pages_written(g->reader);
}

int guest_identical(const struct guest *src, const struct guest *dst)
{
	return src->length == dst->length && !memcmp(src->ram, dst->ram, src->length) &&
	       dst->device_state_len == src->device_state_len &&
	       !memcmp(src->device_state, dst->device_state, dst->device_state_len);
}

void guest_sent_hash(const struct guest *g, char hash[17])
{
	const size_t tag = strlen(GUEST_HASH_TAG);

	hash[0] = '\0';
	if (g->device_state_len > tag + 16 &&
	    !strncmp((const char *)g->device_state, GUEST_HASH_TAG, tag)) {
		memcpy(hash, g->device_state + tag, 16);
		hash[16] = '\0';
	}
}

void guest_ram_hash(const struct guest *g, char hash[17])
{
	snprintf(hash, 17, "%016" PRIx64, (uint64_t)XXH3_64bits(g->ram, g->length));
}

int guest_pause_vm(void *guest)
{
	struct guest *g = guest;

	guest_stop(g);
	g->paused = 1;
	if (g->with_hash) {
		/* The paused guest's RAM, as the receiver must find it. */
		uint64_t hash = XXH3_64bits(g->ram, g->length);

		snprintf((char *)g->device_state, 64, GUEST_HASH_TAG "%016" PRIx64 "\n", hash);
	}
	return 0;
}

int guest_resume_vm(void *guest)
{
	struct guest *g = guest;

	g->resumed = 1;
	if (g->destination) {
		/* The guest runs on here at once; it only reads, so that its RAM can still be
		 * compared with the source's afterwards. With post-copy its accesses are what
		 * faults pages in. */
		if (!g->reader &&
		    workload_attach(g->workload_name, g->ram, g->length, &g->params,
				    WORKLOAD_READ_ONLY, &g->reader) == 0 &&
		    workload_start(g->reader) != 0) {
			workload_destroy(g->reader);
			g->reader = NULL;
		}
		return 0;
	}
	/* Source side: the migration failed after the pause; the guest runs here again. */
	if (g->workload)
		(void)guest_start(g);
	return 0;
}

int guest_device_state_read(void *guest, void *buf, size_t len)
{
	struct guest *g = guest;
	size_t n = g->device_state_len - g->device_state_pos;

	if (n > len)
		n = len;
	memcpy(buf, g->device_state + g->device_state_pos, n);
	g->device_state_pos += n;
	return (int)n;
}

int guest_device_state_write(void *guest, const void *buf, size_t len)
{
	struct guest *g = guest;

	if (len > GUEST_DEVICE_STATE_BYTES - g->device_state_pos)
		return -EMSGSIZE;
	memcpy(g->device_state + g->device_state_pos, buf, len);
	g->device_state_pos += len;
	g->device_state_len = g->device_state_pos;
	return 0;
}

void guest_callbacks(uint32_t role, struct rmig_callbacks *cb)
{
	if (role == RMIG_ROLE_SOURCE) {
		cb->field_mask |= RMIG_CB_PAUSE_VM | RMIG_CB_DEVICE_STATE_READ | RMIG_CB_RESUME_VM;
		cb->pause_vm = guest_pause_vm;
		cb->device_state_read = guest_device_state_read;
		cb->resume_vm = guest_resume_vm;
	} else {
		cb->field_mask |= RMIG_CB_DEVICE_STATE_WRITE | RMIG_CB_RESUME_VM;
		cb->device_state_write = guest_device_state_write;
		cb->resume_vm = guest_resume_vm;
	}
}
