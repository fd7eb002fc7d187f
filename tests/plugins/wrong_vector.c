/*
 * wrong_vector.c: TEST-ONLY. The xor_aead.c toy plugin with one bit of its second declared AEAD
 * ciphertext flipped; the code and every other value are correct. pqgate must keep
 * TEST-XOR-TOY-AEAD (and the suite built on it) disabled with a known-answer error for
 * vector 1; the toy hash still passes its own vectors.
 *
 *   gcc -shared -fPIC -I gateway/agility/include -o wrong_vector.so tests/plugins/wrong_vector.c
 */
#define TOY_PLUGIN_NAME "test-wrong-vector"
#define TOY_FLIP 0x01
#include "xor_aead.c"
