/* SPDX-License-Identifier: MIT */
/* rmig.h - the public C ABI of librmig: live-migrate guest RAM between two hosts over RDMA or
 * TCP. A hypervisor creates one session per migration on each host, adds its guest RAM regions,
 * installs callbacks (dirty log, pause, device state, resume) and runs the session.
 * The only installed header. Every function returns 0 (or a count) on success, -errno on error. */
#ifndef RMIG_H
#define RMIG_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RMIG_VERSION_MAJOR 1
#define RMIG_VERSION_MINOR 1
#define RMIG_VERSION_PATCH 0

/* One migration, on one host: opaque. */
typedef struct rmig_session rmig_session_t;

enum rmig_role {
	RMIG_ROLE_SOURCE = 1,	   /* holds the running VM, sends RAM */
	RMIG_ROLE_DESTINATION = 2, /* receives RAM, resumes the VM */
};

/* How RAM moves. The methods that resume the VM on the destination before all of its RAM has
 * arrived (TSMC, post-copy, hybrid) need the destination's regions to be fillable with
 * userfaultfd (private anonymous or shared memory) and cannot take the VM back once it resumed
 * there: see docs/methods.md. The destination follows the method the source announces. */
enum rmig_method {
	RMIG_METHOD_PRECOPY = 0,  /* rounds while the VM runs, then a short pause */
	RMIG_METHOD_PREDICT = 1,  /* pre-copy holding back pages predicted to be rewritten */
	RMIG_METHOD_TSMC = 2,	  /* all RAM once, what that dirtied once, the rest after resume */
	RMIG_METHOD_POSTCOPY = 3, /* resume at once, missing pages fetched on fault */
	RMIG_METHOD_HYBRID = 4,	  /* one pre-copy round, then post-copy */
	RMIG_METHOD_AUTO = 5,	  /* chosen from dirty rate, bandwidth and downtime target */
};

/* When pre-copy stops iterating and pauses the VM. */
enum rmig_policy {
	/* Stop when remaining bytes / measured bandwidth <= downtime target, or at max_rounds. */
	RMIG_POLICY_QEMU = 0,
	/* At most max_rounds (default 30); stop when fewer than 50 pages are dirty or 3x RAM has
	 * been sent. */
	RMIG_POLICY_XEN = 1,
};

/* How the source learns which pages the guest wrote. */
enum rmig_dirty_source {
	RMIG_DIRTY_AUTO = 0, /* the dirty_sync callback if given, else userfaultfd, else hash */
	RMIG_DIRTY_HYPERVISOR = 1, /* the dirty_sync callback (KVM dirty log, Xen log-dirty) */
	RMIG_DIRTY_UFFD_ASYNC = 2, /* userfaultfd write-protect, async mode + PAGEMAP_SCAN */
	RMIG_DIRTY_UFFD_SYNC = 3,  /* userfaultfd write-protect faults */
	RMIG_DIRTY_HASH = 4,	   /* content hash of every page (RAM rmig can map, not track) */
};

enum rmig_verify {
	/* At switchover the destination hashes every page; pages whose hash differs from the
	 * source's are resent before the VM resumes. */
	RMIG_VERIFY_ALL = 0,
	RMIG_VERIFY_NONE = 1, /* trust the dirty log */
};

/* Bits of rmig_params.field_mask: which fields the caller set. Unset fields keep their
 * current value (initially the default noted on the field). */
#define RMIG_PARAM_METHOD (1ull << 0)
#define RMIG_PARAM_POLICY (1ull << 1)
#define RMIG_PARAM_DOWNTIME_MS (1ull << 2)
#define RMIG_PARAM_BANDWIDTH_LIMIT (1ull << 3)
#define RMIG_PARAM_MAX_ROUNDS (1ull << 4)
#define RMIG_PARAM_DIRTY_SOURCE (1ull << 5)
#define RMIG_PARAM_VERIFY (1ull << 6)
#define RMIG_PARAM_KEY (1ull << 7)
#define RMIG_PARAM_STREAMS (1ull << 8)
#define RMIG_PARAM_TIMEOUT_MS (1ull << 9)

#define RMIG_KEY_MAX 64u /* longest authentication key, bytes */

/* Migration parameters. New fields are only ever appended, each with its own field_mask bit. */
struct rmig_params {
	uint64_t field_mask;	  /* RMIG_PARAM_* */
	uint32_t method;	  /* enum rmig_method; default RMIG_METHOD_PRECOPY */
	uint32_t policy;	  /* enum rmig_policy; default RMIG_POLICY_QEMU */
	uint32_t downtime_ms;	  /* downtime target; default 300 */
	uint32_t max_rounds;	  /* rounds before the VM is paused regardless; default 30 */
	uint64_t bandwidth_limit; /* bytes per second the source may send; default 0 = no cap */
	uint32_t dirty_source;	  /* enum rmig_dirty_source; default RMIG_DIRTY_AUTO */
	uint32_t verify;	  /* enum rmig_verify; default RMIG_VERIFY_ALL */
	/* shared secret both hosts set; copied; default none, and listen/connect refuse to run
	 * without one unless rmig_session_set_insecure() (1.1) opted out */
	const void *key;
	uint32_t key_len; /* 1..RMIG_KEY_MAX, 0 clears the key */
	uint32_t streams; /* parallel connections / queue pairs, 1..64; default 1 */
	/* longest wait for the peer's answer at any step; default 30000. A peer that sends
	 * nothing at all is dead sooner: rmig_session_set_peer_timeout() (1.1). */
	uint32_t timeout_ms;
	uint32_t reserved; /* must be 0 */
};

/* Bits of rmig_callbacks.field_mask: which callbacks are set. */
#define RMIG_CB_DIRTY_SYNC (1ull << 0)
#define RMIG_CB_PAUSE_VM (1ull << 1)
#define RMIG_CB_DEVICE_STATE_READ (1ull << 2)
#define RMIG_CB_DEVICE_STATE_WRITE (1ull << 3)
#define RMIG_CB_RESUME_VM (1ull << 4)
#define RMIG_CB_THROTTLE (1ull << 5)
#define RMIG_CB_PROGRESS (1ull << 6)

struct rmig_stats;

/* Events passed to the progress callback. */
enum rmig_event {
	/* during a round, at most every 100 ms and after its first batch */
	RMIG_EVENT_PROGRESS = 0,
	RMIG_EVENT_ROUND_END = 1, /* a round's data has all been handed to the transport */
	RMIG_EVENT_PAUSED = 2,	  /* the source VM has been paused */
	RMIG_EVENT_DONE = 3,	  /* the migration ended (completed, failed or cancelled) */
	/* source: after a live round, the dirty pages were counted and the stop policy decided:
	 * remaining_bytes, dirty_pages_rate, bandwidth, projected_downtime_ms, stop_reason */
	RMIG_EVENT_SYNC = 4,
};

/* Hypervisor callbacks. Each receives the opaque pointer given with them and runs on the thread
 * that runs the session. A callback returns 0 (or a count) or -errno; an error fails the
 * migration, which then leaves the source VM running and the destination discarded. */
struct rmig_callbacks {
	uint64_t field_mask; /* RMIG_CB_* */
	/* Source: set the bit of every page of region_id written since the previous call in
	 * bitmap (npages bits, zeroed by rmig; bit i of word i / 64 is page i). The first call
	 * for a region starts the log: rmig makes it when tracking starts, before any page is
	 * read, and drops what it reports (writes from before the migration), so a hypervisor
	 * need not clear its log first. Every later call reports the writes since the one
	 * before. */
	int (*dirty_sync)(void *opaque, uint32_t region_id, uint64_t *bitmap, size_t npages);
	/* Source: stop the vCPUs. After it returns no guest RAM may change. */
	int (*pause_vm)(void *opaque);
	/* Source: copy the next at most len bytes of device state into buf; return how many,
	 * 0 at the end. */
	int (*device_state_read)(void *opaque, void *buf, size_t len);
	/* Destination: the next len bytes of device state, in order. */
	int (*device_state_write)(void *opaque, const void *buf, size_t len);
	/* Destination: the VM may run here now (all RAM and device state have landed).
	 * Source: the migration failed after pause_vm; the VM must run again here. */
	int (*resume_vm)(void *opaque);
	/* Source: the guest dirties memory faster than it can be sent; slow its vCPUs down to
	 * (100 - percent)% of their time. percent 0 lifts the throttle. */
	int (*throttle)(void *opaque, uint32_t percent);
	/* Either role: event (enum rmig_event) with a snapshot of the session's statistics. */
	void (*progress)(void *opaque, uint32_t event, const struct rmig_stats *stats);
};

enum rmig_status {
	RMIG_STATUS_NONE = 0,	   /* created, not started */
	RMIG_STATUS_SETUP = 1,	   /* connecting, exchanging the region table */
	RMIG_STATUS_ACTIVE = 2,	   /* rounds while the VM runs */
	RMIG_STATUS_DEVICE = 3,	   /* VM paused: final round, device state, verification */
	RMIG_STATUS_COMPLETED = 4, /* resumed on the destination */
	RMIG_STATUS_FAILED = 5,	   /* see rmig_last_error() */
	RMIG_STATUS_CANCELLED = 6,
	/* the VM runs on the destination; pages still arrive (post-copy family) */
	RMIG_STATUS_POSTCOPY = 7,
	/* (1.1) failed after the destination resumed the VM (post-copy family): the source
	 * cannot take it back and the destination lacks pages; the VM is lost. Distinct from
	 * RMIG_STATUS_FAILED, after which the source VM runs (again). */
	RMIG_STATUS_LOST = 8,
};

/* Why pre-copy stopped iterating. */
enum rmig_stop_reason {
	RMIG_STOP_NONE = 0,
	RMIG_STOP_DOWNTIME = 1,	  /* projected downtime within the target */
	RMIG_STOP_MAX_ROUNDS = 2, /* the round limit */
	RMIG_STOP_FEW_DIRTY = 3,  /* xen: fewer than 50 dirty pages */
	RMIG_STOP_SENT_LIMIT = 4, /* xen: 3x RAM sent */
};

/* A snapshot of a session, in the terms of QEMU's query-migrate. Times in milliseconds,
 * rates per second. The caller sets struct_size = sizeof(struct rmig_stats); rmig fills only
 * what fits, so older callers keep working when fields are appended. */
struct rmig_stats {
	uint32_t struct_size;
	uint32_t status;		/* enum rmig_status */
	uint32_t method;		/* enum rmig_method */
	uint32_t stop_reason;		/* enum rmig_stop_reason */
	uint32_t round;			/* current (or last) round, 1 = the bulk round */
	uint32_t rounds;		/* rounds completed while the VM ran */
	uint64_t ram_bytes;		/* all regions */
	uint64_t remaining_bytes;	/* dirty, not yet sent (as of the last sync and progress) */
	uint64_t dirty_pages_rate;	/* pages dirtied per second, last round */
	uint64_t bandwidth;		/* bytes per second on the wire, last round */
	uint64_t projected_downtime_ms; /* at the last stop decision */
	/* pause to resume (source: to the resume acknowledgement); after a failure with the VM
	 * paused, pause to when the run gave up */
	uint64_t downtime_ms;
	uint64_t total_time_ms;		  /* start to resume, or so far */
	uint64_t setup_time_ms;		  /* start to the first page sent */
	uint64_t bytes;			  /* sent on the wire by this end, headers included */
	uint64_t data_bytes;		  /* page payload */
	uint64_t pages_sent;		  /* page transmissions, zero-page markers included */
	uint64_t zero_pages;		  /* of which zero-page markers (no data) */
	uint64_t pages_sent_multiple;	  /* distinct pages sent more than once */
	uint64_t pages_sent_histogram[4]; /* distinct pages sent 1, 2, 3, 4 or more times */
	uint64_t pages_verified;	  /* pages whose hashes were compared at switchover */
	uint64_t pages_mismatched;	  /* of which differed and were resent */
	uint64_t device_state_bytes;
	uint64_t pages_received; /* destination: page arrivals */
	uint64_t bytes_received; /* received on the wire by this end, headers included */
	/* source: enum rmig_dirty_source tracking the first region (not AUTO); regions may
	 * differ (a shared mapping is hashed): rmig_region_dirty_source() per region */
	uint32_t dirty_source;
	uint32_t reserved;
	/* The method that runs: method, or what auto chose once it chose (AUTO until then);
	 * rmig_session_method_reason() says why. */
	uint32_t method_used;
	uint32_t policy_used;	      /* enum rmig_policy of the stop rule (precopy, predict) */
	uint32_t pages_sent_max;      /* most transmissions of any one page (255 saturates) */
	uint32_t predict_threshold;   /* predict: samples with writes a page needs to be held */
	uint64_t pages_held;	      /* predict: pages held back at the last stop decision */
	uint64_t predict_hits;	      /* predict: held pages written again (a transmission saved) */
	uint64_t predict_hold_misses; /* predict: held pages never written again */
	uint64_t predict_send_misses; /* predict: pages sent as "done", then written again */
	uint64_t postcopy_pages;      /* pages delivered after the destination resumed */
	uint64_t postcopy_pages_fetched;  /* of which pulled on demand by guest faults */
	uint64_t postcopy_faults;	  /* guest accesses on the destination that waited */
	uint64_t postcopy_stall_us;	  /* time those accesses waited, summed (vCPU stall) */
	uint64_t postcopy_time_ms;	  /* destination resume to the last page */
	uint64_t auto_dirty_pages_rate;	  /* auto: distinct pages written per second, measured */
	uint64_t auto_bandwidth;	  /* auto: bytes per second, measured */
	uint64_t auto_working_set_bytes;  /* auto: estimated writable working set */
	uint64_t auto_projected_total_ms; /* auto: the cost model's total time for its choice */
	uint64_t auto_projected_downtime_ms;
	/* auto: one post-copy fault as the cost model weighed it (a pull timed on this
	 * connection before any page moved, plus half the push window it would queue behind);
	 * 0 when the destination cannot post-copy */
	uint64_t auto_fault_latency_us;
	uint64_t auto_projected_stall_ms; /* auto: the cost model's vCPU stall for its choice */
	/* auto: what the pause costs besides moving pages, as the cost model weighed it (the last
	 * full pass over the dirty log plus the source's hashing for verification) */
	uint64_t auto_pause_cost_us;
	/* auto: mean pages per contiguous run of written pages (short runs: the guest writes all
	 * over its working set, and the model counts rewrites within a round) */
	double auto_write_run_pages;
};

/* One round's record: the rounds add up to the session's totals. Round 0 is the setup
 * (handshake, region table); then the live rounds; then the final one, with the VM paused; for
 * the post-copy family one more, the post-copy tail after the destination resumed. */
struct rmig_round_stats {
	uint32_t struct_size;
	uint32_t round;
	uint64_t bytes; /* on the wire, everything the source sent during the round */
	uint64_t data_bytes;
	uint64_t pages; /* page transmissions, zero-page markers included */
	uint64_t zero_pages;
	uint64_t dirty_pages; /* pages found dirty at the sync that started the round */
	uint64_t duration_us;
	uint32_t paused; /* 1 for the final round */
	uint32_t reserved;
	uint32_t postcopy; /* 1 for the post-copy tail: after resume, pages pushed and fetched */
	uint32_t reserved2;
	uint64_t held_pages; /* predict: pages held back instead of sent, as the round started */
};

/**
 * rmig_version() - the library's version.
 *
 * Return: "MAJOR.MINOR.PATCH", a static string.
 */
const char *rmig_version(void);

/**
 * rmig_strerror() - describe an error code returned by rmig.
 * @err: a negative errno value as returned by any rmig function (or its absolute value).
 *
 * Return: a static string saying what the code means for a migration.
 */
const char *rmig_strerror(int err);

/* Log levels passed to the log handler. */
enum rmig_log_level {
	RMIG_LOG_ERROR = 0,
	RMIG_LOG_WARN = 1,
	RMIG_LOG_INFO = 2,
	RMIG_LOG_DEBUG = 3,
};

/**
 * rmig_log_handler_install() - route rmig's log messages.
 * @handler: called with each message (no trailing newline); NULL restores the default (stderr).
 * @opaque: passed back to @handler.
 * @max_level: the most verbose enum rmig_log_level passed on.
 *
 * Process-wide. The handler may be called from any rmig thread.
 */
void rmig_log_handler_install(void (*handler)(void *opaque, int level, const char *message),
			      void *opaque, int max_level);

/**
 * rmig_session_create() - create a session for one migration.
 * @role: RMIG_ROLE_SOURCE or RMIG_ROLE_DESTINATION.
 * @session_p: set to the new session on success.
 *
 * Return: 0, -EINVAL for an unknown role, -ENOMEM.
 */
int rmig_session_create(uint32_t role, rmig_session_t **session_p);

/**
 * rmig_session_destroy() - free a session. Cancels and waits for a running migration first.
 * @session: may be NULL.
 */
void rmig_session_destroy(rmig_session_t *session);

/**
 * rmig_session_set_params() - set the fields of @params named by its field_mask.
 * @session: not yet started.
 * @params: fields outside the mask are ignored.
 *
 * Return: 0; -EINVAL for an unknown mask bit or a value out of range; -EBUSY once started.
 */
int rmig_session_set_params(rmig_session_t *session, const struct rmig_params *params);

/**
 * rmig_session_set_callbacks() - install the hypervisor callbacks.
 * @session: not yet started.
 * @callbacks: copied; callbacks whose field_mask bit is clear are ignored.
 * @opaque: passed to every callback.
 *
 * Return: 0, -EINVAL for an unknown mask bit or a set bit with a NULL function, -EBUSY once
 * started.
 */
int rmig_session_set_callbacks(rmig_session_t *session, const struct rmig_callbacks *callbacks,
			       void *opaque);

/**
 * rmig_region_add() - add a guest RAM region. Both hosts add the same ids with the same length
 * and page size; the destination refuses the migration otherwise.
 * @session: not yet started.
 * @id: any number, unique within the session.
 * @addr: page-aligned start of the region in this process.
 * @length: a multiple of @page_size.
 * @page_size: a power of two, 4 KiB up to 1 GiB.
 *
 * Regions must not overlap: a byte in two regions would be migrated twice, and what the
 * destination holds would depend on which copy landed last.
 *
 * Return: 0; -EINVAL for a misaligned address or length, a bad page size, a length that wraps
 * the address space, or a range overlapping a region already added; -EEXIST for a used id;
 * -ENOSPC past the region limit; -EBUSY once started; -ENOMEM.
 */
int rmig_region_add(rmig_session_t *session, uint32_t id, void *addr, size_t length,
		    size_t page_size);

/**
 * rmig_session_listen() - destination: bind to @uri and wait there for the source.
 * @session: a destination session, not yet started.
 * @uri: "rdma://addr:port", "tcp://addr:port" (port 0 picks a free one) or "loop:name".
 *
 * Needs a key (rmig_params.key) unless rmig_session_set_insecure() opted out (1.1).
 *
 * Return: 0; -EPERM without a key and without the opt-out (1.1); -EPROTONOSUPPORT for an
 * unknown scheme or one not usable here; -EINVAL for a malformed uri; -EADDRINUSE; -EBUSY.
 */
int rmig_session_listen(rmig_session_t *session, const char *uri);

/**
 * rmig_session_listen_uri() - destination: the uri a source should connect to.
 * @session: a listening destination session.
 * @buf: receives the NUL-terminated uri.
 * @len: size of @buf.
 *
 * Return: 0; -EINVAL when not listening; -ENOSPC when @buf is too small.
 */
int rmig_session_listen_uri(rmig_session_t *session, char *buf, size_t len);

/**
 * rmig_session_connect() - source: connect to the destination listening at @uri.
 * @session: a source session, not yet started.
 * @uri: as for rmig_session_listen().
 *
 * Needs a key (rmig_params.key) unless rmig_session_set_insecure() opted out (1.1). Gives up
 * after the shorter of rmig_params.timeout_ms and the dead-peer deadline.
 *
 * Return: 0; -EPERM without a key and without the opt-out (1.1); -ECONNREFUSED, -ETIMEDOUT,
 * -EPROTONOSUPPORT, -EINVAL, -EBUSY.
 */
int rmig_session_connect(rmig_session_t *session, const char *uri);

/**
 * rmig_session_run() - run the migration to its end on the calling thread.
 * @session: a connected source or a listening destination with at least one region.
 *
 * The source sends RAM while the VM runs, pauses it, sends the rest and the device state,
 * verifies, and returns once the destination has resumed the VM. The destination accepts the
 * source, receives, and returns after resume_vm. On any failure before the destination resumed
 * the source VM keeps (or goes back to) running and the destination never resumes. With the
 * post-copy family both ends return only once every page has arrived; a failure after the
 * resume loses the VM (the source cannot take it back, the destination lacks pages), which the
 * error says and the status RMIG_STATUS_LOST (1.1) marks, on both ends.
 *
 * Return: 0 when the VM runs on the destination; -ECANCELED after rmig_session_cancel();
 * -EOPNOTSUPP for a method the destination cannot run (post-copy needs userfaultfd on its
 * regions); -ENOENT / -EINVAL when the peer's region table
 * differs (unknown region, length or page size mismatch); -ECONNRESET / -ECONNABORTED when
 * the peer went away or aborted; -ETIMEDOUT; -EHOSTDOWN (1.1) when nothing at all came from
 * the peer for the dead-peer deadline; -EPROTO for a peer breaking the protocol; an
 * error a callback returned. rmig_last_error() says where and why.
 */
int rmig_session_run(rmig_session_t *session);

/**
 * rmig_session_start() - rmig_session_run() on a thread of its own.
 * @session: as for rmig_session_run().
 *
 * Return: 0 when the thread started; -EBUSY when already started; -EAGAIN.
 */
int rmig_session_start(rmig_session_t *session);

/**
 * rmig_session_wait() - wait for a migration started with rmig_session_start().
 * @session: a started session.
 * @timeout_ms: -1 waits as long as it takes.
 *
 * Return: what rmig_session_run() returned; -ETIMEDOUT when it is still running; -EINVAL when
 * it was not started. The migration itself may fail with -ETIMEDOUT too (a silent peer):
 * rmig_session_wait_result() tells the two apart.
 */
int rmig_session_wait(rmig_session_t *session, int timeout_ms);

/**
 * rmig_session_cancel() - stop a running migration as soon as possible.
 * @session: any session, or NULL (nothing happens); safe from any thread and from callbacks.
 *
 * The source VM keeps running (it is resumed if it was paused); the destination is discarded
 * and never resumes. Cancelling after the destination resumed has no effect.
 *
 * Return: 0.
 */
int rmig_session_cancel(rmig_session_t *session);

/**
 * rmig_session_stats() - snapshot of the session's statistics.
 * @session: any session; safe from any thread while it runs.
 * @stats: the caller sets stats->struct_size; rmig fills what fits.
 *
 * Return: 0, -EINVAL when struct_size is too small for the first two fields.
 */
int rmig_session_stats(rmig_session_t *session, struct rmig_stats *stats);

/**
 * rmig_session_round_stats() - the record of one round.
 * @session: a source session.
 * @round: 0 (setup) up to rmig_stats.round.
 * @stats: the caller sets stats->struct_size; rmig fills what fits.
 *
 * Return: 0, -ENOENT for a round not (yet) recorded, -EINVAL.
 */
int rmig_session_round_stats(rmig_session_t *session, uint32_t round,
			     struct rmig_round_stats *stats);

/**
 * rmig_last_error() - the reason of the session's last failing call, with where and why.
 * @session: any session.
 *
 * Every call that fails on a session leaves its own reason here (an argument refused, a
 * listen or connect that failed, the run's error once the run failed), replacing the one
 * before; a run clears it as it starts. rmig does not print errors it returns at the log's
 * default level: they are logged at RMIG_LOG_INFO.
 *
 * Return: a NUL-terminated message, "" when there was none. Valid until the next call into the
 * session from any thread: from a thread other than the one that runs the session, use
 * rmig_last_error_copy().
 */
const char *rmig_last_error(rmig_session_t *session);

/**
 * rmig_last_error_copy() - copy the reason of the session's last failing call (1.1).
 * @session: any session; safe from any thread while the session runs.
 * @buf: receives the NUL-terminated message, truncated to fit; may be NULL when @len is 0.
 * @len: size of @buf.
 *
 * The same message as rmig_last_error(), copied under the session's lock.
 *
 * Return: the message's full length (without the NUL; >= @len means it was truncated), or
 * -EINVAL for a NULL @session, or a NULL @buf with a nonzero @len.
 */
int rmig_last_error_copy(rmig_session_t *session, char *buf, size_t len);

/**
 * rmig_session_wait_result() - wait for a migration started with rmig_session_start(),
 * telling "still running" apart from the migration's own result (1.1).
 * @session: a started session.
 * @timeout_ms: -1 waits as long as it takes.
 * @result_p: set, once the migration ended, to what rmig_session_run() returned (0, or any
 *            of its -errno codes, -ETIMEDOUT included).
 *
 * Return: 0 when the migration ended (*result_p set); -EINPROGRESS when it still runs after
 * @timeout_ms; -EINVAL when it was not started or @result_p is NULL.
 */
int rmig_session_wait_result(rmig_session_t *session, int timeout_ms, int *result_p);

/**
 * rmig_region_dirty_source() - how the source tracks the pages of one region (1.1).
 * @session: a source session.
 * @id: a region added with rmig_region_add().
 *
 * Regions of one session may be tracked differently: with RMIG_DIRTY_AUTO a private mapping
 * gets userfaultfd and a shared one (memfd, a QEMU memory backend) content hashing.
 *
 * Return: enum rmig_dirty_source (RMIG_DIRTY_AUTO until tracking started, which is at the
 * start of the run; the kind stays readable after the run); -ENOENT for an unknown @id;
 * -EINVAL on a destination or a NULL @session.
 */
int rmig_region_dirty_source(rmig_session_t *session, uint32_t id);

/**
 * rmig_region_send_counts() - how many times the source sent each page of one region (1.1).
 * @session: a source session whose migration has ended (or not started: all zero).
 * @id: a region added with rmig_region_add().
 * @counts: receives one count per page, from the region's first page on; a page sent 255
 *          times or more reads 255. Zero-page markers and verification resends count.
 * @npages: room in @counts, in pages; more than the region has is fine.
 *
 * What a method's guarantee is checked by (pre-copy resends a page written during a round,
 * TSMC sends none more than twice): rmig_stats.pages_sent_histogram has the totals.
 *
 * Return: the number of pages copied (the lesser of @npages and the region's pages, at most
 * INT32_MAX); -ENOENT for an unknown @id; -EINVAL on a destination, for a NULL @session, or a
 * NULL @counts with a nonzero @npages; -EBUSY while a migration started with
 * rmig_session_start() still runs.
 */
int rmig_region_send_counts(rmig_session_t *session, uint32_t id, uint8_t *counts, size_t npages);

/**
 * rmig_session_method_reason() - why the session runs the method it runs.
 * @session: a source session.
 *
 * For RMIG_METHOD_AUTO, once it chose: the measured dirty rate, bandwidth and working set, the
 * projection of the choice and why the others lost. For other methods, what was asked for.
 *
 * Return: a NUL-terminated message, "" before the method is settled. Valid until the next call
 * into the session.
 */
const char *rmig_session_method_reason(rmig_session_t *session);

/**
 * rmig_session_set_insecure() - opt out of authentication, or back in (1.1).
 * @session: not yet started.
 * @insecure: nonzero: rmig_session_listen() and rmig_session_connect() go ahead without a key,
 *            and log a warning (RMIG_LOG_WARN) every time they do; 0 (the default): they
 *            refuse with -EPERM.
 *
 * Without a key any host that reaches the destination's port can write the guest's RAM, and
 * any host that answers the source's connection receives it. Meant for tests on one host.
 *
 * Return: 0; -EINVAL for a NULL @session; -EBUSY once started.
 */
int rmig_session_set_insecure(rmig_session_t *session, int insecure);

/**
 * rmig_session_set_peer_timeout() - the dead-peer deadline (1.1).
 * @session: not yet started, listening or connected.
 * @timeout_ms: 200 to 3600000; 0 restores the default, 10000.
 *
 * Both ends send a heartbeat several times per deadline, whatever they are busy with; a side
 * that hears nothing from its peer (no heartbeat, page or message) for @timeout_ms ends the
 * migration with -EHOSTDOWN, in every phase: the source resumes its VM if it had paused it; a
 * destination that had resumed the VM (post-copy family) reports it lost. The transport
 * enforces the same deadline on data the peer never acknowledges (tcp: TCP_USER_TIMEOUT and
 * keepalive; rdma: the queue pair's ack timeout and retry count). Connecting gives up within
 * it too. Set the same value on both hosts.
 *
 * Return: 0; -EINVAL for a NULL @session or a value out of range; -EBUSY once listening,
 * connected or started.
 */
int rmig_session_set_peer_timeout(rmig_session_t *session, uint32_t timeout_ms);

/**
 * rmig_status_name() - "none", "setup", "active", "device", "completed", "failed", "cancelled",
 * "postcopy", "lost".
 * @status: enum rmig_status.
 *
 * Return: a static string, "unknown" for another value.
 */
const char *rmig_status_name(uint32_t status);

/**
 * rmig_method_name() - "precopy", "predict", "tsmc", "postcopy", "hybrid", "auto".
 * @method: enum rmig_method.
 *
 * Return: a static string, "unknown" for another value.
 */
const char *rmig_method_name(uint32_t method);

/**
 * rmig_transport_available() - whether this library can migrate over a transport here (1.1).
 * @scheme: "rdma", "tcp" or "loop", as in a URI's scheme.
 *
 * "rdma" needs the library built with RDMA support and at least one verbs device on this host;
 * "tcp" and "loop" are always there.
 *
 * Return: 1 when a session can listen and connect with @scheme; 0 for an unknown scheme, one
 * this build lacks or one without a device; -EINVAL for a NULL @scheme.
 */
int rmig_transport_available(const char *scheme);

/* ---- Planner ---- */

/* The planner (rmig_plan_*) is its own library, librmig-plan.so.1, with its own header,
 * <rmig-plan.h>: librmig does not read JSON. */

#ifdef __cplusplus
}
#endif

#endif /* RMIG_H */
