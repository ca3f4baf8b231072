/* SPDX-License-Identifier: MIT */
/* bindings/cli/main.c - the rmig command: a table of subcommands (demo, send, recv, plan,
 * qemu-send, qemu-recv, version, help). Each subcommand lives in its own file and declares
 * itself in cli.h. */
#include <stdio.h>
#include <string.h>

#include "bindings/cli/cli.h"
#include "rmig.h"

struct cli_command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
};

static int cli_version(int argc, char **argv);
static int cli_help(int argc, char **argv);

static const struct cli_command cli_commands[] = {
	{"demo", rmig_cli_demo,
	 "live-migrate an in-process guest between two sessions on this machine"},
	{"send", rmig_cli_send, "migrate a demo guest to `rmig recv` on another host"},
	{"recv", rmig_cli_recv, "receive a demo guest from `rmig send`"},
	{"recover", rmig_cli_recover,
	 "point a recovering post-copy migration at a new path, or cancel it (--control)"},
	{"plan", rmig_cli_plan,
	 "which hosts, VMs, destinations and methods to migrate in a cluster (docs/planner.md)"},
	{"qemu-send", rmig_cli_qemu_send,
	 "live-migrate an unmodified QEMU's guest to `rmig qemu-recv` (docs/qemu.md)"},
	{"qemu-recv", rmig_cli_qemu_recv, "receive a QEMU guest from `rmig qemu-send`"},
	{"xen-send", rmig_cli_xen_send,
	 "carry `xl migrate`'s stream to `rmig xen-recv` (docs/xen.md)"},
	{"xen-recv", rmig_cli_xen_recv, "receive a Xen domain from `rmig xen-send`"},
	{"version", cli_version, "print the library version"},
	{"help", cli_help, "this list"},
};

static int cli_version(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	printf("rmig %s\n", rmig_version());
	return 0;
}

static int cli_help(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	printf("usage: rmig <command> [options]   (rmig <command> --help for its options)\n\n");
	for (size_t i = 0; i < sizeof(cli_commands) / sizeof(cli_commands[0]); i++)
		printf("  %-10s %s\n", cli_commands[i].name, cli_commands[i].summary);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		cli_help(0, NULL);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))
		return cli_help(0, NULL);
	if (!strcmp(argv[1], "--version"))
		return cli_version(0, NULL);
	for (size_t i = 0; i < sizeof(cli_commands) / sizeof(cli_commands[0]); i++) {
		if (!strcmp(argv[1], cli_commands[i].name))
			return cli_commands[i].run(argc - 1, argv + 1);
	}
	fprintf(stderr, "rmig: unknown command '%s' (rmig help lists them)\n", argv[1]);
	return 2;
}
