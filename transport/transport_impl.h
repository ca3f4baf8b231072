/* SPDX-License-Identifier: MIT */
/* transport/transport_impl.h - what transport.c needs from each transport. Only transport/
 * includes this. */
#ifndef RMIG_TRANSPORT_IMPL_H
#define RMIG_TRANSPORT_IMPL_H

#include "transport/transport.h"

extern const struct transport_ops loop_transport_ops; /* loop.c */
extern const struct transport_ops tcp_transport_ops;  /* tcp.c */
extern const struct transport_ops rdma_transport_ops; /* verbs.c */

/* Number of verbs devices with an active port (0 on hosts without RDMA). */
int rdma_transport_device_count(void);

#endif /* RMIG_TRANSPORT_IMPL_H */
