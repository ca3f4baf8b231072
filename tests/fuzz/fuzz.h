/* SPDX-License-Identifier: MIT */
/* tests/fuzz/fuzz.h - what every fuzz harness here shares: the check that turns a broken
 * invariant into a crash libFuzzer reports, the exact-size copy that lets ASan see a read past
 * the input, and a log handler that keeps refusals off the terminal. */
#ifndef RMIG_TESTS_FUZZ_H
#define RMIG_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                   \
	do {                                                                               \
		if (!(cond)) {                                                             \
			fprintf(stderr, "%s:%d: broken: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                                           \
		}                                                                          \
	} while (0)

/* data[1..size) in a buffer of exactly that size (free() it), or NULL when out of memory. */
static inline uint8_t *fuzz_copy_after_selector(const uint8_t *data, size_t size)
{
	uint8_t *copy = malloc(size > 1 ? size - 1 : 1);

	if (copy && size > 1)
		memcpy(copy, data + 1, size - 1);
	return copy;
}

static inline void fuzz_quiet_log(void *opaque, int level, const char *message)
{
	(void)opaque;
	(void)level;
	(void)message;
}

#endif /* RMIG_TESTS_FUZZ_H */
