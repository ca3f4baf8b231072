/* SPDX-License-Identifier: MIT */
/* transport/key_proof.h - the key proof both transports' hellos carry when the session has a key
 * and the channel has no TLS to prove it (tcp with --tls none, rdma always): a key derived from
 * the session key for one transport, and each side's proof, an HMAC-SHA256 over a label and the
 * hello exchange. The exchange itself (who sends what, when) is each backend's: tcp/setup.c,
 * rdma/cm.c. */
#ifndef RMIG_TRANSPORT_KEY_PROOF_H
#define RMIG_TRANSPORT_KEY_PROOF_H

#include <stddef.h>
#include <stdint.h>

#define TRANSPORT_KEY_PROOF_KEY_LEN 32u
#define TRANSPORT_KEY_PROOF_MAC_LEN 32u
/* A label takes this many bytes of a proof's input, padded with zeroes. */
#define TRANSPORT_KEY_PROOF_LABEL_MAX 32u
/* The challenge and the answer each take at most this many bytes. */
#define TRANSPORT_KEY_PROOF_PART_MAX 256u

/* The key a transport's proofs are made with: HMAC-SHA256(session key, label). 0, -EINVAL, or
 * -EIO when the HMAC fails. */
int transport_key_proof_key(const uint8_t *psk, size_t psk_len, const char *label,
			    uint8_t key[TRANSPORT_KEY_PROOF_KEY_LEN]);

/* One side's proof: HMAC-SHA256(key, label || challenge || answer || nonce), the label padded
 * with zeroes to TRANSPORT_KEY_PROOF_LABEL_MAX bytes; distinct labels keep a proof from being
 * reflected as the other side's. 0, -EINVAL for a part over TRANSPORT_KEY_PROOF_PART_MAX, or
 * -EIO. */
int transport_key_proof_mac(const uint8_t key[TRANSPORT_KEY_PROOF_KEY_LEN], const char *label,
			    const void *challenge, size_t challenge_len, const void *answer,
			    size_t answer_len, const uint8_t *nonce, size_t nonce_len,
			    uint8_t mac[TRANSPORT_KEY_PROOF_MAC_LEN]);

#endif /* RMIG_TRANSPORT_KEY_PROOF_H */
