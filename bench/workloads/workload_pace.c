/* SPDX-License-Identifier: MIT */
/* bench/workloads/workload_pace.c - what every workload family uses: the pacing of a shard's
 * writes (a token bucket per thread), its page count and the error log. */
#include <stdarg.h>
#include <stdio.h>

#include "bench/workloads/workload_impl.h"

void workload_log_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("rmig: error: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

bool workload_shard_pace(struct workload_shard *shard, size_t pages)
{
	struct workload *w = shard->workload;

	if (atomic_load_explicit(&w->stop, memory_order_relaxed))
		return false;
	if (shard->rate <= 0)
		return true;
	shard->pace_pages += pages;
	if (shard->pace_pages <= WORKLOAD_BURST_PAGES)
		return true;
	uint64_t due =
		shard->pace_start_ns +
		(uint64_t)((double)(shard->pace_pages - WORKLOAD_BURST_PAGES) / shard->rate * 1e9);
	for (;;) {
		uint64_t now = now_ns();

		if (now >= due)
			return true;
		if (atomic_load_explicit(&w->stop, memory_order_relaxed))
			return false;
		uint64_t wait = due - now;
		if (wait > WORKLOAD_SLEEP_SLICE_NS)
			wait = WORKLOAD_SLEEP_SLICE_NS;
		struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)wait};
		nanosleep(&ts, NULL);
	}
}

void workload_shard_count(struct workload_shard *shard, size_t pages)
{
	atomic_fetch_add_explicit(&shard->workload->pages_written, pages, memory_order_relaxed);
}
