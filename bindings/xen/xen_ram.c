/* SPDX-License-Identifier: MIT */
/* bindings/xen/xen_ram.c - depth 3 of docs/xen.md: a PVH domain's RAM as rmig's regions
 * (xen_ram.h). The records written here follow Xen 4.17's libxc stream v3
 * (docs/specs/libxc-migration-stream.pandoc) as xc_domain_save writes them for an HVM-type
 * domain, which a PVH domain is to libxc: one vCPU-independent HVM_CONTEXT blob, the TSC and
 * the HVM parameters, after the CPU policy and STATIC_DATA_END. */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <xenctrl.h>
#include <xenguest.h>
#include <xen/hvm/params.h>

#include "bindings/xen/xen_ram.h"

#define XEN_RAM_PAGE 4096u
#define XEN_RAM_SCAN_BATCH 1024u   /* frames per type query (Xen's bound) */
#define XEN_RAM_XALLOC_BATCH 1024u /* frames per PAGE_DATA record, as libxc batches */

/* libxc stream v3 (tools/libs/guest/xg_sr_stream_format.h) */
#define LIBXC_IHDR_MARKER 0xffffffffffffffffull
#define LIBXC_IHDR_ID 0x58454E46u
#define LIBXC_IHDR_VERSION 3u
#define LIBXC_DHDR_TYPE_X86_HVM 2u
#define LIBXC_REC_END 0x00u
#define LIBXC_REC_PAGE_DATA 0x01u
#define LIBXC_REC_TSC_INFO 0x08u
#define LIBXC_REC_HVM_CONTEXT 0x09u
#define LIBXC_REC_HVM_PARAMS 0x0au
#define LIBXC_REC_STATIC_DATA_END 0x10u
#define LIBXC_REC_CPUID_POLICY 0x11u
#define LIBXC_REC_MSR_POLICY 0x12u
#define LIBXC_PAGE_TYPE_SHIFT 32u

/* ---- buffers and records ---- */

int xen_buf_put(struct xen_buf *b, const void *p, size_t n)
{
	if (n > b->cap - b->len) {
		size_t cap = b->cap ? b->cap : 4096u;
		uint8_t *grown;

		while (cap - b->len < n)
			cap *= 2;
		grown = realloc(b->data, cap);
		if (!grown)
			return -ENOMEM;
		b->data = grown;
		b->cap = cap;
	}
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

void xen_buf_free(struct xen_buf *b)
{
	free(b->data);
	*b = (struct xen_buf){0};
}

/* A libxc record: u32 type, u32 length, the body (in up to two parts), zeros to 8 bytes. */
static int xen_ram_record(struct xen_buf *out, uint32_t type, const void *a, size_t a_len,
			  const void *b, size_t b_len)
{
	static const uint8_t zeros[8];
	uint8_t header[XEN_STREAM_RECORD_HEADER_SIZE];
	size_t len = a_len + b_len;
	int ret;

	if (len > UINT32_MAX)
		return -E2BIG;
	xen_stream_write_record_header(header, type, (uint32_t)len);
	ret = xen_buf_put(out, header, sizeof(header));
	if (!ret)
		ret = xen_buf_put(out, a, a_len);
	if (!ret)
		ret = xen_buf_put(out, b, b_len);
	if (!ret)
		ret = xen_buf_put(out, zeros, (8u - len % 8u) % 8u);
	return ret;
}

/* ---- the domain's memory ---- */

int xen_ram_open(struct xen_ram *ram, xc_interface *xch, uint32_t domid)
{
	*ram = (struct xen_ram){.xch = xch, .domid = domid};
	ram->hbuf = (xc_hypercall_buffer_t){
		.hbuf = NULL, .param_shadow = NULL, HYPERCALL_BUFFER_INIT_NO_BOUNCE};
	ram->fmem = xenforeignmemory_open(NULL, 0);
	return ram->fmem ? 0 : -errno;
}

static int xen_ram_bitmap_pages(uint64_t frames)
{
	return (int)((xen_dirty_bitmap_bytes(frames) + XEN_RAM_PAGE - 1) / XEN_RAM_PAGE);
}

void xen_ram_logdirty_stop(struct xen_ram *ram)
{
	DECLARE_HYPERCALL_BUFFER_SHADOW(unsigned long, bitmap, &ram->hbuf);

	if (ram->logdirty) {
		xc_shadow_control(ram->xch, ram->domid, XEN_DOMCTL_SHADOW_OP_OFF, NULL, 0);
		ram->logdirty = 0;
	}
	if (bitmap) {
		xc_hypercall_buffer_free_pages(ram->xch, bitmap,
					       xen_ram_bitmap_pages(ram->p2m_size));
		ram->hbuf.hbuf = NULL;
	}
	xen_dirty_free(&ram->dirty);
}

void xen_ram_close(struct xen_ram *ram)
{
	if (!ram->fmem)
		return;
	xen_ram_logdirty_stop(ram);
	if (ram->maps && ram->layout)
		for (uint32_t i = 0; i < ram->layout->nranges; i++)
			if (ram->maps[i])
				xenforeignmemory_unmap(ram->fmem, ram->maps[i],
						       ram->layout->ranges[i].count);
	free(ram->maps);
	free(ram->layout);
	xenforeignmemory_close(ram->fmem);
	ram->fmem = NULL;
}

/* libxenctrl exports this (VERS_4.17.0) for libxenguest's save but does not declare it in
 * xenctrl.h: each entry in, a guest frame; out, its XEN_DOMCTL_PFINFO_* type (XTAB: no page).
 * At most 1024 entries per call (Xen's domctl bound). */
int xc_get_pfn_type_batch(xc_interface *xch, uint32_t dom, unsigned int num, xen_pfn_t *arr);

static int xen_ram_frame_populated(xen_pfn_t type)
{
	type &= XEN_DOMCTL_PFINFO_LTAB_MASK;
	return type != XEN_DOMCTL_PFINFO_XTAB && type != XEN_DOMCTL_PFINFO_BROKEN;
}

int xen_ram_scan(struct xen_ram *ram, const char *name)
{
	struct xen_own_ram_header *layout;
	xen_pfn_t frames, *types;
	int ret = 0;
	uint64_t end = 0;

	if (strlen(name) > XEN_OWN_RAM_NAME_MAX)
		return -ENAMETOOLONG;
	if (xc_domain_nr_gpfns(ram->xch, ram->domid, &frames) < 0)
		return errno ? -errno : -EIO;
	layout = calloc(1, sizeof(*layout));
	types = calloc(XEN_RAM_SCAN_BATCH, sizeof(*types));
	if (!layout || !types) {
		ret = -ENOMEM;
		goto out;
	}
	snprintf(layout->name, sizeof(layout->name), "%s", name);
	/* The frames xc_domain_save would send: those whose type is not XTAB ("no page"). */
	for (uint64_t base = 0; base < frames && !ret; base += XEN_RAM_SCAN_BATCH) {
		unsigned int n =
			(unsigned int)(frames - base < XEN_RAM_SCAN_BATCH ? frames - base
									  : XEN_RAM_SCAN_BATCH);

		for (unsigned int i = 0; i < n; i++)
			types[i] = base + i;
		if (xc_get_pfn_type_batch(ram->xch, ram->domid, n, types)) {
			ret = errno ? -errno : -EIO;
			break;
		}
		for (unsigned int i = 0; i < n; i++) {
			struct xen_own_ram_range *r;

			if (!xen_ram_frame_populated(types[i]))
				continue;
			r = layout->nranges ? &layout->ranges[layout->nranges - 1] : NULL;
			if (r && end == base + i) {
				r->count++;
			} else if (layout->nranges == XEN_OWN_RAM_RANGES_MAX) {
				ret = -E2BIG;
				break;
			} else {
				layout->ranges[layout->nranges++] =
					(struct xen_own_ram_range){.first = base + i, .count = 1};
			}
			end = base + i + 1;
			layout->pages++;
		}
	}
	if (!ret && !layout->nranges)
		ret = -ENOENT;
	if (!ret) {
		ram->layout = layout;
		ram->p2m_size = frames;
		layout = NULL;
	}
out:
	free(layout);
	free(types);
	return ret;
}

int xen_ram_map(struct xen_ram *ram, int writable, char *why, size_t why_len)
{
	int prot = writable ? PROT_READ | PROT_WRITE : PROT_READ;
	int ret = 0;

	if (!ram->maps) {
		ram->maps = calloc(ram->layout->nranges, sizeof(*ram->maps));
		if (!ram->maps)
			return -ENOMEM;
	}
	for (uint32_t i = 0; i < ram->layout->nranges && !ret; i++) {
		const struct xen_own_ram_range *r = &ram->layout->ranges[i];
		xen_pfn_t *pfns = calloc(r->count, sizeof(*pfns));
		int *errs = calloc(r->count, sizeof(*errs));

		if (!pfns || !errs) {
			ret = -ENOMEM;
		} else {
			for (uint64_t j = 0; j < r->count; j++)
				pfns[j] = r->first + j;
			ram->maps[i] = xenforeignmemory_map(ram->fmem, ram->domid, prot, r->count,
							    pfns, errs);
			if (!ram->maps[i]) {
				ret = errno ? -errno : -EIO;
				snprintf(why, why_len,
					 "cannot map frames %#llx+%llu of domain %u: %s",
					 (unsigned long long)r->first, (unsigned long long)r->count,
					 ram->domid, strerror(-ret));
			}
			for (uint64_t j = 0; !ret && j < r->count; j++)
				if (errs[j]) {
					ret = -EFAULT;
					snprintf(why, why_len,
						 "frame %#llx of domain %u is not there (%s)",
						 (unsigned long long)(r->first + j), ram->domid,
						 strerror(errs[j] < 0 ? -errs[j] : errs[j]));
				}
		}
		free(pfns);
		free(errs);
	}
	return ret;
}

int xen_ram_add_regions(const struct xen_ram *ram, rmig_session_t *session)
{
	for (uint32_t i = 0; i < ram->layout->nranges; i++) {
		int ret =
			rmig_region_add(session, i, ram->maps[i],
					ram->layout->ranges[i].count * XEN_RAM_PAGE, XEN_RAM_PAGE);

		if (ret)
			return ret;
	}
	return 0;
}

int xen_ram_frame_present(struct xen_ram *ram, uint64_t pfn)
{
	xen_pfn_t type = pfn;

	if (xc_get_pfn_type_batch(ram->xch, ram->domid, 1, &type))
		return errno ? -errno : -EIO;
	return xen_ram_frame_populated(type);
}

/* ---- log-dirty ---- */

static int xen_ram_logdirty_start(struct xen_ram *ram)
{
	DECLARE_HYPERCALL_BUFFER_SHADOW(unsigned long, bitmap, &ram->hbuf);
	int ret = xen_dirty_init(&ram->dirty, ram->layout, ram->p2m_size);

	if (ret)
		return ret;
	bitmap = xc_hypercall_buffer_alloc_pages(ram->xch, bitmap,
						 xen_ram_bitmap_pages(ram->p2m_size));
	if (!bitmap)
		return -ENOMEM;
	if (xc_shadow_control(ram->xch, ram->domid, XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY, NULL, 0) <
	    0) {
		/* Left on by a migration that died: off, then on again (as libxc does). */
		if (xc_shadow_control(ram->xch, ram->domid, XEN_DOMCTL_SHADOW_OP_OFF, NULL, 0) <
			    0 ||
		    xc_shadow_control(ram->xch, ram->domid, XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY,
				      NULL, 0) < 0)
			return errno ? -errno : -EIO;
	}
	ram->logdirty = 1;
	return 0;
}

static int xen_ram_harvest(struct xen_ram *ram)
{
	DECLARE_HYPERCALL_BUFFER_SHADOW(unsigned long, bitmap, &ram->hbuf);
	xc_shadow_op_stats_t stats;

	if (xc_logdirty_control(ram->xch, ram->domid, XEN_DOMCTL_SHADOW_OP_CLEAN,
				HYPERCALL_BUFFER(bitmap), ram->p2m_size, 0, &stats) < 0)
		return errno ? -errno : -EIO;
	ram->harvested += xen_dirty_add_harvest(&ram->dirty, bitmap);
	ram->harvests++;
	return 0;
}

int xen_ram_dirty_sync(struct xen_ram *ram, uint32_t index, uint64_t *bitmap, size_t npages)
{
	int ret;

	if (!ram->layout || index >= ram->layout->nranges ||
	    npages != ram->layout->ranges[index].count)
		return -EINVAL;
	if (!ram->logdirty) {
		ret = xen_ram_logdirty_start(ram);
		if (ret)
			return ret;
	}
	if (xen_dirty_needs_harvest(&ram->dirty, index)) {
		ret = xen_ram_harvest(ram);
		if (ret)
			return ret;
	}
	xen_dirty_take(&ram->dirty, index, bitmap);
	return 0;
}

/* ---- libxc's stream without page data ---- */

static int xen_ram_cpu_policy(struct xen_ram *ram, struct xen_buf *out)
{
	uint32_t nr_leaves = 0, nr_msrs = 0;
	xen_cpuid_leaf_t *leaves = NULL;
	xen_msr_entry_t *msrs = NULL;
	xc_cpu_policy_t *policy = NULL;
	int ret = -EIO;

	if (xc_cpu_policy_get_size(ram->xch, &nr_leaves, &nr_msrs) < 0)
		return errno ? -errno : -EIO;
	leaves = calloc(nr_leaves ? nr_leaves : 1, sizeof(*leaves));
	msrs = calloc(nr_msrs ? nr_msrs : 1, sizeof(*msrs));
	policy = xc_cpu_policy_init();
	if (!leaves || !msrs || !policy) {
		ret = -ENOMEM;
		goto out;
	}
	if (xc_cpu_policy_get_domain(ram->xch, ram->domid, policy) ||
	    xc_cpu_policy_serialise(ram->xch, policy, leaves, &nr_leaves, msrs, &nr_msrs)) {
		ret = errno ? -errno : -EIO;
		goto out;
	}
	ret = 0;
	if (nr_leaves)
		ret = xen_ram_record(out, LIBXC_REC_CPUID_POLICY, leaves,
				     nr_leaves * sizeof(*leaves), NULL, 0);
	if (!ret && nr_msrs)
		ret = xen_ram_record(out, LIBXC_REC_MSR_POLICY, msrs, nr_msrs * sizeof(*msrs), NULL,
				     0);
out:
	free(leaves);
	free(msrs);
	if (policy)
		xc_cpu_policy_destroy(policy);
	return ret;
}

int xen_ram_write_libxc_head(struct xen_ram *ram, struct xen_buf *out)
{
	struct {
		uint64_t marker;
		uint32_t id, version;
		uint16_t options, reserved1;
		uint32_t reserved2;
	} ihdr = {
		.marker = LIBXC_IHDR_MARKER,
		.id = htonl(LIBXC_IHDR_ID),
		.version = htonl(LIBXC_IHDR_VERSION),
		.options = htons(0), /* little-endian records */
	};
	struct {
		uint32_t type;
		uint16_t page_shift, reserved;
		uint32_t xen_major, xen_minor;
	} dhdr = {.type = LIBXC_DHDR_TYPE_X86_HVM, .page_shift = 12};
	uint64_t words[1 + XEN_RAM_XALLOC_BATCH];
	int version, ret;

	_Static_assert(sizeof(ihdr) == 24 && sizeof(dhdr) == 16, "libxc's header layout");
	version = xc_version(ram->xch, XENVER_version, NULL);
	if (version < 0)
		return errno ? -errno : -EIO;
	dhdr.xen_major = (uint32_t)version >> 16;
	dhdr.xen_minor = (uint32_t)version & 0xffffu;
	ret = xen_buf_put(out, &ihdr, sizeof(ihdr));
	if (!ret)
		ret = xen_buf_put(out, &dhdr, sizeof(dhdr));
	if (!ret)
		ret = xen_ram_cpu_policy(ram, out);
	if (!ret)
		ret = xen_ram_record(out, LIBXC_REC_STATIC_DATA_END, NULL, 0, NULL, 0);
	/* PAGE_DATA: u32 count, u32 reserved, then per frame (type << 32 | frame); XALLOC
	 * carries no page. */
	for (uint32_t i = 0; !ret && i < ram->layout->nranges; i++) {
		const struct xen_own_ram_range *r = &ram->layout->ranges[i];

		for (uint64_t done = 0; !ret && done < r->count;) {
			uint32_t n = (uint32_t)(r->count - done < XEN_RAM_XALLOC_BATCH
							? r->count - done
							: XEN_RAM_XALLOC_BATCH);

			words[0] = n; /* count, then 32 reserved bits */
			for (uint32_t j = 0; j < n; j++)
				words[1 + j] = (uint64_t)XEN_DOMCTL_PFINFO_XALLOC
						       << LIBXC_PAGE_TYPE_SHIFT |
					       (r->first + done + j);
			ret = xen_ram_record(out, LIBXC_REC_PAGE_DATA, words,
					     (1u + n) * sizeof(uint64_t), NULL, 0);
			done += n;
		}
	}
	return ret;
}

int xen_ram_write_libxc_tail(struct xen_ram *ram, struct xen_buf *out)
{
	/* What xc_domain_save sends of an HVM domain's parameters (xg_sr_save_x86_hvm.c), those
	 * that are set. */
	static const uint32_t params[] = {
		HVM_PARAM_STORE_PFN,
		HVM_PARAM_IOREQ_PFN,
		HVM_PARAM_BUFIOREQ_PFN,
		HVM_PARAM_PAGING_RING_PFN,
		HVM_PARAM_MONITOR_RING_PFN,
		HVM_PARAM_SHARING_RING_PFN,
		HVM_PARAM_VM86_TSS_SIZED,
		HVM_PARAM_CONSOLE_PFN,
		HVM_PARAM_ACPI_IOPORTS_LOCATION,
		HVM_PARAM_VIRIDIAN,
		HVM_PARAM_IDENT_PT,
		HVM_PARAM_VM_GENERATION_ID_ADDR,
		HVM_PARAM_IOREQ_SERVER_PFN,
		HVM_PARAM_NR_IOREQ_SERVER_PAGES,
		HVM_PARAM_X87_FIP_WIDTH,
		HVM_PARAM_MCA_CAP,
	};
	struct {
		uint32_t mode, khz;
		uint64_t nsec;
		uint32_t incarnation, reserved;
	} tsc = {0};
	struct {
		uint64_t index, value;
	} entries[sizeof(params) / sizeof(params[0])];
	struct {
		uint32_t count, reserved;
	} hdr = {0};
	uint8_t *context = NULL;
	int size, ret;

	_Static_assert(sizeof(tsc) == 24, "libxc's TSC_INFO layout");
	if (xc_domain_get_tsc_info(ram->xch, ram->domid, &tsc.mode, &tsc.nsec, &tsc.khz,
				   &tsc.incarnation) < 0)
		return errno ? -errno : -EIO;
	ret = xen_ram_record(out, LIBXC_REC_TSC_INFO, &tsc, sizeof(tsc), NULL, 0);
	if (ret)
		return ret;
	size = xc_domain_hvm_getcontext(ram->xch, ram->domid, NULL, 0);
	if (size <= 0)
		return errno ? -errno : -EIO;
	context = malloc((size_t)size);
	if (!context)
		return -ENOMEM;
	size = xc_domain_hvm_getcontext(ram->xch, ram->domid, context, (uint32_t)size);
	if (size <= 0)
		ret = errno ? -errno : -EIO;
	else
		ret = xen_ram_record(out, LIBXC_REC_HVM_CONTEXT, context, (size_t)size, NULL, 0);
	free(context);
	for (size_t i = 0; !ret && i < sizeof(params) / sizeof(params[0]); i++) {
		uint64_t value = 0;

		if (xc_hvm_param_get(ram->xch, ram->domid, params[i], &value))
			ret = errno ? -errno : -EIO;
		else if (value)
			entries[hdr.count].index = params[i], entries[hdr.count++].value = value;
	}
	if (!ret && hdr.count)
		ret = xen_ram_record(out, LIBXC_REC_HVM_PARAMS, &hdr, sizeof(hdr), entries,
				     hdr.count * sizeof(entries[0]));
	if (!ret)
		ret = xen_ram_record(out, LIBXC_REC_END, NULL, 0, NULL, 0);
	return ret;
}
