/* SPDX-License-Identifier: MIT */
/* transport/transport.c - picks a transport by URI scheme, and the bookkeeping every transport
 * shares: URI parsing, region tables, the bounds checks on runs, and first-error recording. */
#include "transport/transport.h"

#include <endian.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "transport/log.h"
#include "transport/transport_impl.h"
#include "transport/wire.h"

static const struct transport_ops *const transport_table[] = {
	&loop_transport_ops,
	&tcp_transport_ops,
	&rdma_transport_ops,
};

static const struct transport_ops *transport_by_scheme(const char *scheme)
{
	for (size_t i = 0; i < sizeof(transport_table) / sizeof(transport_table[0]); i++)
		if (!strcmp(transport_table[i]->scheme, scheme))
			return transport_table[i];
	return NULL;
}

static const char *const transport_reg_mode_names[] = {
	[TRANSPORT_REG_WHOLE] = "whole",
	[TRANSPORT_REG_ODP] = "odp",
	[TRANSPORT_REG_CHUNKED] = "chunked",
	[TRANSPORT_REG_COPY] = "copy",
};

const char *transport_reg_mode_name(enum transport_reg_mode mode)
{
	if ((unsigned)mode >=
	    sizeof(transport_reg_mode_names) / sizeof(transport_reg_mode_names[0]))
		return "unknown";
	return transport_reg_mode_names[mode];
}

/* What follows the port: nothing, or (rdma) "?reg=MODE". */
static int transport_uri_options(const char *uri, const char *query, struct transport_uri *out)
{
	if (!*query)
		return 0;
	if (*query != '?' || strncmp(query + 1, "reg=", 4))
		goto bad;
	if (strcmp(out->scheme, "rdma")) {
		rmig_log_info("transport: '%s': reg= applies to rdma:// only", uri);
		return -EINVAL;
	}
	for (unsigned m = 0;
	     m < sizeof(transport_reg_mode_names) / sizeof(transport_reg_mode_names[0]); m++)
		if (!strcmp(query + 5, transport_reg_mode_names[m])) {
			out->has_reg_mode = 1;
			out->reg_mode = (enum transport_reg_mode)m;
			return 0;
		}
bad:
	rmig_log_info("transport: '%s': after the port only ?reg=whole|odp|chunked|copy (rdma) may "
		      "follow",
		      uri);
	return -EINVAL;
}

int transport_uri_parse(const char *uri, struct transport_uri *out)
{
	const char *sep, *host, *colon;
	size_t scheme_len, host_len;
	char *end;
	unsigned long port;

	memset(out, 0, sizeof(*out));
	if (!uri || !*uri)
		return -EINVAL;
	sep = strchr(uri, ':');
	if (!sep)
		goto bad;
	scheme_len = (size_t)(sep - uri);
	if (scheme_len == 0 || scheme_len >= sizeof(out->scheme))
		goto bad;
	memcpy(out->scheme, uri, scheme_len);
	if (!strcmp(out->scheme, "loop")) {
		host = sep + 1;
		if (!*host || strlen(host) >= sizeof(out->host))
			goto bad;
		strcpy(out->host, host);
		return 0;
	}
	if (strncmp(sep, "://", 3))
		goto bad;
	host = sep + 3;
	if (*host == '[') {
		const char *close = strchr(host, ']');

		if (!close || close[1] != ':')
			goto bad;
		host_len = (size_t)(close - host - 1);
		colon = close + 1;
		host++;
	} else {
		colon = strrchr(host, ':');
		if (!colon)
			goto bad;
		host_len = (size_t)(colon - host);
	}
	if (host_len == 0 || host_len >= sizeof(out->host))
		goto bad;
	memcpy(out->host, host, host_len);
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno || (*end && *end != '?') || end == colon + 1 || port > 65535)
		goto bad;
	out->port = (uint16_t)port;
	return transport_uri_options(uri, end, out);
bad:
	rmig_log_info("transport: bad URI '%s' (expected rdma://host:port, tcp://host:port or "
		      "loop:name)",
		      uri);
	return -EINVAL;
}

static int transport_ops_for_uri(const char *uri, const struct transport_ops **ops_p)
{
	struct transport_uri parsed;
	const struct transport_ops *ops;
	int ret;

	ret = transport_uri_parse(uri, &parsed);
	if (ret)
		return ret;
	ops = transport_by_scheme(parsed.scheme);
	if (!ops) {
		rmig_log_info("transport: unknown scheme '%s' in '%s' (rdma, tcp, loop)",
			      parsed.scheme, uri);
		return -EPROTONOSUPPORT;
	}
	*ops_p = ops;
	return 0;
}

int transport_available(const char *scheme)
{
	const struct transport_ops *ops = transport_by_scheme(scheme);

	if (!ops)
		return 0;
	if (!strcmp(scheme, "rdma"))
		return rdma_transport_device_count() > 0;
	return 1;
}

enum transport_tls_mode transport_tls_mode(const struct transport_options *opts)
{
	if (!opts)
		return TRANSPORT_TLS_NONE;
	if (opts->tls == TRANSPORT_TLS_AUTO)
		return opts->psk_len ? TRANSPORT_TLS_PSK : TRANSPORT_TLS_NONE;
	return opts->tls;
}

const char *transport_tls_mode_name(enum transport_tls_mode mode)
{
	switch (mode) {
	case TRANSPORT_TLS_AUTO:
		return "auto";
	case TRANSPORT_TLS_NONE:
		return "none";
	case TRANSPORT_TLS_PSK:
		return "psk";
	case TRANSPORT_TLS_X509:
		return "x509";
	}
	return "?";
}

/* TLS asked for by name on a scheme that has none is refused: never plaintext in its place. */
static int transport_tls_check(const struct transport_ops *ops,
			       const struct transport_options *opts, const char *uri)
{
	if (!opts || opts->tls == TRANSPORT_TLS_AUTO || opts->tls == TRANSPORT_TLS_NONE ||
	    ops == &tcp_transport_ops)
		return 0;
	rmig_log_error("transport: TLS (%s) is for tcp:// only, not %s",
		       transport_tls_mode_name(opts->tls), uri);
	return -EPROTONOSUPPORT;
}

int transport_listen(const char *uri, const struct transport_options *opts,
		     struct transport_listener **listener_p)
{
	const struct transport_ops *ops;
	int ret = transport_ops_for_uri(uri, &ops);

	if (ret)
		return ret;
	ret = transport_tls_check(ops, opts, uri);
	if (ret)
		return ret;
	return ops->listen(uri, opts, listener_p);
}

int transport_listener_uri(struct transport_listener *listener, char *buf, size_t len)
{
	return listener->ops->listener_uri(listener, buf, len);
}

int transport_accept(struct transport_listener *listener, int timeout_ms,
		     struct transport_conn **conn_p)
{
	return listener->ops->accept(listener, timeout_ms, conn_p);
}

void transport_listener_close(struct transport_listener *listener)
{
	if (listener)
		listener->ops->listener_close(listener);
}

int transport_listener_pins(const struct transport_listener *listener)
{
	return listener && listener->ops->registration_pins;
}

int transport_connect(const char *uri, const struct transport_options *opts,
		      struct transport_conn **conn_p)
{
	const struct transport_ops *ops;
	int ret = transport_ops_for_uri(uri, &ops);

	if (ret)
		return ret;
	ret = transport_tls_check(ops, opts, uri);
	if (ret)
		return ret;
	return ops->connect(uri, opts, conn_p);
}

int transport_region_register(struct transport_conn *conn, uint32_t id, void *addr, size_t len,
			      unsigned access)
{
	return conn->ops->region_register(conn, id, addr, len, access);
}

int transport_region_deregister(struct transport_conn *conn, uint32_t id)
{
	return conn->ops->region_deregister(conn, id);
}

static int transport_region_access_change(struct transport_conn *conn, uint32_t id, unsigned grant,
					  unsigned revoke)
{
	struct transport_region region;
	unsigned access;

	if ((grant | revoke) & ~(unsigned)TRANSPORT_ACCESS_REMOTE) {
		rmig_log_error("%s %s: region %u: unknown access bits 0x%x", conn->ops->scheme,
			       conn->peer, id, grant | revoke);
		return -EINVAL;
	}
	if (transport_region_find(conn, 0, id, &region)) {
		if (grant)
			rmig_log_error("%s %s: granting access to region %u: not registered",
				       conn->ops->scheme, conn->peer, id);
		return -ENOENT;
	}
	access = (region.access | grant) & ~revoke;
	if (access == region.access)
		return 0;
	return conn->ops->region_access_set(conn, id, access);
}

int transport_region_grant(struct transport_conn *conn, uint32_t id, unsigned access)
{
	return transport_region_access_change(conn, id, access, 0);
}

int transport_region_revoke(struct transport_conn *conn, uint32_t id, unsigned access)
{
	return transport_region_access_change(conn, id, 0, access);
}

int transport_conn_bind(struct transport_conn *conn, const uint8_t send_key[TRANSPORT_BIND_KEY_LEN],
			const uint8_t recv_key[TRANSPORT_BIND_KEY_LEN])
{
	int ret = 0;

	pthread_mutex_lock(conn->region_lock);
	if (conn->bound) {
		ret = -EALREADY;
	} else {
		memcpy(conn->bind_send_key, send_key, TRANSPORT_BIND_KEY_LEN);
		memcpy(conn->bind_recv_key, recv_key, TRANSPORT_BIND_KEY_LEN);
		conn->bound = 1;
	}
	pthread_mutex_unlock(conn->region_lock);
	return ret;
}

/* HMAC-SHA256(key, label || seq || type || region): the sequence number makes a replayed
 * announcement fail, the type a region-del passed off as a region-add. */
static int transport_region_mac(const uint8_t *key, uint64_t seq, unsigned type, const void *region,
				uint8_t mac[TRANSPORT_REGION_MAC_LEN])
{
	uint8_t input[16 + 8 + 4 + sizeof(struct wire_region)] = "rmig region v1";
	unsigned int mac_len = TRANSPORT_REGION_MAC_LEN;
	uint64_t seq_le = htole64(seq);
	uint32_t type_le = htole32(type);

	memcpy(input + 16, &seq_le, 8);
	memcpy(input + 24, &type_le, 4);
	memcpy(input + 28, region, sizeof(struct wire_region));
	if (!HMAC(EVP_sha256(), key, TRANSPORT_BIND_KEY_LEN, input, sizeof(input), mac, &mac_len) ||
	    mac_len != TRANSPORT_REGION_MAC_LEN)
		return -EIO;
	return 0;
}

size_t transport_region_seal(struct transport_conn *conn, unsigned type, const void *region,
			     uint8_t mac[TRANSPORT_REGION_MAC_LEN])
{
	size_t len = 0;

	pthread_mutex_lock(conn->region_lock);
	if (conn->bound &&
	    !transport_region_mac(conn->bind_send_key, conn->bind_sent, type, region, mac)) {
		conn->bind_sent++;
		len = TRANSPORT_REGION_MAC_LEN;
	} else if (conn->bound) {
		/* The peer will refuse an announcement without its MAC: it never goes out
		 * unauthenticated. */
		memset(mac, 0, TRANSPORT_REGION_MAC_LEN);
		len = TRANSPORT_REGION_MAC_LEN;
	}
	pthread_mutex_unlock(conn->region_lock);
	return len;
}

int transport_region_open(struct transport_conn *conn, unsigned type, const void *payload,
			  size_t len, char *why, size_t why_len)
{
	uint8_t expected[TRANSPORT_REGION_MAC_LEN];
	const char *name = type == WIRE_REGION_DEL ? "region-del" : "region-add";
	uint64_t seq;
	int ret = 0;

	pthread_mutex_lock(conn->region_lock);
	seq = conn->bind_received;
	if (!conn->bound) {
		if (len != sizeof(struct wire_region)) {
			snprintf(why, why_len,
				 "%s.mac: %zu bytes, but the connection is not bound to a key "
				 "(expected %zu)",
				 name, len, sizeof(struct wire_region));
			ret = -EPROTO;
		}
	} else if (len != sizeof(struct wire_region) + TRANSPORT_REGION_MAC_LEN) {
		snprintf(why, why_len, "%s.mac: missing (%zu bytes, expected %zu with the MAC)",
			 name, len, sizeof(struct wire_region) + TRANSPORT_REGION_MAC_LEN);
		ret = -EPROTO;
	} else if (transport_region_mac(conn->bind_recv_key, seq, type, payload, expected) ||
		   CRYPTO_memcmp(expected, (const uint8_t *)payload + sizeof(struct wire_region),
				 TRANSPORT_REGION_MAC_LEN)) {
		snprintf(why, why_len,
			 "%s.mac: announcement %llu is not authenticated by the session key "
			 "(forged or replayed)",
			 name, (unsigned long long)seq);
		ret = -EPROTO;
	} else {
		conn->bind_received++;
	}
	pthread_mutex_unlock(conn->region_lock);
	return ret;
}

int transport_batch_post(struct transport_conn *conn, uint64_t batch_id,
			 const struct transport_run *runs, size_t nruns)
{
	return conn->ops->batch_post(conn, batch_id, runs, nruns);
}

int transport_flush(struct transport_conn *conn, int timeout_ms)
{
	return conn->ops->flush(conn, timeout_ms);
}

int transport_ctrl_send(struct transport_conn *conn, const void *buf, size_t len)
{
	if (len > TRANSPORT_CTRL_MAX)
		return -EMSGSIZE;
	return conn->ops->ctrl_send(conn, buf, len);
}

int transport_recv(struct transport_conn *conn, struct transport_msg *msg, int timeout_ms)
{
	return conn->ops->recv(conn, msg, timeout_ms);
}

int transport_read(struct transport_conn *conn, uint32_t region_id, uint64_t offset, void *dst,
		   size_t len, int timeout_ms)
{
	return conn->ops->read(conn, region_id, offset, dst, len, timeout_ms);
}

int transport_peer_timeout_set(struct transport_conn *conn, uint32_t timeout_ms)
{
	return conn->ops->peer_timeout_set(conn, timeout_ms);
}

void transport_close(struct transport_conn *conn)
{
	if (conn)
		conn->ops->close(conn);
}

void transport_stats_get(struct transport_conn *conn, struct transport_stats *stats_p)
{
	pthread_mutex_lock(conn->region_lock);
	*stats_p = conn->stats;
	pthread_mutex_unlock(conn->region_lock);
}

const char *transport_error(struct transport_conn *conn)
{
	return conn->error;
}

const char *transport_scheme(struct transport_conn *conn)
{
	return conn->ops->scheme;
}

int transport_conn_init(struct transport_conn *conn, const struct transport_ops *ops,
			const char *peer)
{
	pthread_mutex_t *lock;

	memset(conn, 0, sizeof(*conn));
	lock = malloc(sizeof(*lock));
	if (!lock)
		return -ENOMEM;
	pthread_mutex_init(lock, NULL);
	conn->region_lock = lock;
	conn->ops = ops;
	snprintf(conn->peer, sizeof(conn->peer), "%s", peer ? peer : "?");
	return 0;
}

void transport_conn_fini(struct transport_conn *conn)
{
	if (conn->region_lock) {
		pthread_mutex_destroy(conn->region_lock);
		free(conn->region_lock);
		conn->region_lock = NULL;
	}
	OPENSSL_cleanse(conn->bind_send_key, sizeof(conn->bind_send_key));
	OPENSSL_cleanse(conn->bind_recv_key, sizeof(conn->bind_recv_key));
	free(conn->local.regions);
	free(conn->remote.regions);
	conn->local.regions = conn->remote.regions = NULL;
	conn->local.count = conn->remote.count = 0;
}

int transport_conn_fail(struct transport_conn *conn, int err, const char *fmt, ...)
{
	char message[TRANSPORT_ERROR_MAX];
	int first;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(conn->region_lock);
	first = !conn->failed;
	if (first) {
		conn->failed = err;
		snprintf(conn->error, sizeof(conn->error), "%s", message);
	}
	pthread_mutex_unlock(conn->region_lock);
	if (first)
		rmig_log_error("%s %s: %s", conn->ops->scheme, conn->peer, message);
	return err;
}

static struct transport_region_table *transport_table_of(struct transport_conn *conn, int remote)
{
	return remote ? &conn->remote : &conn->local;
}

static struct transport_region *transport_table_lookup(struct transport_region_table *table,
						       uint32_t id)
{
	for (size_t i = 0; i < table->count; i++)
		if (table->regions[i].id == id)
			return &table->regions[i];
	return NULL;
}

int transport_region_add(struct transport_conn *conn, int remote,
			 const struct transport_region *region)
{
	struct transport_region_table *table = transport_table_of(conn, remote);
	int ret = 0;

	pthread_mutex_lock(conn->region_lock);
	if (transport_table_lookup(table, region->id)) {
		ret = -EEXIST;
		goto out;
	}
	if (table->count == table->capacity) {
		size_t capacity = table->capacity ? table->capacity * 2 : 8;
		struct transport_region *grown = realloc(table->regions, capacity * sizeof(*grown));

		if (!grown) {
			ret = -ENOMEM;
			goto out;
		}
		table->regions = grown;
		table->capacity = capacity;
	}
	table->regions[table->count++] = *region;
out:
	pthread_mutex_unlock(conn->region_lock);
	return ret;
}

int transport_region_remove(struct transport_conn *conn, int remote, uint32_t id,
			    struct transport_region *removed_p)
{
	struct transport_region_table *table = transport_table_of(conn, remote);
	struct transport_region *region;
	int ret = 0;

	pthread_mutex_lock(conn->region_lock);
	region = transport_table_lookup(table, id);
	if (!region) {
		ret = -ENOENT;
		goto out;
	}
	if (removed_p)
		*removed_p = *region;
	*region = table->regions[--table->count];
out:
	pthread_mutex_unlock(conn->region_lock);
	return ret;
}

int transport_region_update(struct transport_conn *conn, int remote,
			    const struct transport_region *region)
{
	struct transport_region *entry;
	int ret = 0;

	pthread_mutex_lock(conn->region_lock);
	entry = transport_table_lookup(transport_table_of(conn, remote), region->id);
	if (entry)
		*entry = *region;
	else
		ret = -ENOENT;
	pthread_mutex_unlock(conn->region_lock);
	return ret;
}

int transport_region_find(struct transport_conn *conn, int remote, uint32_t id,
			  struct transport_region *region_p)
{
	struct transport_region *region;
	int ret = 0;

	pthread_mutex_lock(conn->region_lock);
	region = transport_table_lookup(transport_table_of(conn, remote), id);
	if (region)
		*region_p = *region;
	else
		ret = -ENOENT;
	pthread_mutex_unlock(conn->region_lock);
	return ret;
}

/* One run against the region it names (NULL: none): there, with access, not empty, inside it.
 * A refusal names the run: runs[index], or "staged" for index -1 (a staged message); side
 * names the table ("local", "peer"). */
static int transport_run_check(const struct transport_region *region, const char *side,
			       unsigned access, uint32_t region_id, uint64_t offset,
			       uint64_t length, long index, char *why, size_t why_len)
{
	char what[32];
	int ret = 0;

	if (!region)
		ret = -ENOENT;
	else if ((region->access & access) != access)
		ret = -EACCES;
	else if (length == 0)
		ret = -EINVAL;
	else if (offset > region->length || length > region->length - offset)
		ret = -ERANGE;
	if (!ret)
		return 0;
	if (index < 0)
		snprintf(what, sizeof(what), "staged");
	else
		snprintf(what, sizeof(what), "runs[%ld]", index);
	if (ret == -ENOENT)
		snprintf(why, why_len, "%s.region_id: %u is not a %s region", what, region_id,
			 side);
	else if (ret == -EACCES)
		snprintf(why, why_len, "%s.region_id: %s region %u lacks %s access", what, side,
			 region_id,
			 access & TRANSPORT_ACCESS_REMOTE_READ ? "remote-read" : "remote-write");
	else if (ret == -EINVAL)
		snprintf(why, why_len, "%s.length: zero (region %u)", what, region_id);
	else
		snprintf(why, why_len,
			 "%s.offset: [%llu, +%llu) is outside %s region %u of %llu bytes", what,
			 (unsigned long long)offset, (unsigned long long)length, side, region_id,
			 (unsigned long long)region->length);
	return ret;
}

int transport_runs_check(struct transport_conn *conn, int remote, unsigned access,
			 const struct transport_run *runs, size_t nruns, char *why, size_t why_len)
{
	struct transport_region_table *table = transport_table_of(conn, remote);
	const char *side = remote ? "peer" : "local";
	int ret = 0;

	if (nruns == 0 || nruns > TRANSPORT_BATCH_MAX_RUNS) {
		snprintf(why, why_len, "batch of %zu runs (1..%u allowed)", nruns,
			 TRANSPORT_BATCH_MAX_RUNS);
		return -EINVAL;
	}
	pthread_mutex_lock(conn->region_lock);
	for (size_t i = 0; i < nruns && !ret; i++)
		ret = transport_run_check(transport_table_lookup(table, runs[i].region_id), side,
					  access, runs[i].region_id, runs[i].offset, runs[i].length,
					  (long)i, why, why_len);
	pthread_mutex_unlock(conn->region_lock);
	return ret;
}

int transport_staged_check(const struct transport_region *local,
			   const struct transport_region *peer, uint32_t region_id, uint64_t offset,
			   uint64_t length, char *why, size_t why_len)
{
	int ret = transport_run_check(local, "local", TRANSPORT_ACCESS_REMOTE_WRITE, region_id,
				      offset, length, -1, why, why_len);

	if (ret)
		return ret;
	if (!(local->flags & TRANSPORT_REGION_STAGED) &&
	    !(peer && (peer->flags & TRANSPORT_REGION_STAGED))) {
		snprintf(why, why_len,
			 "staged.region_id: region %u is staged on neither side (its data must "
			 "come by RDMA WRITE)",
			 region_id);
		return -EPERM;
	}
	return 0;
}

int transport_batch_check(struct transport_conn *conn, uint64_t batch_id,
			  const struct transport_run *runs, size_t nruns)
{
	char why[TRANSPORT_ERROR_MAX];
	int ret;

	ret = transport_runs_check(conn, 0, TRANSPORT_ACCESS_LOCAL, runs, nruns, why, sizeof(why));
	if (!ret)
		ret = transport_runs_check(conn, 1, TRANSPORT_ACCESS_REMOTE_WRITE, runs, nruns, why,
					   sizeof(why));
	if (ret)
		rmig_log_error("%s %s: batch %llu refused: %s", conn->ops->scheme, conn->peer,
			       (unsigned long long)batch_id, why);
	return ret;
}
