/* SPDX-License-Identifier: MIT */
/* tests/fuzz/fuzz_protocol.c - arbitrary bytes into every parser of the engine protocol
 * (engine/protocol.c, protocol_pages.c): the header check and the 17 payload decoders. One
 * target for all of them: they share one header and one dispatch on its type, which is how a
 * receiver meets them, and a decoder reached through the header gets the inputs a peer can
 * really send.
 *
 * The first input byte picks the entry: 1..PROTOCOL_TYPE_MAX hand the rest straight to that
 * type's decoder (so the fuzzer works on fields, not on the header's magic); anything else hands
 * the rest to protocol_parse() as a whole message and then to the decoder its type names.
 * A decoder must never read past its input, must name a field when it refuses, and whatever it
 * accepts must satisfy what protocol.h promises and encode back to the same bytes. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "engine/protocol.h"

#define FUZZ_HDR_LEN sizeof(struct protocol_hdr)

/* Re-encoded messages; every accepted message fits one control message. */
static uint8_t encoded[TRANSPORT_CTRL_MAX];

/* A refusal is -EPROTO with a reason; anything else is 0. */
static int fuzz_verdict(int ret, const char *why)
{
	FUZZ_CHECK(ret == 0 || ret == -EPROTO);
	if (ret)
		FUZZ_CHECK(why[0] != '\0' && strlen(why) < TRANSPORT_ERROR_MAX);
	return ret;
}

/* What the encoder wrote must be a whole message of type whose payload is the accepted one. */
static void fuzz_same_payload(size_t encoded_len, int type, const void *payload, size_t len)
{
	const void *again;
	size_t again_len;
	char why[TRANSPORT_ERROR_MAX] = "";

	FUZZ_CHECK(encoded_len == FUZZ_HDR_LEN + len);
	FUZZ_CHECK(protocol_parse(encoded, encoded_len, &again, &again_len, why, sizeof(why)) ==
		   type);
	FUZZ_CHECK(again_len == len);
	FUZZ_CHECK(!memcmp(again, payload, len));
}

static void fuzz_hello(const void *p, size_t len)
{
	char why[TRANSPORT_ERROR_MAX] = "";
	struct protocol_hello m;

	if (fuzz_verdict(protocol_hello_from_wire(p, len, &m, why, sizeof(why)), why))
		return;
	FUZZ_CHECK(m.protocol_version == PROTOCOL_VERSION);
	FUZZ_CHECK(m.region_count >= 1 && m.region_count <= PROTOCOL_REGIONS_MAX);
	FUZZ_CHECK(!(m.flags & ~PROTOCOL_HELLO_KEY));
	fuzz_same_payload(protocol_hello_to_wire(&m, encoded), PROTOCOL_HELLO, p, len);
}

static void fuzz_hello_ack(const void *p, size_t len)
{
	char why[TRANSPORT_ERROR_MAX] = "";
	struct protocol_hello_ack m;

	if (fuzz_verdict(protocol_hello_ack_from_wire(p, len, &m, why, sizeof(why)), why))
		return;
	FUZZ_CHECK(!(m.flags & ~(PROTOCOL_HELLO_KEY | PROTOCOL_HELLO_POSTCOPY)));
	fuzz_same_payload(protocol_hello_ack_to_wire(&m, encoded), PROTOCOL_HELLO_ACK, p, len);
}

static void fuzz_auth(const void *p, size_t len)
{
	char why[TRANSPORT_ERROR_MAX] = "";
	uint8_t mac[PROTOCOL_MAC_LEN];

	if (fuzz_verdict(protocol_auth_from_wire(p, len, mac, why, sizeof(why)), why))
		return;
	fuzz_same_payload(protocol_auth_to_wire(mac, encoded), PROTOCOL_AUTH, p, len);
}

static void fuzz_region_table(const void *p, size_t len)
{
	static struct protocol_region regions[PROTOCOL_REGIONS_MAX];
	char why[TRANSPORT_ERROR_MAX] = "";
	size_t count = 0;

	if (fuzz_verdict(protocol_region_table_from_wire(p, len, regions, &count, why, sizeof(why)),
			 why))
		return;
	FUZZ_CHECK(count >= 1 && count <= PROTOCOL_REGIONS_MAX);
	for (size_t i = 0; i < count; i++) {
		FUZZ_CHECK(regions[i].page_shift >= 12 && regions[i].page_shift <= 30);
		FUZZ_CHECK(regions[i].length != 0);
		FUZZ_CHECK(!(regions[i].length & ((1ull << regions[i].page_shift) - 1)));
		for (size_t j = 0; j < i; j++)
			FUZZ_CHECK(regions[j].id != regions[i].id);
	}
	fuzz_same_payload(protocol_region_table_to_wire(regions, count, encoded),
			  PROTOCOL_REGION_TABLE, p, len);
}

static void fuzz_pull(int type, const void *p, size_t len)
{
	char why[TRANSPORT_ERROR_MAX] = "";
	struct protocol_pull m;

	if (fuzz_verdict(protocol_pull_from_wire(p, len, &m, why, sizeof(why)), why))
		return;
	FUZZ_CHECK(!(m.flags & ~(PROTOCOL_PULL_MEASURED | PROTOCOL_PULL_FAILED)));
	FUZZ_CHECK((m.flags & (PROTOCOL_PULL_MEASURED | PROTOCOL_PULL_FAILED)) !=
		   (PROTOCOL_PULL_MEASURED | PROTOCOL_PULL_FAILED));
	if (m.flags & PROTOCOL_PULL_MEASURED)
		FUZZ_CHECK(m.pulls != 0 && m.pull_bytes != 0);
	fuzz_same_payload(protocol_pull_to_wire(type, &m, encoded), type, p, len);
}

static void fuzz_round(const void *p, size_t len)
{
	char why[TRANSPORT_ERROR_MAX] = "";
	struct protocol_round m;

	if (fuzz_verdict(protocol_round_from_wire(p, len, &m, why, sizeof(why)), why))
		return;
	FUZZ_CHECK(m.paused <= 1);
	fuzz_same_payload(protocol_round_to_wire(&m, encoded), PROTOCOL_ROUND, p, len);
}

static void fuzz_round_end(int type, const void *p, size_t len)
{
	char why[TRANSPORT_ERROR_MAX] = "";
	struct protocol_round_end m;

	if (fuzz_verdict(protocol_round_end_from_wire(p, len, &m, why, sizeof(why)), why))
		return;
	fuzz_same_payload(protocol_round_end_to_wire(type, &m, encoded), type, p, len);
}

static void fuzz_device_state(const void *p, size_t len)
{
	char why[TRANSPORT_ERROR_MAX] = "";
	struct protocol_device_state m;

	if (fuzz_verdict(protocol_device_state_from_wire(p, len, &m, why, sizeof(why)), why))
		return;
	FUZZ_CHECK(m.length <= PROTOCOL_DEVICE_CHUNK && m.last <= 1);
	/* The chunk lies inside the message, at its end; the last carries no state, only the
	 * 8 bytes of its digest. */
	FUZZ_CHECK(!m.last || m.length == 0);
	FUZZ_CHECK((const uint8_t *)m.data + (m.last ? 8u : m.length) == (const uint8_t *)p + len);
	fuzz_same_payload(protocol_device_state_to_wire(&m, encoded), PROTOCOL_DEVICE_STATE, p,
			  len);
}

static void fuzz_verify_req(const void *p, size_t len)
{
	char why[TRANSPORT_ERROR_MAX] = "";
	struct protocol_verify_req m;

	if (fuzz_verdict(protocol_verify_req_from_wire(p, len, &m, why, sizeof(why)), why))
		return;
	fuzz_same_payload(protocol_verify_req_to_wire(&m, encoded), PROTOCOL_VERIFY_REQ, p, len);
}

static void fuzz_verify_hashes(const void *p, size_t len)
{
	static uint64_t hashes[PROTOCOL_HASHES_MAX];
	char why[TRANSPORT_ERROR_MAX] = "";
	struct protocol_verify_hashes m;

	if (fuzz_verdict(protocol_verify_hashes_from_wire(p, len, &m, why, sizeof(why)), why))
		return;
	FUZZ_CHECK(m.count >= 1 && m.count <= PROTOCOL_HASHES_MAX);
	FUZZ_CHECK(m.hashes + (size_t)m.count * 8u == (const uint8_t *)p + len);
	for (uint32_t i = 0; i < m.count; i++)
		hashes[i] = protocol_hash_at(&m, i); /* ASan: every hash lies inside the input */
	fuzz_same_payload(
		protocol_verify_hashes_to_wire(m.region_id, m.first_page, hashes, m.count, encoded),
		PROTOCOL_VERIFY_HASHES, p, len);
}

static void fuzz_verify_runs(const void *p, size_t len)
{
	static struct protocol_page_run runs[PROTOCOL_VERIFY_RUNS_MAX];
	char why[TRANSPORT_ERROR_MAX] = "";
	struct protocol_verify_runs m;
	uint64_t pages = 0;

	if (fuzz_verdict(protocol_verify_runs_from_wire(p, len, &m, why, sizeof(why)), why))
		return;
	FUZZ_CHECK(m.count >= 1 && m.count <= PROTOCOL_VERIFY_RUNS_MAX);
	FUZZ_CHECK(m.runs + (size_t)m.count * 16u == (const uint8_t *)p + len);
	for (uint32_t i = 0; i < m.count; i++) {
		runs[i] = protocol_verify_run_at(&m, i); /* ASan: every run lies inside the input */
		/* What the destination relies on: ascending, no overlap, none empty, no wrap. */
		FUZZ_CHECK(runs[i].npages >= 1);
		FUZZ_CHECK(runs[i].first_page <= UINT64_MAX - runs[i].npages);
		FUZZ_CHECK(!i || runs[i].first_page >= runs[i - 1].first_page + runs[i - 1].npages);
		pages += runs[i].npages;
	}
	FUZZ_CHECK(pages == m.pages && pages <= PROTOCOL_HASHES_MAX);
	fuzz_same_payload(protocol_verify_runs_to_wire(m.region_id, runs, m.count, encoded),
			  PROTOCOL_VERIFY_RUNS, p, len);
}

static void fuzz_page_bitmap(int type, const void *p, size_t len)
{
	static uint64_t words[PROTOCOL_BITMAP_WORDS_MAX];
	char why[TRANSPORT_ERROR_MAX] = "";
	struct protocol_page_bitmap m;

	if (fuzz_verdict(protocol_page_bitmap_from_wire(p, len, &m, why, sizeof(why)), why))
		return;
	FUZZ_CHECK(m.nwords >= 1 && m.nwords <= PROTOCOL_BITMAP_WORDS_MAX);
	/* The window's last page number does not wrap: callers compute it before range checks. */
	FUZZ_CHECK((m.first_word + m.nwords) * 64u / 64u == m.first_word + m.nwords);
	FUZZ_CHECK(m.words + (size_t)m.nwords * 8u == (const uint8_t *)p + len);
	for (uint32_t i = 0; i < m.nwords; i++)
		words[i] = protocol_word_at(&m, i);
	fuzz_same_payload(protocol_page_bitmap_to_wire(type, m.region_id, m.first_word, words,
						       m.nwords, encoded),
			  type, p, len);
}

static void fuzz_postcopy_begin(const void *p, size_t len)
{
	char why[TRANSPORT_ERROR_MAX] = "";
	struct protocol_postcopy_begin m;

	if (fuzz_verdict(protocol_postcopy_begin_from_wire(p, len, &m, why, sizeof(why)), why))
		return;
	fuzz_same_payload(protocol_postcopy_begin_to_wire(&m, encoded), PROTOCOL_POSTCOPY_BEGIN, p,
			  len);
}

static void fuzz_postcopy_ready(const void *p, size_t len)
{
	static struct protocol_staging staging[PROTOCOL_REGIONS_MAX];
	char why[TRANSPORT_ERROR_MAX] = "";
	size_t count = 0;

	if (fuzz_verdict(
		    protocol_postcopy_ready_from_wire(p, len, staging, &count, why, sizeof(why)),
		    why))
		return;
	FUZZ_CHECK(count >= 1 && count <= PROTOCOL_REGIONS_MAX);
	fuzz_same_payload(protocol_postcopy_ready_to_wire(staging, count, encoded),
			  PROTOCOL_POSTCOPY_READY, p, len);
}

static void fuzz_postcopy_done(const void *p, size_t len)
{
	char why[TRANSPORT_ERROR_MAX] = "";
	struct protocol_postcopy_done m;

	if (fuzz_verdict(protocol_postcopy_done_from_wire(p, len, &m, why, sizeof(why)), why))
		return;
	fuzz_same_payload(protocol_postcopy_done_to_wire(&m, encoded), PROTOCOL_POSTCOPY_DONE, p,
			  len);
}

static void fuzz_resume(const void *p, size_t len)
{
	char why[TRANSPORT_ERROR_MAX] = "";
	struct protocol_resume m;

	if (fuzz_verdict(protocol_resume_from_wire(p, len, &m, why, sizeof(why)), why))
		return;
	FUZZ_CHECK(m.pages_mismatched <= m.pages_verified);
	fuzz_same_payload(protocol_resume_to_wire(&m, encoded), PROTOCOL_RESUME, p, len);
}

static void fuzz_resumed(const void *p, size_t len)
{
	char why[TRANSPORT_ERROR_MAX] = "";
	struct protocol_resumed m;

	if (fuzz_verdict(protocol_resumed_from_wire(p, len, &m, why, sizeof(why)), why))
		return;
	FUZZ_CHECK(m.status <= 0 && m.status >= -4095);
	fuzz_same_payload(protocol_resumed_to_wire(&m, encoded), PROTOCOL_RESUMED, p, len);
}

/* The reason reaches logs: whatever the peer sent, it comes out as one printable line of the
 * length the message announced, equal to the input wherever the input was printable. */
static void fuzz_abort(const void *p, size_t len)
{
	static struct protocol_abort m;
	char why[TRANSPORT_ERROR_MAX] = "";
	const uint8_t *reason = (const uint8_t *)p + 8;
	size_t n;

	if (fuzz_verdict(protocol_abort_from_wire(p, len, &m, why, sizeof(why)), why))
		return;
	FUZZ_CHECK(m.code < 0 && m.code >= -4095);
	n = strlen(m.reason);
	FUZZ_CHECK(n == len - 8 && n <= PROTOCOL_REASON_MAX);
	for (size_t i = 0; i < n; i++) {
		uint8_t c = (uint8_t)m.reason[i];

		FUZZ_CHECK(c >= 0x20 && c != 0x7f);
		FUZZ_CHECK(c == reason[i] || (c == '?' && (reason[i] < 0x20 || reason[i] == 0x7f)));
	}
	FUZZ_CHECK(protocol_abort_to_wire(m.code, m.reason, encoded) == FUZZ_HDR_LEN + len);
	FUZZ_CHECK(!memcmp(encoded + FUZZ_HDR_LEN, p, 8)); /* code, reason length */
}

static void fuzz_recover(const void *p, size_t len)
{
	char why[TRANSPORT_ERROR_MAX] = "";
	struct protocol_recover m;

	if (fuzz_verdict(protocol_recover_from_wire(p, len, &m, why, sizeof(why)), why))
		return;
	FUZZ_CHECK(!(m.flags & ~PROTOCOL_HELLO_KEY));
	fuzz_same_payload(protocol_recover_to_wire(&m, encoded), PROTOCOL_RECOVER, p, len);
}

static void fuzz_recover_ack(const void *p, size_t len)
{
	char why[TRANSPORT_ERROR_MAX] = "";
	struct protocol_recover_ack m;

	if (fuzz_verdict(protocol_recover_ack_from_wire(p, len, &m, why, sizeof(why)), why))
		return;
	FUZZ_CHECK(!(m.flags & ~PROTOCOL_HELLO_KEY));
	fuzz_same_payload(protocol_recover_ack_to_wire(&m, encoded), PROTOCOL_RECOVER_ACK, p, len);
}

static void fuzz_recover_ready(const void *p, size_t len)
{
	char why[TRANSPORT_ERROR_MAX] = "";
	struct protocol_recover_ready m;

	if (fuzz_verdict(protocol_recover_ready_from_wire(p, len, &m, why, sizeof(why)), why))
		return;
	fuzz_same_payload(protocol_recover_ready_to_wire(&m, encoded), PROTOCOL_RECOVER_READY, p,
			  len);
}

/* POSTCOPY_END carries nothing: the header alone is the message. */
static void fuzz_postcopy_end(const void *p, size_t len)
{
	(void)p;
	if (len == 0)
		fuzz_same_payload(protocol_postcopy_end_to_wire(encoded), PROTOCOL_POSTCOPY_END, p,
				  len);
}

static void fuzz_payload(int type, const void *p, size_t len)
{
	switch (type) {
	case PROTOCOL_HELLO:
		fuzz_hello(p, len);
		break;
	case PROTOCOL_HELLO_ACK:
		fuzz_hello_ack(p, len);
		break;
	case PROTOCOL_AUTH:
		fuzz_auth(p, len);
		break;
	case PROTOCOL_REGION_TABLE:
		fuzz_region_table(p, len);
		break;
	case PROTOCOL_REGION_ACK:
	case PROTOCOL_PULL_REPORT:
		fuzz_pull(type, p, len);
		break;
	case PROTOCOL_ROUND:
		fuzz_round(p, len);
		break;
	case PROTOCOL_DEVICE_STATE:
		fuzz_device_state(p, len);
		break;
	case PROTOCOL_VERIFY_REQ:
		fuzz_verify_req(p, len);
		break;
	case PROTOCOL_VERIFY_HASHES:
		fuzz_verify_hashes(p, len);
		break;
	case PROTOCOL_VERIFY_RUNS:
		fuzz_verify_runs(p, len);
		break;
	case PROTOCOL_RESUME:
		fuzz_resume(p, len);
		break;
	case PROTOCOL_RESUMED:
		fuzz_resumed(p, len);
		break;
	case PROTOCOL_ABORT:
		fuzz_abort(p, len);
		break;
	case PROTOCOL_ROUND_END:
	case PROTOCOL_ROUND_ACK:
		fuzz_round_end(type, p, len);
		break;
	case PROTOCOL_POSTCOPY_PAGES:
	case PROTOCOL_PUSH_REQ:
	case PROTOCOL_RECOVER_PAGES:
		fuzz_page_bitmap(type, p, len);
		break;
	case PROTOCOL_RECOVER:
		fuzz_recover(p, len);
		break;
	case PROTOCOL_RECOVER_ACK:
		fuzz_recover_ack(p, len);
		break;
	case PROTOCOL_RECOVER_READY:
		fuzz_recover_ready(p, len);
		break;
	case PROTOCOL_POSTCOPY_BEGIN:
		fuzz_postcopy_begin(p, len);
		break;
	case PROTOCOL_POSTCOPY_READY:
		fuzz_postcopy_ready(p, len);
		break;
	case PROTOCOL_POSTCOPY_DONE:
		fuzz_postcopy_done(p, len);
		break;
	case PROTOCOL_POSTCOPY_END:
		fuzz_postcopy_end(p, len);
		break;
	case PROTOCOL_HEARTBEAT:
		break; /* nothing to decode: receivers take only an empty one as a heartbeat */
	default:
		FUZZ_CHECK(!"a type protocol_parse accepted has a decoder here");
	}
}

/* As a receiver meets it: the header, then the decoder its type names. */
static void fuzz_message(const uint8_t *buf, size_t len)
{
	char why[TRANSPORT_ERROR_MAX] = "";
	const void *payload = NULL;
	size_t payload_len = 0;
	int type;

	type = protocol_parse(buf, len, &payload, &payload_len, why, sizeof(why));
	if (type < 0) {
		fuzz_verdict(type, why);
		return;
	}
	FUZZ_CHECK(type >= 1 && type <= PROTOCOL_TYPE_MAX);
	FUZZ_CHECK(strcmp(protocol_type_name(type), "unknown") != 0);
	FUZZ_CHECK(payload == buf + FUZZ_HDR_LEN && payload_len == len - FUZZ_HDR_LEN);
	fuzz_payload(type, payload, payload_len);
}

/* Inputs are copied to a buffer of their exact size so ASan sees any read past the end. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t selector, *copy;

	if (size == 0)
		return 0;
	selector = data[0];
	copy = fuzz_copy_after_selector(data, size--);
	if (!copy)
		return 0;
	if (selector >= 1 && selector <= PROTOCOL_TYPE_MAX)
		fuzz_payload(selector, copy, size);
	else
		fuzz_message(copy, size);
	free(copy);
	return 0;
}
