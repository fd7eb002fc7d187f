/*
 * short_write.c: TEST-ONLY. The xor_aead.c toy plugin whose seal reports one byte fewer than it
 * must write (*out_len = in_len + tag_len - 1): a buffer-contract violation. pqgate must refuse
 * the output, fail the AEAD's known-answer check with "buffer contract violated", and keep the
 * AEAD and its suite disabled.
 *
 *   gcc -shared -fPIC -I gateway/agility/include -o short_write.so tests/plugins/short_write.c
 */
#define TOY_PLUGIN_NAME "test-short-write"
#define TOY_SHORT 1
#include "xor_aead.c"
