/* SPDX-License-Identifier: MIT */
/* bindings/xen/xen_stream.h - what `rmig xen-send` and `rmig xen-recv` know of Xen's migration:
 * the framing of the stream `xl migrate` writes (xl's header, libxl's stream v2 with libxc's
 * stream v3 inside), walked only to find where it ends, and xl's handshake messages. */
#ifndef RMIG_XEN_STREAM_H
#define RMIG_XEN_STREAM_H

#include <stddef.h>
#include <stdint.h>

#define XXH_STATIC_LINKING_ONLY /* XXH64_state_t inside struct xen_stream */
#include <xxhash.h>

/* xl's messages around the stream (tools/xl/xl.h). The banner is sent without its NUL; the
 * other three with it. After the report comes one status byte: 0 = the domain runs there. */
#define XEN_XL_BANNER "xl migration receiver ready, send binary domain data.\n"
#define XEN_XL_BANNER_LEN (sizeof(XEN_XL_BANNER) - 1)
#define XEN_XL_READY "domain received, ready to unpause"
#define XEN_XL_GO "domain is yours, you are cleared to unpause"
#define XEN_XL_REPORT "my copy unpause results are as follows"

enum xen_stream_phase {
	XEN_STREAM_XL_HEADER,	 /* 32-byte magic, byte order, flags, optional data length */
	XEN_STREAM_XL_OPTIONAL,	 /* xl's optional data (the domain's configuration) */
	XEN_STREAM_LIBXL_HEADER, /* ident "LibxlFmt", version, options (big-endian) */
	XEN_STREAM_LIBXL_RECORD, /* type, length */
	XEN_STREAM_LIBXL_BODY,	 /* length bytes padded to 8 */
	XEN_STREAM_LIBXC_IMAGE,	 /* marker, ident "XENF", version, options (big-endian) */
	XEN_STREAM_LIBXC_DOMAIN, /* domain header */
	XEN_STREAM_LIBXC_RECORD, /* type, length */
	XEN_STREAM_LIBXC_BODY,
	XEN_STREAM_END, /* libxl's END record has been read: nothing follows */
};

/* A walker over the stream as it passes: it never holds more than one header. */
struct xen_stream {
	enum xen_stream_phase phase;
	enum xen_stream_phase after; /* what follows the body being skipped */
	uint32_t record_type;	     /* of the last record header */
	uint64_t remaining;	     /* bytes left of the current header or body */
	size_t have;		     /* header bytes collected */
	uint8_t header[48];
	uint64_t bytes;		/* walked so far */
	uint64_t libxc_records; /* libxc records seen (page data, vCPU state, ...) */
	XXH64_state_t digest;	/* of every byte walked: both ends print it */
	char error[160];
};

void xen_stream_init(struct xen_stream *stream);

/* How many bytes the walker may take next without reading past a header it must look at:
 * at most @room. 0 once the stream has ended. */
size_t xen_stream_want(const struct xen_stream *stream, size_t room);

/**
 * xen_stream_feed() - walk over @len bytes (at most what xen_stream_want() allowed).
 *
 * Return: 0; -EPROTO when the bytes are not Xen's stream (stream->error says where and why);
 * -EINVAL when @len exceeds what was allowed.
 */
int xen_stream_feed(struct xen_stream *stream, const uint8_t *data, size_t len);

/**
 * xen_stream_feed_all() - walk over @len bytes as they arrived (any size): the receiving end's
 * check that what it hands xl is Xen's stream, whole.
 *
 * Return: 0; -EPROTO when the bytes are not Xen's stream or go on past its end (stream->error
 * says at which byte and why).
 */
int xen_stream_feed_all(struct xen_stream *stream, const uint8_t *data, size_t len);

/* XXH64 of the bytes walked so far: the two ends of a migration print it, and must agree. */
uint64_t xen_stream_digest(const struct xen_stream *stream);

/* Writing the framing around libxc's stream, as xl and libxl write it, for a sender that calls
 * xc_domain_save itself (rmig-xen-save): xl's header (48 bytes) announcing @config_len bytes of
 * the domain's JSON configuration (its NUL included), which follow as u32 length + bytes;
 * libxl's stream header (16 bytes); a libxl record header (8 bytes, body length @length). */
#define XEN_STREAM_XL_HEADER_SIZE 48u
#define XEN_STREAM_LIBXL_HEADER_SIZE 16u
#define XEN_STREAM_RECORD_HEADER_SIZE 8u
#define XEN_STREAM_RECORD_END 0u
#define XEN_STREAM_RECORD_LIBXC_CONTEXT 1u

/* Return: 0; -EINVAL when @config_len is 0 or the optional data would not fit 32 bits. */
int xen_stream_write_xl_header(uint8_t out[XEN_STREAM_XL_HEADER_SIZE], uint32_t config_len);
void xen_stream_write_libxl_header(uint8_t out[XEN_STREAM_LIBXL_HEADER_SIZE]);
void xen_stream_write_record_header(uint8_t out[XEN_STREAM_RECORD_HEADER_SIZE], uint32_t type,
				    uint32_t length);

/* Everything a sender writes before libxc's stream: xl's header announcing the configuration,
 * its length (u32) and the @config_len bytes of @config (its NUL included), libxl's stream
 * header, and libxl's LIBXC_CONTEXT record header. */
size_t xen_stream_head_size(uint32_t config_len);

/* Return: the bytes written into @out (xen_stream_head_size()); -EINVAL as
 * xen_stream_write_xl_header(); -ENOSPC when @room is too small. */
long xen_stream_write_head(uint8_t *out, size_t room, const char *config, uint32_t config_len);

/* Depth 3 (rmig owns the RAM, docs/xen.md): before Xen's stream, the source sends the header
 * below in the first session's device state, so the destination knows it must map the domain's
 * memory for rmig once its xl has built the domain:
 *   magic[8] "RMIGXEN3", u32 version 1, u32 range count, u32 name length, u32 reserved,
 *   the domain's name (no NUL) padded to 8, then per range u64 first frame, u64 frames
 * (little-endian). The ranges are the guest frames the domain has populated, ascending and
 * apart; each becomes one rmig region, with the same ids on both hosts. */
#define XEN_OWN_RAM_MAGIC "RMIGXEN3"
#define XEN_OWN_RAM_MAGIC_LEN 8u
#define XEN_OWN_RAM_FIXED_SIZE 24u
#define XEN_OWN_RAM_RANGES_MAX 1024u	     /* rmig's region limit */
#define XEN_OWN_RAM_NAME_MAX 128u	     /* a domain name, as Xen bounds it */
#define XEN_OWN_RAM_FRAME_LIMIT (1ull << 40) /* guest frames: 4 PiB of guest address */
#define XEN_OWN_RAM_PAGES_MAX (1ull << 28)   /* 1 TiB of RAM */

struct xen_own_ram_range {
	uint64_t first;
	uint64_t count;
};

struct xen_own_ram_header {
	char name[XEN_OWN_RAM_NAME_MAX + 1];
	uint32_t nranges;
	uint64_t pages;
	struct xen_own_ram_range ranges[XEN_OWN_RAM_RANGES_MAX];
};

/* Bytes the header takes for a name of @name_len bytes and @nranges ranges. */
size_t xen_own_ram_header_size(size_t name_len, uint32_t nranges);

/**
 * xen_own_ram_header_write() - the header for @h into @out (@room bytes).
 *
 * Return: its size; -EINVAL when @h breaks the rules xen_own_ram_header_parse() checks;
 * -ENOSPC when @room is too small.
 */
long xen_own_ram_header_write(uint8_t *out, size_t room, const struct xen_own_ram_header *h);

/**
 * xen_own_ram_header_size_from() - from the first XEN_OWN_RAM_FIXED_SIZE bytes, the whole
 * header's size.
 *
 * Return: the size; -EPROTO when the bytes are not such a header or announce one rmig
 * refuses (version, counts over the limits).
 */
long xen_own_ram_header_size_from(const uint8_t fixed[XEN_OWN_RAM_FIXED_SIZE]);

/**
 * xen_own_ram_header_parse() - check and decode a whole header of @len bytes.
 *
 * Return: 0; -EPROTO when it is malformed: wrong magic or version, a size that is not the
 * announced one, an empty or over-long name, a name with a NUL or '/', no range or too many,
 * an empty range, ranges not ascending or overlapping, a frame past XEN_OWN_RAM_FRAME_LIMIT,
 * more than XEN_OWN_RAM_PAGES_MAX pages in all.
 */
int xen_own_ram_header_parse(const uint8_t *buf, size_t len, struct xen_own_ram_header *h);

#endif /* RMIG_XEN_STREAM_H */
