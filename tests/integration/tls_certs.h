/* SPDX-License-Identifier: MIT */
/* tests/integration/tls_certs.h - X.509 credentials made at test time with OpenSSL's API (no
 * private key is ever committed): a CA, and a server and a client certificate it signs, laid
 * out as QEMU's tls-creds-x509 directory that rmig's x509 mode reads. */
#ifndef RMIG_TEST_TLS_CERTS_H
#define RMIG_TEST_TLS_CERTS_H

#include <stddef.h>

/* Make dir (mkdtemp template "/tmp/rmig-tls-XXXXXX" filled in) holding ca-cert.pem,
 * server-cert.pem, server-key.pem, client-cert.pem, client-key.pem: a fresh CA named ca_name,
 * a server certificate for IP 127.0.0.1 and DNS localhost, a client certificate. 0 or -1. */
int tls_certs_make(char *dir, size_t len, const char *ca_name);
/* Remove what tls_certs_make wrote, and the directory. */
void tls_certs_remove(const char *dir);

#endif /* RMIG_TEST_TLS_CERTS_H */
