/* SPDX-License-Identifier: MIT */
/* engine/postcopy_recover_state.h - the post-copy recovery state a session holds (created and
 * destroyed with it, read by its stats), apart from the recovery itself
 * (engine/postcopy_recover.c), so that the session's own files never call up into the
 * recovery that calls them. */
#ifndef RMIG_ENGINE_POSTCOPY_RECOVER_STATE_H
#define RMIG_ENGINE_POSTCOPY_RECOVER_STATE_H

#include <pthread.h>
#include <stdint.h>

#include "engine/protocol.h"
#include "engine/session.h"
#include "transport/transport.h"

struct postcopy_recovery {
	pthread_mutex_t lock; /* the fields up to `recovering` */
	pthread_cond_t changed;
	uint32_t window_ms;
	char uri[TRANSPORT_URI_MAX]; /* the operator's path ("": the first one) */
	/* destination: a listener rmig_session_recover() opened while recovering */
	struct transport_listener *listener;
	int recovering;
	uint64_t since_us;     /* when the current recovery began */
	uint64_t recovered_ms; /* earlier recoveries, summed */
	uint64_t recoveries;   /* new connections that took over */

	/* the run thread's own */
	uint8_t session_id[PROTOCOL_MAC_LEN];
	int bound;
	char listen_uri[TRANSPORT_URI_MAX]; /* destination: where it listened first */
	uint64_t deadline_us;		    /* the current recovery's window ends */
	int end_only;
	int cause;			    /* the error that lost the connection */
	char cause_text[SESSION_ERROR_MAX]; /* and what the session said of it */
	uint64_t **announced;		    /* source: per region, the tail's pages */
	size_t nannounced;
	uint64_t fetched, fetched_bytes; /* source: pulled over lost connections */
};

#endif /* RMIG_ENGINE_POSTCOPY_RECOVER_STATE_H */
