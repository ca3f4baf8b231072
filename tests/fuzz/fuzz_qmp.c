/* SPDX-License-Identifier: MIT */
/* tests/fuzz/fuzz_qmp.c - arbitrary bytes as everything QEMU says to rmig's QMP client
 * (bindings/qemu/qmp.c): the greeting, the replies and the events in between. qmp.c has no
 * parse function of its own to call (its reader is static and reads a socket), so the input
 * is served on a real unix socket, written in full and then shut, and the client talks as
 * rmig does: qmp_open() (greeting, qmp_capabilities as id 1), query-status (id 2), a poll for
 * events, query-migrate (id 3), then every queued event is popped.
 * The client must finish (the peer's end of file ends every wait), fail with a documented code
 * and a reason, and hand out only events of the shape it promises. */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>

#include "fuzz.h"
#include "bindings/qemu/qmp.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);

/* The whole input sits in the socket's buffer before the client reads past the greeting, so
 * what the client sees does not depend on scheduling; longer inputs are cut. */
#define FUZZ_QMP_INPUT_MAX (64u * 1024u)
/* Never reached: every input ends with the peer's end of file. */
#define FUZZ_QMP_TIMEOUT_MS 20000

static char socket_dir[64];
static char socket_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
static int listen_fd = -1;

/* QEMU's side lives in one thread for the whole run (a thread per input would cost more than
 * the conversation): the harness posts an input to `posted`, the thread serves it on the next
 * connection and posts `served` once all of it is written and its sending half shut. */
static struct {
	const uint8_t *data;
	size_t size;
	int fd; /* the connection's QEMU end, closed by the harness */
	sem_t posted, served;
} qemu;

static void fuzz_cleanup(void)
{
	if (listen_fd >= 0)
		close(listen_fd);
	unlink(socket_path);
	rmdir(socket_dir);
}

static void *fuzz_qemu_run(void *arg)
{
	(void)arg;
	for (;;) {
		const uint8_t *p;
		size_t left;

		while (sem_wait(&qemu.posted))
			FUZZ_CHECK(errno == EINTR);
		p = qemu.data;
		left = qemu.size;
		do
			qemu.fd = accept(listen_fd, NULL, NULL);
		while (qemu.fd < 0 && errno == EINTR);
		FUZZ_CHECK(qemu.fd >= 0);
		while (left) {
			ssize_t n = send(qemu.fd, p, left, MSG_NOSIGNAL);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break; /* the client gave up already: fine */
			p += n;
			left -= (size_t)n;
		}
		/* The socket stays open for the client's commands until the client is done. */
		shutdown(qemu.fd, SHUT_WR);
		FUZZ_CHECK(sem_post(&qemu.served) == 0);
	}
	return NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	pthread_t thread;

	(void)argc;
	(void)argv;
	signal(SIGPIPE, SIG_IGN);
	snprintf(socket_dir, sizeof(socket_dir), "/tmp/rmig-fuzz-qmp.XXXXXX");
	FUZZ_CHECK(mkdtemp(socket_dir));
	snprintf(socket_path, sizeof(socket_path), "%s/qmp.sock", socket_dir);
	memcpy(addr.sun_path, socket_path, sizeof(addr.sun_path));
	listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	FUZZ_CHECK(listen_fd >= 0);
	FUZZ_CHECK(bind(listen_fd, (struct sockaddr *)&addr, sizeof(addr)) == 0);
	FUZZ_CHECK(listen(listen_fd, 4) == 0);
	atexit(fuzz_cleanup);
	FUZZ_CHECK(sem_init(&qemu.posted, 0, 0) == 0 && sem_init(&qemu.served, 0, 0) == 0);
	FUZZ_CHECK(pthread_create(&thread, NULL, fuzz_qemu_run, NULL) == 0);
	return 0;
}

/* A failed call says why, with one of the codes qmp.h documents for it. */
static void fuzz_check_failure(int ret, const char *error)
{
	FUZZ_CHECK(ret == -EPROTO || ret == -ECONNRESET || ret == -EREMOTEIO);
	FUZZ_CHECK(error[0] != '\0');
}

static void fuzz_check_event(json_t *event)
{
	json_t *data = json_object_get(event, "data");

	FUZZ_CHECK(json_is_object(event));
	FUZZ_CHECK(json_is_string(json_object_get(event, "event")));
	FUZZ_CHECK(!data || json_is_object(data));
	(void)qmp_event_timestamp_us(event);
	json_decref(event);
}

static void fuzz_conversation(struct qmp *q)
{
	json_t *value = NULL, *event;
	int ret;

	FUZZ_CHECK(qmp_qemu_version(q)[0] != '\0');
	ret = qmp_execute(q, "query-status", NULL, &value);
	if (ret) {
		FUZZ_CHECK(value == NULL);
		fuzz_check_failure(ret, qmp_error(q));
		FUZZ_CHECK((ret == -EREMOTEIO) == (qmp_error_class(q)[0] != '\0'));
		if (ret != -EREMOTEIO)
			goto pop;
	} else {
		FUZZ_CHECK(value != NULL);
		json_decref(value);
		value = NULL;
	}
	ret = qmp_poll(q);
	if (ret)
		fuzz_check_failure(ret, qmp_error(q));
	if (ret == -EPROTO)
		goto pop;
	ret = qmp_execute(q, "query-migrate", json_pack("{s:b}", "detail", 1), &value);
	if (ret)
		fuzz_check_failure(ret, qmp_error(q));
	json_decref(value);
pop:
	while (qmp_event_pop(q, &event))
		fuzz_check_event(event);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char error[QMP_ERROR_MAX] = "";
	struct qmp *q = NULL;
	int ret;

	qemu.data = data;
	qemu.size = size < FUZZ_QMP_INPUT_MAX ? size : FUZZ_QMP_INPUT_MAX;
	FUZZ_CHECK(sem_post(&qemu.posted) == 0);
	ret = qmp_open(socket_path, "fuzzed QEMU", FUZZ_QMP_TIMEOUT_MS, &q, error);
	while (sem_wait(&qemu.served))
		FUZZ_CHECK(errno == EINTR);
	if (ret) {
		FUZZ_CHECK(q == NULL);
		fuzz_check_failure(ret, error);
	} else {
		FUZZ_CHECK(q != NULL);
		fuzz_conversation(q);
		qmp_close(q);
	}
	close(qemu.fd);
	return 0;
}
