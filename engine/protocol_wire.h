/* SPDX-License-Identifier: MIT */
/* engine/protocol_wire.h - what protocol.c and protocol_pages.c share to frame a message:
 * never used outside those two files. */
#ifndef RMIG_ENGINE_PROTOCOL_WIRE_H
#define RMIG_ENGINE_PROTOCOL_WIRE_H

#include <stddef.h>

/* Write the header of a message of type with payload_len bytes of payload already in place
 * after it; the message's whole length. */
size_t protocol_finish(void *buf, int type, size_t payload_len);
/* Where the payload goes in a message being built in buf. */
void *protocol_payload(void *buf);
/* 0 when a what message's payload is want bytes long, else -EPROTO with the reason in why. */
int protocol_expect_len(const char *what, size_t len, size_t want, char *why, size_t why_len);

#endif /* RMIG_ENGINE_PROTOCOL_WIRE_H */
