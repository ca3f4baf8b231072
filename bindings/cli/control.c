/* SPDX-License-Identifier: MIT */
/* bindings/cli/control.c - the control socket of a running `rmig send` / `rmig recv`
 * (--control PATH, a unix socket only its owner may use) and `rmig recover`, which talks to it:
 * what a toolstack needs to steer a post-copy recovery without restarting either end, as QEMU's
 * migrate-recover / migrate -r / migrate_cancel do over QMP. One request line, one answer line:
 *   recover URI   -> "ok" or "error: REASON"   (rmig_session_recover)
 *   cancel        -> "ok"                      (rmig_session_cancel: while recovering, the VM
 *                                                is declared lost)
 *   status        -> "STATUS recoveries=N recovering_ms=N" */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "bindings/cli/cli.h"
#include "bindings/cli/control.h"

#define CONTROL_LINE_MAX 512
#define CONTROL_CLIENT_TIMEOUT_MS 5000

struct cli_control {
	rmig_session_t *session;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int fd;
	int stop_pipe[2];
	pthread_t thread;
};

static int control_address(const char *path, struct sockaddr_un *addr)
{
	memset(addr, 0, sizeof(*addr));
	addr->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(addr->sun_path))
		return -ENAMETOOLONG;
	memcpy(addr->sun_path, path, strlen(path) + 1);
	return 0;
}

/* One line from fd (without its newline) within timeout_ms: its length, or -errno. */
static int control_read_line(int fd, char *buf, size_t len, int timeout_ms)
{
	size_t used = 0;

	while (used + 1 < len) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		ssize_t n;

		if (poll(&pfd, 1, timeout_ms) <= 0)
			return -ETIMEDOUT;
		n = read(fd, buf + used, 1);
		if (n < 0)
			return -errno;
		if (n == 0 || buf[used] == '\n')
			break;
		used++;
	}
	buf[used] = '\0';
	return (int)used;
}

static void control_answer(int fd, const char *text)
{
	size_t len = strlen(text);

	if (write(fd, text, len) != (ssize_t)len || write(fd, "\n", 1) != 1)
		fprintf(stderr, "rmig: control: cannot answer: %s\n", strerror(errno));
}

static void control_serve(struct cli_control *ctl, int fd)
{
	char line[CONTROL_LINE_MAX], answer[CONTROL_LINE_MAX + 64];

	if (control_read_line(fd, line, sizeof(line), CONTROL_CLIENT_TIMEOUT_MS) < 0)
		return;
	if (!strncmp(line, "recover ", 8)) {
		int ret = rmig_session_recover(ctl->session, line + 8);
		char reason[CONTROL_LINE_MAX];

		if (ret) {
			rmig_last_error_copy(ctl->session, reason, sizeof(reason));
			snprintf(answer, sizeof(answer), "error: %s", reason);
		} else {
			snprintf(answer, sizeof(answer), "ok");
			fprintf(stderr, "rmig: control: post-copy recovery pointed at %s\n",
				line + 8);
		}
	} else if (!strcmp(line, "cancel")) {
		rmig_session_cancel(ctl->session);
		snprintf(answer, sizeof(answer), "ok");
		fprintf(stderr, "rmig: control: cancel requested\n");
	} else if (!strcmp(line, "status")) {
		struct rmig_stats st = {.struct_size = sizeof(st)};

		rmig_session_stats(ctl->session, &st);
		snprintf(answer, sizeof(answer), "%s recoveries=%llu recovering_ms=%llu",
			 rmig_status_name(st.status), (unsigned long long)st.recoveries,
			 (unsigned long long)st.recovering_ms);
	} else {
		snprintf(answer, sizeof(answer),
			 "error: unknown request (recover URI, cancel or status)");
	}
	control_answer(fd, answer);
}

static void *control_main(void *arg)
{
	struct cli_control *ctl = arg;

	for (;;) {
		struct pollfd pfd[2] = {{.fd = ctl->fd, .events = POLLIN},
					{.fd = ctl->stop_pipe[0], .events = POLLIN}};
		int client;

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[1].revents)
			break;
		client = accept(ctl->fd, NULL, NULL);
		if (client < 0)
			continue;
		control_serve(ctl, client);
		close(client);
	}
	return NULL;
}

int cli_control_start(const char *command, const char *path, rmig_session_t *session,
		      struct cli_control **ctl_p)
{
	struct sockaddr_un addr;
	struct cli_control *ctl;
	struct stat st;
	int ret;

	ret = control_address(path, &addr);
	if (ret) {
		fprintf(stderr, "rmig %s: --control %s: path too long\n", command, path);
		return ret;
	}
	ctl = calloc(1, sizeof(*ctl));
	if (!ctl)
		return -ENOMEM;
	ctl->session = session;
	snprintf(ctl->path, sizeof(ctl->path), "%s", path);
	ctl->stop_pipe[0] = ctl->stop_pipe[1] = -1;
	/* A socket left by an earlier run that died goes; anything else stays and is refused. */
	if (!lstat(path, &st) && S_ISSOCK(st.st_mode))
		unlink(path);
	ctl->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (ctl->fd < 0 || bind(ctl->fd, (struct sockaddr *)&addr, sizeof(addr)) ||
	    chmod(path, 0600) || listen(ctl->fd, 4) || pipe(ctl->stop_pipe)) {
		ret = -errno;
		fprintf(stderr, "rmig %s: --control %s: %s\n", command, path, strerror(errno));
		goto err_close;
	}
	ret = -pthread_create(&ctl->thread, NULL, control_main, ctl);
	if (ret) {
		fprintf(stderr, "rmig %s: --control: cannot start its thread\n", command);
		goto err_close;
	}
	*ctl_p = ctl;
	return 0;

err_close:
	if (ctl->stop_pipe[0] >= 0) {
		close(ctl->stop_pipe[0]);
		close(ctl->stop_pipe[1]);
	}
	if (ctl->fd >= 0) {
		close(ctl->fd);
		unlink(path);
	}
	free(ctl);
	return ret;
}

void cli_control_stop(struct cli_control *ctl)
{
	if (!ctl)
		return;
	if (write(ctl->stop_pipe[1], "x", 1) != 1)
		fprintf(stderr, "rmig: control: cannot stop its thread\n");
	pthread_join(ctl->thread, NULL);
	close(ctl->stop_pipe[0]);
	close(ctl->stop_pipe[1]);
	close(ctl->fd);
	unlink(ctl->path);
	free(ctl);
}

static void recover_usage(void)
{
	fprintf(stderr,
		"usage: rmig recover --control PATH URI     point a recovering post-copy migration\n"
		"                                           at URI (destination: listen there;\n"
		"                                           source: connect there)\n"
		"       rmig recover --control PATH --cancel  stop waiting: the VM is lost\n"
		"       rmig recover --control PATH --status  status, recoveries, time recovering\n"
		"PATH is the --control socket of the running rmig send or rmig recv.\n");
}

int rmig_cli_recover(int argc, char **argv)
{
	const char *path = NULL, *uri = NULL, *request = NULL;
	char line[CONTROL_LINE_MAX + 16], answer[CONTROL_LINE_MAX + 64];
	struct sockaddr_un addr;
	int fd, ret;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--control") && i + 1 < argc)
			path = argv[++i];
		else if (!strcmp(argv[i], "--cancel"))
			request = "cancel";
		else if (!strcmp(argv[i], "--status"))
			request = "status";
		else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			recover_usage();
			return 0;
		} else if (argv[i][0] != '-' && !uri)
			uri = argv[i];
		else {
			recover_usage();
			return 2;
		}
	}
	if (!path || !!uri == !!request) {
		recover_usage();
		return 2;
	}
	if (uri && strlen(uri) >= CONTROL_LINE_MAX) {
		fprintf(stderr, "rmig recover: uri too long\n");
		return 2;
	}
	snprintf(line, sizeof(line), "%s%s\n", uri ? "recover " : request, uri ? uri : "");
	if (control_address(path, &addr)) {
		fprintf(stderr, "rmig recover: --control %s: path too long\n", path);
		return 2;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr))) {
		fprintf(stderr,
			"rmig recover: %s: %s (is rmig send/recv running with --control?)\n", path,
			strerror(errno));
		if (fd >= 0)
			close(fd);
		return 1;
	}
	ret = write(fd, line, strlen(line)) == (ssize_t)strlen(line)
		      ? control_read_line(fd, answer, sizeof(answer), CONTROL_CLIENT_TIMEOUT_MS)
		      : -errno;
	close(fd);
	if (ret < 0) {
		fprintf(stderr, "rmig recover: no answer from %s: %s\n", path, strerror(-ret));
		return 1;
	}
	printf("%s\n", answer);
	return strncmp(answer, "error", 5) ? 0 : 1;
}
