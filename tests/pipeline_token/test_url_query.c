/* The query-string codec (core/url_query.c) and callback URLs
 * (er__pipe_callback_url): pure functions, no store. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <stdbool.h>

#include "core/url_query.h"
#include "pipeline/token.h"

static const char TOKEN[] = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

static json_t *parse_ok(const char *q) {
  json_t *out = NULL;
  char err[200] = "";
  int rc = er__url_query_parse(q, strlen(q), &out, err, sizeof err);
  if (rc) fail_msg("parse '%s': %s: %s", q, er_err_name(rc), err);
  return out;
}

/* Parses q, which must be refused with a message containing want. */
static void parse_refused(const char *q, const char *want) {
  json_t *out = (json_t *)1;
  char err[200] = "";
  assert_int_equal(er__url_query_parse(q, strlen(q), &out, err, sizeof err), ER_EPARSE);
  assert_null(out);
  if (!strstr(err, want)) fail_msg("parse '%s': message '%s' lacks '%s'", q, err, want);
}

static void assert_json_is(json_t *got, const char *want_text) {
  json_t *want = json_loads(want_text, 0, NULL);
  assert_non_null(want);
  if (!json_equal(got, want)) {
    char *g = json_dumps(got, JSON_SORT_KEYS);
    fail_msg("got %s, want %s", g, want_text);
  }
  json_decref(want);
  json_decref(got);
}

static void test_encode(void **state) {
  (void)state;
  er__sbuf_t b = {0};
  const char in[] = "a b&c=d%e/\xc3\xa9~-._+AZaz09?#";
  er__sbuf_add_encoded(&b, in, sizeof in - 1);
  char *out;
  assert_int_equal(er__sbuf_take(&b, &out), 0);
  assert_string_equal(out, "a%20b%26c%3Dd%25e%2F%C3%A9~-._%2BAZaz09%3F%23");
  er_free(out);
  /* Nothing appended is still a string. */
  er__sbuf_t empty = {0};
  assert_int_equal(er__sbuf_take(&empty, &out), 0);
  assert_string_equal(out, "");
  er_free(out);
}

static void test_parse(void **state) {
  (void)state;
  assert_json_is(parse_ok(""), "{}");
  assert_json_is(parse_ok("a=1&b=x+y&c=%2B&d"),
                 "{\"a\":\"1\",\"b\":\"x y\",\"c\":\"+\",\"d\":\"\"}");
  assert_json_is(parse_ok("&a=1&&b=2&"), "{\"a\":\"1\",\"b\":\"2\"}");
  assert_json_is(parse_ok("a=b=c&e="), "{\"a\":\"b=c\",\"e\":\"\"}");
  /* Escapes in either case, raw UTF-8 as it is, escaped UTF-8 decoded. */
  assert_json_is(parse_ok("k%3d=%c3%A9&\xc3\xbc=%E2%9C%93"),
                 "{\"k=\":\"\\u00e9\",\"\\u00fc\":\"\\u2713\"}");
}

static void test_parse_refusals(void **state) {
  (void)state;
  parse_refused("a=%", "malformed percent escape at byte 2");
  parse_refused("a=%4", "malformed percent escape");
  parse_refused("a=1&b=%zz", "malformed percent escape at byte 6");
  parse_refused("a=%00", "NUL byte (%00) at byte 2");
  parse_refused("a%00b=1", "NUL");
  parse_refused("a=1&a=2", "'a' given twice");
  parse_refused("a=1&b=2&a=1", "given twice"); /* even with the same value */
  parse_refused("=v", "without a name at byte 0");
  parse_refused("a=1&=", "without a name at byte 4");
  parse_refused("a=%FF", "not UTF-8");
  parse_refused("%C3=1", "not UTF-8");
  /* A length stops the parse: bytes past it are not read. */
  json_t *out;
  assert_int_equal(er__url_query_parse("a=1&b=%", 3, &out, NULL, 0), 0);
  assert_json_is(out, "{\"a\":\"1\"}");
}

/* The query of a callback URL, parsed. */
static json_t *url_query(const char *url) {
  const char *q = strchr(url, '?');
  assert_non_null(q);
  return parse_ok(q + 1);
}

static void test_url_exact(void **state) {
  (void)state;
  json_t *params = json_pack("{s:s, s:s, s:s}", "b", "2", "a", "x y", "B", "&");
  char *url = NULL, err[200];
  assert_int_equal(
      er__pipe_callback_url("http://h:8080/app//", "P-1", params, TOKEN, &url, err, sizeof err), 0);
  /* Names in bytewise order ("B" < "a" < "b"), the base's slashes dropped. */
  char want[400];
  snprintf(want, sizeof want,
           "http://h:8080/app/callback?pipeline_id=P-1&B=%%26&a=x%%20y&b=2&token=%s", TOKEN);
  assert_string_equal(url, want);
  er_free(url);
  /* No parameters. */
  assert_int_equal(er__pipe_callback_url("https://example.com", "id", NULL, TOKEN, &url, NULL, 0),
                   0);
  snprintf(want, sizeof want, "https://example.com/callback?pipeline_id=id&token=%s", TOKEN);
  assert_string_equal(url, want);
  er_free(url);
  json_decref(params);
}

static void test_url_round_trip(void **state) {
  (void)state;
  json_t *params = json_pack(
      "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "space", "a b  c", "amp", "x&y&", "eq",
      "k=v=", "pct", "100% %41", "unicode", "h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9d\x84\x9e", "empty",
      "", "plus", "1+1", "name with space&=", "v", "\xc3\xbc", "\xc3\xa9", "slash?#", "/a?b#c");
  const char *id = "pipe line/\xc3\xa9&=";
  char *url = NULL;
  assert_int_equal(er__pipe_callback_url("http://127.0.0.1:8080", id, params, TOKEN, &url, NULL, 0),
                   0);
  /* Only unreserved bytes and escapes after the base: the URL is one token
   * on a command line, in a mail, in an HTML attribute. */
  const char *q = strchr(url, '?') + 1;
  assert_int_equal(
      strspn(q, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~%&="),
      strlen(q));
  json_t *got = url_query(url);
  json_t *want = json_deep_copy(params);
  json_object_set_new(want, "pipeline_id", json_string(id));
  json_object_set_new(want, "token", json_string(TOKEN));
  assert_true(json_equal(got, want));
  json_decref(got);
  json_decref(want);
  json_decref(params);
  er_free(url);
}

static void url_refused(const char *base, const char *id, json_t *params, const char *token,
                        const char *want) {
  char *url = (char *)1, err[200] = "";
  assert_int_equal(er__pipe_callback_url(base, id, params, token, &url, err, sizeof err),
                   ER_EINVAL);
  assert_null(url);
  if (!strstr(err, want)) fail_msg("message '%s' lacks '%s'", err, want);
}

static void test_url_refusals(void **state) {
  (void)state;
  const char *bad_bases[] = {
      NULL,           "",           "ftp://h",    "http://", "http:///x",
      "http://h?x=1", "http://h#f", "http://h x", "h:8080",  "http://h\xc3\xa9"};
  for (size_t i = 0; i < sizeof bad_bases / sizeof *bad_bases; i++)
    url_refused(bad_bases[i], "id", NULL, TOKEN, "is not http[s]://HOST");
  url_refused("http://h", "", NULL, TOKEN, "needs a pipeline id and a token");
  url_refused("http://h", NULL, NULL, TOKEN, "needs a pipeline id and a token");
  url_refused("http://h", "id", NULL, "", "needs a pipeline id and a token");
  json_t *p = json_pack("{s:s}", "token", "x");
  url_refused("http://h", "id", p, TOKEN, "'token' is reserved");
  json_decref(p);
  p = json_pack("{s:s}", "pipeline_id", "x");
  url_refused("http://h", "id", p, TOKEN, "'pipeline_id' is reserved");
  json_decref(p);
  p = json_pack("{s:i}", "n", 1);
  url_refused("http://h", "id", p, TOKEN, "'n' is not a string");
  json_decref(p);
  p = json_pack("{s:s}", "", "v");
  url_refused("http://h", "id", p, TOKEN, "empty name");
  json_decref(p);
  p = json_pack("{s:s#}", "n", "a\0b", (int)3);
  url_refused("http://h", "id", p, TOKEN, "'n' holds a NUL byte");
  json_decref(p);
  p = json_array();
  url_refused("http://h", "id", p, TOKEN, "must be a JSON object");
  json_decref(p);
}

static void test_base_url(void **state) {
  (void)state;
  unsetenv("ERRAND_BASE_URL");
  assert_null(er__pipe_base_url(NULL));
  assert_null(er__pipe_base_url(""));
  assert_string_equal(er__pipe_base_url("http://a"), "http://a");
  setenv("ERRAND_BASE_URL", "http://env:1", 1);
  assert_string_equal(er__pipe_base_url(NULL), "http://env:1");
  assert_string_equal(er__pipe_base_url(""), "http://env:1");
  assert_string_equal(er__pipe_base_url("http://a"), "http://a");
  setenv("ERRAND_BASE_URL", "", 1);
  assert_null(er__pipe_base_url(NULL));
  unsetenv("ERRAND_BASE_URL");
}

/* An allocator that fails from the n-th allocation on. */
static int g_left;
static void *failing_malloc(size_t n) { return g_left-- > 0 ? malloc(n) : NULL; }
static void *failing_realloc(void *p, size_t n) { return g_left-- > 0 ? realloc(p, n) : NULL; }

/* Every allocation that fails gives ER_ENOMEM, nothing half-made and
 * nothing leaked (ASan's leak check runs on this too). */
static void test_out_of_memory(void **state) {
  (void)state;
  json_t *params = json_pack("{s:s, s:s}", "a", "x y", "b", "z");
  const char *q = "a=1&b=%41%42&c";
  bool url_done = false, parse_done = false;
  for (int n = 0; n < 50 && !(url_done && parse_done); n++) {
    er_allocator_t a = {failing_malloc, failing_realloc, free};
    er_set_allocator(&a);
    g_left = n;
    char *url = NULL;
    json_t *obj = NULL;
    int rc = url_done ? 0 : er__pipe_callback_url("http://h", "id", params, TOKEN, &url, NULL, 0);
    int prc = parse_done ? 0 : er__url_query_parse(q, strlen(q), &obj, NULL, 0);
    er_set_allocator(NULL);
    assert_true(rc == 0 || rc == ER_ENOMEM);
    assert_true(prc == 0 || prc == ER_ENOMEM);
    assert_true(rc == 0 || !url);
    assert_true(prc == 0 || !obj);
    if (url) url_done = true;
    if (obj) parse_done = true;
    er_free(url);
    json_decref(obj);
  }
  assert_true(url_done && parse_done);
  json_decref(params);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_encode),         cmocka_unit_test(test_parse),
      cmocka_unit_test(test_parse_refusals), cmocka_unit_test(test_url_exact),
      cmocka_unit_test(test_url_round_trip), cmocka_unit_test(test_url_refusals),
      cmocka_unit_test(test_base_url),       cmocka_unit_test(test_out_of_memory),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
