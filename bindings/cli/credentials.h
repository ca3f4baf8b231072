/* SPDX-License-Identifier: MIT */
/* bindings/cli/credentials.h - what every networked rmig subcommand does the same way: read the
 * shared key (--key-file), refuse to run without one unless --insecure says so (loudly), and
 * apply the dead-peer deadline (--peer-timeout). */
#ifndef RMIG_CLI_CREDENTIALS_H
#define RMIG_CLI_CREDENTIALS_H

#include <stdint.h>

#include "rmig.h"

struct cli_credentials {
	uint8_t key[RMIG_KEY_MAX];
	uint32_t key_len;	  /* 0: no --key-file */
	int insecure;		  /* --insecure */
	uint32_t peer_timeout_ms; /* --peer-timeout, 0: the library's default (10 s) */
	/* --recovery-window (send, recv), 0: the library's default (600 s) */
	uint32_t recovery_window_ms;
};

/* Usage lines for the three options, for each subcommand's help. */
#define CLI_CREDENTIALS_USAGE                                                                       \
	"  --key-file FILE       shared secret (1 to 64 bytes), the same on both hosts; required\n" \
	"                        unless --insecure (or the environment: RMIG_KEY_FILE)\n"           \
	"  --insecure            run without authentication: any host that reaches the port\n"      \
	"                        can write (or read) the guest's RAM; for tests on one host\n"      \
	"  --peer-timeout SECS   a silent peer is dead after this long, every phase (default 10)\n"

/* --key-file PATH: read the key. 0, or -errno with the reason printed. */
int cli_key_file_read(const char *command, const char *path, struct cli_credentials *c);
/* --peer-timeout TEXT (seconds, fractions allowed). 0, or -EINVAL with the reason printed. */
int cli_peer_timeout_parse(const char *command, const char *text, struct cli_credentials *c);
/* --recovery-window TEXT (seconds, 1 to 86400). 0, or -EINVAL with the reason printed. */
int cli_recovery_window_parse(const char *command, const char *text, struct cli_credentials *c);
/* Before the first networked step: RMIG_KEY_FILE when no --key-file was given; refuse (-EPERM,
 * reason printed) when there is neither a key nor --insecure; warn on stderr with --insecure.
 * 0 or -errno. */
int cli_credentials_check(const char *command, struct cli_credentials *c);
/* Apply c to the session (key, opt-out, deadline, recovery window when given): 0 or -errno
 * with the reason printed. */
int cli_credentials_apply(const char *command, rmig_session_t *s, const struct cli_credentials *c);

#endif /* RMIG_CLI_CREDENTIALS_H */
