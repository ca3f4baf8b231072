/* SPDX-License-Identifier: MIT */
/* engine/postcopy_dest.h - the destination's post-copy state, shared by its three files only:
 * postcopy_dest_arm.c (probe, announced pages, arming and disarming), postcopy_dest_fault.c (the
 * fault thread and what installs a page) and postcopy_dest.c (after the resume: the push
 * schedule, installs, recovery). The post-copy pull probe (postcopy_dest_pull.c) needs none of
 * it. Calls go run -> arm -> fault, never back. */
#ifndef RMIG_ENGINE_POSTCOPY_DEST_H
#define RMIG_ENGINE_POSTCOPY_DEST_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/postcopy.h"
#include "engine/session.h"

#define POSTCOPY_STAGING_ID_BASE 0x80000000u
#define POSTCOPY_WINDOW_MAX (16u * 1024u * 1024u)
#define POSTCOPY_WINDOW_INITIAL (2u * 1024u * 1024u)

struct postcopy_region {
	struct session_region *r;
	uint32_t staging_id;
	void *staging;
	int staging_registered;
	int uffd_registered;
	int shared;	     /* discard with MADV_REMOVE */
	int zeropage;	     /* UFFDIO_ZEROPAGE is offered for this range */
	uint64_t *missing;   /* not installed yet */
	uint64_t *requested; /* asked from the push, not installed yet */
	uint64_t *claimed;   /* taken by a fault, being pulled */
};

struct postcopy_waiter {
	size_t region;
	size_t page;
	uint64_t since_us;
};

struct postcopy_dest {
	struct rmig_session *s;
	struct postcopy_region *regions;
	size_t nregions;
	int uffd;
	int stop_fd;
	pthread_t fault_thread;
	int fault_thread_running;
	void *bounce; /* the fault thread's read buffer */
	size_t bounce_len;
	uint64_t *scratch; /* PROTOCOL_BITMAP_WORDS_MAX words: a push request being built */

	pthread_mutex_t lock; /* everything below */
	uint64_t missing;     /* pages not installed, all regions */
	uint64_t outstanding; /* pages requested from the push, not installed */
	size_t cursor_region; /* where the next push request starts */
	size_t cursor_page;
	struct postcopy_waiter *waiters;
	size_t nwaiters, waiters_capacity;
	uint64_t faults, fetched, pushed, stall_us;
	int error; /* the fault thread's first error */
	/* a pull failed with this (the connection is lost): faults wait for a recovery */
	int disconnected;

	uint64_t window_bytes;
	uint64_t rate_start_us, rate_start_pushed;
	uint64_t resumed_us;
};

/* Copy len bytes at src into the missing pages at dst (waking whoever waits on them); pages
 * already there are skipped. 0 or -errno. */
int postcopy_copy(int uffd, void *dst, const void *src, size_t len, size_t page_size);
/* The same with zeroes (UFFDIO_ZEROPAGE). */
int postcopy_zero(int uffd, void *dst, size_t len, size_t page_size);
/* Under pc->lock: pages [first, first + n) of region index are in (pushed: by the push, else by
 * a pull); their waiters are served and counted. */
void postcopy_installed_locked(struct postcopy_dest *pc, size_t index, size_t first, size_t n,
			       int pushed);
/* Start the fault thread: it first pulls what waiters wait for (after a recovery), then serves
 * faults until stopped. 0 or -errno. */
int postcopy_fault_thread_start(struct postcopy_dest *pc);
/* Stop it (if running) and make it startable again. */
void postcopy_fault_thread_stop(struct postcopy_dest *pc);

#endif /* RMIG_ENGINE_POSTCOPY_DEST_H */
