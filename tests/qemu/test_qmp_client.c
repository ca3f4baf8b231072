/* SPDX-License-Identifier: MIT */
/* tests/qemu/test_qmp_client.c - the QMP client (bindings/qemu/qmp.c) against a real QEMU
 * (`-machine none`, no guest: it starts in a fraction of a second) and against peers that break
 * the protocol in one way each. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "bindings/qemu/qmp.h"

#define QMP_TEST_TIMEOUT_MS 5000

static char test_dir[] = "/tmp/rmig-qmp-test.XXXXXX";

static void test_path(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", test_dir, name);
}

/* ---- a real QEMU ---- */

struct qemu_proc {
	pid_t pid;
	char socket[108];
};

static int qemu_available(void)
{
	return system("command -v qemu-system-x86_64 >/dev/null 2>&1") == 0;
}

/* QEMU serves QMP on a socket bound here and put to listen by the child just before it becomes
 * QEMU (so SO_PEERCRED names QEMU's pid); the exec closing a close-on-exec pipe tells this
 * process the socket listens: a client connects at once and its greeting comes when QEMU is up,
 * with no wait for a socket file. */
static void qemu_proc_start(struct qemu_proc *q)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	int fd, ready[2], err = 0;
	char arg[160];

	test_path(q->socket, sizeof(q->socket), "qemu.qmp");
	unlink(q->socket);
	memcpy(addr.sun_path, q->socket, strlen(q->socket) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
	snprintf(arg, sizeof(arg), "socket,id=qmp,fd=%d,server=on,wait=off", fd);
	q->pid = fork();
	assert_true(q->pid >= 0);
	if (q->pid == 0) {
		close(ready[0]);
		/* A test that fails before it stops its QEMU must not leave it holding ctest's
		 * output open. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		/* -S: no RESUME at startup, so each test sees only the events it causes. */
		if (!listen(fd, 4))
			execlp("qemu-system-x86_64", "qemu-system-x86_64", "-S", "-machine", "none",
			       "-nodefaults", "-display", "none", "-chardev", arg, "-mon",
			       "chardev=qmp,mode=control", (char *)NULL);
		err = errno;
		if (write(ready[1], &err, sizeof(err)) < 0)
			_exit(126);
		_exit(127);
	}
	close(ready[1]);
	close(fd);
	/* 0 bytes: the exec happened; an errno: it did not. */
	assert_int_equal(read(ready[0], &err, sizeof(err)), 0);
	close(ready[0]);
}

/* The QMP connection to the QEMU of q; a failure names what qmp_open() said. */
static struct qmp *qemu_proc_open(struct qemu_proc *q, char error[QMP_ERROR_MAX])
{
	struct qmp *qmp = NULL;
	int ret = qmp_open(q->socket, "test QEMU", QMP_TEST_TIMEOUT_MS, &qmp, error);

	if (ret)
		fail_msg("qmp_open: %d (%s): %s", ret, strerror(-ret), error);
	return qmp;
}

static void qemu_proc_stop(struct qemu_proc *q)
{
	if (q->pid > 0) {
		kill(q->pid, SIGTERM);
		waitpid(q->pid, NULL, 0);
	}
	unlink(q->socket);
}

static void test_qmp_greeting_and_command_with_real_qemu(void **state)
{
	char error[QMP_ERROR_MAX];
	struct qemu_proc qemu;
	struct qmp *q;
	json_t *reply = NULL;
	unsigned major, minor, micro;

	(void)state;
	if (!qemu_available())
		skip();
	qemu_proc_start(&qemu);
	q = qemu_proc_open(&qemu, error);
	assert_int_equal(sscanf(qmp_qemu_version(q), "%u.%u.%u", &major, &minor, &micro), 3);
	assert_true(major >= 4);
	assert_int_equal(qmp_peer_pid(q), qemu.pid);
	assert_int_equal(qmp_execute(q, "query-status", NULL, &reply), 0);
	assert_true(json_is_string(json_object_get(reply, "status")));
	assert_true(json_is_boolean(json_object_get(reply, "running")));
	json_decref(reply);
	qmp_close(q);
	qemu_proc_stop(&qemu);
}

static void test_qmp_error_reply_carries_class_and_description(void **state)
{
	char error[QMP_ERROR_MAX];
	struct qemu_proc qemu;
	struct qmp *q;
	json_t *reply = NULL;

	(void)state;
	if (!qemu_available())
		skip();
	qemu_proc_start(&qemu);
	q = qemu_proc_open(&qemu, error);
	assert_int_equal(qmp_execute(q, "no-such-command", NULL, &reply), -EREMOTEIO);
	assert_null(reply);
	assert_string_equal(qmp_error_class(q), "CommandNotFound");
	assert_non_null(strstr(qmp_error(q), "no-such-command"));
	assert_non_null(strstr(qmp_error(q), "test QEMU"));
	/* The connection is still good after an error reply. */
	assert_int_equal(qmp_execute(q, "query-status", NULL, NULL), 0);
	assert_string_equal(qmp_error_class(q), "");
	qmp_close(q);
	qemu_proc_stop(&qemu);
}

/* The oldest queued event, waiting for QEMU to send one when none is queued. */
static json_t *next_event(struct qmp *q)
{
	json_t *event;

	while (!qmp_event_pop(q, &event))
		assert_int_equal(qmp_wait(q, QMP_TEST_TIMEOUT_MS), 0);
	return event;
}

static void test_qmp_events_are_queued_in_order(void **state)
{
	char error[QMP_ERROR_MAX];
	struct qemu_proc qemu;
	struct qmp *q;
	json_t *event;
	uint64_t stop_us, resume_us;

	(void)state;
	if (!qemu_available())
		skip();
	qemu_proc_start(&qemu);
	q = qemu_proc_open(&qemu, error);
	assert_int_equal(qmp_event_pop(q, &event), 0);
	/* QEMU started paused (-S): it runs, then stops. */
	assert_int_equal(qmp_execute(q, "cont", NULL, NULL), 0);
	assert_int_equal(qmp_execute(q, "stop", NULL, NULL), 0);
	/* Events may trail their command's reply: wait for QEMU to send them. */
	event = next_event(q);
	assert_string_equal(json_string_value(json_object_get(event, "event")), "RESUME");
	resume_us = qmp_event_timestamp_us(event);
	json_decref(event);
	event = next_event(q);
	assert_string_equal(json_string_value(json_object_get(event, "event")), "STOP");
	stop_us = qmp_event_timestamp_us(event);
	json_decref(event);
	assert_true(resume_us > 0);
	assert_true(stop_us >= resume_us);
	assert_int_equal(qmp_event_pop(q, &event), 0);
	qmp_close(q);
	qemu_proc_stop(&qemu);
}

static void test_qmp_qemu_exit_reports_connection_reset(void **state)
{
	char error[QMP_ERROR_MAX];
	struct qemu_proc qemu;
	struct qmp *q;
	int ret;

	(void)state;
	if (!qemu_available())
		skip();
	qemu_proc_start(&qemu);
	q = qemu_proc_open(&qemu, error);
	kill(qemu.pid, SIGKILL);
	waitpid(qemu.pid, NULL, 0);
	qemu.pid = 0;
	ret = qmp_execute(q, "query-status", NULL, NULL);
	assert_int_equal(ret, -ECONNRESET);
	assert_non_null(strstr(qmp_error(q), "closed the connection"));
	assert_int_equal(qmp_poll(q), -ECONNRESET);
	qmp_close(q);
	qemu_proc_stop(&qemu);
}

/* ---- sockets nobody or something else serves ---- */

static void test_qmp_missing_socket_says_how_to_start_qemu(void **state)
{
	char error[QMP_ERROR_MAX], path[108];
	struct qmp *q = NULL;

	(void)state;
	test_path(path, sizeof(path), "absent.qmp");
	assert_int_equal(qmp_open(path, "source QEMU", QMP_TEST_TIMEOUT_MS, &q, error), -ENOENT);
	assert_null(q);
	assert_non_null(strstr(error, "source QEMU"));
	assert_non_null(strstr(error, "-qmp unix:"));
}

static void test_qmp_stale_socket_is_refused(void **state)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	char error[QMP_ERROR_MAX];
	struct qmp *q = NULL;
	int fd;

	(void)state;
	test_path(addr.sun_path, sizeof(addr.sun_path), "stale.qmp");
	unlink(addr.sun_path);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	close(fd); /* the file stays, nobody listens */
	assert_int_equal(qmp_open(addr.sun_path, "source QEMU", QMP_TEST_TIMEOUT_MS, &q, error),
			 -ECONNREFUSED);
	assert_non_null(strstr(error, "stale"));
	unlink(addr.sun_path);
}

/* A peer that says `script` (NULL: nothing) once connected; then, when `reply` is set, reads
 * the client's first line and says `reply`; then reads until the client closes, or closes at
 * once when close_after_script is set. */
struct broken_peer {
	int listen_fd;
	int close_after_script;
	const char *script;
	size_t script_len;
	const char *reply;
	pthread_t thread;
	char path[108];
};

static void broken_peer_say(int fd, const char *text, size_t len)
{
	for (size_t done = 0; text && done < len;) {
		ssize_t n = send(fd, text + done, len - done, MSG_NOSIGNAL);

		if (n <= 0)
			break;
		done += (size_t)n;
	}
}

static void *broken_peer_main(void *arg)
{
	struct broken_peer *p = arg;
	char buf[4096];
	int fd = accept(p->listen_fd, NULL, NULL);

	if (fd < 0)
		return NULL;
	broken_peer_say(fd, p->script, p->script_len);
	if (p->reply) {
		char c;

		while (read(fd, &c, 1) == 1 && c != '\n')
			;
		broken_peer_say(fd, p->reply, strlen(p->reply));
	}
	while (!p->close_after_script && read(fd, buf, sizeof(buf)) > 0)
		;
	close(fd);
	return NULL;
}

static void broken_peer_start(struct broken_peer *p, const char *script, size_t len,
			      const char *reply, int close_after_script)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};

	test_path(p->path, sizeof(p->path), "peer.qmp");
	unlink(p->path);
	memcpy(addr.sun_path, p->path, strlen(p->path) + 1);
	p->script = script;
	p->script_len = len;
	p->reply = reply;
	p->close_after_script = close_after_script;
	p->listen_fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(p->listen_fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	assert_int_equal(listen(p->listen_fd, 1), 0);
	assert_int_equal(pthread_create(&p->thread, NULL, broken_peer_main, p), 0);
}

static void broken_peer_stop(struct broken_peer *p)
{
	shutdown(p->listen_fd, SHUT_RDWR);
	pthread_join(p->thread, NULL);
	close(p->listen_fd);
	unlink(p->path);
}

#define GREETING                                                                          \
	"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}, " \
	"\"package\": \"\"}, \"capabilities\": []}}\r\n"

static int broken_peer_open(const char *script, size_t len, int timeout_ms, char *error)
{
	struct broken_peer peer;
	struct qmp *q = NULL;
	int ret;

	broken_peer_start(&peer, script, len, NULL, 0);
	ret = qmp_open(peer.path, "peer", timeout_ms, &q, error);
	qmp_close(q);
	broken_peer_stop(&peer);
	return ret;
}

static void test_qmp_rejects_a_peer_that_is_not_qmp(void **state)
{
	static const char script[] = "SSH-2.0-OpenSSH_9.2\r\n";
	char error[QMP_ERROR_MAX];

	(void)state;
	assert_int_equal(broken_peer_open(script, strlen(script), QMP_TEST_TIMEOUT_MS, error),
			 -EPROTO);
	assert_non_null(strstr(error, "not JSON"));
}

static void test_qmp_rejects_a_greeting_without_version(void **state)
{
	static const char script[] = "{\"QMP\": {\"capabilities\": []}}\r\n";
	char error[QMP_ERROR_MAX];

	(void)state;
	assert_int_equal(broken_peer_open(script, strlen(script), QMP_TEST_TIMEOUT_MS, error),
			 -EPROTO);
	assert_non_null(strstr(error, "greeting"));
}

static void test_qmp_rejects_a_reply_with_another_id(void **state)
{
	static const char script[] = GREETING "{\"return\": {}, \"id\": 999}\r\n";
	char error[QMP_ERROR_MAX];

	(void)state;
	assert_int_equal(broken_peer_open(script, strlen(script), QMP_TEST_TIMEOUT_MS, error),
			 -EPROTO);
	assert_non_null(strstr(error, "not its reply"));
}

static void test_qmp_rejects_duplicate_keys(void **state)
{
	static const char script[] = GREETING "{\"return\": {}, \"id\": 1, \"id\": 1}\r\n";
	char error[QMP_ERROR_MAX];

	(void)state;
	assert_int_equal(broken_peer_open(script, strlen(script), QMP_TEST_TIMEOUT_MS, error),
			 -EPROTO);
}

static void test_qmp_peer_closing_mid_message_is_connection_reset(void **state)
{
	char error[QMP_ERROR_MAX];
	struct broken_peer peer;
	struct qmp *q = NULL;

	(void)state;
	broken_peer_start(&peer, GREETING, strlen(GREETING), "{\"return\": ", 1);
	assert_int_equal(qmp_open(peer.path, "peer", QMP_TEST_TIMEOUT_MS, &q, error), -ECONNRESET);
	assert_non_null(strstr(error, "in the middle of a message"));
	broken_peer_stop(&peer);
}

/* A client that connects while QEMU starts may get an event before the greeting (QEMU 7.2 sent
 * RESUME first under load): it is queued, and the greeting still counts. */
static void test_qmp_event_before_greeting_is_queued(void **state)
{
	static const char script[] =
		"{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"event\": \"RESUME\"}\r\n" GREETING;
	char error[QMP_ERROR_MAX];
	struct broken_peer peer;
	struct qmp *q = NULL;
	json_t *event;

	(void)state;
	broken_peer_start(&peer, script, strlen(script), "{\"return\": {}, \"id\": 1}\r\n", 0);
	assert_int_equal(qmp_open(peer.path, "peer", QMP_TEST_TIMEOUT_MS, &q, error), 0);
	assert_string_equal(qmp_qemu_version(q), "7.2.0");
	assert_int_equal(qmp_event_pop(q, &event), 1);
	assert_string_equal(json_string_value(json_object_get(event, "event")), "RESUME");
	json_decref(event);
	assert_int_equal(qmp_event_pop(q, &event), 0);
	qmp_close(q);
	broken_peer_stop(&peer);
}

static void test_qmp_silent_peer_times_out_naming_one_client_per_socket(void **state)
{
	char error[QMP_ERROR_MAX];

	(void)state;
	assert_int_equal(broken_peer_open(NULL, 0, 300, error), -ETIMEDOUT);
	assert_non_null(strstr(error, "one QMP client"));
}

static void test_qmp_overlong_line_is_refused(void **state)
{
	size_t len = (2u << 20);
	char *script = malloc(len);
	char error[QMP_ERROR_MAX];

	(void)state;
	assert_non_null(script);
	memset(script, ' ', len);
	script[0] = '{';
	assert_int_equal(broken_peer_open(script, len, QMP_TEST_TIMEOUT_MS, error), -EPROTO);
	assert_non_null(strstr(error, "longer than"));
	free(script);
}

static int group_setup(void **state)
{
	(void)state;
	return mkdtemp(test_dir) ? 0 : -1;
}

static int group_teardown(void **state)
{
	(void)state;
	return rmdir(test_dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_qmp_greeting_and_command_with_real_qemu),
		cmocka_unit_test(test_qmp_error_reply_carries_class_and_description),
		cmocka_unit_test(test_qmp_events_are_queued_in_order),
		cmocka_unit_test(test_qmp_qemu_exit_reports_connection_reset),
		cmocka_unit_test(test_qmp_missing_socket_says_how_to_start_qemu),
		cmocka_unit_test(test_qmp_stale_socket_is_refused),
		cmocka_unit_test(test_qmp_rejects_a_peer_that_is_not_qmp),
		cmocka_unit_test(test_qmp_rejects_a_greeting_without_version),
		cmocka_unit_test(test_qmp_rejects_a_reply_with_another_id),
		cmocka_unit_test(test_qmp_rejects_duplicate_keys),
		cmocka_unit_test(test_qmp_peer_closing_mid_message_is_connection_reset),
		cmocka_unit_test(test_qmp_event_before_greeting_is_queued),
		cmocka_unit_test(test_qmp_silent_peer_times_out_naming_one_client_per_socket),
		cmocka_unit_test(test_qmp_overlong_line_is_refused),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
