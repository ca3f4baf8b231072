/* SPDX-License-Identifier: MIT */
/* tests/fuzz/fuzz_planner.c - arbitrary text as a cluster snapshot, through the public entry
 * rmig_plan_from_json() (JSON parse, the snapshot reader of engine/planner/planner_json.c, then
 * planning), under three policies. A snapshot is refused with -EINVAL or planned; a plan must
 * read back move by move, as JSON that parses again with the same counts, and as a table. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fuzz.h"
#include "rmig-plan.h"
#include "transport/log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);

/* The defaults, the adaptive detectors with the other selection and consolidation, and a
 * tight static threshold with a short downtime target. */
static const struct rmig_plan_params fuzz_policies[] = {
	{.field_mask = 0},
	{.field_mask =
		 RMIG_PLAN_PARAM_OVERLOAD | RMIG_PLAN_PARAM_SELECT | RMIG_PLAN_PARAM_CONSOLIDATE,
	 .overload = RMIG_PLAN_OVERLOAD_MAD,
	 .select = RMIG_PLAN_SELECT_CORRELATION,
	 .consolidate = 1},
	{.field_mask =
		 RMIG_PLAN_PARAM_OVERLOAD | RMIG_PLAN_PARAM_LR_SAFETY | RMIG_PLAN_PARAM_DOWNTIME_MS,
	 .overload = RMIG_PLAN_OVERLOAD_LR,
	 .lr_safety = 1.5,
	 .downtime_ms = 20},
	{.field_mask = RMIG_PLAN_PARAM_THRESHOLD | RMIG_PLAN_PARAM_CONSOLIDATE,
	 .threshold = 0.3,
	 .consolidate = 1},
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	rmig_log_handler_set(fuzz_quiet_log, NULL, RMIG_LOG_LEVEL_ERROR);
	return 0;
}

static void fuzz_moves(const rmig_plan_t *plan, int moves)
{
	struct rmig_plan_move move[2];

	for (int i = 0; i < moves; i++) {
		struct rmig_plan_move *m = &move[i % 2];

		memset(m, 0, sizeof(*m));
		m->struct_size = sizeof(*m);
		FUZZ_CHECK(rmig_plan_move_get(plan, (uint32_t)i, m) == 0);
		FUZZ_CHECK(m->vm && m->source && m->destination && m->method_name);
		FUZZ_CHECK(strcmp(m->source, m->destination) != 0);
		FUZZ_CHECK(m->method != RMIG_METHOD_AUTO);
		FUZZ_CHECK(m->reason == RMIG_PLAN_REASON_OVERLOAD ||
			   m->reason == RMIG_PLAN_REASON_CONSOLIDATION);
		FUZZ_CHECK(m->downtime_us <= m->total_time_us);
		/* A VM moves once: its next move would start from where the plan put it. */
		for (int j = 0; j < i; j++) {
			struct rmig_plan_move earlier = {.struct_size = sizeof(earlier)};

			FUZZ_CHECK(rmig_plan_move_get(plan, (uint32_t)j, &earlier) == 0);
			FUZZ_CHECK(strcmp(earlier.vm, m->vm) != 0);
		}
	}
	move[0].struct_size = sizeof(move[0]);
	FUZZ_CHECK(rmig_plan_move_get(plan, (uint32_t)moves, &move[0]) == -ENOENT);
}

static void fuzz_outputs(const rmig_plan_t *plan, int moves, int unplaced)
{
	json_t *root, *totals;
	json_error_t error;
	char *text = NULL;

	FUZZ_CHECK(rmig_plan_to_json(plan, &text) == 0 && text);
	root = json_loads(text, JSON_REJECT_DUPLICATES, &error);
	if (!root)
		fprintf(stderr, "plan JSON does not parse: %s\n%s\n", error.text, text);
	FUZZ_CHECK(root);
	FUZZ_CHECK(json_array_size(json_object_get(root, "moves")) == (size_t)moves);
	FUZZ_CHECK(json_array_size(json_object_get(root, "unplaced")) == (size_t)unplaced);
	totals = json_object_get(root, "totals");
	FUZZ_CHECK(json_integer_value(json_object_get(totals, "moves")) == moves);
	json_decref(root);
	free(text);
	text = NULL;
	FUZZ_CHECK(rmig_plan_to_table(plan, &text) == 0 && text && text[0]);
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	for (size_t p = 0; p < sizeof(fuzz_policies) / sizeof(fuzz_policies[0]); p++) {
		rmig_plan_t *plan = NULL;
		int ret = rmig_plan_from_json(text, &fuzz_policies[p], &plan);
		int moves, unplaced;

		FUZZ_CHECK(ret == 0 || ret == -EINVAL);
		if (ret) {
			FUZZ_CHECK(plan == NULL);
			/* The snapshot, not the policy, decides whether it is valid. */
			FUZZ_CHECK(p == 0);
			break;
		}
		moves = rmig_plan_move_count(plan);
		unplaced = rmig_plan_unplaced_count(plan);
		FUZZ_CHECK(moves >= 0 && unplaced >= 0);
		fuzz_moves(plan, moves);
		fuzz_outputs(plan, moves, unplaced);
		rmig_plan_destroy(plan);
	}
	free(text);
	return 0;
}
