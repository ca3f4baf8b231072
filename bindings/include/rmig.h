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
#define RMIG_VERSION_MINOR 4
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
	/* (1.2) At switchover compare the pages the final round sent and a sample of the rest,
	 * drawn afresh for each migration (RMIG_VERIFY_SAMPLE_BYTES in all, in runs); should any
	 * page differ, the dirty log missed writes, and every page is compared and resent as with
	 * RMIG_VERIFY_ALL. The pause then grows with the dirty set, not with the RAM. Regions
	 * whose tracker keeps page hashes (RMIG_DIRTY_HASH) are compared whole: it costs nothing
	 * there. */
	RMIG_VERIFY_SAMPLE = 2,
};

/* (1.2) How much of the RAM RMIG_VERIFY_SAMPLE samples, over all regions, besides the pages
 * of the final round. */
#define RMIG_VERIFY_SAMPLE_BYTES (16u << 20)

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
	/* (1.1) post-copy family, after the resume: the connection was lost; the session waits
	 * for a new one (status RMIG_STATUS_RECOVERING) */
	RMIG_EVENT_RECOVERING = 5,
	/* (1.1) a new connection took over and the post-copy tail goes on (RMIG_STATUS_POSTCOPY) */
	RMIG_EVENT_RECOVERED = 6,
	/* (1.1) post-copy family: the destination resumed the VM and the tail begins (status
	 * RMIG_STATUS_POSTCOPY); on the source, once the destination acknowledged the resume.
	 * From here the source VM must never run again. Once per session, before DONE. */
	RMIG_EVENT_POSTCOPY = 7,
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
	/* (1.1) post-copy recovery: the VM runs on the destination, the connection was lost
	 * after its resume, and both ends wait, for the recovery window, for a new one (the same
	 * path coming back, or one rmig_session_recover() names). The destination's guest waits
	 * on the pages it lacks; the source keeps the RAM and which pages have crossed. */
	RMIG_STATUS_RECOVERING = 9,
};

/* Why pre-copy stopped iterating. */
enum rmig_stop_reason {
	RMIG_STOP_NONE = 0,
	RMIG_STOP_DOWNTIME = 1,	  /* projected downtime within the target */
	RMIG_STOP_MAX_ROUNDS = 2, /* the round limit */
	RMIG_STOP_FEW_DIRTY = 3,  /* xen: fewer than 50 dirty pages */
	RMIG_STOP_SENT_LIMIT = 4, /* xen: 3x RAM sent */
	/* (1.3) qemu: the projection is above the target and no round can bring it down: what
	 * is left would cross while the switchover's fixed work (the verification's hashing)
	 * runs anyway, or nothing is left */
	RMIG_STOP_FLOOR = 5,
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
	/* (1.1) post-copy recovery: new connections that took over after a lost one */
	uint64_t recoveries;
	/* (1.1) time spent in RMIG_STATUS_RECOVERING, summed (so far, while recovering) */
	uint64_t recovering_ms;
	/* (1.1) destination: time spent answering the source's verification with the VM paused
	 * (hashes of what arrived), microseconds: part of the downtime */
	uint64_t verify_answer_us;
};

/* (1.1) What the transport itself counted for a session, over every connection it had (a
 * post-copy recovery opens more than one): independent of the engine's own counts in struct
 * rmig_stats, which it should match. The caller sets struct_size = sizeof(struct
 * rmig_transport_stats); rmig fills only what fits. */
struct rmig_transport_stats {
	uint32_t struct_size;
	uint32_t reserved;
	uint64_t bytes_sent; /* on the wire, headers included */
	uint64_t bytes_received;
	uint64_t data_bytes_sent; /* page payload only */
	uint64_t data_bytes_received;
	uint64_t batches_sent;
	uint64_t batches_received;
	uint64_t ctrl_sent; /* control messages */
	uint64_t ctrl_received;
	uint64_t reads; /* reads of the peer's RAM this end made (post-copy pulls) */
	uint64_t read_bytes;
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
 * On a source, when the region is one shared mapping of a tmpfs file or memfd, rmig opens that
 * file read-only (until rmig_session_destroy()) to skip its holes, pages never written, without
 * reading them (docs/abi.md, Regions).
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
 * Needs a key (rmig_params.key) unless x509 certificates are set (rmig_session_set_tls(),
 * 1.1) or rmig_session_set_insecure() opted out (1.1).
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
 * Needs a key (rmig_params.key) unless x509 certificates are set (rmig_session_set_tls(),
 * 1.1) or rmig_session_set_insecure() opted out (1.1). Gives up
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
 * post-copy family both ends return only once every page has arrived; a lost connection after
 * the resume is recovered (RMIG_STATUS_RECOVERING, rmig_session_set_recovery_window(), 1.1);
 * a failure after the resume that cannot be recovered loses the VM (the source cannot take it
 * back, the destination lacks pages), which the error says and the status RMIG_STATUS_LOST (1.1)
 * marks, on both ends.
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
 * and never resumes. Cancelling after the destination resumed has no effect, except while the
 * session is in RMIG_STATUS_RECOVERING (1.1): then the recovery stops and the VM is declared
 * lost (RMIG_STATUS_LOST).
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
 * @stats: the caller sets stats->struct_size; rmig fills what fits. A round that still
 * runs reports its duration and bytes so far.
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
 * rmig_session_transport_stats() - what the transport counted for a session (1.1).
 * @session: a session, source or destination, at any time (all zero before it connected).
 * @stats: its struct_size set by the caller; receives the counters of every connection the
 *         session had, the current one included.
 *
 * The transport counts bytes as it moves them, apart from the engine: a test or a monitor
 * checks the engine's rmig_stats.bytes and data_bytes against it.
 *
 * Return: 0; -EINVAL for a NULL @session or @stats, or a struct_size below 8.
 */
int rmig_session_transport_stats(rmig_session_t *session, struct rmig_transport_stats *stats);

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
 * migration with -EHOSTDOWN, in every phase: the source resumes its VM if it had paused it;
 * after a post-copy-family resume both ends recover instead (rmig_session_recover()). The transport
 * enforces the same deadline on data the peer never acknowledges (tcp: TCP_USER_TIMEOUT and
 * keepalive; rdma: the queue pair's ack timeout and retry count). Connecting gives up within
 * it too. Set the same value on both hosts.
 *
 * Return: 0; -EINVAL for a NULL @session or a value out of range; -EBUSY once listening,
 * connected or started.
 */
int rmig_session_set_peer_timeout(rmig_session_t *session, uint32_t timeout_ms);

/* TLS on tcp:// (1.1): rmig_session_set_tls(). */
enum rmig_tls_mode {
	/* The default: psk on tcp whenever the session has a key, none without one (insecure);
	 * rdma and loop are never TLS'd. */
	RMIG_TLS_AUTO = 0,
	RMIG_TLS_NONE = 1, /* plaintext tcp after the key handshake: logged as a warning */
	RMIG_TLS_PSK = 2,  /* TLS 1.3, the pre-shared key derived from the session key */
	RMIG_TLS_X509 =
		3, /* TLS 1.3 with certificates, verified both ways (QEMU's tls-creds-x509) */
};

/* The caller sets struct_size = sizeof(struct rmig_tls); strings are copied. */
struct rmig_tls {
	uint32_t struct_size;
	uint32_t mode; /* enum rmig_tls_mode */
	/* x509: a directory of ca-cert.pem, server-cert.pem, server-key.pem (the listener's),
	 * client-cert.pem, client-key.pem (the connecting side's), as QEMU's tls-creds-x509 dir */
	const char *creds_dir;
	/* x509: explicit files, each in place of its file in creds_dir (creds_dir may be NULL
	 * when all three are given) */
	const char *ca_file;
	const char *cert_file;
	const char *key_file;
	/* x509, connecting side: the name (or address) the listener's certificate must carry;
	 * NULL: the URI's host; "": do not check the name (the chain is still verified) */
	const char *peer_name;
};

/**
 * rmig_session_set_tls() - how the tcp transport protects every frame after connecting (1.1).
 * @session: not yet started, listening or connected.
 * @tls: NULL or mode RMIG_TLS_AUTO restores the default.
 *
 * TLS 1.3 covers every stream of the connection (the control stream and each data stream):
 * confidentiality and integrity of the guest's pages, commits and messages. A record that fails
 * its check ends the connection before its bytes reach guest RAM. The default (RMIG_TLS_AUTO)
 * is RMIG_TLS_PSK on tcp whenever the session has a key (the PSK is HMAC-SHA256 of the key
 * with a label, never the key itself): a migration between hosts is encrypted unless the
 * caller says otherwise. RMIG_TLS_NONE with a key keeps the key handshake (on tcp the listener
 * also takes a key proof in each stream's transport hello, so no peer without the key reaches
 * the destination's session) and sends the rest in plaintext, with an RMIG_LOG_WARN line every
 * session. RMIG_TLS_X509 verifies the peer's
 * certificate against the CA both ways, and the listener's name against @tls->peer_name (or
 * the URI's host) on the connecting side. Both sides must ask for the same mode: a TLS side
 * and a plaintext side, a wrong PSK or an untrusted certificate fail connecting with an error
 * that says so (the listener refuses the peer and goes on waiting for the right one). rdma://
 * and loop: are not TLS'd: RMIG_TLS_PSK or RMIG_TLS_X509 there makes listen/connect fail with
 * -EPROTONOSUPPORT.
 *
 * Return: 0; -EINVAL for a NULL @session, an unknown mode, a struct_size too small or x509
 * without credentials; -ENOMEM; -EBUSY once listening, connected or started. A file that
 * cannot be loaded is reported by rmig_session_listen()/_connect().
 */
int rmig_session_set_tls(rmig_session_t *session, const struct rmig_tls *tls);

/**
 * rmig_session_set_recovery_window() - how long a post-copy migration waits for a new
 * connection after losing its connection past the resume (1.1).
 * @session: not yet started.
 * @window_ms: 1000 to 86400000 (a day); 0 restores the default, 600000 (10 minutes).
 *
 * After the destination resumed the VM (post-copy, hybrid, TSMC, auto choosing one of them),
 * a dead peer (the dead-peer deadline passed, the connection reset) does not end the
 * migration: both ends enter RMIG_STATUS_RECOVERING (RMIG_EVENT_RECOVERING). The destination
 * listens again on the URI it listened on first, or on the one rmig_session_recover() gives
 * it; the source connects again to the URI it connected to first, or to the one
 * rmig_session_recover() gives it, retrying about every second. The new connection must prove
 * the same key and name the same migration (an id both ends derived from the first handshake);
 * others are refused and the wait goes on. Then the destination tells the source which pages it
 * still lacks and the tail goes on (RMIG_EVENT_RECOVERED). Only when the window passes without
 * a new connection, or rmig_session_cancel() is called while recovering, is the VM declared
 * lost (RMIG_STATUS_LOST). Set the same value on both hosts.
 *
 * Return: 0; -EINVAL for a NULL @session or a value out of range; -EBUSY once started.
 */
int rmig_session_set_recovery_window(rmig_session_t *session, uint32_t window_ms);

/**
 * rmig_session_recover() - point a post-copy recovery at a new path (1.1).
 * @session: any session whose migration has not ended; safe from any thread while it runs.
 * @uri: destination: where to listen for the source's new connection; source: where to
 *       connect (the destination's new listening URI). As for rmig_session_listen().
 *
 * What QEMU's migrate-recover (destination) and migrate -r (source) do. While the session is
 * in RMIG_STATUS_RECOVERING, the destination starts listening on @uri at once (its earlier
 * listener closes) and the source's next attempt goes to @uri. Before that (the VM runs on the
 * destination and the connection still looks alive, or the migration has not reached the
 * resume yet), @uri is kept for the recovery, should one happen. It takes effect for this
 * session only, and every later attempt uses it, until another call.
 *
 * Return: 0; -EINVAL for a NULL @session or @uri, a malformed or too long @uri, or a session
 * whose migration ended (completed, failed, cancelled, lost); -EPROTONOSUPPORT for an unknown scheme; destination while
 * recovering: what rmig_session_listen() returns for @uri (-EADDRINUSE, ...).
 */
int rmig_session_recover(rmig_session_t *session, const char *uri);

/**
 * rmig_status_name() - "none", "setup", "active", "device", "completed", "failed", "cancelled",
 * "postcopy", "lost", "recovering".
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
 * rmig_stop_reason_name() - why pre-copy stopped iterating, as rmig's tools print it (1.4):
 * "none", "downtime target", "round limit", "few dirty pages", "3x RAM sent",
 * "the pause's floor".
 * @reason: enum rmig_stop_reason (rmig_stats.stop_reason, rmig_policy_decision.reason).
 *
 * Return: a static string, "unknown" for another value (a reason newer than this library).
 */
const char *rmig_stop_reason_name(uint32_t reason);

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

/* ---- The stop rule, for a hypervisor that runs its own pre-copy rounds (1.1) ---- */

/* One round of a hypervisor's own pre-copy (Xen's xc_domain_save, for one), as the stop rule
 * weighs it. The caller sets struct_size = sizeof(struct rmig_policy_input); every field up to
 * pause_cost_us is read, fields appended later only when struct_size covers them. */
struct rmig_policy_input {
	uint32_t struct_size;
	uint32_t policy;	  /* enum rmig_policy */
	uint32_t round;		  /* live rounds completed (1 = the one that sent all of RAM) */
	uint32_t max_rounds;	  /* QEMU: 0 = no bound; XEN: 0 or above 30 = 30 */
	uint32_t downtime_ms;	  /* downtime target (QEMU) */
	uint32_t reserved;	  /* must be 0 */
	uint64_t dirty_pages;	  /* dirty now (the hypervisor's log after the round) */
	uint64_t remaining_bytes; /* what the pause would carry if the VM stopped now */
	uint64_t bandwidth;	  /* bytes per second, measured over the last round; 0: unknown */
	uint64_t bytes_sent;	  /* page data sent so far, all rounds (XEN: the 3x RAM bound) */
	uint64_t ram_bytes;	  /* the VM's RAM */
	uint64_t pause_cost_us;	  /* what the pause costs besides sending remaining_bytes */
};

/* The answer. The caller sets struct_size = sizeof(struct rmig_policy_decision); rmig fills
 * what fits (at least stop and reason). */
struct rmig_policy_decision {
	uint32_t struct_size;
	uint32_t stop;	 /* 1: pause the VM and send the rest; 0: another round */
	uint32_t reason; /* enum rmig_stop_reason; RMIG_STOP_NONE when not stopping */
	uint32_t reserved;
	uint64_t projected_downtime_ms; /* remaining / bandwidth + pause cost; UINT64_MAX unknown */
};

/**
 * rmig_policy_decide() - should a pre-copy that the hypervisor runs itself stop iterating (1.1)?
 * @input: the round's measurements, struct_size set.
 * @decision: the caller sets decision->struct_size; written only on success.
 *
 * The same stop rule a source session applies after each of its own rounds (the policy of
 * rmig_params.policy), as a pure function of the numbers given: no session, no state, callable
 * from any thread. For a toolstack that keeps its own rounds (Xen's precopy_policy callback)
 * and wants rmig's rule and downtime target to end them.
 *
 * Return: 0; -EINVAL for a NULL argument, a struct_size too small, an unknown policy or a
 * reserved field that is not 0.
 */
int rmig_policy_decide(const struct rmig_policy_input *input,
		       struct rmig_policy_decision *decision);

/* ---- Planner ---- */

/* The planner (rmig_plan_*) is its own library, librmig-plan.so.1, with its own header,
 * <rmig-plan.h>: librmig does not read JSON. */

#ifdef __cplusplus
}
#endif

#endif /* RMIG_H */
