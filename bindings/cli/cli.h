/* SPDX-License-Identifier: MIT */
/* bindings/cli/cli.h - the subcommands of the rmig command. Each takes the arguments after its
 * name (argv[0] is the subcommand) and returns the process exit status. */
#ifndef RMIG_CLI_H
#define RMIG_CLI_H

int rmig_cli_demo(int argc, char **argv);
int rmig_cli_send(int argc, char **argv);
int rmig_cli_recv(int argc, char **argv);
int rmig_cli_recover(int argc, char **argv);   /* bindings/cli/control.c */
int rmig_cli_plan(int argc, char **argv);      /* bindings/cli/plan.c */
int rmig_cli_qemu_send(int argc, char **argv); /* bindings/qemu/qemu_send.c */
int rmig_cli_qemu_recv(int argc, char **argv); /* bindings/qemu/qemu_recv.c */
int rmig_cli_xen_send(int argc, char **argv);  /* bindings/xen/xen_send.c */
int rmig_cli_xen_recv(int argc, char **argv);  /* bindings/xen/xen_recv.c */

#endif /* RMIG_CLI_H */
