/* Callback tokens and their secret, against a real store: a fresh SQLite
 * file per test, or, under redis_server.sh, a private redis-server with a
 * fresh prefix per test ($ERRAND_TEST_STORE). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/url_query.h"
#include "pipeline/token.h"

static const char ID[] = "0190a2b4-0000-7000-8000-000000000001";

typedef struct fx {
  char dir[64]; /* SQLite's temporary directory, or "" */
  char url[600];
  er_store_t *s;
} fx_t;

static er_store_t *open_url(const char *url) {
  er_store_t *s = NULL;
  char err[256];
  int rc = er_store_open(url, &s, err, sizeof err);
  if (rc) fail_msg("open %s: %s: %s", url, er_err_name(rc), err);
  return s;
}

static int setup(void **state) {
  fx_t *f = calloc(1, sizeof *f);
  const char *env = getenv("ERRAND_TEST_STORE");
  er_id_t id;
  er_id_new(&id);
  if (env && *env) {
    /* A prefix of its own: every test starts without a secret. */
    snprintf(f->url, sizeof f->url, "%.*s?prefix=tok-%s", (int)strcspn(env, "?"), env, id.text);
  } else {
    snprintf(f->dir, sizeof f->dir, "/tmp/errand-token-XXXXXX");
    if (!mkdtemp(f->dir)) fail_msg("mkdtemp: %s", strerror(errno));
    snprintf(f->url, sizeof f->url, "sqlite:%s/store.db", f->dir);
  }
  f->s = open_url(f->url);
  er__pipe_secret_cache_clear();
  er__pipe_secret_race_hook = NULL;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx_t *f = *state;
  er_store_close(f->s);
  if (f->dir[0]) {
    DIR *d = opendir(f->dir);
    struct dirent *e;
    char p[256];
    while (d && (e = readdir(d)))
      if (e->d_name[0] != '.' && snprintf(p, sizeof p, "%s/%s", f->dir, e->d_name) > 0) unlink(p);
    if (d) closedir(d);
    rmdir(f->dir);
  }
  free(f);
  er__pipe_secret_race_hook = NULL;
  return 0;
}

static void make(er_store_t *s, const char *id, json_t *params, char out[ER__PIPE_TOKEN_LEN + 1]) {
  int rc = er__pipe_token_make(s, id, params, out);
  if (rc) fail_msg("make: %s: %s", er_err_name(rc), er_store_last_error(s));
  assert_int_equal(strlen(out), ER__PIPE_TOKEN_LEN);
  assert_int_equal(strspn(out, "0123456789abcdef"), ER__PIPE_TOKEN_LEN);
}

static json_t *doc(er_store_t *s, int64_t *version) {
  json_t *v = NULL;
  assert_int_equal(er_store_doc_get(s, ER__PIPE_SECRET_COLL, ER__PIPE_SECRET_KEY, &v, version), 0);
  return v;
}

static void put_doc(er_store_t *s, json_t *v) {
  er_mut_t m = {.kind = ER_MUT_DOC_PUT, .coll = ER__PIPE_SECRET_COLL, .key = ER__PIPE_SECRET_KEY,
                .value = v, .if_version = ER_VERSION_ANY};
  assert_int_equal(er_store_apply(s, &m, 1, NULL, NULL), 0);
  json_decref(v);
}

static void hex32(const uint8_t *b, char out[65]) {
  for (int i = 0; i < 32; i++) snprintf(out + 2 * i, 3, "%02x", b[i]);
}

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
  assert_int_equal(er__pipe_token_check(f->s, "0190a2b4-0000-7000-8000-000000000002", p, t), ER_EAUTH);
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
  assert_int_equal(er__pipe_token_check(f->s, ID, p, "0000000000000000000000000000000000000000000000000000000000000000"), ER_EINVAL);
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

/* The secret is the store's: it outlives the process's cache and is the
 * same for every handle. */
static void test_secret_stored(void **state) {
  fx_t *f = *state;
  char t[ER__PIPE_TOKEN_LEN + 1];
  make(f->s, ID, NULL, t);
  int64_t version;
  json_t *d = doc(f->s, &version);
  assert_int_equal(version, 1);
  assert_int_equal(strlen(json_string_value(json_object_get(d, "current"))), 64);
  assert_true(json_is_null(json_object_get(d, "previous")));
  assert_true(json_integer_value(json_object_get(d, "rotated_ms")) > 0);
  json_decref(d);
  er__pipe_secret_cache_clear();
  er_store_t *other = open_url(f->url);
  assert_int_equal(er__pipe_token_check(other, ID, NULL, t), 0);
  char t2[ER__PIPE_TOKEN_LEN + 1];
  make(other, ID, NULL, t2);
  assert_string_equal(t, t2);
  er_store_close(other);
  /* Nothing was written again. */
  json_decref(doc(f->s, &version));
  assert_int_equal(version, 1);
}

static void test_rotation(void **state) {
  fx_t *f = *state;
  json_t *p = json_pack("{s:s}", "k", "v");
  char t0[ER__PIPE_TOKEN_LEN + 1], t1[ER__PIPE_TOKEN_LEN + 1], t2[ER__PIPE_TOKEN_LEN + 1];
  make(f->s, ID, p, t0);
  json_t *before = doc(f->s, NULL);
  assert_int_equal(er__pipe_secret_rotate(f->s), 0);
  int64_t version;
  json_t *after = doc(f->s, &version);
  assert_int_equal(version, 2);
  assert_true(json_equal(json_object_get(after, "previous"), json_object_get(before, "current")));
  assert_false(json_equal(json_object_get(after, "current"), json_object_get(before, "current")));
  json_decref(before);
  json_decref(after);
  /* One rotation: the old token still verifies; new ones are other. */
  assert_int_equal(er__pipe_token_check(f->s, ID, p, t0), 0);
  make(f->s, ID, p, t1);
  assert_string_not_equal(t0, t1);
  assert_int_equal(er__pipe_token_check(f->s, ID, p, t1), 0);
  /* Another handle, with nothing cached, agrees. */
  er__pipe_secret_cache_clear();
  er_store_t *other = open_url(f->url);
  assert_int_equal(er__pipe_token_check(other, ID, p, t0), 0);
  assert_int_equal(er__pipe_token_check(other, ID, p, t1), 0);
  /* Two rotations: the first token is refused, the second still verifies. */
  assert_int_equal(er__pipe_secret_rotate(other), 0);
  make(f->s, ID, p, t2);
  assert_string_not_equal(t2, t1);
  assert_int_equal(er__pipe_token_check(f->s, ID, p, t0), ER_EAUTH);
  assert_int_equal(er__pipe_token_check(other, ID, p, t0), ER_EAUTH);
  assert_int_equal(er__pipe_token_check(f->s, ID, p, t1), 0);
  assert_int_equal(er__pipe_token_check(f->s, ID, p, t2), 0);
  er_store_close(other);
  json_decref(p);
}

/* A rotation by another process, unseen by this one's cache: a token made
 * under the new secret verifies at once (the check reads the store again
 * before refusing). */
static void test_rotation_elsewhere(void **state) {
  fx_t *f = *state;
  er__pipe_secret_t sec;
  bool cached = true;
  assert_int_equal(er__pipe_secret_get(f->s, &sec, &cached), 0);
  assert_false(cached);
  assert_int_equal(er__pipe_secret_get(f->s, &sec, &cached), 0);
  assert_true(cached);
  uint8_t key[ER__PIPE_SECRET_LEN];
  for (int i = 0; i < ER__PIPE_SECRET_LEN; i++) key[i] = (uint8_t)(0xa0 + i);
  char cur[65], prev[65];
  hex32(key, cur);
  hex32(sec.current, prev);
  put_doc(f->s, json_pack("{s:s, s:s, s:I}", "current", cur, "previous", prev, "rotated_ms",
                          (json_int_t)er_now_wall_ms()));
  char t[ER__PIPE_TOKEN_LEN + 1];
  assert_int_equal(er__pipe_token_compute(key, ID, NULL, t), 0);
  assert_int_equal(er__pipe_token_check(f->s, ID, NULL, t), 0);
  /* And the cache now holds the new secret. */
  assert_int_equal(er__pipe_secret_get(f->s, &sec, &cached), 0);
  assert_true(cached);
  assert_memory_equal(sec.current, key, sizeof key);
  assert_int_equal(sec.version, 2);
}

/* The process keeps a secret a short while, then reads the store again. */
static void test_cache_ttl(void **state) {
  fx_t *f = *state;
  er__pipe_secret_t sec;
  bool cached = true;
  assert_int_equal(er__pipe_secret_get(f->s, &sec, &cached), 0);
  assert_false(cached);
  assert_int_equal(er__pipe_secret_get(f->s, &sec, &cached), 0);
  assert_true(cached);
  usleep((ER__PIPE_SECRET_TTL_MS + 200) * 1000);
  assert_int_equal(er__pipe_secret_get(f->s, &sec, &cached), 0);
  assert_false(cached);
}

/* Stores are kept apart: each has its own secret, more stores than the
 * cache has places included, and a token of one is refused by another. */
static void test_stores_apart(void **state) {
  fx_t *f = *state;
  enum { N = 10 };
  er_store_t *s[N];
  char t[N][ER__PIPE_TOKEN_LEN + 1];
  for (int i = 0; i < N; i++) {
    char url[700];
    if (f->dir[0]) snprintf(url, sizeof url, "sqlite:%s/store-%d.db", f->dir, i);
    else snprintf(url, sizeof url, "%s-%d", f->url, i); /* the prefix, told apart */
    s[i] = open_url(url);
    make(s[i], ID, NULL, t[i]);
  }
  for (int round = 0; round < 2; round++) /* from the store, then from the cache */
    for (int i = 0; i < N; i++) {
      assert_int_equal(er__pipe_token_check(s[i], ID, NULL, t[i]), 0);
      assert_int_equal(er__pipe_token_check(s[i], ID, NULL, t[(i + 1) % N]), ER_EAUTH);
      for (int j = 0; j < i; j++) assert_string_not_equal(t[i], t[j]);
    }
  for (int i = 0; i < N; i++) er_store_close(s[i]);
}

static uint8_t g_winner[ER__PIPE_SECRET_LEN];
static int g_hook_calls;

/* Plays a process that writes its secret (or rotates) first. */
static void race_hook(er_store_t *s, bool rotating) {
  g_hook_calls++;
  er__pipe_secret_race_hook = NULL; /* once */
  if (rotating) {
    assert_int_equal(er__pipe_secret_rotate(s), 0);
    return;
  }
  for (int i = 0; i < ER__PIPE_SECRET_LEN; i++) g_winner[i] = (uint8_t)(0x40 + i);
  char cur[65];
  hex32(g_winner, cur);
  er_mut_t m = {.kind = ER_MUT_DOC_PUT, .coll = ER__PIPE_SECRET_COLL, .key = ER__PIPE_SECRET_KEY,
                .value = json_pack("{s:s, s:n, s:i}", "current", cur, "previous", "rotated_ms", 1),
                .if_version = ER_VERSION_ABSENT};
  assert_int_equal(er_store_apply(s, &m, 1, NULL, NULL), 0);
  json_decref(m.value);
}

/* The loser of the race to make the secret uses the winner's. */
static void test_make_race_lost(void **state) {
  fx_t *f = *state;
  g_hook_calls = 0;
  er__pipe_secret_race_hook = race_hook;
  er__pipe_secret_t sec;
  assert_int_equal(er__pipe_secret_load(f->s, &sec), 0);
  assert_int_equal(g_hook_calls, 1);
  assert_memory_equal(sec.current, g_winner, sizeof g_winner);
  assert_false(sec.has_previous);
  int64_t version;
  json_decref(doc(f->s, &version));
  assert_int_equal(version, 1);
  assert_int_equal(sec.version, 1);
}

/* Two rotations racing make one: the loser writes nothing, and a token
 * made before both still verifies. */
static void test_rotate_race_lost(void **state) {
  fx_t *f = *state;
  char t0[ER__PIPE_TOKEN_LEN + 1];
  make(f->s, ID, NULL, t0);
  g_hook_calls = 0;
  er__pipe_secret_race_hook = race_hook;
  assert_int_equal(er__pipe_secret_rotate(f->s), 0);
  assert_int_equal(g_hook_calls, 1);
  int64_t version;
  json_decref(doc(f->s, &version));
  assert_int_equal(version, 2);
  assert_int_equal(er__pipe_token_check(f->s, ID, NULL, t0), 0);
  /* The cache holds the winner's rotation. */
  er__pipe_secret_t sec;
  bool cached;
  assert_int_equal(er__pipe_secret_get(f->s, &sec, &cached), 0);
  assert_true(cached);
  assert_int_equal(sec.version, 2);
}

/* Processes, each with its own handle, making the secret at once: all end
 * with the one the store kept. */
static void test_make_race_processes(void **state) {
  fx_t *f = *state;
  enum { N = 4 };
  int go[2], res[2];
  pid_t pids[N];
  assert_int_equal(pipe(go), 0);
  assert_int_equal(pipe(res), 0);
  for (int i = 0; i < N; i++) {
    pids[i] = fork();
    assert_true(pids[i] >= 0);
    if (pids[i] == 0) {
      close(go[1]);
      er_store_t *s = NULL;
      if (er_store_open(f->url, &s, NULL, 0)) _exit(2);
      char c;
      if (read(go[0], &c, 1) != 0) _exit(3); /* released when the parent closes go */
      er__pipe_secret_t sec;
      if (er__pipe_secret_load(s, &sec)) _exit(4);
      if (write(res[1], sec.current, sizeof sec.current) != (ssize_t)sizeof sec.current) _exit(5);
      er_store_close(s);
      _exit(0);
    }
  }
  close(go[0]);
  close(go[1]);
  close(res[1]);
  uint8_t got[N][ER__PIPE_SECRET_LEN];
  for (int i = 0; i < N; i++) {
    size_t have = 0;
    while (have < sizeof got[i]) {
      ssize_t r = read(res[0], got[i] + have, sizeof got[i] - have);
      if (r <= 0) fail_msg("a child gave no secret");
      have += (size_t)r;
    }
  }
  close(res[0]);
  for (int i = 0; i < N; i++) {
    int st;
    assert_int_equal(waitpid(pids[i], &st, 0), pids[i]);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  }
  er__pipe_secret_t sec;
  assert_int_equal(er__pipe_secret_load(f->s, &sec), 0);
  for (int i = 0; i < N; i++) assert_memory_equal(got[i], sec.current, sizeof sec.current);
  assert_int_equal(sec.version, 1);
}

static void test_malformed_secret(void **state) {
  fx_t *f = *state;
  const char *docs[] = {
      "\"text\"",
      "{\"current\": \"zz\", \"previous\": null, \"rotated_ms\": 1}",
      "{\"current\": \"" "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef" "\", \"previous\": null, \"rotated_ms\": 1}",
      "{\"current\": \"" "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" "\", \"previous\": 5, \"rotated_ms\": 1}",
      "{\"current\": \"" "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" "\", \"previous\": null}",
  };
  char t[ER__PIPE_TOKEN_LEN + 1] = "";
  for (size_t i = 0; i < sizeof docs / sizeof *docs; i++) {
    er__pipe_secret_cache_clear();
    put_doc(f->s, json_loads(docs[i], JSON_DECODE_ANY, NULL));
    assert_int_equal(er__pipe_token_make(f->s, ID, NULL, t), ER_ECORRUPT);
    assert_int_equal(er__pipe_token_check(f->s, ID, NULL, t), ER_EAUTH); /* t is no token */
    assert_int_equal(er__pipe_token_check(f->s, ID, NULL,
                                          "0000000000000000000000000000000000000000000000000000000000000000"),
                     ER_ECORRUPT);
    assert_int_equal(er__pipe_secret_rotate(f->s), ER_ECORRUPT);
  }
}

/* What the pipeline and HTTP layers do together: make a callback URL, read
 * its query back, check the token. */
static void test_url_make_and_check(void **state) {
  fx_t *f = *state;
  json_t *p = json_pack("{s:s, s:s}", "choice", "approve", "who", "Zoë & co");
  char *url = NULL, err[200] = "";
  assert_int_equal(er__pipe_callback_url_make(f->s, "http://127.0.0.1:8080/", ID, p, &url, err,
                                              sizeof err), 0);
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
  assert_int_equal(er__pipe_callback_url_make(f->s, "ftp://x", ID, p, &url, err, sizeof err), ER_EINVAL);
  assert_non_null(strstr(err, "base URL"));
  json_object_set_new(p, "token", json_string("x"));
  assert_int_equal(er__pipe_callback_url_make(f->s, "http://h", ID, p, &url, err, sizeof err), ER_EINVAL);
  assert_non_null(strstr(err, "reserved"));
  assert_int_equal(er__pipe_callback_url_make(f->s, "http://h", "", NULL, &url, err, sizeof err), ER_EINVAL);
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
      cmocka_unit_test_setup_teardown(test_make_race_processes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_malformed_secret, setup, teardown),
      cmocka_unit_test_setup_teardown(test_url_make_and_check, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
