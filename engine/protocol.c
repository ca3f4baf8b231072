/* SPDX-License-Identifier: MIT */
/* engine/protocol.c - encoders and checked decoders of the engine's control messages.
 * Wire structs are packed little-endian with explicit padding; decoders refuse any message
 * whose length, counts or reserved fields do not add up, naming the field. This file: the
 * header, the handshake (hello, key proof, region table, test pulls), abort and post-copy
 * recovery's proofs; protocol_pages.c: rounds, pages, device state, verification, resume and
 * the post-copy tail's messages. */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "engine/protocol.h"
#include "engine/protocol_wire.h"

struct wire_hello {
	uint32_t protocol_version;
	uint32_t method;
	uint32_t region_count;
	uint32_t flags;
	uint8_t nonce[PROTOCOL_NONCE_LEN];
} __attribute__((packed));

struct wire_hello_ack {
	uint32_t flags;
	uint32_t reserved;
	uint8_t nonce[PROTOCOL_NONCE_LEN];
	uint8_t mac[PROTOCOL_MAC_LEN];
} __attribute__((packed));

struct wire_recover {
	uint32_t flags;
	uint32_t reserved;
	uint8_t session_id[PROTOCOL_MAC_LEN];
	uint8_t nonce[PROTOCOL_NONCE_LEN];
} __attribute__((packed));

struct wire_recover_ready {
	uint64_t pages_missing;
} __attribute__((packed));

struct wire_auth {
	uint8_t mac[PROTOCOL_MAC_LEN];
} __attribute__((packed));

struct wire_region_table {
	uint32_t count;
	uint32_t reserved;
} __attribute__((packed));

struct wire_region_entry {
	uint32_t id;
	uint32_t page_shift;
	uint64_t length;
} __attribute__((packed));

struct wire_pull {
	uint32_t flags;
	uint32_t pull_us;
	uint32_t pull_bytes;
	uint32_t pulls;
} __attribute__((packed));

struct wire_abort {
	int32_t code;
	uint32_t reason_len;
} __attribute__((packed));

_Static_assert(sizeof(struct protocol_hdr) == 16, "protocol_hdr layout");
_Static_assert(sizeof(struct wire_hello) == 48, "wire_hello layout");
_Static_assert(sizeof(struct wire_region_entry) == 16, "wire_region_entry layout");
_Static_assert(sizeof(struct protocol_hdr) + sizeof(struct wire_region_table) +
			       PROTOCOL_REGIONS_MAX * sizeof(struct wire_region_entry) <=
		       TRANSPORT_CTRL_MAX,
	       "region table fits a control message");

static const char *const protocol_type_names[] = {
	[PROTOCOL_HELLO] = "hello",
	[PROTOCOL_HELLO_ACK] = "hello-ack",
	[PROTOCOL_AUTH] = "auth",
	[PROTOCOL_REGION_TABLE] = "region-table",
	[PROTOCOL_REGION_ACK] = "region-ack",
	[PROTOCOL_ROUND] = "round",
	[PROTOCOL_DEVICE_STATE] = "device-state",
	[PROTOCOL_VERIFY_REQ] = "verify-request",
	[PROTOCOL_VERIFY_HASHES] = "verify-hashes",
	[PROTOCOL_RESUME] = "resume",
	[PROTOCOL_RESUMED] = "resumed",
	[PROTOCOL_ABORT] = "abort",
	[PROTOCOL_ROUND_END] = "round-end",
	[PROTOCOL_ROUND_ACK] = "round-ack",
	[PROTOCOL_POSTCOPY_PAGES] = "postcopy-pages",
	[PROTOCOL_POSTCOPY_BEGIN] = "postcopy-begin",
	[PROTOCOL_POSTCOPY_READY] = "postcopy-ready",
	[PROTOCOL_PUSH_REQ] = "push-request",
	[PROTOCOL_POSTCOPY_DONE] = "postcopy-done",
	[PROTOCOL_POSTCOPY_END] = "postcopy-end",
	[PROTOCOL_PULL_REPORT] = "pull-report",
	[PROTOCOL_HEARTBEAT] = "heartbeat",
	[PROTOCOL_RECOVER] = "recover",
	[PROTOCOL_RECOVER_ACK] = "recover-ack",
	[PROTOCOL_RECOVER_PAGES] = "recover-pages",
	[PROTOCOL_RECOVER_READY] = "recover-ready",
	[PROTOCOL_VERIFY_RUNS] = "verify-runs",
};

const char *protocol_type_name(int type)
{
	if (type <= 0 || type > PROTOCOL_TYPE_MAX)
		return "unknown";
	return protocol_type_names[type];
}

size_t protocol_finish(void *buf, int type, size_t payload_len)
{
	struct protocol_hdr hdr = {
		.magic = htole32(PROTOCOL_MAGIC),
		.version = htole16(PROTOCOL_VERSION),
		.type = htole16((uint16_t)type),
		.length = htole32((uint32_t)(sizeof(hdr) + payload_len)),
	};

	memcpy(buf, &hdr, sizeof(hdr));
	return sizeof(hdr) + payload_len;
}

void *protocol_payload(void *buf)
{
	return (char *)buf + sizeof(struct protocol_hdr);
}

int protocol_parse(const void *buf, size_t len, const void **payload_p, size_t *payload_len_p,
		   char *why, size_t why_len)
{
	struct protocol_hdr hdr;
	unsigned type;

	if (len < sizeof(hdr)) {
		snprintf(why, why_len, "control message of %zu bytes, shorter than its header",
			 len);
		return -EPROTO;
	}
	memcpy(&hdr, buf, sizeof(hdr));
	if (le32toh(hdr.magic) != PROTOCOL_MAGIC) {
		snprintf(why, why_len, "control message magic 0x%08x, expected 0x%08x",
			 le32toh(hdr.magic), PROTOCOL_MAGIC);
		return -EPROTO;
	}
	if (le16toh(hdr.version) != PROTOCOL_VERSION) {
		snprintf(why, why_len, "engine protocol version %u, this side speaks %u",
			 le16toh(hdr.version), PROTOCOL_VERSION);
		return -EPROTO;
	}
	if (le32toh(hdr.length) != len) {
		snprintf(why, why_len, "control message length field %u, message is %zu bytes",
			 le32toh(hdr.length), len);
		return -EPROTO;
	}
	type = le16toh(hdr.type);
	if (type == 0 || type > PROTOCOL_TYPE_MAX) {
		snprintf(why, why_len, "control message type %u unknown", type);
		return -EPROTO;
	}
	if (hdr.reserved) {
		snprintf(why, why_len, "control message reserved field %u, expected 0",
			 le32toh(hdr.reserved));
		return -EPROTO;
	}
	*payload_p = (const char *)buf + sizeof(hdr);
	*payload_len_p = len - sizeof(hdr);
	return (int)type;
}

int protocol_expect_len(const char *what, size_t len, size_t want, char *why, size_t why_len)
{
	if (len != want) {
		snprintf(why, why_len, "%s message of %zu bytes, expected %zu", what, len, want);
		return -EPROTO;
	}
	return 0;
}

size_t protocol_hello_to_wire(const struct protocol_hello *m, void *buf)
{
	struct wire_hello w = {
		.protocol_version = htole32(m->protocol_version),
		.method = htole32(m->method),
		.region_count = htole32(m->region_count),
		.flags = htole32(m->flags),
	};

	memcpy(w.nonce, m->nonce, sizeof(w.nonce));
	memcpy(protocol_payload(buf), &w, sizeof(w));
	return protocol_finish(buf, PROTOCOL_HELLO, sizeof(w));
}

int protocol_hello_from_wire(const void *payload, size_t len, struct protocol_hello *m, char *why,
			     size_t why_len)
{
	struct wire_hello w;
	int ret;

	ret = protocol_expect_len("hello", len, sizeof(w), why, why_len);
	if (ret)
		return ret;
	memcpy(&w, payload, sizeof(w));
	m->protocol_version = le32toh(w.protocol_version);
	m->method = le32toh(w.method);
	m->region_count = le32toh(w.region_count);
	m->flags = le32toh(w.flags);
	memcpy(m->nonce, w.nonce, sizeof(m->nonce));
	if (m->protocol_version != PROTOCOL_VERSION) {
		snprintf(why, why_len, "hello: protocol version %u, this side speaks %u",
			 m->protocol_version, PROTOCOL_VERSION);
		return -EPROTO;
	}
	if (m->region_count == 0 || m->region_count > PROTOCOL_REGIONS_MAX) {
		snprintf(why, why_len, "hello: region count %u outside 1..%u", m->region_count,
			 PROTOCOL_REGIONS_MAX);
		return -EPROTO;
	}
	if (m->flags & ~PROTOCOL_HELLO_KEY) {
		snprintf(why, why_len, "hello: unknown flags 0x%x", m->flags);
		return -EPROTO;
	}
	return 0;
}

size_t protocol_hello_ack_to_wire(const struct protocol_hello_ack *m, void *buf)
{
	struct wire_hello_ack w = {.flags = htole32(m->flags)};

	memcpy(w.nonce, m->nonce, sizeof(w.nonce));
	memcpy(w.mac, m->mac, sizeof(w.mac));
	memcpy(protocol_payload(buf), &w, sizeof(w));
	return protocol_finish(buf, PROTOCOL_HELLO_ACK, sizeof(w));
}

int protocol_hello_ack_from_wire(const void *payload, size_t len, struct protocol_hello_ack *m,
				 char *why, size_t why_len)
{
	struct wire_hello_ack w;
	int ret;

	ret = protocol_expect_len("hello-ack", len, sizeof(w), why, why_len);
	if (ret)
		return ret;
	memcpy(&w, payload, sizeof(w));
	m->flags = le32toh(w.flags);
	if ((m->flags & ~(PROTOCOL_HELLO_KEY | PROTOCOL_HELLO_POSTCOPY)) || w.reserved) {
		snprintf(why, why_len, "hello-ack: unknown flags 0x%x or reserved %u", m->flags,
			 le32toh(w.reserved));
		return -EPROTO;
	}
	memcpy(m->nonce, w.nonce, sizeof(m->nonce));
	memcpy(m->mac, w.mac, sizeof(m->mac));
	return 0;
}

size_t protocol_auth_to_wire(const uint8_t mac[PROTOCOL_MAC_LEN], void *buf)
{
	memcpy(protocol_payload(buf), mac, PROTOCOL_MAC_LEN);
	return protocol_finish(buf, PROTOCOL_AUTH, PROTOCOL_MAC_LEN);
}

size_t protocol_heartbeat_to_wire(void *buf)
{
	return protocol_finish(buf, PROTOCOL_HEARTBEAT, 0);
}

int protocol_auth_from_wire(const void *payload, size_t len, uint8_t mac[PROTOCOL_MAC_LEN],
			    char *why, size_t why_len)
{
	int ret;

	ret = protocol_expect_len("auth", len, PROTOCOL_MAC_LEN, why, why_len);
	if (ret)
		return ret;
	memcpy(mac, payload, PROTOCOL_MAC_LEN);
	return 0;
}

size_t protocol_region_table_to_wire(const struct protocol_region *regions, size_t count, void *buf)
{
	struct wire_region_table t = {.count = htole32((uint32_t)count)};
	char *p = protocol_payload(buf);

	memcpy(p, &t, sizeof(t));
	p += sizeof(t);
	for (size_t i = 0; i < count; i++) {
		struct wire_region_entry e = {
			.id = htole32(regions[i].id),
			.page_shift = htole32(regions[i].page_shift),
			.length = htole64(regions[i].length),
		};

		memcpy(p, &e, sizeof(e));
		p += sizeof(e);
	}
	return protocol_finish(buf, PROTOCOL_REGION_TABLE,
			       sizeof(t) + count * sizeof(struct wire_region_entry));
}

int protocol_region_table_from_wire(const void *payload, size_t len,
				    struct protocol_region *regions, size_t *count_p, char *why,
				    size_t why_len)
{
	const char *p = payload;
	struct wire_region_table t;
	uint32_t count;

	if (len < sizeof(t)) {
		snprintf(why, why_len, "region-table message of %zu bytes, too short", len);
		return -EPROTO;
	}
	memcpy(&t, p, sizeof(t));
	count = le32toh(t.count);
	if (count == 0 || count > PROTOCOL_REGIONS_MAX || t.reserved) {
		snprintf(why, why_len, "region-table: count %u outside 1..%u (reserved %u)", count,
			 PROTOCOL_REGIONS_MAX, le32toh(t.reserved));
		return -EPROTO;
	}
	if (len != sizeof(t) + (size_t)count * sizeof(struct wire_region_entry)) {
		snprintf(why, why_len, "region-table: %u entries do not fill %zu bytes", count,
			 len);
		return -EPROTO;
	}
	p += sizeof(t);
	for (uint32_t i = 0; i < count; i++) {
		struct wire_region_entry e;

		memcpy(&e, p + (size_t)i * sizeof(e), sizeof(e));
		regions[i].id = le32toh(e.id);
		regions[i].page_shift = le32toh(e.page_shift);
		regions[i].length = le64toh(e.length);
		if (regions[i].page_shift < 12 || regions[i].page_shift > 30) {
			snprintf(why, why_len,
				 "region-table: region %u page shift %u outside 12..30",
				 regions[i].id, regions[i].page_shift);
			return -EPROTO;
		}
		if (regions[i].length == 0 ||
		    regions[i].length & ((1ull << regions[i].page_shift) - 1)) {
			snprintf(
				why, why_len,
				"region-table: region %u length %llu not a positive multiple of its page size",
				regions[i].id, (unsigned long long)regions[i].length);
			return -EPROTO;
		}
		for (uint32_t j = 0; j < i; j++) {
			if (regions[j].id == regions[i].id) {
				snprintf(why, why_len, "region-table: region %u listed twice",
					 regions[i].id);
				return -EPROTO;
			}
		}
	}
	*count_p = count;
	return 0;
}

size_t protocol_pull_to_wire(int type, const struct protocol_pull *m, void *buf)
{
	struct wire_pull w = {
		.flags = htole32(m->flags),
		.pull_us = htole32(m->pull_us),
		.pull_bytes = htole32(m->pull_bytes),
		.pulls = htole32(m->pulls),
	};

	memcpy(protocol_payload(buf), &w, sizeof(w));
	return protocol_finish(buf, type, sizeof(w));
}

int protocol_pull_from_wire(const void *payload, size_t len, struct protocol_pull *m, char *why,
			    size_t why_len)
{
	struct wire_pull w;
	int ret;

	ret = protocol_expect_len("pull", len, sizeof(w), why, why_len);
	if (ret)
		return ret;
	memcpy(&w, payload, sizeof(w));
	m->flags = le32toh(w.flags);
	m->pull_us = le32toh(w.pull_us);
	m->pull_bytes = le32toh(w.pull_bytes);
	m->pulls = le32toh(w.pulls);
	if (m->flags & ~(PROTOCOL_PULL_MEASURED | PROTOCOL_PULL_FAILED)) {
		snprintf(why, why_len, "pull: unknown flags 0x%x", m->flags);
		return -EPROTO;
	}
	if ((m->flags & PROTOCOL_PULL_MEASURED) && (m->flags & PROTOCOL_PULL_FAILED)) {
		snprintf(why, why_len, "pull: both measured and failed");
		return -EPROTO;
	}
	if ((m->flags & PROTOCOL_PULL_MEASURED) && (!m->pulls || !m->pull_bytes)) {
		snprintf(why, why_len, "pull: a median over %u pulls of %u bytes", m->pulls,
			 m->pull_bytes);
		return -EPROTO;
	}
	return 0;
}

size_t protocol_abort_to_wire(int code, const char *reason, void *buf)
{
	size_t n = strnlen(reason, PROTOCOL_REASON_MAX);
	struct wire_abort w = {
		.code = (int32_t)htole32((uint32_t)code),
		.reason_len = htole32((uint32_t)n),
	};
	char *p = protocol_payload(buf);

	memcpy(p, &w, sizeof(w));
	memcpy(p + sizeof(w), reason, n);
	return protocol_finish(buf, PROTOCOL_ABORT, sizeof(w) + n);
}

int protocol_abort_from_wire(const void *payload, size_t len, struct protocol_abort *m, char *why,
			     size_t why_len)
{
	struct wire_abort w;
	uint32_t n;

	if (len < sizeof(w)) {
		snprintf(why, why_len, "abort message of %zu bytes, too short", len);
		return -EPROTO;
	}
	memcpy(&w, payload, sizeof(w));
	m->code = (int32_t)le32toh((uint32_t)w.code);
	n = le32toh(w.reason_len);
	if (n > PROTOCOL_REASON_MAX || len != sizeof(w) + n) {
		snprintf(why, why_len, "abort: reason length %u does not match %zu bytes", n,
			 len - sizeof(w));
		return -EPROTO;
	}
	if (m->code >= 0 || m->code < -4095) {
		snprintf(why, why_len, "abort: code %d is not -errno", m->code);
		return -EPROTO;
	}
	memcpy(m->reason, (const char *)payload + sizeof(w), n);
	m->reason[n] = '\0';
	/* The reason ends up in logs: keep it printable. */
	for (uint32_t i = 0; i < n; i++) {
		if ((unsigned char)m->reason[i] < 0x20 || (unsigned char)m->reason[i] == 0x7f)
			m->reason[i] = '?';
	}
	return 0;
}

size_t protocol_recover_to_wire(const struct protocol_recover *m, void *buf)
{
	struct wire_recover w = {.flags = htole32(m->flags)};

	memcpy(w.session_id, m->session_id, sizeof(w.session_id));
	memcpy(w.nonce, m->nonce, sizeof(w.nonce));
	memcpy(protocol_payload(buf), &w, sizeof(w));
	return protocol_finish(buf, PROTOCOL_RECOVER, sizeof(w));
}

int protocol_recover_from_wire(const void *payload, size_t len, struct protocol_recover *m,
			       char *why, size_t why_len)
{
	struct wire_recover w;
	int ret;

	ret = protocol_expect_len("recover", len, sizeof(w), why, why_len);
	if (ret)
		return ret;
	memcpy(&w, payload, sizeof(w));
	m->flags = le32toh(w.flags);
	if ((m->flags & ~PROTOCOL_HELLO_KEY) || w.reserved) {
		snprintf(why, why_len, "recover: unknown flags 0x%x or reserved %u", m->flags,
			 le32toh(w.reserved));
		return -EPROTO;
	}
	memcpy(m->session_id, w.session_id, sizeof(m->session_id));
	memcpy(m->nonce, w.nonce, sizeof(m->nonce));
	return 0;
}

/* The hello-ack's layout under its own type. */
size_t protocol_recover_ack_to_wire(const struct protocol_recover_ack *m, void *buf)
{
	struct wire_hello_ack w = {.flags = htole32(m->flags)};

	memcpy(w.nonce, m->nonce, sizeof(w.nonce));
	memcpy(w.mac, m->mac, sizeof(w.mac));
	memcpy(protocol_payload(buf), &w, sizeof(w));
	return protocol_finish(buf, PROTOCOL_RECOVER_ACK, sizeof(w));
}

int protocol_recover_ack_from_wire(const void *payload, size_t len, struct protocol_recover_ack *m,
				   char *why, size_t why_len)
{
	struct wire_hello_ack w;
	int ret;

	ret = protocol_expect_len("recover-ack", len, sizeof(w), why, why_len);
	if (ret)
		return ret;
	memcpy(&w, payload, sizeof(w));
	m->flags = le32toh(w.flags);
	if ((m->flags & ~PROTOCOL_HELLO_KEY) || w.reserved) {
		snprintf(why, why_len, "recover-ack: unknown flags 0x%x or reserved %u", m->flags,
			 le32toh(w.reserved));
		return -EPROTO;
	}
	memcpy(m->nonce, w.nonce, sizeof(m->nonce));
	memcpy(m->mac, w.mac, sizeof(m->mac));
	return 0;
}

size_t protocol_recover_ready_to_wire(const struct protocol_recover_ready *m, void *buf)
{
	struct wire_recover_ready w = {.pages_missing = htole64(m->pages_missing)};

	memcpy(protocol_payload(buf), &w, sizeof(w));
	return protocol_finish(buf, PROTOCOL_RECOVER_READY, sizeof(w));
}

int protocol_recover_ready_from_wire(const void *payload, size_t len,
				     struct protocol_recover_ready *m, char *why, size_t why_len)
{
	struct wire_recover_ready w;
	int ret;

	ret = protocol_expect_len("recover-ready", len, sizeof(w), why, why_len);
	if (ret)
		return ret;
	memcpy(&w, payload, sizeof(w));
	m->pages_missing = le64toh(w.pages_missing);
	return 0;
}

int protocol_nonce(uint8_t nonce[PROTOCOL_NONCE_LEN])
{
	ssize_t n = getrandom(nonce, PROTOCOL_NONCE_LEN, 0);

	if (n != (ssize_t)PROTOCOL_NONCE_LEN)
		return n < 0 ? -errno : -EIO;
	return 0;
}

int protocol_mac(const uint8_t *key, size_t key_len, const char *label,
		 const uint8_t first[PROTOCOL_NONCE_LEN], const uint8_t second[PROTOCOL_NONCE_LEN],
		 uint8_t mac[PROTOCOL_MAC_LEN])
{
	uint8_t input[16 + 2 * PROTOCOL_NONCE_LEN] = {0};
	unsigned int mac_len = PROTOCOL_MAC_LEN;

	strncpy((char *)input, label, 16);
	memcpy(input + 16, first, PROTOCOL_NONCE_LEN);
	memcpy(input + 16 + PROTOCOL_NONCE_LEN, second, PROTOCOL_NONCE_LEN);
	if (!HMAC(EVP_sha256(), key, (int)key_len, input, sizeof(input), mac, &mac_len) ||
	    mac_len != PROTOCOL_MAC_LEN)
		return -EIO;
	return 0;
}

int protocol_mac_equal(const uint8_t a[PROTOCOL_MAC_LEN], const uint8_t b[PROTOCOL_MAC_LEN])
{
	return CRYPTO_memcmp(a, b, PROTOCOL_MAC_LEN) == 0;
}
