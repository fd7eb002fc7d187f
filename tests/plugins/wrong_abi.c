/*
 * wrong_abi.c: TEST-ONLY. The xor_aead.c toy plugin declaring ABI version 2; everything else is
 * valid. pqgate must refuse the whole plugin with an ABI version error and call nothing else.
 *
 *   gcc -shared -fPIC -I gateway/agility/include -o wrong_abi.so tests/plugins/wrong_abi.c
 */
#define TOY_PLUGIN_NAME "test-wrong-abi"
#define TOY_ABI_VERSION 2u
#include "xor_aead.c"
