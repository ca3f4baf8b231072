/* SPDX-License-Identifier: MIT */
/* bindings/qemu/qmp.h - a small, strict client of QEMU's machine protocol (QMP): one JSON object
 * per line over a unix socket; the greeting, capability negotiation, commands matched to their
 * replies by id, asynchronous events queued in arrival order, errors with QEMU's own words.
 * Thread-safe: one command at a time per connection. */
#ifndef RMIG_QEMU_QMP_H
#define RMIG_QEMU_QMP_H

#include <jansson.h>
#include <stdint.h>
#include <sys/types.h>

#define QMP_ERROR_MAX 512

struct qmp;

/**
 * qmp_open() - connect to QEMU's QMP socket, read the greeting and leave negotiation mode.
 * @path: the unix socket of `-qmp unix:PATH,server=on,wait=off`.
 * @name: how messages name this QEMU ("source QEMU").
 * @timeout_ms: longest wait for QEMU at any step, here and in every later command.
 * @qmp_p: set on success.
 * @error: receives why it failed (QMP_ERROR_MAX bytes).
 *
 * Return: 0; -ENOENT (no socket at @path), -ECONNREFUSED (nobody serves it), -ENAMETOOLONG,
 * -ETIMEDOUT (no greeting: QEMU serves one QMP client at a time), -EPROTO (not QMP),
 * -ECONNRESET, -ENOMEM.
 */
int qmp_open(const char *path, const char *name, int timeout_ms, struct qmp **qmp_p,
	     char error[QMP_ERROR_MAX]);

/* Close the connection and free what is queued. @q may be NULL. */
void qmp_close(struct qmp *q);

/**
 * qmp_execute() - run one command and wait for its reply.
 * @q: an open connection.
 * @command: the command name.
 * @arguments: an object or NULL; the reference is stolen.
 * @return_p: NULL, or set to the reply's "return" value (a new reference) on success.
 *
 * Events that arrive meanwhile are queued for qmp_event_pop().
 *
 * Return: 0; -EREMOTEIO when QEMU answered with an error (qmp_error() has its class and
 * description); -ECONNRESET when QEMU closed the connection; -ETIMEDOUT; -EPROTO for a reply
 * that is not QMP; -ENOMEM.
 */
int qmp_execute(struct qmp *q, const char *command, json_t *arguments, json_t **return_p);

/**
 * qmp_poll() - read whatever QEMU sent without waiting, queueing events.
 * @q: an open connection.
 *
 * Return: 0; -ECONNRESET once QEMU has closed the connection; -EPROTO.
 */
int qmp_poll(struct qmp *q);

/**
 * qmp_wait() - qmp_poll(), having waited up to timeout_ms for QEMU to send something.
 * @q: an open connection.
 * @timeout_ms: longest wait for the first message, > 0.
 *
 * Return: as qmp_poll(), and -ETIMEDOUT when nothing came within timeout_ms.
 */
int qmp_wait(struct qmp *q, int timeout_ms);

/**
 * qmp_event_pop() - the oldest queued event.
 * @q: an open connection.
 * @event_p: set to the event object ("event", "data", "timestamp"; a new reference).
 *
 * Return: 1 with an event, 0 when none is queued.
 */
int qmp_event_pop(struct qmp *q, json_t **event_p);

/* The event's timestamp in microseconds since the epoch (QEMU's clock), 0 when absent. */
uint64_t qmp_event_timestamp_us(const json_t *event);

/* Why the last call on @q failed: "source QEMU (PATH): ...". Valid until the next call. */
const char *qmp_error(const struct qmp *q);

/* The QMP error class of the last error reply ("GenericError", ...), "" otherwise. */
const char *qmp_error_class(const struct qmp *q);

/* "MAJOR.MINOR.MICRO" from the greeting. */
const char *qmp_qemu_version(const struct qmp *q);

/* The process at the other end of the socket (SO_PEERCRED), 0 when unknown. */
pid_t qmp_peer_pid(const struct qmp *q);

#endif /* RMIG_QEMU_QMP_H */
