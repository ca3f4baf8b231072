/* SPDX-License-Identifier: MIT */
/* transport/key_proof.c - the hello's key proof (key_proof.h), with OpenSSL's HMAC-SHA256. */
#include "transport/key_proof.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

int transport_key_proof_key(const uint8_t *psk, size_t psk_len, const char *label,
			    uint8_t key[TRANSPORT_KEY_PROOF_KEY_LEN])
{
	unsigned int len = TRANSPORT_KEY_PROOF_KEY_LEN;

	if (!psk || !psk_len || psk_len > INT_MAX)
		return -EINVAL;
	if (!HMAC(EVP_sha256(), psk, (int)psk_len, (const unsigned char *)label, strlen(label), key,
		  &len))
		return -EIO;
	return 0;
}

int transport_key_proof_mac(const uint8_t key[TRANSPORT_KEY_PROOF_KEY_LEN], const char *label,
			    const void *challenge, size_t challenge_len, const void *answer,
			    size_t answer_len, const uint8_t *nonce, size_t nonce_len,
			    uint8_t mac[TRANSPORT_KEY_PROOF_MAC_LEN])
{
	unsigned char input[TRANSPORT_KEY_PROOF_LABEL_MAX + 3 * TRANSPORT_KEY_PROOF_PART_MAX];
	unsigned int len = TRANSPORT_KEY_PROOF_MAC_LEN;
	size_t at = TRANSPORT_KEY_PROOF_LABEL_MAX;

	if (challenge_len > TRANSPORT_KEY_PROOF_PART_MAX ||
	    answer_len > TRANSPORT_KEY_PROOF_PART_MAX || nonce_len > TRANSPORT_KEY_PROOF_PART_MAX)
		return -EINVAL;
	memset(input, 0, TRANSPORT_KEY_PROOF_LABEL_MAX);
	memcpy(input, label, strnlen(label, TRANSPORT_KEY_PROOF_LABEL_MAX - 1));
	memcpy(input + at, challenge, challenge_len);
	at += challenge_len;
	memcpy(input + at, answer, answer_len);
	at += answer_len;
	memcpy(input + at, nonce, nonce_len);
	at += nonce_len;
	if (!HMAC(EVP_sha256(), key, TRANSPORT_KEY_PROOF_KEY_LEN, input, at, mac, &len))
		return -EIO;
	return 0;
}
