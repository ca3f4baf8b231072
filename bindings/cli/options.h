/* SPDX-License-Identifier: MIT */
/* bindings/cli/options.h - the options every migrating command shares (rmig demo/send/recv,
 * qemu-send/qemu-recv, xen-send/xen-recv) in one table, parsed by one function, and the value
 * parsers the commands and the benchmarks use (sizes, counts, byte formatting). A command says
 * which shared options it takes (CLI_TAKE_*), appends its own to the table it hands getopt,
 * and passes every option id it does not know itself to cli_migration_option(). A new shared
 * option (a security flag, say) is one row of the table, one CLI_TAKE_* bit and one case. */
#ifndef RMIG_CLI_OPTIONS_H
#define RMIG_CLI_OPTIONS_H

#include <getopt.h>
#include <stddef.h>
#include <stdint.h>

#include "bindings/cli/credentials.h"
#include "rmig.h"

/* getopt ids of the shared options; a command's own ids stay below CLI_OPT_FIRST. */
enum cli_option_id {
	CLI_OPT_FIRST = 0x1000,
	CLI_OPT_METHOD = CLI_OPT_FIRST,
	CLI_OPT_POLICY,
	CLI_OPT_DOWNTIME,
	CLI_OPT_MAX_ROUNDS,
	CLI_OPT_BANDWIDTH,
	CLI_OPT_VERIFY,
	CLI_OPT_DIRTY,
	CLI_OPT_STREAMS,
	CLI_OPT_TIMEOUT,
	CLI_OPT_KEY_FILE,
	CLI_OPT_JSON,
	CLI_OPT_HELP,
	CLI_OPT_TLS,
	CLI_OPT_TLS_CREDS,
	CLI_OPT_TLS_CA,
	CLI_OPT_TLS_CERT,
	CLI_OPT_TLS_KEY,
	CLI_OPT_TLS_PEER_NAME,
	CLI_OPT_RECOVERY_WINDOW,
	CLI_OPT_CONTROL,
};

/* Which shared options a command takes. */
#define CLI_TAKE_METHOD (1u << 0)     /* --method NAME */
#define CLI_TAKE_POLICY (1u << 1)     /* --policy qemu|xen */
#define CLI_TAKE_DOWNTIME (1u << 2)   /* --downtime-ms N */
#define CLI_TAKE_MAX_ROUNDS (1u << 3) /* --max-rounds N */
#define CLI_TAKE_BANDWIDTH (1u << 4)  /* --bandwidth RATE */
#define CLI_TAKE_VERIFY (1u << 5)     /* --verify all|sample|none */
#define CLI_TAKE_DIRTY (1u << 6)      /* --dirty KIND */
#define CLI_TAKE_STREAMS (1u << 7)    /* --streams N */
#define CLI_TAKE_TIMEOUT (1u << 8)    /* --timeout-ms N */
#define CLI_TAKE_KEY_FILE (1u << 9)   /* --key-file FILE */
#define CLI_TAKE_JSON (1u << 10)      /* --json */
#define CLI_TAKE_HELP (1u << 11)      /* --help */
/* --tls, --tls-creds, --tls-ca, --tls-cert, --tls-key, --tls-peer-name (credentials.h) */
#define CLI_TAKE_TLS (1u << 12)
/* --recovery-window SECS, --control PATH: commands whose sessions may run the post-copy family
 * (post-copy recovery, docs/reliability.md) */
#define CLI_TAKE_RECOVERY (1u << 13)
/* What a source-side migration command takes. */
#define CLI_TAKE_TUNING                                                                \
	(CLI_TAKE_METHOD | CLI_TAKE_POLICY | CLI_TAKE_DOWNTIME | CLI_TAKE_MAX_ROUNDS | \
	 CLI_TAKE_BANDWIDTH | CLI_TAKE_VERIFY | CLI_TAKE_DIRTY)

/* Longest table cli_options_table() builds, terminator included. */
#define CLI_OPTIONS_MAX 48

/* The shared options' values; cli_migration_defaults() gives the ABI's defaults. */
struct cli_migration {
	uint32_t method;
	uint32_t policy;
	uint32_t downtime_ms;
	uint32_t max_rounds;
	uint32_t verify;
	uint32_t dirty_source;
	uint32_t streams;
	uint32_t timeout_ms;
	uint64_t bandwidth;
	uint8_t key[RMIG_KEY_MAX];
	uint32_t key_len;
	int json;
	int help; /* --help was given: print the usage, exit 0 */
	struct cli_tls tls;
	uint32_t recovery_window_ms; /* --recovery-window; 0: the library's default (600 s) */
	const char *control;	     /* --control PATH (argv's), for `rmig recover`; NULL: none */
};

/* Usage lines for CLI_TAKE_RECOVERY, for each subcommand's help. */
#define CLI_RECOVERY_USAGE                                                                     \
	"  --recovery-window SECS  post-copy family: after the resume, how long to wait for\n" \
	"                        a new connection once the peer is lost before the VM is\n"    \
	"                        lost (default 600; see docs/reliability.md)\n"                \
	"  --control PATH        a unix socket that `rmig recover` talks to (point a\n"        \
	"                        recovering migration at a new path, or cancel it)\n"

void cli_migration_defaults(struct cli_migration *m);

/**
 * cli_options_table() - the getopt_long() table of a command: its own options @own
 * (terminated by a zero row, may be NULL) followed by the shared ones in @take.
 *
 * Return: 0, or -ENOSPC when more than CLI_OPTIONS_MAX - 1 rows would be needed.
 */
int cli_options_table(const struct option *own, uint32_t take, struct option *table,
		      size_t table_len);

/**
 * cli_migration_option() - parse one shared option.
 * @command: "demo", "qemu-send", ... for messages.
 * @id: what getopt_long() returned.
 *
 * Return: 1 when @id is a shared option and its value is good (stored in @m); 0 when @id is
 * not a shared option; -EINVAL after printing to stderr what is wrong with the value.
 */
int cli_migration_option(const char *command, int id, const char *arg, struct cli_migration *m);

/* The rmig session parameters the shared options set (RMIG_PARAM_KEY only with a key). */
void cli_migration_params(const struct cli_migration *m, struct rmig_params *params);

/* Name of a dirty source (enum rmig_dirty_source), "?" beyond the known ones. */
const char *cli_dirty_name(uint32_t dirty_source);

/* "1G", "512MiB", "4096", "1.5k": K, M, G, T (powers of 1024), optional "i" and "B".
 * 0 or -EINVAL. */
int cli_parse_size(const char *text, uint64_t *value_p);

/* A whole number >= @min that fits 32 bits; -EINVAL after "rmig COMMAND: OPTION TEXT: ...". */
int cli_parse_u32(const char *command, const char *option, const char *text, uint32_t min,
		  uint32_t *value_p);

/* "1.50 GiB", "512 B" into @buf; returns @buf. */
const char *cli_format_bytes(uint64_t bytes, char *buf, size_t len);

/* Read a shared secret (1 to RMIG_KEY_MAX bytes) from @path; 0 or -errno after saying why. */
int cli_read_key_file(const char *command, const char *path, uint8_t *key, uint32_t *key_len_p);

#endif /* RMIG_CLI_OPTIONS_H */
