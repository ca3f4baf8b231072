/* SPDX-License-Identifier: MIT */
/* tests/integration/tls_certs.c - a throwaway CA, server and client certificate (P-256,
 * SHA-256, valid for a day) written as PEM files, for the tests of rmig's x509 mode. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "integration/tls_certs.h"

static const char *const tls_cert_files[] = {"ca-cert.pem", "server-cert.pem", "server-key.pem",
					     "client-cert.pem", "client-key.pem"};

static int tls_certs_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (!ext)
		return -1;
	ok = X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	return ok ? 0 : -1;
}

/* A certificate for key named cn, signed by issuer_key (self-signed when issuer is NULL). */
static X509 *tls_certs_issue(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key,
			     long serial, const char *kind)
{
	X509 *cert = X509_new();
	X509_NAME *name;

	if (!cert)
		return NULL;
	X509_set_version(cert, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(cert), serial);
	X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
	X509_gmtime_adj(X509_getm_notAfter(cert), 86400);
	X509_set_pubkey(cert, key);
	name = X509_get_subject_name(cert);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(cert, issuer ? X509_get_subject_name(issuer) : name);
	if (!strcmp(kind, "ca")) {
		if (tls_certs_ext(cert, cert, NID_basic_constraints, "critical,CA:TRUE") ||
		    tls_certs_ext(cert, cert, NID_key_usage, "critical,keyCertSign,cRLSign") ||
		    tls_certs_ext(cert, cert, NID_subject_key_identifier, "hash"))
			goto err;
	} else {
		if (tls_certs_ext(cert, issuer, NID_basic_constraints, "critical,CA:FALSE") ||
		    tls_certs_ext(cert, issuer, NID_key_usage, "critical,digitalSignature") ||
		    tls_certs_ext(cert, issuer, NID_ext_key_usage,
				  !strcmp(kind, "server") ? "serverAuth" : "clientAuth"))
			goto err;
		if (!strcmp(kind, "server") &&
		    tls_certs_ext(cert, issuer, NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost"))
			goto err;
	}
	if (!X509_sign(cert, issuer_key, EVP_sha256()))
		goto err;
	return cert;
err:
	X509_free(cert);
	return NULL;
}

static int tls_certs_write(const char *dir, const char *file, X509 *cert, EVP_PKEY *key)
{
	char path[4096];
	FILE *f;
	int ok;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	f = fopen(path, "w");
	if (!f)
		return -1;
	ok = cert ? PEM_write_X509(f, cert)
		  : PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
	return fclose(f) == 0 && ok ? 0 : -1;
}

int tls_certs_make(char *dir, size_t len, const char *ca_name)
{
	EVP_PKEY *ca_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	EVP_PKEY *server_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	EVP_PKEY *client_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509 *ca = NULL, *server = NULL, *client = NULL;
	int ret = -1;

	snprintf(dir, len, "/tmp/rmig-tls-XXXXXX");
	if (!ca_key || !server_key || !client_key || !mkdtemp(dir))
		goto out;
	ca = tls_certs_issue(ca_key, ca_name, NULL, ca_key, 1, "ca");
	if (!ca)
		goto out;
	server = tls_certs_issue(server_key, "localhost", ca, ca_key, 2, "server");
	client = tls_certs_issue(client_key, "rmig test client", ca, ca_key, 3, "client");
	if (!server || !client)
		goto out;
	if (tls_certs_write(dir, "ca-cert.pem", ca, NULL) ||
	    tls_certs_write(dir, "server-cert.pem", server, NULL) ||
	    tls_certs_write(dir, "server-key.pem", NULL, server_key) ||
	    tls_certs_write(dir, "client-cert.pem", client, NULL) ||
	    tls_certs_write(dir, "client-key.pem", NULL, client_key))
		goto out;
	ret = 0;
out:
	X509_free(ca);
	X509_free(server);
	X509_free(client);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(server_key);
	EVP_PKEY_free(client_key);
	return ret;
}

void tls_certs_remove(const char *dir)
{
	char path[4096];

	for (size_t i = 0; i < sizeof(tls_cert_files) / sizeof(tls_cert_files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, tls_cert_files[i]);
		unlink(path);
	}
	rmdir(dir);
}
