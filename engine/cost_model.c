/* SPDX-License-Identifier: MIT */
/* engine/cost_model.c - closed-form projection of a migration's rounds, time, downtime and bytes
 * per method. Pre-copy rounds follow the geometric series of pages dirtied while the previous
 * round was on the wire, capped by the writable working set (DESIGN §5 stop rules). */
#include "engine/cost_model.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include "rmig.h"
#include "transport/log.h"

static const char *const cost_method_names[COST_METHOD_COUNT] = {
	[COST_METHOD_PRECOPY_QEMU] = "precopy-qemu", [COST_METHOD_PRECOPY_XEN] = "precopy-xen",
	[COST_METHOD_PREDICT] = "predict",	     [COST_METHOD_TSMC] = "tsmc",
	[COST_METHOD_POSTCOPY] = "postcopy",	     [COST_METHOD_HYBRID] = "hybrid",
};

/* The input with defaults applied and sizes turned into pages. */
struct cost_model_state {
	double page_size;
	double ram_pages;
	double nonzero_pages;
	double working_set_pages;
	double dirty_rate;
	double bandwidth;
	double device_bytes;
	double downtime_target;
	uint32_t max_rounds;
	double fault_seconds; /* one fault: round trip plus the page on the wire */
	double run_pages;     /* contiguous pages per run of the guest's writes, >= 1 */
	double pause_seconds; /* the pause's own cost (final dirty-log pass, verification) */
	int scattered;	      /* the guest writes short runs all over its working set */
};

const char *cost_method_name(uint32_t method)
{
	if (method >= COST_METHOD_COUNT)
		return "unknown";
	return cost_method_names[method];
}

int cost_method_from_name(const char *name, uint32_t *method_p)
{
	for (uint32_t method = 0; name && method < COST_METHOD_COUNT; method++) {
		if (strcmp(name, cost_method_names[method]) == 0) {
			*method_p = method;
			return 0;
		}
	}
	return -EINVAL;
}

void cost_method_to_engine(uint32_t method, uint32_t *engine_method_p, uint32_t *policy_p)
{
	static const uint32_t engine_methods[COST_METHOD_COUNT] = {
		[COST_METHOD_PRECOPY_QEMU] = RMIG_METHOD_PRECOPY,
		[COST_METHOD_PRECOPY_XEN] = RMIG_METHOD_PRECOPY,
		[COST_METHOD_PREDICT] = RMIG_METHOD_PREDICT,
		[COST_METHOD_TSMC] = RMIG_METHOD_TSMC,
		[COST_METHOD_POSTCOPY] = RMIG_METHOD_POSTCOPY,
		[COST_METHOD_HYBRID] = RMIG_METHOD_HYBRID,
	};

	*engine_method_p = method < COST_METHOD_COUNT ? engine_methods[method] : RMIG_METHOD_AUTO;
	*policy_p = method == COST_METHOD_PRECOPY_XEN ? RMIG_POLICY_XEN : RMIG_POLICY_QEMU;
}

static int cost_model_prepare(const struct cost_model_input *input, struct cost_model_state *state)
{
	uint64_t page_size = input->page_size ? input->page_size : COST_MODEL_DEFAULT_PAGE_SIZE;

	if (input->ram_bytes == 0 || (page_size & (page_size - 1)) != 0 ||
	    !(input->bandwidth > 0.0) || !(input->dirty_pages_rate >= 0.0) ||
	    !(input->zero_fraction >= 0.0 && input->zero_fraction <= 1.0) ||
	    !(input->fault_latency_us >= 0.0) || !(input->access_run_pages >= 0.0) ||
	    !(input->pause_seconds >= 0.0)) {
		rmig_log_error("cost model: invalid input (ram %llu, page size %llu, bandwidth %g, "
			       "dirty rate %g, zero fraction %g, pause %g s)",
			       (unsigned long long)input->ram_bytes, (unsigned long long)page_size,
			       input->bandwidth, input->dirty_pages_rate, input->zero_fraction,
			       input->pause_seconds);
		return -EINVAL;
	}
	state->page_size = (double)page_size;
	state->ram_pages = ceil((double)input->ram_bytes / state->page_size);
	state->nonzero_pages = state->ram_pages * (1.0 - input->zero_fraction);
	state->working_set_pages = state->ram_pages;
	if (input->working_set_bytes)
		state->working_set_pages =
			fmin(state->ram_pages,
			     ceil((double)input->working_set_bytes / state->page_size));
	state->dirty_rate = input->dirty_pages_rate;
	state->bandwidth = input->bandwidth;
	state->device_bytes = (double)input->device_state_bytes;
	state->downtime_target =
		(input->downtime_ms ? input->downtime_ms : COST_MODEL_DEFAULT_DOWNTIME_MS) / 1000.0;
	state->max_rounds = input->max_rounds ? input->max_rounds : COST_MODEL_DEFAULT_MAX_ROUNDS;
	state->fault_seconds =
		(input->fault_latency_us > 0.0 ? input->fault_latency_us
					       : COST_MODEL_DEFAULT_FAULT_LATENCY_US) /
			1e6 +
		state->page_size / state->bandwidth;
	state->run_pages = input->access_run_pages > 1.0 ? input->access_run_pages : 1.0;
	state->scattered = input->access_run_pages > 0.0 &&
			   input->access_run_pages < COST_MODEL_SCATTERED_RUN_PAGES;
	state->pause_seconds = input->pause_seconds;
	return 0;
}

/* Distinct pages the guest dirties in seconds: it writes at the measured rate but can dirty no
 * more than its writable working set. A guest going on in order (long runs, or runs not
 * measured) dirties a new page with every write until the set is covered; one that writes short
 * runs scattered over the set rewrites pages it already dirtied more and more often, and covers
 * W (1 - e^(-r t / W)) of it. */
static double cost_dirtied(const struct cost_model_state *state, double seconds)
{
	double writes = state->dirty_rate * seconds;

	if (state->scattered && state->working_set_pages > 0.0)
		return state->working_set_pages * -expm1(-writes / state->working_set_pages);
	return fmin(state->working_set_pages, writes);
}

static double cost_seconds(const struct cost_model_state *state, double pages)
{
	return pages * state->page_size / state->bandwidth;
}

/* A guest that would wait `demand` seconds in all over a tail of `tail` seconds waits at most
 * as long as the tail lasts: once its faults follow one another it is stalled nearly all the
 * time, and every page is there at the tail's end. A smooth minimum of the two. */
static double cost_bounded_stall(double demand, double tail)
{
	if (demand <= 0.0 || tail <= 0.0)
		return 0.0;
	return demand * tail / (demand + tail);
}

/* Expected stall while `missing` working-set pages are pushed after resume: the guest touches
 * distinct hot pages at its dirty rate; a touched page faults if it is still missing, which on
 * average holds for half of the push, and a guest going on in order faults once per run (the
 * push then follows it). Only writes are modelled, so reads add to this. */
static double cost_stall(const struct cost_model_state *state, double missing)
{
	double push, touched, share;

	if (missing <= 0.0 || state->working_set_pages <= 0.0)
		return 0.0;
	push = cost_seconds(state, missing);
	touched = cost_dirtied(state, push);
	share = fmin(1.0, missing / state->working_set_pages);
	return cost_bounded_stall(touched * share * 0.5 / state->run_pages * state->fault_seconds,
				  push);
}

/* Pre-copy under one stop rule. Each round sends what the previous one left dirty. */
static void cost_precopy(const struct cost_model_state *state, uint32_t method,
			 struct cost_projection *out)
{
	double pages = state->nonzero_pages, sent = 0.0, elapsed = 0.0, dirty = 0.0;
	double remaining_seconds = 0.0;
	uint32_t max_rounds =
		method == COST_METHOD_PRECOPY_XEN ? COST_MODEL_XEN_MAX_ROUNDS : state->max_rounds;

	out->converges = 0;
	for (;;) {
		double seconds = cost_seconds(state, pages);

		elapsed += seconds;
		sent += pages * state->page_size;
		out->rounds++;
		dirty = cost_dirtied(state, seconds);
		remaining_seconds = cost_seconds(state, dirty) +
				    state->device_bytes / state->bandwidth + state->pause_seconds;
		if (method == COST_METHOD_PRECOPY_XEN) {
			if (dirty < COST_MODEL_XEN_FEW_DIRTY_PAGES) {
				out->converges = 1;
				break;
			}
			if (sent >=
			    COST_MODEL_XEN_SENT_FACTOR * state->ram_pages * state->page_size)
				break;
		} else {
			if (remaining_seconds <= state->downtime_target) {
				out->converges = 1;
				break;
			}
			/* Once a round writes as many pages as the working set holds, resending it
			 * cannot shrink it: prediction holds those pages back for the final round
			 * instead. */
			if (method == COST_METHOD_PREDICT &&
			    state->dirty_rate * seconds >= state->working_set_pages)
				break;
		}
		if (out->rounds >= max_rounds)
			break;
		pages = dirty;
	}
	out->downtime_seconds = remaining_seconds;
	out->total_seconds = elapsed + remaining_seconds;
	out->bytes = sent + dirty * state->page_size + state->device_bytes;
}

/* The post-copy family: live_bytes are sent in live rounds, then the VM moves (pausing for
 * pause_seconds besides the device state) and `missing` pages follow after resume. */
static void cost_postcopy_tail(const struct cost_model_state *state, double live_seconds,
			       double live_bytes, double missing, double pause_seconds,
			       struct cost_projection *out)
{
	double device_seconds = state->device_bytes / state->bandwidth;

	out->converges = 1;
	out->downtime_seconds = device_seconds + pause_seconds;
	out->total_seconds = live_seconds + out->downtime_seconds + cost_seconds(state, missing);
	out->bytes = live_bytes + state->device_bytes + missing * state->page_size;
	out->stall_seconds = cost_stall(state, missing);
}

int cost_model_project(const struct cost_model_input *input, uint32_t method,
		       struct cost_projection *projection_p)
{
	struct cost_projection out = {.method = method};
	struct cost_model_state state;
	double first_seconds, first_dirty, second_seconds;
	int ret;

	if (method >= COST_METHOD_COUNT) {
		rmig_log_error("cost model: unknown method %u", method);
		return -EINVAL;
	}
	ret = cost_model_prepare(input, &state);
	if (ret < 0)
		return ret;

	first_seconds = cost_seconds(&state, state.nonzero_pages);
	first_dirty = cost_dirtied(&state, first_seconds);
	switch (method) {
	case COST_METHOD_PRECOPY_QEMU:
	case COST_METHOD_PRECOPY_XEN:
	case COST_METHOD_PREDICT:
		cost_precopy(&state, method, &out);
		break;
	case COST_METHOD_TSMC:
		/* Stage 1 all of RAM, stage 2 what stage 1 left dirty, stage 3 post-copies what
		 * stage 2 left dirty. */
		second_seconds = cost_seconds(&state, first_dirty);
		out.rounds = 2;
		cost_postcopy_tail(&state, first_seconds + second_seconds,
				   (state.nonzero_pages + first_dirty) * state.page_size,
				   cost_dirtied(&state, second_seconds), state.pause_seconds, &out);
		break;
	case COST_METHOD_POSTCOPY:
		cost_postcopy_tail(&state, 0.0, 0.0, state.nonzero_pages, 0.0, &out);
		/* Every page is missing at resume, not just the working set's share. */
		out.stall_seconds =
			cost_bounded_stall(cost_dirtied(&state, first_seconds) * 0.5 /
						   state.run_pages * state.fault_seconds,
					   first_seconds);
		break;
	case COST_METHOD_HYBRID:
		out.rounds = 1;
		cost_postcopy_tail(&state, first_seconds, state.nonzero_pages * state.page_size,
				   first_dirty, state.pause_seconds, &out);
		break;
	}
	*projection_p = out;
	return 0;
}

/* Strictly better by key, ties broken by fewer bytes. */
static int cost_better(double key, double bytes, double best_key, double best_bytes)
{
	return key < best_key || (key == best_key && bytes < best_bytes);
}

int cost_model_choose_among(const struct cost_model_input *input, uint32_t allowed,
			    struct cost_projection all[COST_METHOD_COUNT],
			    struct cost_projection *projection_p)
{
	static const uint32_t precopy_family[] = {COST_METHOD_PRECOPY_QEMU, COST_METHOD_PREDICT,
						  COST_METHOD_PRECOPY_XEN};
	static const uint32_t postcopy_family[] = {COST_METHOD_TSMC, COST_METHOD_HYBRID,
						   COST_METHOD_POSTCOPY};
	double target =
		(input->downtime_ms ? input->downtime_ms : COST_MODEL_DEFAULT_DOWNTIME_MS) / 1000.0;
	const struct cost_projection *best = NULL;
	int ret, precopy;

	if (!(allowed & ((1u << COST_METHOD_COUNT) - 1))) {
		rmig_log_error("cost model: no method allowed (mask 0x%x)", allowed);
		return -EINVAL;
	}
	for (uint32_t method = 0; method < COST_METHOD_COUNT; method++) {
		ret = cost_model_project(input, method, &all[method]);
		if (ret < 0)
			return ret;
	}
	for (size_t i = 0; i < sizeof(precopy_family) / sizeof(precopy_family[0]); i++) {
		const struct cost_projection *p = &all[precopy_family[i]];

		if (!(allowed & (1u << p->method)) || !p->converges || p->downtime_seconds > target)
			continue;
		if (!best ||
		    cost_better(p->total_seconds, p->bytes, best->total_seconds, best->bytes))
			best = p;
	}
	precopy = best != NULL;
	for (size_t i = 0; !precopy && i < sizeof(postcopy_family) / sizeof(postcopy_family[0]);
	     i++) {
		const struct cost_projection *p = &all[postcopy_family[i]];

		if (!(allowed & (1u << p->method)) || p->downtime_seconds > target)
			continue;
		if (!best || cost_better(p->total_seconds + p->stall_seconds, p->bytes,
					 best->total_seconds + best->stall_seconds, best->bytes))
			best = p;
	}
	if (!best) {
		/* Nothing meets the target: the lowest downtime, then the shortest. */
		for (uint32_t method = 0; method < COST_METHOD_COUNT; method++) {
			if ((allowed & (1u << method)) &&
			    (!best ||
			     cost_better(all[method].downtime_seconds, all[method].total_seconds,
					 best->downtime_seconds, best->total_seconds)))
				best = &all[method];
		}
	}
	*projection_p = *best;
	return 0;
}

int cost_model_choose_method(const struct cost_model_input *input,
			     struct cost_projection *projection_p)
{
	struct cost_projection all[COST_METHOD_COUNT];

	return cost_model_choose_among(input, (1u << COST_METHOD_COUNT) - 1, all, projection_p);
}
