/*
 * pqgate_plugin.h: the pqgate run-time algorithm plugin ABI, version 1.
 *
 * A plugin is a shared library that exports one function, pqgate_plugin_v1_entry, returning a
 * pointer to a static pqgate_plugin_v1 that declares the plugin's AEADs, hashes and TLS 1.3
 * cipher suites, each AEAD and hash with its own known-answer vectors. pqgate copies and checks
 * every declared value at load time, runs every vector, and keeps an algorithm disabled if
 * anything about it is wrong. See docs/plugins.md.
 *
 * Contract for every function pointer:
 *   - return PQGATE_OK (0) on success, any other value on failure (authentication failure,
 *     bad argument, output buffer too small);
 *   - never write more than out_cap bytes to out; report the bytes written in *out_len;
 *   - be safe to call from several threads at once with the same key object (keys are
 *     read-only after key_new);
 *   - never keep pointers to caller buffers after returning.
 * All declared data (names, vectors, the descriptor itself) must stay valid and unchanged for
 * the life of the process. Names are NUL-terminated ASCII, at most 63 bytes.
 *
 * License: Apache-2.0 OR MIT.
 */
#ifndef PQGATE_PLUGIN_H
#define PQGATE_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PQGATE_PLUGIN_ABI_VERSION 1u
#define PQGATE_OK 0

/* Limits pqgate enforces on declared sizes. */
#define PQGATE_MAX_KEY_LEN 64u
#define PQGATE_MAX_TAG_LEN 32u
#define PQGATE_MAX_BLOCK_LEN 32u
#define PQGATE_MAX_HASH_LEN 64u
#define PQGATE_MAX_ITEMS 16u
#define PQGATE_MAX_KATS 64u

/* One AEAD known-answer vector: seal(key, nonce, aad, plaintext) == ciphertext (tag appended). */
typedef struct pqgate_aead_kat_v1 {
    const uint8_t *key;
    size_t key_len;
    const uint8_t *nonce;
    size_t nonce_len;
    const uint8_t *aad;
    size_t aad_len;
    const uint8_t *plaintext;
    size_t plaintext_len;
    const uint8_t *ciphertext; /* ciphertext || tag */
    size_t ciphertext_len;
} pqgate_aead_kat_v1;

typedef struct pqgate_aead_v1 {
    const char *name; /* e.g. "SM4-GCM" */
    uint32_t key_len;
    uint32_t nonce_len; /* 12 for use in TLS 1.3 and QUIC */
    uint32_t tag_len;
    /* Expands a key; returns an opaque key object, or NULL on failure. */
    void *(*key_new)(const uint8_t *key, size_t key_len);
    void (*key_free)(void *key);
    /* Encrypts in_len bytes and appends the tag: writes in_len + tag_len bytes. */
    int (*seal)(const void *key, const uint8_t *nonce, size_t nonce_len, const uint8_t *aad,
                size_t aad_len, const uint8_t *in, size_t in_len, uint8_t *out, size_t out_cap,
                size_t *out_len);
    /* Verifies and decrypts ciphertext || tag: writes in_len - tag_len bytes. */
    int (*open)(const void *key, const uint8_t *nonce, size_t nonce_len, const uint8_t *aad,
                size_t aad_len, const uint8_t *in, size_t in_len, uint8_t *out, size_t out_cap,
                size_t *out_len);
    /* QUIC header protection: encrypts one block_len block under a raw key of key_len bytes
     * (the mask is the first 5 bytes). block_len 0 and NULL if the AEAD offers none. */
    uint32_t block_len;
    int (*encrypt_block)(const uint8_t *key, size_t key_len, const uint8_t *in, uint8_t *out);
    const pqgate_aead_kat_v1 *kats;
    size_t kat_count;
} pqgate_aead_v1;

/* One hash known-answer vector. */
typedef struct pqgate_hash_kat_v1 {
    const uint8_t *message;
    size_t message_len;
    const uint8_t *digest;
    size_t digest_len;
} pqgate_hash_kat_v1;

typedef struct pqgate_hash_v1 {
    const char *name; /* e.g. "SM3" */
    uint32_t output_len;
    uint32_t block_len; /* the compression function's block size, for HMAC */
    /* One-shot digest of len bytes: writes output_len bytes. */
    int (*digest)(const uint8_t *message, size_t len, uint8_t *out, size_t out_cap,
                  size_t *out_len);
    const pqgate_hash_kat_v1 *kats;
    size_t kat_count;
} pqgate_hash_v1;

/* A TLS 1.3 cipher suite built from one of this plugin's AEADs and hashes (HKDF and HMAC over
 * the hash are pqgate's). */
typedef struct pqgate_tls13_suite_v1 {
    const char *name;       /* e.g. "TLS_SM4_GCM_SM3" */
    uint16_t code_point;    /* e.g. 0x00C6 (RFC 8998); private use 0xFF00-0xFFFF allowed */
    const char *aead;       /* name of an AEAD declared above */
    const char *hash;       /* name of a hash declared above */
    uint64_t max_records_per_key; /* confidentiality limit: pqgate re-keys before it */
    uint64_t max_forgeries;       /* integrity limit (QUIC) */
    uint32_t security_bits;
} pqgate_tls13_suite_v1;

typedef struct pqgate_plugin_v1 {
    uint32_t abi_version; /* PQGATE_PLUGIN_ABI_VERSION */
    const char *name;
    const char *version;
    const pqgate_aead_v1 *aeads;
    size_t aead_count;
    const pqgate_hash_v1 *hashes;
    size_t hash_count;
    const pqgate_tls13_suite_v1 *suites;
    size_t suite_count;
} pqgate_plugin_v1;

/* The one symbol pqgate looks up. */
const pqgate_plugin_v1 *pqgate_plugin_v1_entry(void);

#ifdef __cplusplus
}
#endif

#endif /* PQGATE_PLUGIN_H */
