/* SPDX-License-Identifier: MIT */
/* tests/fuzz/fuzz_wire_main.c - runs fuzz_wire.c without libFuzzer, so every build checks the
 * wire parsers: the checked-in corpus, then a fixed-seed stream of mutated valid frames.
 * Usage: fuzz_wire_regression CORPUS_DIR */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "transport/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MUTATION_ROUNDS 200000u

static const char *corpus_dir;

static void test_fuzz_wire_replays_corpus(void **state)
{
	struct dirent *entry;
	unsigned replayed = 0;
	DIR *dir;

	(void)state;
	dir = opendir(corpus_dir);
	assert_non_null(dir);
	while ((entry = readdir(dir))) {
		char path[4096];
		uint8_t buf[1 << 16];
		size_t len;
		FILE *f;

		if (entry->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", corpus_dir, entry->d_name);
		f = fopen(path, "rb");
		assert_non_null(f);
		len = fread(buf, 1, sizeof(buf), f);
		fclose(f);
		assert_int_equal(LLVMFuzzerTestOneInput(buf, len), 0);
		replayed++;
	}
	closedir(dir);
	/* An empty corpus would make this test prove nothing. */
	assert_true(replayed >= 10);
}

static uint64_t rng_state = 0x243f6a8885a308d3ull;

static uint64_t rng_next(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* One valid encoding per parser, behind its selector byte. */
static size_t seed_frame(unsigned kind, uint8_t *buf, size_t cap)
{
	uint8_t *p = buf + 1;
	size_t len = 0;

	buf[0] = (uint8_t)kind;
	switch (kind) {
	case 0:
		buf[0] = 0xf0; /* selector 0 mod 10, with a 61440-byte length limit */
		wire_hdr_to_wire((struct wire_hdr *)p, WIRE_DATA, 4096, 0);
		len = sizeof(struct wire_hdr);
		break;
	case 1:
		wire_hello_to_wire((struct wire_hello *)p, 2, TRANSPORT_CTRL_MAX, 0, 42);
		len = sizeof(struct wire_hello);
		break;
	case 2:
	case 3: {
		struct transport_run runs[2] = {{1, 0, 4096, 8192}, {2, TRANSPORT_RUN_ZERO, 0, 1}};
		struct wire_commit_host commit = {.batch_id = 7, .stream_count = 1, .nruns = 2};

		if (kind == 3)
			buf[0] = 23; /* selector 3 with room for 2 runs */
		commit.stream_bytes[0] = 8192;
		len = (size_t)wire_commit_to_wire(p, cap - 1, &commit, runs);
		break;
	}
	case 4:
		wire_data_to_wire((struct wire_data *)p, 1, 4096);
		len = sizeof(struct wire_data) + 8;
		break;
	case 5: {
		struct transport_region region = {
			.id = 3, .access = TRANSPORT_ACCESS_REMOTE_READ, .length = 1 << 20};

		wire_region_to_wire((struct wire_region *)p, &region);
		len = sizeof(struct wire_region);
		break;
	}
	case 6:
		wire_read_req_to_wire((struct wire_read_req *)p, 1, 3, 4096, 4096);
		len = sizeof(struct wire_read_req);
		break;
	case 7:
		wire_read_resp_to_wire((struct wire_read_resp *)p, 1, -34);
		len = sizeof(struct wire_read_resp);
		break;
	case 8:
		wire_credit_to_wire((struct wire_credit *)p, 16);
		len = sizeof(struct wire_credit);
		break;
	default: {
		/* A stream: hello, keyed hello, region-add, read-req. */
		struct transport_region region = {
			.id = 1, .access = TRANSPORT_ACCESS_REMOTE_WRITE, .length = 4096};

		wire_hdr_to_wire((struct wire_hdr *)p, WIRE_HELLO, sizeof(struct wire_hello), 0);
		wire_hello_to_wire((struct wire_hello *)(p + 16), 1, TRANSPORT_CTRL_MAX, 0, 1);
		len = 16 + sizeof(struct wire_hello);
		/* a keyed hello: hello, then its key proof */
		wire_hdr_to_wire((struct wire_hdr *)(p + len), WIRE_HELLO,
				 sizeof(struct wire_hello) + sizeof(struct wire_hello_key), 0);
		wire_hello_to_wire((struct wire_hello *)(p + len + 16), 1, TRANSPORT_CTRL_MAX, 0,
				   1);
		wire_hello_key_to_wire(
			(struct wire_hello_key *)(p + len + 16 + sizeof(struct wire_hello)),
			WIRE_HELLO_KEY_CHALLENGE, NULL, NULL);
		len += 16 + sizeof(struct wire_hello) + sizeof(struct wire_hello_key);
		wire_hdr_to_wire((struct wire_hdr *)(p + len), WIRE_REGION_ADD,
				 sizeof(struct wire_region), 0);
		wire_region_to_wire((struct wire_region *)(p + len + 16), &region);
		len += 16 + sizeof(struct wire_region);
		wire_hdr_to_wire((struct wire_hdr *)(p + len), WIRE_READ_REQ,
				 sizeof(struct wire_read_req), 0);
		wire_read_req_to_wire((struct wire_read_req *)(p + len + 16), 5, 1, 0, 4096);
		len += 16 + sizeof(struct wire_read_req);
		break;
	}
	}
	return len + 1;
}

static void test_fuzz_wire_survives_mutated_frames(void **state)
{
	static uint8_t buf[4096];

	(void)state;
	for (unsigned round = 0; round < MUTATION_ROUNDS; round++) {
		size_t len = seed_frame(round % 10, buf, sizeof(buf));
		unsigned mutations = 1 + (unsigned)(rng_next() % 4);

		for (unsigned m = 0; m < mutations; m++) {
			uint64_t r = rng_next();
			size_t at = 1 + (size_t)(r >> 8) % (len > 1 ? len - 1 : 1);

			switch (r % 6) {
			case 0: /* flip a bit */
				buf[at] ^= (uint8_t)(1u << ((r >> 40) % 8));
				break;
			case 1: /* an interesting byte */
				buf[at] = (const uint8_t[]){0, 1, 0x7f, 0x80, 0xff}[(r >> 40) % 5];
				break;
			case 2: /* all ones from here, as a huge length or offset would be */
				memset(buf + at, 0xff, (len - at) < 8 ? len - at : 8);
				break;
			case 3: /* cut short */
				len = at;
				break;
			case 4: /* grow with garbage */
				if (len + 8 < sizeof(buf)) {
					for (int i = 0; i < 8; i++)
						buf[len + (size_t)i] = (uint8_t)(r >> (8 * i));
					len += 8;
				}
				break;
			default: /* another selector */
				buf[0] = (uint8_t)(r >> 32);
				break;
			}
		}
		assert_int_equal(LLVMFuzzerTestOneInput(buf, len), 0);
	}
}

static void test_fuzz_wire_accepts_every_seed(void **state)
{
	static uint8_t buf[4096];

	(void)state;
	/* The seeds are valid: the invariant checks run on the accept path, not only on refusals. */
	for (unsigned kind = 0; kind < 10; kind++) {
		size_t len = seed_frame(kind, buf, sizeof(buf));

		assert_true(len > 1);
		assert_int_equal(LLVMFuzzerTestOneInput(buf, len), 0);
	}
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fuzz_wire_accepts_every_seed),
		cmocka_unit_test(test_fuzz_wire_replays_corpus),
		cmocka_unit_test(test_fuzz_wire_survives_mutated_frames),
	};

	if (argc != 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
		return 2;
	}
	corpus_dir = argv[1];
	return cmocka_run_group_tests_name("fuzz_wire", tests, NULL, NULL);
}
