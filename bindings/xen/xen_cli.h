/* SPDX-License-Identifier: MIT */
/* bindings/xen/xen_cli.h - what `rmig xen-send` and `rmig xen-recv` share: options, the rmig
 * session that carries Xen's stream, exact reads and writes on xl's pipes, the report. */
#ifndef RMIG_XEN_CLI_H
#define RMIG_XEN_CLI_H

#include <stddef.h>
#include <stdint.h>

#include "bindings/cli/credentials.h"
#include "rmig.h"

struct xen_cli_options {
	const char *command; /* "xen-send" or "xen-recv" */
	const char *uri;     /* send: where xen-recv listens; recv: where to listen */
	const char *xl;	     /* recv: the xl program (default "xl") */
	uint8_t key[RMIG_KEY_MAX];
	uint32_t key_len;
	int insecure;		  /* --insecure: no key, on purpose */
	uint32_t peer_timeout_ms; /* --peer-timeout; 0: the library's default */
	uint32_t timeout_ms;
	struct cli_tls tls; /* --tls and its credentials */
};

/* Errno the destination answers resume with when xl could not start the domain there and
 * destroyed its copy: the source may resume the domain (anything else after the resume
 * request leaves the outcome unknown). */
#define XEN_CLI_DESTINATION_DISCARDED EREMOTEIO

/**
 * xen_cli_parse() - parse xen-send's (source = 1) or xen-recv's options.
 *
 * Return: 0; 1 after --help; -EINVAL after printing what is wrong.
 */
int xen_cli_parse(int argc, char **argv, int source, struct xen_cli_options *o);

/* The stream's session: created, parameters set and the one-page region rmig requires added
 * (the guest's RAM crosses inside Xen's stream). Returns 0 or -errno, having said why. */
int xen_cli_session(const struct xen_cli_options *o, uint32_t role,
		    const struct rmig_callbacks *callbacks, void *opaque,
		    rmig_session_t **session_p);

/* Grow the pipe @fd to 1 MiB where the kernel allows it: every wakeup and copy costs, and xl's
 * stream comes in batches of up to 4 MiB of page data. Best effort. */
void xen_cli_pipe_grow(int fd);

/* All of @len bytes to / from @fd; 0 or -errno (-EPIPE at end of file). */
int xen_cli_write_all(int fd, const void *buf, size_t len);
int xen_cli_read_exact(int fd, void *buf, size_t len);

/* Read @len bytes from @fd and check they are @message; 0, -EPROTO or -errno. */
int xen_cli_expect(int fd, const char *message, size_t len);

/* "rmig xen-send: " + message, on stderr (stdout may be xl's pipe). */
void xen_cli_say(const struct xen_cli_options *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

struct xen_stream;

/* The report on stderr: Xen's stream (its length and the XXH64 of the bytes @stream walked:
 * the two ends must print the same), bytes on the wire, times. */
void xen_cli_report(const struct xen_cli_options *o, rmig_session_t *session,
		    const struct xen_stream *stream);

/* Depth 3: a session with @tuning's method, stop rule and verification (the options' key,
 * TLS and timeouts added) and no region: the caller adds the guest's RAM. 0 or -errno, having
 * said why. Destroy it with rmig_session_destroy(). */
int xen_cli_session_ram(const struct xen_cli_options *o, uint32_t role,
			const struct rmig_params *tuning, const struct rmig_callbacks *callbacks,
			void *opaque, rmig_session_t **session_p);

/* Page the placeholder region occupies, freed with the session. */
void xen_cli_session_destroy(rmig_session_t *session);

#endif /* RMIG_XEN_CLI_H */
