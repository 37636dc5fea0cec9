/* Secrets of a worker's or server's own (er__pipe_secret_derive and the
 * *_with calls), against the same store as the other token tests: a token
 * made under one is accepted under the same alone, never under another or
 * the store's, and the store's tokens are refused under it. */
#include "pipe_token.h"

void test_own_secret(void **state) {
  fx_t *f = *state;
  uint8_t a[ER__PIPE_SECRET_LEN], b[ER__PIPE_SECRET_LEN], again[ER__PIPE_SECRET_LEN];
  /* The key is pinned (an independent HMAC-SHA256, Python's hmac): a URL
   * made by one version verifies under the next with the same secret. */
  assert_int_equal(er__pipe_secret_derive("sixteen-bytes-ok", a), 0);
  char hex[65];
  hex32(a, hex);
  assert_string_equal(hex, "ab8b3490e123de1f25579a7ecb271481b8851da6d1b9e00fd440bb665ff09f19");
  assert_int_equal(er__pipe_secret_derive("sixteen-bytes-ok", again), 0);
  assert_memory_equal(a, again, sizeof a);
  assert_int_equal(er__pipe_secret_derive("sixteen-bytes-o!", b), 0);
  assert_memory_not_equal(a, b, sizeof a);
  assert_int_equal(er__pipe_secret_derive("fifteen-bytes!!", b), ER_EINVAL);
  assert_int_equal(er__pipe_secret_derive(NULL, b), ER_EINVAL);
  assert_int_equal(er__pipe_secret_derive("another secret, longer", b), 0);

  json_t *p = json_pack("{s:s}", "choice", "approve");
  char ta[ER__PIPE_TOKEN_LEN + 1], ts[ER__PIPE_TOKEN_LEN + 1];
  assert_int_equal(er__pipe_token_make_with(f->s, a, ID, p, ta), 0);
  make(f->s, ID, p, ts); /* under the store's secret */
  assert_string_not_equal(ta, ts);
  assert_int_equal(er__pipe_token_check_with(f->s, a, ID, p, ta), 0);
  assert_int_equal(er__pipe_token_check_with(NULL, a, ID, p, ta), 0); /* no store asked */
  assert_int_equal(er__pipe_token_check_with(f->s, b, ID, p, ta), ER_EAUTH);
  assert_int_equal(er__pipe_token_check(f->s, ID, p, ta), ER_EAUTH);
  assert_int_equal(er__pipe_token_check_with(f->s, a, ID, p, ts), ER_EAUTH);
  assert_int_equal(er__pipe_token_check_with(f->s, NULL, ID, p, ts), 0);
  json_object_set_new(p, "choice", json_string("deny")); /* tampered */
  assert_int_equal(er__pipe_token_check_with(f->s, a, ID, p, ta), ER_EAUTH);

  /* A whole URL under the key: its token checks under the key alone. */
  char *url = NULL, err[256] = "";
  assert_int_equal(
      er__pipe_callback_url_make_with(f->s, a, "http://127.0.0.1:1", ID, p, &url, err, sizeof err),
      0);
  json_t *q = NULL;
  const char *query = strchr(url, '?') + 1;
  assert_int_equal(er__url_query_parse(query, strlen(query), &q, err, sizeof err), 0);
  const char *tok = json_string_value(json_object_get(q, "token"));
  assert_int_equal(er__pipe_token_check_with(f->s, a, ID, q, tok), 0);
  assert_int_equal(er__pipe_token_check(f->s, ID, q, tok), ER_EAUTH);
  json_decref(q);
  er_free(url);
  json_decref(p);
}
