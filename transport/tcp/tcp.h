/* SPDX-License-Identifier: MIT */
/* transport/tcp/tcp.h - rmig's TCP transport ("tcp://host:port"), private to transport/tcp/: a
 * framed stream (struct wire_hdr) per socket; page data goes out with sendmsg straight from the
 * region and is received straight into the region at its offset, after every field of the frame
 * has been checked against the local tables.
 *
 * How a connection works. Each stream (socket) has a receiver thread that reads one frame at a
 * time, checks it, and places page data with recv() straight into the region; commits and
 * control messages are queued for transport_recv(). Stream 0 carries the handshake, commits,
 * control messages, region announcements and reads; with several streams, page data goes on
 * streams 1..n-1 (each with a sender thread) and a commit names how many data bytes each
 * stream must have placed before it is delivered. A responder thread serves the peer's read
 * requests from REMOTE_READ regions, so a receiver never blocks on a send. Deregistering a
 * region waits for a frame being placed into it to finish. One file per job:
 *   conn.c     socket I/O, failure and shutdown, a connection's threads, close; the ops table
 *   setup.c    handshake, listen, accept, connect
 *   receive.c  the receiver threads: frames checked and placed, the inbound queue, recv()
 *   send.c     batches cut into frames, the sender threads, flush, control messages, regions
 *   read.c     transport_read() and the responder thread that serves the peer's reads
 *   tls.c      TLS 1.3 (psk, x509): contexts, handshake steps, record I/O per stream
 *
 * Lock order (take them in this order, never the other way round; tcp_batch_post holds the
 * first four at once):
 *   tcp_conn.post_lock -> tcp_conn.memory_lock (read; write only to deregister)
 *     -> tcp_stream.send_lock -> tcp_conn.lock -> tcp_conn.base.region_lock (transport.c's;
 *        a leaf: nothing is taken while it is held)
 * A thread may skip any of them but never takes one that comes earlier while holding a later
 * one. */
#ifndef RMIG_TRANSPORT_TCP_H
#define RMIG_TRANSPORT_TCP_H

#include <netdb.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>

#include "transport/deadline.h"
#include "transport/key_proof.h"
#include "transport/queue.h"
#include "transport/transport_impl.h"
#include "transport/wire.h"

/* Page data travels in frames of at most this many bytes, cut at multiples of it within the
 * region: large enough that headers cost nothing, small enough that streams share a batch
 * evenly. loop/loop.c counts headers the same way. */
#define TCP_FRAME_DATA_MAX (4u << 20)
/* Largest header.length any frame may carry: a full data or read-response frame. */
#define TCP_FRAME_MAX ((uint32_t)sizeof(struct wire_data) + TCP_FRAME_DATA_MAX)
#define TCP_COMMIT_MAX \
	(sizeof(struct wire_commit) + TRANSPORT_BATCH_MAX_RUNS * sizeof(struct wire_run))
#define TCP_CLOSE_REASON_MAX 256u
#define TCP_SEND_GROUP_BYTES (1u << 20) /* frames sent under one hold of a stream's lock */
#define TCP_HELLO_TIMEOUT_MS 10000
#define TCP_STALL_TIMEOUT_MS 60000 /* nothing moved mid-frame for this long: the peer is gone */
#define TCP_CLOSE_GRACE_MS 1000	   /* how long close() lets the peer finish its goodbye */
#define TCP_READ_JOBS_MAX 4096u	   /* outstanding read requests a peer may queue here */
#define TCP_REMOTE_REGIONS_MAX 65536u
#define TCP_DEFAULT_CONNECT_TIMEOUT_MS 10000
/* Handshakes a listener runs side by side; beyond it the one that made the least progress
 * (the oldest of those) is dropped. */
#define TCP_PENDING_MAX 256u
#define TCP_TLS_WHY_MAX 160u
/* A hello frame at its largest: header, hello, and the key proof of a keyed stream. */
#define TCP_HELLO_FRAME_MAX \
	(sizeof(struct wire_hdr) + sizeof(struct wire_hello) + sizeof(struct wire_hello_key))
#define TCP_HELLO_KEY_LEN \
	TRANSPORT_KEY_PROOF_KEY_LEN /* the key the hello proofs are made with, from the session key */

/* What precedes the bytes of one data chunk on the wire. */
struct tcp_data_head {
	struct wire_hdr hdr;
	struct wire_data data;
} __attribute__((packed));

struct tcp_conn;

struct tcp_stream {
	struct tcp_conn *conn;
	unsigned index;
	int fd;
	pthread_t receiver;
	pthread_t sender; /* streams 1..n-1 when n > 1: sends its share of each batch */
	int receiver_started;
	int sender_started;
	int awaiting_hello; /* connecting side: the listener's answer comes first */
	/* TLS (tls.c): NULL on a plaintext stream. tls_lock is held for one non-blocking SSL
	 * call at a time, never across a wait. Lock order: a leaf below send_lock (nothing is
	 * taken while it is held). */
	SSL *ssl;
	pthread_mutex_t tls_lock;
	char tls_why[TCP_TLS_WHY_MAX];	    /* the receiver's last TLS failure */
	char tls_send_why[TCP_TLS_WHY_MAX]; /* a sender's, under send_lock */
	/* One frame at a time on the socket. Lock order: after conn->post_lock and
	 * conn->memory_lock, before conn->lock and conn->base.region_lock. */
	pthread_mutex_t send_lock;
	uint64_t data_sent;	/* payload bytes handed to the socket; under post_lock */
	uint64_t data_received; /* payload bytes placed; under conn->lock */
	/* The sender's job, under conn->lock. */
	struct iovec *job_iov;
	size_t job_iovcnt;
	int job_pending;
	int job_result;
};

/* A commit or control message waiting for recv(). */
struct tcp_queued {
	struct transport_queued entry; /* in tcp_conn.incoming */
	struct transport_msg msg;
	struct transport_run *runs;
	void *data;
	uint64_t need[WIRE_STREAMS_MAX]; /* commit: bytes each stream must have placed first */
};

/* A transport_read() chunk waiting for its response; lives on the reader's stack. */
enum tcp_read_state { TCP_READ_WAITING, TCP_READ_FILLING, TCP_READ_DONE };
struct tcp_read_wait {
	struct tcp_read_wait *next;
	uint64_t request_id;
	void *dst;
	size_t len;
	enum tcp_read_state state;
	int status;
};

/* A read request from the peer, served by the responder thread. */
struct tcp_read_job {
	struct tcp_read_job *next;
	struct wire_read_req req;
};

struct tcp_conn {
	struct transport_conn base;
	unsigned nstreams;
	uint64_t session_tag; /* ties the streams together in the handshake; low byte zero */
	struct tcp_stream streams[WIRE_STREAMS_MAX];
	/* lock + changed: the recv queue, stream counters, read waits, read jobs, shutdown.
	 * Lock order: after post_lock, memory_lock and any send_lock; before base.region_lock.
	 * Never held across a socket call. */
	pthread_mutex_t lock;
	pthread_cond_t changed;
	struct transport_queue incoming; /* of struct tcp_queued */
	struct tcp_read_wait *read_waits;
	uint64_t last_request_id;
	struct tcp_read_job *jobs_head, *jobs_tail;
	size_t njobs;
	pthread_t responder;
	int responder_started;
	unsigned receivers_running;
	int stopping;	 /* close() has begun */
	int dead;	 /* the connection broke */
	int peer_closed; /* the peer said goodbye; data already sent may still be arriving */
	/* A stream on which nothing moved (or nothing was acknowledged) for this long is dead:
	 * TCP_STALL_TIMEOUT_MS, or the session's dead-peer deadline (tcp_peer_timeout_set). */
	unsigned stall_ms;
	/* Serialises batch_post, so each commit's per-stream byte counts are exact. Lock order:
	 * first of all (batch_post then takes memory_lock, send_lock, lock, base.region_lock). */
	pthread_mutex_t post_lock;
	/* Read-held while bytes move in or out of a local region, write-held while a region is
	 * deregistered: a region is never unmapped under a transfer. Lock order: after
	 * post_lock, before any send_lock, lock and base.region_lock. */
	pthread_rwlock_t memory_lock;
};

/* One connection the listener is shaking hands with (setup.c). */
struct tcp_pending {
	int fd;
	SSL *ssl;	     /* TLS: until its handshake ends, then the stream's */
	int64_t deadline_ms; /* the whole handshake, TLS and hello, ends by then */
	uint64_t order;	     /* accept order, for dropping the oldest */
	short events;	     /* what it waits for; 0 once it is ready */
	int handshaken;	     /* TLS done (at once without TLS) */
	int answered;	     /* keyed: its challenge answered, its proof awaited */
	int ready;	     /* hello received, checked and answered (keyed: and its proof) */
	size_t got;	     /* bytes of the hello frame being received */
	unsigned char raw[TCP_HELLO_FRAME_MAX];
	struct wire_hello hello;	       /* once answered or ready */
	uint8_t proof[WIRE_HELLO_KEY_MAC_LEN]; /* keyed: the proof it must send, once answered */
	char peer[64];			       /* address, for messages */
};

struct tcp_listener {
	struct transport_listener base;
	int fd;
	struct tcp_tls *tls; /* NULL: plaintext */
	/* A key and no TLS: each stream proves the key in its hello before it leaves accept()
	 * (setup.c); hello_key is derived from the session key for that alone. */
	int keyed;
	uint8_t hello_key[TCP_HELLO_KEY_LEN];
	struct tcp_pending pending[TCP_PENDING_MAX];
	unsigned npending;
	uint64_t accepted; /* sockets accepted so far */
};

static inline struct tcp_conn *tcp_conn_of(struct transport_conn *conn)
{
	return container_of(conn, struct tcp_conn, base);
}

/* Wait on tc->changed (tc->lock held) until woken or deadline (NULL: none); 0 or -ETIMEDOUT. */
static inline int tcp_wait(struct tcp_conn *tc, const struct timespec *deadline)
{
	return transport_cond_wait(&tc->changed, &tc->lock, deadline);
}

/* ---- Shared by the files of this folder; each is commented where it is defined. ---- */

/* conn.c */
int tcp_send_iov(int fd, struct iovec *iov, size_t iovcnt);
int tcp_recv_full(int fd, void *buf, size_t len, size_t *got_p);
int tcp_recv_deadline(int fd, void *buf, size_t len, int64_t deadline_ms, size_t *got_p);
void tcp_socket_tune(int fd);
/* A peer that acknowledges nothing for timeout_ms is dead: TCP_USER_TIMEOUT, keepalive probes
 * that end within it, and blocking send/recv calls that give up after it. */
void tcp_socket_deadline(int fd, unsigned timeout_ms);
int tcp_peer_timeout_set(struct transport_conn *conn, uint32_t timeout_ms);
int tcp_status(struct tcp_conn *tc);
/* The connection is broken: record why (the first reason wins, and is logged once unless we
 * are closing anyway), wake every waiter, and cut the sockets so every thread returns.
 * Returns the first error recorded, so every caller reports the same one. */
int tcp_fail(struct tcp_conn *tc, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void tcp_peer_closed(struct tcp_conn *tc);
void tcp_stats_received(struct tcp_conn *tc, uint64_t bytes);
void tcp_stats_sent(struct tcp_conn *tc, uint64_t bytes);
int tcp_send_failed(struct tcp_conn *tc, int err, const char *what);
int tcp_send_frame(struct tcp_conn *tc, enum wire_type type, const void *part1, size_t len1,
		   const void *part2, size_t len2);
int tcp_conn_create(int *fds, SSL **ssls, unsigned nstreams, uint64_t session_tag,
		    int awaiting_hello, struct tcp_conn **tc_p);
/* A stream's socket I/O, through TLS when the stream has it: as tcp_send_iov and
 * tcp_recv_full; recv_some returns after at least one byte (> 0), 0 at the end of the stream,
 * -EAGAIN when nothing came for TCP_STALL_TIMEOUT_MS, or -errno (-EBADMSG: a TLS record failed
 * its check; stream->tls_why says why). */
int tcp_stream_send(struct tcp_stream *stream, struct iovec *iov, size_t iovcnt);
int tcp_stream_recv_full(struct tcp_stream *stream, void *buf, size_t len, size_t *got_p);
int tcp_stream_recv_some(struct tcp_stream *stream, void *buf, size_t len);

/* setup.c */
int tcp_listen(const char *uri, const struct transport_options *opts,
	       struct transport_listener **listener_p);
int tcp_listener_uri(struct transport_listener *listener, char *buf, size_t len);
int tcp_accept(struct transport_listener *listener, int timeout_ms, struct transport_conn **conn_p);
void tcp_listener_close(struct transport_listener *listener);
int tcp_connect(const char *uri, const struct transport_options *opts,
		struct transport_conn **conn_p);

/* receive.c */
void *tcp_receiver_main(void *arg);
int tcp_recv(struct transport_conn *conn, struct transport_msg *msg, int timeout_ms);

/* send.c */
void *tcp_sender_main(void *arg);
int tcp_region_register(struct transport_conn *conn, uint32_t id, void *addr, size_t len,
			unsigned access);
int tcp_region_deregister(struct transport_conn *conn, uint32_t id);
int tcp_region_access_set(struct transport_conn *conn, uint32_t id, unsigned access);
int tcp_batch_post(struct transport_conn *conn, uint64_t batch_id, const struct transport_run *runs,
		   size_t nruns);
int tcp_flush(struct transport_conn *conn, int timeout_ms);
int tcp_ctrl_send(struct transport_conn *conn, const void *buf, size_t len);

/* tls.c */
struct tcp_tls;
/* The TLS context opts ask for (*tls_p NULL for none); logs what is wrong with them. */
int tcp_tls_create(const struct transport_options *opts, int server, struct tcp_tls **tls_p);
void tcp_tls_free(struct tcp_tls *tls);
const char *tcp_tls_mode_name(const struct tcp_tls *tls);
/* A TLS session on fd (non-blocking) for one stream; host: the URI's, for x509 name checks. */
int tcp_tls_session_new(struct tcp_tls *tls, int fd, const char *host, SSL **ssl_p);
/* One step of the handshake: 0 done, -EAGAIN (wait for *events_p), or -errno with why
 * (-EACCES: the peer is not who it should be, or refused us; -EPROTO: it does not speak our
 * TLS; -ECONNRESET: it left). */
int tcp_tls_handshake_step(SSL *ssl, short *events_p, char *why, size_t why_len);
/* The whole handshake on one socket, by deadline_ms. */
int tcp_tls_handshake(SSL *ssl, int fd, int64_t deadline_ms, char *why, size_t why_len);
/* Log the cipher and whether kernel TLS carries the stream. */
void tcp_tls_report(SSL *ssl, const char *peer);
/* Record I/O; lock is the stream's tls_lock (NULL before the connection's threads exist). */
int tcp_tls_send(SSL *ssl, int fd, pthread_mutex_t *lock, struct iovec *iov, size_t iovcnt,
		 char *why, size_t why_len);
enum {
	TCP_TLS_SOME = 1u << 0,	  /* return once some bytes came, not only len */
	TCP_TLS_NOWAIT = 1u << 1, /* -EAGAIN at once instead of waiting for the socket */
};
int tcp_tls_recv(SSL *ssl, int fd, pthread_mutex_t *lock, void *buf, size_t len, unsigned flags,
		 size_t *got_p, char *why, size_t why_len);

/* read.c */
void *tcp_responder_main(void *arg);
int tcp_read(struct transport_conn *conn, uint32_t region_id, uint64_t offset, void *dst,
	     size_t len, int timeout_ms);

#endif /* RMIG_TRANSPORT_TCP_H */
