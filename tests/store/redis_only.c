/* What only the Redis store has: its URL, AUTH, the key layout and its
 * version, scripts flushed under it, connections killed under it, and a
 * server that is not there. Run against a private redis-server:
 *
 *   redis_server.sh run test_store_redis     (ERRAND_TEST_STORE=redis://...)
 *
 * Each test uses its own prefix. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <hiredis/hiredis.h>
#include <sys/wait.h>
#include <unistd.h>

#include "errand/common.h"
#include "errand/store.h"

static char g_host[64] = "127.0.0.1";
static int g_port;
static char g_url[256]; /* redis://host:port/0 without options */

/* A raw connection for looking behind the store's back. */
static redisContext *raw(void) {
  redisContext *c = redisConnect(g_host, g_port);
  assert_non_null(c);
  assert_int_equal(c->err, 0);
  return c;
}

static redisReply *cmd(redisContext *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  redisReply *r = redisvCommand(c, fmt, ap);
  va_end(ap);
  assert_non_null(r);
  return r;
}

static void cmd_ok(redisContext *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  redisReply *r = redisvCommand(c, fmt, ap);
  va_end(ap);
  assert_non_null(r);
  if (r->type == REDIS_REPLY_ERROR) fail_msg("%s: %s", fmt, r->str);
  freeReplyObject(r);
}

static er_store_t *open_prefix(const char *prefix, const char *more) {
  char url[400], err[256];
  snprintf(url, sizeof url, "%s?prefix=%s%s", g_url, prefix, more ? more : "");
  er_store_t *s = NULL;
  int rc = er_store_open(url, &s, err, sizeof err);
  if (rc) fail_msg("open %s: %s: %s", url, er_err_name(rc), err);
  return s;
}

static er_task_rec_t *mk(const char *queue) {
  er_task_rec_t *r = er_task_rec_new();
  er_id_t id;
  er_id_new(&id);
  memcpy(r->id, id.text, sizeof r->id);
  r->task = er_strdup("t");
  r->queue = er_strdup(queue);
  r->args = json_array();
  r->kwargs = json_object();
  r->created_ms = r->eta_ms = er_now_wall_ms();
  return r;
}

static int enq(er_store_t *s, const char *queue) {
  er_task_rec_t *r = mk(queue);
  int rc = er_store_enqueue(s, &r, 1, 0, NULL);
  er_task_rec_free(r);
  return rc;
}

/* ---- URLs ------------------------------------------------------------------ */

static void test_urls(void **state) {
  (void)state;
  static const char *const bad[] = {
      "redis:127.0.0.1:6379",         "redis://",
      "redis://127.0.0.1:0",          "redis://127.0.0.1:99999",
      "redis://127.0.0.1:6379/x",     "redis://127.0.0.1:6379/0?prefix=a{b}",
      "redis://127.0.0.1:6379?nope=1", "redis://127.0.0.1:6379?timeout_ms=0",
      "redis://user@127.0.0.1:6379",  "redis://[::1:6379",
      "redis://127.0.0.1:6379?prefix=%7Bx%7D", "redis://127.0.0.1:6379?prefix=",
  };
  char err[256];
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    er_store_t *s = (er_store_t *)1;
    int rc = er_store_open(bad[i], &s, err, sizeof err);
    if (rc != ER_EINVAL) fail_msg("%s: %s (%s)", bad[i], er_err_name(rc), err);
    assert_null(s);
    assert_true(strlen(err) > 0);
  }
  er_store_t *s;
  assert_int_equal(er_store_open("rediss://127.0.0.1:6379", &s, err, sizeof err), ER_EINVAL);
  assert_non_null(strstr(err, "TLS"));
}

/* A bad URL's error names the URL, never its password. */
static void test_url_errors_redacted(void **state) {
  (void)state;
  static const struct {
    const char *url, *shown;
  } cases[] = {
      {"redis://:hunter2@127.0.0.1:0", "redis://:***@127.0.0.1:0"},
      {"redis://bob:hunter2@127.0.0.1:6379?nope=1", "redis://bob:***@127.0.0.1:6379?nope=1"},
      {"rediss://:hunter2@127.0.0.1:6379", "rediss://:***@127.0.0.1:6379"},
      {"redis://:hun@ter2@127.0.0.1:6379/x", "redis://:***@127.0.0.1:6379/x"},
  };
  char err[256];
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    er_store_t *s = NULL;
    assert_int_equal(er_store_open(cases[i].url, &s, err, sizeof err), ER_EINVAL);
    if (strstr(err, "hunter2") || strstr(err, "ter2") || !strstr(err, cases[i].shown))
      fail_msg("%s: %s", cases[i].url, err);
  }
}

static void test_url_redact(void **state) {
  (void)state;
  static const char *const cases[][2] = {
      {"redis://:pw@h:1/0", "redis://:***@h:1/0"},
      {"redis://user:pw@h:1", "redis://user:***@h:1"},
      {"redis://pw@h", "redis://***@h"},
      {"redis://h:1/0?prefix=a@b", "redis://h:1/0?prefix=a@b"},
      {"redis://:p/w@h", "redis://:***@h"},
      {"sqlite:/tmp/x@y.db", "sqlite:/tmp/x@y.db"},
  };
  char out[64];
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    assert_int_equal(er_url_redact(cases[i][0], out, sizeof out), 0);
    assert_string_equal(out, cases[i][1]);
  }
  char small[12];
  assert_int_equal(er_url_redact("redis://:secretpw@host", small, sizeof small), ER_ETOOBIG);
  assert_string_equal(small, "redis://:**");
  assert_int_equal(er_url_redact(NULL, out, sizeof out), ER_EINVAL);
  assert_int_equal(er_url_redact("x", out, 0), ER_EINVAL);
}

/* Nothing listens there: the open fails within its timeout, saying so. */
static void test_unreachable(void **state) {
  (void)state;
  char err[256];
  er_store_t *s = (er_store_t *)1;
  uint64_t t0 = er_now_mono_ms();
  int rc = er_store_open("redis://127.0.0.1:1/0?timeout_ms=300", &s, err, sizeof err);
  uint64_t el = er_now_mono_ms() - t0;
  assert_int_equal(rc, ER_EUNAVAILABLE);
  assert_null(s);
  assert_non_null(strstr(err, "unavailable"));
  print_message("%s (%llu ms)\n", err, (unsigned long long)el);
  assert_true(el >= 250 && el < 2000);
}

/* ---- layout ----------------------------------------------------------------- */

static void test_layout(void **state) {
  (void)state;
  er_store_t *s = open_prefix("layout", NULL);
  assert_int_equal(enq(s, "q1"), 0);
  er_task_rec_t *r = mk("q1");
  r->name = er_strdup("n1");
  r->key = er_strdup("k1");
  r->eta_ms += 3600000;
  assert_int_equal(er_store_enqueue(s, &r, 1, 0, NULL), 0);
  const char *qs[] = {"q1"};
  er_reserve_req_t req = {qs, 1, "w", er_now_wall_ms(), 60000, 5};
  er_task_rec_t **got;
  size_t n;
  assert_int_equal(er_store_reserve(s, &req, &got, &n), 0);
  assert_int_equal(n, 1);
  er_task_rec_free_array(got, n);
  json_t *info = json_pack("{s:s}", "id", "w1");
  assert_int_equal(er_store_heartbeat(s, info, er_now_wall_ms(), 60000), 0);
  json_decref(info);

  redisContext *c = raw();
  redisReply *v = cmd(c, "GET errand:{layout}:version");
  assert_int_equal(v->type, REDIS_REPLY_STRING);
  assert_string_equal(v->str, "2");
  freeReplyObject(v);
  /* every key under the one hash tag, so one cluster slot holds the store */
  redisReply *k = cmd(c, "KEYS *{layout}*");
  assert_int_equal(k->type, REDIS_REPLY_ARRAY);
  static const char *const want[] = {"version", "seq",        "counts",  "leases",
                                     "name:n1", "key:k1",     "delayed:q1", "workers",
                                     "workers:expiry", "ids", "ncounts"};
  for (size_t w = 0; w < sizeof want / sizeof want[0]; w++) {
    char full[128];
    snprintf(full, sizeof full, "errand:{layout}:%s", want[w]);
    bool found = false;
    for (size_t i = 0; i < k->elements; i++)
      if (strcmp(k->element[i]->str, full) == 0) found = true;
    if (!found) fail_msg("no key %s", full);
  }
  for (size_t i = 0; i < k->elements; i++)
    assert_int_equal(strncmp(k->element[i]->str, "errand:{layout}:", 16), 0);
  print_message("%zu keys, all errand:{layout}:...\n", k->elements);
  freeReplyObject(k);
  er_task_rec_free(r);
  er_store_close(s);

  /* a newer layout, or a key that is not ours, is refused */
  char err[256];
  char url[300];
  cmd_ok(c, "SET errand:{newer}:version 99");
  snprintf(url, sizeof url, "%s?prefix=newer", g_url);
  assert_int_equal(er_store_open(url, &s, err, sizeof err), ER_ECORRUPT);
  assert_non_null(strstr(err, "newer errand"));
  cmd_ok(c, "RPUSH errand:{other}:version x");
  snprintf(url, sizeof url, "%s?prefix=other", g_url);
  assert_int_equal(er_store_open(url, &s, err, sizeof err), ER_ECORRUPT);
  redisFree(c);
}

/* A store of key layout version 1 (no ids index, no counts by name) is
 * migrated when opened: its tasks are listed and counted by name. */
static void test_migrate_v1(void **state) {
  (void)state;
  er_store_t *s = open_prefix("old", NULL);
  char ids[3][ER_ID_LEN + 1];
  for (int i = 0; i < 3; i++) {
    er_task_rec_t *r = mk("q1");
    assert_int_equal(er_store_enqueue(s, &r, 1, 0, NULL), 0);
    memcpy(ids[i], r->id, sizeof ids[i]);
    er_task_rec_free(r);
  }
  er_store_close(s);
  /* as a version-1 errand left it */
  redisContext *c = raw();
  cmd_ok(c, "DEL errand:{old}:ids errand:{old}:ncounts");
  cmd_ok(c, "SET errand:{old}:version 1");
  s = open_prefix("old", NULL);
  redisReply *v = cmd(c, "GET errand:{old}:version");
  assert_string_equal(v->str, "2");
  freeReplyObject(v);
  er_task_list_req_t req = {.queue = "q1"};
  er_task_rec_t **recs = NULL;
  size_t n = 0;
  char next[ER_ID_LEN + 1];
  assert_int_equal(er_store_list_tasks(s, &req, &recs, &n, next), 0);
  assert_int_equal(n, 3);
  assert_string_equal(recs[0]->id, ids[2]);
  assert_string_equal(recs[2]->id, ids[0]);
  er_task_rec_free_array(recs, n);
  json_t *st = NULL;
  assert_int_equal(er_store_stats(s, &st), 0);
  assert_int_equal(
      json_integer_value(json_object_get(json_object_get(json_object_get(st, "names"), "t"),
                                         "PENDING")),
      3);
  json_decref(st);
  /* a second open changes nothing */
  er_store_close(s);
  s = open_prefix("old", NULL);
  assert_int_equal(er_store_stats(s, &st), 0);
  assert_int_equal(
      json_integer_value(json_object_get(json_object_get(json_object_get(st, "names"), "t"),
                                         "PENDING")),
      3);
  json_decref(st);
  er_store_close(s);
  redisFree(c);
}

/* ---- faults under a live handle ----------------------------------------------------- */

static void test_script_flush(void **state) {
  (void)state;
  er_store_t *s = open_prefix("flush", NULL);
  assert_int_equal(enq(s, "q"), 0);
  redisContext *c = raw();
  cmd_ok(c, "SCRIPT FLUSH");
  assert_int_equal(enq(s, "q"), 0); /* NOSCRIPT: loaded again */
  json_t *st;
  assert_int_equal(er_store_stats(s, &st), 0);
  assert_int_equal(
      json_integer_value(json_object_get(json_object_get(json_object_get(st, "queues"), "q"),
                                         "PENDING")),
      2);
  json_decref(st);
  redisFree(c);
  er_store_close(s);
}

/* The server drops every client: the next call reconnects at once, and the
 * subscription comes back (reporting a change, as one may have been missed). */
static void test_connection_killed(void **state) {
  (void)state;
  er_store_t *s = open_prefix("killed", NULL), *other = open_prefix("killed", NULL);
  assert_true(er_store_wakeup_fd(s) >= 0);
  while (er_store_wait_change(s, 0) == 0) {
  }
  redisContext *c = raw();
  redisReply *r = cmd(c, "CLIENT KILL TYPE normal SKIPME yes");
  assert_int_equal(r->type, REDIS_REPLY_INTEGER);
  assert_true(r->integer >= 2); /* the two handles' command connections */
  freeReplyObject(r);
  r = cmd(c, "CLIENT KILL TYPE pubsub");
  freeReplyObject(r);
  usleep(20000);
  assert_int_equal(enq(s, "q"), 0);
  assert_int_equal(er_store_wait_change(s, 1000), 0); /* the lost subscription */
  while (er_store_wait_change(s, 0) == 0) {
  }
  assert_int_equal(enq(other, "q"), 0); /* another handle's change wakes us */
  assert_int_equal(er_store_wait_change(s, 2000), 0);
  assert_int_equal(er_store_wait_change(s, 50), ER_ETIMEDOUT);
  redisFree(c);
  er_store_close(other);
  er_store_close(s);
}

static void test_auth(void **state) {
  (void)state;
  redisContext *c = raw();
  cmd_ok(c, "CONFIG SET requirepass %s", "s3cr:t@x");
  char url[300], err[256];
  er_store_t *s = NULL;
  snprintf(url, sizeof url, "redis://:Zq9-pw@%s:%d/0?prefix=auth&timeout_ms=500", g_host, g_port);
  int rc = er_store_open(url, &s, err, sizeof err);
  assert_null(strstr(err, "Zq9-pw"));
  snprintf(url, sizeof url, "redis://:s3cr%%3At%%40x@%s:%d/0?prefix=auth", g_host, g_port);
  int rc2 = er_store_open(url, &s, NULL, 0);
  cmd_ok(c, "CONFIG SET requirepass %s", "");
  assert_int_equal(rc, ER_EAUTH);
  print_message("wrong password: %s\n", err);
  assert_int_equal(rc2, 0);
  assert_int_equal(enq(s, "q"), 0);
  er_store_close(s);
  redisFree(c);
}

static void test_database(void **state) {
  (void)state;
  char url[300], err[256];
  er_store_t *s = NULL;
  snprintf(url, sizeof url, "redis://%s:%d/99999?prefix=db", g_host, g_port);
  assert_int_equal(er_store_open(url, &s, err, sizeof err), ER_EINVAL);
  snprintf(url, sizeof url, "redis://%s:%d/2?prefix=db", g_host, g_port);
  assert_int_equal(er_store_open(url, &s, err, sizeof err), 0);
  assert_int_equal(enq(s, "q"), 0);
  er_store_close(s);
  redisContext *c = raw();
  cmd_ok(c, "SELECT 2");
  redisReply *r = cmd(c, "EXISTS errand:{db}:version");
  assert_int_equal(r->integer, 1);
  freeReplyObject(r);
  redisFree(c);
}

int main(int argc, char **argv) {
  const char *base = argc > 1 ? argv[1] : getenv("ERRAND_TEST_STORE");
  if (!base || strncmp(base, "redis://", 8) != 0) {
    fprintf(stderr, "usage: test_store_redis redis://HOST:PORT (or ERRAND_TEST_STORE)\n");
    return 2;
  }
  if (sscanf(base, "redis://%63[^:]:%d", g_host, &g_port) != 2) return 2;
  snprintf(g_url, sizeof g_url, "redis://%s:%d/0", g_host, g_port);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_urls),          cmocka_unit_test(test_unreachable),
      cmocka_unit_test(test_url_errors_redacted), cmocka_unit_test(test_url_redact),
      cmocka_unit_test(test_layout),        cmocka_unit_test(test_migrate_v1),
      cmocka_unit_test(test_script_flush),
      cmocka_unit_test(test_connection_killed), cmocka_unit_test(test_auth),
      cmocka_unit_test(test_database),
  };
  return cmocka_run_group_tests_name("redis store", tests, NULL, NULL);
}
