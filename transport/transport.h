/* SPDX-License-Identifier: MIT */
/* transport/transport.h - the one interface every rmig transport implements (rdma, tcp, loop).
 * A transport moves bytes between registered memory regions of two peers and carries small
 * control messages. It knows nothing of pages, rounds or migrations. Never installed. */
#ifndef RMIG_TRANSPORT_H
#define RMIG_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#define TRANSPORT_CTRL_MAX (64u * 1024u) /* largest control message payload, bytes */
#define TRANSPORT_BATCH_MAX_RUNS 1024u	 /* most runs one batch may carry */
#define TRANSPORT_URI_MAX 256u
#define TRANSPORT_ERROR_MAX 256u
#define TRANSPORT_PROTOCOL_VERSION 1u /* carried in rdma_cm private data / tcp hello */
#define TRANSPORT_BIND_KEY_LEN 32u    /* transport_conn_bind's keys */
#define TRANSPORT_REGION_MAC_LEN 32u  /* HMAC-SHA256 after a bound region announcement */

/* One contiguous run of bytes, at the same offset of the same region on both peers. */
struct transport_run {
	uint32_t region_id;
	uint32_t flags; /* TRANSPORT_RUN_* */
	uint64_t offset;
	uint64_t length;
};

enum {
	/* No data crosses; the commit tells the receiver the run holds only zeroes. */
	TRANSPORT_RUN_ZERO = 1u << 0,
};

enum transport_access {
	TRANSPORT_ACCESS_LOCAL = 0,
	TRANSPORT_ACCESS_REMOTE_WRITE = 1u << 0, /* the peer may place data here (destination) */
	TRANSPORT_ACCESS_REMOTE_READ = 1u << 1,	 /* the peer may pull from here (source) */
};

#define TRANSPORT_ACCESS_REMOTE (TRANSPORT_ACCESS_REMOTE_WRITE | TRANSPORT_ACCESS_REMOTE_READ)

enum transport_reg_mode {
	TRANSPORT_REG_WHOLE = 0, /* register each region once, up front (default) */
	TRANSPORT_REG_ODP,	 /* on-demand paging, where the device supports it */
	TRANSPORT_REG_CHUNKED,	 /* register chunks on first use, kept in a cache */
	/* register nothing: every region is carried staged, its bytes copied through the
	 * connection's registered send and receive buffers (rdma/register.c) */
	TRANSPORT_REG_COPY,
};

/* "whole", "odp", "chunked", "copy": the names the rdma URI's ?reg= takes. */
const char *transport_reg_mode_name(enum transport_reg_mode mode);

/* TLS 1.3 on tcp:// (tcp/tls.c). AUTO is PSK when a psk is given, else none; only tcp reads
 * it, and PSK or X509 asked for on another scheme is refused (-EPROTONOSUPPORT), never ignored. */
enum transport_tls_mode {
	TRANSPORT_TLS_AUTO = 0,
	TRANSPORT_TLS_NONE,
	TRANSPORT_TLS_PSK,  /* the pre-shared key is derived from psk (HMAC-SHA256 with a label) */
	TRANSPORT_TLS_X509, /* certificates from tls_creds_dir, verified both ways */
};

struct transport_options {
	uint32_t streams;      /* parallel QPs (rdma) or sockets (tcp); 0 means 1 */
	uint32_t max_inflight; /* bound on posted, uncompleted work; 0 means transport default */
	enum transport_reg_mode reg_mode;
	int connect_timeout_ms; /* 0 means 10000 */
	/* A peer that acknowledges nothing for this long is dead (tcp: TCP_USER_TIMEOUT and
	 * keepalive, rdma: the queue pair's ack timeout and retries); 0 means 10000. */
	uint32_t peer_timeout_ms;
	enum transport_tls_mode tls;
	const uint8_t *psk; /* the session key (copied by listen), psk_len bytes */
	size_t psk_len;
	/* x509: ca-cert.pem, server-cert.pem, server-key.pem, client-cert.pem, client-key.pem */
	const char *tls_creds_dir;
	/* x509: explicit files, each taking the place of its file in tls_creds_dir (which may
	 * then be NULL when all three are given) */
	const char *tls_ca_file;
	const char *tls_cert_file;
	const char *tls_key_file;
	/* x509, connecting side: the name the listener's certificate must carry; NULL: the
	 * URI's host; "": do not check the name (the chain is still verified) */
	const char *tls_peer_name;
};

/* The TLS mode options resolve to (AUTO decided), for logs and checks. */
enum transport_tls_mode transport_tls_mode(const struct transport_options *opts);
const char *transport_tls_mode_name(enum transport_tls_mode mode);

enum transport_msg_type {
	TRANSPORT_MSG_CTRL = 1,	  /* an opaque control message from the peer's engine */
	TRANSPORT_MSG_COMMIT = 2, /* a batch whose data has fully landed in local regions */
};

/* What transport_recv() hands back. Pointers stay valid until the next transport_recv() or
 * transport_close() on the same connection. Commit runs have already been validated against
 * the local regions registered with TRANSPORT_ACCESS_REMOTE_WRITE. */
struct transport_msg {
	enum transport_msg_type type;
	uint64_t batch_id;		  /* COMMIT */
	const struct transport_run *runs; /* COMMIT */
	size_t nruns;			  /* COMMIT */
	const void *data;		  /* CTRL */
	size_t len;			  /* CTRL */
};

/* Counters, per connection. bytes_* count everything the transport puts on or takes off the
 * wire at its own level: payload plus rmig's headers (not TCP/IP or RoCE framing). */
struct transport_stats {
	uint64_t bytes_sent;
	uint64_t bytes_received;
	uint64_t data_bytes_sent;     /* page payload only */
	uint64_t data_bytes_received; /* page payload only */
	uint64_t batches_sent;
	uint64_t batches_received;
	uint64_t ctrl_sent;
	uint64_t ctrl_received;
	uint64_t reads; /* transport_read() calls served for the local side */
	uint64_t read_bytes;
};

struct transport_conn;
struct transport_listener;

/* Filled once per transport: static const struct transport_ops tcp_transport_ops = {...}.
 * Every op is present; one a transport cannot do is a named function returning -EOPNOTSUPP.
 * All return 0 (or a count) on success and -errno on failure; outputs (*_p) are set only on
 * success. Thread safety: recv may run in one thread while any number of other threads post,
 * flush, send control messages or read on the same connection. */
struct transport_ops {
	const char *scheme; /* "rdma", "tcp", "loop" */
	/* 1 when registering a region faults in and pins every page of it (rdma's ibv_reg_mr):
	 * a destination then populates its RAM ahead, while it waits for the source. */
	int registration_pins;

	/* Bind to uri ("tcp://0.0.0.0:0" picks a free port; see listener_uri). */
	int (*listen)(const char *uri, const struct transport_options *opts,
		      struct transport_listener **listener_p);
	/* The address a peer should connect to, e.g. "tcp://127.0.0.1:41234". */
	int (*listener_uri)(struct transport_listener *listener, char *buf, size_t len);
	/* Wait up to timeout_ms (-1: forever) for one peer. -ETIMEDOUT when none came. */
	int (*accept)(struct transport_listener *listener, int timeout_ms,
		      struct transport_conn **conn_p);
	void (*listener_close)(struct transport_listener *listener);
	int (*connect)(const char *uri, const struct transport_options *opts,
		       struct transport_conn **conn_p);

	/* Make [addr, addr+len) known to the transport under id. With REMOTE_* access the peer is
	 * told (id, length, access, and whatever it needs to reach it, e.g. an rkey); the peer's
	 * batches and reads are checked against it. -EEXIST for a used id. */
	int (*region_register)(struct transport_conn *conn, uint32_t id, void *addr, size_t len,
			       unsigned access);
	/* Revoke: the peer is told, and later batches or reads naming id are refused. */
	int (*region_deregister)(struct transport_conn *conn, uint32_t id);
	/* Change what the peer may do with the registered region id to access (REMOTE_* bits;
	 * the region stays registered for local use). Enforced here before the peer is told:
	 * once this returns, a WRITE or READ of the peer that the new access does not allow is
	 * refused (rdma: by the NIC, the MR no longer carries the right or its old rkey is gone;
	 * tcp, loop: by the receiving side's check, and the connection fails). Then the peer
	 * learns the change: a revoked region is withdrawn from its table, a granted one
	 * announced (with its new rkey). Waits for local work that may still use the region. */
	int (*region_access_set)(struct transport_conn *conn, uint32_t id, unsigned access);

	/* Move the data of runs from the local region to the same offsets of the peer's region
	 * with the same id, then a commit listing the runs; the peer receives the commit only
	 * after all of the data has landed. Runs flagged TRANSPORT_RUN_ZERO carry no data.
	 * Runs are checked against the local region and the peer's advertised region first
	 * (-ENOENT unknown region, -ERANGE out of bounds, -EACCES no remote write access).
	 * May return before the data has left; transport_flush() waits for that. */
	int (*batch_post)(struct transport_conn *conn, uint64_t batch_id,
			  const struct transport_run *runs, size_t nruns);
	/* Wait until everything posted so far has completed locally. */
	int (*flush)(struct transport_conn *conn, int timeout_ms);

	/* Send one opaque control message (len <= TRANSPORT_CTRL_MAX), ordered after every
	 * batch posted before it. */
	int (*ctrl_send)(struct transport_conn *conn, const void *buf, size_t len);
	/* Wait up to timeout_ms (-1: forever) for the next control message or commit.
	 * -ETIMEDOUT: nothing came; -ECONNRESET: the peer closed or broke the protocol
	 * (transport_error() says which field); -EHOSTDOWN: the peer stopped acknowledging
	 * for the dead-peer deadline (peer_timeout_set). */
	int (*recv)(struct transport_conn *conn, struct transport_msg *msg, int timeout_ms);

	/* Pull [offset, offset+len) of the peer's region id (registered there with REMOTE_READ)
	 * into dst, which may be any local memory. Blocks until the bytes are in dst. */
	int (*read)(struct transport_conn *conn, uint32_t region_id, uint64_t offset, void *dst,
		    size_t len, int timeout_ms);

	/* A peer that acknowledges nothing for timeout_ms is dead: the connection fails (a
	 * blocked send or read returns) within about that long. Transports that fix it when
	 * the connection is set up (rdma: transport_options.peer_timeout_ms) only check it. */
	int (*peer_timeout_set)(struct transport_conn *conn, uint32_t timeout_ms);

	void (*close)(struct transport_conn *conn);
};

/* State every connection carries; each transport embeds it first in its own struct and
 * reaches its private state with container_of. */
struct transport_region {
	uint32_t id;
	unsigned access;
	void *addr; /* local: base address; remote: NULL */
	uint64_t length;
	uint64_t remote_addr; /* remote, rdma: the peer's virtual address */
	uint32_t rkey;	      /* remote, rdma */
	unsigned flags;	      /* TRANSPORT_REGION_* */
	void *priv;	      /* transport's own (e.g. struct ibv_mr *) */
};

enum {
	/* rdma: the region is carried staged on this connection (its owner could not or would
	 * not register it): its bytes travel through the send ring, never by WRITE or READ. */
	TRANSPORT_REGION_STAGED = 1u << 0,
};

struct transport_region_table {
	struct transport_region *regions;
	size_t count;
	size_t capacity;
};

struct transport_conn {
	const struct transport_ops *ops;
	struct transport_region_table local;  /* registered here */
	struct transport_region_table remote; /* advertised by the peer */
	struct transport_stats stats;
	char peer[TRANSPORT_URI_MAX];	 /* for messages: "tcp://192.0.2.2:7000" */
	char error[TRANSPORT_ERROR_MAX]; /* first fatal error, "" while healthy */
	int failed;			 /* -errno of the first fatal error, 0 while healthy */
	/* pthread_mutex_t *: guards both tables, stats, error and failed. Lock order: the last
	 * lock of every backend (a leaf): nothing else is taken while it is held. */
	void *region_lock;
	/* Region announcements bound to the handshake (transport_conn_bind), under region_lock:
	 * keys for what we send and what we accept, and each direction's count of them. */
	int bound;
	uint8_t bind_send_key[TRANSPORT_BIND_KEY_LEN];
	uint8_t bind_recv_key[TRANSPORT_BIND_KEY_LEN];
	uint64_t bind_sent;
	uint64_t bind_received;
};

struct transport_listener {
	const struct transport_ops *ops;
};

#ifndef container_of
#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#endif

/* ---- What the engine calls (transport.c): dispatch by URI scheme. ---- */

/* "rdma://host:port", "tcp://host:port", "loop:name". -EPROTONOSUPPORT for another scheme. */
int transport_listen(const char *uri, const struct transport_options *opts,
		     struct transport_listener **listener_p);
int transport_listener_uri(struct transport_listener *listener, char *buf, size_t len);
int transport_accept(struct transport_listener *listener, int timeout_ms,
		     struct transport_conn **conn_p);
void transport_listener_close(struct transport_listener *listener);
/* Whether the listener's connections pin what they register (transport_ops.registration_pins). */
int transport_listener_pins(const struct transport_listener *listener);
int transport_connect(const char *uri, const struct transport_options *opts,
		      struct transport_conn **conn_p);
int transport_region_register(struct transport_conn *conn, uint32_t id, void *addr, size_t len,
			      unsigned access);
int transport_region_deregister(struct transport_conn *conn, uint32_t id);
/* Exposure scoped to when the peer needs it (docs/reliability.md): grant adds access
 * (TRANSPORT_ACCESS_REMOTE_READ and/or _WRITE) to a registered region and announces it to the
 * peer; revoke takes it away, enforced on this side before the peer hears of it, so a peer
 * that ignores the revocation (or kept an old rkey) is refused. Either is a no-op when the
 * region already has (lacks) the access. 0 or -errno: -ENOENT for an id not registered here
 * (revoke says nothing in the log then), -EINVAL for other bits; a revoke on a failed
 * connection still takes effect here and returns 0. */
int transport_region_grant(struct transport_conn *conn, uint32_t id, unsigned access);
int transport_region_revoke(struct transport_conn *conn, uint32_t id, unsigned access);
/* Bind region announcements (the messages that carry region ids, lengths, addresses and
 * rkeys) to the authenticated handshake: from now on every announcement this side sends carries
 * HMAC-SHA256 under send_key over its content and its place in the sequence, and one the peer
 * sends is accepted only with a valid MAC under recv_key (a missing, forged or replayed one
 * fails the connection). The engine derives both keys from the session key and the handshake's
 * nonces, and binds before it sends or accepts any announcement; each side's send key is the
 * other's receive key. Announcements go out from one thread at a time (the engine's).
 * Without a bind (no key, an explicit insecure session) announcements carry no MAC. 0 or
 * -EALREADY. */
int transport_conn_bind(struct transport_conn *conn, const uint8_t send_key[TRANSPORT_BIND_KEY_LEN],
			const uint8_t recv_key[TRANSPORT_BIND_KEY_LEN]);
int transport_batch_post(struct transport_conn *conn, uint64_t batch_id,
			 const struct transport_run *runs, size_t nruns);
int transport_flush(struct transport_conn *conn, int timeout_ms);
int transport_ctrl_send(struct transport_conn *conn, const void *buf, size_t len);
int transport_recv(struct transport_conn *conn, struct transport_msg *msg, int timeout_ms);
int transport_read(struct transport_conn *conn, uint32_t region_id, uint64_t offset, void *dst,
		   size_t len, int timeout_ms);
int transport_peer_timeout_set(struct transport_conn *conn, uint32_t timeout_ms);
void transport_close(struct transport_conn *conn);
/* Copy of the counters (taken under the connection's lock). */
void transport_stats_get(struct transport_conn *conn, struct transport_stats *stats_p);
/* The first fatal error of the connection, "" while it is healthy. */
const char *transport_error(struct transport_conn *conn);
const char *transport_scheme(struct transport_conn *conn);
/* Is the scheme of uri built in and usable here (rdma: a verbs device exists)? */
int transport_available(const char *scheme);

/* ---- Helpers for transport implementations (transport.c). ---- */

struct transport_uri {
	char scheme[16];
	char host[TRANSPORT_URI_MAX]; /* tcp/rdma: host name or address; loop: the name */
	uint16_t port;
	int has_reg_mode; /* rdma: "?reg=whole|odp|chunked|copy" followed the port */
	enum transport_reg_mode reg_mode;
};
/* Split "scheme://host:port" (or "loop:name"); [v6] hosts allowed; rdma:// may end in
 * "?reg=MODE" (it then overrides transport_options.reg_mode). -EINVAL with a reason. */
int transport_uri_parse(const char *uri, struct transport_uri *out);

/* Initialise / free the shared part of a connection. */
int transport_conn_init(struct transport_conn *conn, const struct transport_ops *ops,
			const char *peer);
void transport_conn_fini(struct transport_conn *conn);
/* Record the first fatal error (later ones are ignored) and log it once. Returns err. */
int transport_conn_fail(struct transport_conn *conn, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Region tables (callers hold no lock; these take conn->region_lock). */
int transport_region_add(struct transport_conn *conn, int remote,
			 const struct transport_region *region);
int transport_region_remove(struct transport_conn *conn, int remote, uint32_t id,
			    struct transport_region *removed_p);
/* Replace the entry with region->id by *region. -ENOENT when there is none. */
int transport_region_update(struct transport_conn *conn, int remote,
			    const struct transport_region *region);
/* Copy out the region with id. -ENOENT when there is none. */
int transport_region_find(struct transport_conn *conn, int remote, uint32_t id,
			  struct transport_region *region_p);

/* Check runs against a region table: each region exists, has `access`, and
 * offset + length lies inside it without overflow; nruns <= TRANSPORT_BATCH_MAX_RUNS and no
 * run is empty. On failure returns -ENOENT / -EACCES / -ERANGE / -EINVAL and writes a message
 * naming the run and field into why. */
int transport_runs_check(struct transport_conn *conn, int remote, unsigned access,
			 const struct transport_run *runs, size_t nruns, char *why, size_t why_len);
/* What every backend's batch_post checks first: the runs against the local table and against
 * the peer's advertised table with REMOTE_WRITE. Logs the refusal, naming the batch. */
int transport_batch_check(struct transport_conn *conn, uint64_t batch_id,
			  const struct transport_run *runs, size_t nruns);
/* May the peer place length bytes at offset of region region_id through the ring (a staged
 * run)? local: this side's registration of region_id (NULL: none); peer: the peer's own
 * announcement of region_id (NULL: none). Only into a region registered here with
 * REMOTE_WRITE that one of the two sides stages, inside it, not empty. 0, or -ENOENT /
 * -EACCES / -EPERM (neither side stages it) / -EINVAL (empty) / -ERANGE with why filled. */
int transport_staged_check(const struct transport_region *local,
			   const struct transport_region *peer, uint32_t region_id, uint64_t offset,
			   uint64_t length, char *why, size_t why_len);

#endif /* RMIG_TRANSPORT_H */
