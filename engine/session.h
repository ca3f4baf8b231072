/* SPDX-License-Identifier: MIT */
/* engine/session.h - one migration on one host: role, regions, parameters, callbacks, the
 * connection, the state machine and the statistics. The public ABI (bindings/) is a thin layer
 * over these functions (session.c, session_conn.c, session_run.c); source.c and dest.c run the
 * two roles. */
#ifndef RMIG_ENGINE_SESSION_H
#define RMIG_ENGINE_SESSION_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/region.h"
#include "rmig.h"
#include "transport/transport.h"

#define SESSION_ERROR_MAX 512u
/* auto's reason: its measurements and every method's projection */
#define SESSION_REASON_MAX 1024u
#define SESSION_DEFAULT_DOWNTIME_MS 300u
#define SESSION_DEFAULT_MAX_ROUNDS 30u
#define SESSION_DEFAULT_TIMEOUT_MS 30000u
#define SESSION_STREAMS_MAX 64u
#define SESSION_PROGRESS_INTERVAL_US 100000u

struct batch_pipeline;
struct postcopy_dest;
struct postcopy_pull_probe;
struct postcopy_recovery;

/* The engine's counters and state of a migration as it runs. Each field means what the field of
 * the same name in struct rmig_stats (rmig.h) says; that struct is filled from this one only at
 * the ABI's edge (session_stats_export(): rmig_session_stats() and the progress callback), so a
 * counter the engine keeps for itself goes here without becoming ABI. */
struct session_stats {
	uint32_t status;
	uint32_t method;
	uint32_t stop_reason;
	uint32_t round;
	uint32_t rounds;
	uint64_t ram_bytes;
	uint64_t remaining_bytes;
	uint64_t dirty_pages_rate;
	uint64_t bandwidth;
	uint64_t projected_downtime_ms;
	uint64_t downtime_ms;
	uint64_t total_time_ms;
	uint64_t setup_time_ms;
	uint64_t bytes;
	uint64_t data_bytes;
	uint64_t pages_sent;
	uint64_t zero_pages;
	uint64_t pages_sent_multiple;
	uint64_t pages_sent_histogram[4];
	uint64_t pages_verified;
	uint64_t pages_mismatched;
	uint64_t device_state_bytes;
	uint64_t pages_received;
	uint64_t bytes_received;
	uint32_t dirty_source;
	uint32_t method_used;
	uint32_t policy_used;
	uint32_t pages_sent_max;
	uint32_t predict_threshold;
	uint64_t pages_held;
	uint64_t predict_hits;
	uint64_t predict_hold_misses;
	uint64_t predict_send_misses;
	uint64_t postcopy_pages;
	uint64_t postcopy_pages_fetched;
	uint64_t postcopy_faults;
	uint64_t postcopy_stall_us;
	uint64_t postcopy_time_ms;
	uint64_t auto_dirty_pages_rate;
	uint64_t auto_bandwidth;
	uint64_t auto_working_set_bytes;
	uint64_t auto_projected_total_ms;
	uint64_t auto_projected_downtime_ms;
	uint64_t auto_fault_latency_us;
	uint64_t auto_projected_stall_ms;
	uint64_t auto_pause_cost_us;
	double auto_write_run_pages;
	uint64_t recoveries;
	uint64_t recovering_ms;
	uint64_t verify_answer_us;
};

/* What only a source keeps of a migration (s->src). */
struct session_source {
	int vm_paused;		   /* pause_vm succeeded and the VM has not run again */
	uint32_t throttle_percent; /* what the throttle callback was last asked for */
	uint32_t throttle_strikes; /* rounds in a row the guest outran the link (policy_throttle) */
	uint32_t peer_flags;	   /* the destination's hello-ack flags */
	/* A guest region this side carries staged (rdma ?reg=copy, or memory the kernel would
	 * not pin): post-copy's faults cannot read it, so the post-copy family is out. */
	int staged;
	uint32_t staged_region;
	uint32_t pull_loaded_us;    /* auto: the destination's pulls while the bulk round flowed */
	uint32_t pull_loaded_pulls; /* pulls behind pull_loaded_us */
	/* auto: what the destination's test pulls read instead of guest RAM, registered remote-
	 * readable from the handshake until auto decided (source_pull_target_expose()) */
	void *pull_target;
	size_t pull_target_bytes;
	int pull_target_registered;
	uint64_t last_sample_us;     /* the last sample of the dirty log */
	uint64_t sample_cost_us;     /* what that sample took */
	uint64_t sync_cost_us;	     /* what the last full dirty-log pass took */
	uint64_t verify_ns_per_page; /* hashing one page, timed once; 0 until then */
	/* The source's own page hashes for verification, taken while the final round's pages go
	 * (verify_source_prehash_start()); NULL outside a pre-copy switchover. */
	struct verify_prehash *verify_prehash;
};

/* What only a destination keeps of a migration (s->dst). */
struct session_dest {
	uint32_t peer_method;			/* the method the source announced */
	int pull_probe_started;			/* the bulk round's test pulls began */
	struct postcopy_pull_probe *pull_probe; /* the bulk round's test pulls */
	struct postcopy_dest *postcopy;		/* the post-copy machinery, once armed */
	struct dest_populate *populate;		/* RAM populated ahead of its registration */
};

/* The opaque rmig_session_t of the public ABI. */
struct rmig_session {
	uint32_t role; /* enum rmig_role */
	struct rmig_params params;
	uint8_t key[RMIG_KEY_MAX];
	struct rmig_callbacks callbacks;
	void *opaque;

	struct session_region *regions;
	size_t nregions;

	struct transport_listener *listener;
	struct transport_conn *conn;
	char peer_uri[TRANSPORT_URI_MAX];

	/* Guards stats, rounds, last_error and the fields below it. */
	pthread_mutex_t lock;
	struct session_stats stats;
	struct rmig_round_stats *rounds;
	size_t nrounds;
	size_t rounds_capacity;
	struct transport_stats final_transport; /* taken when the connection closes */
	/* The run's error: the first failure of the run wins (what the peer is told). */
	char last_error[SESSION_ERROR_MAX];
	/* The reason of the last failing call into the session: a refused argument, or the run's
	 * error once the run failed. What rmig_last_error() reports. */
	char call_error[SESSION_ERROR_MAX];
	char last_error_copy[SESSION_ERROR_MAX]; /* what rmig_last_error() hands out */

	atomic_int cancel_requested;
	int started;
	int thread_started;
	int finished;
	int result;
	pthread_t thread;
	pthread_cond_t finished_cond;

	uint64_t start_us;
	uint64_t pause_us;
	uint64_t last_progress_us;
	/* source: RESUME sent; destination: about to resume the VM. Cancelling no longer helps. */
	int point_of_no_return;
	int peer_aborted; /* the peer's ABORT arrived: it has gone, no abort goes back */

	/* What runs: params.method, or what auto chose; the stop policy of pre-copy and predict. */
	uint32_t method;
	uint32_t policy;
	char method_reason[SESSION_REASON_MAX]; /* under lock */
	char method_reason_copy
		[SESSION_REASON_MAX]; /* what rmig_session_method_reason() hands out */
	/* auto's test pulls of a fault's worth of pages (destination: what it timed; source: what
	 * the destination reported), microseconds, 0 when none */
	uint32_t pull_idle_us; /* before any page data flowed */
	uint32_t pull_bytes;   /* per pull */
	int round_open;	       /* a round record is being filled */

	void *msg_buf; /* TRANSPORT_CTRL_MAX bytes to encode control messages */

	/* The caller opted out of authentication (rmig_session_set_insecure): listen and
	 * connect go ahead without a key, with a warning. */
	int insecure;
	/* A peer silent for this long is dead, in every phase (rmig_session_set_peer_timeout). */
	uint32_t peer_timeout_ms;
	/* TLS on tcp (rmig_session_set_tls, session_tls.c); strings owned, NULL when unset. */
	struct session_tls {
		enum transport_tls_mode mode; /* AUTO: psk with a key, none without */
		char *creds_dir, *ca_file, *cert_file, *key_file, *peer_name;
	} tls;
	struct heartbeat *heartbeat; /* while connected (engine/heartbeat.c) */
	uint64_t heard_us;	     /* the run thread last heard from the peer (heartbeat_recv) */

	struct session_source src; /* role RMIG_ROLE_SOURCE only */
	struct session_dest dst;   /* role RMIG_ROLE_DESTINATION only */

	/* Post-copy recovery (engine/postcopy_recover.c): window, session id, operator's path. */
	struct postcopy_recovery *recovery;
	/* The counters of connections closed before the current one (under lock): statistics
	 * add the current connection's to them. */
	struct transport_stats earlier_transport;
};

uint64_t session_now_us(void);
/* Threads for the work done with the VM paused: the host's cores, at most
 * DIRTY_HASH_THREADS_MAX. */
unsigned session_pause_threads(void);
/* What err (-errno) means for a migration: a static string. */
const char *session_strerror(int err);
const char *session_method_name(uint32_t method);
const char *session_status_name(uint32_t status);

int session_create(uint32_t role, struct rmig_session **session_p);
void session_destroy(struct rmig_session *s);
int session_set_params(struct rmig_session *s, const struct rmig_params *params);
int session_set_callbacks(struct rmig_session *s, const struct rmig_callbacks *callbacks,
			  void *opaque);
int session_region_add(struct rmig_session *s, uint32_t id, void *addr, size_t length,
		       size_t page_size);
struct session_region *session_region_find(struct rmig_session *s, uint32_t id);
/* auto's test pulls read a buffer of the source's that holds no guest data, the pull target
 * (guest RAM is not readable before the resume): its transport region id, the highest id no
 * region uses, which both sides derive from the region table they agreed on; and its length,
 * one fault's pull (POSTCOPY_FAULT_CLUSTER pages of the first region, at most that region and
 * POSTCOPY_PULL_TARGET_MAX). Both need at least one region. */
uint32_t session_pull_target_id(const struct rmig_session *s);
size_t session_pull_target_bytes(const struct rmig_session *s);
/* Source: how region id is tracked (enum rmig_dirty_source; AUTO until tracking started),
 * -ENOENT for an unknown id, -EINVAL on a destination. */
int session_region_dirty_source(struct rmig_session *s, uint32_t id);
/* Source: how many times each of region id's first npages pages crossed (saturating at 255),
 * into counts. The number of pages copied, -ENOENT for an unknown id, -EINVAL on a destination
 * or without counts, -EBUSY while a started run goes on. */
int session_region_send_counts(struct rmig_session *s, uint32_t id, uint8_t *counts, size_t npages);
/* Opt out of (insecure != 0) or back into the key requirement. 0 or -EBUSY once started. */
int session_set_insecure(struct rmig_session *s, int insecure);
/* The dead-peer deadline: 0 restores the default; -EINVAL out of range, -EBUSY once started
 * or connected. */
int session_set_peer_timeout(struct rmig_session *s, uint32_t timeout_ms);
/* session_tls.c: how tcp protects the connection (NULL: the default); 0 or -errno. */
int session_set_tls(struct rmig_session *s, const struct rmig_tls *tls);
/* Fill opts' TLS fields for a connection to or from uri (psk: the session key); warn when a
 * keyed session on tcp runs without TLS. */
void session_tls_options(struct rmig_session *s, const char *uri, struct transport_options *opts);
void session_tls_clear(struct rmig_session *s);
int session_listen(struct rmig_session *s, const char *uri);
int session_listen_uri(struct rmig_session *s, char *buf, size_t len);
int session_connect(struct rmig_session *s, const char *uri);
int session_run(struct rmig_session *s);
int session_start(struct rmig_session *s);
int session_wait(struct rmig_session *s, int timeout_ms);
int session_cancel(struct rmig_session *s);
/* The ABI's view of the engine's counters: every field of out but struct_size. */
void session_stats_export(const struct session_stats *in, struct rmig_stats *out);
int session_stats_get(struct rmig_session *s, struct rmig_stats *stats);
/* rmig_session_transport_stats(): every connection's transport counters so far. */
int session_transport_stats_get(struct rmig_session *s, struct rmig_transport_stats *stats);
int session_round_stats_get(struct rmig_session *s, uint32_t round, struct rmig_round_stats *stats);
const char *session_last_error(struct rmig_session *s);
/* Copy the last failing call's reason into buf (NUL-terminated, truncated to len): returns
 * its full length. */
size_t session_last_error_copy(struct rmig_session *s, char *buf, size_t len);
/* Wait as session_wait(), telling the end apart from the wait running out: 0 with *result_p
 * set to what the run returned, -EINPROGRESS when it still runs, -EINVAL when not started. */
int session_wait_result(struct rmig_session *s, int timeout_ms, int *result_p);
const char *session_method_reason(struct rmig_session *s);
/* Record what runs and why (printf-style reason). */
void session_method_set(struct rmig_session *s, uint32_t method, uint32_t policy, const char *fmt,
			...) __attribute__((format(printf, 4, 5)));
/* 1 for the methods that resume on the destination before all RAM has arrived. */
int session_method_is_postcopy(uint32_t method);

/* "source:" or "destination:", to begin a log line. */
const char *session_role_prefix(const struct rmig_session *s);
/* 0 while the migration has not started; else refuses `what` with -EBUSY. */
int session_check_idle(struct rmig_session *s, const char *what);
/* Refuse a call into the session: record why as the last error (replacing the one before),
 * log it at info level (the caller gets it back; the default log prints nothing), return err. */
int session_refuse(struct rmig_session *s, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Record err as the session's error (the first one of a run wins), log it once, return err. */
int session_fail(struct rmig_session *s, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int session_cancelled(struct rmig_session *s);
void session_status_set(struct rmig_session *s, uint32_t status);
/* Call the progress callback with a fresh snapshot. */
void session_progress(struct rmig_session *s, uint32_t event);
/* Start a round record: returns its index. The record's bytes and duration are filled by
 * session_round_end from the connection's counters. */
int session_round_begin(struct rmig_session *s, uint32_t round, uint32_t paused,
			uint64_t dirty_pages);
void session_round_end(struct rmig_session *s);
/* Mark the current round record: the post-copy tail, pages held back at its start. */
void session_round_mark(struct rmig_session *s, uint32_t postcopy, uint64_t held_pages);
/* Bytes per second on the wire since the current round began, or over the last round when
 * none is open (0 before any). */
uint64_t session_round_rate(struct rmig_session *s);
/* Add text to the recorded error (what it means for the VM). */
void session_error_append(struct rmig_session *s, const char *text);
/* Add page transmissions to the current round and the totals. */
void session_count_pages(struct rmig_session *s, uint64_t pages, uint64_t zero_pages,
			 uint64_t data_bytes);
/* Recompute the histogram of sends per page from the regions' counters. */
void session_histogram_update(struct rmig_session *s);

/* Encode into s->msg_buf with encoder, then send. */
int session_ctrl_send(struct rmig_session *s, size_t len);
/* Wait up to the session's timeout (checking cancellation) for the next control message.
 * Returns its type with *payload_p / *len_p set, or -errno (an ABORT from the peer returns the
 * peer's code, with the reason in the last error). A commit where none is expected is -EPROTO. */
int session_ctrl_recv(struct rmig_session *s, const char *waiting_for, const void **payload_p,
		      size_t *len_p);
struct protocol_abort;
/* Record the peer's abort as this side's error; returns the code to fail with (the peer's
 * -errno, except that its cancel is -ECONNABORTED here). */
/* A PULL_REPORT from the destination (source, auto): keep its median. 0 or -EPROTO. */
int session_pull_report(struct rmig_session *s, const void *payload, size_t len);
/* Source, mid-round: take what the destination sent (test pull reports; an abort fails the
 * session), waiting up to wait_ms for the first message. 0 or -errno. */
int session_ctrl_poll(struct rmig_session *s, int wait_ms);
int session_peer_aborted(struct rmig_session *s, const struct protocol_abort *abort_msg);
/* The connection failed under this side: wait briefly for what the peer sent before it went.
 * When that holds an ABORT, record the peer's reason as the error and return its code; else
 * return 0 (the caller reports the transport's error). Messages before it are dropped. */
int session_peer_reason(struct rmig_session *s);
/* Tell the peer why the migration ends (best effort). */
void session_abort_send(struct rmig_session *s, int code, const char *reason);
/* Publish the session's connection (stats readers on other threads look at it). */
void session_conn_set(struct rmig_session *s, struct transport_conn *conn);
/* Close the connection (keeping its final counters) and the listener. */
void session_disconnect(struct rmig_session *s);
/* Close the connection only (its counters added to earlier_transport); the listener stays. */
void session_conn_drop(struct rmig_session *s);
/* The transport options of the session's connections (streams, deadlines). */
/* sum += more, counter by counter (a recovered session has had more than one connection). */
void session_transport_stats_add(struct transport_stats *sum, const struct transport_stats *more);
void session_transport_options(struct rmig_session *s, const char *uri,
			       struct transport_options *opts);

#endif /* RMIG_ENGINE_SESSION_H */
