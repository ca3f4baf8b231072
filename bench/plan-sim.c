/* SPDX-License-Identifier: MIT */
/* bench/plan-sim.c - replays a CPU utilisation trace (one VM per row, 5-minute samples, e.g.
 * bench/data/planetlab-20110303.csv) over a simulated cluster, runs the planner every step with
 * each policy, makes its moves and reports migrations, bytes moved, overload and empty hosts.
 * --cost-table prints the cost model's projections over a grid of sizes and dirty rates. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "engine/cost_model.h"
#include "bench/plan-sim.h"
#include "bench/plan-sim-cloudsim.h"
#include "engine/planner/planner.h"

#define GIB 1073741824.0
#define STEP_SECONDS 300.0
#define SIM_PLOT_SMOOTH 12 /* steps: one hour */

#ifdef RMIG_SOURCE_DIR
#define PLAN_SIM_DEFAULT_TRACE RMIG_SOURCE_DIR "/bench/data/planetlab-20110303.csv"
#else
#define PLAN_SIM_DEFAULT_TRACE "bench/data/planetlab-20110303.csv"
#endif

/* The simulated cluster and VM model (docs/planner.md, "plan-sim"). */
struct sim_config {
	const char *trace_path;
	size_t hosts;
	double host_cpus;
	double host_memory_gib;
	double bandwidth;      /* bytes per second per host link */
	size_t max_vms;	       /* 0: every VM in the trace */
	size_t window;	       /* history samples the planner sees */
	double dirty_per_core; /* pages per second a fully busy vCPU dirties */
	double working_set_fraction;
	uint32_t downtime_ms;
	int fraction; /* trace holds fractions, not percent */
	int consolidate;
	int json;
	const char *plot_path;
	double power_table[11]; /* watts at 0, 10, ..., 100 % CPU of an active host */
	int cost_table;
	/* --cost-table grid */
	double cost_sizes_gib[16];
	size_t cost_size_count;
	double cost_rates[16];
	size_t cost_rate_count;
	double cost_working_set_fraction; /* 0: all RAM */
};

/* Four VM shapes, dealt in turn so every host starts with a mix. */
static const struct {
	double vcpus;
	double memory_gib;
} sim_vm_types[] = {{1, 1}, {1, 2}, {2, 2}, {2, 4}};
#define SIM_VM_TYPES (sizeof(sim_vm_types) / sizeof(sim_vm_types[0]))

struct sim_policy {
	char label[48];
	int migrate; /* 0: the baseline that never moves anything */
	struct planner_params params;
};

struct sim_result {
	size_t migrations;
	size_t unplaced;
	double bytes;
	double migration_seconds;
	double max_downtime_seconds;
	double overload_host_steps; /* a host whose demand exceeds its capacity for one step */
	double active_host_steps;
	double energy_joules;
	size_t empty_at_end;
	size_t min_active;
	double *overloaded_series; /* per step */
	double *active_series;
};

static void sim_usage(FILE *out)
{
	fprintf(out,
		"usage: plan-sim [options]\n"
		"  --trace FILE|DIR      utilisation trace, one VM per row (name, samples...) or\n"
		"                        one VM per column; '#' lines are comments; or a\n"
		"                        directory of one file per VM (CloudSim's workload/\n"
		"                        planetlab/DAY), in sorted name order\n"
		"                        (default the PlanetLab day in bench/data/)\n"
		"  --fraction            samples are fractions 0..1 (default: percent 0..100)\n"
		"  --hosts N             hosts (default 50)\n"
		"  --host-cpus C         cores per host (default 8)\n"
		"  --host-memory-gib M   memory per host (default 64)\n"
		"  --bandwidth-gbps G    each host's link (default 10)\n"
		"  --vms N               use the first N VMs of the trace (default all)\n"
		"  --window N            utilisation samples the planner sees (default 12 = 1 h)\n"
		"  --dirty-per-core R    pages/s a fully busy vCPU dirties (default 20000)\n"
		"  --working-set F       writable working set, share of VM memory (default 0.1)\n"
		"  --downtime-ms MS      downtime target for the method choice (default 300)\n"
		"  --no-consolidate      only relieve overloads, never empty hosts\n"
		"  --power-table W,...   an active host's watts at 0, 10, ..., 100 %% CPU (11 values;\n"
		"                        default HP ProLiant ML110 G5: 93.7,97,...,135); empty hosts\n"
		"                        are off\n"
		"  --json                results as JSON\n"
		"  --plot FILE.png       overloaded and active hosts over the day, per policy\n"
		"  --model cloudsim      CloudSim 4.0's PlanetLab setup instead (800 hosts unless\n"
		"                        --hosts): energy, migrations, SLATAH, PDM, SLAV, ESV\n"
		"  --policies LIST       with --model cloudsim: DETECT[-SELECT][:PARAM],...\n"
		"                        DETECT npa dvfs thr iqr mad lr lrr rmig, SELECT mmt mc rs mu\n"
		"                        cost (default: npa,dvfs,thr-mmt:0.8,iqr-mmt:1.5,mad-mmt:2.5,\n"
		"                        lr-mmt:1.2,lr-mc:1.2,lr-rs:1.2,rmig)\n"
		"  --vm-types turn|blocks  with --model cloudsim: VM types by row modulo 4 (default)\n"
		"                        or in four blocks of rows (CloudSim's Helper on sorted files);\n"
		"                        by default, a trace whose VMs dealt in turn do not fit at\n"
		"                        the first placement runs every policy in blocks\n"
		"  --idle-host-power     with --model cloudsim: a host whose VMs are all idle draws\n"
		"                        its idle power (CloudSim: 0 W)\n"
		"  --cost-table          print the cost model over sizes x dirty rates and exit;\n"
		"                        with --bandwidth-gbps, --downtime-ms, --working-set and\n"
		"  --ram-gib LIST        sizes (default 0.25,1,4,16)\n"
		"  --dirty-rates LIST    pages/s (default 0,1000,10000,50000,100000,200000,400000)\n");
}

/* The k-th VM dealt to host h takes shape (k + h) mod 4: every host gets the four shapes in turn
 * and the cluster a quarter of each, whatever the number of hosts. */
static size_t sim_vm_type(const struct sim_config *config, size_t v)
{
	return (v / config->hosts + v % config->hosts) % SIM_VM_TYPES;
}

/* Round robin, a VM that does not fit its turn's host taking the next one with room (memory is
 * never overcommitted). Fails once, saying what would fit, when the VMs need more memory than
 * the hosts have. */
static int sim_initial_placement(const struct sim_config *config,
				 const struct plan_sim_trace *trace, size_t *placement)
{
	size_t hosts = config->hosts;
	double capacity = config->host_memory_gib * GIB, total = 0, largest = 0;
	double *used = calloc(hosts, sizeof(*used));

	if (!used)
		return -ENOMEM;
	for (size_t v = 0; v < trace->vms; v++) {
		double memory = sim_vm_types[sim_vm_type(config, v)].memory_gib * GIB;

		total += memory;
		largest = fmax(largest, memory);
	}
	for (size_t v = 0; v < trace->vms; v++) {
		double memory = sim_vm_types[sim_vm_type(config, v)].memory_gib * GIB;
		size_t h = v % hosts, tried = 0;

		while (tried < hosts && used[h] + memory > capacity) {
			h = (h + 1) % hosts;
			tried++;
		}
		if (tried == hosts) {
			/* Enough hosts for the total plus one VM's worth of packing loss each. */
			fprintf(stderr,
				"plan-sim: %zu VMs need %.1f GiB, more than %zu hosts of %g GiB "
				"hold: use --hosts %.0f or more, --host-memory-gib %.0f or more, "
				"or --vms %zu or fewer\n",
				trace->vms, total / GIB, hosts, config->host_memory_gib,
				ceil(total / (capacity - largest + 1)),
				ceil((total / (double)hosts + largest) / GIB), v);
			free(used);
			return -ENOSPC;
		}
		used[h] += memory;
		placement[v] = h;
	}
	free(used);
	return 0;
}

static int sim_run_policy(const struct sim_config *config, const struct plan_sim_trace *trace,
			  const size_t *placement, const struct sim_policy *policy,
			  struct sim_result *result)
{
	size_t vms = trace->vms, samples = trace->samples, hosts = config->hosts;
	struct planner_host *host = calloc(hosts, sizeof(*host));
	struct planner_vm *vm = calloc(vms, sizeof(*vm));
	double *history = malloc(vms * samples * sizeof(*history));
	double *demand = malloc(hosts * sizeof(*demand));
	size_t *resident = malloc(hosts * sizeof(*resident));
	char(*host_ids)[32] = calloc(hosts, sizeof(*host_ids));
	struct planner_cluster cluster = {host, hosts, vm, vms, config->bandwidth, 4096};
	int ret = -ENOMEM;

	memset(result, 0, sizeof(*result));
	result->overloaded_series = calloc(samples, sizeof(double));
	result->active_series = calloc(samples, sizeof(double));
	result->min_active = hosts;
	if (!host || !vm || !history || !demand || !resident || !host_ids ||
	    !result->overloaded_series || !result->active_series)
		goto out;
	for (size_t h = 0; h < hosts; h++) {
		snprintf(host_ids[h], sizeof(host_ids[h]), "host%zu", h + 1);
		host[h] = (struct planner_host){.id = host_ids[h],
						.cpu_capacity = config->host_cpus,
						.memory_bytes =
							(uint64_t)(config->host_memory_gib * GIB)};
	}
	for (size_t v = 0; v < vms; v++) {
		size_t type = sim_vm_type(config, v);

		vm[v].id = trace->names[v];
		vm[v].host = placement[v];
		vm[v].memory_bytes = (uint64_t)(sim_vm_types[type].memory_gib * GIB);
		vm[v].working_set_bytes =
			(uint64_t)(config->working_set_fraction * (double)vm[v].memory_bytes) /
			4096 * 4096;
		for (size_t t = 0; t < samples; t++)
			history[v * samples + t] =
				trace->utilisation[v * samples + t] * sim_vm_types[type].vcpus;
	}
	for (size_t t = 0; t < samples; t++) {
		size_t active = 0, overloaded = 0, empty = 0;
		struct planner_plan *plan;

		/* The placement decided at the previous step runs through this one. */
		memset(demand, 0, hosts * sizeof(*demand));
		memset(resident, 0, hosts * sizeof(*resident));
		for (size_t v = 0; v < vms; v++) {
			demand[vm[v].host] += history[v * samples + t];
			resident[vm[v].host]++;
		}
		for (size_t h = 0; h < hosts; h++) {
			if (!resident[h]) {
				empty++;
				continue;
			}
			active++;
			if (demand[h] > host[h].cpu_capacity + 1e-9)
				overloaded++;
			/* An empty host is powered down; a busy one draws by its CPU use. */
			result->energy_joules +=
				plan_sim_power(config->power_table,
					       fmin(demand[h] / host[h].cpu_capacity, 1.0)) *
				STEP_SECONDS;
		}
		result->overload_host_steps += (double)overloaded;
		result->active_host_steps += (double)active;
		result->overloaded_series[t] = (double)overloaded;
		result->active_series[t] = (double)active;
		if (active < result->min_active)
			result->min_active = active;
		result->empty_at_end = empty;
		if (!policy->migrate || t + 1 == samples)
			continue;

		for (size_t v = 0; v < vms; v++) {
			size_t len = t + 1 < config->window ? t + 1 : config->window;

			vm[v].cpu = history[v * samples + t];
			vm[v].cpu_history = &history[v * samples + t + 1 - len];
			vm[v].history_len = len;
			/* Busy vCPUs write memory: the dirty rate follows CPU use. */
			vm[v].dirty_pages_rate = config->dirty_per_core * vm[v].cpu;
		}
		ret = planner_plan_create(&cluster, &policy->params, &plan);
		if (ret < 0)
			goto out;
		for (size_t m = 0; m < plan->move_count; m++) {
			const struct planner_move *move = &plan->moves[m];

			vm[move->vm].host = move->destination;
			result->bytes += move->cost.bytes;
			result->migration_seconds += move->cost.total_seconds;
			if (move->cost.downtime_seconds > result->max_downtime_seconds)
				result->max_downtime_seconds = move->cost.downtime_seconds;
		}
		result->migrations += plan->move_count;
		result->unplaced += plan->unplaced_count;
		planner_plan_destroy(plan);
		if (isatty(STDERR_FILENO) && (t % 24 == 0 || t + 2 == samples))
			fprintf(stderr, "\rplan-sim: %-24s step %3zu/%zu", policy->label, t + 1,
				samples);
	}
	ret = 0;
out:
	free(host_ids);
	free(resident);
	free(demand);
	free(history);
	free(vm);
	free(host);
	if (ret < 0)
		fprintf(stderr, "plan-sim: %s: %s\n", policy->label, strerror(-ret));
	return ret;
}

static size_t sim_policies(const struct sim_config *config, struct sim_policy *policies)
{
	static const char *const overloads[] = {"static:0.8", "mad:2.5", "lr:1.2"};
	static const uint32_t selects[] = {PLANNER_SELECT_MIN_TIME, PLANNER_SELECT_CORRELATION};
	size_t count = 0;

	snprintf(policies[count].label, sizeof(policies[count].label), "none (no migration)");
	planner_params_init(&policies[count].params);
	policies[count++].migrate = 0;
	for (size_t o = 0; o < 3; o++) {
		for (size_t s = 0; s < 2; s++) {
			struct sim_policy *p = &policies[count++];

			planner_params_init(&p->params);
			planner_overload_parse(overloads[o], &p->params);
			p->params.select = selects[s];
			p->params.consolidate = config->consolidate;
			p->params.downtime_ms = config->downtime_ms;
			p->migrate = 1;
			snprintf(p->label, sizeof(p->label), "%s %s", overloads[o],
				 planner_select_name(selects[s]));
		}
	}
	return count;
}

static int sim_plot(const struct sim_config *config, const struct plan_sim_trace *trace,
		    const struct sim_policy *policies, const struct sim_result *results,
		    size_t count)
{
	size_t steps = trace->samples;
	double *hours = calloc(steps + 1, sizeof(*hours));
	double *smoothed = calloc(count * steps + 1, sizeof(*smoothed));
	const double *overloaded[8], *active[8];
	const char *labels[8];
	char title[640];
	int ret = -ENOMEM;

	if (!hours || !smoothed)
		goto out;
	for (size_t t = 0; t < steps; t++)
		hours[t] = (double)t * STEP_SECONDS / 3600.0;
	/* Overloaded hosts averaged over the hour before each step: single steps flicker. */
	for (size_t p = 0; p < count; p++) {
		for (size_t t = 0; t < steps; t++) {
			size_t from = t >= SIM_PLOT_SMOOTH - 1 ? t - (SIM_PLOT_SMOOTH - 1) : 0;
			double sum = 0.0;

			for (size_t k = from; k <= t; k++)
				sum += results[p].overloaded_series[k];
			smoothed[p * steps + t] = sum / (double)(t - from + 1);
		}
		overloaded[p] = &smoothed[p * steps];
		active[p] = results[p].active_series;
		labels[p] = policies[p].label;
	}
	snprintf(title, sizeof(title), "plan-sim: %zu hosts, %zu VMs, %s", config->hosts,
		 trace->vms, config->trace_path);
	ret = plan_sim_plot(config->plot_path, title, hours, steps, labels, count,
			    (const struct plan_sim_panel[]){
				    {"overloaded hosts, mean of the last hour", overloaded, 0},
				    {"active hosts", active, (double)config->hosts + 2},
			    });
out:
	free(smoothed);
	free(hours);
	return ret;
}

static void sim_print(const struct sim_config *config, const struct plan_sim_trace *trace,
		      const struct sim_policy *policies, const struct sim_result *results,
		      size_t count)
{
	double hours = trace->samples * STEP_SECONDS / 3600.0;

	if (config->json) {
		json_t *root = json_pack("{s:s, s:s, s:I, s:I, s:I, s:f, s:f, s:f, s:b}", "trace",
					 config->trace_path, "trace_source", trace->source, "hosts",
					 (json_int_t)config->hosts, "vms", (json_int_t)trace->vms,
					 "samples", (json_int_t)trace->samples, "host_cpus",
					 config->host_cpus, "host_memory_gib",
					 config->host_memory_gib, "bandwidth", config->bandwidth,
					 "consolidate", config->consolidate);
		json_t *rows = json_array();

		for (size_t p = 0; p < count; p++) {
			const struct sim_result *r = &results[p];

			json_array_append_new(
				rows,
				json_pack(
					"{s:s, s:I, s:f, s:f, s:f, s:f, s:f, s:I, s:I, s:I, s:f, s:f}",
					"policy", policies[p].label, "energy_kwh",
					r->energy_joules / 3.6e6, "migrations",
					(json_int_t)r->migrations, "bytes_gib", r->bytes / GIB,
					"migration_time_s", r->migration_seconds,
					"overload_host_hours",
					r->overload_host_steps * STEP_SECONDS / 3600.0,
					"overload_share_of_active_time",
					r->active_host_steps > 0
						? r->overload_host_steps / r->active_host_steps
						: 0.0,
					"mean_active_hosts", r->active_host_steps / trace->samples,
					"min_active_hosts", (json_int_t)r->min_active,
					"empty_hosts_at_end", (json_int_t)r->empty_at_end,
					"unplaced", (json_int_t)r->unplaced, "max_downtime_ms",
					r->max_downtime_seconds * 1e3));
		}
		json_object_set_new(root, "results", rows);
		json_dumpf(root, stdout,
			   JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(8));
		fputc('\n', stdout);
		json_decref(root);
		return;
	}
	printf("plan-sim: %zu hosts (%g cores, %g GiB, %g Gb/s each), %zu VMs x %zu samples "
	       "(%.0f h) from %s\n",
	       config->hosts, config->host_cpus, config->host_memory_gib,
	       config->bandwidth * 8 / 1e9, trace->vms, trace->samples, hours, config->trace_path);
	if (trace->source[0])
		printf("trace: %s\n", trace->source);
	printf("placement: best-fit decreasing; method: auto; consolidation: %s; window %zu "
	       "samples\n\n",
	       config->consolidate ? "on" : "off", config->window);
	printf("| %-22s | %10s | %10s | %10s | %12s | %15s | %10s | %11s | %12s | %8s |\n",
	       "policy", "energy kWh", "migrations", "moved GiB", "migration s", "overload host-h",
	       "overload %", "mean active", "empty at end", "unplaced");
	printf("|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|\n", "------------------------", "-----------:",
	       "-----------:", "-----------:", "-------------:", "----------------:",
	       "-----------:", "------------:", "-------------:", "---------:");
	for (size_t p = 0; p < count; p++) {
		const struct sim_result *r = &results[p];

		printf("| %-22s | %10.1f | %10zu | %10.1f | %12.0f | %15.2f | %9.2f%% | %11.1f | %12zu | "
		       "%8zu |\n",
		       policies[p].label, r->energy_joules / 3.6e6, r->migrations, r->bytes / GIB,
		       r->migration_seconds, r->overload_host_steps * STEP_SECONDS / 3600.0,
		       r->active_host_steps > 0
			       ? 100.0 * r->overload_host_steps / r->active_host_steps
			       : 0.0,
		       r->active_host_steps / trace->samples, r->empty_at_end, r->unplaced);
	}
}

/* Projected cost per method over a grid, for comparison with measured migrations. */
static int sim_cost_table(const struct sim_config *config)
{
	const double *sizes_gib = config->cost_sizes_gib, *rates = config->cost_rates;
	json_t *rows = json_array();

	if (!config->json) {
		printf("cost model: %g Gb/s link, 4 KiB pages, working set %s%g%s, downtime target "
		       "%u ms\n\n",
		       config->bandwidth * 8 / 1e9,
		       config->cost_working_set_fraction > 0 ? "" : "= all RAM (",
		       config->cost_working_set_fraction > 0 ? config->cost_working_set_fraction
							     : 1.0,
		       config->cost_working_set_fraction > 0 ? " of RAM" : ")",
		       config->downtime_ms);
		printf("| %7s | %12s | %-12s | %6s | %9s | %11s | %9s | %-26s | %-26s |\n",
		       "RAM GiB", "dirty pg/s", "auto", "rounds", "total s", "downtime ms",
		       "GiB sent", "precopy-qemu s / ms / conv", "postcopy s / stall ms");
		printf("|--------:|-------------:|--------------|-------:|----------:|------------:"
		       "|----------:|----------------------------|----------------------------|\n");
	}
	for (size_t s = 0; s < config->cost_size_count; s++) {
		for (size_t r = 0; r < config->cost_rate_count; r++) {
			struct cost_model_input input = {
				.ram_bytes = (uint64_t)(sizes_gib[s] * GIB),
				.page_size = 4096,
				.dirty_pages_rate = rates[r],
				.working_set_bytes = (uint64_t)(config->cost_working_set_fraction *
								sizes_gib[s] * GIB) /
						     4096 * 4096,
				.bandwidth = config->bandwidth,
				.downtime_ms = config->downtime_ms,
			};
			struct cost_projection choice, precopy, postcopy;
			char precopy_text[40], postcopy_text[40];
			int ret = cost_model_choose_method(&input, &choice);

			if (!ret)
				ret = cost_model_project(&input, COST_METHOD_PRECOPY_QEMU,
							 &precopy);
			if (!ret)
				ret = cost_model_project(&input, COST_METHOD_POSTCOPY, &postcopy);
			if (ret < 0)
				return ret;
			if (config->json) {
				json_array_append_new(
					rows,
					json_pack(
						"{s:f, s:f, s:s, s:i, s:f, s:f, s:f, s:f, s:f, s:b}",
						"ram_gib", sizes_gib[s], "dirty_pages_rate",
						rates[r], "auto", cost_method_name(choice.method),
						"rounds", (int)choice.rounds, "total_s",
						choice.total_seconds, "downtime_ms",
						choice.downtime_seconds * 1e3, "bytes",
						choice.bytes, "precopy_qemu_total_s",
						precopy.total_seconds, "precopy_qemu_downtime_ms",
						precopy.downtime_seconds * 1e3,
						"precopy_qemu_converges", precopy.converges));
				continue;
			}
			snprintf(precopy_text, sizeof(precopy_text), "%.3f / %.1f / %s",
				 precopy.total_seconds, precopy.downtime_seconds * 1e3,
				 precopy.converges ? "yes" : "no");
			snprintf(postcopy_text, sizeof(postcopy_text), "%.3f / %.1f",
				 postcopy.total_seconds, postcopy.stall_seconds * 1e3);
			printf("| %7g | %12.0f | %-12s | %6u | %9.3f | %11.1f | %9.3f | %-26s | "
			       "%-26s |\n",
			       sizes_gib[s], rates[r], cost_method_name(choice.method),
			       choice.rounds, choice.total_seconds, choice.downtime_seconds * 1e3,
			       choice.bytes / GIB, precopy_text, postcopy_text);
		}
	}
	if (config->json) {
		json_dumpf(rows, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(8));
		fputc('\n', stdout);
	}
	json_decref(rows);
	return 0;
}

static double sim_seconds_since(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - start->tv_sec) + (now.tv_nsec - start->tv_nsec) / 1e9;
}

static int sim_parse_number(const char *option, const char *text, double minimum, double *value_p)
{
	char *end;
	double value;

	errno = 0;
	value = strtod(text, &end);
	if (errno || end == text || *end || !(value >= minimum)) {
		fprintf(stderr, "plan-sim: bad %s '%s'\n", option, text);
		return -EINVAL;
	}
	*value_p = value;
	return 0;
}

/* "1,4,16" into at most 16 values >= minimum. */
static int sim_parse_list(const char *option, const char *text, double minimum, double *values,
			  size_t *count_p)
{
	char *copy = strdup(text), *save = NULL;
	size_t count = 0;
	int ret = 0;

	if (!copy)
		return -ENOMEM;
	for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		if (count == 16) {
			fprintf(stderr, "plan-sim: %s: at most 16 values\n", option);
			ret = -EINVAL;
			break;
		}
		ret = sim_parse_number(option, item, minimum, &values[count++]);
		if (ret)
			break;
	}
	if (!ret && count == 0) {
		fprintf(stderr, "plan-sim: %s: no values\n", option);
		ret = -EINVAL;
	}
	free(copy);
	if (!ret)
		*count_p = count;
	return ret;
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{"trace", required_argument, NULL, 't'},
		{"fraction", no_argument, NULL, 'f'},
		{"hosts", required_argument, NULL, 'H'},
		{"host-cpus", required_argument, NULL, 'c'},
		{"host-memory-gib", required_argument, NULL, 'm'},
		{"bandwidth-gbps", required_argument, NULL, 'b'},
		{"vms", required_argument, NULL, 'v'},
		{"window", required_argument, NULL, 'w'},
		{"dirty-per-core", required_argument, NULL, 'd'},
		{"working-set", required_argument, NULL, 'W'},
		{"downtime-ms", required_argument, NULL, 'D'},
		{"no-consolidate", no_argument, NULL, 'n'},
		{"json", no_argument, NULL, 'j'},
		{"plot", required_argument, NULL, 'p'},
		{"cost-table", no_argument, NULL, 'C'},
		{"ram-gib", required_argument, NULL, 'R'},
		{"dirty-rates", required_argument, NULL, 'r'},
		{"model", required_argument, NULL, 'M'},
		{"policies", required_argument, NULL, 'P'},
		{"idle-host-power", no_argument, NULL, 'I'},
		{"vm-types", required_argument, NULL, 'Y'},
		{"power-table", required_argument, NULL, 'T'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct sim_config config = {
		.trace_path = PLAN_SIM_DEFAULT_TRACE,
		.hosts = 50,
		.host_cpus = 8,
		.host_memory_gib = 64,
		.bandwidth = 10e9 / 8,
		.window = 12,
		.dirty_per_core = 20000,
		.working_set_fraction = 0.1,
		.downtime_ms = 300,
		.consolidate = 1,
		/* SPECpower of an HP ProLiant ML110 G5, the curve CloudSim's model uses */
		.power_table = {93.7, 97, 101, 105, 110, 116, 121, 125, 129, 133, 135},
		.cost_sizes_gib = {0.25, 1, 4, 16},
		.cost_size_count = 4,
		.cost_rates = {0, 1000, 10000, 50000, 100000, 200000, 400000},
		.cost_rate_count = 7,
	};
	int working_set_given = 0, hosts_given = 0, cloudsim = 0;
	struct cs_options cloudsim_options = {0};
	size_t *placement = NULL;
	struct sim_policy policies[8];
	struct sim_result results[8];
	struct plan_sim_trace trace, used;
	struct timespec started;
	size_t count;
	double value;
	int opt, ret = 0;

	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (opt) {
		case 't':
			config.trace_path = optarg;
			break;
		case 'f':
			config.fraction = 1;
			break;
		case 'H':
			if (sim_parse_number("--hosts", optarg, 2, &value))
				return 2;
			config.hosts = (size_t)value;
			hosts_given = 1;
			break;
		case 'c':
			if (sim_parse_number("--host-cpus", optarg, 0.001, &config.host_cpus))
				return 2;
			break;
		case 'm':
			if (sim_parse_number("--host-memory-gib", optarg, 0.001,
					     &config.host_memory_gib))
				return 2;
			break;
		case 'b':
			if (sim_parse_number("--bandwidth-gbps", optarg, 0.001, &value))
				return 2;
			config.bandwidth = value * 1e9 / 8;
			break;
		case 'v':
			if (sim_parse_number("--vms", optarg, 1, &value))
				return 2;
			config.max_vms = (size_t)value;
			break;
		case 'w':
			if (sim_parse_number("--window", optarg, 1, &value))
				return 2;
			config.window = (size_t)value;
			break;
		case 'd':
			if (sim_parse_number("--dirty-per-core", optarg, 0, &config.dirty_per_core))
				return 2;
			break;
		case 'W':
			working_set_given = 1;
			if (sim_parse_number("--working-set", optarg, 0,
					     &config.working_set_fraction) ||
			    config.working_set_fraction > 1.0)
				return 2;
			break;
		case 'D':
			if (sim_parse_number("--downtime-ms", optarg, 1, &value))
				return 2;
			config.downtime_ms = (uint32_t)value;
			break;
		case 'n':
			config.consolidate = 0;
			break;
		case 'j':
			config.json = 1;
			break;
		case 'p':
			config.plot_path = optarg;
			break;
		case 'C':
			config.cost_table = 1;
			break;
		case 'R':
			if (sim_parse_list("--ram-gib", optarg, 0.001, config.cost_sizes_gib,
					   &config.cost_size_count))
				return 2;
			break;
		case 'r':
			if (sim_parse_list("--dirty-rates", optarg, 0, config.cost_rates,
					   &config.cost_rate_count))
				return 2;
			break;
		case 'M':
			if (strcmp(optarg, "cloudsim") && strcmp(optarg, "native")) {
				fprintf(stderr, "plan-sim: --model: native or cloudsim\n");
				return 2;
			}
			cloudsim = !strcmp(optarg, "cloudsim");
			break;
		case 'P':
			cloudsim_options.policies = optarg;
			break;
		case 'I':
			cloudsim_options.idle_host_power = 1;
			break;
		case 'Y':
			if (strcmp(optarg, "turn") && strcmp(optarg, "blocks")) {
				fprintf(stderr, "plan-sim: --vm-types: turn or blocks\n");
				return 2;
			}
			cloudsim_options.vm_types_in_blocks = !strcmp(optarg, "blocks");
			cloudsim_options.vm_types_given = 1;
			break;
		case 'T': {
			double watts[16];
			size_t points = 0;

			if (sim_parse_list("--power-table", optarg, 0, watts, &points) ||
			    points != 11) {
				fprintf(stderr,
					"plan-sim: --power-table: 11 watts, 0 to 100 %% load\n");
				return 2;
			}
			memcpy(config.power_table, watts, sizeof(config.power_table));
			break;
		}
		case 'h':
			sim_usage(stdout);
			return 0;
		default:
			sim_usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		sim_usage(stderr);
		return 2;
	}
	if (config.cost_table) {
		/* Only an explicit --working-set caps the grid's working set. */
		config.cost_working_set_fraction =
			working_set_given ? config.working_set_fraction : 0.0;
		return sim_cost_table(&config) < 0 ? 1 : 0;
	}

	if (plan_sim_trace_load(config.trace_path, config.fraction, &trace) < 0)
		return 1;
	/* VMs past --vms are read but not simulated. */
	used = trace;
	if (config.max_vms && config.max_vms < trace.vms)
		used.vms = config.max_vms;
	if (cloudsim) {
		cloudsim_options.trace_path = config.trace_path;
		cloudsim_options.hosts = hosts_given ? config.hosts : 800;
		cloudsim_options.json = config.json;
		cloudsim_options.plot_path = config.plot_path;
		ret = cs_main(&used, &cloudsim_options);
		plan_sim_trace_free(&trace);
		return ret;
	}
	placement = calloc(used.vms + 1, sizeof(*placement));
	if (!placement || sim_initial_placement(&config, &used, placement) < 0) {
		free(placement);
		plan_sim_trace_free(&trace);
		return 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &started);
	count = sim_policies(&config, policies);
	for (size_t p = 0; p < count; p++) {
		ret = sim_run_policy(&config, &used, placement, &policies[p], &results[p]);
		if (ret < 0) {
			count = p;
			goto out;
		}
	}
	if (isatty(STDERR_FILENO))
		fprintf(stderr, "\r%60s\r", "");
	fprintf(stderr, "plan-sim: %zu policies x %zu steps, %zu VMs on %zu hosts: %.1f s\n", count,
		used.samples, used.vms, config.hosts, sim_seconds_since(&started));
	sim_print(&config, &used, policies, results, count);
	if (config.plot_path)
		ret = sim_plot(&config, &used, policies, results, count);
out:
	for (size_t p = 0; p < count; p++) {
		free(results[p].overloaded_series);
		free(results[p].active_series);
	}
	free(placement);
	plan_sim_trace_free(&trace);
	return ret < 0 ? 1 : 0;
}
