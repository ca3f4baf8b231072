/* SPDX-License-Identifier: MIT */
/* bindings/xen/xen_ram.h - depth 3 of docs/xen.md: a PVH domain's RAM as rmig's regions. Both
 * ends map the domain's populated frames into their own address space (the source read-only,
 * the destination writable), one mapping per range of frames; the source finds what the guest
 * wrote with Xen's log-dirty; and the parts of libxc's migration stream that are not page data
 * are written here, so Xen's stream carries only the vCPU and platform state. Links
 * libxenctrl, libxenguest and libxenforeignmemory: rmig-xen-save and rmig-xen-restore only. */
#ifndef RMIG_XEN_RAM_H
#define RMIG_XEN_RAM_H

#include <stddef.h>
#include <stdint.h>

#include <xenctrl.h>
#include <xenforeignmemory.h>

#include "rmig.h"
#include "bindings/xen/xen_dirty.h"
#include "bindings/xen/xen_stream.h"

struct xen_ram {
	xc_interface *xch;	       /* not owned */
	xenforeignmemory_handle *fmem; /* owned */
	uint32_t domid;
	struct xen_own_ram_header *layout; /* the ranges (and the domain's name) */
	void **maps;			   /* one mapping per range, NULL until mapped */
	uint64_t p2m_size;		   /* the domain's highest frame + 1 (source) */

	/* source: log-dirty */
	int logdirty;
	xc_hypercall_buffer_t hbuf;   /* Xen's CLEAN bitmap, p2m_size bits */
	struct xen_dirty dirty;	      /* its bits handed out to the regions */
	uint64_t harvests, harvested; /* CLEAN calls, dirty frames they returned */
};

/* Open the foreign-memory handle for @domid; @ram is zeroed first. 0 or -errno. */
int xen_ram_open(struct xen_ram *ram, xc_interface *xch, uint32_t domid);

/* Unmap, stop log-dirty if it runs (it is switched off: the domain runs on, untracked), free. */
void xen_ram_close(struct xen_ram *ram);

/**
 * xen_ram_scan() - source: find the frames the domain has populated, as ascending ranges, into
 * ram->layout (allocated), with @name as the domain's name.
 *
 * Return: 0; -E2BIG past XEN_OWN_RAM_RANGES_MAX ranges; -ENOENT when no frame is populated;
 * -errno from Xen.
 */
int xen_ram_scan(struct xen_ram *ram, const char *name);

/* Map every range (@writable: PROT_READ|PROT_WRITE, else PROT_READ). 0, or -EFAULT when a
 * frame of the layout is not there (having said which), -errno. */
int xen_ram_map(struct xen_ram *ram, int writable, char *why, size_t why_len);

/* Add the mapped ranges to @session as regions 0..n-1, in the layout's order (the same ids on
 * both hosts). 0 or rmig_region_add()'s -errno. */
int xen_ram_add_regions(const struct xen_ram *ram, rmig_session_t *session);

/* Whether the frame @pfn of the domain is populated now (its type is not XTAB): 1, 0, or
 * -errno. */
int xen_ram_frame_present(struct xen_ram *ram, uint64_t pfn);

/**
 * xen_ram_dirty_sync() - rmig's dirty_sync for range @index: the frames of that range the guest
 * wrote since the range's previous call, from Xen's log-dirty. The first call switches
 * log-dirty on. One CLEAN serves every range: a range that asks again finds its bits from the
 * last harvest taken, and a range asking a second time causes the next harvest; no bit is
 * dropped between harvests.
 *
 * Return: 0; -EINVAL for a wrong index or size; -errno from Xen.
 */
int xen_ram_dirty_sync(struct xen_ram *ram, uint32_t index, uint64_t *bitmap, size_t npages);

/* Switch log-dirty off (the domain is not being migrated any more). */
void xen_ram_logdirty_stop(struct xen_ram *ram);

/* A growing byte buffer for the records below. */
struct xen_buf {
	uint8_t *data;
	size_t len, cap;
};

int xen_buf_put(struct xen_buf *b, const void *p, size_t n);
void xen_buf_free(struct xen_buf *b);

/**
 * xen_ram_write_libxc_head() - the start of libxc's stream (stream v3) for the domain, as
 * xc_domain_save writes it for a PVH/HVM domain, without page data: the image and domain
 * headers, the CPU policy records, STATIC_DATA_END, then PAGE_DATA records of type XALLOC for
 * every frame of the layout (libxc's restore populates them: memory, no contents, which rmig
 * then writes).
 *
 * Return: 0 or -errno.
 */
int xen_ram_write_libxc_head(struct xen_ram *ram, struct xen_buf *out);

/**
 * xen_ram_write_libxc_tail() - the end of libxc's stream, with the domain suspended: TSC_INFO,
 * HVM_CONTEXT, HVM_PARAMS, END (what xc_domain_save writes after its last page data).
 *
 * Return: 0 or -errno.
 */
int xen_ram_write_libxc_tail(struct xen_ram *ram, struct xen_buf *out);

#endif /* RMIG_XEN_RAM_H */
