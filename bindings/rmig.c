/* SPDX-License-Identifier: MIT */
/* bindings/rmig.c - the public ABI (rmig.h) over the engine's session: argument checks, and
 * nothing else, so the engine stays the one place migrations are implemented. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>

#include "bindings/rmig_export.h"
#include "engine/postcopy_recover.h"
#include "engine/session.h"
#include "rmig.h"
#include "transport/log.h"
#include "transport/transport.h"

#define RMIG_STRINGIFY(x) #x
#define RMIG_VERSION_STRING_OF(a, b, c) \
	RMIG_STRINGIFY(a) "." RMIG_STRINGIFY(b) "." RMIG_STRINGIFY(c)

RMIG_EXPORT const char *rmig_version(void)
{
	return RMIG_VERSION_STRING_OF(RMIG_VERSION_MAJOR, RMIG_VERSION_MINOR, RMIG_VERSION_PATCH);
}

RMIG_EXPORT const char *rmig_strerror(int err)
{
	return session_strerror(err);
}

RMIG_EXPORT void rmig_log_handler_install(void (*handler)(void *opaque, int level,
							  const char *message),
					  void *opaque, int max_level)
{
	rmig_log_handler_set(handler, opaque, max_level);
}

RMIG_EXPORT int rmig_session_create(uint32_t role, rmig_session_t **session_p)
{
	if (!session_p)
		return -EINVAL;
	return session_create(role, session_p);
}

RMIG_EXPORT void rmig_session_destroy(rmig_session_t *session)
{
	session_destroy(session);
}

RMIG_EXPORT int rmig_session_set_params(rmig_session_t *session, const struct rmig_params *params)
{
	if (!session)
		return -EINVAL;
	if (!params)
		return session_refuse(session, -EINVAL, "set params: params is NULL");
	return session_set_params(session, params);
}

RMIG_EXPORT int rmig_session_set_callbacks(rmig_session_t *session,
					   const struct rmig_callbacks *callbacks, void *opaque)
{
	if (!session)
		return -EINVAL;
	if (!callbacks)
		return session_refuse(session, -EINVAL, "set callbacks: callbacks is NULL");
	return session_set_callbacks(session, callbacks, opaque);
}

RMIG_EXPORT int rmig_region_add(rmig_session_t *session, uint32_t id, void *addr, size_t length,
				size_t page_size)
{
	if (!session)
		return -EINVAL;
	return session_region_add(session, id, addr, length, page_size);
}

RMIG_EXPORT int rmig_session_listen(rmig_session_t *session, const char *uri)
{
	if (!session)
		return -EINVAL;
	if (!uri)
		return session_refuse(session, -EINVAL, "listen: uri is NULL");
	return session_listen(session, uri);
}

RMIG_EXPORT int rmig_session_listen_uri(rmig_session_t *session, char *buf, size_t len)
{
	if (!session)
		return -EINVAL;
	if (!buf || !len)
		return session_refuse(session, -EINVAL, "listen uri: no buffer to fill");
	return session_listen_uri(session, buf, len);
}

RMIG_EXPORT int rmig_session_connect(rmig_session_t *session, const char *uri)
{
	if (!session)
		return -EINVAL;
	if (!uri)
		return session_refuse(session, -EINVAL, "connect: uri is NULL");
	return session_connect(session, uri);
}

RMIG_EXPORT int rmig_session_run(rmig_session_t *session)
{
	if (!session)
		return -EINVAL;
	return session_run(session);
}

RMIG_EXPORT int rmig_session_start(rmig_session_t *session)
{
	if (!session)
		return -EINVAL;
	return session_start(session);
}

RMIG_EXPORT int rmig_session_wait(rmig_session_t *session, int timeout_ms)
{
	if (!session)
		return -EINVAL;
	return session_wait(session, timeout_ms);
}

RMIG_EXPORT int rmig_session_cancel(rmig_session_t *session)
{
	/* Safe from anywhere, even on a session already gone from the caller's tables. */
	if (!session)
		return 0;
	return session_cancel(session);
}

RMIG_EXPORT int rmig_session_stats(rmig_session_t *session, struct rmig_stats *stats)
{
	if (!session)
		return -EINVAL;
	return session_stats_get(session, stats);
}

RMIG_EXPORT int rmig_session_transport_stats(rmig_session_t *session,
					     struct rmig_transport_stats *stats)
{
	if (!session)
		return -EINVAL;
	return session_transport_stats_get(session, stats);
}

RMIG_EXPORT int rmig_session_round_stats(rmig_session_t *session, uint32_t round,
					 struct rmig_round_stats *stats)
{
	if (!session)
		return -EINVAL;
	return session_round_stats_get(session, round, stats);
}

RMIG_EXPORT const char *rmig_last_error(rmig_session_t *session)
{
	if (!session)
		return "no session";
	return session_last_error(session);
}

RMIG_EXPORT int rmig_last_error_copy(rmig_session_t *session, char *buf, size_t len)
{
	size_t full;

	if (!session || (!buf && len))
		return -EINVAL;
	full = session_last_error_copy(session, buf, len);
	return full > INT_MAX ? INT_MAX : (int)full;
}

RMIG_EXPORT int rmig_session_wait_result(rmig_session_t *session, int timeout_ms, int *result_p)
{
	if (!session)
		return -EINVAL;
	if (!result_p)
		return session_refuse(session, -EINVAL, "wait result: result_p is NULL");
	return session_wait_result(session, timeout_ms, result_p);
}

RMIG_EXPORT int rmig_region_dirty_source(rmig_session_t *session, uint32_t id)
{
	if (!session)
		return -EINVAL;
	return session_region_dirty_source(session, id);
}

RMIG_EXPORT int rmig_region_send_counts(rmig_session_t *session, uint32_t id, uint8_t *counts,
					size_t npages)
{
	if (!session)
		return -EINVAL;
	return session_region_send_counts(session, id, counts, npages);
}

RMIG_EXPORT const char *rmig_session_method_reason(rmig_session_t *session)
{
	if (!session)
		return "no session";
	return session_method_reason(session);
}

RMIG_EXPORT const char *rmig_status_name(uint32_t status)
{
	return session_status_name(status);
}

RMIG_EXPORT const char *rmig_method_name(uint32_t method)
{
	return session_method_name(method);
}

RMIG_EXPORT const char *rmig_stop_reason_name(uint32_t reason)
{
	static const char *const names[] = {
		[RMIG_STOP_NONE] = "none",
		[RMIG_STOP_DOWNTIME] = "downtime target",
		[RMIG_STOP_MAX_ROUNDS] = "round limit",
		[RMIG_STOP_FEW_DIRTY] = "few dirty pages",
		[RMIG_STOP_SENT_LIMIT] = "3x RAM sent",
		[RMIG_STOP_FLOOR] = "the pause's floor",
	};

	return reason < sizeof(names) / sizeof(names[0]) ? names[reason] : "unknown";
}

RMIG_EXPORT int rmig_transport_available(const char *scheme)
{
	if (!scheme)
		return -EINVAL;
	return transport_available(scheme);
}

RMIG_EXPORT int rmig_session_set_insecure(rmig_session_t *session, int insecure)
{
	if (!session)
		return -EINVAL;
	return session_set_insecure(session, insecure);
}

RMIG_EXPORT int rmig_session_set_peer_timeout(rmig_session_t *session, uint32_t timeout_ms)
{
	if (!session)
		return -EINVAL;
	return session_set_peer_timeout(session, timeout_ms);
}

RMIG_EXPORT int rmig_session_set_tls(rmig_session_t *session, const struct rmig_tls *tls)
{
	if (!session)
		return -EINVAL;
	return session_set_tls(session, tls);
}

RMIG_EXPORT int rmig_session_set_recovery_window(rmig_session_t *session, uint32_t window_ms)
{
	if (!session)
		return -EINVAL;
	return postcopy_recover_set_window(session, window_ms);
}

RMIG_EXPORT int rmig_session_recover(rmig_session_t *session, const char *uri)
{
	if (!session)
		return -EINVAL;
	return postcopy_recover_request(session, uri);
}
