/* SPDX-License-Identifier: MIT */
/* transport/transport_impl.h - what transport.c needs from each backend, and what the backends
 * share beyond transport.h (deadline.h and queue.h hold the rest). Only transport/ includes
 * this. */
#ifndef RMIG_TRANSPORT_IMPL_H
#define RMIG_TRANSPORT_IMPL_H

#include <stdint.h>

#include "transport/transport.h"

extern const struct transport_ops loop_transport_ops; /* loop.c */
extern const struct transport_ops tcp_transport_ops;  /* tcp.c */
extern const struct transport_ops rdma_transport_ops; /* verbs.c */

/* Number of verbs devices with an active port (0 on hosts without RDMA). */
int rdma_transport_device_count(void);

/* Which of nstreams streams (rdma: queue pairs, tcp: data sockets) carries block number block
 * of region_id. Consecutive blocks go to consecutive streams and a block always to the same
 * one, so bytes sent again travel behind their earlier copy on one ordered stream. Region ids
 * are spread by 2^64 / golden ratio so that regions do not all start on the same stream. */
#define TRANSPORT_STREAM_HASH 0x9e3779b97f4a7c15ull

static inline unsigned transport_block_stream(uint32_t region_id, uint64_t block, unsigned nstreams)
{
	return (unsigned)((block + (uint64_t)region_id * TRANSPORT_STREAM_HASH) % nstreams);
}

#endif /* RMIG_TRANSPORT_IMPL_H */
