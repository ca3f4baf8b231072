/* SPDX-License-Identifier: MIT */
/* tests/unit/test_planner_policies.c - each planner policy on small clusters checked by hand:
 * detection (static, MAD, local regression), selection (minimum time, correlation),
 * best-fit-decreasing placement, consolidation and the method the cost model picks. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/planner/planner.h"

#define GIB_TEXT "1073741824"

struct fixture {
	json_t *root;
	struct planner_cluster cluster;
	struct planner_plan *plan;
};

static void plan_json(struct fixture *f, const char *json, const struct planner_params *params)
{
	json_error_t error;

	memset(f, 0, sizeof(*f));
	f->root = json_loads(json, 0, &error);
	if (!f->root)
		fail_msg("bad test snapshot: %s at line %d", error.text, error.line);
	assert_int_equal(planner_cluster_from_json(f->root, &f->cluster), 0);
	assert_int_equal(planner_plan_create(&f->cluster, params, &f->plan), 0);
}

static void fixture_release(struct fixture *f)
{
	planner_plan_destroy(f->plan);
	planner_cluster_release(&f->cluster);
	json_decref(f->root);
}

static const char *move_vm(const struct fixture *f, size_t m)
{
	return f->cluster.vms[f->plan->moves[m].vm].id;
}

static const char *move_destination(const struct fixture *f, size_t m)
{
	return f->cluster.hosts[f->plan->moves[m].destination].id;
}

/* h1 carries 5 + 2 + 2 = 9 of 10 (0.9 > 0.8); h2 6 of 10, h3 3 of 10. VM b (1 GiB) is the
 * quickest to move; c (8 GiB) follows the rest of h1 most closely. Taking either one off
 * leaves h1 at 0.7. */
static const char *const cluster_three_hosts =
	"{\"bandwidth\": 1250000000, \"hosts\": ["
	"{\"id\": \"h1\", \"cpu_capacity\": 10, \"memory_bytes\": 68719476736},"
	"{\"id\": \"h2\", \"cpu_capacity\": 10, \"memory_bytes\": 68719476736},"
	"{\"id\": \"h3\", \"cpu_capacity\": 10, \"memory_bytes\": 68719476736}],"
	"\"vms\": ["
	"{\"id\": \"a\", \"host\": \"h1\", \"memory_bytes\": 4294967296, \"cpu\": 5,"
	" \"dirty_pages_rate\": 1000, \"cpu_history\": [1, 2, 3, 4, 5]},"
	"{\"id\": \"b\", \"host\": \"h1\", \"memory_bytes\": " GIB_TEXT ", \"cpu\": 2,"
	" \"dirty_pages_rate\": 1000, \"cpu_history\": [2, 1, 2, 1, 2]},"
	"{\"id\": \"c\", \"host\": \"h1\", \"memory_bytes\": 8589934592, \"cpu\": 2,"
	" \"dirty_pages_rate\": 1000, \"cpu_history\": [0, 0.5, 1, 1.5, 2]},"
	"{\"id\": \"d\", \"host\": \"h2\", \"memory_bytes\": " GIB_TEXT ", \"cpu\": 6,"
	" \"dirty_pages_rate\": 0},"
	"{\"id\": \"e\", \"host\": \"h3\", \"memory_bytes\": " GIB_TEXT ", \"cpu\": 3,"
	" \"dirty_pages_rate\": 0}]}";

static void test_no_overloaded_host_gives_empty_plan(void **state)
{
	struct planner_params params;
	struct fixture f;

	(void)state;
	planner_params_init(&params);
	params.threshold = 0.95;
	plan_json(&f, cluster_three_hosts, &params);
	assert_false(f.plan->hosts[0].overloaded);
	assert_int_equal(f.plan->move_count, 0);
	assert_int_equal(f.plan->unplaced_count, 0);
	assert_true(f.plan->total_bytes == 0.0);
	fixture_release(&f);
}

static void test_static_threshold_flags_host_above_it(void **state)
{
	struct planner_params params;
	struct fixture f;

	(void)state;
	planner_params_init(&params);
	plan_json(&f, cluster_three_hosts, &params);
	assert_true(f.plan->hosts[0].overloaded);
	assert_true(fabs(f.plan->hosts[0].utilisation - 0.9) < 1e-12);
	assert_false(f.plan->hosts[1].overloaded);
	assert_false(f.plan->hosts[2].overloaded);
	fixture_release(&f);
}

/* Minimum time takes b (1 GiB); best fit puts its 0.2 on h2 (0.6 -> exactly 0.8, no room
 * left) rather than h3 (0.3 -> 0.5). */
static void test_min_time_selects_quickest_vm_and_best_fit_picks_tightest_host(void **state)
{
	struct planner_params params;
	struct fixture f;

	(void)state;
	planner_params_init(&params);
	plan_json(&f, cluster_three_hosts, &params);
	assert_int_equal(f.plan->move_count, 1);
	assert_string_equal(move_vm(&f, 0), "b");
	assert_string_equal(move_destination(&f, 0), "h2");
	assert_true(fabs(f.plan->hosts[0].utilisation_after - 0.7) < 1e-12);
	assert_true(fabs(f.plan->hosts[1].utilisation_after - 0.8) < 1e-12);
	assert_int_equal(f.plan->moves[0].reason, PLANNER_MOVE_OVERLOAD);
	fixture_release(&f);
}

/* corr(c, a + b) = 10 / sqrt(10 * 11.2) = 0.945 beats corr(a, b + c) = 0.822 and
 * corr(b, a + c) ~ 0: c leaves, though it is the slowest to move. */
static void test_correlation_selects_vm_most_correlated_with_host(void **state)
{
	struct planner_params params;
	struct fixture f;

	(void)state;
	planner_params_init(&params);
	params.select = PLANNER_SELECT_CORRELATION;
	plan_json(&f, cluster_three_hosts, &params);
	assert_int_equal(f.plan->move_count, 1);
	assert_string_equal(move_vm(&f, 0), "c");
	assert_string_equal(move_destination(&f, 0), "h2");
	fixture_release(&f);
}

static void test_correlation_matches_hand_computed_values(void **state)
{
	const double a[] = {1, 2, 3, 4, 5}, rest_of_c[] = {3, 3, 5, 5, 7};
	const double rest_of_a[] = {2, 1.5, 3, 2.5, 4}, flat[] = {1, 1, 1, 1, 1};

	(void)state;
	assert_true(fabs(planner_correlation(a, rest_of_c, 5) - 10.0 / sqrt(112.0)) < 1e-12);
	assert_true(fabs(planner_correlation(a, rest_of_a, 5) - 5.0 / sqrt(37.0)) < 1e-12);
	assert_true(planner_correlation(a, flat, 5) == 0.0);
}

/* h1 is overloaded by one VM of 9 cpu; the others have 2 cpu free below 0.8. */
static void test_no_destination_fits_gives_clear_reason(void **state)
{
	static const char *const json =
		"{\"bandwidth\": 1250000000, \"hosts\": ["
		"{\"id\": \"h1\", \"cpu_capacity\": 10, \"memory_bytes\": 68719476736},"
		"{\"id\": \"h2\", \"cpu_capacity\": 10, \"memory_bytes\": 68719476736}],"
		"\"vms\": ["
		"{\"id\": \"big\", \"host\": \"h1\", \"memory_bytes\": " GIB_TEXT ", \"cpu\": 9,"
		" \"dirty_pages_rate\": 0},"
		"{\"id\": \"d\", \"host\": \"h2\", \"memory_bytes\": " GIB_TEXT ", \"cpu\": 6,"
		" \"dirty_pages_rate\": 0}]}";
	struct planner_params params;
	struct fixture f;

	(void)state;
	planner_params_init(&params);
	plan_json(&f, json, &params);
	assert_true(f.plan->hosts[0].overloaded);
	assert_int_equal(f.plan->move_count, 0);
	assert_int_equal(f.plan->unplaced_count, 1);
	assert_string_equal(f.cluster.vms[f.plan->unplaced[0].vm].id, "big");
	assert_non_null(strstr(f.plan->unplaced[0].reason, "no destination fits"));
	assert_non_null(strstr(f.plan->unplaced[0].reason, "needs 9 cpu"));
	assert_non_null(strstr(f.plan->unplaced[0].reason, "h2"));
	/* The VM stays where it was. */
	assert_int_equal(f.plan->hosts[0].vms_after, 1);
	fixture_release(&f);
}

/* h2 has cpu room but only 512 MiB of memory free: b (1 GiB) must go to h3. */
static void test_placement_respects_destination_memory(void **state)
{
	static const char *const json =
		"{\"bandwidth\": 1250000000, \"hosts\": ["
		"{\"id\": \"h1\", \"cpu_capacity\": 10, \"memory_bytes\": 68719476736},"
		"{\"id\": \"h2\", \"cpu_capacity\": 10, \"memory_bytes\": 1610612736},"
		"{\"id\": \"h3\", \"cpu_capacity\": 10, \"memory_bytes\": 68719476736}],"
		"\"vms\": ["
		"{\"id\": \"a\", \"host\": \"h1\", \"memory_bytes\": 4294967296, \"cpu\": 7,"
		" \"dirty_pages_rate\": 0},"
		"{\"id\": \"b\", \"host\": \"h1\", \"memory_bytes\": " GIB_TEXT ", \"cpu\": 2,"
		" \"dirty_pages_rate\": 0},"
		"{\"id\": \"d\", \"host\": \"h2\", \"memory_bytes\": " GIB_TEXT ", \"cpu\": 5,"
		" \"dirty_pages_rate\": 0},"
		"{\"id\": \"e\", \"host\": \"h3\", \"memory_bytes\": " GIB_TEXT ", \"cpu\": 1,"
		" \"dirty_pages_rate\": 0}]}";
	struct planner_params params;
	struct fixture f;

	(void)state;
	planner_params_init(&params);
	plan_json(&f, json, &params);
	assert_int_equal(f.plan->move_count, 1);
	assert_string_equal(move_vm(&f, 0), "b");
	assert_string_equal(move_destination(&f, 0), "h3");
	fixture_release(&f);
}

static void test_mad_matches_hand_computed_value(void **state)
{
	const double values[] = {1, 2, 3, 4, 100};

	(void)state;
	/* median 3, deviations 2 1 0 1 97, their median 1 */
	assert_true(planner_mad(values, 5) == 1.0);
}

/* One host with a utilisation history and a VM making its current load. */
static char *one_host_json(const char *history, double cpu, char *buf, size_t len)
{
	snprintf(buf, len,
		 "{\"bandwidth\": 1250000000, \"hosts\": ["
		 "{\"id\": \"h1\", \"cpu_capacity\": 100, \"memory_bytes\": 68719476736,"
		 " \"utilisation_history\": [%s]},"
		 "{\"id\": \"h2\", \"cpu_capacity\": 100, \"memory_bytes\": 68719476736}],"
		 "\"vms\": [{\"id\": \"a\", \"host\": \"h1\", \"memory_bytes\": " GIB_TEXT
		 ", \"cpu\": %g, \"dirty_pages_rate\": 0}]}",
		 history, cpu);
	return buf;
}

/* A steady host (MAD 0) may run at 0.85 under MAD although the static 0.8 calls it overloaded. */
static void test_mad_lets_steady_host_run_above_static_threshold(void **state)
{
	const char *steady = "0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.85";
	struct planner_params params;
	struct fixture f;
	char buf[1024];

	(void)state;
	planner_params_init(&params);
	params.overload = PLANNER_OVERLOAD_MAD;
	plan_json(&f, one_host_json(steady, 85, buf, sizeof(buf)), &params);
	assert_true(f.plan->hosts[0].limit == 1.0);
	assert_false(f.plan->hosts[0].overloaded);
	assert_false(f.plan->hosts[0].fallback);
	fixture_release(&f);

	params.overload = PLANNER_OVERLOAD_STATIC;
	plan_json(&f, one_host_json(steady, 85, buf, sizeof(buf)), &params);
	assert_true(f.plan->hosts[0].overloaded);
	fixture_release(&f);
}

/* Alternating 0.3 / 0.7: median 0.5, every deviation 0.2, limit 1 - 2.5 * 0.2 = 0.5, so 0.6 is
 * an overload under MAD and not under the static 0.8. */
static void test_mad_lowers_limit_for_volatile_host(void **state)
{
	const char *volatile_history = "0.3,0.7,0.3,0.7,0.3,0.7,0.3,0.7,0.3,0.7,0.3,0.7";
	struct planner_params params;
	struct fixture f;
	char buf[1024];

	(void)state;
	planner_params_init(&params);
	params.overload = PLANNER_OVERLOAD_MAD;
	plan_json(&f, one_host_json(volatile_history, 60, buf, sizeof(buf)), &params);
	assert_true(fabs(f.plan->hosts[0].limit - 0.5) < 1e-12);
	assert_true(f.plan->hosts[0].overloaded);
	fixture_release(&f);
}

/* No host history: the VMs' cpu histories, aligned at their newest sample (b's two oldest lie
 * beyond a's history and are ignored), add up to 0.3, 0.7, 0.3, ... of a 100-cpu host: the
 * same volatile host as above, limit 0.5. */
static void test_mad_uses_sum_of_vm_histories_when_host_has_none(void **state)
{
	static const char *const json =
		"{\"bandwidth\": 1250000000, \"hosts\": ["
		"{\"id\": \"h1\", \"cpu_capacity\": 100, \"memory_bytes\": 68719476736},"
		"{\"id\": \"h2\", \"cpu_capacity\": 100, \"memory_bytes\": 68719476736}],"
		"\"vms\": ["
		"{\"id\": \"a\", \"host\": \"h1\", \"memory_bytes\": " GIB_TEXT ", \"cpu\": 50,"
		" \"dirty_pages_rate\": 0,"
		" \"cpu_history\": [20, 50, 20, 50, 20, 50, 20, 50, 20, 50, 20, 50]},"
		"{\"id\": \"b\", \"host\": \"h1\", \"memory_bytes\": " GIB_TEXT ", \"cpu\": 20,"
		" \"dirty_pages_rate\": 0,"
		" \"cpu_history\": [0, 5, 10, 20, 10, 20, 10, 20, 10, 20, 10, 20, 10, 20]}]}";
	struct planner_params params;
	struct fixture f;

	(void)state;
	planner_params_init(&params);
	params.overload = PLANNER_OVERLOAD_MAD;
	plan_json(&f, json, &params);
	assert_false(f.plan->hosts[0].fallback);
	assert_true(fabs(f.plan->hosts[0].limit - 0.5) < 1e-12);
	assert_true(f.plan->hosts[0].overloaded);
	/* h2 has neither its own history nor VMs: static fallback. */
	assert_true(f.plan->hosts[1].fallback);
	fixture_release(&f);
}

static void test_adaptive_policy_with_short_history_falls_back_to_static(void **state)
{
	struct planner_params params;
	struct fixture f;
	char buf[1024];

	(void)state;
	planner_params_init(&params);
	params.overload = PLANNER_OVERLOAD_MAD;
	plan_json(&f, one_host_json("0.5,0.5,0.5", 85, buf, sizeof(buf)), &params);
	assert_true(f.plan->hosts[0].fallback);
	assert_true(f.plan->hosts[0].limit == 0.8);
	assert_true(f.plan->hosts[0].overloaded);
	fixture_release(&f);
}

/* A straight line is forecast exactly whatever the weights: 0.30..0.75 -> 0.80. */
static void test_lr_forecast_extends_a_line(void **state)
{
	double line[10];

	(void)state;
	for (int i = 0; i < 10; i++)
		line[i] = 0.30 + 0.05 * i;
	assert_true(fabs(planner_lr_forecast(line, 10, PLANNER_LR_WINDOW) - 0.80) < 1e-9);
}

/* Rising to 0.80 (not above the static 0.8) forecasts 0.85; 1.2 * 0.85 > 1: overloaded.
 * Rising to 0.75 forecasts 0.80; 1.2 * 0.80 = 0.96: not. */
static void test_lr_flags_host_whose_forecast_crosses_limit(void **state)
{
	struct planner_params params;
	struct fixture f;
	char buf[1024];

	(void)state;
	planner_params_init(&params);
	params.overload = PLANNER_OVERLOAD_LR;
	plan_json(&f,
		  one_host_json("0.35,0.40,0.45,0.50,0.55,0.60,0.65,0.70,0.75,0.80", 80, buf,
				sizeof(buf)),
		  &params);
	assert_true(fabs(f.plan->hosts[0].load - 0.85) < 1e-9);
	assert_true(f.plan->hosts[0].overloaded);
	fixture_release(&f);

	plan_json(&f,
		  one_host_json("0.30,0.35,0.40,0.45,0.50,0.55,0.60,0.65,0.70,0.75", 75, buf,
				sizeof(buf)),
		  &params);
	assert_true(fabs(f.plan->hosts[0].load - 0.80) < 1e-9);
	assert_false(f.plan->hosts[0].overloaded);
	fixture_release(&f);
}

/* h1 at 0.1 empties onto h2 (0.5) when consolidating; nothing moves otherwise. */
static void test_consolidation_empties_lightly_loaded_host(void **state)
{
	static const char *const json =
		"{\"bandwidth\": 1250000000, \"hosts\": ["
		"{\"id\": \"h1\", \"cpu_capacity\": 10, \"memory_bytes\": 68719476736},"
		"{\"id\": \"h2\", \"cpu_capacity\": 10, \"memory_bytes\": 68719476736},"
		"{\"id\": \"h3\", \"cpu_capacity\": 10, \"memory_bytes\": 68719476736}],"
		"\"vms\": ["
		"{\"id\": \"x\", \"host\": \"h1\", \"memory_bytes\": " GIB_TEXT ", \"cpu\": 1,"
		" \"dirty_pages_rate\": 0},"
		"{\"id\": \"y\", \"host\": \"h2\", \"memory_bytes\": " GIB_TEXT ", \"cpu\": 6,"
		" \"dirty_pages_rate\": 0},"
		"{\"id\": \"z\", \"host\": \"h3\", \"memory_bytes\": " GIB_TEXT ", \"cpu\": 7,"
		" \"dirty_pages_rate\": 0}]}";
	struct planner_params params;
	struct fixture f;

	(void)state;
	planner_params_init(&params);
	plan_json(&f, json, &params);
	assert_int_equal(f.plan->move_count, 0);
	fixture_release(&f);

	params.consolidate = 1;
	plan_json(&f, json, &params);
	assert_int_equal(f.plan->move_count, 1);
	assert_string_equal(move_vm(&f, 0), "x");
	/* h3 (0.7 + 0.1 = 0.8) is the tighter fit. */
	assert_string_equal(move_destination(&f, 0), "h3");
	assert_int_equal(f.plan->moves[0].reason, PLANNER_MOVE_CONSOLIDATION);
	assert_int_equal(f.plan->hosts[0].vms_after, 0);
	fixture_release(&f);
}

/* h1 holds 15 of 16 GiB at 1/16 of its CPU, h2 2 GiB at 1/8: by CPU h1 looks lightest, yet
 * emptying it moves 15 GiB onto hosts it fills. By the scarcer resource h2 is the lighter one:
 * its two 1 GiB VMs go (to h3, the tighter CPU fit) and h1 stays. */
static void test_consolidation_weighs_memory_as_much_as_cpu(void **state)
{
	static const char *const json =
		"{\"bandwidth\": 1250000000, \"hosts\": ["
		"{\"id\": \"h1\", \"cpu_capacity\": 16, \"memory_bytes\": 17179869184},"
		"{\"id\": \"h2\", \"cpu_capacity\": 16, \"memory_bytes\": 17179869184},"
		"{\"id\": \"h3\", \"cpu_capacity\": 16, \"memory_bytes\": 17179869184}],"
		"\"vms\": ["
		"{\"id\": \"a\", \"host\": \"h1\", \"memory_bytes\": 8589934592, \"cpu\": 0.5,"
		" \"dirty_pages_rate\": 0},"
		"{\"id\": \"b\", \"host\": \"h1\", \"memory_bytes\": 7516192768, \"cpu\": 0.5,"
		" \"dirty_pages_rate\": 0},"
		"{\"id\": \"c\", \"host\": \"h2\", \"memory_bytes\": " GIB_TEXT ", \"cpu\": 1,"
		" \"dirty_pages_rate\": 0},"
		"{\"id\": \"d\", \"host\": \"h2\", \"memory_bytes\": " GIB_TEXT ", \"cpu\": 1,"
		" \"dirty_pages_rate\": 0},"
		"{\"id\": \"e\", \"host\": \"h3\", \"memory_bytes\": 8589934592, \"cpu\": 8,"
		" \"dirty_pages_rate\": 0}]}";
	struct planner_params params;
	struct fixture f;

	(void)state;
	planner_params_init(&params);
	params.consolidate = 1;
	plan_json(&f, json, &params);
	assert_int_equal(f.plan->move_count, 2);
	for (size_t m = 0; m < 2; m++) {
		assert_string_equal(f.cluster.hosts[f.plan->moves[m].source].id, "h2");
		assert_string_equal(move_destination(&f, m), "h3");
	}
	assert_int_equal(f.plan->hosts[1].vms_after, 0);
	assert_int_equal(f.plan->hosts[0].vms_after, 2);
	fixture_release(&f);
}

/* A VM dirtying 400000 pages/s (1.6 GB/s) over a 1.25 GB/s link cannot converge by pre-copy:
 * the plan carries a post-copy family method for it; a quiet VM gets pre-copy. h1 must shed
 * two of its three VMs (0.9 -> 0.3) and the roomy h2 takes both. */
static void test_plan_method_follows_cost_model(void **state)
{
	static const char *const json =
		"{\"bandwidth\": 1250000000, \"hosts\": ["
		"{\"id\": \"h1\", \"cpu_capacity\": 10, \"memory_bytes\": 68719476736},"
		"{\"id\": \"h2\", \"cpu_capacity\": 100, \"memory_bytes\": 68719476736}],"
		"\"vms\": ["
		"{\"id\": \"hot\", \"host\": \"h1\", \"memory_bytes\": " GIB_TEXT ", \"cpu\": 3,"
		" \"dirty_pages_rate\": 400000},"
		"{\"id\": \"quiet\", \"host\": \"h1\", \"memory_bytes\": " GIB_TEXT ", \"cpu\": 3,"
		" \"dirty_pages_rate\": 100},"
		"{\"id\": \"stay\", \"host\": \"h1\", \"memory_bytes\": 34359738368, \"cpu\": 3,"
		" \"dirty_pages_rate\": 0}]}";
	struct planner_params params;
	int seen_hot = 0, seen_quiet = 0;
	struct fixture f;

	(void)state;
	planner_params_init(&params);
	params.threshold = 0.3;
	plan_json(&f, json, &params);
	assert_int_equal(f.plan->move_count, 2);
	for (size_t m = 0; m < f.plan->move_count; m++) {
		uint32_t method = f.plan->moves[m].cost.method;

		if (strcmp(move_vm(&f, m), "hot") == 0) {
			seen_hot = 1;
			assert_true(method == COST_METHOD_TSMC || method == COST_METHOD_HYBRID ||
				    method == COST_METHOD_POSTCOPY);
		} else {
			assert_string_equal(move_vm(&f, m), "quiet");
			seen_quiet = 1;
			assert_int_equal(method, COST_METHOD_PRECOPY_QEMU);
			assert_true(f.plan->moves[m].cost.converges);
		}
	}
	assert_true(seen_hot && seen_quiet);
	fixture_release(&f);
}

/* Deterministic pseudo-random clusters, every policy: recompute each host's load from the moves
 * and check no destination ends above its limit or its memory. */
static uint64_t lcg_next(uint64_t *seed)
{
	*seed = *seed * 6364136223846793005ull + 1442695040888963407ull;
	return *seed >> 33;
}

static void test_plan_never_overloads_a_destination(void **state)
{
	enum { HOSTS = 20, VMS = 150, HISTORY = 24 };
	static double history[VMS][HISTORY];
	struct planner_host hosts[HOSTS];
	struct planner_vm vms[VMS];
	struct planner_cluster cluster = {hosts, HOSTS, vms, VMS, 1.25e9, 4096};
	uint64_t seed = 42;
	size_t checked_moves = 0;

	(void)state;
	for (size_t h = 0; h < HOSTS; h++)
		hosts[h] = (struct planner_host){
			.id = "h", .cpu_capacity = 8.0, .memory_bytes = 64ull << 30};
	for (size_t v = 0; v < VMS; v++) {
		for (size_t t = 0; t < HISTORY; t++)
			history[v][t] = (double)(lcg_next(&seed) % 100) / 100.0;
		vms[v] = (struct planner_vm){.id = "v",
					     .host = v % HOSTS,
					     .memory_bytes = (1ull + lcg_next(&seed) % 4) << 30,
					     .cpu = history[v][HISTORY - 1],
					     .cpu_history = history[v],
					     .history_len = HISTORY,
					     .dirty_pages_rate = (double)(lcg_next(&seed) % 50000)};
	}
	for (uint32_t overload = 0; overload <= PLANNER_OVERLOAD_LR; overload++) {
		for (uint32_t select = 0; select <= PLANNER_SELECT_CORRELATION; select++) {
			for (uint32_t consolidate = 0; consolidate <= 1; consolidate++) {
				struct planner_params params;
				struct planner_plan *plan;
				size_t where[VMS];
				double cpu[HOSTS] = {0};
				uint64_t memory[HOSTS] = {0};
				int received[HOSTS] = {0};

				planner_params_init(&params);
				params.overload = overload;
				params.select = select;
				params.consolidate = consolidate;
				assert_int_equal(planner_plan_create(&cluster, &params, &plan), 0);
				for (size_t v = 0; v < VMS; v++)
					where[v] = vms[v].host;
				for (size_t m = 0; m < plan->move_count; m++) {
					assert_int_equal(where[plan->moves[m].vm],
							 plan->moves[m].source);
					assert_int_not_equal(plan->moves[m].source,
							     plan->moves[m].destination);
					where[plan->moves[m].vm] = plan->moves[m].destination;
					received[plan->moves[m].destination] = 1;
				}
				for (size_t v = 0; v < VMS; v++) {
					cpu[where[v]] += vms[v].cpu;
					memory[where[v]] += vms[v].memory_bytes;
				}
				for (size_t h = 0; h < HOSTS; h++) {
					double after = cpu[h] / hosts[h].cpu_capacity;
					double load = after + plan->hosts[h].load -
						      plan->hosts[h].utilisation;

					assert_true(fabs(after - plan->hosts[h].utilisation_after) <
						    1e-9);
					if (!received[h])
						continue;
					assert_false(plan->hosts[h].overloaded);
					assert_true(load <= plan->hosts[h].limit + 1e-9);
					assert_true(memory[h] <= hosts[h].memory_bytes);
				}
				checked_moves += plan->move_count;
				planner_plan_destroy(plan);
			}
		}
	}
	/* The clusters must actually exercise placement. */
	assert_true(checked_moves > 20);
}

static void test_policy_names_parse(void **state)
{
	struct planner_params params;
	uint32_t select;

	(void)state;
	planner_params_init(&params);
	assert_int_equal(planner_overload_parse("static:0.7", &params), 0);
	assert_int_equal(params.overload, PLANNER_OVERLOAD_STATIC);
	assert_true(params.threshold == 0.7);
	assert_int_equal(planner_overload_parse("mad:3", &params), 0);
	assert_true(params.mad_k == 3.0);
	assert_int_equal(planner_overload_parse("lr", &params), 0);
	assert_int_equal(params.overload, PLANNER_OVERLOAD_LR);
	assert_int_equal(planner_overload_parse("static:1.5", &params), -EINVAL);
	assert_int_equal(planner_overload_parse("iqr", &params), -EINVAL);
	assert_int_equal(planner_overload_parse("mad:x", &params), -EINVAL);
	assert_int_equal(planner_select_parse("correlation", &select), 0);
	assert_int_equal(select, PLANNER_SELECT_CORRELATION);
	assert_int_equal(planner_select_parse("random", &select), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_overloaded_host_gives_empty_plan),
		cmocka_unit_test(test_static_threshold_flags_host_above_it),
		cmocka_unit_test(
			test_min_time_selects_quickest_vm_and_best_fit_picks_tightest_host),
		cmocka_unit_test(test_correlation_selects_vm_most_correlated_with_host),
		cmocka_unit_test(test_correlation_matches_hand_computed_values),
		cmocka_unit_test(test_no_destination_fits_gives_clear_reason),
		cmocka_unit_test(test_placement_respects_destination_memory),
		cmocka_unit_test(test_mad_matches_hand_computed_value),
		cmocka_unit_test(test_mad_lets_steady_host_run_above_static_threshold),
		cmocka_unit_test(test_mad_lowers_limit_for_volatile_host),
		cmocka_unit_test(test_mad_uses_sum_of_vm_histories_when_host_has_none),
		cmocka_unit_test(test_adaptive_policy_with_short_history_falls_back_to_static),
		cmocka_unit_test(test_lr_forecast_extends_a_line),
		cmocka_unit_test(test_lr_flags_host_whose_forecast_crosses_limit),
		cmocka_unit_test(test_consolidation_empties_lightly_loaded_host),
		cmocka_unit_test(test_consolidation_weighs_memory_as_much_as_cpu),
		cmocka_unit_test(test_plan_method_follows_cost_model),
		cmocka_unit_test(test_plan_never_overloads_a_destination),
		cmocka_unit_test(test_policy_names_parse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
