/* SPDX-License-Identifier: MIT */
/* engine/postcopy.h - the post-copy family's tail (TSMC stage 3, post-copy, hybrid): the VM
 * resumes on the destination before all of its RAM is there. The destination registers its
 * guest RAM with userfaultfd (missing mode); a guest access to a page not there yet faults and
 * is served by transport_read() from the source's frozen RAM, ahead of the background push the
 * destination schedules; pushed pages land in a staging region and are copied into the guest
 * with UFFDIO_COPY. Every page crosses once in the tail. */
#ifndef RMIG_ENGINE_POSTCOPY_H
#define RMIG_ENGINE_POSTCOPY_H

#include <stddef.h>
#include <stdint.h>

#include "engine/protocol.h"
#include "engine/session.h"

/* Pages a fault pulls: the faulting page and up to this many missing pages after it. */
#define POSTCOPY_FAULT_CLUSTER 8u
/* Most pages one push request asks for. */
#define POSTCOPY_PUSH_MAX_PAGES 1024u
/* The push keeps about this long of its measured rate in flight, and at least
 * POSTCOPY_WINDOW_MIN bytes: a fault on a page already requested waits at most about that
 * long, and a pull's answer queues behind what is in flight. */
#define POSTCOPY_WINDOW_US 2000u
#define POSTCOPY_WINDOW_MIN (512u * 1024u)
/* Pulls the destination times for auto at the handshake, and while the bulk round flows. */
#define POSTCOPY_PROBE_PULLS 5u
#define POSTCOPY_PROBE_LOADED_PULLS 3u
/* Most bytes one of those pulls reads (a fault's pull of 2 MiB pages): the source maps and
 * registers that much for them (session_pull_target_bytes()), whatever the page size. */
#define POSTCOPY_PULL_TARGET_MAX (16u << 20)

/* ---- destination ---- */

/* Can every region be filled after resume (userfaultfd missing mode on its mapping)? 0, or
 * -EOPNOTSUPP with the reason in why. Leaves nothing registered. */
int postcopy_dest_probe(struct rmig_session *s, char *why, size_t why_len);
/* For auto, before any page data flows: time POSTCOPY_PROBE_PULLS transport_read()s of a
 * fault's worth of pages (POSTCOPY_FAULT_CLUSTER) from the source's pull target (a buffer of no
 * guest data: session_pull_target_id()) and fill
 * m with their median (PROTOCOL_PULL_MEASURED, also kept as s->pull_idle_us), or with
 * PROTOCOL_PULL_FAILED when a pull failed while the connection stayed up (faults could not be
 * served, so auto must stay with pre-copy). 0, or -errno when the connection failed. */
int postcopy_dest_pull_probe(struct rmig_session *s, struct protocol_pull *m);
/* The bulk round of an auto migration starts: time POSTCOPY_PROBE_LOADED_PULLS such pulls on a
 * thread of their own, under the load of the pages flowing, and send a PULL_REPORT after each
 * (the median so far). Nothing when the pulls before the round were not measured. 0 or
 * -errno. */
int postcopy_dest_pull_probe_start(struct rmig_session *s);
/* Wait for those pulls (each waits 2 s at most) and free them. NULL-safe, idempotent. */
void postcopy_dest_pull_probe_stop(struct rmig_session *s);
/* A POSTCOPY_PAGES message: OR its pages into the region's postcopy bitmap. -EPROTO (logged
 * with the source's offence) for a region or range that is not here. */
int postcopy_dest_pages(struct rmig_session *s, const void *payload, size_t len);
/* The source asked for a post-copy-family method: map and register each region's staging area
 * now, while the VM still runs, so that arming it at the switchover does not (over RDMA the
 * registration pins the whole area: hundreds of milliseconds per 64 MiB under TCG). With
 * all_later (method postcopy: no page comes before the resume) also revoke the source's write
 * access to the guest regions and discard their pages now. 0 or -errno with why;
 * postcopy_dest_unprepare() releases what arming did not take over. */
int postcopy_dest_prepare(struct rmig_session *s, int all_later, char *why, size_t why_len);
void postcopy_dest_unprepare(struct rmig_session *s);
/* POSTCOPY_BEGIN: check the announced pages cover every page that never arrived, revoke the
 * source's write access to the guest regions, discard the announced pages, register the guest
 * RAM with userfaultfd, register the staging regions, start the fault thread and answer
 * POSTCOPY_READY. On failure nothing is left armed. */
int postcopy_dest_arm(struct rmig_session *s, const void *payload, size_t len);
/* After resume_vm: schedule the push, install what arrives, until every page is there; then
 * POSTCOPY_DONE, wait for POSTCOPY_END and disarm. 0 or -errno (the VM then lacks pages: see
 * postcopy_dest_destroy()). */
int postcopy_dest_run(struct rmig_session *s);
/* The connection is going: stop the fault thread (which reads through it). The guest RAM stays
 * registered, so an access to a missing page waits until postcopy_dest_destroy(). NULL-safe. */
void postcopy_dest_halt(struct rmig_session *s);
/* Disarm and free. Pages that never arrived are made inaccessible (PROT_NONE) before the
 * userfaultfd goes, so a guest access fails loudly instead of reading zeroes. NULL-safe. */
void postcopy_dest_destroy(struct rmig_session *s);

/* ---- source ---- */

/* VM paused, the regions' postcopy bitmaps final: announce them, wait for POSTCOPY_READY and
 * point the batches at the destination's staging regions. */
int postcopy_source_announce(struct rmig_session *s);
/* After the destination resumed: push what it asks for until POSTCOPY_DONE; count the pages
 * it fetched itself. A lost connection is recovered (postcopy_source_recover()). */
int postcopy_source_tail(struct rmig_session *s, struct batch_pipeline *pipeline);
/* The run failed with err after RESUME was sent (post-copy family): when the connection was
 * lost, wait for a new one (engine/postcopy_recover.c), learn what the destination lacks and
 * point pipeline at it: 0, and the tail goes on. Else, or when the recovery window passes, the
 * error that loses the VM (err itself when recovery does not apply). */
int postcopy_source_recover(struct rmig_session *s, struct batch_pipeline *pipeline, int err);

#endif /* RMIG_ENGINE_POSTCOPY_H */
