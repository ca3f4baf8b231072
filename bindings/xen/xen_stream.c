/* SPDX-License-Identifier: MIT */
/* bindings/xen/xen_stream.c - a walker over the byte stream of `xl migrate`, to know where it
 * ends without buffering it: xl never closes the stream, it waits for the receiver's answer.
 *
 * Layout (Xen 4.17, docs/specs/libxl-migration-stream.pandoc and libxc-migration-stream.pandoc):
 *   xl:    magic[32] "Xen saved domain, xl format\n \0 \r", u32 byte order, u32 mandatory flags,
 *          u32 optional flags, u32 optional data length; then that many bytes
 *   libxl: u64 ident 0x4c6962786c466d74, u32 version 2, u32 options (big-endian);
 *          records of u32 type, u32 length, body padded to 8; LIBXC_CONTEXT (1) is followed
 *          by libxc's whole stream; END (0) ends everything
 *   libxc: u64 marker ~0, u32 ident 0x58454e46, u32 version 3, u16 options, u16 + u32
 *          reserved (big-endian); a 16-byte domain header; records as libxl's, END (0) ends it
 * Record headers are in the sender's byte order, which xl's header states (0x01020304 little
 * endian, the only order rmig reads). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "bindings/xen/xen_stream.h"

#define XL_MAGIC "Xen saved domain, xl format\n \0 \r"
#define XL_BYTEORDER 0x01020304u
#define LIBXL_IDENT 0x4c6962786c466d74ull
#define LIBXC_MARKER 0xffffffffffffffffull
#define LIBXC_IDENT 0x58454e46u
#define RECORD_END XEN_STREAM_RECORD_END
#define LIBXL_RECORD_LIBXC_CONTEXT XEN_STREAM_RECORD_LIBXC_CONTEXT
#define RECORD_OPTIONAL 0x80000000u /* libxc: a record the receiver may skip */
#define RECORD_TYPE_MAX 0x3fu
/* xl's mandatory flags (tools/xl/xl.h): the optional data holds JSON; libxl stream v2 */
#define XL_MANDATORY_FLAG_JSON (1u << 0)
#define XL_MANDATORY_FLAG_STREAMV2 (1u << 1)

static const size_t xen_stream_header_size[] = {
	[XEN_STREAM_XL_HEADER] = 48,	[XEN_STREAM_LIBXL_HEADER] = 16,
	[XEN_STREAM_LIBXL_RECORD] = 8,	[XEN_STREAM_LIBXC_IMAGE] = 24,
	[XEN_STREAM_LIBXC_DOMAIN] = 16, [XEN_STREAM_LIBXC_RECORD] = 8,
};

static int xen_stream_is_body(enum xen_stream_phase phase)
{
	return phase == XEN_STREAM_XL_OPTIONAL || phase == XEN_STREAM_LIBXL_BODY ||
	       phase == XEN_STREAM_LIBXC_BODY;
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[3] | (uint32_t)p[2] << 8 | (uint32_t)p[1] << 16 | (uint32_t)p[0] << 24;
}

static uint64_t get_be64(const uint8_t *p)
{
	return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
}

static void xen_stream_enter(struct xen_stream *stream, enum xen_stream_phase phase)
{
	stream->phase = phase;
	stream->have = 0;
	stream->remaining = phase == XEN_STREAM_END ? 0 : xen_stream_header_size[phase];
}

/* A body of @length bytes padded to 8 (0: straight to @after). */
static void xen_stream_body(struct xen_stream *stream, enum xen_stream_phase body,
			    enum xen_stream_phase after, uint64_t length)
{
	if (length == 0) {
		xen_stream_enter(stream, after);
		return;
	}
	stream->phase = body;
	stream->after = after;
	stream->remaining = length;
}

static int xen_stream_refuse(struct xen_stream *stream, const char *what)
{
	snprintf(stream->error, sizeof(stream->error),
		 "not Xen's migration stream at byte %llu: %s",
		 (unsigned long long)(stream->bytes - stream->have), what);
	return -EPROTO;
}

/* A whole header is in stream->header: check it and move on. */
static int xen_stream_header_done(struct xen_stream *stream)
{
	const uint8_t *h = stream->header;
	uint32_t type, length;

	switch (stream->phase) {
	case XEN_STREAM_XL_HEADER:
		if (memcmp(h, XL_MAGIC, 32))
			return xen_stream_refuse(stream, "no xl header magic");
		if (get_le32(h + 32) != XL_BYTEORDER)
			return xen_stream_refuse(stream, "xl header not little-endian");
		xen_stream_body(stream, XEN_STREAM_XL_OPTIONAL, XEN_STREAM_LIBXL_HEADER,
				get_le32(h + 44));
		return 0;
	case XEN_STREAM_LIBXL_HEADER:
		if (get_be64(h) != LIBXL_IDENT)
			return xen_stream_refuse(stream, "no libxl stream ident");
		if (get_be32(h + 8) != 2)
			return xen_stream_refuse(stream, "libxl stream version is not 2");
		if (get_be32(h + 12) & 1)
			return xen_stream_refuse(stream, "libxl stream is big-endian");
		xen_stream_enter(stream, XEN_STREAM_LIBXL_RECORD);
		return 0;
	case XEN_STREAM_LIBXC_IMAGE:
		if (get_be64(h) != LIBXC_MARKER || get_be32(h + 8) != LIBXC_IDENT)
			return xen_stream_refuse(stream, "no libxc image header");
		if (get_be32(h + 12) != 3)
			return xen_stream_refuse(stream, "libxc stream version is not 3");
		xen_stream_enter(stream, XEN_STREAM_LIBXC_DOMAIN);
		return 0;
	case XEN_STREAM_LIBXC_DOMAIN:
		xen_stream_enter(stream, XEN_STREAM_LIBXC_RECORD);
		return 0;
	case XEN_STREAM_LIBXL_RECORD:
	case XEN_STREAM_LIBXC_RECORD:
		type = get_le32(h);
		length = get_le32(h + 4);
		stream->record_type = type;
		/* Xen 4.17 defines libxl types 0..5 and libxc types 0..0x12 (optional ones with
		 * the top bit); a bound with room for later versions still catches a header read
		 * from the wrong place, which is what a lost or doubled byte turns it into. */
		if ((stream->phase == XEN_STREAM_LIBXC_RECORD ? type & ~RECORD_OPTIONAL : type) >
		    RECORD_TYPE_MAX)
			return xen_stream_refuse(stream, "a record type no Xen defines");
		if (stream->phase == XEN_STREAM_LIBXC_RECORD) {
			stream->libxc_records++;
			xen_stream_body(stream, XEN_STREAM_LIBXC_BODY,
					type == RECORD_END ? XEN_STREAM_LIBXL_RECORD
							   : XEN_STREAM_LIBXC_RECORD,
					((uint64_t)length + 7) & ~7ull);
		} else {
			enum xen_stream_phase after = XEN_STREAM_LIBXL_RECORD;

			if (type == RECORD_END)
				after = XEN_STREAM_END;
			else if (type == LIBXL_RECORD_LIBXC_CONTEXT)
				after = XEN_STREAM_LIBXC_IMAGE;
			xen_stream_body(stream, XEN_STREAM_LIBXL_BODY, after,
					((uint64_t)length + 7) & ~7ull);
		}
		return 0;
	default:
		return xen_stream_refuse(stream, "walker in a body with a header");
	}
}

void xen_stream_init(struct xen_stream *stream)
{
	memset(stream, 0, sizeof(*stream));
	XXH64_reset(&stream->digest, 0);
	xen_stream_enter(stream, XEN_STREAM_XL_HEADER);
}

size_t xen_stream_want(const struct xen_stream *stream, size_t room)
{
	return stream->remaining < room ? (size_t)stream->remaining : room;
}

int xen_stream_feed(struct xen_stream *stream, const uint8_t *data, size_t len)
{
	if (len > stream->remaining)
		return -EINVAL;
	XXH64_update(&stream->digest, data, len);
	stream->bytes += len;
	stream->remaining -= len;
	if (xen_stream_is_body(stream->phase)) {
		if (!stream->remaining)
			xen_stream_enter(stream, stream->after);
		return 0;
	}
	memcpy(stream->header + stream->have, data, len);
	stream->have += len;
	return stream->remaining ? 0 : xen_stream_header_done(stream);
}

int xen_stream_feed_all(struct xen_stream *stream, const uint8_t *data, size_t len)
{
	while (len) {
		size_t n = xen_stream_want(stream, len);
		int ret;

		if (!n) {
			snprintf(stream->error, sizeof(stream->error),
				 "%zu bytes after the end record of Xen's stream (%llu bytes)", len,
				 (unsigned long long)stream->bytes);
			return -EPROTO;
		}
		ret = xen_stream_feed(stream, data, n);
		if (ret)
			return ret;
		data += n;
		len -= n;
	}
	return 0;
}

uint64_t xen_stream_digest(const struct xen_stream *stream)
{
	return XXH64_digest(&stream->digest);
}

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

int xen_stream_write_xl_header(uint8_t out[XEN_STREAM_XL_HEADER_SIZE], uint32_t config_len)
{
	if (!config_len || config_len > UINT32_MAX - 4)
		return -EINVAL;
	memset(out, 0, XEN_STREAM_XL_HEADER_SIZE);
	memcpy(out, XL_MAGIC, 32);
	put_le32(out + 32, XL_BYTEORDER);
	put_le32(out + 36, XL_MANDATORY_FLAG_JSON | XL_MANDATORY_FLAG_STREAMV2);
	put_le32(out + 40, 0);		    /* optional flags */
	put_le32(out + 44, 4 + config_len); /* u32 length + the configuration */
	return 0;
}

void xen_stream_write_libxl_header(uint8_t out[XEN_STREAM_LIBXL_HEADER_SIZE])
{
	put_be32(out, (uint32_t)(LIBXL_IDENT >> 32));
	put_be32(out + 4, (uint32_t)LIBXL_IDENT);
	put_be32(out + 8, 2);  /* version */
	put_be32(out + 12, 0); /* options: little-endian records, not checkpointed */
}

void xen_stream_write_record_header(uint8_t out[XEN_STREAM_RECORD_HEADER_SIZE], uint32_t type,
				    uint32_t length)
{
	put_le32(out, type);
	put_le32(out + 4, length);
}

size_t xen_stream_head_size(uint32_t config_len)
{
	return XEN_STREAM_XL_HEADER_SIZE + 4u + (size_t)config_len + XEN_STREAM_LIBXL_HEADER_SIZE +
	       XEN_STREAM_RECORD_HEADER_SIZE;
}

long xen_stream_write_head(uint8_t *out, size_t room, const char *config, uint32_t config_len)
{
	size_t size = xen_stream_head_size(config_len), at = XEN_STREAM_XL_HEADER_SIZE;
	int ret;

	if (room < size)
		return -ENOSPC;
	ret = xen_stream_write_xl_header(out, config_len);
	if (ret)
		return ret;
	put_le32(out + at, config_len);
	at += 4;
	memcpy(out + at, config, config_len);
	at += config_len;
	xen_stream_write_libxl_header(out + at);
	at += XEN_STREAM_LIBXL_HEADER_SIZE;
	xen_stream_write_record_header(out + at, XEN_STREAM_RECORD_LIBXC_CONTEXT, 0);
	return (long)size;
}

/* ---- depth 3: the own-RAM header ---- */

static void put_le64(uint8_t *p, uint64_t v)
{
	put_le32(p, (uint32_t)v);
	put_le32(p + 4, (uint32_t)(v >> 32));
}

static uint64_t get_le64(const uint8_t *p)
{
	return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

static size_t pad8(size_t n)
{
	return (n + 7u) & ~(size_t)7u;
}

size_t xen_own_ram_header_size(size_t name_len, uint32_t nranges)
{
	return XEN_OWN_RAM_FIXED_SIZE + pad8(name_len) + (size_t)nranges * 16u;
}

/* The rules both ends hold a header to; 0 or -EPROTO. */
static int xen_own_ram_check(const struct xen_own_ram_header *h, size_t name_len)
{
	uint64_t pages = 0, end = 0;

	if (!name_len || name_len > XEN_OWN_RAM_NAME_MAX || memchr(h->name, '/', name_len) ||
	    memchr(h->name, '\0', name_len))
		return -EPROTO;
	if (!h->nranges || h->nranges > XEN_OWN_RAM_RANGES_MAX)
		return -EPROTO;
	for (uint32_t i = 0; i < h->nranges; i++) {
		const struct xen_own_ram_range *r = &h->ranges[i];

		if (!r->count || r->first < end || r->first >= XEN_OWN_RAM_FRAME_LIMIT ||
		    r->count > XEN_OWN_RAM_FRAME_LIMIT - r->first)
			return -EPROTO;
		end = r->first + r->count;
		pages += r->count;
		if (pages > XEN_OWN_RAM_PAGES_MAX)
			return -EPROTO;
	}
	return 0;
}

long xen_own_ram_header_write(uint8_t *out, size_t room, const struct xen_own_ram_header *h)
{
	size_t name_len = strnlen(h->name, sizeof(h->name)), size, at;

	if (name_len > XEN_OWN_RAM_NAME_MAX || xen_own_ram_check(h, name_len))
		return -EINVAL;
	size = xen_own_ram_header_size(name_len, h->nranges);
	if (room < size)
		return -ENOSPC;
	memset(out, 0, size);
	memcpy(out, XEN_OWN_RAM_MAGIC, XEN_OWN_RAM_MAGIC_LEN);
	put_le32(out + 8, 1);
	put_le32(out + 12, h->nranges);
	put_le32(out + 16, (uint32_t)name_len);
	memcpy(out + XEN_OWN_RAM_FIXED_SIZE, h->name, name_len);
	at = XEN_OWN_RAM_FIXED_SIZE + pad8(name_len);
	for (uint32_t i = 0; i < h->nranges; i++, at += 16) {
		put_le64(out + at, h->ranges[i].first);
		put_le64(out + at + 8, h->ranges[i].count);
	}
	return (long)size;
}

long xen_own_ram_header_size_from(const uint8_t fixed[XEN_OWN_RAM_FIXED_SIZE])
{
	uint32_t nranges = get_le32(fixed + 12), name_len = get_le32(fixed + 16);

	if (memcmp(fixed, XEN_OWN_RAM_MAGIC, XEN_OWN_RAM_MAGIC_LEN) || get_le32(fixed + 8) != 1 ||
	    !nranges || nranges > XEN_OWN_RAM_RANGES_MAX || !name_len ||
	    name_len > XEN_OWN_RAM_NAME_MAX || get_le32(fixed + 20))
		return -EPROTO;
	return (long)xen_own_ram_header_size(name_len, nranges);
}

int xen_own_ram_header_parse(const uint8_t *buf, size_t len, struct xen_own_ram_header *h)
{
	long size;
	size_t name_len, at;

	if (len < XEN_OWN_RAM_FIXED_SIZE)
		return -EPROTO;
	size = xen_own_ram_header_size_from(buf);
	if (size < 0 || (size_t)size != len)
		return -EPROTO;
	name_len = get_le32(buf + 16);
	memset(h->name, 0, sizeof(h->name));
	memcpy(h->name, buf + XEN_OWN_RAM_FIXED_SIZE, name_len);
	h->nranges = get_le32(buf + 12);
	at = XEN_OWN_RAM_FIXED_SIZE + pad8(name_len);
	for (size_t i = name_len; i < pad8(name_len); i++)
		if (buf[XEN_OWN_RAM_FIXED_SIZE + i])
			return -EPROTO;
	h->pages = 0;
	for (uint32_t i = 0; i < h->nranges; i++, at += 16) {
		h->ranges[i].first = get_le64(buf + at);
		h->ranges[i].count = get_le64(buf + at + 8);
		h->pages += h->ranges[i].count;
	}
	return xen_own_ram_check(h, name_len);
}
