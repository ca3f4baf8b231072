/* SPDX-License-Identifier: MIT */
/* engine/heartbeat.h - dead-peer detection for a connected session: a thread that tells the
 * peer this side is alive, and the receive wrapper every engine wait goes through, which drops
 * the peer's heartbeats and ends the session when the peer stayed silent past the deadline. */
#ifndef RMIG_ENGINE_HEARTBEAT_H
#define RMIG_ENGINE_HEARTBEAT_H

#include <stdint.h>

#include "transport/transport.h"

struct rmig_session;

#define HEARTBEAT_DEFAULT_DEADLINE_MS 10000u
#define HEARTBEAT_MIN_DEADLINE_MS 200u
#define HEARTBEAT_MAX_DEADLINE_MS 3600000u
/* Heartbeats per deadline: several may be lost or delayed behind page data before the peer
 * counts this side as dead. */
#define HEARTBEAT_PER_DEADLINE 5u

/* s->conn is set: start sending heartbeats on it, and count the peer as heard now. 0 or
 * -errno (the session then runs without heartbeats, and says so in the log). */
int heartbeat_start(struct rmig_session *s);
/* Stop sending (before s->conn goes). Safe when not started. */
void heartbeat_stop(struct rmig_session *s);
/* transport_recv() on s->conn for the engine's waits: the peer's heartbeats are taken and
 * dropped here (anything from the peer counts as hearing from it); -ETIMEDOUT when nothing
 * else came within timeout_ms; -EHOSTDOWN, with the session's error recorded, once nothing at
 * all came from the peer for the session's dead-peer deadline. Other errors as transport_recv. */
int heartbeat_recv(struct rmig_session *s, struct transport_msg *msg, int timeout_ms);

#endif /* RMIG_ENGINE_HEARTBEAT_H */
