/* SPDX-License-Identifier: MIT */
/* Device state is a byte stream the engine carries after the pause (Xen's whole migration
 * stream rides on it, tens of MiB): every byte arrives once, in order, whatever the sizes the
 * hypervisor hands over, while the guest's pages and both sides' heartbeats share the
 * connection. Over tcp with a key this runs TLS psk, the default. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "integration/engine_harness.h"

#define RAM_BYTES (8u << 20)
#define DEVICE_STATE_BYTES (48u << 20)

struct device_state {
	uint64_t read;	   /* source: bytes handed to the engine */
	uint64_t written;  /* destination: bytes received */
	uint64_t mismatch; /* destination: offset + 1 of the first wrong byte, 0: none */
	uint64_t chunks;   /* destination: how many writes */
	uint64_t rng;	   /* source: chunk sizes */
};

static struct device_state device;

static uint64_t splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* The stream's byte at offset: a function of where it stands, so a byte out of place shows. */
static uint8_t stream_byte(uint64_t offset)
{
	return (uint8_t)(splitmix64(offset >> 3) >> (8 * (offset & 7)));
}

/* Chunks of every size from 1 byte to the whole buffer, most of them odd-sized. */
static int device_read(struct harness *h, void *buf, size_t len)
{
	uint64_t left = DEVICE_STATE_BYTES - device.read;
	size_t n;

	(void)h;
	if (!left)
		return 0;
	device.rng = splitmix64(device.rng);
	switch (device.rng % 4) {
	case 0:
		n = len;
		break;
	case 1:
		n = 1 + (size_t)(device.rng >> 8) % 64;
		break;
	default:
		n = 1 + (size_t)(device.rng >> 8) % len;
		break;
	}
	if (n > left)
		n = (size_t)left;
	for (size_t i = 0; i < n; i++)
		((uint8_t *)buf)[i] = stream_byte(device.read + i);
	device.read += n;
	return (int)n;
}

static int device_write(struct harness *h, const void *buf, size_t len)
{
	(void)h;
	for (size_t i = 0; i < len && !device.mismatch; i++)
		if (((const uint8_t *)buf)[i] != stream_byte(device.written + i))
			device.mismatch = device.written + i + 1;
	device.written += len;
	device.chunks++;
	return 0;
}

static void test_device_state_arrives_whole_and_in_order(void **state)
{
	struct rmig_stats st = {.struct_size = sizeof(st)};
	struct harness h;

	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	device = (struct device_state){.rng = 42};
	harness_init(&h, harness_transport, RAM_BYTES, 0);
	h.on_device_state_read = device_read;
	h.on_device_state_write = device_write;
	harness_sessions(&h);
	harness_writer_start(&h);
	harness_run(&h);

	assert_int_equal(h.src_ret, 0);
	assert_int_equal(h.dst_ret, 0);
	assert_int_equal(device.read, DEVICE_STATE_BYTES);
	if (device.mismatch)
		print_message("first wrong byte at offset %llu of %llu, in %llu chunks\n",
			      (unsigned long long)(device.mismatch - 1),
			      (unsigned long long)device.written,
			      (unsigned long long)device.chunks);
	assert_int_equal(device.mismatch, 0);
	assert_int_equal(device.written, DEVICE_STATE_BYTES);
	assert_int_equal(rmig_session_stats(h.src, &st), 0);
	assert_int_equal(st.device_state_bytes, DEVICE_STATE_BYTES);
	assert_int_equal(rmig_session_stats(h.dst, &st), 0);
	assert_int_equal(st.device_state_bytes, DEVICE_STATE_BYTES);
	assert_memory_equal(h.src_ram, h.dst_ram, h.src_length);
	harness_fini(&h);
}

HARNESS_MAIN(cmocka_unit_test(test_device_state_arrives_whole_and_in_order))
