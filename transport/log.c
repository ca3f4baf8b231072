/* SPDX-License-Identifier: MIT */
/* transport/log.c - the default handler (stderr), level from $RMIG_LOG, and the dispatch. */
#include "transport/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static rmig_log_handler_fn log_handler;
static void *log_opaque;
static int log_max_level = -1; /* -1: not read from the environment yet */

static const char *const log_level_names[] = {"error", "warn", "info", "debug"};

static int log_level_from_env(void)
{
	const char *env = getenv("RMIG_LOG");

	if (!env)
		return RMIG_LOG_LEVEL_WARN;
	for (int i = 0; i < 4; i++)
		if (!strcmp(env, log_level_names[i]))
			return i;
	return RMIG_LOG_LEVEL_WARN;
}

void rmig_log_handler_set(rmig_log_handler_fn handler, void *opaque, int max_level)
{
	pthread_mutex_lock(&log_lock);
	log_handler = handler;
	log_opaque = opaque;
	log_max_level = max_level < 0 ? log_level_from_env() : max_level;
	pthread_mutex_unlock(&log_lock);
}

int rmig_log_enabled(int level)
{
	int max;

	pthread_mutex_lock(&log_lock);
	if (log_max_level < 0)
		log_max_level = log_level_from_env();
	max = log_max_level;
	pthread_mutex_unlock(&log_lock);
	return level <= max;
}

/* The last error this thread logged, for a caller that must say why a call failed (a refused
 * TLS handshake in connect, say) beyond its errno. */
static _Thread_local char log_last_error[512];

const char *rmig_log_last_error(void)
{
	return log_last_error;
}

void rmig_log_last_error_clear(void)
{
	log_last_error[0] = '\0';
}

void rmig_log_vwrite(int level, const char *fmt, va_list ap)
{
	int saved_errno = errno;
	char message[1024];
	rmig_log_handler_fn handler;
	void *opaque;

	if (level == RMIG_LOG_LEVEL_ERROR) {
		va_list copy;

		va_copy(copy, ap);
		vsnprintf(log_last_error, sizeof(log_last_error), fmt, copy);
		va_end(copy);
	}
	if (!rmig_log_enabled(level))
		goto out;
	vsnprintf(message, sizeof(message), fmt, ap);
	pthread_mutex_lock(&log_lock);
	handler = log_handler;
	opaque = log_opaque;
	pthread_mutex_unlock(&log_lock);
	if (handler)
		handler(opaque, level, message);
	else
		fprintf(stderr, "rmig: %s: %s\n",
			log_level_names[level < 0 ? 0 : (level > 3 ? 3 : level)], message);
out:
	errno = saved_errno;
}

void rmig_log_write(int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	rmig_log_vwrite(level, fmt, ap);
	va_end(ap);
}
