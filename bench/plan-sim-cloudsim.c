/* SPDX-License-Identifier: MIT */
/* bench/plan-sim-cloudsim.c - CloudSim 4.0's dynamic consolidation on the PlanetLab traces,
 * replayed event by event so its published numbers can be reproduced before rmig's own policy
 * is set beside them (docs/planner.md, "The CloudSim model").
 *
 * What is modelled, each as CloudSim 4.0 does it (org.cloudbus.cloudsim.power and
 * examples/power/planetlab):
 * - hosts alternate HP ProLiant ML110 G4 (2 x 1860 MIPS) and G5 (2 x 2660 MIPS); VMs take
 *   one of four types by trace row modulo 4, or in four blocks of rows as CloudSim's Helper
 *   deals them (2500, 2000, 1000, 500 MIPS; 870, 1740, 1740, 613 MB), one PE each;
 * - time: the cloudlets start at 0.1 s and the datacenter updates every 300 s after that
 *   (300.1, 600.1, ...); a VM asks for its trace's utilisation at that instant, interpolated
 *   between samples; a VM asking for 0 MIPS at an update has "finished" and leaves for good;
 * - the time-shared over-subscription scheduler: a VM gets at most one PE's MIPS; when the sum
 *   asked exceeds the host, every VM is scaled down (floored); a migrating VM gets 90 % on its
 *   source and costs 10 % on its destination, where the whole demand counts as requested;
 * - a migration lasts RAM / (1 Gb/s / 2); the datacenter updates when it completes;
 * - energy: per host and interval, the mean of the SPECpower at both ends, 0 when the interval
 *   starts at 0 % CPU; SLATAH: time a host allocates less than requested over time active; PDM:
 *   MIPS a migrating VM loses over all MIPS requested;
 * - after the first placement VMs ask for no RAM or bandwidth (their utilisation model is
 *   null), so only CPU limits where a VM may go.
 * The planning step is optimizeAllocation(): overloaded hosts by the detector (with a static
 * 0.7 fallback until there is history), VMs taken off them by the selection policy until the
 * detector is satisfied, placed by power-aware best fit decreasing, then the least utilised
 * hosts emptied while every one of their VMs fits elsewhere. */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "bench/plan-sim-cloudsim.h"

#define CS_INTERVAL 300.0
#define CS_LIMIT (24 * 60 * 60.0)
#define CS_START 0.1
#define CS_HOST_BW_MB 62.5 /* 1 Gb/s in MB/s, halved: CloudSim's migration bandwidth */
#define CS_HOST_RAM 4096
#define CS_HOST_VMS_BY_BW 10 /* 1 Gb/s host, 100 Mb/s per VM at creation */
#define CS_STATIC_FALLBACK 0.7
#define CS_MIN_HISTORY_MAD 12
#define CS_LR_LENGTH 10

static const double cs_power_table[2][11] = {
	{86, 89.4, 92.6, 96, 99.5, 102, 106, 108, 112, 114, 117},
	{93.7, 97, 101, 105, 110, 116, 121, 125, 129, 133, 135},
};
static const double cs_host_pe_mips[2] = {1860, 2660};
static const double cs_vm_mips[4] = {2500, 2000, 1000, 500};
static const int cs_vm_ram[4] = {870, 1740, 1740, 613};

double cs_power(int host_type, double utilisation)
{
	return plan_sim_power(cs_power_table[host_type], utilisation);
}

double plan_sim_power(const double *table, double utilisation)
{
	int low, high;

	if (utilisation < 0 || utilisation > 1)
		return -1;
	low = (int)floor(utilisation * 10);
	high = (int)ceil(utilisation * 10);
	return table[low] + (table[high] - table[low]) / 10 * (utilisation - low / 10.0) * 100;
}

double cs_energy(int host_type, double from, double to, double dt, int idle_host_power)
{
	if (from == 0 && !idle_host_power)
		return 0;
	return (cs_power(host_type, from) + cs_power(host_type, to)) / 2 * dt;
}

static int cs_compare_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Apache Commons Math's percentile (legacy estimation): position p (n + 1), interpolated. */
static double cs_percentile_sorted(const double *sorted, size_t n, double p)
{
	double position = p * (double)(n + 1), fraction;
	size_t whole;

	if (n == 0)
		return NAN;
	if (position < 1)
		return sorted[0];
	if (position >= (double)n)
		return sorted[n - 1];
	whole = (size_t)floor(position);
	fraction = position - (double)whole;
	return sorted[whole - 1] + fraction * (sorted[whole] - sorted[whole - 1]);
}

double cs_median(const double *values, size_t count)
{
	double sorted[CS_HISTORY_LENGTH * 4];

	if (count == 0 || count > sizeof(sorted) / sizeof(sorted[0]))
		return NAN;
	memcpy(sorted, values, count * sizeof(*values));
	qsort(sorted, count, sizeof(*sorted), cs_compare_double);
	return cs_percentile_sorted(sorted, count, 0.5);
}

double cs_mad(const double *values, size_t count)
{
	double deviation[CS_HISTORY_LENGTH * 4], median;

	if (count == 0 || count > sizeof(deviation) / sizeof(deviation[0]))
		return 0;
	median = cs_median(values, count);
	for (size_t i = 0; i < count; i++)
		deviation[i] = fabs(median - values[i]);
	return cs_median(deviation, count);
}

double cs_iqr(double *values, size_t count)
{
	long q1, q3;

	qsort(values, count, sizeof(*values), cs_compare_double);
	q1 = lround(0.25 * (double)(count + 1)) - 1;
	q3 = lround(0.75 * (double)(count + 1)) - 1;
	if (q1 < 0 || q3 < 0 || (size_t)q3 >= count)
		return 0;
	return values[q3] - values[q1];
}

int cs_linear_fit(const double *y, size_t n, double *intercept_p, double *slope_p)
{
	double sx = 0, sy = 0, sxx = 0, sxy = 0, denominator;

	if (n < 2)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		double x = (double)(i + 1);

		sx += x;
		sy += y[i];
		sxx += x * x;
		sxy += x * y[i];
	}
	denominator = (double)n * sxx - sx * sx;
	if (denominator == 0)
		return -EINVAL;
	*slope_p = ((double)n * sxy - sx * sy) / denominator;
	*intercept_p = (sy - *slope_p * sx) / (double)n;
	return 0;
}

double cs_r_squared(const double *const *x, size_t k, const double *y, size_t n)
{
	size_t p = k + 1; /* with the intercept */
	double a[CS_HISTORY_LENGTH + 1][CS_HISTORY_LENGTH + 2];
	double beta[CS_HISTORY_LENGTH + 1], mean = 0, total = 0, residual = 0;

	if (n <= p || p > CS_HISTORY_LENGTH)
		return -1;
	/* Normal equations [X'X | X'y], X = [1, x_0 .. x_k-1]. */
	for (size_t r = 0; r < p; r++) {
		for (size_t c = 0; c <= p; c++) {
			double sum = 0;

			for (size_t i = 0; i < n; i++) {
				double xr = r ? x[r - 1][i] : 1, xc;

				xc = c == p ? y[i] : (c ? x[c - 1][i] : 1);
				sum += xr * xc;
			}
			a[r][c] = sum;
		}
	}
	for (size_t c = 0; c < p; c++) {
		size_t pivot = c;

		for (size_t r = c + 1; r < p; r++)
			if (fabs(a[r][c]) > fabs(a[pivot][c]))
				pivot = r;
		if (fabs(a[pivot][c]) < 1e-12)
			return -1;
		if (pivot != c)
			for (size_t j = 0; j <= p; j++) {
				double swap = a[c][j];

				a[c][j] = a[pivot][j];
				a[pivot][j] = swap;
			}
		for (size_t r = 0; r < p; r++) {
			double factor;

			if (r == c)
				continue;
			factor = a[r][c] / a[c][c];
			for (size_t j = c; j <= p; j++)
				a[r][j] -= factor * a[c][j];
		}
	}
	for (size_t c = 0; c < p; c++)
		beta[c] = a[c][p] / a[c][c];
	for (size_t i = 0; i < n; i++)
		mean += y[i];
	mean /= (double)n;
	for (size_t i = 0; i < n; i++) {
		double fit = beta[0];

		for (size_t j = 0; j < k; j++)
			fit += beta[j + 1] * x[j][i];
		residual += (y[i] - fit) * (y[i] - fit);
		total += (y[i] - mean) * (y[i] - mean);
	}
	if (total == 0)
		return -1;
	return 1 - residual / total;
}

void cs_metrics(double energy_joules, double violation_seconds, double active_seconds,
		double migration_lost_mips_seconds, double requested_mips_seconds,
		struct cs_result *result)
{
	result->energy_kwh = energy_joules / 3.6e6;
	result->slatah = active_seconds > 0 ? violation_seconds / active_seconds : 0;
	result->pdm = requested_mips_seconds > 0
			      ? migration_lost_mips_seconds / requested_mips_seconds
			      : 0;
	result->slav = result->slatah * result->pdm;
	result->esv = result->energy_kwh * result->slav;
}

/* --- the simulation --- */

struct cs_vm {
	double mips;
	int ram;
	int host; /* the host it runs on; -1 once finished */
	int in_migration;
	double request;			   /* MIPS asked at the last update */
	double history[CS_HISTORY_LENGTH]; /* utilisation, newest first */
	size_t history_length;
	double history_time;
	/* last state-history entry */
	int entry_valid, entry_migrating;
	double entry_time, entry_allocated, entry_requested;
};

struct cs_slot {
	int vm;
	int incoming; /* migrating in: 10 % of its demand here */
};

struct cs_host {
	int type;
	double pe_mips, total_mips;
	struct cs_slot *slots;
	size_t count, capacity;
	double utilisation_mips; /* at the last update */
	int entry_valid, entry_active;
	double entry_time, entry_allocated, entry_requested;
};

struct cs_migration {
	int vm, target;
	double time;
};

struct cs_sim {
	const struct plan_sim_trace *trace;
	const struct cs_config *config;
	const struct cs_policy *policy;
	struct cs_host *hosts;
	struct cs_vm *vms;
	size_t host_count, vm_count;
	double last_process;
	double energy, violation_seconds, active_seconds, lost_mips_seconds, requested_mips_seconds;
	size_t migrations;
	struct cs_migration *pending;
	size_t pending_count, pending_capacity;
	unsigned long long random_state;
	/* scratch */
	unsigned char *excluded, *excluded_place;
	int *order;
	long unplaced_vm; /* the VM the first placement found no host for, -1 */
};

static double cs_vm_utilisation(const struct cs_sim *sim, int vm, double time)
{
	const double *row = sim->trace->utilisation + (size_t)vm * sim->trace->samples;
	size_t samples = sim->trace->samples;
	double u1, u2;
	size_t t1, t2;

	/* UtilizationModelPlanetLabInMemory: the last sample repeats once past the end. */
#define CS_SAMPLE(i) ((i) < samples ? row[(i)] : row[samples - 1])
	if (fmod(time, CS_INTERVAL) == 0)
		return CS_SAMPLE((size_t)(time / CS_INTERVAL));
	t1 = (size_t)floor(time / CS_INTERVAL);
	t2 = (size_t)ceil(time / CS_INTERVAL);
	u1 = CS_SAMPLE(t1);
	u2 = CS_SAMPLE(t2);
#undef CS_SAMPLE
	return u1 +
	       (u2 - u1) / ((double)(t2 - t1) * CS_INTERVAL) * (time - (double)t1 * CS_INTERVAL);
}

/* Room for one more element in a growing array: doubles *capacity_p when count reaches it. */
static int cs_reserve(void **array_p, size_t *capacity_p, size_t count, size_t size)
{
	void *array;
	size_t capacity;

	if (count < *capacity_p)
		return 0;
	capacity = *capacity_p ? *capacity_p * 2 : 16;
	array = realloc(*array_p, capacity * size);
	if (!array)
		return -ENOMEM;
	*array_p = array;
	*capacity_p = capacity;
	return 0;
}

static int cs_host_add(struct cs_host *host, int vm, int incoming)
{
	if (cs_reserve((void **)&host->slots, &host->capacity, host->count, sizeof(*host->slots)))
		return -ENOMEM;
	host->slots[host->count].vm = vm;
	host->slots[host->count++].incoming = incoming;
	return 0;
}

static void cs_host_remove(struct cs_host *host, int vm, int incoming)
{
	for (size_t i = 0; i < host->count; i++) {
		if (host->slots[i].vm == vm && host->slots[i].incoming == incoming) {
			memmove(&host->slots[i], &host->slots[i + 1],
				(host->count - i - 1) * sizeof(*host->slots));
			host->count--;
			return;
		}
	}
}

/* The over-subscription scheduler's outcome for the VMs on a host: what each gets, the host's
 * utilisation as CloudSim counts it, the total requested, the MIPS still free and the sum of
 * allocations as the placement sees it (getUtilizationOfCpuMips). */
struct cs_schedule {
	double utilisation_mips, requested_mips, available_mips, allocated_mips;
};

static double cs_allocation(const struct cs_sim *sim, const struct cs_host *host, size_t slot,
			    double scale, int scaled)
{
	const struct cs_vm *vm = &sim->vms[host->slots[slot].vm];
	double mips = fmin(vm->request, host->pe_mips);

	if (host->slots[slot].incoming)
		mips = scaled ? floor(mips * 0.1 * scale) : mips * 0.1;
	else if (vm->in_migration)
		mips = scaled ? floor(mips * scale * 0.9) : mips * 0.9;
	else if (scaled)
		mips = floor(mips * scale);
	return mips;
}

static void cs_host_schedule(const struct cs_sim *sim, const struct cs_host *host,
			     double *allocation, struct cs_schedule *schedule)
{
	double asked = 0, scale = 1;
	int scaled;

	memset(schedule, 0, sizeof(*schedule));
	for (size_t i = 0; i < host->count; i++) {
		const struct cs_vm *vm = &sim->vms[host->slots[i].vm];
		double mips = fmin(vm->request, host->pe_mips);

		asked += host->slots[i].incoming ? mips * 0.1 : mips;
		schedule->requested_mips += vm->request;
	}
	scaled = asked > host->total_mips;
	if (scaled)
		scale = host->total_mips / asked;
	schedule->available_mips = scaled ? 0 : host->total_mips - asked;
	for (size_t i = 0; i < host->count; i++) {
		const struct cs_vm *vm = &sim->vms[host->slots[i].vm];
		double mips = cs_allocation(sim, host, i, scale, scaled);

		if (allocation)
			allocation[i] = mips;
		if (host->slots[i].incoming) {
			schedule->utilisation_mips += mips;
			schedule->allocated_mips += mips * 0.9 / 0.1 + mips;
		} else {
			schedule->utilisation_mips += vm->in_migration ? mips / 0.9 : mips;
			schedule->allocated_mips += mips;
		}
	}
}

static double cs_clamp_utilisation(double utilisation)
{
	return utilisation > 1 && utilisation < 1.01 ? 1 : utilisation;
}

static double cs_host_utilisation(const struct cs_host *host)
{
	return cs_clamp_utilisation(host->utilisation_mips / host->total_mips);
}

static void cs_host_entry(struct cs_sim *sim, struct cs_host *host, double time, double allocated,
			  double requested)
{
	if (host->entry_valid && host->entry_time != time && host->entry_active) {
		double dt = time - host->entry_time;

		sim->active_seconds += dt;
		if (host->entry_allocated < host->entry_requested)
			sim->violation_seconds += dt;
	}
	host->entry_valid = 1;
	host->entry_time = time;
	host->entry_allocated = allocated;
	host->entry_requested = requested;
	host->entry_active = allocated > 0;
}

static void cs_vm_entry(struct cs_sim *sim, struct cs_vm *vm, double time, double allocated,
			double requested, int migrating)
{
	if (vm->entry_valid && vm->entry_time != time) {
		double dt = time - vm->entry_time;

		sim->requested_mips_seconds += vm->entry_requested * dt;
		if (vm->entry_allocated < vm->entry_requested && vm->entry_migrating)
			sim->lost_mips_seconds += (vm->entry_requested - vm->entry_allocated) * dt;
	}
	vm->entry_valid = 1;
	vm->entry_time = time;
	vm->entry_allocated = allocated;
	vm->entry_requested = requested;
	vm->entry_migrating = migrating;
}

/* One host's updateVmsProcessing(): new requests, allocation, state-history entries. */
static void cs_host_update(struct cs_sim *sim, struct cs_host *host, double time)
{
	double allocation[host->count + 1];
	struct cs_schedule schedule;

	for (size_t i = 0; i < host->count; i++) {
		struct cs_vm *vm = &sim->vms[host->slots[i].vm];

		vm->request = cs_vm_utilisation(sim, host->slots[i].vm, time) * vm->mips;
	}
	cs_host_schedule(sim, host, allocation, &schedule);
	for (size_t i = 0; i < host->count; i++) {
		struct cs_vm *vm = &sim->vms[host->slots[i].vm];

		if (!host->slots[i].incoming)
			cs_vm_entry(sim, vm, time, allocation[i], vm->request, vm->in_migration);
	}
	host->utilisation_mips = schedule.utilisation_mips;
	cs_host_entry(sim, host, time, schedule.utilisation_mips, schedule.requested_mips);
}

/* The datacenter's update: every host, the energy since the last one, finished VMs out. */
static void cs_update(struct cs_sim *sim, double time)
{
	double dt = time - sim->last_process;

	for (size_t h = 0; h < sim->host_count; h++) {
		struct cs_host *host = &sim->hosts[h];
		double before = cs_host_utilisation(host);

		cs_host_update(sim, host, time);
		if (dt > 0)
			sim->energy += cs_energy(host->type, before, cs_host_utilisation(host), dt,
						 sim->config->idle_host_power && host->count);
	}
	for (size_t h = 0; h < sim->host_count; h++) {
		struct cs_host *host = &sim->hosts[h];

		for (size_t i = 0; i < host->count;) {
			struct cs_vm *vm = &sim->vms[host->slots[i].vm];

			if (!host->slots[i].incoming && !vm->in_migration && vm->request == 0) {
				vm->host = -1;
				cs_host_remove(host, host->slots[i].vm, 0);
				continue;
			}
			i++;
		}
	}
	sim->last_process = time;
}

/* PowerVm keeps a utilisation sample when the clock is on a scheduling boundary. */
static void cs_record_history(struct cs_sim *sim, double time)
{
	if (fmod(time - CS_START, CS_INTERVAL) != 0)
		return;
	for (size_t v = 0; v < sim->vm_count; v++) {
		struct cs_vm *vm = &sim->vms[v];

		if (vm->host < 0 || time <= vm->history_time)
			continue;
		memmove(&vm->history[1], &vm->history[0],
			(CS_HISTORY_LENGTH - 1) * sizeof(vm->history[0]));
		vm->history[0] = vm->request / vm->mips;
		if (vm->history_length < CS_HISTORY_LENGTH)
			vm->history_length++;
		vm->history_time = time;
	}
}

/* PowerHostUtilizationHistory.getUtilizationHistory(): the VMs' histories weighted by their
 * MIPS, zero tail trimmed (an all-zero history has length 1, as MathUtil counts it). */
static size_t cs_host_history(const struct cs_sim *sim, const struct cs_host *host, double *history)
{
	size_t length = CS_HISTORY_LENGTH;

	memset(history, 0, CS_HISTORY_LENGTH * sizeof(*history));
	for (size_t i = 0; i < host->count; i++) {
		const struct cs_vm *vm = &sim->vms[host->slots[i].vm];

		for (size_t j = 0; j < vm->history_length; j++)
			history[j] += vm->history[j] * vm->mips / host->total_mips;
	}
	while (length > 1 && history[length - 1] == 0)
		length--;
	return length;
}

static double cs_host_requested(const struct cs_sim *sim, const struct cs_host *host)
{
	double requested = 0;

	for (size_t i = 0; i < host->count; i++)
		requested += sim->vms[host->slots[i].vm].request;
	return requested;
}

static double cs_migration_seconds(const struct cs_vm *vm)
{
	return vm->ram / CS_HOST_BW_MB;
}

/* rmig's detector: the chance that the host's demand exceeds its capacity at the next step,
 * each VM's demand a random walk with the spread of its own step-to-step changes. */
static double cs_overload_probability(const struct cs_sim *sim, const struct cs_host *host,
				      int skip_vm)
{
	double mean = 0, variance = 0;

	for (size_t i = 0; i < host->count; i++) {
		const struct cs_vm *vm = &sim->vms[host->slots[i].vm];
		double squares = 0;

		if (host->slots[i].vm == skip_vm)
			continue;
		if (vm->request > host->pe_mips)
			return 1; /* already capped by one PE */
		mean += vm->request;
		for (size_t j = 0; j + 1 < vm->history_length; j++) {
			double change = (vm->history[j] - vm->history[j + 1]) * vm->mips;

			squares += change * change;
		}
		if (vm->history_length > 1)
			variance += squares / (double)(vm->history_length - 1);
	}
	if (variance == 0)
		return mean > host->total_mips ? 1 : 0;
	return 0.5 * erfc((host->total_mips - mean) / sqrt(2 * variance));
}

/* The cheapest move off a host: what relieving it costs at least, in seconds a destination
 * spends taking a VM in (CloudSim counts the destination as short of MIPS all that time). */
static double cs_cheapest_move(const struct cs_sim *sim, const struct cs_host *host)
{
	double cheapest = DBL_MAX;

	for (size_t i = 0; i < host->count; i++)
		cheapest = fmin(cheapest, cs_migration_seconds(&sim->vms[host->slots[i].vm]));
	return cheapest;
}

static int cs_static_over(const struct cs_sim *sim, const struct cs_host *host, double threshold)
{
	return cs_host_requested(sim, host) / host->total_mips > threshold;
}

static int cs_is_over(struct cs_sim *sim, const struct cs_host *host)
{
	const struct cs_policy *policy = sim->policy;
	double history[CS_HISTORY_LENGTH], limit, intercept, slope;
	size_t length;

	switch (policy->detect) {
	case CS_DETECT_THR:
		return cs_static_over(sim, host, policy->parameter);
	case CS_DETECT_MAD:
	case CS_DETECT_IQR:
		length = cs_host_history(sim, host, history);
		if (length < CS_MIN_HISTORY_MAD)
			return cs_static_over(sim, host, CS_STATIC_FALLBACK);
		limit = 1 - policy->parameter * (policy->detect == CS_DETECT_MAD
							 ? cs_mad(history, length)
							 : cs_iqr(history, length));
		return cs_host_requested(sim, host) / host->total_mips > limit;
	case CS_DETECT_LR:
	case CS_DETECT_LRR: {
		double reversed[CS_LR_LENGTH], predicted;
		int max_ram = 0;

		length = cs_host_history(sim, host, history);
		if (length < CS_LR_LENGTH)
			return cs_static_over(sim, host, CS_STATIC_FALLBACK);
		for (size_t i = 0; i < CS_LR_LENGTH; i++)
			reversed[i] = history[CS_LR_LENGTH - i - 1];
		/* CloudSim's tricube (and bisquare) weights are never <= 0, and its weighted
		 * regression only applies them when 40 % are: both regressions are plain OLS. */
		if (cs_linear_fit(reversed, CS_LR_LENGTH, &intercept, &slope))
			return cs_static_over(sim, host, CS_STATIC_FALLBACK);
		for (size_t i = 0; i < host->count; i++)
			if (sim->vms[host->slots[i].vm].ram > max_ram)
				max_ram = sim->vms[host->slots[i].vm].ram;
		predicted = intercept +
			    slope * (CS_LR_LENGTH + ceil(max_ram / CS_HOST_BW_MB / CS_INTERVAL));
		return predicted * policy->parameter >= 1;
	}
	case CS_DETECT_RMIG:
		if (!host->count)
			return 0;
		return cs_overload_probability(sim, host, -1) * CS_INTERVAL >
		       cs_cheapest_move(sim, host);
	default:
		return 0;
	}
}

static int cs_random(struct cs_sim *sim, int bound)
{
	sim->random_state = sim->random_state * 6364136223846793005ULL + 1442695040888963407ULL;
	return (int)((sim->random_state >> 33) % (unsigned long long)bound);
}

static int cs_select_mmt(const struct cs_sim *sim, const struct cs_host *host)
{
	int chosen = -1;
	double least = DBL_MAX;

	for (size_t i = 0; i < host->count; i++) {
		const struct cs_vm *vm = &sim->vms[host->slots[i].vm];

		if (!vm->in_migration && vm->ram < least) {
			least = vm->ram;
			chosen = host->slots[i].vm;
		}
	}
	return chosen;
}

static int cs_select_mc(const struct cs_sim *sim, const struct cs_host *host)
{
	const double *columns[CS_HISTORY_LENGTH];
	size_t n = host->count, m = CS_HISTORY_LENGTH;
	double best = DBL_MIN;
	int chosen = 0;

	for (size_t i = 0; i < n; i++)
		if (sim->vms[host->slots[i].vm].history_length < m)
			m = sim->vms[host->slots[i].vm].history_length;
	if (n < 2 || n > CS_HISTORY_LENGTH || m < n + 1)
		return cs_select_mmt(sim, host);
	for (size_t i = 0; i < n; i++) {
		size_t k = 0;
		double r2;

		for (size_t j = 0; j < n; j++)
			if (j != i)
				columns[k++] = sim->vms[host->slots[j].vm].history;
		r2 = cs_r_squared(columns, k, sim->vms[host->slots[i].vm].history, m);
		if (r2 < 0)
			return cs_select_mmt(sim, host);
		if (r2 > best) {
			best = r2;
			chosen = (int)i;
		}
	}
	return host->slots[chosen].vm;
}

/* rmig's selection: among the VMs whose move buys back more overload time than it costs, the
 * one that brings the host back under the rule at the least CPU lost while it moves (what PDM
 * counts); when no single move does, the one relieving most per second of migration. */
static int cs_select_cost(struct cs_sim *sim, const struct cs_host *host)
{
	double now = cs_overload_probability(sim, host, -1), best_relief = 0, least_lost = DBL_MAX;
	int relieving = -1, best = -1;

	for (size_t i = 0; i < host->count; i++) {
		const struct cs_vm *vm = &sim->vms[host->slots[i].vm];
		double after, seconds, relief;

		if (vm->in_migration)
			continue;
		after = cs_overload_probability(sim, host, host->slots[i].vm);
		seconds = cs_migration_seconds(vm);
		if ((now - after) * CS_INTERVAL <= seconds)
			continue;
		if (after * CS_INTERVAL <= seconds && vm->request * seconds < least_lost) {
			least_lost = vm->request * seconds;
			relieving = host->slots[i].vm;
		}
		relief = (now - after) * CS_INTERVAL / seconds;
		if (relief > best_relief) {
			best_relief = relief;
			best = host->slots[i].vm;
		}
	}
	return relieving >= 0 ? relieving : best;
}

static int cs_select(struct cs_sim *sim, const struct cs_host *host)
{
	size_t migratable = 0;
	int chosen = -1;
	double least = DBL_MAX;

	for (size_t i = 0; i < host->count; i++)
		migratable += !sim->vms[host->slots[i].vm].in_migration;
	if (!migratable)
		return -1;
	switch (sim->policy->select) {
	case CS_SELECT_MMT:
		return cs_select_mmt(sim, host);
	case CS_SELECT_MC:
		return cs_select_mc(sim, host);
	case CS_SELECT_RS:
		return host->slots[cs_random(sim, (int)host->count)].vm;
	case CS_SELECT_MU:
		for (size_t i = 0; i < host->count; i++) {
			const struct cs_vm *vm = &sim->vms[host->slots[i].vm];

			if (vm->request / vm->mips < least) {
				least = vm->request / vm->mips;
				chosen = host->slots[i].vm;
			}
		}
		return chosen;
	case CS_SELECT_COST:
		return cs_select_cost(sim, host);
	}
	return -1;
}

/* findHostForVm(): the host whose power rises least, among those that can run the VM and are
 * not overloaded once it is there. */
static int cs_find_host(struct cs_sim *sim, int vm_index, const unsigned char *excluded)
{
	struct cs_vm *vm = &sim->vms[vm_index];
	double least = DBL_MAX;
	int chosen = -1;

	for (size_t h = 0; h < sim->host_count; h++) {
		struct cs_host *host = &sim->hosts[h];
		struct cs_schedule schedule;
		double after, power;
		int over;

		if (excluded[h] || vm->request > host->pe_mips)
			continue;
		cs_host_schedule(sim, host, NULL, &schedule);
		if (schedule.available_mips < vm->request)
			continue;
		if (schedule.allocated_mips != 0) {
			if (cs_host_add(host, vm_index, 0))
				continue;
			over = cs_is_over(sim, host);
			cs_host_remove(host, vm_index, 0);
			if (over)
				continue;
		}
		after = (schedule.allocated_mips + vm->request) / host->total_mips;
		power = cs_power(host->type, after);
		if (power < 0)
			continue;
		/* CloudSim counts a switched-off host (0 %) as drawing P(0) already, so waking
		 * one looks as cheap as loading a running host; rmig counts the whole P(0) it
		 * draws once on, the idle power CloudSim's own energy rule charges it. */
		if (sim->policy->detect != CS_DETECT_RMIG || cs_host_utilisation(host) > 0)
			power -= cs_power(host->type, cs_host_utilisation(host));
		if (power < least) {
			least = power;
			chosen = (int)h;
		}
	}
	return chosen;
}

struct cs_plan {
	struct cs_migration *moves;
	size_t count, capacity;
};

static int cs_plan_add(struct cs_plan *plan, int vm, int target)
{
	if (cs_reserve((void **)&plan->moves, &plan->capacity, plan->count, sizeof(*plan->moves)))
		return -ENOMEM;
	plan->moves[plan->count].vm = vm;
	plan->moves[plan->count++].target = target;
	return 0;
}

static const struct cs_sim *cs_sort_sim;

static int cs_compare_request(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	double rx = cs_sort_sim->vms[x].request, ry = cs_sort_sim->vms[y].request;

	return rx > ry ? -1 : rx < ry ? 1 : 0;
}

/* PowerVmList.sortByCpuUtilization(): decreasing, stable (insertion sort; lists are short). */
static void cs_sort_by_request(const struct cs_sim *sim, int *vms, size_t count)
{
	cs_sort_sim = sim;
	for (size_t i = 1; i < count; i++) {
		int key = vms[i];
		size_t j = i;

		while (j > 0 && cs_compare_request(&vms[j - 1], &key) > 0) {
			vms[j] = vms[j - 1];
			j--;
		}
		vms[j] = key;
	}
}

/* Places each VM by cs_find_host(); with all_or_nothing, undoes every placement when one VM
 * finds no host (an underloaded host is emptied completely or not at all). */
static int cs_place(struct cs_sim *sim, int *vms, size_t count, const unsigned char *excluded,
		    int all_or_nothing, struct cs_plan *plan)
{
	size_t first = plan->count;

	cs_sort_by_request(sim, vms, count);
	for (size_t i = 0; i < count; i++) {
		int target = cs_find_host(sim, vms[i], excluded);

		if (target < 0) {
			if (!all_or_nothing)
				continue;
			for (size_t j = first; j < plan->count; j++)
				cs_host_remove(&sim->hosts[plan->moves[j].target],
					       plan->moves[j].vm, 0);
			plan->count = first;
			return 0;
		}
		if (cs_host_add(&sim->hosts[target], vms[i], 0) ||
		    cs_plan_add(plan, vms[i], target))
			return -ENOMEM;
	}
	return 0;
}

/* Seconds of migration to empty a host: the time its destinations spend short of MIPS. */
static double cs_leaving_seconds(const struct cs_sim *sim, const struct cs_host *host)
{
	double seconds = 0;

	for (size_t i = 0; i < host->count; i++)
		if (!sim->vms[host->slots[i].vm].in_migration)
			seconds += cs_migration_seconds(&sim->vms[host->slots[i].vm]);
	return seconds;
}

/* optimizeAllocation(): the migrations to start now. Works on the hosts' VM lists and puts them
 * back as they were before returning. */
static int cs_optimize(struct cs_sim *sim, struct cs_plan *plan)
{
	size_t hosts = sim->host_count, saved_total = 0, chosen_count = 0, excluded_count = 0;
	struct cs_slot *saved;
	size_t *saved_count;
	int *chosen = sim->order, ret = 0;

	for (size_t h = 0; h < hosts; h++)
		saved_total += sim->hosts[h].count;
	saved = malloc((saved_total + 1) * sizeof(*saved));
	saved_count = malloc(hosts * sizeof(*saved_count));
	if (!saved || !saved_count) {
		ret = -ENOMEM;
		goto out;
	}
	for (size_t h = 0, at = 0; h < hosts; h++) {
		/* An empty host may have no slot array yet: memcpy's source must not be NULL. */
		if (sim->hosts[h].count)
			memcpy(&saved[at], sim->hosts[h].slots,
			       sim->hosts[h].count * sizeof(*saved));
		at += saved_count[h] = sim->hosts[h].count;
	}
	memset(sim->excluded, 0, hosts);
	for (size_t h = 0; h < hosts; h++)
		sim->excluded[h] = (unsigned char)cs_is_over(sim, &sim->hosts[h]);
	for (size_t h = 0; h < hosts; h++) {
		struct cs_host *host = &sim->hosts[h];

		while (sim->excluded[h]) {
			int vm = cs_select(sim, host);

			if (vm < 0)
				break;
			chosen[chosen_count++] = vm;
			cs_host_remove(host, vm, 0);
			if (!cs_is_over(sim, host))
				break;
		}
	}
	ret = cs_place(sim, chosen, chosen_count, sim->excluded, 0, plan);
	if (ret)
		goto restore;

	/* Consolidation: empty the least utilised hosts. Hosts switched off (0 % at the last
	 * update) neither give nor take; destinations of this pass are not emptied after. */
	for (size_t h = 0; h < hosts; h++) {
		if (cs_host_utilisation(&sim->hosts[h]) == 0)
			sim->excluded[h] = 1;
		sim->excluded_place[h] = sim->excluded[h];
	}
	for (size_t h = 0; h < hosts; h++)
		excluded_count += sim->excluded[h];
	while (excluded_count < hosts) {
		double least = 1;
		int under = -1;
		size_t count = 0, first = plan->count;

		for (size_t h = 0; h < hosts; h++) {
			double utilisation = cs_host_utilisation(&sim->hosts[h]);
			int all_leaving = 1;

			if (sim->excluded[h])
				continue;
			for (size_t i = 0; i < sim->hosts[h].count; i++)
				if (!sim->vms[sim->hosts[h].slots[i].vm].in_migration)
					all_leaving = 0;
			/* rmig: the host whose VMs leave in the fewest migration seconds first
			 * (each second a destination spends short of MIPS), not the least used. */
			if (sim->policy->detect == CS_DETECT_RMIG && utilisation > 0 &&
			    utilisation < 1 && !all_leaving)
				utilisation = cs_leaving_seconds(sim, &sim->hosts[h]) / CS_LIMIT;
			if (utilisation > 0 && utilisation < least && !all_leaving) {
				least = utilisation;
				under = (int)h;
			}
		}
		if (under < 0)
			break;
		sim->excluded[under] = sim->excluded_place[under] = 1;
		excluded_count++;
		for (size_t i = 0; i < sim->hosts[under].count; i++)
			if (!sim->vms[sim->hosts[under].slots[i].vm].in_migration)
				chosen[count++] = sim->hosts[under].slots[i].vm;
		if (!count)
			continue;
		ret = cs_place(sim, chosen, count, sim->excluded_place, 1, plan);
		if (ret)
			goto restore;
		for (size_t j = first; j < plan->count; j++) {
			if (!sim->excluded[plan->moves[j].target]) {
				sim->excluded[plan->moves[j].target] = 1;
				excluded_count++;
			}
		}
	}
restore:
	for (size_t h = 0, at = 0; h < hosts; h++) {
		struct cs_host *host = &sim->hosts[h];

		host->count = 0;
		for (size_t i = 0; i < saved_count[h]; i++)
			cs_host_add(host, saved[at + i].vm, saved[at + i].incoming);
		at += saved_count[h];
	}
out:
	free(saved);
	free(saved_count);
	return ret;
}

static int cs_start_migrations(struct cs_sim *sim, const struct cs_plan *plan, double time)
{
	for (size_t i = 0; i < plan->count; i++) {
		const struct cs_migration *move = &plan->moves[i];
		struct cs_vm *vm = &sim->vms[move->vm];
		struct cs_host *target = &sim->hosts[move->target];
		int already = 0;

		for (size_t s = 0; s < target->count; s++)
			if (target->slots[s].vm == move->vm && target->slots[s].incoming)
				already = 1;
		vm->in_migration = 1;
		if (!already) {
			if (cs_host_add(target, move->vm, 1))
				return -ENOMEM;
			cs_host_update(sim, target, time);
			if (vm->host >= 0)
				cs_host_update(sim, &sim->hosts[vm->host], time);
		}
		sim->migrations++;
		if (cs_reserve((void **)&sim->pending, &sim->pending_capacity, sim->pending_count,
			       sizeof(*sim->pending)))
			return -ENOMEM;
		sim->pending[sim->pending_count] = *move;
		sim->pending[sim->pending_count++].time = time + cs_migration_seconds(vm);
	}
	return 0;
}

/* Completes the migrations due up to limit, in time order; each batch ends with an update. */
static void cs_complete_migrations(struct cs_sim *sim, double limit)
{
	while (sim->pending_count) {
		double next = DBL_MAX;
		size_t kept = 0;

		for (size_t i = 0; i < sim->pending_count; i++)
			next = fmin(next, sim->pending[i].time);
		if (next > limit)
			return;
		if (next > sim->last_process)
			cs_update(sim, next);
		for (size_t i = 0; i < sim->pending_count; i++) {
			struct cs_migration *move = &sim->pending[i];
			struct cs_vm *vm = &sim->vms[move->vm];

			if (move->time != next) {
				sim->pending[kept++] = *move;
				continue;
			}
			if (vm->host >= 0)
				cs_host_remove(&sim->hosts[vm->host], move->vm, 0);
			cs_host_remove(&sim->hosts[move->target], move->vm, 1);
			cs_host_add(&sim->hosts[move->target], move->vm, 0);
			vm->host = move->target;
			vm->in_migration = 0;
		}
		sim->pending_count = kept;
		cs_update(sim, next);
	}
}

/* The first placement, at time 0: every VM asks for its full MIPS and memory; the placement is
 * the policy's findHostForVm() (first fit for the policies that never migrate). */
static int cs_initial_placement(struct cs_sim *sim)
{
	size_t hosts = sim->host_count;
	double *allocated = calloc(hosts, sizeof(*allocated));
	int *ram = calloc(hosts, sizeof(*ram));
	int power_aware =
		sim->policy->detect != CS_DETECT_NONE_NPA && sim->policy->detect != CS_DETECT_DVFS;
	int ret = 0;

	if (!allocated || !ram) {
		ret = -ENOMEM;
		goto out;
	}
	for (size_t v = 0; v < sim->vm_count; v++) {
		struct cs_vm *vm = &sim->vms[v];
		double least = DBL_MAX, threshold;
		int chosen = -1;

		threshold = sim->policy->detect == CS_DETECT_THR ? sim->policy->parameter
								 : CS_STATIC_FALLBACK;
		for (size_t h = 0; h < hosts && !(chosen >= 0 && !power_aware); h++) {
			struct cs_host *host = &sim->hosts[h];
			double after, power;

			if (host->pe_mips < vm->mips ||
			    host->total_mips - allocated[h] < vm->mips ||
			    ram[h] + vm->ram > CS_HOST_RAM || host->count >= CS_HOST_VMS_BY_BW)
				continue;
			if (!power_aware) {
				chosen = (int)h;
				break;
			}
			/* Placed VMs ask for nothing yet (no cloudlet): only this one counts. */
			if (allocated[h] != 0 && vm->mips / host->total_mips > threshold)
				continue;
			after = (allocated[h] + vm->mips) / host->total_mips;
			power = cs_power(host->type, after);
			if (power < 0)
				continue;
			power -= cs_power(host->type, 0);
			if (power < least) {
				least = power;
				chosen = (int)h;
			}
		}
		if (chosen < 0) {
			/* CloudSim 4.0's PowerDatacenterBroker exits here ("Creation of VM #v
			 * failed"): there is no run to model. The caller says so. */
			sim->unplaced_vm = (long)v;
			ret = -ENOSPC;
			goto out;
		}
		allocated[chosen] += vm->mips;
		ram[chosen] += vm->ram;
		vm->host = chosen;
		if (cs_host_add(&sim->hosts[chosen], (int)v, 0)) {
			ret = -ENOMEM;
			goto out;
		}
	}
out:
	free(allocated);
	free(ram);
	return ret;
}

static void cs_free(struct cs_sim *sim)
{
	if (sim->hosts)
		for (size_t h = 0; h < sim->host_count; h++)
			free(sim->hosts[h].slots);
	free(sim->hosts);
	free(sim->vms);
	free(sim->pending);
	free(sim->excluded);
	free(sim->excluded_place);
	free(sim->order);
}

/* VM v's type (index into cs_vm_mips/cs_vm_ram) among vms: in four blocks of the VM list, as
 * Helper.createVmList() deals them, or in turn (row modulo 4). */
static size_t cs_vm_type(int in_blocks, size_t vms, size_t v)
{
	return in_blocks ? v / ((vms + 3) / 4) : v % 4;
}

static int cs_setup(struct cs_sim *sim, const struct plan_sim_trace *trace,
		    const struct cs_config *config, const struct cs_policy *policy)
{
	memset(sim, 0, sizeof(*sim));
	sim->trace = trace;
	sim->config = config;
	sim->policy = policy;
	sim->host_count = config->hosts;
	sim->vm_count = trace->vms;
	sim->random_state = config->seed;
	sim->unplaced_vm = -1;
	sim->hosts = calloc(sim->host_count, sizeof(*sim->hosts));
	sim->vms = calloc(sim->vm_count, sizeof(*sim->vms));
	sim->excluded = calloc(sim->host_count, 1);
	sim->excluded_place = calloc(sim->host_count, 1);
	sim->order = calloc(sim->vm_count + 1, sizeof(*sim->order));
	if (!sim->hosts || !sim->vms || !sim->excluded || !sim->excluded_place || !sim->order)
		return -ENOMEM;
	for (size_t h = 0; h < sim->host_count; h++) {
		struct cs_host *host = &sim->hosts[h];

		host->type = (int)(h % 2);
		host->pe_mips = cs_host_pe_mips[host->type];
		host->total_mips = 2 * host->pe_mips;
	}
	for (size_t v = 0; v < sim->vm_count; v++) {
		/* Helper.createVmList() deals the types in four blocks of the VM list, whose order
		 * is File.listFiles()'s, which Java leaves unspecified. In blocks of the trace's
		 * rows (sorted names) the model gives what CloudSim 4.0 itself gives on those
		 * files; dealt in turn it lands nearest the published rows (Dvfs within 0.2 %). */
		size_t type = cs_vm_type(config->vm_types_in_blocks, sim->vm_count, v);

		sim->vms[v].mips = cs_vm_mips[type];
		sim->vms[v].ram = cs_vm_ram[type];
		sim->vms[v].host = -1;
		sim->vms[v].history_time = -1;
	}
	return 0;
}

int cs_run(const struct plan_sim_trace *trace, const struct cs_config *config,
	   const struct cs_policy *policy, struct cs_result *result)
{
	int migrate = policy->detect != CS_DETECT_NONE_NPA && policy->detect != CS_DETECT_DVFS;
	double clock = CS_START, planning = 0;
	struct cs_plan plan = {0};
	struct cs_sim sim;
	size_t steps = 0, planned = 0;
	int ret;

	memset(result, 0, sizeof(*result));
	result->active_series = calloc(trace->samples + 1, sizeof(double));
	result->overloaded_series = calloc(trace->samples + 1, sizeof(double));
	ret = cs_setup(&sim, trace, config, policy);
	if (!ret && (!result->active_series || !result->overloaded_series))
		ret = -ENOMEM;
	if (!ret)
		ret = cs_initial_placement(&sim);
	result->unplaced_vm = sim.unplaced_vm;
	if (ret)
		goto out;
	sim.last_process = 0;
	/* Energy of the first interval is 0: no host has been updated yet (0 % before it). */
	for (clock += CS_INTERVAL; clock <= CS_LIMIT && steps < trace->samples;
	     clock += CS_INTERVAL) {
		struct timespec start, end;
		size_t active = 0, overloaded = 0;

		cs_complete_migrations(&sim, clock);
		cs_update(&sim, clock);
		cs_record_history(&sim, clock);
		for (size_t h = 0; h < sim.host_count; h++) {
			struct cs_host *host = &sim.hosts[h];

			active += host->entry_active;
			overloaded +=
				host->entry_active && host->entry_allocated < host->entry_requested;
		}
		result->active_series[steps] = (double)active;
		result->overloaded_series[steps] = (double)overloaded;
		steps++;
		if (!migrate)
			continue;
		clock_gettime(CLOCK_MONOTONIC, &start);
		plan.count = 0;
		ret = cs_optimize(&sim, &plan);
		clock_gettime(CLOCK_MONOTONIC, &end);
		planning += (double)(end.tv_sec - start.tv_sec) +
			    (double)(end.tv_nsec - start.tv_nsec) * 1e-9;
		planned++;
		if (!ret)
			ret = cs_start_migrations(&sim, &plan, clock);
		if (ret)
			goto out;
		if (!config->quiet && steps % 12 == 0 && isatty(STDERR_FILENO))
			fprintf(stderr, "\rplan-sim: %-14s %5.1f h, %zu migrations", policy->name,
				clock / 3600, sim.migrations);
	}
	cs_complete_migrations(&sim, CS_LIMIT);
	if (policy->detect == CS_DETECT_NONE_NPA) {
		/* PowerDatacenterNonPowerAware: every host at full power from the start. */
		sim.energy = 0;
		for (size_t h = 0; h < sim.host_count; h++)
			sim.energy += cs_power(sim.hosts[h].type, 1) * sim.last_process;
	}
	cs_metrics(sim.energy, sim.violation_seconds, sim.active_seconds, sim.lost_mips_seconds,
		   sim.requested_mips_seconds, result);
	result->migrations = sim.migrations;
	result->plan_seconds_mean = planned ? planning / (double)planned : 0;
	result->steps = steps;
out:
	free(plan.moves);
	cs_free(&sim);
	if (ret)
		cs_result_free(result);
	return ret;
}

void cs_result_free(struct cs_result *result)
{
	free(result->active_series);
	free(result->overloaded_series);
	result->active_series = NULL;
	result->overloaded_series = NULL;
}

int cs_policy_parse(const char *text, struct cs_policy *policy)
{
	static const struct {
		const char *name;
		enum cs_detect detect;
		double parameter;
	} detectors[] = {
		{"npa", CS_DETECT_NONE_NPA, 0}, {"dvfs", CS_DETECT_DVFS, 0},
		{"thr", CS_DETECT_THR, 0.8},	{"iqr", CS_DETECT_IQR, 1.5},
		{"mad", CS_DETECT_MAD, 2.5},	{"lr", CS_DETECT_LR, 1.2},
		{"lrr", CS_DETECT_LRR, 1.2},	{"rmig", CS_DETECT_RMIG, 0},
	};
	static const char *const selections[] = {"mmt", "mc", "rs", "mu", "cost"};
	char detect[16] = "", select[16] = "";
	const char *colon = strchr(text, ':'), *dash = strchr(text, '-');
	size_t detect_length =
		dash ? (size_t)(dash - text) : (colon ? (size_t)(colon - text) : strlen(text));
	int found = 0;

	memset(policy, 0, sizeof(*policy));
	if (detect_length >= sizeof(detect))
		return -EINVAL;
	memcpy(detect, text, detect_length);
	if (dash) {
		size_t length = colon ? (size_t)(colon - dash - 1) : strlen(dash + 1);

		if (length >= sizeof(select))
			return -EINVAL;
		memcpy(select, dash + 1, length);
	}
	for (size_t i = 0; i < sizeof(detectors) / sizeof(detectors[0]); i++) {
		if (!strcmp(detect, detectors[i].name)) {
			policy->detect = detectors[i].detect;
			policy->parameter = detectors[i].parameter;
			found = 1;
		}
	}
	if (!found)
		return -EINVAL;
	policy->select = policy->detect == CS_DETECT_RMIG ? CS_SELECT_COST : CS_SELECT_MMT;
	if (dash) {
		found = 0;
		for (size_t i = 0; i < sizeof(selections) / sizeof(selections[0]); i++) {
			if (!strcmp(select, selections[i])) {
				policy->select = (enum cs_select)i;
				found = 1;
			}
		}
		if (!found || policy->detect <= CS_DETECT_DVFS)
			return -EINVAL;
	}
	if (colon) {
		char *end;

		if (policy->detect == CS_DETECT_RMIG)
			return -EINVAL; /* rmig has nothing to set: every input is measured */
		policy->parameter = strtod(colon + 1, &end);
		if (*end || end == colon + 1 || policy->parameter < 0)
			return -EINVAL;
	}
	snprintf(policy->name, sizeof(policy->name), "%s", text);
	return 0;
}

/* One host and its VMs, for the unit tests: the policy's detector and selection on them. */
static int cs_one_host(const struct cs_policy *policy, int host_type, const struct cs_test_vm *vms,
		       size_t count, struct cs_sim *sim, struct cs_host *host)
{
	static const struct cs_config config = {.hosts = 1, .seed = 1, .quiet = 1};

	memset(sim, 0, sizeof(*sim));
	memset(host, 0, sizeof(*host));
	sim->config = &config;
	sim->policy = policy;
	sim->hosts = host;
	sim->host_count = 1;
	sim->vm_count = count;
	sim->random_state = 1;
	sim->vms = calloc(count + 1, sizeof(*sim->vms));
	if (!sim->vms)
		return -ENOMEM;
	host->type = host_type;
	host->pe_mips = cs_host_pe_mips[host_type];
	host->total_mips = 2 * host->pe_mips;
	for (size_t v = 0; v < count; v++) {
		struct cs_vm *vm = &sim->vms[v];

		vm->mips = vms[v].mips;
		vm->ram = vms[v].ram;
		vm->request = vms[v].request;
		vm->host = 0;
		vm->history_length = vms[v].history_length;
		if (vm->history_length)
			memcpy(vm->history, vms[v].history, vm->history_length * sizeof(double));
		if (cs_host_add(host, (int)v, 0)) {
			free(sim->vms);
			free(host->slots);
			return -ENOMEM;
		}
	}
	return 0;
}

/* Runs the detector (select 0) or the selection (select 1) on the one host. */
static int cs_test_one_host(const struct cs_policy *policy, int host_type,
			    const struct cs_test_vm *vms, size_t count, int select)
{
	struct cs_host host;
	struct cs_sim sim;
	int ret = cs_one_host(policy, host_type, vms, count, &sim, &host);

	if (ret)
		return ret;
	ret = select ? cs_select(&sim, &host) : cs_is_over(&sim, &host);
	free(sim.vms);
	free(host.slots);
	return ret;
}

int cs_test_place(const struct cs_policy *policy, const struct cs_test_host *test_hosts,
		  size_t host_count, const struct cs_test_vm *vm)
{
	static const struct cs_config config = {.seed = 1, .quiet = 1};
	size_t vm_count = 1;
	struct cs_sim sim;
	int ret = -ENOMEM;

	memset(&sim, 0, sizeof(sim));
	for (size_t h = 0; h < host_count; h++)
		vm_count += test_hosts[h].count;
	sim.config = &config;
	sim.policy = policy;
	sim.host_count = host_count;
	sim.vm_count = vm_count;
	sim.hosts = calloc(host_count, sizeof(*sim.hosts));
	sim.vms = calloc(vm_count, sizeof(*sim.vms));
	sim.excluded = calloc(host_count, 1);
	if (!sim.hosts || !sim.vms || !sim.excluded)
		goto out;
	for (size_t h = 0, v = 0; h <= host_count; h++) {
		const struct cs_test_vm *from = h < host_count ? test_hosts[h].vms : vm;
		size_t count = h < host_count ? test_hosts[h].count : 1;

		for (size_t i = 0; i < count; i++, v++) {
			struct cs_vm *to = &sim.vms[v];

			to->mips = from[i].mips;
			to->ram = from[i].ram;
			to->request = from[i].request;
			to->host = h < host_count ? (int)h : -1;
			to->history_length = from[i].history_length;
			memcpy(to->history, from[i].history, sizeof(to->history));
			if (h < host_count && cs_host_add(&sim.hosts[h], (int)v, 0))
				goto out;
		}
		if (h < host_count) {
			struct cs_host *host = &sim.hosts[h];
			struct cs_schedule schedule;

			host->type = test_hosts[h].type;
			host->pe_mips = cs_host_pe_mips[host->type];
			host->total_mips = 2 * host->pe_mips;
			cs_host_schedule(&sim, host, NULL, &schedule);
			host->utilisation_mips = schedule.utilisation_mips;
		}
	}
	ret = cs_find_host(&sim, (int)vm_count - 1, sim.excluded);
out:
	if (sim.hosts)
		for (size_t h = 0; h < host_count; h++)
			free(sim.hosts[h].slots);
	free(sim.hosts);
	free(sim.vms);
	free(sim.excluded);
	return ret;
}

int cs_test_detect(const struct cs_policy *policy, int host_type, const struct cs_test_vm *vms,
		   size_t count)
{
	return cs_test_one_host(policy, host_type, vms, count, 0);
}

int cs_test_select(const struct cs_policy *policy, int host_type, const struct cs_test_vm *vms,
		   size_t count)
{
	return cs_test_one_host(policy, host_type, vms, count, 1);
}

/* --- plan-sim --model cloudsim --- */

#define CS_DEFAULT_POLICIES \
	"npa,dvfs,thr-mmt:0.8,iqr-mmt:1.5,mad-mmt:2.5,lr-mmt:1.2,lr-mc:1.2,lr-rs:1.2,rmig"
#define CS_MAX_POLICIES 32

int plan_sim_plot(const char *png, const char *title, const double *hours, size_t steps,
		  const char *const *labels, size_t count, const struct plan_sim_panel *panels)
{
	char data_path[] = "/tmp/plan-sim-plot-XXXXXX";
	int fd = mkstemp(data_path), ret = 0;
	FILE *data, *gnuplot;

	if (fd < 0)
		return -errno;
	data = fdopen(fd, "w");
	if (!data) {
		close(fd);
		unlink(data_path);
		return -ENOMEM;
	}
	for (size_t t = 0; t < steps; t++) {
		fprintf(data, "%.4f", hours[t]);
		for (size_t p = 0; p < count; p++)
			fprintf(data, " %g %g", panels[0].series[p][t], panels[1].series[p][t]);
		fputc('\n', data);
	}
	fclose(data);
	gnuplot = popen("gnuplot", "w");
	if (!gnuplot) {
		unlink(data_path);
		return -errno;
	}
	fprintf(gnuplot,
		"set terminal pngcairo size 1200,900 noenhanced\nset output '%s'\n"
		"set multiplot layout 2,1 title '%s'\n"
		"set key outside right\nset grid\nset xlabel 'hour of the day'\n",
		png, title);
	for (size_t panel = 0; panel < 2; panel++) {
		if (panels[panel].ymax > 0)
			fprintf(gnuplot, "set ylabel '%s'\nset yrange [0:%g]\nplot ",
				panels[panel].ylabel, panels[panel].ymax);
		else
			fprintf(gnuplot, "set ylabel '%s'\nset yrange [0:*]\nplot ",
				panels[panel].ylabel);
		for (size_t p = 0; p < count; p++)
			fprintf(gnuplot, "%s'%s' using 1:%zu with lines title '%s'", p ? ", " : "",
				data_path, 2 + 2 * p + panel, labels[p]);
		fputc('\n', gnuplot);
	}
	fprintf(gnuplot, "unset multiplot\n");
	if (pclose(gnuplot) != 0) {
		fprintf(stderr, "plan-sim: gnuplot failed to write %s\n", png);
		ret = -EIO;
	}
	unlink(data_path);
	return ret;
}

static int cs_plot(const struct cs_options *options, const struct cs_policy *policies,
		   const struct cs_result *results, size_t count)
{
	size_t steps = count ? results[0].steps : 0;
	const double *active[CS_MAX_POLICIES], *overloaded[CS_MAX_POLICIES];
	const char *labels[CS_MAX_POLICIES];
	double *hours = calloc(steps + 1, sizeof(*hours));
	const char *name = strrchr(options->trace_path, '/');
	char title[256];
	int ret;

	if (!hours)
		return -ENOMEM;
	for (size_t t = 0; t < steps; t++)
		hours[t] = ((double)t + 1) * CS_INTERVAL / 3600.0;
	for (size_t p = 0; p < count; p++) {
		active[p] = results[p].active_series;
		overloaded[p] = results[p].overloaded_series;
		labels[p] = policies[p].name;
	}
	snprintf(title, sizeof(title), "plan-sim --model cloudsim: %zu hosts, %s", options->hosts,
		 name ? name + 1 : options->trace_path);
	ret = plan_sim_plot(options->plot_path, title, hours, steps, labels, count,
			    (const struct plan_sim_panel[]){
				    {"active hosts", active, 0},
				    {"hosts allocating less than requested", overloaded, 0},
			    });
	free(hours);
	return ret;
}

/* blocks: the VM types were dealt in blocks; fallback: because dealt in turn (the default) they
 * did not all fit at the first placement. */
static void cs_print(const struct cs_options *options, const struct plan_sim_trace *trace,
		     const struct cs_policy *policies, const struct cs_result *results,
		     size_t count, int blocks, int fallback)
{
	if (options->json) {
		json_t *root = json_pack("{s:s, s:s, s:s, s:I, s:I, s:s, s:b, s:b}", "model",
					 "cloudsim", "trace", options->trace_path, "trace_source",
					 trace->source, "hosts", (json_int_t)options->hosts, "vms",
					 (json_int_t)trace->vms, "vm_types",
					 blocks ? "blocks" : "turn", "vm_types_fallback", fallback,
					 "idle_host_power", options->idle_host_power);
		json_t *rows = json_array();
		char *text;

		for (size_t p = 0; p < count; p++) {
			const struct cs_result *r = &results[p];

			json_array_append_new(
				rows,
				json_pack("{s:s, s:f, s:I, s:f, s:f, s:f, s:f, s:f}", "policy",
					  policies[p].name, "energy_kwh", r->energy_kwh,
					  "migrations", (json_int_t)r->migrations, "slatah",
					  r->slatah, "pdm", r->pdm, "slav", r->slav, "esv", r->esv,
					  "plan_ms_mean", r->plan_seconds_mean * 1e3));
		}
		json_object_set_new(root, "policies", rows);
		text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		if (text)
			puts(text);
		free(text);
		json_decref(root);
		return;
	}
	printf("plan-sim --model cloudsim: %zu hosts (ML110 G4 / G5), %zu VMs x %zu samples from %s\n",
	       options->hosts, trace->vms, trace->samples, options->trace_path);
	printf("VM types: %s; idle hosts with VMs: %s\n\n",
	       !blocks	  ? "dealt in turn (row modulo 4)"
	       : fallback ? "in four blocks of the trace's rows (dealt in turn they do not all fit)"
			  : "in four blocks of the trace's rows",
	       options->idle_host_power ? "idle power" : "0 W (CloudSim)");
	printf("| %-14s | %10s | %10s | %8s | %8s | %10s | %8s | %10s |\n", "policy", "energy kWh",
	       "migrations", "SLATAH", "PDM", "SLAV", "ESV", "plan ms");
	printf("|%s|-----------:|-----------:|---------:|---------:|-----------:|---------:|-----------:|\n",
	       "----------------");
	for (size_t p = 0; p < count; p++) {
		const struct cs_result *r = &results[p];

		if (policies[p].detect <= CS_DETECT_DVFS) {
			printf("| %-14s | %10.2f | %10zu | %8s | %8s | %10s | %8s | %10s |\n",
			       policies[p].name, r->energy_kwh, r->migrations, "", "", "", "", "");
			continue;
		}
		printf("| %-14s | %10.2f | %10zu | %7.2f%% | %7.4f%% | %8.6f%% | %8.6f | %10.3f |\n",
		       policies[p].name, r->energy_kwh, r->migrations, r->slatah * 100,
		       r->pdm * 100, r->slav * 100, r->esv, r->plan_seconds_mean * 1e3);
	}
}

static void cs_results_free(struct cs_result *results, size_t count)
{
	for (size_t p = 0; p < count; p++)
		cs_result_free(&results[p]);
}

/* Runs policies[0..*count_p) in turn. On an error *count_p is the failing policy's index (the
 * results before it are kept, its own holds unplaced_vm after -ENOSPC). */
static int cs_run_all(const struct plan_sim_trace *trace, const struct cs_config *config,
		      const struct cs_policy *policies, struct cs_result *results, size_t *count_p)
{
	for (size_t p = 0; p < *count_p; p++) {
		int ret = cs_run(trace, config, &policies[p], &results[p]);

		if (ret < 0) {
			*count_p = p;
			return ret;
		}
	}
	return 0;
}

int cs_main(const struct plan_sim_trace *trace, const struct cs_options *options)
{
	struct cs_policy policies[CS_MAX_POLICIES];
	struct cs_result results[CS_MAX_POLICIES];
	struct cs_config config = {
		.hosts = options->hosts,
		.idle_host_power = options->idle_host_power,
		.vm_types_in_blocks = options->vm_types_in_blocks,
		.seed = 1,
		.quiet = options->json,
	};
	char list[512], *saveptr = NULL, *item;
	size_t count = 0, total;
	int ret = 0, blocks_fallback = 0;

	snprintf(list, sizeof(list), "%s",
		 options->policies ? options->policies : CS_DEFAULT_POLICIES);
	for (item = strtok_r(list, ",", &saveptr); item; item = strtok_r(NULL, ",", &saveptr)) {
		if (count == CS_MAX_POLICIES || cs_policy_parse(item, &policies[count])) {
			fprintf(stderr, "plan-sim: --policies: bad policy \"%s\"\n", item);
			return 2;
		}
		count++;
	}
	total = count;
	ret = cs_run_all(trace, &config, policies, results, &count);
	if (ret == -ENOSPC && !options->vm_types_given && !config.vm_types_in_blocks) {
		/* Dealt in turn, this trace's VMs do not all fit at the first placement (CloudSim's
		 * days of 1358 VMs or more: the small ones take the G5 PEs the 2500-MIPS ones need).
		 * CloudSim's own dealing, blocks, places them: every policy runs on that, so
		 * the rows stay comparable. */
		fprintf(stderr,
			"plan-sim: dealt in turn, VM %ld (%.0f MIPS) fits on no host of %zu at %s's "
			"first placement; every policy runs with the VM types in blocks, "
			"CloudSim's own dealing\n",
			results[count].unplaced_vm,
			cs_vm_mips[cs_vm_type(0, trace->vms, (size_t)results[count].unplaced_vm)],
			config.hosts, policies[count].name);
		cs_results_free(results, count);
		count = total;
		config.vm_types_in_blocks = 1;
		blocks_fallback = 1;
		ret = cs_run_all(trace, &config, policies, results, &count);
	}
	if (ret == -ENOSPC) {
		long v = results[count].unplaced_vm;
		size_t type = cs_vm_type(config.vm_types_in_blocks, trace->vms, (size_t)v);

		fprintf(stderr,
			"plan-sim: %s: VM %ld (%.0f MIPS, %d MB) fits on no host of %zu at the "
			"first placement; CloudSim 4.0 stops there too (its broker exits when a VM "
			"cannot be created). Give more --hosts%s or fewer --vms\n",
			policies[count].name, v, cs_vm_mips[type], cs_vm_ram[type], config.hosts,
			config.vm_types_in_blocks ? "" : ", --vm-types blocks");
	}
	if (ret < 0)
		goto out;
	if (!config.quiet && isatty(STDERR_FILENO))
		fprintf(stderr, "\r%60s\r", "");
	cs_print(options, trace, policies, results, count, config.vm_types_in_blocks,
		 blocks_fallback);
	if (options->plot_path)
		ret = cs_plot(options, policies, results, count);
out:
	cs_results_free(results, count);
	return ret < 0 ? 1 : 0;
}
