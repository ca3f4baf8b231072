/* SPDX-License-Identifier: MIT */
/* tests/xen/pipe-count.c - copies stdin to stdout unbuffered and, at end of input, writes how
 * many bytes passed to FILE: the bytes of `xl migrate`'s stream when xl's own receiver is the
 * transport. (busybox dd prints no byte count, and a buffering tee would hold back the stream's
 * last bytes while xl waits for the receiver's answer.) Built static by tests/xen/run.
 *
 *   pipe-count FILE */
#include <errno.h>
#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	static char buf[1 << 16];
	unsigned long long total = 0;
	FILE *out;

	if (argc != 2) {
		fprintf(stderr, "usage: pipe-count FILE\n");
		return 2;
	}
	for (;;) {
		ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		for (ssize_t done = 0; done < n;) {
			ssize_t w = write(STDOUT_FILENO, buf + done, (size_t)(n - done));

			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				return 1;
			done += w;
		}
		total += (unsigned long long)n;
	}
	out = fopen(argv[1], "w");
	if (!out)
		return 1;
	fprintf(out, "%llu\n", total);
	return fclose(out) ? 1 : 0;
}
