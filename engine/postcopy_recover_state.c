/* SPDX-License-Identifier: MIT */
/* engine/postcopy_recover_state.c - the recovery state's life and what the session reads of it:
 * created with the session, the first listen URI recorded, the counters for stats. Calls only
 * the transport, never the session or the recovery (engine/postcopy_recover.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/postcopy_recover.h"
#include "engine/postcopy_recover_state.h"
#include "transport/deadline.h"

int postcopy_recover_create(struct rmig_session *s)
{
	struct postcopy_recovery *rc = calloc(1, sizeof(*rc));

	if (!rc)
		return -ENOMEM;
	pthread_mutex_init(&rc->lock, NULL);
	transport_cond_init(&rc->changed);
	rc->window_ms = POSTCOPY_RECOVER_DEFAULT_WINDOW_MS;
	s->recovery = rc;
	return 0;
}

void postcopy_recover_destroy(struct rmig_session *s)
{
	struct postcopy_recovery *rc = s->recovery;

	if (!rc)
		return;
	if (rc->listener)
		transport_listener_close(rc->listener);
	for (size_t i = 0; i < rc->nannounced; i++)
		free(rc->announced[i]);
	free(rc->announced);
	pthread_cond_destroy(&rc->changed);
	pthread_mutex_destroy(&rc->lock);
	free(rc);
	s->recovery = NULL;
}

void postcopy_recover_listened(struct rmig_session *s, const char *uri)
{
	struct postcopy_recovery *rc = s->recovery;
	struct transport_uri parsed, bound;
	char actual[TRANSPORT_URI_MAX];

	snprintf(rc->listen_uri, sizeof(rc->listen_uri), "%s", uri);
	/* Port 0 picked a free port: listen on that one again, on the address asked for. */
	if (transport_uri_parse(uri, &parsed) || parsed.port || !strcmp(parsed.scheme, "loop") ||
	    transport_listener_uri(s->listener, actual, sizeof(actual)) ||
	    transport_uri_parse(actual, &bound))
		return;
	{
		char resolved[2 * TRANSPORT_URI_MAX];
		int n = snprintf(resolved, sizeof(resolved),
				 strchr(parsed.host, ':') ? "%s://[%s]:%u" : "%s://%s:%u",
				 parsed.scheme, parsed.host, bound.port);

		if (n > 0 && (size_t)n < sizeof(rc->listen_uri))
			memcpy(rc->listen_uri, resolved, (size_t)n + 1);
	}
}

void postcopy_recover_stats_locked(struct rmig_session *s, struct rmig_stats *out, uint64_t now)
{
	struct postcopy_recovery *rc = s->recovery;

	pthread_mutex_lock(&rc->lock);
	out->recoveries = rc->recoveries;
	out->recovering_ms = rc->recovered_ms;
	if (rc->recovering)
		out->recovering_ms += (now - rc->since_us) / 1000u;
	pthread_mutex_unlock(&rc->lock);
}
