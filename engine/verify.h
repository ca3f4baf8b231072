/* SPDX-License-Identifier: MIT */
/* engine/verify.h - verification of the destination's pages against the source's (verify.c),
 * with the VM paused: the source's comparisons and resends, the destination's answers. */
#ifndef RMIG_ENGINE_VERIFY_H
#define RMIG_ENGINE_VERIFY_H

#include <stddef.h>
#include <stdint.h>

struct rmig_session;
struct batch_pipeline;

/* Source, VM paused, after the final sync and before its pages go (pre-copy family):
 * RMIG_VERIFY_SAMPLE's pages to compare, the final round's and a fresh random sample, into each
 * region's src.checked. Nothing for the other modes. 0 or -ENOMEM. */
int verify_source_plan(struct rmig_session *s);
/* Source, VM paused, after verify_source_plan() (pre-copy family): start hashing the source's
 * own pages that the first comparison needs (RMIG_VERIFY_SAMPLE: the planned ones;
 * RMIG_VERIFY_ALL: all) in the background, so that it overlaps the final round's pages and the
 * device state instead of following them. Nothing for RMIG_VERIFY_NONE, or where the trackers
 * keep hashes. 0 or -ENOMEM; a thread that cannot start leaves the hashing to
 * verify_source_run(). */
int verify_source_prehash_start(struct rmig_session *s);
/* Source: wait for the background hashing and drop it, if verify_source_run() did not take it
 * (a switchover that failed before verification). */
void verify_source_prehash_stop(struct rmig_session *s);
/* Source, VM paused: compare every page (RMIG_VERIFY_SAMPLE: the planned ones first) with the
 * destination's hash, resend mismatches until they match, with the hashes
 * verify_source_prehash_start() took where it ran. Counts pages verified and mismatched in the
 * stats. */
int verify_source_run(struct rmig_session *s, struct batch_pipeline *pipeline);
/* Source: what verify_source_run() will cost with the VM paused, microseconds: hashing every
 * page whose tracker keeps no hashes of its own, at a rate timed on a sample of guest RAM
 * (once per session). 0 when verification is off. */
uint64_t verify_source_cost_us(struct rmig_session *s);
/* Source, VM paused, post-copy family: compare the pages the destination holds and will keep
 * (not in the regions' postcopy bitmaps) with its hashes; a page that differs is not resent but
 * added to the postcopy bitmap, to be delivered after resume like the others. */
int verify_source_postcopy(struct rmig_session *s);
/* Destination: answer one VERIFY_REQ. */
int verify_dest_answer(struct rmig_session *s, const void *payload, size_t len);
/* Destination: answer one VERIFY_RUNS with one VERIFY_HASHES. */
int verify_dest_answer_runs(struct rmig_session *s, const void *payload, size_t len);

#endif /* RMIG_ENGINE_VERIFY_H */
