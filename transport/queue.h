/* SPDX-License-Identifier: MIT */
/* transport/queue.h - the inbound message queue every backend shares: commits and control
 * messages from the peer, in arrival order, waiting for transport_recv(). The backend's own
 * lock guards it; the backend embeds struct transport_queued in its entries. What recv()
 * handed out last stays alive until the next recv() (transport_msg's pointers point into it). */
#ifndef RMIG_TRANSPORT_QUEUE_H
#define RMIG_TRANSPORT_QUEUE_H

#include <stddef.h>

/* Bytes of received messages a connection keeps for an engine that is not reading. Past it a
 * backend stops taking messages off the wire (tcp stops reading its socket, rdma holds its
 * receive buffers), so the peer slows down instead of this side's memory growing. */
#define TRANSPORT_QUEUE_BYTES_MAX (64u << 20)

struct transport_queued {
	struct transport_queued *next;
	size_t bytes; /* what it counts against TRANSPORT_QUEUE_BYTES_MAX */
};

struct transport_queue {
	struct transport_queued *head, *tail;
	size_t bytes;
	struct transport_queued *delivered; /* handed out by the last recv(), freed by the next */
	void (*entry_free)(struct transport_queued *entry);
};

/* entry_free releases one entry (NULL: the entry is one malloc'd block starting with it). */
void transport_queue_init(struct transport_queue *queue,
			  void (*entry_free)(struct transport_queued *entry));
/* Frees every entry, delivered or not. */
void transport_queue_fini(struct transport_queue *queue);
/* Would `more` bytes still fit under TRANSPORT_QUEUE_BYTES_MAX? */
int transport_queue_room(const struct transport_queue *queue, size_t more);
void transport_queue_push(struct transport_queue *queue, struct transport_queued *entry,
			  size_t bytes);
/* Frees what the previous pop handed out. */
void transport_queue_release(struct transport_queue *queue);
/* Takes the oldest entry off (NULL when empty) and keeps it as delivered. */
struct transport_queued *transport_queue_pop(struct transport_queue *queue);

#endif /* RMIG_TRANSPORT_QUEUE_H */
