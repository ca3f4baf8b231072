/* SPDX-License-Identifier: MIT */
/* bindings/xen/xen_stream.c: the walker over `xl migrate`'s stream finds libxl's END record
 * however the bytes arrive, never asks for a byte past it, and refuses bytes that are not
 * Xen's stream, naming where. The streams are built here field by field, as the Xen 4.17
 * specifications (libxl stream v2, libxc stream v3) lay them out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bindings/xen/xen_stream.h"

struct builder {
	uint8_t *data;
	size_t len;
};

static void put(struct builder *b, const void *p, size_t n)
{
	b->data = realloc(b->data, b->len + n);
	assert_non_null(b->data);
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

static void put_le32(struct builder *b, uint32_t v)
{
	uint8_t p[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};

	put(b, p, 4);
}

static void put_be32(struct builder *b, uint32_t v)
{
	uint8_t p[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};

	put(b, p, 4);
}

/* A record: type, length, body of @length bytes of @fill, zero padding to 8. */
static void put_record(struct builder *b, uint32_t type, uint32_t length, uint8_t fill)
{
	uint8_t *body = calloc(1, ((size_t)length + 7) & ~(size_t)7);

	assert_non_null(body);
	memset(body, fill, length);
	put_le32(b, type);
	put_le32(b, length);
	put(b, body, ((size_t)length + 7) & ~(size_t)7);
	free(body);
}

/* xl's header and config, libxl's header, a xenstore record, libxc's stream with @pages page
 * records, libxl's END. */
static const char config[] = "{\"c_info\": {\"name\": \"rmig-domu\"}}";

static struct builder build_stream(unsigned pages)
{
	struct builder b = {0};

	put(&b, "Xen saved domain, xl format\n \0 \r", 32);
	put_le32(&b, 0x01020304);
	put_le32(&b, 3);
	put_le32(&b, 0);
	put_le32(&b, 4 + sizeof(config));
	put_le32(&b, sizeof(config));
	put(&b, config, sizeof(config));
	put_be32(&b, 0x4c696278);
	put_be32(&b, 0x6c466d74);
	put_be32(&b, 2);
	put_be32(&b, 0);
	put_record(&b, 2, 13, 0x11); /* EMULATOR_XENSTORE_DATA, padded */
	put_record(&b, 1, 0, 0);     /* LIBXC_CONTEXT: libxc's stream follows */
	put_be32(&b, 0xffffffff);
	put_be32(&b, 0xffffffff);
	put_be32(&b, 0x58454e46);
	put_be32(&b, 3);
	put_be32(&b, 0);
	put_be32(&b, 0);
	put_le32(&b, 1); /* domain header: x86 PVH, page shift 12, Xen 4.17 */
	put_le32(&b, 12);
	put_le32(&b, 4 | 17 << 16);
	put_le32(&b, 0);
	for (unsigned i = 0; i < pages; i++)
		put_record(&b, 1, 8 + 8 + 4096, (uint8_t)i); /* PAGE_DATA */
	put_record(&b, 9, 1000, 0x22);			     /* HVM_CONTEXT */
	put_record(&b, 0, 0, 0);			     /* libxc END */
	put_record(&b, 0, 0, 0);			     /* libxl END */
	return b;
}

/* Walk @b in chunks of at most @chunk bytes; returns bytes walked when the END was seen. */
static size_t walk(const struct builder *b, size_t chunk, struct xen_stream *st)
{
	size_t at = 0;

	xen_stream_init(st);
	while (st->phase != XEN_STREAM_END) {
		size_t want = xen_stream_want(st, chunk);

		assert_true(want > 0);
		assert_true(at + want <= b->len);
		assert_int_equal(xen_stream_feed(st, b->data + at, want), 0);
		at += want;
	}
	return at;
}

static void test_xen_stream_ends_exactly_at_libxl_end_record(void **state)
{
	struct builder b = build_stream(5);
	struct xen_stream st;

	(void)state;
	/* Whatever the reader's buffer, the walk stops at the last byte and asks for no more. */
	for (size_t chunk = 1; chunk <= 8192; chunk = chunk * 3 + 1) {
		assert_int_equal(walk(&b, chunk, &st), b.len);
		assert_int_equal(st.bytes, b.len);
		assert_int_equal(xen_stream_want(&st, chunk), 0);
		assert_int_equal(st.libxc_records, 5 + 2);
	}
	free(b.data);
}

static void test_xen_stream_stops_before_bytes_after_the_end(void **state)
{
	struct builder b = build_stream(1);
	size_t end = b.len;
	struct xen_stream st;

	(void)state;
	/* xl's handshake follows the stream on the same pipe: none of it may be taken. */
	put(&b, "domain is yours", 15);
	assert_int_equal(walk(&b, 65536, &st), end);
	free(b.data);
}

static void test_xen_stream_refuses_what_is_not_xl_stream(void **state)
{
	struct builder b = build_stream(1);
	struct xen_stream st;

	(void)state;
	b.data[3] ^= 0x20; /* the xl magic */
	xen_stream_init(&st);
	assert_int_equal(xen_stream_feed(&st, b.data, xen_stream_want(&st, 4096)), -EPROTO);
	assert_non_null(strstr(st.error, "xl header magic"));
	free(b.data);
}

static void test_xen_stream_refuses_a_broken_libxc_header(void **state)
{
	struct builder b = build_stream(1);
	/* where libxc's image header starts */
	size_t libxc = 48 + 4 + sizeof(config) + 16 + 8 + 16 + 8;
	struct xen_stream st;

	(void)state;
	assert_memory_equal(b.data + libxc, "\xff\xff\xff\xff\xff\xff\xff\xff", 8);
	b.data[libxc + 8] = 'Y'; /* "XENF" */
	xen_stream_init(&st);
	for (size_t at = 0;;) {
		size_t want = xen_stream_want(&st, 4096);
		int ret = xen_stream_feed(&st, b.data + at, want);

		at += want;
		if (ret) {
			assert_int_equal(ret, -EPROTO);
			assert_int_equal(at, libxc + 24);
			assert_non_null(strstr(st.error, "libxc image header"));
			break;
		}
		assert_true(at < b.len);
	}
	free(b.data);
}

static void test_xen_stream_refuses_more_than_it_asked_for(void **state)
{
	struct builder b = build_stream(1);
	struct xen_stream st;

	(void)state;
	xen_stream_init(&st);
	assert_int_equal(xen_stream_feed(&st, b.data, 49), -EINVAL);
	free(b.data);
}

/* The framing rmig-xen-save writes around libxc's stream is byte for byte what xl and libxl
 * write (the layout built field by field above). */
static void test_xen_stream_writer_frames_as_xl_and_libxl_do(void **state)
{
	struct builder want = {0}, got = {0};
	uint8_t xl[XEN_STREAM_XL_HEADER_SIZE], libxl[XEN_STREAM_LIBXL_HEADER_SIZE];
	uint8_t record[XEN_STREAM_RECORD_HEADER_SIZE];
	uint32_t config_len = sizeof(config);

	(void)state;
	put(&want, "Xen saved domain, xl format\n \0 \r", 32);
	put_le32(&want, 0x01020304);
	put_le32(&want, 3); /* JSON | STREAMv2 */
	put_le32(&want, 0);
	put_le32(&want, 4 + sizeof(config));
	put_be32(&want, 0x4c696278);
	put_be32(&want, 0x6c466d74);
	put_be32(&want, 2);
	put_be32(&want, 0);
	put_le32(&want, 1); /* LIBXC_CONTEXT, empty */
	put_le32(&want, 0);

	assert_int_equal(xen_stream_write_xl_header(xl, config_len), 0);
	put(&got, xl, sizeof(xl));
	xen_stream_write_libxl_header(libxl);
	put(&got, libxl, sizeof(libxl));
	xen_stream_write_record_header(record, XEN_STREAM_RECORD_LIBXC_CONTEXT, 0);
	put(&got, record, sizeof(record));
	assert_int_equal(got.len, want.len);
	assert_memory_equal(got.data, want.data, want.len);
	assert_int_equal(xen_stream_write_xl_header(xl, 0), -EINVAL);
	assert_int_equal(xen_stream_write_xl_header(xl, UINT32_MAX - 3), -EINVAL);

	free(want.data);
	free(got.data);
}

/* The whole head a sender writes before libxc's stream: xl's header, the configuration with its
 * length, libxl's header and LIBXC_CONTEXT; the walker reads it and then expects libxc's image
 * header, nothing missing, nothing more. */
static void test_xen_stream_head_is_what_the_walker_reads_before_libxc(void **state)
{
	size_t size = xen_stream_head_size(sizeof(config));
	uint8_t *head = malloc(size + 1);
	struct xen_stream st;

	(void)state;
	assert_non_null(head);
	assert_int_equal(size, 48 + 4 + sizeof(config) + 16 + 8);
	assert_int_equal(xen_stream_write_head(head, size - 1, config, sizeof(config)), -ENOSPC);
	assert_int_equal(xen_stream_write_head(head, size, config, 0), -EINVAL);
	assert_int_equal(xen_stream_write_head(head, size + 1, config, sizeof(config)), (long)size);
	assert_int_equal(head[48], sizeof(config)); /* the configuration's length, LE */
	assert_memory_equal(head + 52, config, sizeof(config));
	xen_stream_init(&st);
	assert_int_equal(xen_stream_feed_all(&st, head, size), 0);
	assert_int_equal(st.phase, XEN_STREAM_LIBXC_IMAGE);
	assert_int_equal(st.bytes, size);
	free(head);
}

/* The receiving end: chunks of any size, as they came off the wire. The digest is of every byte
 * (both ends print it); a byte lost in page data misaligns the records after it and is refused
 * there, before xl would read garbage; bytes past the end are refused. */
static void test_xen_stream_receiving_end_walks_any_chunks_and_refuses_a_lost_byte(void **state)
{
	struct builder b = build_stream(6);
	struct builder lost = {0};
	size_t at = 0, chunk = 1;
	struct xen_stream st;
	int ret = 0;

	(void)state;
	xen_stream_init(&st);
	while (at < b.len) {
		size_t n = chunk < b.len - at ? chunk : b.len - at;

		assert_int_equal(xen_stream_feed_all(&st, b.data + at, n), 0);
		at += n;
		chunk = chunk * 7 % 9973 + 1;
	}
	assert_int_equal(st.phase, XEN_STREAM_END);
	assert_int_equal(xen_stream_digest(&st), XXH64(b.data, b.len, 0));
	assert_int_equal(xen_stream_feed_all(&st, (const uint8_t *)"go", 2), -EPROTO);
	assert_non_null(strstr(st.error, "after the end record"));

	/* One byte of the third page record's data gone. */
	put(&lost, b.data, b.len / 2);
	put(&lost, b.data + b.len / 2 + 1, b.len - b.len / 2 - 1);
	xen_stream_init(&st);
	for (at = 0; at < lost.len && !ret; at += 4096)
		ret = xen_stream_feed_all(&st, lost.data + at,
					  lost.len - at < 4096 ? lost.len - at : 4096);
	assert_int_equal(ret, -EPROTO);
	assert_non_null(strstr(st.error, "not Xen's migration stream at byte"));
	free(lost.data);
	free(b.data);
}

/* ---- depth 3: the own-RAM header ---- */

static struct xen_own_ram_header *own_ram_example(void)
{
	struct xen_own_ram_header *h = calloc(1, sizeof(*h));

	assert_non_null(h);
	strcpy(h->name, "rmig-domu");
	h->nranges = 2;
	h->ranges[0] = (struct xen_own_ram_range){.first = 0, .count = 32768};
	h->ranges[1] = (struct xen_own_ram_range){.first = 0xfeff8, .count = 8};
	return h;
}

static void test_xen_own_ram_header_round_trips_field_by_field(void **state)
{
	struct xen_own_ram_header *h = own_ram_example(), *back = calloc(1, sizeof(*back));
	uint8_t buf[256];
	long n;

	(void)state;
	assert_non_null(back);
	n = xen_own_ram_header_write(buf, sizeof(buf), h);
	/* 24 fixed, "rmig-domu" padded to 16, two ranges of 16 */
	assert_int_equal(n, 24 + 16 + 32);
	assert_int_equal(xen_own_ram_header_size(9, 2), 72);
	assert_memory_equal(buf, "RMIGXEN3", 8);
	assert_int_equal(buf[8], 1);  /* version */
	assert_int_equal(buf[12], 2); /* ranges */
	assert_int_equal(buf[16], 9); /* name length */
	assert_memory_equal(buf + 24, "rmig-domu", 9);
	assert_int_equal(buf[24 + 16 + 16 + 0], 0xf8); /* second range's first frame, LE */
	assert_int_equal(buf[24 + 16 + 16 + 1], 0xef);
	assert_int_equal(buf[24 + 16 + 16 + 2], 0x0f);
	assert_int_equal(xen_own_ram_header_size_from(buf), n);
	assert_int_equal(xen_own_ram_header_parse(buf, (size_t)n, back), 0);
	assert_string_equal(back->name, "rmig-domu");
	assert_int_equal(back->nranges, 2);
	assert_int_equal(back->pages, 32768 + 8);
	assert_int_equal(back->ranges[1].first, 0xfeff8);
	assert_int_equal(back->ranges[1].count, 8);
	/* a byte short, a byte long: not the announced size */
	assert_int_equal(xen_own_ram_header_parse(buf, (size_t)n - 1, back), -EPROTO);
	assert_int_equal(xen_own_ram_header_write(buf, (size_t)n - 1, h), -ENOSPC);
	free(back);
	free(h);
}

static void test_xen_own_ram_header_refuses_what_would_map_wrong(void **state)
{
	struct xen_own_ram_header *h = own_ram_example(), *back = calloc(1, sizeof(*back));
	uint8_t buf[256], bad[256];
	long n;

	(void)state;
	assert_non_null(back);
	n = xen_own_ram_header_write(buf, sizeof(buf), h);
	assert_true(n > 0);
	/* Xen's own stream is not this header */
	memcpy(bad, buf, (size_t)n);
	memcpy(bad, "Xen save", 8);
	assert_int_equal(xen_own_ram_header_size_from(bad), -EPROTO);
	assert_int_equal(xen_own_ram_header_parse(bad, (size_t)n, back), -EPROTO);
	/* another version */
	memcpy(bad, buf, (size_t)n);
	bad[8] = 2;
	assert_int_equal(xen_own_ram_header_parse(bad, (size_t)n, back), -EPROTO);
	/* the ranges overlap: the second starts inside the first */
	memcpy(bad, buf, (size_t)n);
	bad[24 + 16 + 16] = 0x00, bad[24 + 16 + 17] = 0x10, bad[24 + 16 + 18] = 0;
	assert_int_equal(xen_own_ram_header_parse(bad, (size_t)n, back), -EPROTO);
	/* an empty range */
	memcpy(bad, buf, (size_t)n);
	bad[24 + 16 + 24] = 0;
	assert_int_equal(xen_own_ram_header_parse(bad, (size_t)n, back), -EPROTO);
	/* a frame past the limit */
	memcpy(bad, buf, (size_t)n);
	bad[24 + 16 + 16 + 5] = 0x01; /* first frame 2^40 + ... */
	assert_int_equal(xen_own_ram_header_parse(bad, (size_t)n, back), -EPROTO);
	/* a name with a '/' (xenstore paths are built from it) */
	memcpy(bad, buf, (size_t)n);
	bad[24 + 4] = '/';
	assert_int_equal(xen_own_ram_header_parse(bad, (size_t)n, back), -EPROTO);
	/* more ranges than rmig has regions */
	memcpy(bad, buf, (size_t)n);
	bad[12] = 0x01, bad[13] = 0x04; /* 1025 */
	assert_int_equal(xen_own_ram_header_size_from(bad), -EPROTO);
	/* the writer holds itself to the same rules */
	h->ranges[1].first = 100;
	assert_int_equal(xen_own_ram_header_write(buf, sizeof(buf), h), -EINVAL);
	h->ranges[1].first = 0xfeff8;
	h->nranges = 0;
	assert_int_equal(xen_own_ram_header_write(buf, sizeof(buf), h), -EINVAL);
	free(back);
	free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_xen_stream_ends_exactly_at_libxl_end_record),
		cmocka_unit_test(test_xen_stream_stops_before_bytes_after_the_end),
		cmocka_unit_test(test_xen_stream_refuses_what_is_not_xl_stream),
		cmocka_unit_test(test_xen_stream_refuses_a_broken_libxc_header),
		cmocka_unit_test(test_xen_stream_refuses_more_than_it_asked_for),
		cmocka_unit_test(test_xen_stream_writer_frames_as_xl_and_libxl_do),
		cmocka_unit_test(
			test_xen_stream_receiving_end_walks_any_chunks_and_refuses_a_lost_byte),
		cmocka_unit_test(test_xen_stream_head_is_what_the_walker_reads_before_libxc),
		cmocka_unit_test(test_xen_own_ram_header_round_trips_field_by_field),
		cmocka_unit_test(test_xen_own_ram_header_refuses_what_would_map_wrong),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
