/* SPDX-License-Identifier: MIT */
/* bindings/cli/plan.c - `rmig plan`: read a cluster snapshot (JSON), print the migration plan
 * as a table or as JSON. Uses only the public ABI, like any other management tool would. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bindings/cli/cli.h"
#include "rmig-plan.h"

static void plan_usage(FILE *out)
{
	fprintf(out,
		"usage: rmig plan --snapshot FILE [options]\n"
		"  --snapshot FILE     cluster snapshot, JSON (docs/planner.md); - reads stdin\n"
		"  --overload POLICY   static[:THRESHOLD] (default static:0.8), mad[:K] (K 2.5),\n"
		"                      lr[:SAFETY] (SAFETY 1.2)\n"
		"  --select POLICY     min-time (default) or correlation\n"
		"  --downtime-ms MS    downtime target for the method choice (default 300)\n"
		"  --consolidate       also empty lightly loaded hosts when the rest can take them\n"
		"  --json              print the plan as JSON instead of a table\n");
}

static char *plan_read_file(const char *path)
{
	FILE *in = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
	char *text = NULL, *grown;
	size_t len = 0, capacity = 0, got;

	if (!in) {
		fprintf(stderr, "rmig plan: %s: %s\n", path, strerror(errno));
		return NULL;
	}
	do {
		if (capacity - len < 65536) {
			capacity = capacity ? 2 * capacity : 1 << 20;
			grown = realloc(text, capacity + 1);
			if (!grown) {
				fprintf(stderr, "rmig plan: %s: out of memory\n", path);
				goto err_free;
			}
			text = grown;
		}
		got = fread(text + len, 1, capacity - len, in);
		len += got;
	} while (got > 0);
	if (ferror(in)) {
		fprintf(stderr, "rmig plan: %s: read error\n", path);
		goto err_free;
	}
	if (in != stdin)
		fclose(in);
	text[len] = '\0';
	return text;

err_free:
	free(text);
	if (in != stdin)
		fclose(in);
	return NULL;
}

/* "static:0.8", "mad", "mad:3", "lr:1.3" into params. */
static int plan_parse_overload(const char *spec, struct rmig_plan_params *params)
{
	const char *colon = strchr(spec, ':');
	size_t name_len = colon ? (size_t)(colon - spec) : strlen(spec);
	double value = 0.0;
	char *end;

	if (colon) {
		errno = 0;
		value = strtod(colon + 1, &end);
		if (errno || end == colon + 1 || *end || !(value > 0.0))
			return -EINVAL;
	}
	if (name_len == 6 && strncmp(spec, "static", 6) == 0) {
		if (value > 1.0)
			return -EINVAL;
		params->overload = RMIG_PLAN_OVERLOAD_STATIC;
		if (colon) {
			params->threshold = value;
			params->field_mask |= RMIG_PLAN_PARAM_THRESHOLD;
		}
	} else if (name_len == 3 && strncmp(spec, "mad", 3) == 0) {
		params->overload = RMIG_PLAN_OVERLOAD_MAD;
		if (colon) {
			params->mad_k = value;
			params->field_mask |= RMIG_PLAN_PARAM_MAD_K;
		}
	} else if (name_len == 2 && strncmp(spec, "lr", 2) == 0) {
		params->overload = RMIG_PLAN_OVERLOAD_LR;
		if (colon) {
			params->lr_safety = value;
			params->field_mask |= RMIG_PLAN_PARAM_LR_SAFETY;
		}
	} else {
		return -EINVAL;
	}
	params->field_mask |= RMIG_PLAN_PARAM_OVERLOAD;
	return 0;
}

int rmig_cli_plan(int argc, char **argv)
{
	static const struct option options[] = {
		{"snapshot", required_argument, NULL, 's'},
		{"overload", required_argument, NULL, 'o'},
		{"select", required_argument, NULL, 'S'},
		{"downtime-ms", required_argument, NULL, 'd'},
		{"consolidate", no_argument, NULL, 'c'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct rmig_plan_params params = {0};
	const char *snapshot = NULL;
	char *text = NULL, *output = NULL, *end;
	rmig_plan_t *plan = NULL;
	int json = 0, opt, ret;
	unsigned long value;

	optind = 0; /* GNU: start afresh, the command may run more than once per process */
	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (opt) {
		case 's':
			snapshot = optarg;
			break;
		case 'o':
			if (plan_parse_overload(optarg, &params) < 0) {
				fprintf(stderr, "rmig plan: bad --overload '%s'\n", optarg);
				return 2;
			}
			break;
		case 'S':
			if (strcmp(optarg, "min-time") == 0) {
				params.select = RMIG_PLAN_SELECT_MIN_TIME;
			} else if (strcmp(optarg, "correlation") == 0) {
				params.select = RMIG_PLAN_SELECT_CORRELATION;
			} else {
				fprintf(stderr, "rmig plan: bad --select '%s'\n", optarg);
				return 2;
			}
			params.field_mask |= RMIG_PLAN_PARAM_SELECT;
			break;
		case 'd':
			errno = 0;
			value = strtoul(optarg, &end, 10);
			if (errno || *end || end == optarg || value == 0 || value > 3600000) {
				fprintf(stderr, "rmig plan: bad --downtime-ms '%s'\n", optarg);
				return 2;
			}
			params.downtime_ms = (uint32_t)value;
			params.field_mask |= RMIG_PLAN_PARAM_DOWNTIME_MS;
			break;
		case 'c':
			params.consolidate = 1;
			params.field_mask |= RMIG_PLAN_PARAM_CONSOLIDATE;
			break;
		case 'j':
			json = 1;
			break;
		case 'h':
			plan_usage(stdout);
			return 0;
		default:
			plan_usage(stderr);
			return 2;
		}
	}
	if (!snapshot || optind != argc) {
		plan_usage(stderr);
		return 2;
	}
	text = plan_read_file(snapshot);
	if (!text)
		return 1;
	ret = rmig_plan_from_json(text, &params, &plan);
	if (ret < 0) {
		fprintf(stderr, "rmig plan: %s: no plan: %s\n", snapshot, strerror(-ret));
		goto out;
	}
	ret = json ? rmig_plan_to_json(plan, &output) : rmig_plan_to_table(plan, &output);
	if (ret < 0) {
		fprintf(stderr, "rmig plan: %s\n", strerror(-ret));
		goto out;
	}
	fputs(output, stdout);
	if (json)
		fputc('\n', stdout);
	fflush(stdout);
out:
	free(output);
	rmig_plan_destroy(plan);
	free(text);
	return ret < 0 ? 1 : 0;
}
