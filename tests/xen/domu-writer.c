/* SPDX-License-Identifier: MIT */
/* tests/xen/domu-writer.c - the Xen testbed domU's workload (PID 1's only job after boot): it
 * writes its memory at a steady rate and prints a counter, so a migration's cost shows as pages
 * that keep getting dirty and its downtime as a gap in the counter's wall clock.
 *
 *   domu-writer MIB PAGES_PER_SECOND [HOT_MIB]
 *
 * Every 100 ms it writes the next PAGES_PER_SECOND / 10 pages of a MIB-sized buffer (cyclically;
 * with HOT_MIB, of its first HOT_MIB only: a hot set rewritten over and over, the rest written
 * once)
 * and prints "rmig-domu: count N gap_ms G max_gap_ms M" once a second of ticks, where N counts
 * ticks since boot, G is the longest wall-clock gap between two ticks in the last second and M
 * the longest since boot, then "wrong W": each write stamps its page's first 8 bytes with the
 * write's number, and once a second the writer checks every page holds the stamp of the last
 * write it made there (W pages did not: a page a migration lost or left stale), then
 * "suspend_gap_ms S": the wall-clock gap of a tick in the last second that spanned a Xen suspend
 * (0 when none did). Built static by tests/xen/run. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static uint64_t now_ms(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 32;
	size_t rate = argc > 2 ? strtoul(argv[2], NULL, 10) : 1000;
	size_t pages = mib * 256, next, per_tick = rate / 10 ? rate / 10 : 1;
	size_t hot = argc > 3 ? strtoul(argv[3], NULL, 10) * 256 : pages;
	uint64_t count = 0, last, last_mono, gap_second = 0, gap_max = 0, w = 0, k = 0, pause = 0;
	unsigned char *ram = malloc(pages * 4096);
	struct timespec tick = {0, 100 * 1000 * 1000};

	if (!hot || hot > pages)
		hot = pages;
	if (!ram) {
		printf("rmig-domu: cannot allocate %zu MiB\n", mib);
		return 1;
	}
	/* The first pages writes fill every page (page j holds j); then write k of the loop,
	 * number pages + k, goes to page k % hot. */
	for (size_t i = 0; i < pages; i++)
		*(volatile uint64_t *)(ram + i * 4096) = w++;
	printf("rmig-domu: writing %zu MiB at %zu pages/s (hot set %zu MiB)\n", mib, rate,
	       hot / 256);
	fflush(stdout);
	last = now_ms(CLOCK_REALTIME);
	last_mono = now_ms(CLOCK_MONOTONIC);
	for (;;) {
		uint64_t t, t_mono, gap;

		for (size_t i = 0; i < per_tick; i++, k++) {
			next = (size_t)(k % hot);
			*(volatile uint64_t *)(ram + next * 4096) = pages + k;
			ram[next * 4096 + 8 + (count % 4088)] = (unsigned char)count;
		}
		nanosleep(&tick, NULL);
		t = now_ms(CLOCK_REALTIME);
		t_mono = now_ms(CLOCK_MONOTONIC);
		gap = t - last;
		/* Across a Xen suspend the kernel's timekeeping stops: the monotonic clock skips the
		 * time the domain was suspended, the wall clock does not. A tick whose wall gap
		 * exceeds its monotonic gap by more than a tick spanned a suspend: its wall gap is
		 * the migration's downtime as this guest lived it (freeze, suspended, thaw), apart
		 * from the gaps of a vCPU that only waited for the CPU. */
		if (gap > t_mono - last_mono + 100)
			pause = gap;
		last = t;
		last_mono = t_mono;
		gap_second = gap > gap_second ? gap : gap_second;
		gap_max = gap > gap_max ? gap : gap_max;
		if (++count % 10 == 0) {
			uint64_t wrong = 0;

			/* Page j's last write: the loop's last k that is j mod hot, else the
			 * first fill's j. */
			for (size_t j = 0; j < pages; j++) {
				uint64_t want =
					j < hot && k > j ? pages + k - 1 - (k - 1 - j) % hot : j;

				if (*(volatile uint64_t *)(ram + j * 4096) != want)
					wrong++;
			}
			printf("rmig-domu: count %llu gap_ms %llu max_gap_ms %llu wrong %llu "
			       "suspend_gap_ms %llu\n",
			       (unsigned long long)count, (unsigned long long)gap_second,
			       (unsigned long long)gap_max, (unsigned long long)wrong,
			       (unsigned long long)pause);
			fflush(stdout);
			gap_second = 0;
			pause = 0;
		}
	}
}
