/* SPDX-License-Identifier: MIT */
/* bindings/xen/xen_dirty.h - depth 3: one log-dirty harvest of the whole guest (Xen's CLEAN
 * returns a bitmap of every frame and clears it) handed out to rmig's regions, which ask one
 * at a time. Pure bookkeeping, no Xen call: xen_ram.c harvests, this distributes (and
 * tests/xen/test_xen_dirty.c checks no bit is lost or handed out twice). */
#ifndef RMIG_XEN_DIRTY_H
#define RMIG_XEN_DIRTY_H

#include <stddef.h>
#include <stdint.h>

#include "bindings/xen/xen_stream.h"

struct xen_dirty {
	const struct xen_own_ram_header *layout; /* the ranges: region i is range i */
	uint64_t frames;			 /* bits in a harvest (the guest's p2m size) */
	unsigned long *pending;			 /* harvested, not yet handed to its region */
	uint8_t *taken; /* per range: handed its bits since the last harvest */
};

/* Allocate for @layout and @frames bits; every range starts "taken", so the first question
 * harvests. 0 or -ENOMEM; -EINVAL when a range reaches past @frames. */
int xen_dirty_init(struct xen_dirty *d, const struct xen_own_ram_header *layout, uint64_t frames);
void xen_dirty_free(struct xen_dirty *d);

/* Bytes of a harvest bitmap of @frames bits (whole unsigned longs). */
size_t xen_dirty_bitmap_bytes(uint64_t frames);

/* Whether region @index asking now needs a new harvest first: it already had its bits from
 * the last one. */
int xen_dirty_needs_harvest(const struct xen_dirty *d, uint32_t index);

/* Add a harvest (@frames bits); every region may take its part again. Returns the frames set. */
uint64_t xen_dirty_add_harvest(struct xen_dirty *d, const unsigned long *harvest);

/* Move region @index's pending bits into @bitmap (bit i: the range's page i), clearing them. */
void xen_dirty_take(struct xen_dirty *d, uint32_t index, uint64_t *bitmap);

#endif /* RMIG_XEN_DIRTY_H */
