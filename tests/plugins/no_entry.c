/*
 * no_entry.c: TEST-ONLY. A well-formed shared library that does not export
 * pqgate_plugin_v1_entry (only a near miss), so pqgate must refuse it with a missing-symbol
 * error.
 *
 *   gcc -shared -fPIC -I gateway/agility/include -o no_entry.so tests/plugins/no_entry.c
 */
#include "pqgate_plugin.h"

const pqgate_plugin_v1 *pqgate_plugin_entry(void) { return NULL; }
