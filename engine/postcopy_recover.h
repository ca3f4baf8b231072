/* SPDX-License-Identifier: MIT */
/* engine/postcopy_recover.h - post-copy recovery, after QEMU's postcopy-recover: once the VM
 * runs on the destination, a lost connection pauses the tail instead of losing the VM. Both ends
 * enter RMIG_STATUS_RECOVERING; the destination listens again (on its first URI, or one the
 * operator names), the source connects again (likewise), and the new connection proves the key
 * and names the migration (an id both ends derived from the first handshake) before the
 * destination says which pages it still lacks and the tail goes on. The VM is lost only when the
 * recovery window passes, or the operator cancels while recovering. The tail's own state
 * (which pages crossed) lives in postcopy_source.c and postcopy_dest.c; this file holds the
 * waiting, the connection and its proof. */
#ifndef RMIG_ENGINE_POSTCOPY_RECOVER_H
#define RMIG_ENGINE_POSTCOPY_RECOVER_H

#include <stdint.h>

#include "engine/protocol.h"
#include "engine/session.h"

#define POSTCOPY_RECOVER_DEFAULT_WINDOW_MS 600000u
#define POSTCOPY_RECOVER_MIN_WINDOW_MS 1000u
#define POSTCOPY_RECOVER_MAX_WINDOW_MS 86400000u
/* The source tries again about this often; a destination listener is polled this often. */
#define POSTCOPY_RECOVER_RETRY_MS 1000u
/* A destination that has every page and lost the source before it acknowledged the end waits
 * this many dead-peer deadlines for it to come back (so it learns the end), then completes. */
#define POSTCOPY_RECOVER_END_DEADLINES 3u

/* At session creation / destruction. */
int postcopy_recover_create(struct rmig_session *s);
void postcopy_recover_destroy(struct rmig_session *s);
/* rmig_session_set_recovery_window(). */
int postcopy_recover_set_window(struct rmig_session *s, uint32_t window_ms);
/* rmig_session_recover(). */
int postcopy_recover_request(struct rmig_session *s, const char *uri);
/* Destination: it listens on uri (what a recovery listens on again; a port 0 is resolved). */
void postcopy_recover_listened(struct rmig_session *s, const char *uri);
/* Both ends, after the first handshake proved the key: derive the session id from its two
 * nonces. 0 or -errno. */
int postcopy_recover_bind(struct rmig_session *s, const uint8_t source_nonce[PROTOCOL_NONCE_LEN],
			  const uint8_t dest_nonce[PROTOCOL_NONCE_LEN]);
/* Statistics under s->lock: recoveries and the time spent recovering (the current one too). */
void postcopy_recover_stats_locked(struct rmig_session *s, struct rmig_stats *out, uint64_t now);

/* Did err (a run-thread failure) come from losing the connection of a session whose VM runs on
 * the destination, so that a new connection may carry the tail on? 0 for anything else: the
 * peer aborted or broke the protocol, a callback failed, nothing resumed yet. */
int postcopy_recover_possible(struct rmig_session *s, int err);
/* The connection is lost (err): close it, record why, enter RMIG_STATUS_RECOVERING. end_only:
 * a destination with every page that waits only for the source to learn the end (a shorter
 * window). */
void postcopy_recover_begin(struct rmig_session *s, int err, int end_only);
/* Destination: wait for a source that proves the key and names this migration. 0 with s->conn
 * set; 1 when the window of an end_only recovery passed (nothing is missing: complete); or the
 * -errno that loses the VM (window passed, cancelled). */
int postcopy_recover_accept(struct rmig_session *s);
/* Source: connect (again and again) until the destination accepts the recovery. 0 with s->conn
 * set and the guest regions registered for its pulls, or the -errno that loses the VM. */
int postcopy_recover_connect(struct rmig_session *s);
/* The new connection failed before the tail could go on (err): close it and keep waiting.
 * Returns 0, or err itself when it is not a connection failure (then the VM is lost). */
int postcopy_recover_retry(struct rmig_session *s, int err);
/* The tail goes on over s->conn: RMIG_STATUS_POSTCOPY again, counted, the progress told. */
void postcopy_recover_end(struct rmig_session *s);

/* Source, at the announcement: keep which pages the tail delivers (what the destination may say
 * it lacks after a recovery). 0 or -ENOMEM. */
int postcopy_recover_announced(struct rmig_session *s);
/* Source: the announced pages of region index (s->regions[index]), NULL before the
 * announcement. */
const uint64_t *postcopy_recover_announced_bitmap(struct rmig_session *s, size_t index);
/* Source: pages the destination pulled over connections that were lost (counted when each
 * recovery learns what it holds), and their bytes. */
void postcopy_recover_fetched_add(struct rmig_session *s, uint64_t pages, uint64_t bytes);
void postcopy_recover_fetched(struct rmig_session *s, uint64_t *pages_p, uint64_t *bytes_p);

#endif /* RMIG_ENGINE_POSTCOPY_RECOVER_H */
