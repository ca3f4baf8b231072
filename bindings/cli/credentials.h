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
	int x509;		  /* --tls x509: the certificates are a credential without a key */
	/* --recovery-window (send, recv), 0: the library's default (600 s) */
	uint32_t recovery_window_ms;
};

/* Usage lines for the three options, for each subcommand's help. */
#define CLI_CREDENTIALS_USAGE                                                                       \
	"  --key-file FILE       shared secret (1 to 64 bytes), the same on both hosts; required\n" \
	"                        unless --tls x509 or --insecure (or the environment:\n"            \
	"                        RMIG_KEY_FILE)\n"                                                  \
	"  --insecure            run without authentication: any host that reaches the port\n"      \
	"                        can write (or read) the guest's RAM; for tests on one host\n"      \
	"  --peer-timeout SECS   a silent peer is dead after this long, every phase (default 10)\n"

/* TLS on tcp (--tls and the x509 credentials), applied with rmig_session_set_tls(). */
struct cli_tls {
	uint32_t mode; /* enum rmig_tls_mode; RMIG_TLS_AUTO when --tls was not given */
	const char *creds_dir, *ca_file, *cert_file, *key_file, *peer_name; /* argv's */
};

/* Usage lines for the TLS options, for each subcommand's help. */
#define CLI_TLS_USAGE                                                                                \
	"  --tls none|psk|x509   TLS 1.3 on tcp (default: psk, keyed by --key-file; none without\n"  \
	"                        a key); the same on both hosts. rdma is not TLS'd\n"                \
	"  --tls-creds DIR       x509: ca-cert.pem, server-cert.pem, server-key.pem (recv),\n"       \
	"                        client-cert.pem, client-key.pem (send), as QEMU's tls-creds-x509\n" \
	"  --tls-ca FILE, --tls-cert FILE, --tls-key FILE\n"                                         \
	"                        x509: explicit files instead of (or over) --tls-creds'\n"           \
	"  --tls-peer-name NAME  x509, sending side: the name the receiver's certificate must\n"     \
	"                        carry (default: the host of --uri; \"\" checks only the CA)\n"

/* One TLS option (which: its offset from CLI_OPT_TLS in options.h's order: tls, creds, ca,
 * cert, key, peer-name). 0, or -EINVAL with the reason printed. */
int cli_tls_option(const char *command, int which, const char *arg, struct cli_tls *t);
/* After parsing: credentials without --tls mean x509; x509 needs them; psk and none take none.
 * 0, or -EINVAL with the reason printed. */
int cli_tls_check(const char *command, struct cli_tls *t);
/* rmig_session_set_tls(): 0 or -errno with the reason printed. */
int cli_tls_apply(const char *command, rmig_session_t *s, const struct cli_tls *t);
/* "psk", "x509", "none" or "psk (default)"... for reports: what t and a key of key_len bytes
 * make of a tcp connection. */
const char *cli_tls_name(const struct cli_tls *t, uint32_t key_len);

/* --key-file PATH: read the key. 0, or -errno with the reason printed. */
int cli_key_file_read(const char *command, const char *path, struct cli_credentials *c);
/* --peer-timeout TEXT (seconds, fractions allowed). 0, or -EINVAL with the reason printed. */
int cli_peer_timeout_parse(const char *command, const char *text, struct cli_credentials *c);
/* --recovery-window TEXT (seconds, 1 to 86400). 0, or -EINVAL with the reason printed. */
int cli_recovery_window_parse(const char *command, const char *text, struct cli_credentials *c);
/* Before the first networked step: RMIG_KEY_FILE when no --key-file was given; refuse (-EPERM,
 * reason printed) when there is neither a key, nor x509 certificates, nor --insecure; warn on stderr with --insecure.
 * 0 or -errno. */
int cli_credentials_check(const char *command, struct cli_credentials *c);
/* Apply c to the session (key, opt-out, deadline, recovery window when given): 0 or -errno
 * with the reason printed. */
int cli_credentials_apply(const char *command, rmig_session_t *s, const struct cli_credentials *c);

#endif /* RMIG_CLI_CREDENTIALS_H */
