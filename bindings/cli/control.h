/* SPDX-License-Identifier: MIT */
/* bindings/cli/control.h - the control socket of a running rmig send / rmig recv (--control),
 * which `rmig recover` talks to (bindings/cli/control.c). */
#ifndef RMIG_CLI_CONTROL_H
#define RMIG_CLI_CONTROL_H

#include "rmig.h"

struct cli_control;

/* Serve path (a unix socket, mode 0600) for session on a thread of its own. 0, or -errno with
 * the reason printed. */
int cli_control_start(const char *command, const char *path, rmig_session_t *session,
		      struct cli_control **ctl_p);
/* Stop serving and remove the socket. NULL-safe. */
void cli_control_stop(struct cli_control *ctl);

#endif /* RMIG_CLI_CONTROL_H */
