/* SPDX-License-Identifier: MIT */
/* bindings/xen/xen_dirty.c - a log-dirty harvest handed out to rmig's regions (xen_dirty.h). */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "bindings/xen/xen_dirty.h"

#define BITS_PER_WORD (sizeof(unsigned long) * CHAR_BIT)

size_t xen_dirty_bitmap_bytes(uint64_t frames)
{
	return (size_t)((frames + BITS_PER_WORD - 1) / BITS_PER_WORD) * sizeof(unsigned long);
}

int xen_dirty_init(struct xen_dirty *d, const struct xen_own_ram_header *layout, uint64_t frames)
{
	*d = (struct xen_dirty){.layout = layout, .frames = frames};
	for (uint32_t i = 0; i < layout->nranges; i++)
		if (layout->ranges[i].first + layout->ranges[i].count > frames)
			return -EINVAL;
	d->pending = calloc(1, xen_dirty_bitmap_bytes(frames));
	d->taken = malloc(layout->nranges);
	if (!d->pending || !d->taken) {
		xen_dirty_free(d);
		return -ENOMEM;
	}
	memset(d->taken, 1, layout->nranges);
	return 0;
}

void xen_dirty_free(struct xen_dirty *d)
{
	free(d->pending);
	free(d->taken);
	d->pending = NULL;
	d->taken = NULL;
}

int xen_dirty_needs_harvest(const struct xen_dirty *d, uint32_t index)
{
	return d->taken[index];
}

uint64_t xen_dirty_add_harvest(struct xen_dirty *d, const unsigned long *harvest)
{
	size_t words = xen_dirty_bitmap_bytes(d->frames) / sizeof(unsigned long);
	uint64_t set = 0;

	for (size_t w = 0; w < words; w++) {
		if (harvest[w]) {
			d->pending[w] |= harvest[w];
			set += (uint64_t)__builtin_popcountl(harvest[w]);
		}
	}
	memset(d->taken, 0, d->layout->nranges);
	return set;
}

void xen_dirty_take(struct xen_dirty *d, uint32_t index, uint64_t *bitmap)
{
	const struct xen_own_ram_range *r = &d->layout->ranges[index];

	for (uint64_t i = 0; i < r->count; i++) {
		uint64_t pfn = r->first + i;
		unsigned long *word = &d->pending[pfn / BITS_PER_WORD];
		unsigned long bit = 1ul << (pfn % BITS_PER_WORD);

		if (*word & bit) {
			*word &= ~bit;
			bitmap[i / 64] |= 1ull << (i % 64);
		}
	}
	d->taken[index] = 1;
}
