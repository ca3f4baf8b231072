/* SPDX-License-Identifier: MIT */
/* tests/unit/test_planner_json.c - the planner's public ABI and `rmig plan`: snapshot validation
 * names the offending field, the plan reads back as JSON, a table and move by move, and the
 * command runs on the example snapshot shipped in bench/data. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "bindings/cli/cli.h"
#include "rmig-plan.h"
#include "transport/log.h"

#ifndef RMIG_SOURCE_DIR
#error "RMIG_SOURCE_DIR must name the source tree"
#endif

static char last_log[512];

static void capture_log(void *opaque, int level, const char *message)
{
	(void)opaque;
	(void)level;
	snprintf(last_log, sizeof(last_log), "%s", message);
}

static int setup_log(void **state)
{
	(void)state;
	last_log[0] = '\0';
	rmig_log_handler_set(capture_log, NULL, RMIG_LOG_LEVEL_ERROR);
	return 0;
}

static int teardown_log(void **state)
{
	(void)state;
	rmig_log_handler_set(NULL, NULL, RMIG_LOG_LEVEL_WARN);
	return 0;
}

#define HOST(id, extra) \
	"{\"id\": " id ", \"cpu_capacity\": 10, \"memory_bytes\": 68719476736" extra "}"
#define VM(id, host, extra)                                                              \
	"{\"id\": " id ", \"host\": " host ", \"memory_bytes\": 1073741824, \"cpu\": 2," \
	" \"dirty_pages_rate\": 100" extra "}"

/* Expect -EINVAL and a log line containing every fragment given. */
static void expect_rejected(const char *json, const char *fragment)
{
	rmig_plan_t *plan = NULL;

	last_log[0] = '\0';
	assert_int_equal(rmig_plan_from_json(json, NULL, &plan), -EINVAL);
	assert_null(plan);
	if (!strstr(last_log, fragment))
		fail_msg("log \"%s\" lacks \"%s\"", last_log, fragment);
}

static void test_snapshot_missing_host_id_is_named(void **state)
{
	(void)state;
	expect_rejected(
		"{\"bandwidth\": 1e9, \"hosts\": [" HOST(
			"\"h1\"",
			"") ", "
			    "{\"cpu_capacity\": 10, \"memory_bytes\": 1073741824}], \"vms\": []}",
		"hosts[1].id: missing");
}

static void test_snapshot_negative_capacity_is_named(void **state)
{
	(void)state;
	expect_rejected("{\"bandwidth\": 1e9, \"hosts\": [{\"id\": \"h1\", \"cpu_capacity\": -4,"
			" \"memory_bytes\": 1073741824}], \"vms\": []}",
			"hosts[0].cpu_capacity: -4 must be greater than 0");
}

static void test_snapshot_vm_on_unknown_host_is_named(void **state)
{
	(void)state;
	expect_rejected("{\"bandwidth\": 1e9, \"hosts\": [" HOST(
				"\"h1\"", "") "],"
					      " \"vms\": [" VM("\"a\"", "\"h9\"", "") "]}",
			"vms[0].host: unknown host \"h9\"");
}

static void test_snapshot_duplicate_vm_id_is_named(void **state)
{
	(void)state;
	expect_rejected("{\"bandwidth\": 1e9, \"hosts\": [" HOST(
				"\"h1\"", "") "],"
					      " \"vms\": [" VM("\"a\"", "\"h1\"", "") ", " VM(
						      "\"a\"", "\"h1\"", "") "]}",
			"vms[1].id: \"a\" already used by vms[0]");
}

static void test_snapshot_misspelt_field_is_rejected(void **state)
{
	(void)state;
	expect_rejected("{\"bandwidth\": 1e9, \"hosts\": [" HOST(
				"\"h1\"", "") "],"
					      " \"vms\": [" VM("\"a\"", "\"h1\"",
							       ", \"dirty_rate\": 5") "]}",
			"vms[0].dirty_rate: unknown field");
}

static void test_snapshot_missing_bandwidth_and_bad_history_are_named(void **state)
{
	(void)state;
	expect_rejected("{\"hosts\": [" HOST("\"h1\"", "") "], \"vms\": []}", "bandwidth: missing");
	expect_rejected(
		"{\"bandwidth\": 1e9, \"hosts\": [" HOST(
			"\"h1\"", ", \"utilisation_history\": [0.5, \"high\"]") "],"
										" \"vms\": []}",
		"hosts[0].utilisation_history[1]: must be a number >= 0");
	expect_rejected("{\"bandwidth\": 1e9, \"hosts\": [" HOST(
				"\"h1\"", "") "],"
					      " \"vms\": [" VM("\"a\"", "\"h1\"",
							       ", \"zero_fraction\": 1.5") "]}",
			"vms[0].zero_fraction: must be between 0 and 1");
}

static void test_snapshot_malformed_json_gives_position(void **state)
{
	(void)state;
	expect_rejected("{\"bandwidth\": 1e9,\n \"hosts\": [}", "line 2");
}

static void test_params_with_unknown_mask_bit_are_rejected(void **state)
{
	struct rmig_plan_params params = {.field_mask = 1ull << 40};
	rmig_plan_t *plan = NULL;

	(void)state;
	assert_int_equal(rmig_plan_from_json("{}", &params, &plan), -EINVAL);
	params.field_mask = RMIG_PLAN_PARAM_THRESHOLD;
	params.threshold = 1.5;
	assert_int_equal(rmig_plan_from_json("{}", &params, &plan), -EINVAL);
	assert_null(plan);
}

/* h1 at 0.9 sheds b (quickest), which lands on h2. */
static const char *const small_cluster =
	"{\"bandwidth\": 1250000000, \"hosts\": [" HOST("\"h1\"", "") ", " HOST(
		"\"h2\"",
		"") "],"
		    " \"vms\": [{\"id\": \"a\", \"host\": \"h1\", \"memory_bytes\": 8589934592, \"cpu\": 7,"
		    " \"dirty_pages_rate\": 100}, " VM("\"b\"", "\"h1\"", "") "]}";

static void test_plan_reads_back_move_by_move(void **state)
{
	struct rmig_plan_move move = {.struct_size = sizeof(move)};
	rmig_plan_t *plan;

	(void)state;
	assert_int_equal(rmig_plan_from_json(small_cluster, NULL, &plan), 0);
	assert_int_equal(rmig_plan_move_count(plan), 1);
	assert_int_equal(rmig_plan_unplaced_count(plan), 0);
	assert_int_equal(rmig_plan_move_get(plan, 0, &move), 0);
	assert_string_equal(move.vm, "b");
	assert_string_equal(move.source, "h1");
	assert_string_equal(move.destination, "h2");
	assert_int_equal(move.method, RMIG_METHOD_PRECOPY);
	assert_int_equal(move.policy, RMIG_POLICY_QEMU);
	assert_string_equal(move.method_name, "precopy-qemu");
	assert_int_equal(move.reason, RMIG_PLAN_REASON_OVERLOAD);
	/* 1 GiB over 1.25 GB/s: 0.859 s and a little more for the pages dirtied meanwhile. */
	assert_true(move.total_time_us >= 858993 && move.total_time_us < 900000);
	assert_true(move.bytes >= 1073741824ull);
	assert_int_equal(rmig_plan_move_get(plan, 1, &move), -ENOENT);
	rmig_plan_destroy(plan);
}

/* small_cluster with b's fields replaced: b still moves, and the move is b's. */
static void plan_b(const char *b_fields, struct rmig_plan_move *move)
{
	char json[1024];
	rmig_plan_t *plan;

	snprintf(json, sizeof(json),
		 "{\"bandwidth\": 1250000000, \"hosts\": [" HOST("\"h1\"", "") ", " HOST(
			 "\"h2\"",
			 "") "], \"vms\": [{\"id\": \"a\", \"host\": \"h1\", "
			     "\"memory_bytes\": 8589934592, \"cpu\": 7, "
			     "\"dirty_pages_rate\": 100}, {\"id\": \"b\", \"host\": \"h1\", "
			     "\"memory_bytes\": 1073741824, \"cpu\": 2, %s}]}",
		 b_fields);
	assert_int_equal(rmig_plan_from_json(json, NULL, &plan), 0);
	assert_int_equal(rmig_plan_move_count(plan), 1);
	assert_int_equal(rmig_plan_move_get(plan, 0, move), 0);
	assert_string_equal(move->vm, "b");
	rmig_plan_destroy(plan);
}

/* A VM writing 300000 pages/s (1.2 GB/s) over a 1.25 GB/s link: counted as writes in order it
 * redirties all its RAM every round and pre-copy cannot converge; measured as single-page runs
 * scattered over its RAM, its rounds shrink and pre-copy converges. pause_ms adds to the
 * projected downtime. */
static void test_plan_uses_write_runs_and_pause_cost(void **state)
{
	struct rmig_plan_move plain = {.struct_size = sizeof(plain)};
	struct rmig_plan_move move = {.struct_size = sizeof(move)};

	(void)state;
	plan_b("\"dirty_pages_rate\": 300000", &plain);
	assert_int_not_equal(plain.method, RMIG_METHOD_PRECOPY);
	plan_b("\"dirty_pages_rate\": 300000, \"write_run_pages\": 1", &move);
	assert_int_equal(move.method, RMIG_METHOD_PRECOPY);
	assert_true(move.converges);
	plan_b("\"dirty_pages_rate\": 100", &plain);
	plan_b("\"dirty_pages_rate\": 100, \"pause_ms\": 50", &move);
	assert_string_equal(move.method_name, plain.method_name);
	assert_true(move.downtime_us >= plain.downtime_us + 49000 &&
		    move.downtime_us <= plain.downtime_us + 51000);
	expect_rejected("{\"bandwidth\": 1e9, \"hosts\": [" HOST("\"h1\"", "") "], \"vms\": [" VM(
				"\"a\"", "\"h1\"", ", \"write_run_pages\": -1") "]}",
			"vms[0].write_run_pages: -1 must be at least 0");
	expect_rejected("{\"bandwidth\": 1e9, \"hosts\": [" HOST("\"h1\"", "") "], \"vms\": [" VM(
				"\"a\"", "\"h1\"", ", \"pause_ms\": -5") "]}",
			"vms[0].pause_ms: -5 must be at least 0");
}

static void test_plan_json_and_table_carry_the_moves(void **state)
{
	rmig_plan_t *plan;
	char *text, *table;
	json_t *root, *move;

	(void)state;
	assert_int_equal(rmig_plan_from_json(small_cluster, NULL, &plan), 0);
	assert_int_equal(rmig_plan_to_json(plan, &text), 0);
	root = json_loads(text, 0, NULL);
	assert_non_null(root);
	move = json_array_get(json_object_get(root, "moves"), 0);
	assert_string_equal(json_string_value(json_object_get(move, "vm")), "b");
	assert_string_equal(json_string_value(json_object_get(move, "destination")), "h2");
	assert_string_equal(json_string_value(json_object_get(move, "method")), "precopy-qemu");
	assert_true(json_is_true(
		json_object_get(json_array_get(json_object_get(root, "hosts"), 0), "overloaded")));
	assert_int_equal(
		json_integer_value(json_object_get(json_object_get(root, "totals"), "moves")), 1);
	json_decref(root);
	free(text);
	assert_int_equal(rmig_plan_to_table(plan, &table), 0);
	assert_non_null(strstr(table, "OVERLOAD"));
	assert_non_null(strstr(table, "precopy-qemu"));
	assert_non_null(strstr(table, "moves 1"));
	free(table);
	rmig_plan_destroy(plan);
}

/* Runs `rmig plan` with stdout sent to a file; returns its exit status and the output. */
static int run_cli(char **argv, int argc, char **output_p)
{
	char path[] = "/tmp/rmig-plan-cli-XXXXXX";
	int fd = mkstemp(path), saved = dup(STDOUT_FILENO), status;
	FILE *in;
	long len;

	assert_true(fd >= 0 && saved >= 0);
	fflush(stdout);
	dup2(fd, STDOUT_FILENO);
	status = rmig_cli_plan(argc, argv);
	fflush(stdout);
	dup2(saved, STDOUT_FILENO);
	close(saved);
	in = fdopen(fd, "r");
	fseek(in, 0, SEEK_END);
	len = ftell(in);
	rewind(in);
	*output_p = calloc(1, (size_t)len + 1);
	assert_int_equal(fread(*output_p, 1, (size_t)len, in), (size_t)len);
	fclose(in);
	unlink(path);
	return status;
}

/* The example: node1 (0.875) is overloaded, node5 sits idle on a slower link. */
static void test_cli_plans_example_snapshot_as_json(void **state)
{
	char snapshot[] = RMIG_SOURCE_DIR "/bench/data/example-cluster.json";
	char *argv[] = {"plan", "--snapshot", snapshot, "--overload", "mad:2.5", "--json"};
	char *output;
	json_t *root, *moves;

	(void)state;
	assert_int_equal(run_cli(argv, 6, &output), 0);
	root = json_loads(output, 0, NULL);
	assert_non_null(root);
	moves = json_object_get(root, "moves");
	assert_true(json_array_size(moves) >= 1);
	for (size_t i = 0; i < json_array_size(moves); i++)
		assert_string_equal(
			json_string_value(json_object_get(json_array_get(moves, i), "source")),
			"node1");
	assert_string_equal(
		json_string_value(json_object_get(json_object_get(root, "policy"), "overload")),
		"mad:2.5");
	json_decref(root);
	free(output);
}

static void test_cli_prints_table_by_default(void **state)
{
	char snapshot[] = RMIG_SOURCE_DIR "/bench/data/example-cluster.json";
	char *argv[] = {"plan", "--snapshot", snapshot, "--select", "correlation"};
	char *output;

	(void)state;
	assert_int_equal(run_cli(argv, 5, &output), 0);
	assert_non_null(strstr(output, "select correlation"));
	assert_non_null(strstr(output, "node1"));
	free(output);
}

static void test_cli_rejects_bad_options(void **state)
{
	char *bad_overload[] = {"plan", "--snapshot", "x.json", "--overload", "static:2"};
	char *bad_select[] = {"plan", "--snapshot", "x.json", "--select", "random"};
	char *no_snapshot[] = {"plan", "--json"};
	char *missing_file[] = {"plan", "--snapshot", "/nonexistent/cluster.json"};
	char *output;

	(void)state;
	assert_int_equal(run_cli(bad_overload, 5, &output), 2);
	free(output);
	assert_int_equal(run_cli(bad_select, 5, &output), 2);
	free(output);
	assert_int_equal(run_cli(no_snapshot, 2, &output), 2);
	free(output);
	assert_int_equal(run_cli(missing_file, 3, &output), 1);
	free(output);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_snapshot_missing_host_id_is_named),
		cmocka_unit_test(test_snapshot_negative_capacity_is_named),
		cmocka_unit_test(test_snapshot_vm_on_unknown_host_is_named),
		cmocka_unit_test(test_snapshot_duplicate_vm_id_is_named),
		cmocka_unit_test(test_snapshot_misspelt_field_is_rejected),
		cmocka_unit_test(test_snapshot_missing_bandwidth_and_bad_history_are_named),
		cmocka_unit_test(test_snapshot_malformed_json_gives_position),
		cmocka_unit_test(test_params_with_unknown_mask_bit_are_rejected),
		cmocka_unit_test(test_plan_reads_back_move_by_move),
		cmocka_unit_test(test_plan_uses_write_runs_and_pause_cost),
		cmocka_unit_test(test_plan_json_and_table_carry_the_moves),
		cmocka_unit_test(test_cli_plans_example_snapshot_as_json),
		cmocka_unit_test(test_cli_prints_table_by_default),
		cmocka_unit_test(test_cli_rejects_bad_options),
	};

	return cmocka_run_group_tests(tests, setup_log, teardown_log);
}
