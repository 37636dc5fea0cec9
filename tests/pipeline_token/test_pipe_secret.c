/* The callback secret against a real store: made once and shared, rotated,
 * cached by the process, made by racing processes. */
#include <sys/wait.h>
#include <unistd.h>

#include "pipe_token.h"

/* The secret is the store's: it outlives the process's cache and is the
 * same for every handle. */
void test_secret_stored(void **state) {
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

void test_rotation(void **state) {
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

/* The public rotation (`errand pipeline rotate-secret`): a client's rotation
 * is the store's, seen by every handle. */
void test_rotation_by_client(void **state) {
  fx_t *f = *state;
  json_t *p = json_pack("{s:s}", "k", "v");
  char t0[ER__PIPE_TOKEN_LEN + 1];
  make(f->s, ID, p, t0);
  er_client_t *c = NULL;
  assert_int_equal(er_client_open(f->url, &c, NULL, 0), 0);
  assert_int_equal(er_pipeline_secret_rotate(c), 0);
  assert_int_equal(er__pipe_token_check(f->s, ID, p, t0), 0); /* the previous secret */
  assert_int_equal(er_pipeline_secret_rotate(c), 0);
  assert_int_equal(er__pipe_token_check(f->s, ID, p, t0), ER_EAUTH);
  assert_int_equal(er_pipeline_secret_rotate(NULL), ER_EINVAL);
  er_client_close(c);
  json_decref(p);
}

/* The first read goes to the store, the next is the cache's. */
static void read_then_cached(er_store_t *s, er__pipe_secret_t *sec) {
  bool cached = true;
  assert_int_equal(er__pipe_secret_get(s, sec, &cached), 0);
  assert_false(cached);
  assert_int_equal(er__pipe_secret_get(s, sec, &cached), 0);
  assert_true(cached);
}

/* A rotation by another process, unseen by this one's cache: a token made
 * under the new secret verifies at once (the check reads the store again
 * before refusing). */
void test_rotation_elsewhere(void **state) {
  fx_t *f = *state;
  er__pipe_secret_t sec;
  bool cached;
  read_then_cached(f->s, &sec);
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
void test_cache_ttl(void **state) {
  fx_t *f = *state;
  er__pipe_secret_t sec;
  bool cached;
  read_then_cached(f->s, &sec);
  usleep((ER__PIPE_SECRET_TTL_MS + 200) * 1000);
  assert_int_equal(er__pipe_secret_get(f->s, &sec, &cached), 0);
  assert_false(cached);
}

/* Stores are kept apart: each has its own secret, more stores than the
 * cache has places included, and a token of one is refused by another. */
void test_stores_apart(void **state) {
  fx_t *f = *state;
  enum { N = 10 };
  er_store_t *s[N];
  char t[N][ER__PIPE_TOKEN_LEN + 1];
  for (int i = 0; i < N; i++) {
    char url[700];
    if (f->dir[0])
      snprintf(url, sizeof url, "sqlite:%s/store-%d.db", f->dir, i);
    else
      snprintf(url, sizeof url, "%s-%d", f->url, i); /* the prefix, told apart */
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
  er_mut_t m = {.kind = ER_MUT_DOC_PUT,
                .coll = ER__PIPE_SECRET_COLL,
                .key = ER__PIPE_SECRET_KEY,
                .value = json_pack("{s:s, s:n, s:i}", "current", cur, "previous", "rotated_ms", 1),
                .if_version = ER_VERSION_ABSENT};
  assert_int_equal(er_store_apply(s, &m, 1, NULL, NULL), 0);
  json_decref(m.value);
}

/* The loser of the race to make the secret uses the winner's. */
void test_make_race_lost(void **state) {
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
void test_rotate_race_lost(void **state) {
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
void test_make_race_processes(void **state) {
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

void test_malformed_secret(void **state) {
  fx_t *f = *state;
  const char *docs[] = {
      "\"text\"",
      "{\"current\": \"zz\", \"previous\": null, \"rotated_ms\": 1}",
      "{\"current\": \""
      "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef"
      "\", \"previous\": null, \"rotated_ms\": 1}",
      "{\"current\": \""
      "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
      "\", \"previous\": 5, \"rotated_ms\": 1}",
      "{\"current\": \""
      "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
      "\", \"previous\": null}",
  };
  char t[ER__PIPE_TOKEN_LEN + 1] = "";
  for (size_t i = 0; i < sizeof docs / sizeof *docs; i++) {
    er__pipe_secret_cache_clear();
    put_doc(f->s, json_loads(docs[i], JSON_DECODE_ANY, NULL));
    assert_int_equal(er__pipe_token_make(f->s, ID, NULL, t), ER_ECORRUPT);
    assert_int_equal(er__pipe_token_check(f->s, ID, NULL, t), ER_EAUTH); /* t is no token */
    assert_int_equal(
        er__pipe_token_check(f->s, ID, NULL,
                             "0000000000000000000000000000000000000000000000000000000000000000"),
        ER_ECORRUPT);
    assert_int_equal(er__pipe_secret_rotate(f->s), ER_ECORRUPT);
  }
}
