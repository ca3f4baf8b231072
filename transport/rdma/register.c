/* SPDX-License-Identifier: MIT */
/* transport/rdma/register.c - memory registration for rdma://: a region is registered once in
 * the connection's PD (one MR, one rkey for every queue pair), whole up front (default), with
 * on-demand paging where the device supports it, or chunk by chunk on first use; regions the
 * peer may reach are announced on the send ring. Deregistration first waits for the work that
 * may still touch the region, then revokes it on the peer.
 *
 * Staged regions. The kernel pins a region's pages to register it, and it refuses mappings
 * without struct pages behind them (VM_IO|VM_PFNMAP: Xen's privcmd foreign mappings, a device
 * BAR mapped from sysfs): ibv_reg_mr then fails with EFAULT (pin_user_pages' answer for such a
 * VMA). Such a region, and with reg=copy every region, is carried *staged*: nothing is
 * registered, it is announced with WIRE_REGION_STAGED (even with no remote access, so the peer
 * knows to accept staged data from it), and post.c sends its page data as WIRE_STAGED messages
 * on the send ring, copied into a registered send slot here and out of the receive buffer into
 * the region on the peer (progress.c), one copy at each staged end. Other errors (ENOMEM from
 * RLIMIT_MEMLOCK above all) still fail the registration: they are configuration to fix, not a
 * mapping to work around. A staged region cannot be read remotely (RDMA READ needs an MR):
 * registering or granting one with REMOTE_READ is refused with -EOPNOTSUPP, before anything
 * changes, so post-copy fails before the resume. Chunked registration registers a region's
 * first chunk at once, so a mapping the kernel refuses is staged there too; a later chunk
 * refused at its first use (a region only partly pinnable) fails the connection. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transport/log.h"
#include "transport/rdma/rdma.h"

/* ---- regions ---- */

static int rdma_access_flags(struct rdma_conn *rc, unsigned access)
{
	int flags = IBV_ACCESS_LOCAL_WRITE;

	if (access & TRANSPORT_ACCESS_REMOTE_WRITE)
		flags |= IBV_ACCESS_REMOTE_WRITE;
	if (access & TRANSPORT_ACCESS_REMOTE_READ)
		flags |= IBV_ACCESS_REMOTE_READ;
	if (rc->options.reg_mode == TRANSPORT_REG_ODP)
		flags |= IBV_ACCESS_ON_DEMAND;
	return flags;
}

/* A region announcement on the send ring, with its MAC once the connection is bound to the
 * handshake. Caller holds rc->lock, which keeps announcements in the order they are sealed. */
static int rdma_send_region(struct rdma_conn *rc, enum wire_type type,
			    const struct wire_region *wire)
{
	uint8_t mac[TRANSPORT_REGION_MAC_LEN];
	size_t mac_len = transport_region_seal(&rc->base, type, wire, mac);

	return rdma_send_queue(rc, type, wire, sizeof(*wire), mac_len ? mac : NULL, mac_len, NULL,
			       NULL);
}

/* Is the region announced to the peer: it may reach it, or it must accept staged data from it? */
static int rdma_region_announced(unsigned access, unsigned flags)
{
	return (access & TRANSPORT_ACCESS_REMOTE) || (flags & TRANSPORT_REGION_STAGED);
}

/* A staged region cannot serve RDMA READs: refused, saying why, with -EOPNOTSUPP. */
static int rdma_staged_refuse_read(struct rdma_conn *rc, uint32_t id)
{
	rmig_log_error("rdma %s: region %u cannot be made remote-readable: it is carried staged "
		       "(%s), and RDMA READ needs a registration; post-copy over rdma:// needs "
		       "source memory the kernel can pin, without reg=copy",
		       rc->base.peer, id,
		       rc->options.reg_mode == TRANSPORT_REG_COPY ? "reg=copy"
								  : "the kernel would not pin it");
	return -EOPNOTSUPP;
}

/* The region is not registered but staged: say why, once per connection as a warning (later
 * regions at info). err: ibv_reg_mr's failure, or 0 under reg=copy. */
static void rdma_staged_log(struct rdma_conn *rc, uint32_t id, void *addr, size_t len, int err)
{
	if (!err) {
		rmig_log_info("rdma %s: region %u (%zu bytes): reg=copy: carried staged, through "
			      "the send ring",
			      rc->base.peer, id, len);
		return;
	}
	if (rc->staged_warned) {
		rmig_log_info("rdma %s: region %u (%zu bytes at %p): not registrable (%s): carried "
			      "staged",
			      rc->base.peer, id, len, addr, strerror(-err));
		return;
	}
	rc->staged_warned = 1;
	rmig_log_warn("rdma %s: region %u (%zu bytes at %p): the kernel will not pin it for a "
		      "memory registration (%s: a VM_IO/VM_PFNMAP mapping, such as Xen's foreign "
		      "mappings or a device BAR); carried staged: its bytes are copied through the "
		      "send ring, one copy at each staged end",
		      rc->base.peer, id, len, addr, strerror(-err));
}

/* One MR in the connection's PD serves every queue pair: a region is registered and announced
 * once, whatever the number of queue pairs. */
int rdma_transport_region_register(struct transport_conn *conn, uint32_t id, void *addr, size_t len,
				   unsigned access)
{
	struct rdma_conn *rc = rdma_conn_of(conn);
	struct transport_region region = {.id = id, .access = access, .addr = addr, .length = len};
	struct rdma_region *reg;
	struct wire_region wire;
	int staged = 0, ret;

	if (!addr || !len ||
	    (access & ~(unsigned)(TRANSPORT_ACCESS_REMOTE_WRITE | TRANSPORT_ACCESS_REMOTE_READ)))
		return -EINVAL;
	if (!transport_region_find(conn, 0, id, &region)) {
		rmig_log_error("rdma %s: region %u is already registered", conn->peer, id);
		return -EEXIST;
	}
	reg = calloc(1, sizeof(*reg));
	if (!reg)
		return -ENOMEM;
	reg->addr = addr;
	reg->length = len;
	if (rc->options.reg_mode == TRANSPORT_REG_COPY) {
		if (access & TRANSPORT_ACCESS_REMOTE_READ) {
			ret = rdma_staged_refuse_read(rc, id);
			goto err_free_reg;
		}
		staged = 1;
		rdma_staged_log(rc, id, addr, len, 0);
	} else if (rc->options.reg_mode == TRANSPORT_REG_CHUNKED &&
		   access == TRANSPORT_ACCESS_LOCAL) {
		/* Chunked registration fits only memory no peer reaches: a peer needs one rkey.
		 * The first chunk is registered now: a mapping the kernel will not pin refuses it
		 * here, with EFAULT, and the region is carried staged from the start instead of
		 * failing the connection at its first batch. */
		uintptr_t end = (uintptr_t)addr + len, first_end;

		reg->chunk_base = (uintptr_t)addr & ~(uintptr_t)(RDMA_CHUNK_SIZE - 1);
		reg->nchunks = (end - reg->chunk_base + RDMA_CHUNK_SIZE - 1) / RDMA_CHUNK_SIZE;
		reg->chunks = calloc(reg->nchunks, sizeof(*reg->chunks));
		if (!reg->chunks) {
			ret = -ENOMEM;
			goto err_free_reg;
		}
		first_end = reg->chunk_base + RDMA_CHUNK_SIZE < end
				    ? reg->chunk_base + RDMA_CHUNK_SIZE
				    : end;
		reg->chunks[0] = ibv_reg_mr(rc->pd, addr, first_end - (uintptr_t)addr,
					    IBV_ACCESS_LOCAL_WRITE);
		if (!reg->chunks[0] && errno == EFAULT) {
			free(reg->chunks);
			reg->chunks = NULL;
			reg->nchunks = 0;
			staged = 1;
			rdma_staged_log(rc, id, addr, len, -EFAULT);
		} else if (!reg->chunks[0]) {
			ret = rdma_errno_or(-ENOMEM);
			rmig_log_error(
				"rdma %s: registering the first chunk of region %u (%zu bytes "
				"at %p): %s%s",
				conn->peer, id, len, addr, strerror(-ret),
				ret == -ENOMEM ? " (RLIMIT_MEMLOCK too low?)" : "");
			goto err_free_reg;
		}
	} else {
		reg->mr = ibv_reg_mr(rc->pd, addr, len, rdma_access_flags(rc, access));
		if (!reg->mr && errno == EFAULT && !(access & TRANSPORT_ACCESS_REMOTE_READ)) {
			staged = 1;
			rdma_staged_log(rc, id, addr, len, -EFAULT);
		} else if (!reg->mr && errno == EFAULT) {
			ret = rdma_staged_refuse_read(rc, id);
			goto err_free_reg;
		} else if (!reg->mr) {
			ret = rdma_errno_or(-ENOMEM);
			rmig_log_error("rdma %s: registering region %u (%zu bytes at %p): %s%s",
				       conn->peer, id, len, addr, strerror(-ret),
				       ret == -ENOMEM ? " (RLIMIT_MEMLOCK too low?)" : "");
			goto err_free_reg;
		}
	}
	region = (struct transport_region){
		.id = id,
		.access = access,
		.addr = addr,
		.length = len,
		.remote_addr = (uintptr_t)addr,
		.rkey = reg->mr ? reg->mr->rkey : 0,
		.flags = staged ? TRANSPORT_REGION_STAGED : 0,
		.priv = reg,
	};
	pthread_mutex_lock(&rc->lock);
	ret = transport_region_add(conn, 0, &region);
	if (ret) {
		pthread_mutex_unlock(&rc->lock);
		goto err_release;
	}
	if (rdma_region_announced(access, region.flags)) {
		wire_region_to_wire(&wire, &region);
		ret = rdma_send_region(rc, WIRE_REGION_ADD, &wire);
		if (ret) {
			transport_region_remove(conn, 0, id, NULL);
			pthread_mutex_unlock(&rc->lock);
			goto err_release;
		}
	}
	pthread_mutex_unlock(&rc->lock);
	return 0;

err_release:
	rdma_region_release(reg);
	return ret;
err_free_reg:
	free(reg->chunks);
	free(reg);
	return ret;
}

/* Has every QP completed up to target[] and every ordered SEND before msgs (successfully, when
 * succeeded)? Caller holds rc->lock. */
static int rdma_drained(const struct rdma_conn *rc, const uint64_t *target, uint64_t msgs,
			int succeeded)
{
	for (unsigned s = 0; s < rc->nstreams; s++)
		if ((succeeded ? rc->streams[s].sq_succeeded : rc->streams[s].sq_completed) <
		    target[s])
			return 0;
	return msgs == 0 || rdma_send_done(rc, msgs - 1, succeeded);
}

/* Wait until every WR posted and every SEND queued so far completed; 0 when all of it
 * succeeded, even if the connection failed afterwards, else the failure. Caller holds
 * rc->lock. */
int rdma_drain_locked(struct rdma_conn *rc, const struct timespec *deadline)
{
	uint64_t target[RDMA_STREAMS_MAX];
	uint64_t msgs = rc->sends_queued;

	for (unsigned s = 0; s < rc->nstreams; s++)
		target[s] = rc->streams[s].sq_posted;
	while (!rdma_drained(rc, target, msgs, 0) && !rc->base.failed) {
		int ret = rdma_wait(rc, deadline);

		if (ret == -ETIMEDOUT && !rdma_drained(rc, target, msgs, 0))
			return ret;
	}
	/* Everything asked about completed: a peer that closed afterwards changes nothing
	 * (rmig-bw's goodbye followed by a flush raced the peer's close and reported it). */
	if (rdma_drained(rc, target, msgs, 1))
		return 0;
	return rc->base.failed ? rc->base.failed : -EIO;
}

int rdma_transport_region_deregister(struct transport_conn *conn, uint32_t id)
{
	struct rdma_conn *rc = rdma_conn_of(conn);
	struct transport_region region;
	struct wire_region wire;
	int ret;

	pthread_mutex_lock(&rc->lock);
	ret = transport_region_remove(conn, 0, id, &region);
	if (ret) {
		pthread_mutex_unlock(&rc->lock);
		rmig_log_error("rdma %s: deregistering region %u: not registered", conn->peer, id);
		return ret;
	}
	if (rdma_region_announced(region.access, region.flags) && !conn->failed) {
		wire_region_to_wire(&wire, &region);
		ret = rdma_send_region(rc, WIRE_REGION_DEL, &wire);
	}
	/* Work already posted on any QP may still read the memory: the MR lives until it
	 * completed. */
	rdma_drain_locked(rc, NULL);
	pthread_mutex_unlock(&rc->lock);
	rdma_region_release(region.priv);
	return conn->failed && ret ? ret : 0;
}

/* The MR of reg carries flags from here on: ibv_rereg_mr(IBV_REREG_MR_CHANGE_ACCESS) where the
 * provider has it (keys may stay; the pages stay pinned), else a new whole MR, registered
 * before the old one goes, so a failure leaves the region as it was. Chunked regions (local
 * only) become one whole MR. Caller holds rc->lock and has drained the work using reg. */
static int rdma_region_reregister(struct rdma_conn *rc, uint32_t id, struct rdma_region *reg,
				  int flags)
{
	struct timespec start, end;
	struct ibv_mr *mr;
	int ret;

	clock_gettime(CLOCK_MONOTONIC, &start);
	if (reg->mr) {
		ret = ibv_rereg_mr(reg->mr, IBV_REREG_MR_CHANGE_ACCESS, NULL, NULL, 0, flags);
		if (!ret) {
			clock_gettime(CLOCK_MONOTONIC, &end);
			rmig_log_info("rdma %s: region %u (%zu bytes): access changed in place in "
				      "%.3f ms",
				      rc->base.peer, id, reg->length,
				      (double)(end.tv_sec - start.tv_sec) * 1e3 +
					      (double)(end.tv_nsec - start.tv_nsec) / 1e6);
			return 0;
		}
		/* Providers without it answer IBV_REREG_MR_ERR_CMD (rxe on Debian's 6.1 kernel
		 * does) and leave the MR as it was: register anew. */
		rmig_log_info("rdma %s: region %u: changing the MR's access in place failed "
			      "(%d); registering it again",
			      rc->base.peer, id, ret);
	}
	mr = ibv_reg_mr(rc->pd, reg->addr, reg->length, flags);
	if (!mr) {
		ret = rdma_errno_or(-ENOMEM);
		rmig_log_error("rdma %s: registering region %u (%zu bytes) with its new access: %s",
			       rc->base.peer, id, reg->length, strerror(-ret));
		return ret;
	}
	if (reg->mr)
		ibv_dereg_mr(reg->mr);
	for (size_t i = 0; i < reg->nchunks; i++)
		if (reg->chunks[i])
			ibv_dereg_mr(reg->chunks[i]);
	free(reg->chunks);
	reg->chunks = NULL;
	reg->nchunks = 0;
	reg->mr = mr;
	clock_gettime(CLOCK_MONOTONIC, &end);
	rmig_log_info("rdma %s: region %u (%zu bytes): registered again with its new access in "
		      "%.3f ms",
		      rc->base.peer, id, reg->length,
		      (double)(end.tv_sec - start.tv_sec) * 1e3 +
			      (double)(end.tv_nsec - start.tv_nsec) / 1e6);
	return 0;
}

/* The NIC enforces the new access first (work in flight that uses the MR completes before it
 * changes); then the peer hears of it on the send ring: a region-del for what it had, a
 * region-add with the (possibly new) rkey for what it gets. */
int rdma_transport_region_access_set(struct transport_conn *conn, uint32_t id, unsigned access)
{
	struct rdma_conn *rc = rdma_conn_of(conn);
	struct transport_region region;
	struct rdma_region *reg;
	struct wire_region wire;
	unsigned old_access;
	int staged, ret;

	pthread_mutex_lock(&rc->lock);
	ret = transport_region_find(conn, 0, id, &region);
	if (ret)
		goto out_unlock;
	reg = region.priv;
	old_access = region.access;
	staged = region.flags & TRANSPORT_REGION_STAGED;
	if (staged && (access & ~old_access & TRANSPORT_ACCESS_REMOTE_READ)) {
		ret = rdma_staged_refuse_read(rc, id);
		goto out_unlock;
	}
	rdma_drain_locked(rc, NULL);
	/* A staged region has no MR: the receiving side's check of its access (progress.c)
	 * enforces the change once the table below has it. */
	if (!staged) {
		ret = rdma_region_reregister(rc, id, reg, rdma_access_flags(rc, access));
		if (ret)
			goto out_unlock;
		region.rkey = reg->mr->rkey;
	}
	region.access = access;
	transport_region_update(conn, 0, &region);
	if (conn->failed) { /* nothing more comes in: a revocation holds, a grant cannot be told */
		ret = access & ~old_access ? conn->failed : 0;
		goto out_unlock;
	}
	wire_region_to_wire(&wire, &region);
	if (rdma_region_announced(old_access, region.flags))
		ret = rdma_send_region(rc, WIRE_REGION_DEL, &wire);
	if (!ret && rdma_region_announced(access, region.flags))
		ret = rdma_send_region(rc, WIRE_REGION_ADD, &wire);
	if (!(access & ~old_access))
		ret = 0;
out_unlock:
	pthread_mutex_unlock(&rc->lock);
	return ret;
}

/* Local key and the longest length from addr that one SGE may cover. Caller holds rc->lock. */
int rdma_local_key(struct rdma_conn *rc, struct rdma_region *reg, char *addr, uint64_t want,
		   uint32_t *lkey_p, uint64_t *len_p)
{
	uintptr_t chunk_start, chunk_end, region_end;
	size_t index;

	if (reg->mr) {
		*lkey_p = reg->mr->lkey;
		*len_p = want;
		return 0;
	}
	index = ((uintptr_t)addr - reg->chunk_base) / RDMA_CHUNK_SIZE;
	chunk_start = reg->chunk_base + index * RDMA_CHUNK_SIZE;
	chunk_end = chunk_start + RDMA_CHUNK_SIZE;
	region_end = (uintptr_t)reg->addr + reg->length;
	if (chunk_start < (uintptr_t)reg->addr)
		chunk_start = (uintptr_t)reg->addr;
	if (chunk_end > region_end)
		chunk_end = region_end;
	if (!reg->chunks[index]) {
		reg->chunks[index] = ibv_reg_mr(rc->pd, (void *)chunk_start,
						chunk_end - chunk_start, IBV_ACCESS_LOCAL_WRITE);
		if (!reg->chunks[index]) {
			int ret = rdma_errno_or(-ENOMEM);

			return transport_conn_fail(
				&rc->base, ret,
				"registering chunk %zu (%llu bytes) on first use: "
				"%s",
				index, (unsigned long long)(chunk_end - chunk_start),
				strerror(-ret));
		}
	}
	*lkey_p = reg->chunks[index]->lkey;
	*len_p = chunk_end - (uintptr_t)addr < want ? chunk_end - (uintptr_t)addr : want;
	return 0;
}
