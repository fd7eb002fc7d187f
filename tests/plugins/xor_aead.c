/*
 * xor_aead.c: TEST-ONLY plugin for pqgate's loader tests. NOT CRYPTOGRAPHY: the "AEAD" XORs
 * with key and nonce bytes and the "hash" is a checksum; anyone can read or forge either. It
 * exists so that a real C compiler produces a plugin that honours every rule of the ABI v1
 * contract (sizes, NULL and buffer checks, *out_len, heap key objects, known answers) and must
 * therefore load. Its suite uses the private-use code point 0xFF01.
 *
 *   gcc -shared -fPIC -I gateway/agility/include -o xor_aead.so tests/plugins/xor_aead.c
 *
 * wrong_abi.c, wrong_vector.c and short_write.c include this file and change exactly one thing through the
 * TOY_* macros below, so each negative test has a single fault.
 *
 * The toy (the vectors below were computed from this description by a separate script):
 *   seal:  ct[i] = pt[i] ^ key[i % 16] ^ nonce[i % 12] ^ (i & 0xff)
 *          tag[j] = key[j] ^ nonce[j % 12]; then tag[k % 16] ^= aad[k] for each k;
 *          then tag[(k + 7) % 16] += ct[k] for each k; then tag[14] ^= len(ct), tag[15] ^= len(aad)
 *   hash:  h[j] = 0x11 * j (32 bytes); h[k % 32] = h[k % 32] * 31 + m[k] for each k;
 *          then h[0] ^= len, h[1] ^= len >> 8 (all mod 256)
 *   block: out[i] = in[i] ^ key[i] ^ 0x5a
 */
#include <stdlib.h>
#include <string.h>

#include "pqgate_plugin.h"

#ifndef TOY_PLUGIN_NAME
#define TOY_PLUGIN_NAME "test-xor-toy"
#endif
#ifndef TOY_ABI_VERSION
#define TOY_ABI_VERSION PQGATE_PLUGIN_ABI_VERSION
#endif
#ifndef TOY_SHORT /* subtracted from the length seal reports: a buffer-contract violation */
#define TOY_SHORT 0
#endif
#ifndef TOY_FLIP /* XORed into the first declared ciphertext byte */
#define TOY_FLIP 0x00
#endif

#define TOY_KEY_LEN 16
#define TOY_NONCE_LEN 12
#define TOY_TAG_LEN 16
#define TOY_BLOCK_LEN 16
#define TOY_HASH_LEN 32
#define TOY_ERR_ARG 1
#define TOY_ERR_BUFFER 2
#define TOY_ERR_AUTH 3

typedef struct toy_key {
    uint8_t key[TOY_KEY_LEN];
} toy_key;

static void *toy_key_new(const uint8_t *key, size_t key_len) {
    toy_key *k;
    if (key == NULL || key_len != TOY_KEY_LEN)
        return NULL;
    k = malloc(sizeof *k);
    if (k != NULL)
        memcpy(k->key, key, TOY_KEY_LEN);
    return k;
}

static void toy_key_free(void *key) { free(key); }

static void toy_xor(const toy_key *k, const uint8_t *nonce, const uint8_t *in, size_t len,
                    uint8_t *out) {
    for (size_t i = 0; i < len; i++)
        out[i] = in[i] ^ k->key[i % TOY_KEY_LEN] ^ nonce[i % TOY_NONCE_LEN] ^ (uint8_t)i;
}

static void toy_tag(const toy_key *k, const uint8_t *nonce, const uint8_t *aad, size_t aad_len,
                    const uint8_t *ct, size_t ct_len, uint8_t tag[TOY_TAG_LEN]) {
    for (size_t j = 0; j < TOY_TAG_LEN; j++)
        tag[j] = k->key[j] ^ nonce[j % TOY_NONCE_LEN];
    for (size_t i = 0; i < aad_len; i++)
        tag[i % TOY_TAG_LEN] ^= aad[i];
    for (size_t i = 0; i < ct_len; i++)
        tag[(i + 7) % TOY_TAG_LEN] += ct[i];
    tag[14] ^= (uint8_t)ct_len;
    tag[15] ^= (uint8_t)aad_len;
}

/* Checks shared by seal and open; sets *out_len to 0 so every failure reports 0 bytes. */
static int toy_args_ok(const void *key, const uint8_t *nonce, size_t nonce_len,
                       const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t in_len,
                       size_t *out_len) {
    if (out_len == NULL)
        return 0;
    *out_len = 0;
    return key != NULL && nonce != NULL && nonce_len == TOY_NONCE_LEN &&
           (aad != NULL || aad_len == 0) && (in != NULL || in_len == 0);
}

static int toy_seal(const void *key, const uint8_t *nonce, size_t nonce_len, const uint8_t *aad,
                    size_t aad_len, const uint8_t *in, size_t in_len, uint8_t *out,
                    size_t out_cap, size_t *out_len) {
    if (!toy_args_ok(key, nonce, nonce_len, aad, aad_len, in, in_len, out_len) || out == NULL)
        return TOY_ERR_ARG;
    if (in_len > SIZE_MAX - TOY_TAG_LEN || out_cap < in_len + TOY_TAG_LEN)
        return TOY_ERR_BUFFER;
    toy_xor(key, nonce, in, in_len, out);
    toy_tag(key, nonce, aad, aad_len, out, in_len, out + in_len);
    *out_len = in_len + TOY_TAG_LEN - TOY_SHORT;
    return PQGATE_OK;
}

static int toy_open(const void *key, const uint8_t *nonce, size_t nonce_len, const uint8_t *aad,
                    size_t aad_len, const uint8_t *in, size_t in_len, uint8_t *out,
                    size_t out_cap, size_t *out_len) {
    uint8_t tag[TOY_TAG_LEN], diff = 0;
    size_t len;
    if (!toy_args_ok(key, nonce, nonce_len, aad, aad_len, in, in_len, out_len) ||
        in_len < TOY_TAG_LEN)
        return TOY_ERR_ARG;
    len = in_len - TOY_TAG_LEN;
    if (out_cap < len)
        return TOY_ERR_BUFFER;
    if (out == NULL && len > 0)
        return TOY_ERR_ARG;
    toy_tag(key, nonce, aad, aad_len, in, len, tag);
    for (size_t j = 0; j < TOY_TAG_LEN; j++)
        diff |= tag[j] ^ in[len + j];
    if (diff != 0)
        return TOY_ERR_AUTH; /* nothing written */
    toy_xor(key, nonce, in, len, out);
    *out_len = len;
    return PQGATE_OK;
}

static int toy_encrypt_block(const uint8_t *key, size_t key_len, const uint8_t *in, uint8_t *out) {
    uint8_t b[TOY_BLOCK_LEN];
    if (key == NULL || key_len != TOY_KEY_LEN || in == NULL || out == NULL)
        return TOY_ERR_ARG;
    for (size_t i = 0; i < TOY_BLOCK_LEN; i++)
        b[i] = in[i] ^ key[i] ^ 0x5a;
    memcpy(out, b, TOY_BLOCK_LEN); /* in == out is fine */
    return PQGATE_OK;
}

static int toy_digest(const uint8_t *m, size_t len, uint8_t *out, size_t out_cap,
                      size_t *out_len) {
    uint8_t h[TOY_HASH_LEN];
    if (out_len == NULL)
        return TOY_ERR_ARG;
    *out_len = 0;
    if (m == NULL && len > 0)
        return TOY_ERR_ARG;
    if (out_cap < TOY_HASH_LEN)
        return TOY_ERR_BUFFER;
    if (out == NULL)
        return TOY_ERR_ARG;
    for (size_t j = 0; j < TOY_HASH_LEN; j++)
        h[j] = (uint8_t)(0x11 * j);
    for (size_t i = 0; i < len; i++)
        h[i % TOY_HASH_LEN] = (uint8_t)(h[i % TOY_HASH_LEN] * 31 + m[i]);
    h[0] ^= (uint8_t)len;
    h[1] ^= (uint8_t)(len >> 8);
    memcpy(out, h, TOY_HASH_LEN);
    *out_len = TOY_HASH_LEN;
    return PQGATE_OK;
}

static const uint8_t kat_key[TOY_KEY_LEN] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
static const uint8_t kat_nonce[TOY_NONCE_LEN] = {0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5,
                                                 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab};
static const uint8_t kat_aad[6] = {'h', 'e', 'a', 'd', 'e', 'r'};
static const uint8_t kat_pt[27] = {'t', 'e', 's', 't', '-', 'o', 'n', 'l', 'y', ',', ' ', 'n', 'o', 't',
                                   ' ', 'c', 'r', 'y', 'p', 't', 'o', 'g', 'r', 'a', 'p', 'h', 'y'};
/* Empty plaintext and AAD: the tag alone. */
static const uint8_t kat_ct_empty[TOY_TAG_LEN] = {0xa0, 0xa0, 0xa0, 0xa0, 0xa0, 0xa0, 0xa0, 0xa0,
                                                  0xa0, 0xa0, 0xa0, 0xa0, 0xac, 0xac, 0xac, 0xac};
static const uint8_t kat_ct[27 + TOY_TAG_LEN] = {
    0xd4 ^ TOY_FLIP, 0xc4, 0xd1, 0xd7, 0x89, 0xca, 0xc8, 0xcb, 0xd1, 0x85, 0x8a, 0xc5,
    0xcf, 0xd5, 0x82, 0xc0, 0xc6, 0xcc, 0xc6, 0xc3, 0xd7, 0xde, 0xc8, 0xda, 0xc0, 0xd9,
    0xcb, /* tag: */ 0x26, 0x1a, 0x86, 0x93, 0x9a, 0x54, 0x60, 0x3a, 0x30, 0x37, 0x3a,
    0x00, 0x54, 0x3c, 0x4a, 0x3b};
static const uint8_t kat_digest_empty[TOY_HASH_LEN] = {
    0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
    0x10, 0x21, 0x32, 0x43, 0x54, 0x65, 0x76, 0x87, 0x98, 0xa9, 0xba, 0xcb, 0xdc, 0xed, 0xfe, 0x0f};
static const uint8_t kat_abc[3] = {'a', 'b', 'c'};
static const uint8_t kat_digest_abc[TOY_HASH_LEN] = {
    0x62, 0x71, 0x81, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
    0x10, 0x21, 0x32, 0x43, 0x54, 0x65, 0x76, 0x87, 0x98, 0xa9, 0xba, 0xcb, 0xdc, 0xed, 0xfe, 0x0f};

static const pqgate_aead_kat_v1 toy_aead_kats[] = {
    {kat_key, sizeof kat_key, kat_nonce, sizeof kat_nonce, NULL, 0, NULL, 0, kat_ct_empty,
     sizeof kat_ct_empty},
    {kat_key, sizeof kat_key, kat_nonce, sizeof kat_nonce, kat_aad, sizeof kat_aad, kat_pt,
     sizeof kat_pt, kat_ct, sizeof kat_ct},
};

static const pqgate_hash_kat_v1 toy_hash_kats[] = {
    {NULL, 0, kat_digest_empty, sizeof kat_digest_empty},
    {kat_abc, sizeof kat_abc, kat_digest_abc, sizeof kat_digest_abc},
};

static const pqgate_aead_v1 toy_aeads[] = {{
    .name = "TEST-XOR-TOY-AEAD",
    .key_len = TOY_KEY_LEN,
    .nonce_len = TOY_NONCE_LEN,
    .tag_len = TOY_TAG_LEN,
    .key_new = toy_key_new,
    .key_free = toy_key_free,
    .seal = toy_seal,
    .open = toy_open,
    .block_len = TOY_BLOCK_LEN,
    .encrypt_block = toy_encrypt_block,
    .kats = toy_aead_kats,
    .kat_count = sizeof toy_aead_kats / sizeof toy_aead_kats[0],
}};

static const pqgate_hash_v1 toy_hashes[] = {{
    .name = "TEST-XOR-TOY-HASH",
    .output_len = TOY_HASH_LEN,
    .block_len = 64,
    .digest = toy_digest,
    .kats = toy_hash_kats,
    .kat_count = sizeof toy_hash_kats / sizeof toy_hash_kats[0],
}};

static const pqgate_tls13_suite_v1 toy_suites[] = {{
    .name = "TLS_TEST_XOR_TOY",
    .code_point = 0xFF01, /* private use */
    .aead = "TEST-XOR-TOY-AEAD",
    .hash = "TEST-XOR-TOY-HASH",
    .max_records_per_key = 1u << 20,
    .max_forgeries = 1u << 10,
    .security_bits = 128, /* pqgate accepts 112-512; the toy has none, this only passes the check */
}};

static const pqgate_plugin_v1 toy_plugin = {
    .abi_version = TOY_ABI_VERSION,
    .name = TOY_PLUGIN_NAME,
    .version = "0.1.0",
    .aeads = toy_aeads,
    .aead_count = 1,
    .hashes = toy_hashes,
    .hash_count = 1,
    .suites = toy_suites,
    .suite_count = 1,
};

const pqgate_plugin_v1 *pqgate_plugin_v1_entry(void) { return &toy_plugin; }
