/* SPDX-License-Identifier: MIT */
/* bindings/xen/xen_save.h - rmig-xen-save's state, shared by depth 2 (xen_save.c: libxc's
 * xc_domain_save, rmig's stop rule) and depth 3 (xen_save_ram.c: rmig owns the RAM). */
#ifndef RMIG_XEN_SAVE_H
#define RMIG_XEN_SAVE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <libxl.h>
#include <xenctrl.h>
#include <xenstore.h>
#include <xentoollog.h>

#include "bindings/xen/xen_cli.h"
#include "bindings/xen/xen_policy.h"
#include "bindings/xen/xen_ram.h"
#include "bindings/xen/xen_stream.h"

#define XEN_SAVE_DEFAULT_TIMEOUT_MS 120000u
#define XEN_SAVE_ROUNDS_LOGGED 64u

struct xen_save_round {
	uint32_t iteration;
	uint32_t stop;
	uint32_t reason;
};

struct xen_save {
	struct xen_cli_options options;
	const char *domain;
	struct xen_policy rule; /* rmig's stop rule over libxc's iterations */
	int libxc_policy; /* --policy libxc: libxc's own rule (NULL callback), for comparison */

	xentoollog_logger_stdiostream *logger;
	libxl_ctx *ctx;
	xc_interface *xch;
	struct xs_handle *xsh;
	uint32_t domid;
	char *config; /* JSON, NUL included in config_len */
	uint32_t config_len;

	int pipe_read, pipe_write;
	pthread_t thread;
	int thread_started;
	int save_ret;		      /* the thread's: 0 or -errno */
	atomic_uint_fast64_t carried; /* stream bytes handed to rmig */
	atomic_int suspended;
	struct xen_stream stream;
	int renamed; /* NAME--migratedaway: the destination was about to be told to resume */

	/* the policy callback's (save thread only) */
	struct xen_save_round rounds[XEN_SAVE_ROUNDS_LOGGED];
	uint32_t nrounds, stop_iteration;

	/* depth 3 (--method): rmig owns the RAM */
	int own_ram;
	uint32_t method, verify; /* enum rmig_method, enum rmig_verify */
	struct xen_ram ram;
	struct xen_buf out; /* what device_state_read serves: the head, then the tail */
	size_t out_done;
	uint64_t head_wire_bytes; /* the first session's bytes on the wire */
	uint64_t suspend_us;	  /* when the domain was found suspended (depth 3's pause) */
};

uint64_t xen_save_now_us(void);

/* libxc's suspend callback, also depth 3's pause: 1 once the domain is suspended, else 0. */
int xen_save_suspend(void *data);

/* The callbacks of a session that carries Xen's stream, not the RAM (depth 2, and depth 3's
 * head): the one placeholder page is never written; rmig's pause stops nothing (xl's stream
 * suspends the domain at depth 2; depth 3's head runs while the domain does). */
int xen_save_dirty_sync(void *opaque, uint32_t region_id, uint64_t *bitmap, size_t npages);
int xen_save_pause_vm(void *opaque);

/* Rename the domain NAME--migratedaway (@away) or back. 0 or -EIO, having said why. */
int xen_save_rename(struct xen_save *x, int away);

/**
 * xen_save_own_ram() - depth 3: migrate the domain with rmig owning its RAM (xen_save_ram.c).
 *
 * Return: 0 when the domain runs at the destination (and was destroyed here); -errno when it
 * runs here, or, after the resume request went unanswered, may run at either end (said).
 */
int xen_save_own_ram(struct xen_save *x, uint64_t start_us);

#endif /* RMIG_XEN_SAVE_H */
