/* SPDX-License-Identifier: MIT */
/* tests/integration/engine_harness.h - a source and a destination session in one process over
 * the transport named on the command line (loop, tcp, rdma), with guest RAM on both sides, a
 * guest writer thread and recorded callbacks, for the engine's migration tests. */
#ifndef RMIG_TEST_ENGINE_HARNESS_H
#define RMIG_TEST_ENGINE_HARNESS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "rmig.h"

#define HARNESS_PAGE 4096u
#define HARNESS_REGION_ID 1u
#define HARNESS_KEY "rmig engine harness key"
/* The dead-peer deadline and the step timeout of the harness' sessions unless a test sets its
 * own: generous, so a loaded 2-core machine never trips them by accident (inside the soft-RoCE
 * testbed, under TCG on a busy host, an RDMA connection took over 20 s to be established).
 * They bound only how long a failing test takes, never what a passing one asserts. */
#define HARNESS_PEER_TIMEOUT_MS 60000u
#define HARNESS_STEP_TIMEOUT_MS 60000u

struct harness;
typedef void (*harness_progress_fn)(struct harness *h, uint32_t event,
				    const struct rmig_stats *stats);

struct harness {
	const char *transport; /* "loop", "tcp", "rdma" */
	char listen_uri[256];
	size_t src_length;
	size_t dst_length;
	uint32_t src_region_id;
	uint32_t dst_region_id;
	unsigned char *src_ram;
	unsigned char *dst_ram;
	rmig_session_t *src;
	rmig_session_t *dst;
	/* when second_length != 0: a second region (id HARNESS_REGION_ID + 1) on each side,
	 * memory the test provides and unmaps */
	unsigned char *src_second;
	unsigned char *dst_second;
	size_t second_length;
	/* applied to both sessions; without RMIG_PARAM_KEY in its mask both get HARNESS_KEY */
	struct rmig_params params;
	int src_insecure;		 /* rmig_session_set_insecure() on the source */
	int dst_insecure;		 /* and on the destination */
	struct rmig_params dst_params;	 /* then this to the destination (when field_mask != 0) */
	harness_progress_fn on_progress; /* source progress, on the migration thread */
	harness_progress_fn on_dst_progress; /* destination progress, on its thread */
	void (*on_pause)(struct harness *h); /* after the writer stopped, VM paused */
	/* the destination's resume_vm, on its migration thread (post-copy: pages may still be
	 * missing and fault in when touched) */
	void (*on_dst_resume)(struct harness *h);
	/* when set: the source's dirty_sync callback (the hypervisor's dirty log) */
	int (*on_dirty_sync)(struct harness *h, uint32_t region_id, uint64_t *bitmap,
			     size_t npages);

	/* guest writer */
	pthread_t writer;
	atomic_int writer_stop;
	int writer_running;
	atomic_ullong writes;

	/* what the callbacks saw */
	atomic_int src_paused;
	atomic_int src_resumed;
	atomic_int dst_resumed;
	int src_ret;
	int dst_ret;
	void *user;
	uint32_t peer_timeout_ms;    /* both sessions; 0: HARNESS_PEER_TIMEOUT_MS */
	uint32_t recovery_window_ms; /* both sessions; 0: the library's default */
	/* rmig_session_set_tls() on each session when struct_size != 0 */
	struct rmig_tls src_tls;
	struct rmig_tls dst_tls;
	/* harness_sessions: when set, the source's connect may fail (connect_ret says how)
	 * instead of failing the test */
	int connect_may_fail;
	int connect_ret;
	/* when set: given the destination's URI, write the one the source connects to (a relay
	 * on the path, say) */
	void (*connect_via)(struct harness *h, const char *dst_uri, char *uri, size_t len);
	uint8_t *send_counts; /* harness_send_counts(); freed by harness_fini() */
	/* when set: the source's device_state_read and the destination's device_state_write,
	 * each on its session's migration thread */
	int (*on_device_state_read)(struct harness *h, void *buf, size_t len);
	int (*on_device_state_write)(struct harness *h, const void *buf, size_t len);
};

/* The transport from argv[1] ("loop" when absent) and the dirty source from argv[2]. Returns 1
 * when both are usable here. */
int harness_transport_usable(int argc, char **argv, const char **transport_p);
/* Allocate both sides' RAM (same length unless changed before harness_sessions) and give the
 * source a memory image: zero_every-th pages stay zero (0: none), the rest hold data; the
 * destination starts as garbage (0xAA). */
void harness_init(struct harness *h, const char *transport, size_t length, unsigned zero_every);
/* Create both sessions, apply params and callbacks, add the regions, listen, start the
 * destination thread and connect the source. */
void harness_sessions(struct harness *h);
/* Start a thread writing random pages of the source RAM until the VM pauses. */
/* Microseconds and milliseconds of CLOCK_MONOTONIC (the engine's clock). */
uint64_t harness_now_us(void);
uint64_t harness_now_ms(void);
void harness_writer_start(struct harness *h);
/* Run the source on this thread, then wait for the destination: fills src_ret, dst_ret. */
void harness_run(struct harness *h);
/* After the run: how many times the source sent each page of its first region
 * (rmig_region_send_counts), one byte per page; valid until the next call or harness_fini(). */
uint8_t *harness_send_counts(struct harness *h);
void harness_fini(struct harness *h);

/* A hypervisor dirty log whose guest writes, before every sync, `per_page_sent` times as many
 * pages (scattered over its RAM) as the transport carried since the previous sync: its dirty
 * rate is that multiple of the bandwidth by construction, on a fast host as under emulation.
 * Install with harness_dirty_log_outpace() before harness_sessions(). */
struct harness_dirty_log {
	uint64_t *bits;
	uint64_t sent_at_sync; /* page payload the transport had taken at the previous sync */
	uint64_t rng;
	uint64_t written;
	unsigned per_page_sent;
};
void harness_dirty_log_outpace(struct harness *h, struct harness_dirty_log *log,
			       unsigned per_page_sent);
void harness_dirty_log_free(struct harness_dirty_log *log);

/* Write a recognisable pattern into page of the source RAM. */
void harness_page_write(struct harness *h, size_t page, uint64_t tag);
size_t harness_pages(const struct harness *h);

/* The transport of this run (argv[1]) and whether it works here; the dirty source the source
 * session uses (argv[2]: auto, uffd-async, uffd-sync, hash; default auto). */
extern const char *harness_transport;
extern int harness_usable;
extern uint32_t harness_dirty_source;

/* What a test binary returns when its transport is not available here (rdma outside the
 * testbed); ctest reports the test as skipped (SKIP_RETURN_CODE). */
#define HARNESS_SKIPPED 77

/* main() of an engine test: runs the tests over argv[1]'s transport, or skips them all when
 * that transport is not available here. Include <cmocka.h> first. */
#define HARNESS_MAIN(...)                                                                  \
	int main(int argc, char **argv)                                                    \
	{                                                                                  \
		const struct CMUnitTest tests[] = {__VA_ARGS__};                           \
		harness_usable = harness_transport_usable(argc, argv, &harness_transport); \
		if (!harness_usable) {                                                     \
			print_message("transport %s is not available here: skipped\n",     \
				      harness_transport);                                  \
			return HARNESS_SKIPPED;                                            \
		}                                                                          \
		return cmocka_run_group_tests_name(harness_transport, tests, NULL, NULL);  \
	}

#define HARNESS_SKIP_UNLESS_USABLE()                                                              \
	do {                                                                                      \
		if (!harness_usable) {                                                            \
			print_message("transport %s is not available here\n", harness_transport); \
			skip();                                                                   \
		}                                                                                 \
	} while (0)

#endif /* RMIG_TEST_ENGINE_HARNESS_H */
