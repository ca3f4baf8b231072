/* SPDX-License-Identifier: MIT */
/* engine/postcopy_source.c - the source side of the post-copy tail: announce the pages the
 * destination will receive after resume, point batches at its staging regions, then push what
 * it asks for while its faults pull pages straight from this side's RAM (registered with
 * REMOTE_READ; tcp serves the reads on its own thread, RDMA without this CPU). The RAM stays
 * frozen: the VM is paused here and never runs here again. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine/batch.h"
#include "engine/bitmap.h"
#include "engine/postcopy.h"
#include "engine/protocol.h"
#include "engine/session.h"
#include "transport/log.h"

int postcopy_source_announce(struct rmig_session *s)
{
	struct protocol_staging staging[PROTOCOL_REGIONS_MAX];
	struct protocol_postcopy_begin begin = {0};
	char why[TRANSPORT_ERROR_MAX];
	const void *payload;
	size_t len, count;
	int ret, type;

	for (size_t i = 0; i < s->nregions; i++) {
		struct session_region *r = &s->regions[i];
		size_t words = bitmap_words(r->npages);

		begin.pages += bitmap_count(r->postcopy, r->npages);
		for (size_t w = 0; w < words; w += PROTOCOL_BITMAP_WORDS_MAX) {
			uint32_t n = (uint32_t)(words - w < PROTOCOL_BITMAP_WORDS_MAX
							? words - w
							: PROTOCOL_BITMAP_WORDS_MAX);

			if (bitmap_empty(r->postcopy + w, (size_t)n * 64 < r->npages - w * 64
								  ? (size_t)n * 64
								  : r->npages - w * 64))
				continue;
			ret = session_ctrl_send(
				s, protocol_page_bitmap_to_wire(PROTOCOL_POSTCOPY_PAGES, r->id, w,
								r->postcopy + w, n, s->msg_buf));
			if (ret)
				return ret;
		}
	}
	ret = session_ctrl_send(s, protocol_postcopy_begin_to_wire(&begin, s->msg_buf));
	if (ret)
		return ret;
	type = session_ctrl_recv(s, "the destination's post-copy readiness", &payload, &len);
	if (type < 0)
		return type;
	if (type != PROTOCOL_POSTCOPY_READY)
		return session_fail(s, -EPROTO, "%s answered post-copy begin with %s",
				    s->conn->peer, protocol_type_name(type));
	ret = protocol_postcopy_ready_from_wire(payload, len, staging, &count, why, sizeof(why));
	if (ret)
		return session_fail(s, ret, "%s broke the protocol: %s", s->conn->peer, why);
	if (count != s->nregions)
		return session_fail(s, -EPROTO, "%s named %zu staging regions for %zu regions",
				    s->conn->peer, count, s->nregions);
	for (size_t i = 0; i < count; i++) {
		struct session_region *r = session_region_find(s, staging[i].region_id);

		if (!r || r->to_staging || session_region_find(s, staging[i].staging_id))
			return session_fail(s, -EPROTO,
					    "%s named staging region %u for region %u: not one "
					    "staging region per region here",
					    s->conn->peer, staging[i].staging_id,
					    staging[i].region_id);
		/* The same RAM under the staging id: batches read it here and land there. */
		ret = transport_region_register(s->conn, staging[i].staging_id, r->addr, r->length,
						TRANSPORT_ACCESS_LOCAL);
		if (ret)
			return session_fail(s, ret, "cannot register region %u for the push: %s",
					    r->id, session_strerror(ret));
		r->staging_id = staging[i].staging_id;
		r->to_staging = 1;
	}
	pthread_mutex_lock(&s->lock);
	s->stats.postcopy_pages = begin.pages;
	pthread_mutex_unlock(&s->lock);
	return 0;
}

/* A push request: the pages must be among those still to deliver. */
static int postcopy_source_request(struct rmig_session *s, const void *payload, size_t len)
{
	struct protocol_page_bitmap m;
	char why[TRANSPORT_ERROR_MAX];
	struct session_region *r;
	int ret;

	ret = protocol_page_bitmap_from_wire(payload, len, &m, why, sizeof(why));
	if (ret)
		return session_fail(s, ret, "%s broke the protocol: %s", s->conn->peer, why);
	r = session_region_find(s, m.region_id);
	if (!r || m.first_word > bitmap_words(r->npages) ||
	    m.nwords > bitmap_words(r->npages) - m.first_word)
		return session_fail(
			s, -EPROTO,
			"%s asked for region %u words %llu+%u, outside the regions here",
			s->conn->peer, m.region_id, (unsigned long long)m.first_word, m.nwords);
	for (uint32_t i = 0; i < m.nwords; i++) {
		size_t w = (size_t)m.first_word + i;
		uint64_t word = protocol_word_at(&m, i);

		if (word & ~r->postcopy[w])
			return session_fail(
				s, -EPROTO,
				"%s asked for region %u page %zu, which is not (or no longer) to "
				"be delivered",
				s->conn->peer, r->id, bitmap_word_first(w, word & ~r->postcopy[w]));
		r->postcopy[w] &= ~word;
		r->dirty[w] |= word;
	}
	return 0;
}

int postcopy_source_tail(struct rmig_session *s, struct batch_pipeline *pipeline)
{
	struct protocol_postcopy_done done;
	char why[TRANSPORT_ERROR_MAX];
	uint64_t fetched = 0, fetched_bytes = 0;
	const void *payload;
	size_t len;
	int ret, type;

	session_status_set(s, RMIG_STATUS_POSTCOPY);
	for (;;) {
		type = session_ctrl_recv(s, "a push request", &payload, &len);
		if (type < 0)
			return type;
		if (type == PROTOCOL_POSTCOPY_DONE)
			break;
		if (type != PROTOCOL_PUSH_REQ)
			return session_fail(s, -EPROTO, "%s sent %s during post-copy",
					    s->conn->peer, protocol_type_name(type));
		ret = postcopy_source_request(s, payload, len);
		if (ret)
			return ret;
		ret = source_send_pages(s, pipeline, NULL, NULL);
		if (ret < 0)
			return ret;
	}
	ret = protocol_postcopy_done_from_wire(payload, len, &done, why, sizeof(why));
	if (ret)
		return session_fail(s, ret, "%s broke the protocol: %s", s->conn->peer, why);
	/* What was never asked for was pulled by the destination's faults: each page once. */
	for (size_t i = 0; i < s->nregions; i++) {
		struct session_region *r = &s->regions[i];
		size_t start, n, from = 0;

		while (dirty_bitmap_next_run(r->postcopy, r->npages, from, &start, &n)) {
			for (size_t p = start; p < start + n; p++) {
				if (r->send_count[p] < UINT8_MAX)
					r->send_count[p]++;
				bitmap_clear(r->postcopy, p);
			}
			fetched += n;
			fetched_bytes += (uint64_t)n * r->page_size;
			from = start + n;
		}
	}
	pthread_mutex_lock(&s->lock);
	ret = s->stats.postcopy_pages != done.pages_pushed + done.pages_fetched ||
	      fetched != done.pages_fetched;
	s->stats.postcopy_pages_fetched = done.pages_fetched;
	s->stats.postcopy_faults = done.faults;
	s->stats.postcopy_stall_us = done.stall_us;
	pthread_mutex_unlock(&s->lock);
	if (ret)
		return session_fail(s, -EPROTO,
				    "%s reports %llu pages pushed and %llu fetched; %llu were to "
				    "be delivered, %llu never pushed",
				    s->conn->peer, (unsigned long long)done.pages_pushed,
				    (unsigned long long)done.pages_fetched,
				    (unsigned long long)s->stats.postcopy_pages,
				    (unsigned long long)fetched);
	/* Fetched pages crossed the wire as read responses: count them as transmissions. */
	session_count_pages(s, fetched, 0, fetched_bytes);
	return session_ctrl_send(s, protocol_postcopy_end_to_wire(s->msg_buf));
}
