/* SPDX-License-Identifier: MIT */
/* bindings/xen/xen_recv.h - the receiving end of Xen's stream, shared by `rmig xen-recv`
 * (depths 1 and 2) and `rmig-xen-restore` (which also takes depth 3, where rmig owns the RAM
 * and needs Xen's libraries to map the new domain's memory). */
#ifndef RMIG_XEN_RECV_H
#define RMIG_XEN_RECV_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "bindings/xen/xen_cli.h"
#include "bindings/xen/xen_stream.h"

struct xen_recv;

/* Depth 3's part on this host: what a program linked with Xen's libraries does with the new
 * domain's memory. */
struct xen_recv_own_ram_ops {
	/* The head has gone to xl: wait until its libxc has populated every frame of @layout
	 * in the domain it builds (NAME--incoming), then map them writable. 0 or -errno, having
	 * said why. */
	int (*prepare)(struct xen_recv *x, const struct xen_own_ram_header *layout);
	/* Add the mapped frames to @session as regions 0..n-1, in the layout's order. */
	int (*add_regions)(struct xen_recv *x, rmig_session_t *session);
	/* Unmap (end of the migration, whatever its outcome). */
	void (*release)(struct xen_recv *x);
	void *data;
};

struct xen_recv {
	struct xen_cli_options options;
	pid_t xl;
	int to_xl;		  /* xl migrate-receive's stdin */
	int from_xl;		  /* its stdout */
	struct xen_stream stream; /* what went to xl: walked, so garbage never reaches it */
	const struct xen_recv_own_ram_ops *own_ram; /* NULL: depth 3 is refused here */

	/* the first bytes: Xen's stream, or the own-RAM header (depth 3) before it */
	uint8_t fixed[XEN_OWN_RAM_FIXED_SIZE];
	size_t fixed_have;
	uint8_t *header; /* the whole own-RAM header while it arrives */
	size_t header_len, header_have;
	int kind; /* 0: not known yet; 1: Xen's stream; 3: depth 3 */
	struct xen_own_ram_header *layout;
	int prepared; /* depth 3: the memory is mapped; the RAM session follows */
};

/* `rmig xen-recv` (@own_ram NULL) and `rmig-xen-restore`: the whole command. Exit status. */
int xen_recv_main(int argc, char **argv, const struct xen_recv_own_ram_ops *own_ram);

#endif /* RMIG_XEN_RECV_H */
