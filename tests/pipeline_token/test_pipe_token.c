/* Callback tokens and their secret, against a real store: a fresh SQLite
 * file per test, or, under redis_server.sh or redis_cluster.sh, the
 * private server or cluster they start ($ERRAND_TEST_STORE), the secret
 * deleted before each test. This file: tokens and callback URLs; the
 * secret's tests are in test_pipe_secret.c. */
#include "pipe_token.h"

/* The wire format is pinned: a token in a URL made by one version must
 * verify under the next. Expected values from an independent HMAC-SHA256
 * (Python's hmac) over the encoding docs/pipeline-callbacks.md gives. */
static void test_known_answer(void **state) {
  (void)state;
  uint8_t key[ER__PIPE_SECRET_LEN];
  for (int i = 0; i < ER__PIPE_SECRET_LEN; i++) key[i] = (uint8_t)i;
  char t[ER__PIPE_TOKEN_LEN + 1];
  json_t *p = json_pack("{s:s, s:s}", "b", "2", "a", "1 &=\xc3\xa9");
  assert_int_equal(er__pipe_token_compute(key, ID, p, t), 0);
  assert_string_equal(t, "01197ef4ca6a039c1bf975d69d7d94c873e24918d1dfc275901b728156d60bce");
  /* "token" and "pipeline_id" are not parameters of the MAC. */
  json_object_set_new(p, "token", json_string("whatever"));
  json_object_set_new(p, "pipeline_id", json_string("other"));
  assert_int_equal(er__pipe_token_compute(key, ID, p, t), 0);
  assert_string_equal(t, "01197ef4ca6a039c1bf975d69d7d94c873e24918d1dfc275901b728156d60bce");
  json_decref(p);
  const char *none = "3fd160b72a0e33b2bc7b664c830087d9ed3c34bf269ce31394cd6084e72be51c";
  assert_int_equal(er__pipe_token_compute(key, ID, NULL, t), 0);
  assert_string_equal(t, none);
  p = json_object();
  assert_int_equal(er__pipe_token_compute(key, ID, p, t), 0);
  assert_string_equal(t, none);
  json_decref(p);
}

/* Two inputs that a plain concatenation would confuse give other tokens. */
static void differ(const char *id1, const char *p1, const char *id2, const char *p2) {
  uint8_t key[ER__PIPE_SECRET_LEN] = {7};
  char t1[ER__PIPE_TOKEN_LEN + 1], t2[ER__PIPE_TOKEN_LEN + 1];
  json_t *j1 = json_loads(p1, 0, NULL), *j2 = json_loads(p2, 0, NULL);
  assert_int_equal(er__pipe_token_compute(key, id1, j1, t1), 0);
  assert_int_equal(er__pipe_token_compute(key, id2, j2, t2), 0);
  if (strcmp(t1, t2) == 0) fail_msg("(%s, %s) and (%s, %s) share a token", id1, p1, id2, p2);
  json_decref(j1);
  json_decref(j2);
}

static void test_unambiguous(void **state) {
  (void)state;
  differ("x", "{\"a\":\"bc\"}", "x", "{\"ab\":\"c\"}");
  differ("x", "{\"a\":\"b&c=d\"}", "x", "{\"a\":\"b\",\"c\":\"d\"}");
  differ("x", "{\"a\":\"b=c\"}", "x", "{\"a=b\":\"c\"}");
  differ("xa", "{\"b\":\"c\"}", "x", "{\"ab\":\"c\"}");
  differ("x", "{\"a\":\"\"}", "x", "{}");
  differ("x", "{\"a\":\"\",\"b\":\"\"}", "x", "{\"ab\":\"\"}");
}

static void test_verifies_and_tampering(void **state) {
  fx_t *f = *state;
  json_t *p = json_pack("{s:s, s:s}", "choice", "approve", "note", "a b&c");
  char t[ER__PIPE_TOKEN_LEN + 1];
  make(f->s, ID, p, t);
  assert_int_equal(er__pipe_token_check(f->s, ID, p, t), 0);
  /* The object the query parser gives (token and pipeline_id in it) checks
   * as it is, and the order of the names does not matter. */
  json_t *q = json_pack("{s:s, s:s, s:s, s:s}", "token", t, "note", "a b&c", "pipeline_id", ID,
                        "choice", "approve");
  assert_int_equal(er__pipe_token_check(f->s, ID, q, t), 0);
  json_decref(q);

  /* Another id. */
  assert_int_equal(er__pipe_token_check(f->s, "0190a2b4-0000-7000-8000-000000000002", p, t),
                   ER_EAUTH);
  assert_int_equal(er__pipe_token_check(f->s, "", p, t), ER_EAUTH);
  assert_int_equal(er__pipe_token_check(f->s, NULL, p, t), ER_EAUTH);
  /* A changed, an added, a removed parameter; no parameters at all. */
  json_t *c = json_deep_copy(p);
  json_object_set_new(c, "choice", json_string("deny"));
  assert_int_equal(er__pipe_token_check(f->s, ID, c, t), ER_EAUTH);
  json_decref(c);
  c = json_deep_copy(p);
  json_object_set_new(c, "extra", json_string(""));
  assert_int_equal(er__pipe_token_check(f->s, ID, c, t), ER_EAUTH);
  json_decref(c);
  c = json_deep_copy(p);
  json_object_del(c, "note");
  assert_int_equal(er__pipe_token_check(f->s, ID, c, t), ER_EAUTH);
  json_decref(c);
  assert_int_equal(er__pipe_token_check(f->s, ID, NULL, t), ER_EAUTH);
  /* A changed token: each digit, upper case, cut short, made longer. */
  char bad[ER__PIPE_TOKEN_LEN + 2];
  for (int i = 0; i < ER__PIPE_TOKEN_LEN; i++) {
    memcpy(bad, t, sizeof t);
    bad[i] = bad[i] == '0' ? '1' : '0';
    assert_int_equal(er__pipe_token_check(f->s, ID, p, bad), ER_EAUTH);
  }
  for (int i = 0; i <= ER__PIPE_TOKEN_LEN; i++) bad[i] = (char)(t[i] >= 'a' ? t[i] - 32 : t[i]);
  if (strcmp(bad, t) != 0) assert_int_equal(er__pipe_token_check(f->s, ID, p, bad), ER_EAUTH);
  memcpy(bad, t, sizeof t);
  bad[ER__PIPE_TOKEN_LEN - 1] = 0;
  assert_int_equal(er__pipe_token_check(f->s, ID, p, bad), ER_EAUTH);
  memcpy(bad, t, sizeof t);
  bad[ER__PIPE_TOKEN_LEN] = '0';
  bad[ER__PIPE_TOKEN_LEN + 1] = 0;
  assert_int_equal(er__pipe_token_check(f->s, ID, p, bad), ER_EAUTH);
  assert_int_equal(er__pipe_token_check(f->s, ID, p, ""), ER_EAUTH);
  assert_int_equal(er__pipe_token_check(f->s, ID, p, NULL), ER_EAUTH);
  /* Still fine after all that. */
  assert_int_equal(er__pipe_token_check(f->s, ID, p, t), 0);
  json_decref(p);
}

static void test_bad_params(void **state) {
  fx_t *f = *state;
  char t[ER__PIPE_TOKEN_LEN + 1];
  json_t *p = json_pack("{s:i}", "n", 1);
  assert_int_equal(er__pipe_token_make(f->s, ID, p, t), ER_EINVAL);
  assert_int_equal(
      er__pipe_token_check(f->s, ID, p,
                           "0000000000000000000000000000000000000000000000000000000000000000"),
      ER_EINVAL);
  json_decref(p);
  p = json_array();
  assert_int_equal(er__pipe_token_make(f->s, ID, p, t), ER_EINVAL);
  json_decref(p);
  assert_int_equal(er__pipe_token_make(f->s, "", NULL, t), ER_EINVAL);
  assert_int_equal(er__pipe_token_make(f->s, NULL, NULL, t), ER_EINVAL);
  char err[200] = "";
  p = json_pack("{s:s, s:n}", "a", "1", "b");
  assert_int_equal(er__pipe_params_check(p, false, err, sizeof err), ER_EINVAL);
  assert_string_equal(err, "callback parameter 'b' is not a string");
  json_decref(p);
}

/* What the pipeline and HTTP layers do together: make a callback URL, read
 * its query back, check the token. */
static void test_url_make_and_check(void **state) {
  fx_t *f = *state;
  json_t *p = json_pack("{s:s, s:s}", "choice", "approve", "who", "Zoë & co");
  char *url = NULL, err[200] = "";
  assert_int_equal(
      er__pipe_callback_url_make(f->s, "http://127.0.0.1:8080/", ID, p, &url, err, sizeof err), 0);
  const char *q = strchr(url, '?') + 1;
  json_t *got = NULL;
  assert_int_equal(er__url_query_parse(q, strlen(q), &got, NULL, 0), 0);
  const char *id = json_string_value(json_object_get(got, "pipeline_id"));
  const char *token = json_string_value(json_object_get(got, "token"));
  assert_string_equal(id, ID);
  assert_int_equal(er__pipe_token_check(f->s, id, got, token), 0);
  /* The same URL with a parameter changed by hand is refused. */
  json_object_set_new(got, "choice", json_string("deny"));
  assert_int_equal(er__pipe_token_check(f->s, id, got, token), ER_EAUTH);
  json_decref(got);
  er_free(url);
  /* Bad input is refused before the store is asked. */
  assert_int_equal(er__pipe_callback_url_make(f->s, "ftp://x", ID, p, &url, err, sizeof err),
                   ER_EINVAL);
  assert_non_null(strstr(err, "base URL"));
  json_object_set_new(p, "token", json_string("x"));
  assert_int_equal(er__pipe_callback_url_make(f->s, "http://h", ID, p, &url, err, sizeof err),
                   ER_EINVAL);
  assert_non_null(strstr(err, "reserved"));
  assert_int_equal(er__pipe_callback_url_make(f->s, "http://h", "", NULL, &url, err, sizeof err),
                   ER_EINVAL);
  assert_null(url);
  json_decref(p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_known_answer),
      cmocka_unit_test(test_unambiguous),
      cmocka_unit_test_setup_teardown(test_verifies_and_tampering, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_params, setup, teardown),
      cmocka_unit_test_setup_teardown(test_secret_stored, setup, teardown),
      cmocka_unit_test_setup_teardown(test_rotation, setup, teardown),
      cmocka_unit_test_setup_teardown(test_rotation_elsewhere, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cache_ttl, setup, teardown),
      cmocka_unit_test_setup_teardown(test_stores_apart, setup, teardown),
      cmocka_unit_test_setup_teardown(test_make_race_lost, setup, teardown),
      cmocka_unit_test_setup_teardown(test_rotate_race_lost, setup, teardown),
      cmocka_unit_test_setup_teardown(test_rotation_by_client, setup, teardown),
      cmocka_unit_test_setup_teardown(test_make_race_processes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_malformed_secret, setup, teardown),
      cmocka_unit_test_setup_teardown(test_url_make_and_check, setup, teardown),
      cmocka_unit_test_setup_teardown(test_own_secret, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
