/* SPDX-License-Identifier: MIT */
/* engine/planner/planner.h - the four decisions before a migration (DESIGN §6): which hosts are
 * overloaded, which VMs leave them, where each goes, and by which method, projected with the
 * engine's cost model. Works on an in-memory cluster; planner_json.c reads and writes JSON. */
#ifndef RMIG_ENGINE_PLANNER_H
#define RMIG_ENGINE_PLANNER_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "engine/cost_model.h"

/* Utilisation samples an adaptive detector needs; with fewer it uses the static threshold. */
#define PLANNER_MAD_MIN_HISTORY 12u
#define PLANNER_LR_MIN_HISTORY 10u
/* The local regression looks at this many of the newest samples. */
#define PLANNER_LR_WINDOW 10u

#define PLANNER_DEFAULT_THRESHOLD 0.8
#define PLANNER_DEFAULT_MAD_K 2.5
#define PLANNER_DEFAULT_LR_SAFETY 1.2
#define PLANNER_DEFAULT_PAGE_SIZE 4096u

enum planner_overload {
	PLANNER_OVERLOAD_STATIC = 0, /* utilisation above a fixed threshold */
	PLANNER_OVERLOAD_MAD = 1,    /* above 1 - k * median absolute deviation of the history */
	PLANNER_OVERLOAD_LR = 2,     /* safety * locally regressed next utilisation above 1 */
};

enum planner_select {
	PLANNER_SELECT_MIN_TIME = 0,	/* the VM with the shortest projected migration */
	PLANNER_SELECT_CORRELATION = 1, /* the VM whose load follows the rest of the host's most */
};

struct planner_params {
	uint32_t overload;    /* enum planner_overload */
	uint32_t select;      /* enum planner_select */
	double threshold;     /* static threshold, and the fallback of the adaptive ones */
	double mad_k;	      /* MAD multiplier */
	double lr_safety;     /* LR safety factor */
	uint32_t downtime_ms; /* target handed to the cost model; 0: its default */
	uint32_t consolidate; /* also empty the least loaded hosts when the rest can take them */
	uint64_t device_state_bytes; /* per VM, for the cost model */
};

void planner_params_init(struct planner_params *params);
/* "static", "static:0.8", "mad", "mad:2.5", "lr", "lr:1.2". -EINVAL else. */
int planner_overload_parse(const char *spec, struct planner_params *params);
/* "min-time", "correlation". -EINVAL else. */
int planner_select_parse(const char *name, uint32_t *select_p);
const char *planner_overload_name(uint32_t overload);
const char *planner_select_name(uint32_t select);

struct planner_host {
	const char *id;
	double cpu_capacity; /* any unit, the one VMs' cpu uses */
	uint64_t memory_bytes;
	double bandwidth;      /* bytes per second of its link; 0: the cluster's */
	const double *history; /* utilisation (share of capacity), oldest first; may be NULL */
	size_t history_len;
};

struct planner_vm {
	const char *id;
	size_t host; /* index into the cluster's hosts */
	uint64_t memory_bytes;
	double cpu;		   /* current use, in the hosts' unit */
	const double *cpu_history; /* in the hosts' unit, oldest first, newest = now; may be NULL */
	size_t history_len;
	double dirty_pages_rate;
	uint64_t working_set_bytes; /* 0: all of its memory */
	double zero_fraction;
	double write_run_pages; /* mean pages per run of its writes; 0: not measured */
	double pause_ms;	/* the pause's cost besides moving pages (cost_model_input) */
};

struct planner_cluster {
	struct planner_host *hosts;
	size_t host_count;
	struct planner_vm *vms;
	size_t vm_count;
	double bandwidth;   /* bytes per second between two hosts unless a host's link is slower */
	uint64_t page_size; /* 0: 4096 */
};

/* What detection concluded for one host, and where the plan leaves it. */
struct planner_host_state {
	double utilisation; /* now: VMs' cpu / capacity */
	double load;	    /* what detection compares: now, or the regression's forecast */
	double limit;	    /* highest load that is not an overload under the policy */
	int overloaded;
	int fallback; /* adaptive policy without enough history: static threshold used */
	double utilisation_after; /* once the plan's moves are made */
	uint64_t memory_after;
	size_t vms_after;
};

enum planner_move_reason {
	PLANNER_MOVE_OVERLOAD = 0,
	PLANNER_MOVE_CONSOLIDATION = 1,
};

struct planner_move {
	size_t vm;
	size_t source;
	size_t destination;
	uint32_t reason; /* enum planner_move_reason */
	struct cost_projection cost;
};

struct planner_unplaced {
	size_t vm;
	size_t source;
	char reason[200];
};

struct planner_plan {
	const struct planner_cluster *cluster; /* not owned; must outlive the plan */
	struct planner_params params;
	struct planner_host_state *hosts;
	struct planner_move *moves;
	size_t move_count;
	struct planner_unplaced *unplaced;
	size_t unplaced_count;
	double total_bytes;
	double total_seconds; /* moves one after another */
	double max_downtime_seconds;
};

/* Plan moves for cluster under params. An unplaceable VM is listed in plan->unplaced with the
 * reason, not an error. Returns 0, -EINVAL for a cluster that breaks its own invariants (VM on
 * an unknown host, non-positive capacity or bandwidth), -ENOMEM. */
int planner_plan_create(const struct planner_cluster *cluster, const struct planner_params *params,
			struct planner_plan **plan_p);
void planner_plan_destroy(struct planner_plan *plan);

/* Median absolute deviation of values (n >= 1). */
double planner_mad(const double *values, size_t n);
/* Next value forecast by a tricube-weighted linear regression over the last window values. */
double planner_lr_forecast(const double *values, size_t n, size_t window);
/* Pearson correlation of two series of n values; 0 when either is constant or n < 2. */
double planner_correlation(const double *a, const double *b, size_t n);

/* JSON snapshot (docs/planner.md) -> cluster. Strings and histories point into root and into
 * arrays owned by cluster: keep root alive and call planner_cluster_release(). The first
 * problem found is logged with the field's path ("vms[3].host: unknown host \"h9\"") and
 * returns -EINVAL. */
int planner_cluster_from_json(json_t *root, struct planner_cluster *cluster);
void planner_cluster_release(struct planner_cluster *cluster);

/* The plan as a JSON object (new reference) or a readable table (malloc'd string). */
int planner_plan_to_json(const struct planner_plan *plan, json_t **json_p);
int planner_plan_to_table(const struct planner_plan *plan, char **text_p);

#endif /* RMIG_ENGINE_PLANNER_H */
