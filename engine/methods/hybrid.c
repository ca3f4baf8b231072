/* SPDX-License-Identifier: MIT */
/* engine/methods/hybrid.c - one pre-copy round sends all RAM, then the post-copy switchover:
 * what the guest wrote meanwhile is delivered after the destination resumed. */
#include "engine/batch.h"
#include "engine/methods/method.h"
#include "engine/session.h"
#include "engine/source.h"

static int hybrid_live(struct rmig_session *s, struct batch_pipeline *pipeline)
{
	uint64_t start = session_now_us();
	int ret;

	ret = source_bulk_round(s, pipeline, NULL, NULL);
	if (ret < 0)
		return ret;
	return method_postcopy_after_bulk(s, pipeline, NULL, start);
}

const struct method_ops method_hybrid_ops = {
	.method = RMIG_METHOD_HYBRID,
	.postcopy = 1,
	.needs = METHOD_NEEDS_TRACKING | METHOD_NEEDS_SCHED,
	.live = hybrid_live,
	.after_bulk = method_postcopy_after_bulk,
	.switchover = method_postcopy_switchover,
};
