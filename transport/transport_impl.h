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

/* The MAC that follows a region announcement (type WIRE_REGION_ADD or _DEL, region the
 * struct wire_region as sent) on a bound connection: writes TRANSPORT_REGION_MAC_LEN bytes to
 * mac and returns that, or returns 0 (nothing follows) when the connection is not bound. Send
 * announcements in the order they were sealed. */
size_t transport_region_seal(struct transport_conn *conn, unsigned type, const void *region,
			     uint8_t mac[TRANSPORT_REGION_MAC_LEN]);
/* Check an announcement that came in, payload of len bytes (the struct wire_region, then on a
 * bound connection its MAC). 0, or -EPROTO with the field named in why. */
int transport_region_open(struct transport_conn *conn, unsigned type, const void *payload,
			  size_t len, char *why, size_t why_len);

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
