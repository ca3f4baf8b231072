/* SPDX-License-Identifier: MIT */
/* rmig-plan.h - librmig-plan.so.1's public interface: migration plans for a cluster snapshot
 * (which hosts are overloaded, which VMs leave them, where they go, by which method). Built
 * apart from librmig so that librmig needs no JSON library; it uses librmig's enums. */
#ifndef RMIG_PLAN_H
#define RMIG_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include <rmig.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A migration plan for a cluster: which VMs move where, by which method, at what projected
 * cost. Opaque. */
typedef struct rmig_plan rmig_plan_t;

/* How an overloaded host is recognised. */
enum rmig_plan_overload {
	RMIG_PLAN_OVERLOAD_STATIC = 0, /* utilisation above threshold */
	/* utilisation above 1 - mad_k * median absolute deviation of the host's history */
	RMIG_PLAN_OVERLOAD_MAD = 1,
	/* lr_safety * next utilisation forecast by local regression above 1 */
	RMIG_PLAN_OVERLOAD_LR = 2,
};

/* Which VM leaves an overloaded host first. */
enum rmig_plan_select {
	RMIG_PLAN_SELECT_MIN_TIME = 0,	  /* shortest projected migration */
	RMIG_PLAN_SELECT_CORRELATION = 1, /* load most correlated with the rest of the host */
};

/* Bits of rmig_plan_params.field_mask. */
#define RMIG_PLAN_PARAM_OVERLOAD (1ull << 0)
#define RMIG_PLAN_PARAM_THRESHOLD (1ull << 1)
#define RMIG_PLAN_PARAM_MAD_K (1ull << 2)
#define RMIG_PLAN_PARAM_LR_SAFETY (1ull << 3)
#define RMIG_PLAN_PARAM_SELECT (1ull << 4)
#define RMIG_PLAN_PARAM_DOWNTIME_MS (1ull << 5)
#define RMIG_PLAN_PARAM_CONSOLIDATE (1ull << 6)

/* Planning parameters. New fields are only ever appended, each with its own field_mask bit. */
struct rmig_plan_params {
	uint64_t field_mask;  /* RMIG_PLAN_PARAM_* */
	uint32_t overload;    /* enum rmig_plan_overload; default RMIG_PLAN_OVERLOAD_STATIC */
	uint32_t select;      /* enum rmig_plan_select; default RMIG_PLAN_SELECT_MIN_TIME */
	double threshold;     /* static threshold (0..1], also used while history is short; 0.8 */
	double mad_k;	      /* default 2.5 */
	double lr_safety;     /* default 1.2 */
	uint32_t downtime_ms; /* downtime target for the method choice; default 300 */
	uint32_t consolidate; /* 1: also empty lightly loaded hosts; default 0 */
};

/* Why a move is in the plan. */
enum rmig_plan_reason {
	RMIG_PLAN_REASON_OVERLOAD = 0,	    /* its host is overloaded */
	RMIG_PLAN_REASON_CONSOLIDATION = 1, /* its host is being emptied */
};

/* One move. The caller sets struct_size = sizeof(struct rmig_plan_move); rmig fills what fits.
 * Strings belong to the plan and live until rmig_plan_destroy(). */
struct rmig_plan_move {
	uint32_t struct_size;
	uint32_t method;    /* enum rmig_method chosen by the cost model (never AUTO) */
	uint32_t policy;    /* enum rmig_policy, for RMIG_METHOD_PRECOPY */
	uint32_t reason;    /* enum rmig_plan_reason */
	uint32_t rounds;    /* projected rounds while the VM runs */
	uint32_t converges; /* 1 when the method meets its stop rule within its limits */
	const char *vm;	    /* ids as in the snapshot */
	const char *source;
	const char *destination;
	const char *method_name; /* "precopy-qemu", "precopy-xen", "predict", "tsmc", ... */
	uint64_t bytes;		 /* projected bytes on the wire */
	uint64_t total_time_us;	 /* projected start to resume */
	uint64_t downtime_us;	 /* projected pause to resume */
	uint64_t stall_us;	 /* projected post-copy fault waits */
};

/**
 * rmig_plan_from_json() - plan migrations for a cluster snapshot.
 * @json: NUL-terminated snapshot (hosts with capacity and utilisation history, link bandwidth,
 *        VMs with size, CPU use and dirty rate; format in docs/planner.md).
 * @params: fields outside the field_mask keep their defaults; NULL for all defaults.
 * @plan_p: set to the new plan on success.
 *
 * VMs that must leave an overloaded host but fit nowhere are listed in the plan with the
 * reason, which is not an error. No move takes a destination past its limit.
 *
 * Return: 0; -EINVAL for malformed JSON or a field out of range (the log names the field,
 * e.g. "vms[3].host: unknown host"), or for parameters out of range; -ENOMEM.
 */
int rmig_plan_from_json(const char *json, const struct rmig_plan_params *params,
			rmig_plan_t **plan_p);

/**
 * rmig_plan_move_count() - how many moves the plan holds.
 * @plan: a plan.
 *
 * Return: the count (0 when no host is overloaded), -EINVAL for a NULL plan.
 */
int rmig_plan_move_count(const rmig_plan_t *plan);

/**
 * rmig_plan_unplaced_count() - how many VMs had to move but fit on no destination.
 * @plan: a plan.
 *
 * Return: the count, -EINVAL for a NULL plan. The reasons are in the JSON and the table.
 */
int rmig_plan_unplaced_count(const rmig_plan_t *plan);

/**
 * rmig_plan_move_get() - one move of the plan, in the order they should run.
 * @plan: a plan.
 * @index: 0 up to rmig_plan_move_count() - 1.
 * @move: the caller sets move->struct_size; rmig fills what fits.
 *
 * Return: 0; -ENOENT for an index past the end; -EINVAL for NULL arguments or a struct_size
 * too small for the first two fields.
 */
int rmig_plan_move_get(const rmig_plan_t *plan, uint32_t index, struct rmig_plan_move *move);

/**
 * rmig_plan_to_json() - the plan as JSON: policy, hosts before and after, moves with their
 * projected cost, unplaced VMs with reasons, totals.
 * @plan: a plan.
 * @json_p: set to a NUL-terminated string the caller frees with free().
 *
 * Return: 0, -EINVAL, -ENOMEM.
 */
int rmig_plan_to_json(const rmig_plan_t *plan, char **json_p);

/**
 * rmig_plan_to_table() - the plan as a table a person reads.
 * @plan: a plan.
 * @text_p: set to a NUL-terminated string the caller frees with free().
 *
 * Return: 0, -EINVAL, -ENOMEM.
 */
int rmig_plan_to_table(const rmig_plan_t *plan, char **text_p);

/**
 * rmig_plan_destroy() - free a plan and its strings.
 * @plan: may be NULL.
 */
void rmig_plan_destroy(rmig_plan_t *plan);

/* ---- The cost model (RMIG_PLAN_1.1) ---- */

/* What a migration is projected from: the cost model the planner and the engine's `auto`
 * decide with (docs/planner.md). Zero fields take the engine's defaults. */
struct rmig_plan_cost_input {
	uint32_t struct_size;	     /* sizeof(struct rmig_plan_cost_input) */
	uint32_t downtime_ms;	     /* target; 0: 300 */
	uint64_t ram_bytes;	     /* guest RAM, > 0 */
	uint64_t page_size;	     /* 0: 4096 */
	uint64_t working_set_bytes;  /* the most a round can dirty; 0: all RAM */
	uint64_t device_state_bytes; /* sent with the VM paused */
	double dirty_pages_rate;     /* distinct pages written per second */
	double bandwidth;	     /* bytes per second the link carries, > 0 */
	double zero_fraction;	     /* share of RAM sent as zero-page markers, 0..1 */
	double fault_latency_us;     /* one post-copy fault's round trip; 0: 50 us */
	double access_run_pages;     /* mean run of pages the guest writes in order; 0: unknown */
	double pause_seconds;	     /* what the pause costs besides moving pages */
	uint32_t max_rounds;	     /* 0: 30 */
	uint32_t reserved;	     /* 0 */
};

/* One method's projection. */
struct rmig_plan_cost {
	uint32_t struct_size; /* sizeof(struct rmig_plan_cost), set by the caller */
	uint32_t rounds;      /* transfer rounds while the VM runs */
	int32_t converges;    /* 1 when the method meets its stop rule before its limits */
	uint32_t reserved;
	double total_seconds;	 /* start to resume at the destination, post-copy tail included */
	double downtime_seconds; /* pause to resume */
	double stall_seconds;	 /* post-copy family: expected vCPU wait on faults */
	double bytes;		 /* on the wire: page data and device state */
};

/**
 * rmig_plan_cost_project() - the cost model's projection of one method (1.1).
 * @input: with struct_size set; fields beyond it count as zero.
 * @method: "precopy-qemu", "precopy-xen", "predict", "tsmc", "postcopy" or "hybrid" ("precopy"
 *          is "precopy-qemu").
 * @cost: with struct_size set; filled up to it on success.
 *
 * Return: 0; -EINVAL for a NULL argument, a struct_size too small for the fields up to
 * bandwidth, an unknown @method, zero RAM, a bandwidth that is not positive, a zero fraction
 * outside 0..1 or a page size that is not a power of two.
 */
int rmig_plan_cost_project(const struct rmig_plan_cost_input *input, const char *method,
			   struct rmig_plan_cost *cost);

#ifdef __cplusplus
}
#endif

#endif /* RMIG_PLAN_H */
