/* SPDX-License-Identifier: MIT */
/* transport/deadline.h - time limits for every backend: deadlines on CLOCK_MONOTONIC, as an
 * absolute timespec for condition variables or as milliseconds for poll(), and the one wait
 * every backend uses, which returns 0 or -errno like the rest of rmig. */
#ifndef RMIG_TRANSPORT_DEADLINE_H
#define RMIG_TRANSPORT_DEADLINE_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

/* timeout_ms from now, on CLOCK_MONOTONIC (timeout_ms >= 0). */
void transport_deadline(int timeout_ms, struct timespec *deadline_p);
/* Milliseconds left until deadline, 0 once it passed. */
int transport_ms_left(const struct timespec *deadline);

/* The same in milliseconds, for poll(): transport_deadline_ms(-1) is no deadline (-1), and
 * transport_remaining_ms(-1) then is -1 (poll forever). */
int64_t transport_now_ms(void);
/* CLOCK_MONOTONIC in microseconds, for logging how long a step took. */
uint64_t transport_now_us(void);
int64_t transport_deadline_ms(int timeout_ms);
int transport_remaining_ms(int64_t deadline_ms);

/* A condition variable that waits on CLOCK_MONOTONIC, so deadlines survive clock changes. */
void transport_cond_init(pthread_cond_t *cond);
/* Wait on cond (mutex held) until woken or deadline passes (NULL: no deadline).
 * 0 when woken, -ETIMEDOUT when the deadline passed; the caller rechecks its condition. */
int transport_cond_wait(pthread_cond_t *cond, pthread_mutex_t *mutex,
			const struct timespec *deadline);

#endif /* RMIG_TRANSPORT_DEADLINE_H */
