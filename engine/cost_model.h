/* SPDX-License-Identifier: MIT */
/* engine/cost_model.h - rmig's projection of what a migration will cost (rounds, total time,
 * downtime, bytes on the wire) for each method, from RAM size, dirty rate, working set and link
 * bandwidth. The engine's `auto` method and the planner use the same numbers. Pure functions. */
#ifndef RMIG_ENGINE_COST_MODEL_H
#define RMIG_ENGINE_COST_MODEL_H

#include <stdint.h>

/* The methods the model projects. Pre-copy appears once per stop policy because the two
 * policies stop at different points and so cost different amounts. */
enum cost_method {
	COST_METHOD_PRECOPY_QEMU = 0, /* pre-copy, stop when projected downtime <= target */
	COST_METHOD_PRECOPY_XEN = 1,  /* pre-copy, Xen's classic limits */
	COST_METHOD_PREDICT = 2,      /* pre-copy holding back the rewritten working set */
	COST_METHOD_TSMC = 3,	      /* all once, dirtied once, rest post-copy */
	COST_METHOD_POSTCOPY = 4,     /* resume at once, RAM crosses once */
	COST_METHOD_HYBRID = 5,	      /* one pre-copy round, then post-copy */
	COST_METHOD_COUNT = 6,
};

/* Defaults applied to zero fields of struct cost_model_input. */
#define COST_MODEL_DEFAULT_PAGE_SIZE 4096u
#define COST_MODEL_DEFAULT_DOWNTIME_MS 300u
#define COST_MODEL_DEFAULT_MAX_ROUNDS 30u
#define COST_MODEL_DEFAULT_FAULT_LATENCY_US 50.0
/* Write runs shorter than this many pages count as scattered (see access_run_pages). */
#define COST_MODEL_SCATTERED_RUN_PAGES 16.0
/* Xen's classic limits (DESIGN §5). */
#define COST_MODEL_XEN_MAX_ROUNDS 30u
#define COST_MODEL_XEN_FEW_DIRTY_PAGES 50u
#define COST_MODEL_XEN_SENT_FACTOR 3.0

struct cost_model_input {
	uint64_t ram_bytes;	 /* guest RAM, > 0 */
	uint64_t page_size;	 /* 0: 4096 */
	double dirty_pages_rate; /* pages the guest writes per second (distinct within a round) */
	uint64_t
		working_set_bytes; /* writable working set: the most a round can dirty; 0: all RAM */
	double bandwidth;	   /* bytes per second the link carries, > 0 */
	double zero_fraction;	   /* share of RAM that is zero pages (sent as markers), 0..1 */
	uint64_t device_state_bytes; /* CPU and device state sent with the VM paused */
	uint32_t downtime_ms;	     /* target; 0: 300 */
	uint32_t max_rounds;	     /* QEMU-policy and predict round limit; 0: 30 */
	double fault_latency_us;     /* post-copy: one remote fault's round trip; 0: 50 us */
	/* Mean length in pages of the contiguous runs the guest writes (pages found per sample
	 * over the runs they form): a fault at the start of a run moves the post-copy push there,
	 * which then stays ahead of a guest that goes on in order, so only runs fault. Runs shorter
	 * than COST_MODEL_SCATTERED_RUN_PAGES mark a guest writing all over its working set, whose
	 * rounds redirty fewer distinct pages than it writes. 0: not measured (1 page for the
	 * stall, writes in order for the rounds). */
	double access_run_pages;
	/* What the pause costs besides moving bytes, seconds: the final pass over the dirty log and
	 * the source's hashing for verification (a content-hash tracker keeps its hashes, a
	 * write-protect tracker's pages are hashed at the pause). Pre-copy, predict, TSMC and
	 * hybrid pay it; post-copy tracks and verifies nothing. 0: none. */
	double pause_seconds;
};

struct cost_projection {
	uint32_t method;	 /* enum cost_method */
	uint32_t rounds;	 /* transfer rounds while the VM runs */
	int converges;		 /* 1 when the method meets its own stop rule before its limits */
	double total_seconds;	 /* start to resume at the destination, post-copy tail included */
	double downtime_seconds; /* pause to resume */
	double stall_seconds;	 /* post-copy family: time vCPUs are expected to wait on faults,
				  * at most as long as the tail lasts */
	double bytes;		 /* on the wire: page data and device state */
};

/* Project one method. Returns 0, or -EINVAL for zero RAM, non-positive bandwidth, a zero
 * fraction outside 0..1, a negative dirty rate or pause, a page size that is not a power of two or an
 * unknown method. */
int cost_model_project(const struct cost_model_input *input, uint32_t method,
		       struct cost_projection *projection_p);

/* The `auto` choice: among the pre-copy family (QEMU policy, predict) that converge with
 * projected downtime within the target, the lowest projected total time; when none does
 * (typically dirty rate * page size >= bandwidth), the post-copy family (TSMC, hybrid,
 * post-copy) by total time plus stall; when even those miss the target, the lowest downtime.
 * The pre-copy family comes first because the source keeps a whole copy of the VM until the
 * switchover, so a failure midway costs nothing. Returns 0 or -EINVAL as cost_model_project(). */
int cost_model_choose_method(const struct cost_model_input *input,
			     struct cost_projection *projection_p);

/* cost_model_choose_method() restricted to the methods whose bit (1u << enum cost_method) is
 * set in allowed (a destination that cannot fill RAM after resume rules out the post-copy
 * family). all[] receives every method's projection (those not allowed too). -EINVAL as
 * cost_model_project(), or when allowed names no method. */
int cost_model_choose_among(const struct cost_model_input *input, uint32_t allowed,
			    struct cost_projection all[COST_METHOD_COUNT],
			    struct cost_projection *projection_p);

/* "precopy-qemu", "precopy-xen", "predict", "tsmc", "postcopy", "hybrid"; "unknown" else. */
const char *cost_method_name(uint32_t method);
/* Inverse of cost_method_name(); -EINVAL for an unknown name. */
int cost_method_from_name(const char *name, uint32_t *method_p);
/* The enum rmig_method and enum rmig_policy a session runs to get this method. */
void cost_method_to_engine(uint32_t method, uint32_t *engine_method_p, uint32_t *policy_p);

#endif /* RMIG_ENGINE_COST_MODEL_H */
