/* SPDX-License-Identifier: MIT */
/* bindings/xen/xen_restore.c - `rmig-xen-restore`: the destination of every depth of
 * docs/xen.md. For depths 1 and 2 it is `rmig xen-recv`; for depth 3 (rmig-xen-save
 * --method) it also maps the new domain's memory for rmig's RAM session, which needs Xen's
 * libraries (hence its own program):
 *
 *   rmig-xen-restore --listen tcp://0.0.0.0:7300 [xen-recv's options]
 *
 * Once the head of Xen's stream has gone to `xl migrate-receive`, its libxc builds the domain
 * (NAME--incoming) and populates the frames the head lists (PAGE_DATA records of type
 * XALLOC: memory without contents). Nothing tells another process when that is done, so
 * prepare() looks, every 10 ms up to --timeout-ms, for the domain and the last frame of the
 * list (libxc populates the records in order), and stops at once if xl exits. Then it maps
 * every frame writable: the regions rmig writes the RAM into. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include <libxl.h>
#include <libxl_utils.h>
#include <xentoollog.h>

#include "bindings/xen/xen_ram.h"
#include "bindings/xen/xen_recv.h"

#define XEN_RESTORE_LOOK_MS 10u

struct xen_restore {
	xentoollog_logger_stdiostream *logger;
	libxl_ctx *ctx;
	xc_interface *xch;
	struct xen_ram ram;
	int ram_open;
};

static uint64_t xen_restore_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int xen_restore_xl_exited(const struct xen_recv *x)
{
	siginfo_t info = {0};

	return waitid(P_PID, (id_t)x->xl, &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
	       info.si_pid == x->xl;
}

static int xen_restore_prepare(struct xen_recv *x, const struct xen_own_ram_header *layout)
{
	struct xen_restore *r = x->own_ram->data;
	const struct xen_own_ram_range *last = &layout->ranges[layout->nranges - 1];
	uint64_t start = xen_restore_now_ms(), deadline = start + x->options.timeout_ms;
	char name[XEN_OWN_RAM_NAME_MAX + 16], why[160] = "";
	uint32_t domid = 0;
	int ret;

	snprintf(name, sizeof(name), "%s--incoming", layout->name);
	for (;;) {
		if (!r->ram_open && !libxl_name_to_domid(r->ctx, name, &domid)) {
			ret = xen_ram_open(&r->ram, r->xch, domid);
			if (ret) {
				xen_cli_say(&x->options, "cannot map domain memory: %s",
					    strerror(-ret));
				return ret;
			}
			r->ram_open = 1;
			r->ram.layout = malloc(sizeof(*layout));
			if (!r->ram.layout)
				return -ENOMEM;
			memcpy(r->ram.layout, layout, sizeof(*layout));
		}
		if (r->ram_open) {
			ret = xen_ram_frame_present(&r->ram, last->first + last->count - 1);
			if (ret == 1)
				break;
		}
		if (xen_restore_xl_exited(x)) {
			xen_cli_say(&x->options,
				    "xl migrate-receive exited before it built the domain");
			return -EIO;
		}
		if (xen_restore_now_ms() >= deadline) {
			xen_cli_say(&x->options,
				    "domain %s's memory was not populated within %u ms (%s)", name,
				    x->options.timeout_ms,
				    r->ram_open ? "the domain exists" : "no such domain");
			return -ETIMEDOUT;
		}
		nanosleep(&(struct timespec){0, XEN_RESTORE_LOOK_MS * 1000000L}, NULL);
	}
	ret = xen_ram_map(&r->ram, 1, why, sizeof(why));
	if (ret) {
		xen_cli_say(&x->options, "cannot map domain %u's memory: %s", domid,
			    why[0] ? why : strerror(-ret));
		return ret;
	}
	xen_cli_say(&x->options,
		    "domain %u (%s): %llu MiB in %u ranges mapped, %llu ms after the "
		    "head arrived",
		    domid, name, (unsigned long long)(layout->pages >> 8), layout->nranges,
		    (unsigned long long)(xen_restore_now_ms() - start));
	return 0;
}

static int xen_restore_add_regions(struct xen_recv *x, rmig_session_t *session)
{
	struct xen_restore *r = x->own_ram->data;
	int ret = xen_ram_add_regions(&r->ram, session);

	if (ret)
		xen_cli_say(&x->options, "cannot add the domain's memory: %s",
			    rmig_last_error(session));
	return ret;
}

static void xen_restore_release(struct xen_recv *x)
{
	struct xen_restore *r = x->own_ram->data;

	if (r->ram_open)
		xen_ram_close(&r->ram);
	r->ram_open = 0;
}

int main(int argc, char **argv)
{
	struct xen_restore r = {0};
	struct xen_recv_own_ram_ops ops = {
		.prepare = xen_restore_prepare,
		.add_regions = xen_restore_add_regions,
		.release = xen_restore_release,
		.data = &r,
	};
	int ret;

	r.logger = xtl_createlogger_stdiostream(stderr, XTL_WARN, 0);
	if (!r.logger)
		return 1;
	if (libxl_ctx_alloc(&r.ctx, LIBXL_VERSION, 0, (xentoollog_logger *)r.logger)) {
		fprintf(stderr, "rmig xen-recv: cannot open libxl (is this a Xen dom0?)\n");
		return 1;
	}
	r.xch = xc_interface_open((xentoollog_logger *)r.logger, NULL, 0);
	if (!r.xch) {
		fprintf(stderr, "rmig xen-recv: cannot open libxenctrl\n");
		libxl_ctx_free(r.ctx);
		return 1;
	}
	ret = xen_recv_main(argc, argv, &ops);
	xc_interface_close(r.xch);
	libxl_ctx_free(r.ctx);
	xtl_logger_destroy((xentoollog_logger *)r.logger);
	return ret;
}
