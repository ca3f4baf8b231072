/* SPDX-License-Identifier: MIT */
/* bench/plan-sim-cloudsim.h - plan-sim's CloudSim model: CloudSim 4.0's PlanetLab setup (800
 * HP ProLiant hosts, four VM types, SPECpower tables, its schedulers, migrations and SLA
 * metrics) replayed event by event, its detection and selection policies, and rmig's own
 * cost-aware policy in the same model. The pure functions are exported for the unit tests. */
#ifndef RMIG_BENCH_PLAN_SIM_CLOUDSIM_H
#define RMIG_BENCH_PLAN_SIM_CLOUDSIM_H

#include <stddef.h>

#include "bench/plan-sim.h"

#define CS_HISTORY_LENGTH 30 /* PowerVm.HISTORY_LENGTH */

enum cs_detect {
	CS_DETECT_NONE_NPA, /* NonPowerAware: every host draws full power, no migrations */
	CS_DETECT_DVFS,	    /* power follows utilisation, no migrations */
	CS_DETECT_THR,	    /* static threshold */
	CS_DETECT_IQR,
	CS_DETECT_MAD,
	CS_DETECT_LR,
	CS_DETECT_LRR,
	CS_DETECT_RMIG, /* rmig: expected overload time against the move's cost */
};

enum cs_select {
	CS_SELECT_MMT,	/* minimum migration time: least RAM */
	CS_SELECT_MC,	/* maximum correlation (R^2 against the other VMs) */
	CS_SELECT_RS,	/* random */
	CS_SELECT_MU,	/* minimum utilisation */
	CS_SELECT_COST, /* rmig: least migration cost per MIPS of overload relieved */
};

struct cs_policy {
	char name[32];
	enum cs_detect detect;
	double parameter; /* threshold or safety parameter */
	enum cs_select select;
};

struct cs_config {
	size_t hosts;		/* 800 */
	int idle_host_power;	/* count P(0) for a host with VMs at 0 % CPU (CloudSim: 0 W) */
	unsigned seed;		/* random selection */
	int vm_types_in_blocks; /* CloudSim's Helper: four blocks of the VM list, not in turn */
	int quiet;
};

struct cs_result {
	double energy_kwh;
	size_t migrations;
	double slatah; /* share of active host time at 100 % */
	double pdm;    /* performance degradation due to migration */
	double slav;
	double esv;
	double plan_seconds_mean; /* wall time of one planning step */
	size_t steps;
	double *active_series;	   /* hosts with CPU in use, per step */
	double *overloaded_series; /* hosts allocating less than requested, per step */
	long unplaced_vm; /* cs_run() -ENOSPC: the VM its first placement found no host for */
};

/* Watts from a SPECpower-style table of 11 points (0, 10, ..., 100 % load) at utilisation u in
 * 0..1, linear between points; -1 outside 0..1. */
double plan_sim_power(const double *table, double utilisation);
/* SPECpower of the two host types (0: HP ProLiant ML110 G4, 1: G5) at utilisation u in 0..1,
 * interpolated between the 10 % points. Returns watts, or -1 when u is outside 0..1. */
double cs_power(int host_type, double utilisation);
/* Energy over dt seconds as CloudSim counts it: the mean of the power at both ends, 0 when the
 * interval starts at 0 % (a host with nothing running is off). */
double cs_energy(int host_type, double from, double to, double dt, int idle_host_power);
double cs_median(const double *values, size_t count);
double cs_mad(const double *values, size_t count);
/* The inter-quartile range as CloudSim computes it (sorts values in place). */
double cs_iqr(double *values, size_t count);
/* Ordinary least squares of y over x = 1..n: *intercept_p, *slope_p. Returns 0 or -EINVAL. */
int cs_linear_fit(const double *y, size_t n, double *intercept_p, double *slope_p);
/* R^2 of y regressed (with intercept) on the k columns x[0..k-1], each n samples long.
 * Returns -1 when n <= k + 1 or the system is singular. */
double cs_r_squared(const double *const *x, size_t k, const double *y, size_t n);
/* SLA metrics from their sums: SLATAH = violation / active seconds, PDM = lost / requested. */
void cs_metrics(double energy_joules, double violation_seconds, double active_seconds,
		double migration_lost_mips_seconds, double requested_mips_seconds,
		struct cs_result *result);

/* The policy's detector (1 overloaded, 0 not) and selection (the VM's index, -1 none) on one
 * host of the given type running these VMs; for the unit tests. */
struct cs_test_vm {
	double mips;
	int ram;
	double request;			   /* MIPS asked now */
	double history[CS_HISTORY_LENGTH]; /* utilisation of its MIPS, newest first */
	size_t history_length;
};
int cs_test_detect(const struct cs_policy *policy, int host_type, const struct cs_test_vm *vms,
		   size_t count);
int cs_test_select(const struct cs_policy *policy, int host_type, const struct cs_test_vm *vms,
		   size_t count);
/* The policy's placement (findHostForVm) of vm among hosts, each running its VMs (a host with
 * none is switched off); the chosen host's index, -1 when none takes it, -ENOMEM. */
struct cs_test_host {
	int type;
	const struct cs_test_vm *vms;
	size_t count;
};
int cs_test_place(const struct cs_policy *policy, const struct cs_test_host *hosts,
		  size_t host_count, const struct cs_test_vm *vm);

int cs_run(const struct plan_sim_trace *trace, const struct cs_config *config,
	   const struct cs_policy *policy, struct cs_result *result);
void cs_result_free(struct cs_result *result);
/* Parses "thr-mmt:0.8", "mad-mmt", "lr-mc:1.2", "rmig", "npa", "dvfs"...; 0 or -EINVAL. */
int cs_policy_parse(const char *text, struct cs_policy *policy);

/* Two stacked panels over the day drawn by gnuplot into png, one line per policy in each:
 * panels[i].series[p][t] at hours[t]; ymax 0 lets gnuplot choose. Returns 0 or -errno. */
struct plan_sim_panel {
	const char *ylabel;
	const double *const *series;
	double ymax;
};
int plan_sim_plot(const char *png, const char *title, const double *hours, size_t steps,
		  const char *const *labels, size_t count, const struct plan_sim_panel *panels);

/* plan-sim --model cloudsim: runs each policy of the comma-separated list (default: CloudSim's
 * rows of docs/planner.md and rmig's), prints the table or JSON, draws the plot. Returns the
 * exit status. */
struct cs_options {
	const char *trace_path;
	const char *policies;
	size_t hosts;
	int idle_host_power;
	int vm_types_in_blocks;
	int vm_types_given; /* --vm-types was given: no falling back to blocks */
	int json;
	const char *plot_path;
};
int cs_main(const struct plan_sim_trace *trace, const struct cs_options *options);

#endif /* RMIG_BENCH_PLAN_SIM_CLOUDSIM_H */
