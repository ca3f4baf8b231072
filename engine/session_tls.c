/* SPDX-License-Identifier: MIT */
/* engine/session_tls.c - what a session asks of the tcp transport's TLS (rmig_session_set_tls):
 * the mode, the x509 credentials, and the session key as the source of the pre-shared key. The
 * default is TLS psk whenever a key is set: the key already proves who the peer is, and without
 * TLS every frame after that proof (guest RAM, commits) crosses the network readable and
 * unauthenticated. Plaintext with a key is an explicit choice, logged every session. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "engine/session.h"
#include "transport/log.h"

/* The 1.1 layout: every field up to peer_name. */
#define SESSION_TLS_SIZE_MIN (offsetof(struct rmig_tls, peer_name) + sizeof(const char *))

static void session_tls_free(struct session_tls *tls)
{
	free(tls->creds_dir);
	free(tls->ca_file);
	free(tls->cert_file);
	free(tls->key_file);
	free(tls->peer_name);
	memset(tls, 0, sizeof(*tls));
}

void session_tls_clear(struct rmig_session *s)
{
	session_tls_free(&s->tls);
}

static int session_tls_strdup(const char *from, char **to_p)
{
	*to_p = NULL;
	if (!from)
		return 0;
	*to_p = strdup(from);
	return *to_p ? 0 : -ENOMEM;
}

int session_set_tls(struct rmig_session *s, const struct rmig_tls *tls)
{
	static const enum transport_tls_mode modes[] = {
		[RMIG_TLS_AUTO] = TRANSPORT_TLS_AUTO,
		[RMIG_TLS_NONE] = TRANSPORT_TLS_NONE,
		[RMIG_TLS_PSK] = TRANSPORT_TLS_PSK,
		[RMIG_TLS_X509] = TRANSPORT_TLS_X509,
	};
	struct session_tls next = {0};
	struct rmig_tls t = {0};
	int ret;

	if (s->started)
		return session_refuse(s, -EBUSY, "set tls: the migration has already started");
	if (s->conn || s->listener)
		return session_refuse(s, -EBUSY, "set tls: before rmig_session_listen/connect");
	if (tls) {
		if (tls->struct_size < SESSION_TLS_SIZE_MIN)
			return session_refuse(s, -EINVAL,
					      "set tls: struct_size %u is below %zu (set it to "
					      "sizeof(struct rmig_tls))",
					      tls->struct_size, SESSION_TLS_SIZE_MIN);
		memcpy(&t, tls, SESSION_TLS_SIZE_MIN);
	}
	if (t.mode > RMIG_TLS_X509)
		return session_refuse(s, -EINVAL, "set tls: unknown mode %u", t.mode);
	if (t.mode == RMIG_TLS_X509 && !(t.creds_dir && *t.creds_dir) &&
	    !(t.ca_file && t.cert_file && t.key_file))
		return session_refuse(s, -EINVAL,
				      "set tls: x509 needs creds_dir, or ca_file, cert_file and "
				      "key_file");
	next.mode = modes[t.mode];
	if (t.mode == RMIG_TLS_X509) {
		ret = session_tls_strdup(t.creds_dir, &next.creds_dir);
		if (!ret)
			ret = session_tls_strdup(t.ca_file, &next.ca_file);
		if (!ret)
			ret = session_tls_strdup(t.cert_file, &next.cert_file);
		if (!ret)
			ret = session_tls_strdup(t.key_file, &next.key_file);
		if (!ret)
			ret = session_tls_strdup(t.peer_name, &next.peer_name);
		if (ret) {
			session_tls_free(&next);
			return session_refuse(s, ret, "set tls: out of memory");
		}
	}
	session_tls_clear(s);
	s->tls = next;
	return 0;
}

void session_tls_options(struct rmig_session *s, const char *uri, struct transport_options *opts)
{
	int tcp = uri && !strncmp(uri, "tcp://", 6);

	opts->tls = s->tls.mode;
	if (s->params.key_len) {
		opts->psk = s->key;
		opts->psk_len = s->params.key_len;
	}
	opts->tls_creds_dir = s->tls.creds_dir;
	opts->tls_ca_file = s->tls.ca_file;
	opts->tls_cert_file = s->tls.cert_file;
	opts->tls_key_file = s->tls.key_file;
	opts->tls_peer_name = s->tls.peer_name;
	if (!tcp)
		return;
	if (transport_tls_mode(opts) == TRANSPORT_TLS_NONE && !s->params.key_len)
		return; /* insecure: session_credentials_check() warned already */
	if (transport_tls_mode(opts) == TRANSPORT_TLS_NONE)
		rmig_log_warn("%s tcp without TLS (rmig_session_set_tls RMIG_TLS_NONE): the key "
			      "proves the peer, but every frame after that, guest RAM included, "
			      "crosses %s in plaintext and unauthenticated",
			      s->role == RMIG_ROLE_SOURCE ? "source:" : "destination:", uri);
	else
		rmig_log_info("%s tcp with TLS 1.3 (%s) on %s",
			      s->role == RMIG_ROLE_SOURCE ? "source:" : "destination:",
			      transport_tls_mode_name(transport_tls_mode(opts)), uri);
}
