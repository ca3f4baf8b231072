/* SPDX-License-Identifier: MIT */
/* bindings/cli/options.c - the shared option table and value parsers of the rmig commands
 * (options.h). Only the public ABI (rmig.h). */
#include "bindings/cli/options.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* enum rmig_dirty_source, by name. */
static const char *const cli_dirty_names[] = {"auto", "hypervisor", "uffd-async", "uffd-sync",
					      "hash"};
#define CLI_NDIRTY (sizeof(cli_dirty_names) / sizeof(cli_dirty_names[0]))

/* The shared options, each with the CLI_TAKE_* bit that selects it. */
static const struct {
	struct option option;
	uint32_t take;
} cli_shared_options[] = {
	{{"method", required_argument, NULL, CLI_OPT_METHOD}, CLI_TAKE_METHOD},
	{{"policy", required_argument, NULL, CLI_OPT_POLICY}, CLI_TAKE_POLICY},
	{{"downtime-ms", required_argument, NULL, CLI_OPT_DOWNTIME}, CLI_TAKE_DOWNTIME},
	{{"max-rounds", required_argument, NULL, CLI_OPT_MAX_ROUNDS}, CLI_TAKE_MAX_ROUNDS},
	{{"bandwidth", required_argument, NULL, CLI_OPT_BANDWIDTH}, CLI_TAKE_BANDWIDTH},
	{{"verify", required_argument, NULL, CLI_OPT_VERIFY}, CLI_TAKE_VERIFY},
	{{"dirty", required_argument, NULL, CLI_OPT_DIRTY}, CLI_TAKE_DIRTY},
	{{"streams", required_argument, NULL, CLI_OPT_STREAMS}, CLI_TAKE_STREAMS},
	{{"timeout-ms", required_argument, NULL, CLI_OPT_TIMEOUT}, CLI_TAKE_TIMEOUT},
	{{"key-file", required_argument, NULL, CLI_OPT_KEY_FILE}, CLI_TAKE_KEY_FILE},
	{{"json", no_argument, NULL, CLI_OPT_JSON}, CLI_TAKE_JSON},
	{{"help", no_argument, NULL, CLI_OPT_HELP}, CLI_TAKE_HELP},
	{{"tls", required_argument, NULL, CLI_OPT_TLS}, CLI_TAKE_TLS},
	{{"tls-creds", required_argument, NULL, CLI_OPT_TLS_CREDS}, CLI_TAKE_TLS},
	{{"tls-ca", required_argument, NULL, CLI_OPT_TLS_CA}, CLI_TAKE_TLS},
	{{"tls-cert", required_argument, NULL, CLI_OPT_TLS_CERT}, CLI_TAKE_TLS},
	{{"tls-key", required_argument, NULL, CLI_OPT_TLS_KEY}, CLI_TAKE_TLS},
	{{"tls-peer-name", required_argument, NULL, CLI_OPT_TLS_PEER_NAME}, CLI_TAKE_TLS},
	{{"recovery-window", required_argument, NULL, CLI_OPT_RECOVERY_WINDOW}, CLI_TAKE_RECOVERY},
	{{"control", required_argument, NULL, CLI_OPT_CONTROL}, CLI_TAKE_RECOVERY},
};

/* A shared option's outcome: 1 when its value parsed, else the parser's -errno. */
static int cli_handled(int ret)
{
	return ret ? ret : 1;
}

void cli_migration_defaults(struct cli_migration *m)
{
	*m = (struct cli_migration){
		.method = RMIG_METHOD_PRECOPY,
		.policy = RMIG_POLICY_QEMU,
		.downtime_ms = 300,
		.max_rounds = 30,
		.verify = RMIG_VERIFY_ALL,
		.dirty_source = RMIG_DIRTY_AUTO,
		.streams = 1,
		.timeout_ms = 30000,
	};
}

int cli_options_table(const struct option *own, uint32_t take, struct option *table,
		      size_t table_len)
{
	size_t n = 0;

	for (; own && own->name; own++) {
		if (n + 1 >= table_len)
			return -ENOSPC;
		table[n++] = *own;
	}
	for (size_t i = 0; i < sizeof(cli_shared_options) / sizeof(cli_shared_options[0]); i++) {
		if (!(take & cli_shared_options[i].take))
			continue;
		if (n + 1 >= table_len)
			return -ENOSPC;
		table[n++] = cli_shared_options[i].option;
	}
	table[n] = (struct option){NULL, 0, NULL, 0};
	return 0;
}

int cli_migration_option(const char *command, int id, const char *arg, struct cli_migration *m)
{
	uint32_t i;

	switch (id) {
	case CLI_OPT_METHOD:
		for (i = RMIG_METHOD_PRECOPY; i <= RMIG_METHOD_AUTO; i++) {
			if (!strcmp(arg, rmig_method_name(i)))
				break;
		}
		if (i > RMIG_METHOD_AUTO) {
			fprintf(stderr,
				"rmig %s: --method precopy, predict, tsmc, postcopy, hybrid or "
				"auto\n",
				command);
			return -EINVAL;
		}
		m->method = i;
		return 1;
	case CLI_OPT_POLICY:
		if (!strcmp(arg, "qemu")) {
			m->policy = RMIG_POLICY_QEMU;
		} else if (!strcmp(arg, "xen")) {
			m->policy = RMIG_POLICY_XEN;
		} else {
			fprintf(stderr, "rmig %s: --policy qemu or xen\n", command);
			return -EINVAL;
		}
		return 1;
	case CLI_OPT_DOWNTIME:
		return cli_handled(
			cli_parse_u32(command, "--downtime-ms", arg, 1, &m->downtime_ms));
	case CLI_OPT_MAX_ROUNDS:
		return cli_handled(cli_parse_u32(command, "--max-rounds", arg, 1, &m->max_rounds));
	case CLI_OPT_BANDWIDTH:
		if (cli_parse_size(arg, &m->bandwidth)) {
			fprintf(stderr, "rmig %s: --bandwidth %s: bytes per second\n", command,
				arg);
			return -EINVAL;
		}
		return 1;
	case CLI_OPT_VERIFY:
		if (!strcmp(arg, "all")) {
			m->verify = RMIG_VERIFY_ALL;
		} else if (!strcmp(arg, "sample")) {
			m->verify = RMIG_VERIFY_SAMPLE;
		} else if (!strcmp(arg, "none")) {
			m->verify = RMIG_VERIFY_NONE;
		} else {
			fprintf(stderr, "rmig %s: --verify all, sample or none\n", command);
			return -EINVAL;
		}
		return 1;
	case CLI_OPT_DIRTY:
		for (i = 0; i < CLI_NDIRTY; i++) {
			if (!strcmp(arg, cli_dirty_names[i]))
				break;
		}
		if (i == CLI_NDIRTY) {
			fprintf(stderr,
				"rmig %s: --dirty auto, hypervisor, uffd-async, uffd-sync or hash\n",
				command);
			return -EINVAL;
		}
		m->dirty_source = i;
		return 1;
	case CLI_OPT_STREAMS:
		return cli_handled(cli_parse_u32(command, "--streams", arg, 1, &m->streams));
	case CLI_OPT_TIMEOUT:
		return cli_handled(cli_parse_u32(command, "--timeout-ms", arg, 1, &m->timeout_ms));
	case CLI_OPT_KEY_FILE:
		return cli_handled(cli_read_key_file(command, arg, m->key, &m->key_len));
	case CLI_OPT_JSON:
		m->json = 1;
		return 1;
	case CLI_OPT_HELP:
		m->help = 1;
		return 1;
	case CLI_OPT_TLS:
	case CLI_OPT_TLS_CREDS:
	case CLI_OPT_TLS_CA:
	case CLI_OPT_TLS_CERT:
	case CLI_OPT_TLS_KEY:
	case CLI_OPT_TLS_PEER_NAME:
		return cli_handled(cli_tls_option(command, id - CLI_OPT_TLS, arg, &m->tls));
	case CLI_OPT_RECOVERY_WINDOW: {
		struct cli_credentials c = {0};
		int ret = cli_recovery_window_parse(command, arg, &c);

		if (!ret)
			m->recovery_window_ms = c.recovery_window_ms;
		return cli_handled(ret);
	}
	case CLI_OPT_CONTROL:
		if (!*arg) {
			fprintf(stderr, "rmig %s: --control: a path for the unix socket\n",
				command);
			return -EINVAL;
		}
		m->control = arg;
		return 1;
	default:
		return 0;
	}
}

void cli_migration_params(const struct cli_migration *m, struct rmig_params *params)
{
	*params = (struct rmig_params){
		.field_mask = RMIG_PARAM_METHOD | RMIG_PARAM_POLICY | RMIG_PARAM_DOWNTIME_MS |
			      RMIG_PARAM_MAX_ROUNDS | RMIG_PARAM_BANDWIDTH_LIMIT |
			      RMIG_PARAM_VERIFY | RMIG_PARAM_DIRTY_SOURCE | RMIG_PARAM_STREAMS |
			      RMIG_PARAM_TIMEOUT_MS,
		.method = m->method,
		.policy = m->policy,
		.downtime_ms = m->downtime_ms,
		.max_rounds = m->max_rounds,
		.bandwidth_limit = m->bandwidth,
		.verify = m->verify,
		.dirty_source = m->dirty_source,
		.streams = m->streams,
		.timeout_ms = m->timeout_ms,
	};
	if (m->key_len) {
		params->field_mask |= RMIG_PARAM_KEY;
		params->key = m->key;
		params->key_len = m->key_len;
	}
}

const char *cli_dirty_name(uint32_t dirty_source)
{
	return dirty_source < CLI_NDIRTY ? cli_dirty_names[dirty_source] : "?";
}

int cli_read_key_file(const char *command, const char *path, uint8_t *key, uint32_t *key_len_p)
{
	uint8_t buf[RMIG_KEY_MAX + 1]; /* one byte more tells a key that is too long */
	ssize_t n;
	int fd, err;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err = errno;
		fprintf(stderr, "rmig %s: --key-file %s: %s\n", command, path, strerror(err));
		return -err;
	}
	n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n < 1 || n > (ssize_t)RMIG_KEY_MAX) {
		fprintf(stderr, "rmig %s: --key-file %s: a key has 1 to %u bytes\n", command, path,
			RMIG_KEY_MAX);
		return -EINVAL;
	}
	memcpy(key, buf, (size_t)n);
	*key_len_p = (uint32_t)n;
	return 0;
}
