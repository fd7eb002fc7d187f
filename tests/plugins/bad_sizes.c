/*
 * bad_sizes.c: TEST-ONLY. Declarations that break the ABI's size and pointer rules, one fault
 * per algorithm, so pqgate's declaration check must refuse each one before calling it:
 *   BAD-KEY-LEN   key_len 4096 (> PQGATE_MAX_KEY_LEN)
 *   BAD-TAG-LEN   tag_len 0
 *   BAD-NULL-FN   seal is NULL
 *   BAD-HASH-LEN  output_len 4096 (> PQGATE_MAX_HASH_LEN)
 * The stubs refuse everything in case a broken loader calls them anyway.
 *
 *   gcc -shared -fPIC -I gateway/agility/include -o bad_sizes.so tests/plugins/bad_sizes.c
 */
#include "pqgate_plugin.h"

static void *stub_new(const uint8_t *key, size_t key_len) {
    (void)key, (void)key_len;
    return NULL;
}

static void stub_free(void *key) { (void)key; }

static int stub_crypt(const void *key, const uint8_t *nonce, size_t nonce_len, const uint8_t *aad,
                      size_t aad_len, const uint8_t *in, size_t in_len, uint8_t *out,
                      size_t out_cap, size_t *out_len) {
    (void)key, (void)nonce, (void)nonce_len, (void)aad, (void)aad_len, (void)in, (void)in_len;
    (void)out, (void)out_cap;
    if (out_len != NULL)
        *out_len = 0;
    return 1;
}

static int stub_digest(const uint8_t *m, size_t len, uint8_t *out, size_t out_cap,
                       size_t *out_len) {
    (void)m, (void)len, (void)out, (void)out_cap;
    if (out_len != NULL)
        *out_len = 0;
    return 1;
}

/* No vectors: the size and pointer checks come first and must refuse these on their own. */
static const pqgate_aead_v1 aeads[] = {
    {"BAD-KEY-LEN", 4096, 12, 16, stub_new, stub_free, stub_crypt, stub_crypt, 0, NULL, NULL, 0},
    {"BAD-TAG-LEN", 16, 12, 0, stub_new, stub_free, stub_crypt, stub_crypt, 0, NULL, NULL, 0},
    {"BAD-NULL-FN", 16, 12, 16, stub_new, stub_free, NULL, stub_crypt, 0, NULL, NULL, 0},
};

static const pqgate_hash_v1 hashes[] = {
    {"BAD-HASH-LEN", 4096, 64, stub_digest, NULL, 0},
};

static const pqgate_plugin_v1 plugin = {
    PQGATE_PLUGIN_ABI_VERSION, "test-bad-sizes", "0.1.0", aeads, 3, hashes, 1, NULL, 0,
};

const pqgate_plugin_v1 *pqgate_plugin_v1_entry(void) { return &plugin; }
