/* SPDX-License-Identifier: MIT */
/* Hybrid (one pre-copy round, then post-copy) and post-copy end, once every page has arrived,
 * with the destination's RAM identical to the source's at the pause, although the guest kept
 * writing up to the pause; the VM resumed on the destination only. Zero pages (every fifth)
 * arrive as zero markers and are filled without data. Each end tells its progress callback
 * RMIG_EVENT_POSTCOPY once, in status postcopy, before DONE; the source only after the
 * destination's resume_vm ran (a hypervisor linking rmig switches over on it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "integration/engine_harness.h"

struct tail_events {
	atomic_int src_postcopy; /* RMIG_EVENT_POSTCOPY on the source */
	atomic_int dst_postcopy;
	atomic_int src_before_dst_resume; /* the source's came before the destination resumed */
	atomic_int wrong_status;	  /* an event POSTCOPY whose stats were not in postcopy */
	atomic_int after_done;		  /* an event POSTCOPY after DONE */
	atomic_int src_done;
	atomic_int dst_done;
};

static void tail_event(struct tail_events *ev, int source, uint32_t event,
		       const struct rmig_stats *st, int dst_resumed)
{
	atomic_int *done = source ? &ev->src_done : &ev->dst_done;

	if (event == RMIG_EVENT_DONE)
		atomic_store(done, 1);
	if (event != RMIG_EVENT_POSTCOPY)
		return;
	atomic_fetch_add(source ? &ev->src_postcopy : &ev->dst_postcopy, 1);
	if (st->status != RMIG_STATUS_POSTCOPY)
		atomic_store(&ev->wrong_status, 1);
	if (atomic_load(done))
		atomic_store(&ev->after_done, 1);
	if (source && !dst_resumed)
		atomic_store(&ev->src_before_dst_resume, 1);
}

static void src_progress(struct harness *h, uint32_t event, const struct rmig_stats *st)
{
	tail_event(h->user, 1, event, st, atomic_load(&h->dst_resumed));
}

static void dst_progress(struct harness *h, uint32_t event, const struct rmig_stats *st)
{
	tail_event(h->user, 0, event, st, 1);
}

static void migrate_with_running_writer(uint32_t method, struct rmig_stats *st)
{
	struct tail_events ev = {0};
	struct harness h;

	harness_init(&h, harness_transport, 64u << 20, 5);
	h.params.field_mask = RMIG_PARAM_METHOD;
	h.params.method = method;
	h.user = &ev;
	h.on_progress = src_progress;
	h.on_dst_progress = dst_progress;
	harness_sessions(&h);
	harness_writer_start(&h);
	/* Post-copy pauses at once: on a loaded host the writer might not have run yet. */
	for (int waited_ms = 0; atomic_load(&h.writes) == 0 && waited_ms < 10000; waited_ms++)
		usleep(1000);
	harness_run(&h);

	assert_int_equal(h.src_ret, 0);
	assert_int_equal(h.dst_ret, 0);
	assert_true(atomic_load(&h.writes) > 0);
	assert_true(atomic_load(&h.src_paused));
	assert_false(atomic_load(&h.src_resumed));
	assert_true(atomic_load(&h.dst_resumed));
	assert_int_equal(atomic_load(&ev.src_postcopy), 1);
	assert_int_equal(atomic_load(&ev.dst_postcopy), 1);
	assert_false(atomic_load(&ev.src_before_dst_resume));
	assert_false(atomic_load(&ev.wrong_status));
	assert_false(atomic_load(&ev.after_done));
	assert_true(atomic_load(&ev.src_done));
	assert_true(atomic_load(&ev.dst_done));
	assert_memory_equal(h.src_ram, h.dst_ram, h.src_length);
	assert_int_equal(rmig_session_stats(h.src, st), 0);
	assert_int_equal(st->status, RMIG_STATUS_COMPLETED);
	assert_int_equal(st->method_used, method);
	assert_true(st->postcopy_pages > 0);
	assert_true(st->zero_pages > 0);
	assert_int_equal(st->pages_sent_histogram[0] + st->pages_sent_histogram[1] +
				 st->pages_sent_histogram[2] + st->pages_sent_histogram[3],
			 harness_pages(&h));
	harness_fini(&h);
}

static void test_hybrid_ends_byte_identical_with_running_writer(void **state)
{
	struct rmig_stats st = {.struct_size = sizeof(st)};

	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	migrate_with_running_writer(RMIG_METHOD_HYBRID, &st);
	assert_int_equal(st.rounds, 1);
	/* One pre-copy round, then each page dirtied since once more. */
	assert_true(st.pages_sent_max <= 2);
	assert_int_equal(st.pages_mismatched, 0);
}

static void test_postcopy_ends_byte_identical_with_running_writer(void **state)
{
	struct rmig_stats st = {.struct_size = sizeof(st)};

	(void)state;
	HARNESS_SKIP_UNLESS_USABLE();
	migrate_with_running_writer(RMIG_METHOD_POSTCOPY, &st);
	assert_int_equal(st.rounds, 0);
	assert_int_equal(st.pages_sent_max, 1);
	assert_int_equal(st.postcopy_pages, st.pages_sent);
}

HARNESS_MAIN(cmocka_unit_test(test_hybrid_ends_byte_identical_with_running_writer),
	     cmocka_unit_test(test_postcopy_ends_byte_identical_with_running_writer))
