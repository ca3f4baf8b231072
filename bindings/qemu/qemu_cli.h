/* SPDX-License-Identifier: MIT */
/* bindings/qemu/qemu_cli.h - what `rmig qemu-send` and `rmig qemu-recv` share: options, the
 * progress line, byte formatting and the parts of the report both print. */
#ifndef RMIG_QEMU_CLI_H
#define RMIG_QEMU_CLI_H

#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>

#include "bindings/cli/options.h"
#include "rmig.h"

#define QEMU_CLI_URI_MAX 256u
#define QEMU_CLI_DEFAULT_QEMU_PORT 4444

struct qemu_cli_options {
	const char *command; /* "qemu-send" or "qemu-recv" */
	const char *qmp;     /* this host's QEMU */
	const char *uri;     /* send: where qemu-recv listens */
	const char *listen;  /* recv: where to listen */
	/* send: QEMU's own migration channel to the destination QEMU ("tcp:HOST:PORT");
	 * recv: where the destination QEMU listens for it */
	char qemu_uri[QEMU_CLI_URI_MAX];
	const char *hook; /* send: run at switchover, both guests paused, before QEMU continues */
	/* method, limits, streams, timeout, key, --json: the options every migrating command
	 * shares (bindings/cli/options.h) */
	struct cli_migration mig;
	int insecure;		  /* --insecure: no key, on purpose */
	uint32_t peer_timeout_ms; /* --peer-timeout; 0: the library's default */
	/* Test only: switch QEMU over as soon as the guest pauses, before rmig's final round,
	 * to prove that stale RAM is detected. */
	int skip_final_round;
};

/* The progress line on stderr: redrawn in place on a terminal, one line per round otherwise. */
struct qemu_cli_progress {
	const char *command;
	int source; /* qemu-send */
	int tty;
	int open; /* a \r line is on the terminal */
	int quiet;
};

/* SIGINT, SIGTERM and SIGHUP cancel the migration instead of killing the process, so that
 * the failure path runs: the guest stays on (or goes back to running on) the source. */
struct qemu_cli_signals {
	pthread_t thread;
	pthread_mutex_t lock;
	sigset_t set;
	rmig_session_t *session; /* cancelled on a signal; under lock */
	volatile sig_atomic_t signo;
	struct qemu_cli_progress *progress;
	int started;
};

/**
 * qemu_cli_parse() - parse the options of qemu-send (source = 1) or qemu-recv (source = 0).
 *
 * Return: 0; 1 after --help; -EINVAL after printing what is wrong.
 */
int qemu_cli_parse(int argc, char **argv, int source, struct qemu_cli_options *o);

/* rmig session parameters from the options (everything the command line can set). */
void qemu_cli_params(const struct qemu_cli_options *o, struct rmig_params *params);
/* After rmig_session_set_params: the opt-out of authentication and the dead-peer deadline. */
int qemu_cli_session_apply(const struct qemu_cli_options *o, rmig_session_t *session);

/* "1.50 GiB" */
const char *qemu_cli_bytes(uint64_t bytes, char *buf, size_t len);

/* Microseconds of CLOCK_MONOTONIC. */
uint64_t qemu_cli_now_us(void);

void qemu_cli_progress_init(struct qemu_cli_progress *p, const char *command, int quiet);
/* Route rmig's log messages to stderr without breaking an open progress line. */
void qemu_cli_log_install(struct qemu_cli_progress *p);
/* The rmig progress callback's body. */
void qemu_cli_progress_event(struct qemu_cli_progress *p, uint32_t event,
			     const struct rmig_stats *st);
/* One line about a step ("QEMU paused the guest after 7 ms"), closing an open progress line. */
void qemu_cli_note(struct qemu_cli_progress *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Block the signals in every thread and wait for them on one of our own. Call before any
 * other thread starts. Return: 0 or -errno. */
int qemu_cli_signals_start(struct qemu_cli_signals *sig, struct qemu_cli_progress *p);
/* The session a signal cancels (NULL before destroying it). */
void qemu_cli_signals_session(struct qemu_cli_signals *sig, rmig_session_t *session);
/* The signal that arrived, 0 when none. */
int qemu_cli_signals_received(const struct qemu_cli_signals *sig);
void qemu_cli_signals_stop(struct qemu_cli_signals *sig);
/* In a child about to exec: the default signal mask again. */
void qemu_cli_signals_child(const struct qemu_cli_signals *sig);

/* The rmig part of the report, as `rmig demo` prints it. */
void qemu_cli_report_rmig(const struct qemu_cli_options *o, const struct rmig_stats *st,
			  int source);
/* The same as JSON members of @report. */
void qemu_cli_json_rmig(json_t *report, const struct qemu_cli_options *o,
			const struct rmig_stats *st);

#endif /* RMIG_QEMU_CLI_H */
