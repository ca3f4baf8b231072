/* SPDX-License-Identifier: MIT */
/* transport/log.h - rmig's logging: one place every layer logs through, so a hypervisor can
 * route messages with a single callback. Logging never changes errno. */
#ifndef RMIG_LOG_H
#define RMIG_LOG_H

#include <stdarg.h>

enum rmig_log_level_internal {
	RMIG_LOG_LEVEL_ERROR = 0,
	RMIG_LOG_LEVEL_WARN = 1,
	RMIG_LOG_LEVEL_INFO = 2,
	RMIG_LOG_LEVEL_DEBUG = 3,
};

/* Receives one formatted message (no trailing newline). */
typedef void (*rmig_log_handler_fn)(void *opaque, int level, const char *message);

/* Install handler (NULL restores the default: stderr) and the most verbose level passed on.
 * The default level is WARN, or $RMIG_LOG (error, warn, info, debug) when set. */
void rmig_log_handler_set(rmig_log_handler_fn handler, void *opaque, int max_level);
int rmig_log_enabled(int level);
void rmig_log_write(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void rmig_log_vwrite(int level, const char *fmt, va_list ap);
/* The last error-level message this thread wrote (logged or not), "" after _clear(). */
const char *rmig_log_last_error(void);
void rmig_log_last_error_clear(void);

#define rmig_log_error(fmt, ...) rmig_log_write(RMIG_LOG_LEVEL_ERROR, fmt, ##__VA_ARGS__)
#define rmig_log_warn(fmt, ...) rmig_log_write(RMIG_LOG_LEVEL_WARN, fmt, ##__VA_ARGS__)
#define rmig_log_info(fmt, ...) rmig_log_write(RMIG_LOG_LEVEL_INFO, fmt, ##__VA_ARGS__)
/* Debug messages sit on data paths: compiled out unless built with -DRMIG_DEBUG. */
#ifdef RMIG_DEBUG
#define rmig_log_debug(fmt, ...) rmig_log_write(RMIG_LOG_LEVEL_DEBUG, fmt, ##__VA_ARGS__)
#else
#define rmig_log_debug(fmt, ...)                                                  \
	do {                                                                      \
		if (0)                                                            \
			rmig_log_write(RMIG_LOG_LEVEL_DEBUG, fmt, ##__VA_ARGS__); \
	} while (0)
#endif

#endif /* RMIG_LOG_H */
