/* The callback token tests' fixture: a store per test (see
 * test_pipe_token.c), and the helpers and tests the files share. */
#ifndef ER_TEST_PIPE_TOKEN_H
#define ER_TEST_PIPE_TOKEN_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/url_query.h"
#include "errand/client.h"
#include "errand/pipeline.h"
#include "pipeline/token.h"

#define ID "0190a2b4-0000-7000-8000-000000000001"

typedef struct fx {
  char dir[64]; /* SQLite's temporary directory, or "" */
  char url[600];
  er_store_t *s;
} fx_t;

er_store_t *open_url(const char *url);
/* A store without a secret, and nothing cached: cmocka's setup, teardown. */
int setup(void **state);
int teardown(void **state);
/* Makes a token, which must succeed and look like one. */
void make(er_store_t *s, const char *id, json_t *params, char out[ER__PIPE_TOKEN_LEN + 1]);
/* The secret's document (new), and its version (may be NULL). */
json_t *doc(er_store_t *s, int64_t *version);
/* Writes the secret's document behind the module's back (v is stolen). */
void put_doc(er_store_t *s, json_t *v);
void hex32(const uint8_t *b, char out[65]);

/* test_pipe_secret.c */
void test_secret_stored(void **state);
void test_rotation(void **state);
void test_rotation_by_client(void **state);
void test_rotation_elsewhere(void **state);
void test_cache_ttl(void **state);
void test_stores_apart(void **state);
void test_make_race_lost(void **state);
void test_rotate_race_lost(void **state);
void test_make_race_processes(void **state);
void test_malformed_secret(void **state);
/* test_pipe_own.c */
void test_own_secret(void **state);

#endif
