/* SPDX-License-Identifier: MIT */
/* transport/queue.c - the inbound message queue every backend shares (see queue.h). */
#include "transport/queue.h"

#include <stdlib.h>

static void queue_entry_free(struct transport_queue *queue, struct transport_queued *entry)
{
	if (!entry)
		return;
	if (queue->entry_free)
		queue->entry_free(entry);
	else
		free(entry);
}

void transport_queue_init(struct transport_queue *queue,
			  void (*entry_free)(struct transport_queued *entry))
{
	queue->head = queue->tail = queue->delivered = NULL;
	queue->bytes = 0;
	queue->entry_free = entry_free;
}

void transport_queue_fini(struct transport_queue *queue)
{
	transport_queue_release(queue);
	while (queue->head) {
		struct transport_queued *next = queue->head->next;

		queue_entry_free(queue, queue->head);
		queue->head = next;
	}
	queue->tail = NULL;
	queue->bytes = 0;
}

int transport_queue_room(const struct transport_queue *queue, size_t more)
{
	return queue->bytes + more <= TRANSPORT_QUEUE_BYTES_MAX;
}

void transport_queue_push(struct transport_queue *queue, struct transport_queued *entry,
			  size_t bytes)
{
	entry->next = NULL;
	entry->bytes = bytes;
	if (queue->tail)
		queue->tail->next = entry;
	else
		queue->head = entry;
	queue->tail = entry;
	queue->bytes += bytes;
}

void transport_queue_release(struct transport_queue *queue)
{
	queue_entry_free(queue, queue->delivered);
	queue->delivered = NULL;
}

struct transport_queued *transport_queue_pop(struct transport_queue *queue)
{
	struct transport_queued *entry = queue->head;

	if (!entry)
		return NULL;
	queue->head = entry->next;
	if (!queue->head)
		queue->tail = NULL;
	queue->bytes -= entry->bytes;
	queue->delivered = entry;
	return entry;
}
