/* SPDX-License-Identifier: MIT */
/* engine/protocol_pages.c - encoders and checked decoders of the control messages that move a
 * migration along once the handshake is done: rounds and their barrier, device state,
 * verification, resume, and the post-copy tail's page bitmaps and counts. The header, the
 * handshake and the shared helpers: protocol.c. */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "engine/protocol.h"
#include "engine/protocol_wire.h"

struct wire_round {
	uint32_t round;
	uint32_t paused;
} __attribute__((packed));

struct wire_round_end {
	uint32_t round;
	uint32_t reserved;
	uint64_t pages;
} __attribute__((packed));

struct wire_device_state {
	uint64_t offset;
	uint32_t length;
	uint32_t last;
} __attribute__((packed));

struct wire_verify_req {
	uint32_t region_id;
	uint32_t reserved;
	uint64_t first_page;
	uint64_t npages;
} __attribute__((packed));

struct wire_verify_runs {
	uint32_t region_id;
	uint32_t count;
} __attribute__((packed));

struct wire_page_run {
	uint64_t first_page;
	uint32_t npages;
	uint32_t reserved;
} __attribute__((packed));

_Static_assert(sizeof(struct wire_page_run) == 16, "wire_page_run layout");
_Static_assert(sizeof(struct protocol_hdr) + sizeof(struct wire_verify_runs) +
			       PROTOCOL_VERIFY_RUNS_MAX * sizeof(struct wire_page_run) <=
		       TRANSPORT_CTRL_MAX,
	       "verify-runs fits a control message");

struct wire_verify_hashes {
	uint32_t region_id;
	uint32_t count;
	uint64_t first_page;
} __attribute__((packed));

struct wire_resume {
	uint64_t pages_verified;
	uint64_t pages_mismatched;
} __attribute__((packed));

struct wire_resumed {
	int32_t status;
	uint32_t reserved;
	uint64_t pages_received;
} __attribute__((packed));

struct wire_page_bitmap {
	uint32_t region_id;
	uint32_t nwords;
	uint64_t first_word;
} __attribute__((packed));

struct wire_postcopy_begin {
	uint64_t pages;
} __attribute__((packed));

struct wire_postcopy_ready {
	uint32_t count;
	uint32_t reserved;
} __attribute__((packed));

struct wire_staging {
	uint32_t region_id;
	uint32_t staging_id;
} __attribute__((packed));

struct wire_postcopy_done {
	uint64_t pages_pushed;
	uint64_t pages_fetched;
	uint64_t faults;
	uint64_t stall_us;
} __attribute__((packed));

_Static_assert(sizeof(struct protocol_hdr) + sizeof(struct wire_page_bitmap) +
			       PROTOCOL_BITMAP_WORDS_MAX * 8u <=
		       TRANSPORT_CTRL_MAX,
	       "a page bitmap fits a control message");
_Static_assert(sizeof(struct protocol_hdr) + sizeof(struct wire_postcopy_ready) +
			       PROTOCOL_REGIONS_MAX * sizeof(struct wire_staging) <=
		       TRANSPORT_CTRL_MAX,
	       "the staging table fits a control message");
_Static_assert(sizeof(struct protocol_hdr) + sizeof(struct wire_verify_hashes) +
			       PROTOCOL_HASHES_MAX * 8u <=
		       TRANSPORT_CTRL_MAX,
	       "verify hashes fit a control message");
_Static_assert(sizeof(struct protocol_hdr) + sizeof(struct wire_device_state) +
			       PROTOCOL_DEVICE_CHUNK <=
		       TRANSPORT_CTRL_MAX,
	       "device state fits a control message");

size_t protocol_round_to_wire(const struct protocol_round *m, void *buf)
{
	struct wire_round w = {.round = htole32(m->round), .paused = htole32(m->paused)};

	memcpy(protocol_payload(buf), &w, sizeof(w));
	return protocol_finish(buf, PROTOCOL_ROUND, sizeof(w));
}

int protocol_round_from_wire(const void *payload, size_t len, struct protocol_round *m, char *why,
			     size_t why_len)
{
	struct wire_round w;
	int ret;

	ret = protocol_expect_len("round", len, sizeof(w), why, why_len);
	if (ret)
		return ret;
	memcpy(&w, payload, sizeof(w));
	m->round = le32toh(w.round);
	m->paused = le32toh(w.paused);
	if (m->paused > 1) {
		snprintf(why, why_len, "round: paused flag %u, expected 0 or 1", m->paused);
		return -EPROTO;
	}
	return 0;
}

size_t protocol_round_end_to_wire(int type, const struct protocol_round_end *m, void *buf)
{
	struct wire_round_end w = {.round = htole32(m->round), .pages = htole64(m->pages)};

	memcpy(protocol_payload(buf), &w, sizeof(w));
	return protocol_finish(buf, type, sizeof(w));
}

int protocol_round_end_from_wire(const void *payload, size_t len, struct protocol_round_end *m,
				 char *why, size_t why_len)
{
	struct wire_round_end w;
	int ret;

	ret = protocol_expect_len("round-end", len, sizeof(w), why, why_len);
	if (ret)
		return ret;
	memcpy(&w, payload, sizeof(w));
	if (w.reserved) {
		snprintf(why, why_len, "round-end: reserved %u, expected 0", le32toh(w.reserved));
		return -EPROTO;
	}
	m->round = le32toh(w.round);
	m->pages = le64toh(w.pages);
	return 0;
}

size_t protocol_device_state_to_wire(const struct protocol_device_state *m, void *buf)
{
	uint64_t digest = htole64(m->digest);
	uint32_t length = m->last ? (uint32_t)sizeof(digest) : m->length;
	struct wire_device_state w = {
		.offset = htole64(m->offset),
		.length = htole32(length),
		.last = htole32(m->last),
	};
	char *p = protocol_payload(buf);

	memcpy(p, &w, sizeof(w));
	if (m->last)
		memcpy(p + sizeof(w), &digest, sizeof(digest));
	else if (length)
		memcpy(p + sizeof(w), m->data, length);
	return protocol_finish(buf, PROTOCOL_DEVICE_STATE, sizeof(w) + length);
}

int protocol_device_state_from_wire(const void *payload, size_t len,
				    struct protocol_device_state *m, char *why, size_t why_len)
{
	struct wire_device_state w;

	if (len < sizeof(w)) {
		snprintf(why, why_len, "device-state message of %zu bytes, too short", len);
		return -EPROTO;
	}
	memcpy(&w, payload, sizeof(w));
	m->offset = le64toh(w.offset);
	m->length = le32toh(w.length);
	m->last = le32toh(w.last);
	if (m->length > PROTOCOL_DEVICE_CHUNK || len != sizeof(w) + m->length) {
		snprintf(why, why_len, "device-state: length field %u does not match %zu bytes",
			 m->length, len - sizeof(w));
		return -EPROTO;
	}
	if (m->last > 1) {
		snprintf(why, why_len, "device-state: last flag %u, expected 0 or 1", m->last);
		return -EPROTO;
	}
	m->data = (const char *)payload + sizeof(w);
	m->digest = 0;
	if (m->last) {
		uint64_t digest;

		if (m->length != sizeof(digest)) {
			snprintf(
				why, why_len,
				"device-state: the last message carries %u bytes, not the 8 of its "
				"digest",
				m->length);
			return -EPROTO;
		}
		memcpy(&digest, m->data, sizeof(digest));
		m->digest = le64toh(digest);
		m->length = 0;
	}
	return 0;
}

size_t protocol_verify_req_to_wire(const struct protocol_verify_req *m, void *buf)
{
	struct wire_verify_req w = {
		.region_id = htole32(m->region_id),
		.first_page = htole64(m->first_page),
		.npages = htole64(m->npages),
	};

	memcpy(protocol_payload(buf), &w, sizeof(w));
	return protocol_finish(buf, PROTOCOL_VERIFY_REQ, sizeof(w));
}

int protocol_verify_req_from_wire(const void *payload, size_t len, struct protocol_verify_req *m,
				  char *why, size_t why_len)
{
	struct wire_verify_req w;
	int ret;

	ret = protocol_expect_len("verify-request", len, sizeof(w), why, why_len);
	if (ret)
		return ret;
	memcpy(&w, payload, sizeof(w));
	if (w.reserved) {
		snprintf(why, why_len, "verify-request: reserved %u, expected 0",
			 le32toh(w.reserved));
		return -EPROTO;
	}
	m->region_id = le32toh(w.region_id);
	m->first_page = le64toh(w.first_page);
	m->npages = le64toh(w.npages);
	/* Range against the region is the caller's check: only it knows the region. */
	return 0;
}

size_t protocol_verify_runs_to_wire(uint32_t region_id, const struct protocol_page_run *runs,
				    uint32_t count, void *buf)
{
	struct wire_verify_runs w = {.region_id = htole32(region_id), .count = htole32(count)};
	char *p = protocol_payload(buf);

	memcpy(p, &w, sizeof(w));
	p += sizeof(w);
	for (uint32_t i = 0; i < count; i++) {
		struct wire_page_run r = {
			.first_page = htole64(runs[i].first_page),
			.npages = htole32(runs[i].npages),
		};

		memcpy(p + (size_t)i * sizeof(r), &r, sizeof(r));
	}
	return protocol_finish(buf, PROTOCOL_VERIFY_RUNS,
			       sizeof(w) + (size_t)count * sizeof(struct wire_page_run));
}

int protocol_verify_runs_from_wire(const void *payload, size_t len, struct protocol_verify_runs *m,
				   char *why, size_t why_len)
{
	struct wire_verify_runs w;
	uint64_t end = 0;

	if (len < sizeof(w)) {
		snprintf(why, why_len, "verify-runs message of %zu bytes, too short", len);
		return -EPROTO;
	}
	memcpy(&w, payload, sizeof(w));
	m->region_id = le32toh(w.region_id);
	m->count = le32toh(w.count);
	m->runs = (const uint8_t *)payload + sizeof(w);
	m->pages = 0;
	if (m->count == 0 || m->count > PROTOCOL_VERIFY_RUNS_MAX ||
	    len != sizeof(w) + (size_t)m->count * sizeof(struct wire_page_run)) {
		snprintf(why, why_len, "verify-runs: count %u does not match %zu bytes", m->count,
			 len - sizeof(w));
		return -EPROTO;
	}
	for (uint32_t i = 0; i < m->count; i++) {
		struct wire_page_run r;
		uint64_t first;
		uint32_t npages;

		memcpy(&r, m->runs + (size_t)i * sizeof(r), sizeof(r));
		first = le64toh(r.first_page);
		npages = le32toh(r.npages);
		if (r.reserved || npages == 0 || (i && first < end) ||
		    first > UINT64_MAX - npages) {
			snprintf(why, why_len,
				 "verify-runs: run %u (pages %llu+%u, reserved %u) is empty, "
				 "overlaps the one before or is out of order",
				 i, (unsigned long long)first, npages, le32toh(r.reserved));
			return -EPROTO;
		}
		end = first + npages;
		m->pages += npages;
		if (m->pages > PROTOCOL_HASHES_MAX) {
			snprintf(why, why_len,
				 "verify-runs: more than %u pages, more than one answer holds",
				 (unsigned)PROTOCOL_HASHES_MAX);
			return -EPROTO;
		}
	}
	return 0;
}

struct protocol_page_run protocol_verify_run_at(const struct protocol_verify_runs *m,
						uint32_t index)
{
	struct wire_page_run r;

	memcpy(&r, m->runs + (size_t)index * sizeof(r), sizeof(r));
	return (struct protocol_page_run){.first_page = le64toh(r.first_page),
					  .npages = le32toh(r.npages)};
}

size_t protocol_verify_hashes_to_wire(uint32_t region_id, uint64_t first_page,
				      const uint64_t *hashes, uint32_t count, void *buf)
{
	struct wire_verify_hashes w = {
		.region_id = htole32(region_id),
		.count = htole32(count),
		.first_page = htole64(first_page),
	};
	char *p = protocol_payload(buf);

	memcpy(p, &w, sizeof(w));
	p += sizeof(w);
	for (uint32_t i = 0; i < count; i++) {
		uint64_t h = htole64(hashes[i]);

		memcpy(p + (size_t)i * 8u, &h, 8);
	}
	return protocol_finish(buf, PROTOCOL_VERIFY_HASHES, sizeof(w) + (size_t)count * 8u);
}

int protocol_verify_hashes_from_wire(const void *payload, size_t len,
				     struct protocol_verify_hashes *m, char *why, size_t why_len)
{
	struct wire_verify_hashes w;

	if (len < sizeof(w)) {
		snprintf(why, why_len, "verify-hashes message of %zu bytes, too short", len);
		return -EPROTO;
	}
	memcpy(&w, payload, sizeof(w));
	m->region_id = le32toh(w.region_id);
	m->count = le32toh(w.count);
	m->first_page = le64toh(w.first_page);
	if (m->count == 0 || m->count > PROTOCOL_HASHES_MAX ||
	    len != sizeof(w) + (size_t)m->count * 8u) {
		snprintf(why, why_len, "verify-hashes: count %u does not match %zu bytes", m->count,
			 len - sizeof(w));
		return -EPROTO;
	}
	m->hashes = (const uint8_t *)payload + sizeof(w);
	return 0;
}

uint64_t protocol_hash_at(const struct protocol_verify_hashes *m, uint32_t index)
{
	uint64_t h;

	memcpy(&h, m->hashes + (size_t)index * 8u, 8);
	return le64toh(h);
}

size_t protocol_resume_to_wire(const struct protocol_resume *m, void *buf)
{
	struct wire_resume w = {
		.pages_verified = htole64(m->pages_verified),
		.pages_mismatched = htole64(m->pages_mismatched),
	};

	memcpy(protocol_payload(buf), &w, sizeof(w));
	return protocol_finish(buf, PROTOCOL_RESUME, sizeof(w));
}

int protocol_resume_from_wire(const void *payload, size_t len, struct protocol_resume *m, char *why,
			      size_t why_len)
{
	struct wire_resume w;
	int ret;

	ret = protocol_expect_len("resume", len, sizeof(w), why, why_len);
	if (ret)
		return ret;
	memcpy(&w, payload, sizeof(w));
	m->pages_verified = le64toh(w.pages_verified);
	m->pages_mismatched = le64toh(w.pages_mismatched);
	if (m->pages_mismatched > m->pages_verified) {
		snprintf(why, why_len, "resume: %llu mismatched of %llu verified pages",
			 (unsigned long long)m->pages_mismatched,
			 (unsigned long long)m->pages_verified);
		return -EPROTO;
	}
	return 0;
}

size_t protocol_resumed_to_wire(const struct protocol_resumed *m, void *buf)
{
	struct wire_resumed w = {
		.status = (int32_t)htole32((uint32_t)m->status),
		.pages_received = htole64(m->pages_received),
	};

	memcpy(protocol_payload(buf), &w, sizeof(w));
	return protocol_finish(buf, PROTOCOL_RESUMED, sizeof(w));
}

int protocol_resumed_from_wire(const void *payload, size_t len, struct protocol_resumed *m,
			       char *why, size_t why_len)
{
	struct wire_resumed w;
	int ret;

	ret = protocol_expect_len("resumed", len, sizeof(w), why, why_len);
	if (ret)
		return ret;
	memcpy(&w, payload, sizeof(w));
	m->status = (int32_t)le32toh((uint32_t)w.status);
	m->pages_received = le64toh(w.pages_received);
	if (m->status > 0 || m->status < -4095 || w.reserved) {
		snprintf(why, why_len, "resumed: status %d is not 0 or -errno", m->status);
		return -EPROTO;
	}
	return 0;
}

size_t protocol_page_bitmap_to_wire(int type, uint32_t region_id, uint64_t first_word,
				    const uint64_t *words, uint32_t nwords, void *buf)
{
	struct wire_page_bitmap w = {
		.region_id = htole32(region_id),
		.nwords = htole32(nwords),
		.first_word = htole64(first_word),
	};
	char *p = protocol_payload(buf);

	memcpy(p, &w, sizeof(w));
	p += sizeof(w);
	for (uint32_t i = 0; i < nwords; i++) {
		uint64_t word = htole64(words[i]);

		memcpy(p + (size_t)i * 8u, &word, 8);
	}
	return protocol_finish(buf, type, sizeof(w) + (size_t)nwords * 8u);
}

int protocol_page_bitmap_from_wire(const void *payload, size_t len, struct protocol_page_bitmap *m,
				   char *why, size_t why_len)
{
	struct wire_page_bitmap w;

	if (len < sizeof(w)) {
		snprintf(why, why_len, "page bitmap message of %zu bytes, too short", len);
		return -EPROTO;
	}
	memcpy(&w, payload, sizeof(w));
	m->region_id = le32toh(w.region_id);
	m->nwords = le32toh(w.nwords);
	m->first_word = le64toh(w.first_word);
	if (m->nwords == 0 || m->nwords > PROTOCOL_BITMAP_WORDS_MAX ||
	    len != sizeof(w) + (size_t)m->nwords * 8u) {
		snprintf(why, why_len, "page bitmap: %u words do not match %zu bytes", m->nwords,
			 len - sizeof(w));
		return -EPROTO;
	}
	if (m->first_word > UINT64_MAX / 64u - m->nwords) {
		snprintf(why, why_len, "page bitmap: first word %llu out of range",
			 (unsigned long long)m->first_word);
		return -EPROTO;
	}
	m->words = (const uint8_t *)payload + sizeof(w);
	return 0;
}

uint64_t protocol_word_at(const struct protocol_page_bitmap *m, uint32_t index)
{
	uint64_t word;

	memcpy(&word, m->words + (size_t)index * 8u, 8);
	return le64toh(word);
}

size_t protocol_postcopy_begin_to_wire(const struct protocol_postcopy_begin *m, void *buf)
{
	struct wire_postcopy_begin w = {.pages = htole64(m->pages)};

	memcpy(protocol_payload(buf), &w, sizeof(w));
	return protocol_finish(buf, PROTOCOL_POSTCOPY_BEGIN, sizeof(w));
}

int protocol_postcopy_begin_from_wire(const void *payload, size_t len,
				      struct protocol_postcopy_begin *m, char *why, size_t why_len)
{
	struct wire_postcopy_begin w;
	int ret;

	ret = protocol_expect_len("postcopy-begin", len, sizeof(w), why, why_len);
	if (ret)
		return ret;
	memcpy(&w, payload, sizeof(w));
	m->pages = le64toh(w.pages);
	return 0;
}

size_t protocol_postcopy_ready_to_wire(const struct protocol_staging *staging, size_t count,
				       void *buf)
{
	struct wire_postcopy_ready r = {.count = htole32((uint32_t)count)};
	char *p = protocol_payload(buf);

	memcpy(p, &r, sizeof(r));
	p += sizeof(r);
	for (size_t i = 0; i < count; i++) {
		struct wire_staging e = {
			.region_id = htole32(staging[i].region_id),
			.staging_id = htole32(staging[i].staging_id),
		};

		memcpy(p + i * sizeof(e), &e, sizeof(e));
	}
	return protocol_finish(buf, PROTOCOL_POSTCOPY_READY,
			       sizeof(r) + count * sizeof(struct wire_staging));
}

int protocol_postcopy_ready_from_wire(const void *payload, size_t len,
				      struct protocol_staging *staging, size_t *count_p, char *why,
				      size_t why_len)
{
	struct wire_postcopy_ready r;
	uint32_t count;

	if (len < sizeof(r)) {
		snprintf(why, why_len, "postcopy-ready message of %zu bytes, too short", len);
		return -EPROTO;
	}
	memcpy(&r, payload, sizeof(r));
	count = le32toh(r.count);
	if (count == 0 || count > PROTOCOL_REGIONS_MAX || r.reserved ||
	    len != sizeof(r) + (size_t)count * sizeof(struct wire_staging)) {
		snprintf(why, why_len,
			 "postcopy-ready: %u entries (reserved %u) do not fill %zu bytes", count,
			 le32toh(r.reserved), len);
		return -EPROTO;
	}
	for (uint32_t i = 0; i < count; i++) {
		struct wire_staging e;

		memcpy(&e, (const char *)payload + sizeof(r) + (size_t)i * sizeof(e), sizeof(e));
		staging[i].region_id = le32toh(e.region_id);
		staging[i].staging_id = le32toh(e.staging_id);
	}
	*count_p = count;
	return 0;
}

size_t protocol_postcopy_done_to_wire(const struct protocol_postcopy_done *m, void *buf)
{
	struct wire_postcopy_done w = {
		.pages_pushed = htole64(m->pages_pushed),
		.pages_fetched = htole64(m->pages_fetched),
		.faults = htole64(m->faults),
		.stall_us = htole64(m->stall_us),
	};

	memcpy(protocol_payload(buf), &w, sizeof(w));
	return protocol_finish(buf, PROTOCOL_POSTCOPY_DONE, sizeof(w));
}

int protocol_postcopy_done_from_wire(const void *payload, size_t len,
				     struct protocol_postcopy_done *m, char *why, size_t why_len)
{
	struct wire_postcopy_done w;
	int ret;

	ret = protocol_expect_len("postcopy-done", len, sizeof(w), why, why_len);
	if (ret)
		return ret;
	memcpy(&w, payload, sizeof(w));
	m->pages_pushed = le64toh(w.pages_pushed);
	m->pages_fetched = le64toh(w.pages_fetched);
	m->faults = le64toh(w.faults);
	m->stall_us = le64toh(w.stall_us);
	return 0;
}

size_t protocol_postcopy_end_to_wire(void *buf)
{
	return protocol_finish(buf, PROTOCOL_POSTCOPY_END, 0);
}
