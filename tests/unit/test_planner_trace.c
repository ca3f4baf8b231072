/* SPDX-License-Identifier: MIT */
/* tests/unit/test_planner_trace.c - plan-sim's trace reader takes the PlanetLab layout (named
 * rows of percent samples), unnamed rows, one VM per column under a header, and rejects ragged
 * or non-numeric files; a directory is CloudSim's layout, one file per VM. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "bench/plan-sim.h"

#ifndef RMIG_SOURCE_DIR
#error "RMIG_SOURCE_DIR must name the source tree"
#endif

static char *write_trace(const char *text)
{
	char *path = strdup("/tmp/rmig-trace-XXXXXX");
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

static int load_text(const char *text, int fraction, struct plan_sim_trace *trace)
{
	char *path = write_trace(text);
	int ret = plan_sim_trace_load(path, fraction, trace);

	unlink(path);
	free(path);
	return ret;
}

static void test_named_rows_of_percent_are_vms(void **state)
{
	struct plan_sim_trace trace;

	(void)state;
	assert_int_equal(load_text("# source line\nvmA,10,20,30\nvmB,0,50,100\n", 0, &trace), 0);
	assert_string_equal(trace.source, "source line");
	assert_int_equal(trace.vms, 2);
	assert_int_equal(trace.samples, 3);
	assert_string_equal(trace.names[1], "vmB");
	assert_true(fabs(trace.utilisation[0 * 3 + 1] - 0.20) < 1e-12);
	assert_true(fabs(trace.utilisation[1 * 3 + 2] - 1.00) < 1e-12);
	plan_sim_trace_free(&trace);
}

static void test_header_of_names_makes_columns_vms(void **state)
{
	struct plan_sim_trace trace;

	(void)state;
	assert_int_equal(load_text("a b\n0.1 0.5\n0.2 0.6\n0.3 0.7\n0.4 0.8\n", 1, &trace), 0);
	assert_int_equal(trace.vms, 2);
	assert_int_equal(trace.samples, 4);
	assert_string_equal(trace.names[0], "a");
	assert_true(fabs(trace.utilisation[1 * 4 + 3] - 0.8) < 1e-12);
	plan_sim_trace_free(&trace);
}

static void test_unnamed_rows_are_named_by_position(void **state)
{
	struct plan_sim_trace trace;

	(void)state;
	assert_int_equal(load_text("5,6\n7,8\n9,10\n", 0, &trace), 0);
	assert_int_equal(trace.vms, 3);
	assert_int_equal(trace.samples, 2);
	assert_string_equal(trace.names[2], "vm3");
	assert_true(fabs(trace.utilisation[2 * 2 + 1] - 0.10) < 1e-12);
	plan_sim_trace_free(&trace);
}

static void test_ragged_or_non_numeric_trace_is_rejected(void **state)
{
	struct plan_sim_trace trace;

	(void)state;
	assert_int_equal(load_text("vmA,1,2,3\nvmB,1,2\n", 0, &trace), -EINVAL);
	assert_int_equal(load_text("vmA,1,2,3\nvmB,1,2x,3\n", 0, &trace), -EINVAL);
	assert_int_equal(load_text("vmA,1,-2,3\n", 0, &trace), -EINVAL);
	assert_int_equal(load_text("# only a comment\n", 0, &trace), -EINVAL);
	assert_int_equal(plan_sim_trace_load("/nonexistent/trace.csv", 0, &trace), -ENOENT);
}

static void write_file(const char *dir, const char *name, const char *text)
{
	char path[512];
	FILE *out;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	out = fopen(path, "w");
	assert_non_null(out);
	assert_int_equal(fputs(text, out) >= 0, 1);
	assert_int_equal(fclose(out), 0);
}

static void remove_dir(const char *dir)
{
	char command[600];

	snprintf(command, sizeof(command), "rm -rf '%s'", dir);
	assert_int_equal(system(command), 0);
}

/* CloudSim's layout: a directory, one file per VM, one sample per line. VMs come in sorted name
 * order whatever order the directory lists them in (a name with a space, as some of CloudSim's
 * have, sorts before '_'); hidden files and subdirectories are not VMs. */
static void test_directory_of_vm_files_is_cloudsim_layout(void **state)
{
	char dir[] = "/tmp/rmig-trace-dir-XXXXXX", sub[600];
	struct plan_sim_trace trace;

	(void)state;
	assert_non_null(mkdtemp(dir));
	write_file(dir, "node_b", "10\n20\n30\n");
	write_file(dir, "node_a_x", "40\n50\n60\n");
	write_file(dir, "node_a x", "0\n100\n5\n");
	write_file(dir, ".hidden", "not a number\n");
	snprintf(sub, sizeof(sub), "%s/subdir", dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	assert_int_equal(plan_sim_trace_load(dir, 0, &trace), 0);
	assert_int_equal(trace.vms, 3);
	assert_int_equal(trace.samples, 3);
	assert_string_equal(trace.names[0], "node_a x");
	assert_string_equal(trace.names[1], "node_a_x");
	assert_string_equal(trace.names[2], "node_b");
	assert_true(fabs(trace.utilisation[0 * 3 + 1] - 1.0) < 1e-12);
	assert_true(fabs(trace.utilisation[1 * 3 + 0] - 0.4) < 1e-12);
	assert_true(fabs(trace.utilisation[2 * 3 + 2] - 0.3) < 1e-12);
	assert_non_null(strstr(trace.source, dir));
	plan_sim_trace_free(&trace);

	/* a VM file shorter than the others, or with a word in it, is refused */
	write_file(dir, "node_c", "1\n2\n");
	assert_int_equal(plan_sim_trace_load(dir, 0, &trace), -EINVAL);
	write_file(dir, "node_c", "1\n2\nthree\n");
	assert_int_equal(plan_sim_trace_load(dir, 0, &trace), -EINVAL);
	remove_dir(dir);

	/* an empty directory has no VMs */
	assert_non_null(mkdtemp(strcpy(dir, "/tmp/rmig-trace-dir-XXXXXX")));
	assert_int_equal(plan_sim_trace_load(dir, 0, &trace), -EINVAL);
	remove_dir(dir);
}

/* The shipped PlanetLab day: 1052 VMs x 288 five-minute samples, percent. */
static void test_shipped_planetlab_day_loads(void **state)
{
	struct plan_sim_trace trace;

	(void)state;
	assert_int_equal(plan_sim_trace_load(RMIG_SOURCE_DIR "/bench/data/planetlab-20110303.csv",
					     0, &trace),
			 0);
	assert_int_equal(trace.vms, 1052);
	assert_int_equal(trace.samples, 288);
	assert_non_null(strstr(trace.source, "PlanetLab"));
	for (size_t i = 0; i < trace.vms * trace.samples; i++)
		assert_true(trace.utilisation[i] >= 0.0 && trace.utilisation[i] <= 1.0);
	plan_sim_trace_free(&trace);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_named_rows_of_percent_are_vms),
		cmocka_unit_test(test_header_of_names_makes_columns_vms),
		cmocka_unit_test(test_unnamed_rows_are_named_by_position),
		cmocka_unit_test(test_ragged_or_non_numeric_trace_is_rejected),
		cmocka_unit_test(test_directory_of_vm_files_is_cloudsim_layout),
		cmocka_unit_test(test_shipped_planetlab_day_loads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
