/* SPDX-License-Identifier: MIT */
/* bindings/qemu/qmp.c - the QMP client: QEMU writes one JSON object per line ("\r\n"), we write
 * one per line. Everything QEMU sends is checked for shape before use: the greeting must carry
 * "QMP" with a version, a reply must carry our id and either "return" or an "error" with class
 * and description, an event must carry its name and timestamp; anything else closes the
 * conversation with -EPROTO. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "bindings/qemu/qmp.h"

#define QMP_LINE_MAX (1u << 20) /* longest line accepted from QEMU */
#define QMP_EVENTS_MAX 1024u	/* queued events; the oldest are dropped beyond */

struct qmp {
	pthread_mutex_t lock;
	int fd;
	int closed; /* QEMU closed its end */
	int timeout_ms;
	pid_t pid;
	uint64_t next_id;
	char *buf; /* bytes read, not yet parsed */
	size_t len;
	json_t *events[QMP_EVENTS_MAX]; /* ring */
	size_t event_head, event_count;
	uint64_t events_dropped;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char name[64];
	char version[32];
	char error[QMP_ERROR_MAX];
	char error_class[64];
};

static int64_t qmp_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int qmp_fail(struct qmp *q, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int qmp_fail(struct qmp *q, int err, const char *fmt, ...)
{
	/* Room for the name and the path in front of it. */
	char why[QMP_ERROR_MAX - 200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	snprintf(q->error, sizeof(q->error), "%s (%s): %s", q->name, q->path, why);
	return err;
}

static void qmp_event_push(struct qmp *q, json_t *event)
{
	if (q->event_count == QMP_EVENTS_MAX) {
		json_decref(q->events[q->event_head]);
		q->event_head = (q->event_head + 1) % QMP_EVENTS_MAX;
		q->event_count--;
		q->events_dropped++;
	}
	q->events[(q->event_head + q->event_count) % QMP_EVENTS_MAX] = event;
	q->event_count++;
}

/* An event is {"event": NAME, "timestamp": {"seconds": S, "microseconds": U}, "data"?: {}}. */
static int qmp_is_event(const json_t *msg)
{
	const json_t *ts = json_object_get(msg, "timestamp");
	const json_t *data = json_object_get(msg, "data");

	return json_is_string(json_object_get(msg, "event")) && json_is_object(ts) &&
	       json_is_integer(json_object_get(ts, "seconds")) &&
	       json_is_integer(json_object_get(ts, "microseconds")) &&
	       (!data || json_is_object(data));
}

/* Take one complete line from the buffer, reading when wait_ms allows (-1: forever, 0: only
 * what is already there). Returns 1 with *msg_p (a JSON object), 0 when nothing complete is
 * there and wait_ms is 0, or -errno. */
static int qmp_read_message(struct qmp *q, int wait_ms, json_t **msg_p)
{
	int64_t deadline = wait_ms > 0 ? qmp_now_ms() + wait_ms : 0;

	for (;;) {
		char *nl = q->len ? memchr(q->buf, '\n', q->len) : NULL;
		struct pollfd pfd = {.fd = q->fd, .events = POLLIN};
		json_error_t jerr;
		ssize_t n;
		int timeout, ret;

		if (nl) {
			size_t line = (size_t)(nl - q->buf), take = line + 1;
			json_t *msg;

			if (line && q->buf[line - 1] == '\r')
				line--;
			if (!line) {
				memmove(q->buf, q->buf + take, q->len - take);
				q->len -= take;
				continue;
			}
			msg = json_loadb(q->buf, line, JSON_REJECT_DUPLICATES, &jerr);
			memmove(q->buf, q->buf + take, q->len - take);
			q->len -= take;
			if (!msg)
				return qmp_fail(q, -EPROTO, "sent a line that is not JSON: %s",
						jerr.text);
			if (!json_is_object(msg)) {
				json_decref(msg);
				return qmp_fail(q, -EPROTO, "sent JSON that is not an object");
			}
			*msg_p = msg;
			return 1;
		}
		if (q->closed)
			return qmp_fail(q, -ECONNRESET, "QEMU closed the connection%s",
					q->len ? " in the middle of a message" : "");
		if (q->len == QMP_LINE_MAX)
			return qmp_fail(q, -EPROTO, "sent a line longer than %u bytes",
					QMP_LINE_MAX);
		if (wait_ms < 0) {
			timeout = -1;
		} else if (wait_ms == 0) {
			timeout = 0;
		} else {
			int64_t left = deadline - qmp_now_ms();

			timeout = left > 0 ? (int)left : 0;
		}
		ret = poll(&pfd, 1, timeout);
		if (ret < 0) {
			if (errno == EINTR)
				continue;
			return qmp_fail(q, -errno, "poll: %s", strerror(errno));
		}
		if (ret == 0) {
			if (wait_ms == 0)
				return 0;
			return qmp_fail(q, -ETIMEDOUT, "no answer within %d ms", wait_ms);
		}
		n = read(q->fd, q->buf + q->len, QMP_LINE_MAX - q->len);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			if (errno == ECONNRESET) {
				q->closed = 1;
				continue;
			}
			return qmp_fail(q, -errno, "read: %s", strerror(errno));
		}
		if (n == 0)
			q->closed = 1;
		q->len += (size_t)n;
	}
}

static int qmp_write_all(struct qmp *q, const char *data, size_t len)
{
	int64_t deadline = qmp_now_ms() + q->timeout_ms;

	while (len) {
		struct pollfd pfd = {.fd = q->fd, .events = POLLOUT};
		int64_t left = deadline - qmp_now_ms();
		ssize_t n;
		int ret;

		ret = poll(&pfd, 1, left > 0 ? (int)left : 0);
		if (ret < 0 && errno == EINTR)
			continue;
		if (ret < 0)
			return qmp_fail(q, -errno, "poll: %s", strerror(errno));
		if (ret == 0)
			return qmp_fail(q, -ETIMEDOUT, "does not read commands (%d ms)",
					q->timeout_ms);
		n = send(q->fd, data, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			if (errno == EPIPE || errno == ECONNRESET) {
				q->closed = 1;
				return qmp_fail(q, -ECONNRESET, "QEMU closed the connection");
			}
			return qmp_fail(q, -errno, "send: %s", strerror(errno));
		}
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Send {"execute": command, "arguments": arguments, "id": id} (arguments stolen). */
static int qmp_send_command(struct qmp *q, const char *command, json_t *arguments, uint64_t id)
{
	json_t *msg = json_object();
	char *text;
	int ret;

	/* json_object_set_new() takes the value's reference even when it fails. */
	if (!msg) {
		json_decref(arguments);
		return qmp_fail(q, -ENOMEM, "%s: out of memory", command);
	}
	if ((arguments && json_object_set_new(msg, "arguments", arguments)) ||
	    json_object_set_new(msg, "execute", json_string(command)) ||
	    json_object_set_new(msg, "id", json_integer((json_int_t)id))) {
		json_decref(msg);
		return qmp_fail(q, -ENOMEM, "%s: out of memory", command);
	}
	text = json_dumps(msg, JSON_COMPACT);
	json_decref(msg);
	if (!text)
		return qmp_fail(q, -ENOMEM, "%s: out of memory", command);
	ret = qmp_write_all(q, text, strlen(text));
	if (!ret)
		ret = qmp_write_all(q, "\n", 1);
	free(text);
	return ret;
}

/* Wait for the reply to id, queueing events. */
static int qmp_wait_reply(struct qmp *q, const char *command, uint64_t id, json_t **return_p)
{
	int64_t deadline = qmp_now_ms() + q->timeout_ms;

	for (;;) {
		int64_t left = deadline - qmp_now_ms();
		json_t *msg, *reply_id, *error, *ret_value;
		int ret;

		ret = qmp_read_message(q, left > 0 ? (int)left : 1, &msg);
		if (ret == -ETIMEDOUT)
			return qmp_fail(q, -ETIMEDOUT, "no reply to %s within %d ms", command,
					q->timeout_ms);
		if (ret < 0)
			return ret;
		if (json_object_get(msg, "event")) {
			if (!qmp_is_event(msg)) {
				json_decref(msg);
				return qmp_fail(q, -EPROTO, "sent a malformed event");
			}
			qmp_event_push(q, msg);
			continue;
		}
		reply_id = json_object_get(msg, "id");
		error = json_object_get(msg, "error");
		ret_value = json_object_get(msg, "return");
		if (!json_is_integer(reply_id) || json_integer_value(reply_id) != (json_int_t)id ||
		    !!error == !!ret_value) {
			json_decref(msg);
			return qmp_fail(q, -EPROTO,
					"answered %s with a message that is not its reply",
					command);
		}
		if (error) {
			const json_t *cls = json_object_get(error, "class");
			const json_t *desc = json_object_get(error, "desc");

			if (!json_is_string(cls) || !json_is_string(desc)) {
				json_decref(msg);
				return qmp_fail(q, -EPROTO, "answered %s with a malformed error",
						command);
			}
			snprintf(q->error_class, sizeof(q->error_class), "%s",
				 json_string_value(cls));
			ret = qmp_fail(q, -EREMOTEIO, "%s refused: %s (%s)", command,
				       json_string_value(desc), json_string_value(cls));
			json_decref(msg);
			return ret;
		}
		if (return_p)
			*return_p = json_incref(ret_value);
		json_decref(msg);
		return 0;
	}
}

int qmp_execute(struct qmp *q, const char *command, json_t *arguments, json_t **return_p)
{
	uint64_t id;
	int ret;

	pthread_mutex_lock(&q->lock);
	q->error[0] = 0;
	q->error_class[0] = 0;
	id = ++q->next_id;
	ret = qmp_send_command(q, command, arguments, id);
	if (!ret)
		ret = qmp_wait_reply(q, command, id, return_p);
	pthread_mutex_unlock(&q->lock);
	return ret;
}

/* Queue what QEMU sent, the first message waited for up to wait_ms (0: none). */
static int qmp_poll_wait(struct qmp *q, int wait_ms)
{
	int ret;

	pthread_mutex_lock(&q->lock);
	for (;;) {
		json_t *msg;

		ret = qmp_read_message(q, wait_ms, &msg);
		wait_ms = 0;
		if (ret <= 0)
			break;
		if (!qmp_is_event(msg)) {
			json_decref(msg);
			ret = qmp_fail(q, -EPROTO,
				       "sent a message that is neither a reply nor an "
				       "event");
			break;
		}
		qmp_event_push(q, msg);
	}
	pthread_mutex_unlock(&q->lock);
	return ret;
}

int qmp_poll(struct qmp *q)
{
	return qmp_poll_wait(q, 0);
}

int qmp_wait(struct qmp *q, int timeout_ms)
{
	return qmp_poll_wait(q, timeout_ms > 0 ? timeout_ms : 1);
}

int qmp_event_pop(struct qmp *q, json_t **event_p)
{
	int found = 0;

	pthread_mutex_lock(&q->lock);
	if (q->event_count) {
		*event_p = q->events[q->event_head];
		q->event_head = (q->event_head + 1) % QMP_EVENTS_MAX;
		q->event_count--;
		found = 1;
	}
	pthread_mutex_unlock(&q->lock);
	return found;
}

uint64_t qmp_event_timestamp_us(const json_t *event)
{
	const json_t *ts = json_object_get(event, "timestamp");
	json_int_t s = json_integer_value(json_object_get(ts, "seconds"));
	json_int_t us = json_integer_value(json_object_get(ts, "microseconds"));

	if (s <= 0 || us < 0)
		return 0;
	return (uint64_t)s * 1000000u + (uint64_t)us;
}

/* The greeting: {"QMP": {"version": {"qemu": {"major", "minor", "micro"}, "package"},
 * "capabilities": [...]}}. */
static int qmp_greeting(struct qmp *q)
{
	int64_t deadline = qmp_now_ms() + q->timeout_ms;
	const json_t *qmp, *version, *qemu;
	json_t *msg;
	int ret;

	for (;;) {
		int64_t left = deadline - qmp_now_ms();

		ret = qmp_read_message(q, left > 0 ? (int)left : 1, &msg);
		if (ret == -ETIMEDOUT)
			return qmp_fail(q, -ETIMEDOUT,
					"no QMP greeting within %d ms (QEMU serves one QMP client "
					"per socket: is another one connected?)",
					q->timeout_ms);
		if (ret < 0)
			return ret;
		/* A client that connects while QEMU starts can get an event before the
		 * greeting (RESUME, as the machine starts running): queued like any other. */
		if (!qmp_is_event(msg))
			break;
		qmp_event_push(q, msg);
	}
	qmp = json_object_get(msg, "QMP");
	version = json_object_get(qmp, "version");
	qemu = json_object_get(version, "qemu");
	if (json_object_size(msg) != 1 || !json_is_object(qemu) ||
	    !json_is_integer(json_object_get(qemu, "major")) ||
	    !json_is_integer(json_object_get(qemu, "minor")) ||
	    !json_is_integer(json_object_get(qemu, "micro")) ||
	    !json_is_array(json_object_get(qmp, "capabilities"))) {
		char *text = json_dumps(msg, JSON_COMPACT);

		ret = qmp_fail(q, -EPROTO,
			       "the greeting is not QMP's (is this a QMP socket?): %.120s",
			       text ? text : "?");
		free(text);
		json_decref(msg);
		return ret;
	}
	snprintf(q->version, sizeof(q->version), "%lld.%lld.%lld",
		 (long long)json_integer_value(json_object_get(qemu, "major")),
		 (long long)json_integer_value(json_object_get(qemu, "minor")),
		 (long long)json_integer_value(json_object_get(qemu, "micro")));
	json_decref(msg);
	return 0;
}

int qmp_open(const char *path, const char *name, int timeout_ms, struct qmp **qmp_p,
	     char error[QMP_ERROR_MAX])
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	struct ucred cred;
	socklen_t cred_len = sizeof(cred);
	struct qmp *q;
	int ret;

	q = calloc(1, sizeof(*q));
	if (!q || !(q->buf = malloc(QMP_LINE_MAX))) {
		free(q);
		snprintf(error, QMP_ERROR_MAX, "%s (%s): out of memory", name, path);
		return -ENOMEM;
	}
	pthread_mutex_init(&q->lock, NULL);
	q->fd = -1;
	q->timeout_ms = timeout_ms > 0 ? timeout_ms : 30000;
	snprintf(q->name, sizeof(q->name), "%s", name);
	snprintf(q->path, sizeof(q->path), "%s", path);
	if (strlen(path) >= sizeof(addr.sun_path)) {
		ret = qmp_fail(q, -ENAMETOOLONG, "a unix socket path has at most %zu bytes",
			       sizeof(addr.sun_path) - 1);
		goto err_close;
	}
	memcpy(addr.sun_path, path, strlen(path) + 1);
	q->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (q->fd < 0) {
		ret = qmp_fail(q, -errno, "socket: %s", strerror(errno));
		goto err_close;
	}
	if (connect(q->fd, (struct sockaddr *)&addr, sizeof(addr))) {
		ret = -errno;
		if (ret == -ENOENT)
			qmp_fail(q, ret,
				 "no QMP socket there (start QEMU with -qmp unix:%s,server=on,"
				 "wait=off)",
				 path);
		else if (ret == -ECONNREFUSED)
			qmp_fail(q, ret,
				 "nobody serves that socket (QEMU is not running, or the socket "
				 "is stale)");
		else
			qmp_fail(q, ret, "connect: %s", strerror(-ret));
		goto err_close;
	}
	if (!getsockopt(q->fd, SOL_SOCKET, SO_PEERCRED, &cred, &cred_len))
		q->pid = cred.pid;
	ret = qmp_greeting(q);
	if (!ret)
		ret = qmp_execute(q, "qmp_capabilities", NULL, NULL);
	if (ret)
		goto err_close;
	*qmp_p = q;
	return 0;

err_close:
	snprintf(error, QMP_ERROR_MAX, "%s", q->error);
	qmp_close(q);
	return ret;
}

void qmp_close(struct qmp *q)
{
	if (!q)
		return;
	if (q->fd >= 0)
		close(q->fd);
	while (q->event_count) {
		json_decref(q->events[q->event_head]);
		q->event_head = (q->event_head + 1) % QMP_EVENTS_MAX;
		q->event_count--;
	}
	pthread_mutex_destroy(&q->lock);
	free(q->buf);
	free(q);
}

const char *qmp_error(const struct qmp *q)
{
	return q->error;
}

const char *qmp_error_class(const struct qmp *q)
{
	return q->error_class;
}

const char *qmp_qemu_version(const struct qmp *q)
{
	return q->version;
}

pid_t qmp_peer_pid(const struct qmp *q)
{
	return q->pid;
}
