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
#include "engine/postcopy_recover.h"
#include "engine/protocol.h"
#include "engine/session.h"
#include "engine/source.h"
#include "transport/log.h"

/* POSTCOPY_READY: the destination's staging regions, one per region; batches of the tail
 * land there. After a recovery the same ids come again, on the new connection. */
static int postcopy_source_staging(struct rmig_session *s, const void *payload, size_t len,
				   int again)
{
	struct protocol_staging staging[PROTOCOL_REGIONS_MAX];
	char why[TRANSPORT_ERROR_MAX];
	size_t count;
	int ret;

	ret = protocol_postcopy_ready_from_wire(payload, len, staging, &count, why, sizeof(why));
	if (ret)
		return session_fail(s, ret, "%s broke the protocol: %s", s->conn->peer, why);
	if (count != s->nregions)
		return session_fail(s, -EPROTO, "%s named %zu staging regions for %zu regions",
				    s->conn->peer, count, s->nregions);
	for (size_t i = 0; i < count; i++) {
		struct session_region *r = session_region_find(s, staging[i].region_id);

		if (!r || session_region_find(s, staging[i].staging_id) ||
		    (again ? !r->src.to_staging || r->src.staging_id != staging[i].staging_id
			   : r->src.to_staging))
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
		r->src.staging_id = staging[i].staging_id;
		r->src.to_staging = 1;
	}
	return 0;
}

int postcopy_source_announce(struct rmig_session *s)
{
	struct protocol_postcopy_begin begin = {0};
	const void *payload;
	size_t len;
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
	/* What a destination may say it lacks after a recovery. */
	ret = postcopy_recover_announced(s);
	if (ret)
		return session_fail(s, ret, "post-copy: out of memory");
	ret = session_ctrl_send(s, protocol_postcopy_begin_to_wire(&begin, s->msg_buf));
	if (ret)
		return ret;
	type = session_ctrl_recv(s, "the destination's post-copy readiness", &payload, &len);
	if (type < 0)
		return type;
	if (type != PROTOCOL_POSTCOPY_READY)
		return session_fail(s, -EPROTO, "%s answered post-copy begin with %s",
				    s->conn->peer, protocol_type_name(type));
	ret = postcopy_source_staging(s, payload, len, 0);
	if (ret)
		return ret;
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
		r->src.dirty[w] |= word;
	}
	return 0;
}

/* After a recovery's proofs: the pages the destination lacks (RECOVER_PAGES, each among those
 * announced for the tail), their count (RECOVER_READY) and its staging regions
 * (POSTCOPY_READY). Then what it holds of the pages never asked for was pulled by its faults:
 * counted as fetched; what it lacks is to be delivered again, whatever was asked for or pushed
 * on the lost connection. */
static int postcopy_source_resync(struct rmig_session *s)
{
	struct protocol_recover_ready ready;
	char why[TRANSPORT_ERROR_MAX];
	uint64_t **lacking, total = 0, fetched = 0, fetched_bytes = 0;
	const void *payload;
	size_t len;
	int ret = 0, type;

	lacking = calloc(s->nregions, sizeof(*lacking));
	if (!lacking)
		return session_fail(s, -ENOMEM, "post-copy recovery: out of memory");
	for (size_t i = 0; i < s->nregions; i++) {
		lacking[i] = calloc(bitmap_words(s->regions[i].npages), sizeof(uint64_t));
		if (!lacking[i]) {
			ret = session_fail(s, -ENOMEM, "post-copy recovery: out of memory");
			goto out_free;
		}
	}
	for (;;) {
		struct protocol_page_bitmap m;
		struct session_region *r;
		const uint64_t *announced;
		size_t index;

		type = session_ctrl_recv(s, "the pages the destination lacks", &payload, &len);
		if (type < 0) {
			ret = type;
			goto out_free;
		}
		if (type == PROTOCOL_RECOVER_READY)
			break;
		if (type != PROTOCOL_RECOVER_PAGES) {
			ret = session_fail(s, -EPROTO, "%s sent %s during a post-copy recovery",
					   s->conn->peer, protocol_type_name(type));
			goto out_free;
		}
		ret = protocol_page_bitmap_from_wire(payload, len, &m, why, sizeof(why));
		if (ret) {
			ret = session_fail(s, ret, "%s broke the protocol: %s", s->conn->peer, why);
			goto out_free;
		}
		r = session_region_find(s, m.region_id);
		if (!r || m.first_word > bitmap_words(r->npages) ||
		    m.nwords > bitmap_words(r->npages) - m.first_word) {
			ret = session_fail(s, -EPROTO,
					   "%s lacks region %u words %llu+%u, outside the regions "
					   "here",
					   s->conn->peer, m.region_id,
					   (unsigned long long)m.first_word, m.nwords);
			goto out_free;
		}
		index = (size_t)(r - s->regions);
		announced = postcopy_recover_announced_bitmap(s, index);
		for (uint32_t i = 0; i < m.nwords; i++) {
			size_t w = (size_t)m.first_word + i;
			uint64_t word = protocol_word_at(&m, i);

			/* Pages it held at the resume, or past the region's end, are not its
			 * to ask for. */
			if (!announced || (word & ~announced[w])) {
				ret = session_fail(
					s, -EPROTO,
					"%s says it lacks region %u page %zu, which was not to be "
					"delivered after the resume",
					s->conn->peer, r->id,
					bitmap_word_first(w,
							  announced ? word & ~announced[w] : word));
				goto out_free;
			}
			lacking[index][w] |= word;
		}
	}
	ret = protocol_recover_ready_from_wire(payload, len, &ready, why, sizeof(why));
	if (ret) {
		ret = session_fail(s, ret, "%s broke the protocol: %s", s->conn->peer, why);
		goto out_free;
	}
	for (size_t i = 0; i < s->nregions; i++)
		total += bitmap_count(lacking[i], s->regions[i].npages);
	if (total != ready.pages_missing) {
		ret = session_fail(s, -EPROTO, "%s says it lacks %llu pages but listed %llu",
				   s->conn->peer, (unsigned long long)ready.pages_missing,
				   (unsigned long long)total);
		goto out_free;
	}
	type = session_ctrl_recv(s, "the destination's staging regions", &payload, &len);
	if (type < 0) {
		ret = type;
		goto out_free;
	}
	if (type != PROTOCOL_POSTCOPY_READY) {
		ret = session_fail(s, -EPROTO, "%s sent %s instead of its staging regions",
				   s->conn->peer, protocol_type_name(type));
		goto out_free;
	}
	ret = postcopy_source_staging(s, payload, len, 1);
	if (ret)
		goto out_free;
	for (size_t i = 0; i < s->nregions; i++) {
		struct session_region *r = &s->regions[i];

		for (size_t w = 0; w < bitmap_words(r->npages); w++) {
			uint64_t pulled = r->postcopy[w] & ~lacking[i][w];

			for (uint64_t bits = pulled; bits; bits &= bits - 1) {
				size_t p = bitmap_word_first(w, bits);

				if (r->src.send_count[p] < UINT8_MAX)
					r->src.send_count[p]++;
			}
			fetched += (uint64_t)__builtin_popcountll(pulled);
			fetched_bytes += (uint64_t)__builtin_popcountll(pulled) * r->page_size;
			r->postcopy[w] = lacking[i][w];
			r->src.dirty[w] = 0;
		}
	}
	postcopy_recover_fetched_add(s, fetched, fetched_bytes);
	rmig_log_info("source: %s lacks %llu pages after the recovery", s->conn->peer,
		      (unsigned long long)total);
out_free:
	for (size_t i = 0; i < s->nregions; i++)
		free(lacking[i]);
	free(lacking);
	return ret;
}

int postcopy_source_recover(struct rmig_session *s, struct batch_pipeline *pipeline, int err)
{
	int ret;

	if (!postcopy_recover_possible(s, err))
		return err;
	batch_pipeline_abandon(pipeline);
	postcopy_recover_begin(s, err, 0);
	for (;;) {
		ret = postcopy_recover_connect(s);
		if (ret)
			return ret;
		ret = postcopy_source_resync(s);
		if (!ret)
			break;
		ret = postcopy_recover_retry(s, ret);
		if (ret)
			return ret;
	}
	batch_pipeline_rebind(pipeline, s->conn);
	postcopy_recover_end(s);
	return 0;
}

int postcopy_source_tail(struct rmig_session *s, struct batch_pipeline *pipeline)
{
	struct protocol_postcopy_done done;
	char why[TRANSPORT_ERROR_MAX];
	uint64_t fetched, fetched_bytes;
	const void *payload;
	size_t len;
	int ret, type;

	session_status_set(s, RMIG_STATUS_POSTCOPY);
	session_progress(s, RMIG_EVENT_POSTCOPY);
	for (;;) {
		type = session_ctrl_recv(s, "a push request", &payload, &len);
		if (type < 0) {
			/* The connection went: a new one carries the tail on, or the VM is
			 * lost. */
			ret = postcopy_source_recover(s, pipeline, type);
			if (ret)
				return ret;
			continue;
		}
		if (type == PROTOCOL_POSTCOPY_DONE)
			break;
		if (type != PROTOCOL_PUSH_REQ)
			return session_fail(s, -EPROTO, "%s sent %s during post-copy",
					    s->conn->peer, protocol_type_name(type));
		ret = postcopy_source_request(s, payload, len);
		if (ret)
			return ret;
		ret = source_send_pages(s, pipeline, NULL, NULL);
		if (ret < 0) {
			ret = postcopy_source_recover(s, pipeline, ret);
			if (ret)
				return ret;
		}
	}
	/* Pulled over connections that were lost: counted at each recovery. */
	postcopy_recover_fetched(s, &fetched, &fetched_bytes);
	ret = protocol_postcopy_done_from_wire(payload, len, &done, why, sizeof(why));
	if (ret)
		return session_fail(s, ret, "%s broke the protocol: %s", s->conn->peer, why);
	/* What was never asked for was pulled by the destination's faults: each page once. */
	for (size_t i = 0; i < s->nregions; i++) {
		struct session_region *r = &s->regions[i];
		size_t start, n, from = 0;

		while (dirty_bitmap_next_run(r->postcopy, r->npages, from, &start, &n)) {
			for (size_t p = start; p < start + n; p++) {
				if (r->src.send_count[p] < UINT8_MAX)
					r->src.send_count[p]++;
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
	ret = transport_ctrl_send(s->conn, s->msg_buf, protocol_postcopy_end_to_wire(s->msg_buf));
	if (ret)
		/* Every page is there: the destination completes without the acknowledgement
		 * (it waits a while for this side to come back and say it). */
		rmig_log_warn("source: the end of post-copy did not reach %s (%s): every page is "
			      "there, the migration is complete",
			      s->conn->peer, session_strerror(ret));
	return 0;
}
