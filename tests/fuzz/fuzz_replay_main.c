/* SPDX-License-Identifier: MIT */
/* tests/fuzz/fuzz_replay_main.c - runs a libFuzzer target without libFuzzer: every input of a
 * checked-in corpus, then fixed-seed mutations of each, so every build exercises the target.
 * Usage: <test> CORPUS_DIR|INPUT_FILE [MUTATIONS_PER_INPUT] */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *corpus_dir;
static unsigned mutations_per_input = 20;

static uint64_t rng_state = 0x452821e638d01377ull;

static uint64_t rng_next(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* One input as it is, then mutations_per_input fixed-seed mutations of it. */
static void replay_file(const char *path)
{
	static uint8_t input[1 << 16], mutated[1 << 16];
	size_t len;
	FILE *f;

	f = fopen(path, "rb");
	assert_non_null(f);
	len = fread(input, 1, sizeof(input), f);
	fclose(f);
	assert_int_equal(LLVMFuzzerTestOneInput(input, len), 0);
	for (unsigned m = 0; m < mutations_per_input && len > 0; m++) {
		size_t mlen = len;

		memcpy(mutated, input, len);
		for (unsigned k = 0, n = 1 + (unsigned)(rng_next() % 3); k < n; k++) {
			uint64_t r = rng_next();
			size_t at = (size_t)(r >> 8) % mlen;

			if (r % 3 == 0)
				mutated[at] ^= (uint8_t)(1u << ((r >> 40) % 8));
			else if (r % 3 == 1)
				mutated[at] = (uint8_t)(r >> 48);
			else
				mlen = at + 1;
		}
		assert_int_equal(LLVMFuzzerTestOneInput(mutated, mlen), 0);
	}
}

static void test_fuzz_target_survives_corpus_and_mutations(void **state)
{
	struct dirent *entry;
	unsigned inputs = 0;
	DIR *dir;

	(void)state;
	dir = opendir(corpus_dir);
	if (!dir && errno == ENOTDIR) {
		replay_file(corpus_dir); /* one reproducer */
		return;
	}
	assert_non_null(dir);
	while ((entry = readdir(dir))) {
		char path[4096];

		if (entry->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", corpus_dir, entry->d_name);
		replay_file(path);
		inputs++;
	}
	closedir(dir);
	assert_true(inputs >= 5); /* an empty corpus would prove nothing */
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fuzz_target_survives_corpus_and_mutations),
	};

	if (argc < 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR|INPUT_FILE [MUTATIONS_PER_INPUT]\n", argv[0]);
		return 2;
	}
	corpus_dir = argv[1];
	if (argc > 2)
		mutations_per_input = (unsigned)strtoul(argv[2], NULL, 10);
	if (LLVMFuzzerInitialize)
		LLVMFuzzerInitialize(&argc, &argv);
	return cmocka_run_group_tests_name("fuzz_replay", tests, NULL, NULL);
}
