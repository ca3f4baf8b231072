/* SPDX-License-Identifier: MIT */
/* transport/deadline.c - deadlines and the condition-variable wait every backend shares. */
#include "transport/deadline.h"

#include <limits.h>

void transport_deadline(int timeout_ms, struct timespec *deadline_p)
{
	clock_gettime(CLOCK_MONOTONIC, deadline_p);
	deadline_p->tv_sec += timeout_ms / 1000;
	deadline_p->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (deadline_p->tv_nsec >= 1000000000L) {
		deadline_p->tv_sec++;
		deadline_p->tv_nsec -= 1000000000L;
	}
}

int transport_ms_left(const struct timespec *deadline)
{
	struct timespec now;
	long long ms;

	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (long long)(deadline->tv_sec - now.tv_sec) * 1000 +
	     (deadline->tv_nsec - now.tv_nsec) / 1000000;
	if (ms < 0)
		return 0;
	return ms > INT_MAX ? INT_MAX : (int)ms;
}

int64_t transport_now_ms(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

uint64_t transport_now_us(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (uint64_t)now.tv_sec * 1000000u + (uint64_t)now.tv_nsec / 1000u;
}

int64_t transport_deadline_ms(int timeout_ms)
{
	return timeout_ms < 0 ? -1 : transport_now_ms() + timeout_ms;
}

int transport_remaining_ms(int64_t deadline_ms)
{
	int64_t left;

	if (deadline_ms < 0)
		return -1;
	left = deadline_ms - transport_now_ms();
	if (left < 0)
		return 0;
	return left > INT_MAX ? INT_MAX : (int)left;
}

void transport_cond_init(pthread_cond_t *cond)
{
	pthread_condattr_t attr;

	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(cond, &attr);
	pthread_condattr_destroy(&attr);
}

int transport_cond_wait(pthread_cond_t *cond, pthread_mutex_t *mutex,
			const struct timespec *deadline)
{
	if (!deadline)
		return -pthread_cond_wait(cond, mutex);
	return -pthread_cond_timedwait(cond, mutex, deadline);
}
