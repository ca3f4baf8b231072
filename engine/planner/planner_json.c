/* SPDX-License-Identifier: MIT */
/* engine/planner/planner_json.c - the cluster snapshot read from JSON (every field checked and
 * named in the error) and the plan written as JSON or as a table a person reads. */
#include "engine/planner/planner.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transport/log.h"

#define GIB 1073741824.0

static int planner_json_fail(const char *path, const char *what)
{
	rmig_log_error("snapshot: %s: %s", path, what);
	return -EINVAL;
}

/* Every key of object must be one of allowed: a misspelt field is an error, not a default. */
static int planner_json_known_keys(json_t *object, const char *path, const char *const *allowed)
{
	const char *key;
	json_t *value;
	char where[128];

	json_object_foreach(object, key, value)
	{
		size_t i;

		for (i = 0; allowed[i]; i++)
			if (strcmp(key, allowed[i]) == 0)
				break;
		if (!allowed[i]) {
			snprintf(where, sizeof(where), "%s.%s", path, key);
			return planner_json_fail(where, "unknown field");
		}
	}
	return 0;
}

/* A number field: required or not, and >= minimum (strictly above it when exclusive). */
static int planner_json_number(json_t *object, const char *path, const char *key, int required,
			       double minimum, int exclusive, double *value_p)
{
	json_t *value = json_object_get(object, key);
	char where[128];
	double number;

	snprintf(where, sizeof(where), "%s.%s", path, key);
	if (!value) {
		if (required)
			return planner_json_fail(where, "missing");
		return 0;
	}
	if (!json_is_number(value))
		return planner_json_fail(where, "must be a number");
	number = json_number_value(value);
	if (!isfinite(number) || number < minimum || (exclusive && number <= minimum)) {
		rmig_log_error("snapshot: %s: %g must be %s %g", where, number,
			       exclusive ? "greater than" : "at least", minimum);
		return -EINVAL;
	}
	*value_p = number;
	return 0;
}

static int planner_json_bytes(json_t *object, const char *path, const char *key, int required,
			      uint64_t *value_p)
{
	json_t *value = json_object_get(object, key);
	char where[128];

	snprintf(where, sizeof(where), "%s.%s", path, key);
	if (!value) {
		if (required)
			return planner_json_fail(where, "missing");
		return 0;
	}
	if (!json_is_integer(value))
		return planner_json_fail(where, "must be an integer number of bytes");
	if (json_integer_value(value) <= 0)
		return planner_json_fail(where, "must be positive");
	*value_p = (uint64_t)json_integer_value(value);
	return 0;
}

static int planner_json_id(json_t *object, const char *path, const char **id_p)
{
	json_t *value = json_object_get(object, "id");
	char where[128];

	snprintf(where, sizeof(where), "%s.id", path);
	if (!value)
		return planner_json_fail(where, "missing");
	if (!json_is_string(value) || json_string_length(value) == 0)
		return planner_json_fail(where, "must be a non-empty string");
	*id_p = json_string_value(value);
	return 0;
}

/* An array of numbers >= 0, copied into a new array. */
static int planner_json_history(json_t *object, const char *path, const char *key,
				double **history_p, size_t *len_p)
{
	json_t *array = json_object_get(object, key), *item;
	char where[160];
	double *history;
	size_t i;

	if (!array)
		return 0;
	snprintf(where, sizeof(where), "%s.%s", path, key);
	if (!json_is_array(array))
		return planner_json_fail(where, "must be an array of numbers");
	if (json_array_size(array) == 0)
		return 0;
	history = malloc(json_array_size(array) * sizeof(*history));
	if (!history)
		return -ENOMEM;
	json_array_foreach(array, i, item)
	{
		if (!json_is_number(item) || !(json_number_value(item) >= 0.0) ||
		    !isfinite(json_number_value(item))) {
			snprintf(where, sizeof(where), "%s.%s[%zu]", path, key, i);
			free(history);
			return planner_json_fail(where, "must be a number >= 0");
		}
		history[i] = json_number_value(item);
	}
	*history_p = history;
	*len_p = json_array_size(array);
	return 0;
}

void planner_cluster_release(struct planner_cluster *cluster)
{
	for (size_t h = 0; cluster->hosts && h < cluster->host_count; h++)
		free((double *)cluster->hosts[h].history);
	for (size_t v = 0; cluster->vms && v < cluster->vm_count; v++)
		free((double *)cluster->vms[v].cpu_history);
	free(cluster->hosts);
	free(cluster->vms);
	memset(cluster, 0, sizeof(*cluster));
}

static int planner_json_host(json_t *object, const char *path, struct planner_host *host)
{
	static const char *const keys[] = {"id",	"cpu_capacity",	       "memory_bytes",
					   "bandwidth", "utilisation_history", NULL};
	double *history = NULL;
	int ret;

	if (!json_is_object(object))
		return planner_json_fail(path, "must be an object");
	ret = planner_json_known_keys(object, path, keys);
	if (!ret)
		ret = planner_json_id(object, path, &host->id);
	if (!ret)
		ret = planner_json_number(object, path, "cpu_capacity", 1, 0.0, 1,
					  &host->cpu_capacity);
	if (!ret)
		ret = planner_json_bytes(object, path, "memory_bytes", 1, &host->memory_bytes);
	if (!ret)
		ret = planner_json_number(object, path, "bandwidth", 0, 0.0, 1, &host->bandwidth);
	if (!ret)
		ret = planner_json_history(object, path, "utilisation_history", &history,
					   &host->history_len);
	host->history = history;
	return ret;
}

static int planner_json_vm(json_t *object, const char *path, const struct planner_cluster *cluster,
			   struct planner_vm *vm)
{
	static const char *const keys[] = {"id",
					   "host",
					   "memory_bytes",
					   "cpu",
					   "cpu_history",
					   "dirty_pages_rate",
					   "working_set_bytes",
					   "zero_fraction",
					   "write_run_pages",
					   "pause_ms",
					   NULL};
	json_t *host = json_object_get(object, "host");
	double *history = NULL;
	char where[160];
	int ret;

	if (!json_is_object(object))
		return planner_json_fail(path, "must be an object");
	ret = planner_json_known_keys(object, path, keys);
	if (!ret)
		ret = planner_json_id(object, path, &vm->id);
	if (ret)
		return ret;
	snprintf(where, sizeof(where), "%s.host", path);
	if (!host)
		return planner_json_fail(where, "missing");
	if (!json_is_string(host))
		return planner_json_fail(where, "must be a host id");
	for (vm->host = 0; vm->host < cluster->host_count; vm->host++)
		if (strcmp(cluster->hosts[vm->host].id, json_string_value(host)) == 0)
			break;
	if (vm->host == cluster->host_count) {
		rmig_log_error("snapshot: %s: unknown host \"%s\"", where, json_string_value(host));
		return -EINVAL;
	}
	ret = planner_json_bytes(object, path, "memory_bytes", 1, &vm->memory_bytes);
	if (!ret)
		ret = planner_json_number(object, path, "cpu", 1, 0.0, 0, &vm->cpu);
	if (!ret)
		ret = planner_json_number(object, path, "dirty_pages_rate", 1, 0.0, 0,
					  &vm->dirty_pages_rate);
	if (!ret)
		ret = planner_json_bytes(object, path, "working_set_bytes", 0,
					 &vm->working_set_bytes);
	if (!ret)
		ret = planner_json_number(object, path, "zero_fraction", 0, 0.0, 0,
					  &vm->zero_fraction);
	if (!ret)
		ret = planner_json_number(object, path, "write_run_pages", 0, 0.0, 0,
					  &vm->write_run_pages);
	if (!ret)
		ret = planner_json_number(object, path, "pause_ms", 0, 0.0, 0, &vm->pause_ms);
	if (!ret && vm->zero_fraction > 1.0) {
		snprintf(where, sizeof(where), "%s.zero_fraction", path);
		ret = planner_json_fail(where, "must be between 0 and 1");
	}
	if (!ret && vm->working_set_bytes > vm->memory_bytes) {
		snprintf(where, sizeof(where), "%s.working_set_bytes", path);
		ret = planner_json_fail(where, "larger than memory_bytes");
	}
	if (!ret)
		ret = planner_json_history(object, path, "cpu_history", &history, &vm->history_len);
	vm->cpu_history = history;
	return ret;
}

static int planner_json_unique(const char *kind, const char *id, const char *const *ids, size_t n,
			       size_t index)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(ids[i], id) == 0) {
			rmig_log_error("snapshot: %s[%zu].id: \"%s\" already used by %s[%zu]", kind,
				       index, id, kind, i);
			return -EINVAL;
		}
	}
	return 0;
}

/*
 * Every field is finite on its own, but the plan divides VMs' cpu by hosts' capacity: a
 * snapshot whose whole cpu over its smallest capacity is not a finite number would make
 * utilisations infinite and every later comparison meaningless, so it is refused here.
 */
static int planner_json_check_scale(const struct planner_cluster *cluster)
{
	double smallest = cluster->hosts[0].cpu_capacity, total = 0.0;

	for (size_t h = 1; h < cluster->host_count; h++)
		if (cluster->hosts[h].cpu_capacity < smallest)
			smallest = cluster->hosts[h].cpu_capacity;
	for (size_t v = 0; v < cluster->vm_count; v++) {
		const struct planner_vm *vm = &cluster->vms[v];
		double peak = vm->cpu;

		for (size_t i = 0; i < vm->history_len; i++)
			if (vm->cpu_history[i] > peak)
				peak = vm->cpu_history[i];
		total += peak;
	}
	if (!isfinite(total) || !isfinite(total / smallest))
		return planner_json_fail("vms",
					 "cpu over the smallest cpu_capacity is not a finite "
					 "number (use one unit of a sensible size for both)");
	return 0;
}

int planner_cluster_from_json(json_t *root, struct planner_cluster *cluster)
{
	static const char *const keys[] = {"version", "page_size", "bandwidth",
					   "hosts",   "vms",	   NULL};
	json_t *hosts, *vms, *version, *page_size;
	struct planner_cluster out = {0};
	const char **ids = NULL;
	char path[64];
	size_t count;
	int ret;

	if (!json_is_object(root))
		return planner_json_fail("(top)", "must be an object");
	ret = planner_json_known_keys(root, "(top)", keys);
	if (ret)
		return ret;
	version = json_object_get(root, "version");
	if (version && (!json_is_integer(version) || json_integer_value(version) != 1))
		return planner_json_fail("version", "only version 1 is known");
	page_size = json_object_get(root, "page_size");
	if (page_size) {
		json_int_t value = json_is_integer(page_size) ? json_integer_value(page_size) : 0;

		if (value < 4096 || (value & (value - 1)) != 0)
			return planner_json_fail("page_size", "must be a power of two >= 4096");
		out.page_size = (uint64_t)value;
	}
	ret = planner_json_number(root, "(top)", "bandwidth", 1, 0.0, 1, &out.bandwidth);
	if (ret)
		return ret;
	hosts = json_object_get(root, "hosts");
	vms = json_object_get(root, "vms");
	if (!hosts || !json_is_array(hosts) || json_array_size(hosts) == 0)
		return planner_json_fail("hosts", "must be a non-empty array");
	if (!vms || !json_is_array(vms))
		return planner_json_fail("vms", "must be an array");

	count = json_array_size(hosts) > json_array_size(vms) ? json_array_size(hosts)
							      : json_array_size(vms);
	ids = malloc((count ? count : 1) * sizeof(*ids));
	out.hosts = calloc(json_array_size(hosts), sizeof(*out.hosts));
	out.vms = calloc(json_array_size(vms) ? json_array_size(vms) : 1, sizeof(*out.vms));
	ret = -ENOMEM;
	if (!ids || !out.hosts || !out.vms)
		goto err_release;
	for (size_t h = 0; h < json_array_size(hosts); h++) {
		snprintf(path, sizeof(path), "hosts[%zu]", h);
		out.host_count = h + 1;
		ret = planner_json_host(json_array_get(hosts, h), path, &out.hosts[h]);
		if (!ret)
			ret = planner_json_unique("hosts", out.hosts[h].id, ids, h, h);
		if (ret)
			goto err_release;
		ids[h] = out.hosts[h].id;
	}
	for (size_t v = 0; v < json_array_size(vms); v++) {
		snprintf(path, sizeof(path), "vms[%zu]", v);
		out.vm_count = v + 1;
		ret = planner_json_vm(json_array_get(vms, v), path, &out, &out.vms[v]);
		if (!ret)
			ret = planner_json_unique("vms", out.vms[v].id, ids, v, v);
		if (ret)
			goto err_release;
		ids[v] = out.vms[v].id;
	}
	ret = planner_json_check_scale(&out);
	if (ret)
		goto err_release;
	free(ids);
	*cluster = out;
	return 0;

err_release:
	free(ids);
	planner_cluster_release(&out);
	return ret;
}

/* value to 1/scale; a value too large for that to change anything is written as it is (scaling
 * it could overflow to inf, which JSON cannot hold: a host at 1e305 times its capacity). */
static json_t *planner_json_round(double value, double scale)
{
	if (!(fabs(value) < 1e15))
		return json_real(value);
	return json_real(round(value * scale) / scale);
}

int planner_plan_to_json(const struct planner_plan *plan, json_t **json_p)
{
	const struct planner_cluster *cluster = plan->cluster;
	json_t *root, *policy, *hosts, *moves, *unplaced, *totals;
	char overload[48];

	if (plan->params.overload == PLANNER_OVERLOAD_MAD)
		snprintf(overload, sizeof(overload), "mad:%g", plan->params.mad_k);
	else if (plan->params.overload == PLANNER_OVERLOAD_LR)
		snprintf(overload, sizeof(overload), "lr:%g", plan->params.lr_safety);
	else
		snprintf(overload, sizeof(overload), "static:%g", plan->params.threshold);
	root = json_object();
	policy = json_pack("{s:s, s:s, s:s, s:s, s:b}", "overload", overload, "select",
			   planner_select_name(plan->params.select), "placement",
			   "best-fit-decreasing", "method", "auto", "consolidate",
			   plan->params.consolidate != 0);
	hosts = json_array();
	moves = json_array();
	unplaced = json_array();
	totals = json_pack("{s:I, s:I, s:o, s:o, s:o}", "moves", (json_int_t)plan->move_count,
			   "unplaced", (json_int_t)plan->unplaced_count, "bytes",
			   json_integer((json_int_t)llround(plan->total_bytes)), "total_time_s",
			   planner_json_round(plan->total_seconds, 1e3), "max_downtime_ms",
			   planner_json_round(plan->max_downtime_seconds * 1e3, 1e3));
	if (!root || !policy || !hosts || !moves || !unplaced || !totals)
		goto err_free;
	json_object_set_new(root, "policy", policy);
	json_object_set_new(root, "hosts", hosts);
	json_object_set_new(root, "moves", moves);
	json_object_set_new(root, "unplaced", unplaced);
	json_object_set_new(root, "totals", totals);
	for (size_t h = 0; h < cluster->host_count; h++) {
		const struct planner_host_state *s = &plan->hosts[h];
		json_t *host = json_pack(
			"{s:s, s:o, s:o, s:o, s:b, s:b, s:o, s:I}", "id", cluster->hosts[h].id,
			"utilisation", planner_json_round(s->utilisation, 1e4), "load",
			planner_json_round(s->load, 1e4), "limit",
			planner_json_round(s->limit, 1e4), "overloaded", s->overloaded,
			"fallback_to_static", s->fallback, "utilisation_after",
			planner_json_round(s->utilisation_after, 1e4), "vms_after",
			(json_int_t)s->vms_after);

		if (!host || json_array_append_new(hosts, host) < 0)
			goto err_free_root;
	}
	for (size_t m = 0; m < plan->move_count; m++) {
		const struct planner_move *mv = &plan->moves[m];
		json_t *move = json_pack(
			"{s:s, s:s, s:s, s:s, s:s, s:i, s:b, s:o, s:o, s:o, s:o}", "vm",
			cluster->vms[mv->vm].id, "source", cluster->hosts[mv->source].id,
			"destination", cluster->hosts[mv->destination].id, "reason",
			mv->reason == PLANNER_MOVE_CONSOLIDATION ? "consolidation" : "overload",
			"method", cost_method_name(mv->cost.method), "rounds", (int)mv->cost.rounds,
			"converges", mv->cost.converges, "total_time_s",
			planner_json_round(mv->cost.total_seconds, 1e4), "downtime_ms",
			planner_json_round(mv->cost.downtime_seconds * 1e3, 1e3), "stall_ms",
			planner_json_round(mv->cost.stall_seconds * 1e3, 1e3), "bytes",
			json_integer((json_int_t)llround(mv->cost.bytes)));

		if (!move || json_array_append_new(moves, move) < 0)
			goto err_free_root;
	}
	for (size_t u = 0; u < plan->unplaced_count; u++) {
		const struct planner_unplaced *up = &plan->unplaced[u];
		json_t *entry =
			json_pack("{s:s, s:s, s:s}", "vm", cluster->vms[up->vm].id, "source",
				  cluster->hosts[up->source].id, "reason", up->reason);

		if (!entry || json_array_append_new(unplaced, entry) < 0)
			goto err_free_root;
	}
	*json_p = root;
	return 0;

err_free:
	json_decref(policy);
	json_decref(hosts);
	json_decref(moves);
	json_decref(unplaced);
	json_decref(totals);
err_free_root:
	json_decref(root);
	return -ENOMEM;
}

static void planner_format_bytes(double bytes, char *buf, size_t len)
{
	if (bytes >= GIB)
		snprintf(buf, len, "%.2f GiB", bytes / GIB);
	else
		snprintf(buf, len, "%.1f MiB", bytes / 1048576.0);
}

int planner_plan_to_table(const struct planner_plan *plan, char **text_p)
{
	const struct planner_cluster *cluster = plan->cluster;
	char *text = NULL, bytes[32];
	size_t len = 0, overloaded = 0;
	FILE *out = open_memstream(&text, &len);

	if (!out)
		return -ENOMEM;
	for (size_t h = 0; h < cluster->host_count; h++)
		overloaded += plan->hosts[h].overloaded != 0;
	planner_format_bytes(plan->total_bytes, bytes, sizeof(bytes));
	fprintf(out, "policy: overload %s (", planner_overload_name(plan->params.overload));
	if (plan->params.overload == PLANNER_OVERLOAD_MAD)
		fprintf(out, "k %g", plan->params.mad_k);
	else if (plan->params.overload == PLANNER_OVERLOAD_LR)
		fprintf(out, "safety %g", plan->params.lr_safety);
	else
		fprintf(out, "threshold %g", plan->params.threshold);
	fprintf(out, "), select %s, placement best-fit-decreasing, method auto%s\n",
		planner_select_name(plan->params.select),
		plan->params.consolidate ? ", consolidate" : "");
	fprintf(out,
		"hosts %zu, overloaded %zu, moves %zu, unplaced %zu, bytes %s, time %.2f s "
		"(one after another), longest downtime %.1f ms\n",
		cluster->host_count, overloaded, plan->move_count, plan->unplaced_count, bytes,
		plan->total_seconds, plan->max_downtime_seconds * 1e3);
	fprintf(out, "\n%-12s %6s %6s %6s %-10s %6s %4s\n", "host", "util", "load", "limit",
		"state", "after", "vms");
	for (size_t h = 0; h < cluster->host_count; h++) {
		const struct planner_host_state *s = &plan->hosts[h];

		fprintf(out, "%-12s %6.3f %6.3f %6.3f %-10s %6.3f %4zu\n", cluster->hosts[h].id,
			s->utilisation, s->load, s->limit,
			s->overloaded ? "OVERLOAD" : (s->fallback ? "ok/static" : "ok"),
			s->utilisation_after, s->vms_after);
	}
	if (plan->move_count) {
		fprintf(out, "\n%3s %-12s %-12s %-12s %-13s %6s %9s %11s %11s %s\n", "#", "vm",
			"source", "destination", "method", "rounds", "total_s", "downtime_ms",
			"bytes", "why");
		for (size_t m = 0; m < plan->move_count; m++) {
			const struct planner_move *mv = &plan->moves[m];

			planner_format_bytes(mv->cost.bytes, bytes, sizeof(bytes));
			fprintf(out, "%3zu %-12s %-12s %-12s %-13s %6u %9.3f %11.1f %11s %s\n",
				m + 1, cluster->vms[mv->vm].id, cluster->hosts[mv->source].id,
				cluster->hosts[mv->destination].id,
				cost_method_name(mv->cost.method), mv->cost.rounds,
				mv->cost.total_seconds, mv->cost.downtime_seconds * 1e3, bytes,
				mv->reason == PLANNER_MOVE_CONSOLIDATION ? "consolidation"
									 : "overload");
		}
	} else {
		fprintf(out, "\nno moves\n");
	}
	for (size_t u = 0; u < plan->unplaced_count; u++)
		fprintf(out, "unplaced: %s on %s: %s\n", cluster->vms[plan->unplaced[u].vm].id,
			cluster->hosts[plan->unplaced[u].source].id, plan->unplaced[u].reason);
	if (fclose(out) != 0) {
		free(text);
		return -ENOMEM;
	}
	*text_p = text;
	return 0;
}
