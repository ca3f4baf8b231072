/* SPDX-License-Identifier: MIT */
/* bindings/cli/credentials.c - the key, the opt-out of authentication and the dead-peer
 * deadline, the same way for rmig send/recv, qemu-send/qemu-recv and xen-send/xen-recv. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bindings/cli/credentials.h"

int cli_key_file_read(const char *command, const char *path, struct cli_credentials *c)
{
	uint8_t buf[RMIG_KEY_MAX + 1]; /* one byte more tells a key that is too long */
	ssize_t n;
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		fprintf(stderr, "rmig %s: --key-file %s: %s\n", command, path, strerror(errno));
		return ret;
	}
	n = read(fd, buf, sizeof(buf));
	ret = n < 0 ? -errno : 0;
	close(fd);
	if (ret) {
		fprintf(stderr, "rmig %s: --key-file %s: %s\n", command, path, strerror(-ret));
		return ret;
	}
	if (n < 1 || n > (ssize_t)RMIG_KEY_MAX) {
		fprintf(stderr, "rmig %s: --key-file %s: a key has 1 to %u bytes\n", command, path,
			RMIG_KEY_MAX);
		return -EINVAL;
	}
	memcpy(c->key, buf, (size_t)n);
	c->key_len = (uint32_t)n;
	return 0;
}

int cli_peer_timeout_parse(const char *command, const char *text, struct cli_credentials *c)
{
	char *end;
	double seconds = strtod(text, &end);

	if (end == text || *end || !(seconds >= 0.2 && seconds <= 3600.0)) {
		fprintf(stderr, "rmig %s: --peer-timeout %s: seconds, 0.2 to 3600\n", command,
			text);
		return -EINVAL;
	}
	c->peer_timeout_ms = (uint32_t)(seconds * 1000.0 + 0.5);
	return 0;
}

int cli_recovery_window_parse(const char *command, const char *text, struct cli_credentials *c)
{
	char *end;
	double seconds = strtod(text, &end);

	if (end == text || *end || !(seconds >= 1.0 && seconds <= 86400.0)) {
		fprintf(stderr, "rmig %s: --recovery-window %s: seconds, 1 to 86400\n", command,
			text);
		return -EINVAL;
	}
	c->recovery_window_ms = (uint32_t)(seconds * 1000.0 + 0.5);
	return 0;
}

int cli_credentials_check(const char *command, struct cli_credentials *c)
{
	const char *env = getenv("RMIG_KEY_FILE");
	int ret;

	if (!c->key_len && !c->insecure && env && *env) {
		ret = cli_key_file_read(command, env, c);
		if (ret)
			return ret;
	}
	if (c->key_len || c->x509)
		return 0;
	if (!c->insecure) {
		fprintf(stderr,
			"rmig %s: no credential: pass --key-file FILE (the same secret on both "
			"hosts; or set RMIG_KEY_FILE), or --tls x509 with certificates, or "
			"--insecure to run without authentication\n",
			command);
		return -EPERM;
	}
	fprintf(stderr,
		"rmig %s: WARNING: --insecure: no authentication; any host that reaches this "
		"migration's port can write or read the guest's RAM\n",
		command);
	return 0;
}

int cli_credentials_apply(const char *command, rmig_session_t *s, const struct cli_credentials *c)
{
	struct rmig_params params = {
		.field_mask = RMIG_PARAM_KEY,
		.key = c->key,
		.key_len = c->key_len,
	};
	int ret;

	ret = rmig_session_set_params(s, &params);
	if (!ret)
		ret = rmig_session_set_insecure(s, c->insecure);
	if (!ret)
		ret = rmig_session_set_peer_timeout(s, c->peer_timeout_ms);
	if (!ret && c->recovery_window_ms)
		ret = rmig_session_set_recovery_window(s, c->recovery_window_ms);
	if (ret)
		fprintf(stderr, "rmig %s: %s\n", command, rmig_last_error(s));
	return ret;
}

int cli_tls_option(const char *command, int which, const char *arg, struct cli_tls *t)
{
	static const char *const names[] = {"--tls",	  "--tls-creds", "--tls-ca",
					    "--tls-cert", "--tls-key",	 "--tls-peer-name"};

	if (which < 0 || which >= (int)(sizeof(names) / sizeof(names[0])))
		return -EINVAL;
	if (which == 0) {
		if (!strcmp(arg, "none")) {
			t->mode = RMIG_TLS_NONE;
		} else if (!strcmp(arg, "psk")) {
			t->mode = RMIG_TLS_PSK;
		} else if (!strcmp(arg, "x509")) {
			t->mode = RMIG_TLS_X509;
		} else {
			fprintf(stderr, "rmig %s: --tls none, psk or x509\n", command);
			return -EINVAL;
		}
		return 0;
	}
	/* Only the peer name may be empty (it then means: do not check the name). */
	if (which != 5 && !*arg) {
		fprintf(stderr, "rmig %s: %s: an empty path\n", command, names[which]);
		return -EINVAL;
	}
	if (which != 5 && access(arg, R_OK)) {
		fprintf(stderr, "rmig %s: %s %s: %s\n", command, names[which], arg,
			strerror(errno));
		return -errno;
	}
	switch (which) {
	case 1:
		t->creds_dir = arg;
		break;
	case 2:
		t->ca_file = arg;
		break;
	case 3:
		t->cert_file = arg;
		break;
	case 4:
		t->key_file = arg;
		break;
	default:
		t->peer_name = arg;
		break;
	}
	return 0;
}

int cli_tls_check(const char *command, struct cli_tls *t)
{
	int creds = t->creds_dir || t->ca_file || t->cert_file || t->key_file || t->peer_name;

	if (t->mode == RMIG_TLS_AUTO && creds)
		t->mode = RMIG_TLS_X509;
	if (t->mode != RMIG_TLS_X509 && creds) {
		fprintf(stderr,
			"rmig %s: --tls-creds, --tls-ca, --tls-cert, --tls-key and "
			"--tls-peer-name are for --tls x509\n",
			command);
		return -EINVAL;
	}
	if (t->mode == RMIG_TLS_X509 && !t->creds_dir &&
	    !(t->ca_file && t->cert_file && t->key_file)) {
		fprintf(stderr,
			"rmig %s: --tls x509 needs --tls-creds DIR, or --tls-ca, --tls-cert and "
			"--tls-key\n",
			command);
		return -EINVAL;
	}
	if (t->mode == RMIG_TLS_NONE)
		fprintf(stderr,
			"rmig %s: WARNING: --tls none: on tcp, guest RAM and every message after "
			"the key handshake cross the network in plaintext, unauthenticated\n",
			command);
	return 0;
}

int cli_tls_apply(const char *command, rmig_session_t *s, const struct cli_tls *t)
{
	struct rmig_tls tls = {
		.struct_size = sizeof(tls),
		.mode = t->mode,
		.creds_dir = t->creds_dir,
		.ca_file = t->ca_file,
		.cert_file = t->cert_file,
		.key_file = t->key_file,
		.peer_name = t->peer_name,
	};
	int ret = rmig_session_set_tls(s, &tls);

	if (ret)
		fprintf(stderr, "rmig %s: %s\n", command, rmig_last_error(s));
	return ret;
}

const char *cli_tls_name(const struct cli_tls *t, uint32_t key_len)
{
	switch (t->mode) {
	case RMIG_TLS_NONE:
		return "none";
	case RMIG_TLS_PSK:
		return "psk";
	case RMIG_TLS_X509:
		return "x509";
	default:
		return key_len ? "psk" : "none";
	}
}
