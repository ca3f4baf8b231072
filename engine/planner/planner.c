/* SPDX-License-Identifier: MIT */
/* engine/planner/planner.c - overload detection (static, MAD, local regression), VM selection
 * (minimum migration time, maximum correlation), best-fit-decreasing placement that never takes
 * a destination past its limit, optional consolidation, and the method by the cost model. */
#include "engine/planner/planner.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transport/log.h"

void planner_params_init(struct planner_params *params)
{
	memset(params, 0, sizeof(*params));
	params->overload = PLANNER_OVERLOAD_STATIC;
	params->select = PLANNER_SELECT_MIN_TIME;
	params->threshold = PLANNER_DEFAULT_THRESHOLD;
	params->mad_k = PLANNER_DEFAULT_MAD_K;
	params->lr_safety = PLANNER_DEFAULT_LR_SAFETY;
}

const char *planner_overload_name(uint32_t overload)
{
	switch (overload) {
	case PLANNER_OVERLOAD_STATIC:
		return "static";
	case PLANNER_OVERLOAD_MAD:
		return "mad";
	case PLANNER_OVERLOAD_LR:
		return "lr";
	}
	return "unknown";
}

const char *planner_select_name(uint32_t select)
{
	switch (select) {
	case PLANNER_SELECT_MIN_TIME:
		return "min-time";
	case PLANNER_SELECT_CORRELATION:
		return "correlation";
	}
	return "unknown";
}

int planner_select_parse(const char *name, uint32_t *select_p)
{
	if (name && strcmp(name, "min-time") == 0) {
		*select_p = PLANNER_SELECT_MIN_TIME;
		return 0;
	}
	if (name && strcmp(name, "correlation") == 0) {
		*select_p = PLANNER_SELECT_CORRELATION;
		return 0;
	}
	rmig_log_error("planner: unknown selection policy \"%s\" (min-time, correlation)",
		       name ? name : "");
	return -EINVAL;
}

int planner_overload_parse(const char *spec, struct planner_params *params)
{
	const char *colon = spec ? strchr(spec, ':') : NULL;
	size_t name_len = colon ? (size_t)(colon - spec) : (spec ? strlen(spec) : 0);
	uint32_t overload;
	double value = 0.0;
	char *end;

	if (spec && name_len == 6 && strncmp(spec, "static", 6) == 0)
		overload = PLANNER_OVERLOAD_STATIC;
	else if (spec && name_len == 3 && strncmp(spec, "mad", 3) == 0)
		overload = PLANNER_OVERLOAD_MAD;
	else if (spec && name_len == 2 && strncmp(spec, "lr", 2) == 0)
		overload = PLANNER_OVERLOAD_LR;
	else
		goto err_invalid;
	if (colon) {
		errno = 0;
		value = strtod(colon + 1, &end);
		if (errno || end == colon + 1 || *end != '\0' || !(value > 0.0) ||
		    (overload == PLANNER_OVERLOAD_STATIC && value > 1.0))
			goto err_invalid;
	}
	params->overload = overload;
	if (colon && overload == PLANNER_OVERLOAD_STATIC)
		params->threshold = value;
	else if (colon && overload == PLANNER_OVERLOAD_MAD)
		params->mad_k = value;
	else if (colon)
		params->lr_safety = value;
	return 0;

err_invalid:
	rmig_log_error("planner: bad overload policy \"%s\" (static[:threshold 0..1], mad[:k], "
		       "lr[:safety])",
		       spec ? spec : "");
	return -EINVAL;
}

static int planner_compare_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double planner_median_sorted(const double *sorted, size_t n)
{
	return n % 2 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0;
}

double planner_mad(const double *values, size_t n)
{
	double *work, median, mad;

	if (n == 0)
		return 0.0;
	work = malloc(n * sizeof(*work));
	if (!work)
		return 0.0;
	memcpy(work, values, n * sizeof(*work));
	qsort(work, n, sizeof(*work), planner_compare_double);
	median = planner_median_sorted(work, n);
	for (size_t i = 0; i < n; i++)
		work[i] = fabs(values[i] - median);
	qsort(work, n, sizeof(*work), planner_compare_double);
	mad = planner_median_sorted(work, n);
	free(work);
	return mad;
}

double planner_lr_forecast(const double *values, size_t n, size_t window)
{
	double sw = 0, sx = 0, sy = 0, sxx = 0, sxy = 0, slope, intercept, denominator;
	size_t count = n < window ? n : window;
	const double *y = values + (n - count);

	if (count == 0)
		return 0.0;
	/* Tricube weights by age: the newest sample counts most, the oldest still a little. */
	for (size_t i = 0; i < count; i++) {
		double age = (double)(count - 1 - i) / (double)count;
		double w = pow(1.0 - age * age * age, 3.0);
		double x = (double)i;

		sw += w;
		sx += w * x;
		sy += w * y[i];
		sxx += w * x * x;
		sxy += w * x * y[i];
	}
	denominator = sw * sxx - sx * sx;
	if (fabs(denominator) < 1e-12)
		return y[count - 1];
	slope = (sw * sxy - sx * sy) / denominator;
	intercept = (sy - slope * sx) / sw;
	return intercept + slope * (double)count;
}

double planner_correlation(const double *a, const double *b, size_t n)
{
	double ma = 0, mb = 0, sab = 0, saa = 0, sbb = 0;

	if (n < 2)
		return 0.0;
	for (size_t i = 0; i < n; i++) {
		ma += a[i];
		mb += b[i];
	}
	ma /= (double)n;
	mb /= (double)n;
	for (size_t i = 0; i < n; i++) {
		sab += (a[i] - ma) * (b[i] - mb);
		saa += (a[i] - ma) * (a[i] - ma);
		sbb += (b[i] - mb) * (b[i] - mb);
	}
	if (saa < 1e-18 || sbb < 1e-18)
		return 0.0;
	return sab / sqrt(saa * sbb);
}

/* Working state of one planning pass. */
struct planner_work {
	const struct planner_cluster *cluster;
	const struct planner_params *params;
	struct planner_plan *plan;
	size_t *vm_host;  /* where each VM is as the plan stands */
	double *host_cpu; /* cpu in use per host as the plan stands */
	uint64_t *host_memory;
	size_t *host_vms;
	unsigned char *touched; /* host is a source or destination of a move */
	size_t move_capacity;
	size_t unplaced_capacity;
};

static double planner_share(const struct planner_work *work, size_t vm, size_t host)
{
	return work->cluster->vms[vm].cpu / work->cluster->hosts[host].cpu_capacity;
}

/* The host's utilisation history: its own, or the sum of its VMs' when they all have one.
 * Sets *history_p (malloc'd) and *len_p, or leaves them NULL and 0 when there is none. */
static int planner_host_history(const struct planner_work *work, size_t host, double **history_p,
				size_t *len_p)
{
	const struct planner_cluster *cluster = work->cluster;
	const struct planner_host *h = &cluster->hosts[host];
	size_t len = SIZE_MAX, vms = 0;
	double *history;

	if (h->history_len) {
		history = malloc(h->history_len * sizeof(*history));
		if (!history)
			return -ENOMEM;
		memcpy(history, h->history, h->history_len * sizeof(*history));
		*history_p = history;
		*len_p = h->history_len;
		return 0;
	}
	for (size_t v = 0; v < cluster->vm_count; v++) {
		if (cluster->vms[v].host != host)
			continue;
		vms++;
		if (cluster->vms[v].history_len < len)
			len = cluster->vms[v].history_len;
	}
	if (vms == 0 || len == 0)
		return 0;
	history = calloc(len, sizeof(*history));
	if (!history)
		return -ENOMEM;
	for (size_t v = 0; v < cluster->vm_count; v++) {
		const struct planner_vm *vm = &cluster->vms[v];

		if (vm->host != host)
			continue;
		for (size_t i = 0; i < len; i++)
			history[i] += vm->cpu_history[vm->history_len - len + i] / h->cpu_capacity;
	}
	*history_p = history;
	*len_p = len;
	return 0;
}

static int planner_detect(struct planner_work *work, size_t host)
{
	const struct planner_params *params = work->params;
	struct planner_host_state *state = &work->plan->hosts[host];
	size_t len = 0;
	double *history = NULL;

	state->utilisation = work->host_cpu[host] / work->cluster->hosts[host].cpu_capacity;
	state->load = state->utilisation;
	state->limit = params->threshold;
	if (params->overload != PLANNER_OVERLOAD_STATIC) {
		int ret = planner_host_history(work, host, &history, &len);

		if (ret < 0)
			return ret;
	}
	if (params->overload == PLANNER_OVERLOAD_MAD && len >= PLANNER_MAD_MIN_HISTORY) {
		state->limit =
			fmin(1.0, fmax(0.0, 1.0 - params->mad_k * planner_mad(history, len)));
	} else if (params->overload == PLANNER_OVERLOAD_LR && len >= PLANNER_LR_MIN_HISTORY) {
		/* Never below today's load: a falling forecast must not let a full host take
		 * more. */
		state->load = fmax(state->utilisation,
				   planner_lr_forecast(history, len, PLANNER_LR_WINDOW));
		state->limit = 1.0 / params->lr_safety;
	} else if (params->overload != PLANNER_OVERLOAD_STATIC) {
		state->fallback = 1;
	}
	free(history);
	state->overloaded = state->load > state->limit;
	return 0;
}

/* Remaining load of a host as the plan stands, in the detector's terms. */
static double planner_load_now(const struct planner_work *work, size_t host)
{
	const struct planner_host_state *state = &work->plan->hosts[host];
	double now = work->host_cpu[host] / work->cluster->hosts[host].cpu_capacity;

	return state->load + (now - state->utilisation);
}

static double planner_link(const struct planner_work *work, size_t source, size_t destination)
{
	double bandwidth = work->cluster->bandwidth;
	double a = work->cluster->hosts[source].bandwidth;
	double b = work->cluster->hosts[destination].bandwidth;

	if (a > 0.0 && (bandwidth <= 0.0 || a < bandwidth))
		bandwidth = a;
	if (b > 0.0 && (bandwidth <= 0.0 || b < bandwidth))
		bandwidth = b;
	return bandwidth;
}

static int planner_cost(const struct planner_work *work, size_t vm, double bandwidth,
			struct cost_projection *cost)
{
	const struct planner_vm *v = &work->cluster->vms[vm];
	struct cost_model_input input = {
		.ram_bytes = v->memory_bytes,
		.page_size = work->cluster->page_size,
		.dirty_pages_rate = v->dirty_pages_rate,
		.working_set_bytes = v->working_set_bytes,
		.bandwidth = bandwidth,
		.zero_fraction = v->zero_fraction,
		.access_run_pages = v->write_run_pages,
		.pause_seconds = v->pause_ms / 1000.0,
		.device_state_bytes = work->params->device_state_bytes,
		.downtime_ms = work->params->downtime_ms,
	};

	return cost_model_choose_method(&input, cost);
}

/* Correlation of the VM's history with the sum of the other VMs still on the host. */
static double planner_vm_correlation(const struct planner_work *work, size_t vm, size_t host)
{
	const struct planner_cluster *cluster = work->cluster;
	const struct planner_vm *self = &cluster->vms[vm];
	size_t len = self->history_len, others = 0;
	double *rest, r;

	for (size_t v = 0; v < cluster->vm_count; v++) {
		if (v == vm || work->vm_host[v] != host)
			continue;
		others++;
		if (cluster->vms[v].history_len < len)
			len = cluster->vms[v].history_len;
	}
	if (others == 0 || len < 3)
		return -2.0;
	rest = calloc(len, sizeof(*rest));
	if (!rest)
		return -2.0;
	for (size_t v = 0; v < cluster->vm_count; v++) {
		const struct planner_vm *other = &cluster->vms[v];

		if (v == vm || work->vm_host[v] != host)
			continue;
		for (size_t i = 0; i < len; i++)
			rest[i] += other->cpu_history[other->history_len - len + i];
	}
	r = planner_correlation(self->cpu_history + self->history_len - len, rest, len);
	free(rest);
	return r;
}

/* Pick the next VM to take off host; SIZE_MAX when none is left. */
static int planner_select_one(struct planner_work *work, size_t host, size_t *vm_p)
{
	const struct planner_cluster *cluster = work->cluster;
	double best_key = INFINITY;
	size_t best = SIZE_MAX;
	int ret;

	if (work->params->select == PLANNER_SELECT_CORRELATION) {
		for (size_t v = 0; v < cluster->vm_count; v++) {
			double r;

			if (work->vm_host[v] != host)
				continue;
			r = planner_vm_correlation(work, v, host);
			if (r > -2.0 && -r < best_key) {
				best_key = -r;
				best = v;
			}
		}
	}
	/* Minimum time, and the correlation policy's fallback when there is no history to
	 * correlate. */
	for (size_t v = 0; best == SIZE_MAX && v < cluster->vm_count; v++) {
		struct cost_projection cost;

		if (work->vm_host[v] != host)
			continue;
		ret = planner_cost(work, v, planner_link(work, host, host), &cost);
		if (ret < 0)
			return ret;
		if (cost.total_seconds < best_key) {
			best_key = cost.total_seconds;
			*vm_p = v;
		}
	}
	if (best != SIZE_MAX)
		*vm_p = best;
	return 0;
}

static void planner_take(struct planner_work *work, size_t vm, size_t host, int sign)
{
	const struct planner_vm *v = &work->cluster->vms[vm];

	if (sign > 0) {
		work->host_cpu[host] += v->cpu;
		work->host_memory[host] += v->memory_bytes;
		work->host_vms[host]++;
		work->vm_host[vm] = host;
	} else {
		work->host_cpu[host] -= v->cpu;
		work->host_memory[host] -= v->memory_bytes;
		work->host_vms[host]--;
		work->vm_host[vm] = SIZE_MAX;
	}
}

/* Best fit: the allowed host the VM leaves the least room on, below its limit and memory. */
static size_t planner_best_fit(const struct planner_work *work, size_t vm, size_t source,
			       const unsigned char *allowed)
{
	const struct planner_cluster *cluster = work->cluster;
	double best_slack = INFINITY;
	size_t best = SIZE_MAX;

	for (size_t h = 0; h < cluster->host_count; h++) {
		double slack;

		if (h == source || !allowed[h])
			continue;
		if (work->host_memory[h] + cluster->vms[vm].memory_bytes >
		    cluster->hosts[h].memory_bytes)
			continue;
		slack = work->plan->hosts[h].limit -
			(planner_load_now(work, h) + planner_share(work, vm, h));
		if (slack < -1e-9)
			continue;
		if (slack < best_slack) {
			best_slack = slack;
			best = h;
		}
	}
	return best;
}

static int planner_add_move(struct planner_work *work, size_t vm, size_t source, size_t destination,
			    uint32_t reason)
{
	struct planner_plan *plan = work->plan;
	struct planner_move *move;
	int ret;

	if (plan->move_count == work->move_capacity) {
		size_t capacity = work->move_capacity ? 2 * work->move_capacity : 16;
		struct planner_move *moves = realloc(plan->moves, capacity * sizeof(*moves));

		if (!moves)
			return -ENOMEM;
		plan->moves = moves;
		work->move_capacity = capacity;
	}
	move = &plan->moves[plan->move_count];
	move->vm = vm;
	move->source = source;
	move->destination = destination;
	move->reason = reason;
	ret = planner_cost(work, vm, planner_link(work, source, destination), &move->cost);
	if (ret < 0)
		return ret;
	plan->move_count++;
	plan->total_bytes += move->cost.bytes;
	plan->total_seconds += move->cost.total_seconds;
	plan->max_downtime_seconds = fmax(plan->max_downtime_seconds, move->cost.downtime_seconds);
	work->touched[source] = 1;
	work->touched[destination] = 1;
	return 0;
}

static int planner_add_unplaced(struct planner_work *work, size_t vm, size_t source,
				const unsigned char *allowed)
{
	const struct planner_cluster *cluster = work->cluster;
	struct planner_plan *plan = work->plan;
	struct planner_unplaced *entry;
	double best_cpu = -INFINITY;
	uint64_t best_memory = 0;
	size_t cpu_host = SIZE_MAX, memory_host = SIZE_MAX;

	if (plan->unplaced_count == work->unplaced_capacity) {
		size_t capacity = work->unplaced_capacity ? 2 * work->unplaced_capacity : 8;
		struct planner_unplaced *list = realloc(plan->unplaced, capacity * sizeof(*list));

		if (!list)
			return -ENOMEM;
		plan->unplaced = list;
		work->unplaced_capacity = capacity;
	}
	for (size_t h = 0; h < cluster->host_count; h++) {
		double cpu_room;
		uint64_t memory_room;

		if (h == source || !allowed[h])
			continue;
		cpu_room = (plan->hosts[h].limit - planner_load_now(work, h)) *
			   cluster->hosts[h].cpu_capacity;
		memory_room = cluster->hosts[h].memory_bytes > work->host_memory[h]
				      ? cluster->hosts[h].memory_bytes - work->host_memory[h]
				      : 0;
		if (cpu_room > best_cpu) {
			best_cpu = cpu_room;
			cpu_host = h;
		}
		if (memory_host == SIZE_MAX || memory_room > best_memory) {
			best_memory = memory_room;
			memory_host = h;
		}
	}
	entry = &plan->unplaced[plan->unplaced_count++];
	entry->vm = vm;
	entry->source = source;
	if (cpu_host == SIZE_MAX)
		snprintf(entry->reason, sizeof(entry->reason),
			 "no destination fits: no other host may receive VMs");
	else
		snprintf(entry->reason, sizeof(entry->reason),
			 "no destination fits: needs %.3g cpu and %.3g GiB; most cpu below limit "
			 "%.3g on %s, most memory %.3g GiB on %s",
			 cluster->vms[vm].cpu, cluster->vms[vm].memory_bytes / 1073741824.0,
			 best_cpu > 0 ? best_cpu : 0.0, cluster->hosts[cpu_host].id,
			 best_memory / 1073741824.0, cluster->hosts[memory_host].id);
	return 0;
}

/* Largest cpu first; ties by index so plans are reproducible. */
static int planner_compare_vm_cpu(const void *a, const void *b, void *cluster_arg)
{
	const struct planner_cluster *cluster = cluster_arg;
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	double cx = cluster->vms[x].cpu, cy = cluster->vms[y].cpu;

	if (cx != cy)
		return cx < cy ? 1 : -1;
	return (x > y) - (x < y);
}

static void planner_sort_by_cpu(const struct planner_cluster *cluster, size_t *vms, size_t n)
{
	qsort_r(vms, n, sizeof(*vms), planner_compare_vm_cpu, (void *)cluster);
}

/* A VM's larger share of its host, CPU or memory: what binds when it is packed elsewhere. */
static double planner_vm_dominant_share(const struct planner_cluster *cluster, size_t vm)
{
	const struct planner_host *host = &cluster->hosts[cluster->vms[vm].host];

	return fmax(cluster->vms[vm].cpu / host->cpu_capacity,
		    (double)cluster->vms[vm].memory_bytes / (double)host->memory_bytes);
}

static int planner_compare_vm_dominant(const void *a, const void *b, void *cluster_arg)
{
	const struct planner_cluster *cluster = cluster_arg;
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	double sx = planner_vm_dominant_share(cluster, x),
	       sy = planner_vm_dominant_share(cluster, y);

	if (sx != sy)
		return sx < sy ? 1 : -1;
	return (x > y) - (x < y);
}

/* A host's load by its scarcer resource: a host whose memory is full is not lightly loaded,
 * however idle its CPU. */
static double planner_host_dominant_load(const struct planner_work *work, size_t h)
{
	const struct planner_host *host = &work->cluster->hosts[h];

	return fmax(work->host_cpu[h] / host->cpu_capacity,
		    (double)work->host_memory[h] / (double)host->memory_bytes);
}

static int planner_relieve_overloads(struct planner_work *work, size_t *selected,
				     size_t *selected_source, unsigned char *allowed)
{
	const struct planner_cluster *cluster = work->cluster;
	struct planner_plan *plan = work->plan;
	size_t count = 0;
	int ret;

	for (size_t h = 0; h < cluster->host_count; h++)
		allowed[h] = !plan->hosts[h].overloaded;
	for (size_t h = 0; h < cluster->host_count; h++) {
		while (plan->hosts[h].overloaded &&
		       planner_load_now(work, h) > plan->hosts[h].limit + 1e-12) {
			size_t vm = SIZE_MAX;

			ret = planner_select_one(work, h, &vm);
			if (ret < 0)
				return ret;
			if (vm == SIZE_MAX)
				break;
			planner_take(work, vm, h, -1);
			selected[count] = vm;
			selected_source[vm] = h;
			count++;
		}
	}
	planner_sort_by_cpu(cluster, selected, count);
	for (size_t i = 0; i < count; i++) {
		size_t vm = selected[i], source = selected_source[vm];
		size_t destination = planner_best_fit(work, vm, source, allowed);

		if (destination == SIZE_MAX) {
			ret = planner_add_unplaced(work, vm, source, allowed);
			planner_take(work, vm, source, +1);
		} else {
			planner_take(work, vm, destination, +1);
			ret = planner_add_move(work, vm, source, destination,
					       PLANNER_MOVE_OVERLOAD);
		}
		if (ret < 0)
			return ret;
	}
	return 0;
}

/* Empty the least loaded hosts, one at a time, when the other busy hosts can take all their
 * VMs below their limits. Hosts already part of a move stay as they are. */
static int planner_consolidate(struct planner_work *work, size_t *vms, size_t *destinations,
			       unsigned char *allowed)
{
	const struct planner_cluster *cluster = work->cluster;
	size_t *order = malloc(cluster->host_count * sizeof(*order));
	int ret = 0;

	if (!order)
		return -ENOMEM;
	for (size_t h = 0; h < cluster->host_count; h++)
		order[h] = h;
	/* Ascending load by the scarcer resource, insertion sort: host counts are small. Memory
	 * counts as much as CPU: on a memory-bound cluster the hosts to empty are those with the
	 * least memory in use, and their VMs go largest share first (first fit decreasing by the
	 * dominant resource), or nothing fits after the first few. */
	for (size_t i = 1; i < cluster->host_count; i++) {
		size_t h = order[i], j = i;
		double u = planner_host_dominant_load(work, h);

		while (j > 0 && planner_host_dominant_load(work, order[j - 1]) > u) {
			order[j] = order[j - 1];
			j--;
		}
		order[j] = h;
	}
	for (size_t i = 0; i < cluster->host_count; i++) {
		size_t host = order[i], count = 0, placed = 0;

		if (work->touched[host] || work->host_vms[host] == 0 ||
		    work->plan->hosts[host].overloaded)
			continue;
		for (size_t h = 0; h < cluster->host_count; h++)
			allowed[h] = h != host && work->host_vms[h] > 0 &&
				     !work->plan->hosts[h].overloaded;
		for (size_t v = 0; v < cluster->vm_count; v++)
			if (work->vm_host[v] == host)
				vms[count++] = v;
		qsort_r(vms, count, sizeof(*vms), planner_compare_vm_dominant, (void *)cluster);
		for (; placed < count; placed++) {
			size_t destination = planner_best_fit(work, vms[placed], host, allowed);

			if (destination == SIZE_MAX)
				break;
			planner_take(work, vms[placed], host, -1);
			planner_take(work, vms[placed], destination, +1);
			destinations[placed] = destination;
		}
		if (placed < count) {
			while (placed-- > 0) {
				planner_take(work, vms[placed], destinations[placed], -1);
				planner_take(work, vms[placed], host, +1);
			}
			continue;
		}
		for (size_t k = 0; k < count; k++) {
			ret = planner_add_move(work, vms[k], host, destinations[k],
					       PLANNER_MOVE_CONSOLIDATION);
			if (ret < 0)
				goto out;
		}
	}
out:
	free(order);
	return ret;
}

static int planner_check_cluster(const struct planner_cluster *cluster,
				 const struct planner_params *params)
{
	if (!(params->threshold > 0.0 && params->threshold <= 1.0) || !(params->mad_k > 0.0) ||
	    !(params->lr_safety > 0.0) || params->overload > PLANNER_OVERLOAD_LR ||
	    params->select > PLANNER_SELECT_CORRELATION) {
		rmig_log_error(
			"planner: invalid parameters (policy %u, selection %u, threshold %g)",
			params->overload, params->select, params->threshold);
		return -EINVAL;
	}
	for (size_t h = 0; h < cluster->host_count; h++) {
		if (!(cluster->hosts[h].cpu_capacity > 0.0) ||
		    cluster->hosts[h].memory_bytes == 0 ||
		    !(cluster->bandwidth > 0.0 || cluster->hosts[h].bandwidth > 0.0)) {
			rmig_log_error("planner: host %s: capacity and bandwidth must be positive",
				       cluster->hosts[h].id ? cluster->hosts[h].id : "?");
			return -EINVAL;
		}
	}
	for (size_t v = 0; v < cluster->vm_count; v++) {
		if (cluster->vms[v].host >= cluster->host_count || !(cluster->vms[v].cpu >= 0.0) ||
		    cluster->vms[v].memory_bytes == 0) {
			rmig_log_error("planner: vm %s: unknown host, negative cpu or no memory",
				       cluster->vms[v].id ? cluster->vms[v].id : "?");
			return -EINVAL;
		}
	}
	return 0;
}

void planner_plan_destroy(struct planner_plan *plan)
{
	if (!plan)
		return;
	free(plan->unplaced);
	free(plan->moves);
	free(plan->hosts);
	free(plan);
}

int planner_plan_create(const struct planner_cluster *cluster, const struct planner_params *params,
			struct planner_plan **plan_p)
{
	size_t hosts = cluster->host_count, vms = cluster->vm_count;
	struct planner_work work = {.cluster = cluster, .params = params};
	struct planner_plan *plan;
	size_t *scratch_vms = NULL, *scratch_index = NULL;
	unsigned char *allowed = NULL;
	int ret;

	ret = planner_check_cluster(cluster, params);
	if (ret < 0)
		return ret;
	plan = calloc(1, sizeof(*plan));
	if (!plan)
		return -ENOMEM;
	plan->cluster = cluster;
	plan->params = *params;
	plan->hosts = calloc(hosts ? hosts : 1, sizeof(*plan->hosts));
	work.plan = plan;
	work.vm_host = malloc((vms ? vms : 1) * sizeof(*work.vm_host));
	work.host_cpu = calloc(hosts ? hosts : 1, sizeof(*work.host_cpu));
	work.host_memory = calloc(hosts ? hosts : 1, sizeof(*work.host_memory));
	work.host_vms = calloc(hosts ? hosts : 1, sizeof(*work.host_vms));
	work.touched = calloc(hosts ? hosts : 1, 1);
	scratch_vms = malloc((vms ? vms : 1) * sizeof(*scratch_vms));
	/* Indexed by VM for overload relief, by position for consolidation. */
	scratch_index = malloc((vms ? vms : 1) * sizeof(*scratch_index));
	allowed = malloc(hosts ? hosts : 1);
	ret = -ENOMEM;
	if (!plan->hosts || !work.vm_host || !work.host_cpu || !work.host_memory ||
	    !work.host_vms || !work.touched || !scratch_vms || !scratch_index || !allowed)
		goto err_free_work;

	for (size_t v = 0; v < vms; v++) {
		work.vm_host[v] = SIZE_MAX;
		planner_take(&work, v, cluster->vms[v].host, +1);
	}
	for (size_t h = 0; h < hosts; h++) {
		ret = planner_detect(&work, h);
		if (ret < 0)
			goto err_free_work;
	}
	ret = planner_relieve_overloads(&work, scratch_vms, scratch_index, allowed);
	if (ret < 0)
		goto err_free_work;
	if (params->consolidate) {
		ret = planner_consolidate(&work, scratch_vms, scratch_index, allowed);
		if (ret < 0)
			goto err_free_work;
	}
	for (size_t h = 0; h < hosts; h++) {
		plan->hosts[h].utilisation_after =
			work.host_cpu[h] / cluster->hosts[h].cpu_capacity;
		plan->hosts[h].memory_after = work.host_memory[h];
		plan->hosts[h].vms_after = work.host_vms[h];
	}
	ret = 0;
	*plan_p = plan;
	plan = NULL;

err_free_work:
	free(allowed);
	free(scratch_index);
	free(scratch_vms);
	free(work.touched);
	free(work.host_vms);
	free(work.host_memory);
	free(work.host_cpu);
	free(work.vm_host);
	if (ret < 0)
		rmig_log_error("planner: planning failed: %s", strerror(-ret));
	planner_plan_destroy(plan);
	return ret;
}
