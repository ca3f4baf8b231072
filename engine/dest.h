/* SPDX-License-Identifier: MIT */
/* engine/dest.h - the destination side's run (dest.c): handshake and region table, batches and
 * device state as they arrive, verification answers, the resume, and the post-copy tail. */
#ifndef RMIG_ENGINE_DEST_H
#define RMIG_ENGINE_DEST_H

struct rmig_session;

/* Run the destination's side of the session on the calling thread: 0 once the VM resumed here
 * and every page arrived, -errno (the session's status and last error say why). */
int dest_run(struct rmig_session *s);

#endif /* RMIG_ENGINE_DEST_H */
