/* SPDX-License-Identifier: MIT */
/* bench/plan-sim.h - plan-sim's utilisation trace reader, shared with its unit test. */
#ifndef RMIG_BENCH_PLAN_SIM_H
#define RMIG_BENCH_PLAN_SIM_H

#include <stddef.h>

struct plan_sim_trace {
	char source[512]; /* the trace file's first comment line */
	size_t vms;
	size_t samples;
	char **names;
	double *utilisation; /* vms x samples, fraction of the VM's vCPUs */
};

/* Read a trace: one VM per row (an optional name first, then its samples) or, when the first
 * line is all names, one VM per column; or, when path is a directory, CloudSim's layout: one
 * file per VM named by its file name, in sorted name order, its samples one per line. Lines starting with '#' are comments; the first one is
 * kept as the trace's source. Samples are percent unless fraction is set. Fields are separated
 * by commas, or by whitespace in a file without commas. Returns 0 or -errno (-EINVAL for a
 * ragged or non-numeric file, with the row and sample named on stderr). */
int plan_sim_trace_load(const char *path, int fraction, struct plan_sim_trace *trace);
void plan_sim_trace_free(struct plan_sim_trace *trace);

#endif /* RMIG_BENCH_PLAN_SIM_H */
