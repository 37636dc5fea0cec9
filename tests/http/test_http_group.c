/* The HTTP sends' group commit (src/http/send_group.c), on a real server
 * and store: concurrent POSTs are all answered and all stored, each with
 * its own task; the sends that arrive while a write is in progress go out
 * together in the next one; and a bad request in such a batch fails alone,
 * with the answer it gets when sent by itself, while the others in its
 * batch are stored, while a store that fails as a whole fails the batch
 * once. argv[1] "redis" runs on a private redis-server (the blocked-write
 * cases need SQLite's write lock and are skipped there). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <errand.h>
#include <sqlite3.h>

#include "harness.h"
#include "http/http_internal.h"
#include "http_client.h"

static bool g_redis;
static harness_t H;
static er_http_server_t *g_srv;
static int g_port;

static int setup(void **state) {
  if (g_redis) {
    if (!h_setup_redis(&H)) return -1;
  } else {
    h_setup(&H, "?busy_ms=120000"); /* the test holds the write lock a while */
  }
  er_http_opts_t o = {.listen = "127.0.0.1:0", .store_url = H.url};
  char msg[256] = "";
  if (er_http_server_new(&o, &g_srv, msg, sizeof msg) < 0 ||
      er_http_server_start(g_srv, msg, sizeof msg) < 0) {
    fprintf(stderr, "server: %s\n", msg);
    return -1;
  }
  g_port = er_http_server_port(g_srv);
  return 0;
}

static int teardown(void **state) {
  er_http_server_free(g_srv);
  if (g_redis)
    h_teardown_redis(&H);
  else
    h_teardown(&H);
  return 0;
}

/* One POST /api/v1/tasks made on a thread of its own (no asserts there). */
typedef struct post {
  char body[128];
  char *big; /* instead of body when set */
  int port; /* 0: g_port */
  pthread_t th;
  int status;
  json_t *answer;
} post_t;

static void *post_run(void *ud) {
  post_t *p = ud;
  const char *body = p->big ? p->big : p->body;
  tc_resp_t r = tc_req(p->port ? p->port : g_port, "POST", "/api/v1/tasks", body);
  p->status = r.status;
  p->answer = tc_json(&r);
  tc_free(&r);
  return NULL;
}

static void post_start(post_t *p) { assert_int_equal(pthread_create(&p->th, NULL, post_run, p), 0); }

static const char *message(json_t *answer) {
  return json_string_value(json_object_get(json_object_get(answer, "error"), "message"));
}

static er__http_send_stats_t stats_of(er_http_server_t *srv) {
  er__http_send_stats_t st;
  er__http_send_stats(srv, &st);
  return st;
}

static er__http_send_stats_t stats(void) { return stats_of(g_srv); }

/* The task id answered must be stored with the args the body sent. */
static void assert_stored(json_t *answer, json_int_t a, json_int_t b) {
  const char *id = json_string_value(json_object_get(answer, "id"));
  assert_non_null(id);
  er_task_rec_t *r = NULL;
  assert_int_equal(er_status(H.client, id, NULL, &r), 0);
  assert_int_equal(r->state, ER_STATE_PENDING);
  assert_string_equal(r->task, "add");
  assert_int_equal(json_array_size(r->args), 2);
  assert_int_equal(json_integer_value(json_array_get(r->args, 0)), a);
  assert_int_equal(json_integer_value(json_array_get(r->args, 1)), b);
  er_task_rec_free(r);
}

#define THREADS 16
#define EACH 25

typedef struct sender {
  int t;
  pthread_t th;
  int status[EACH];
  json_t *answer[EACH];
} sender_t;

static void *sender_run(void *ud) {
  sender_t *s = ud;
  for (int i = 0; i < EACH; i++) {
    char body[96];
    snprintf(body, sizeof body, "{\"task\":\"add\",\"args\":[%d,%d]}", s->t, i);
    tc_resp_t r = tc_req(g_port, "POST", "/api/v1/tasks", body);
    s->status[i] = r.status;
    s->answer[i] = tc_json(&r);
    tc_free(&r);
  }
  return NULL;
}

/* THREADS clients sending EACH tasks each at once: every answer a 202 with
 * an id of its own, and every id stored with its own args. */
static void concurrent_sends_all_stored(void **state) {
  er__http_send_stats_t before = stats();
  static sender_t s[THREADS];
  for (int t = 0; t < THREADS; t++) {
    s[t].t = t;
    assert_int_equal(pthread_create(&s[t].th, NULL, sender_run, &s[t]), 0);
  }
  for (int t = 0; t < THREADS; t++) pthread_join(s[t].th, NULL);
  json_t *seen = json_object();
  for (int t = 0; t < THREADS; t++) {
    for (int i = 0; i < EACH; i++) {
      if (s[t].status[i] != 202) fail_msg("send %d/%d: %d", t, i, s[t].status[i]);
      const char *id = json_string_value(json_object_get(s[t].answer[i], "id"));
      assert_non_null(id);
      assert_null(json_object_get(seen, id));
      json_object_set_new(seen, id, json_true());
      assert_stored(s[t].answer[i], t, i);
      json_decref(s[t].answer[i]);
    }
  }
  assert_int_equal(json_object_size(seen), THREADS * EACH);
  json_decref(seen);
  er__http_send_stats_t after = stats();
  assert_int_equal(after.sends - before.sends, THREADS * EACH);
  assert_int_equal(after.waiting, 0);
}

/* Waits up to 60 s for cond over srv's stats; fails with what when it
 * never holds. */
#define WAIT_STATS_OF(srv, cond, what)                                  \
  do {                                                                  \
    er__http_send_stats_t st = stats_of(srv);                           \
    for (int w_ = 0; w_ < 6000 && !(cond); w_++) {                      \
      usleep(10000);                                                    \
      st = stats_of(srv);                                               \
    }                                                                   \
    if (!(cond)) fail_msg("%s (writes %llu, waiting %zu)", what,        \
                          (unsigned long long)st.writes, st.waiting);   \
  } while (0)
#define WAIT_STATS(cond, what) WAIT_STATS_OF(g_srv, cond, what)

/* Holds SQLite's write lock on a connection of its own (returned: ROLLBACK
 * and close it to let go) and starts first, a POST of body, which takes the
 * lead and waits on the lock: the sends that come next queue behind it. */
static sqlite3 *block_first_send(post_t *first, const char *body) {
  char path[400];
  snprintf(path, sizeof path, "%s/errand.db", H.dir);
  sqlite3 *db;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
  er__http_send_stats_t before = stats();
  memset(first, 0, sizeof *first);
  snprintf(first->body, sizeof first->body, "%s", body);
  post_start(first);
  WAIT_STATS(st.writes == before.writes + 1, "the first send never took the lead");
  return db;
}

/* Once n sends wait behind first, lets go of the lock; first is stored. */
static void release_after_queued(sqlite3 *db, size_t n, post_t *first, json_int_t a) {
  WAIT_STATS(st.waiting == n, "the sends never queued behind the write");
  assert_int_equal(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  pthread_join(first->th, NULL);
  assert_int_equal(first->status, 202);
  assert_stored(first->answer, a, 0);
  json_decref(first->answer);
}

/* SQLite's write lock held by another connection: the first send takes the
 * lead and waits on it; seven more queue behind. Released, the seven go out
 * in one write, where a taken name and an empty task name fail alone. */
static void batch_while_writing_fails_alone(void **state) {
  if (g_redis) skip();
  tc_resp_t r = tc_req(g_port, "POST", "/api/v1/tasks", "{\"task\":\"add\",\"name\":\"taken\"}");
  assert_int_equal(r.status, 202);
  tc_free(&r);
  /* The answers the two bad requests get when sent alone. */
  r = tc_req(g_port, "POST", "/api/v1/tasks", "{\"task\":\"add\",\"name\":\"taken\"}");
  assert_int_equal(r.status, 409);
  json_t *alone_taken = tc_json(&r);
  tc_free(&r);
  r = tc_req(g_port, "POST", "/api/v1/tasks", "{\"task\":\"\"}");
  assert_int_equal(r.status, 400);
  json_t *alone_empty = tc_json(&r);
  tc_free(&r);

  er__http_send_stats_t before = stats();
  post_t first;
  sqlite3 *db = block_first_send(&first, "{\"task\":\"add\",\"args\":[100,0]}");
  enum { N = 7, TAKEN = 2, EMPTY = 5 };
  post_t p[N];
  for (int i = 0; i < N; i++) {
    memset(&p[i], 0, sizeof p[i]);
    if (i == TAKEN)
      snprintf(p[i].body, sizeof p[i].body, "{\"task\":\"add\",\"name\":\"taken\"}");
    else if (i == EMPTY)
      snprintf(p[i].body, sizeof p[i].body, "{\"task\":\"\"}");
    else
      snprintf(p[i].body, sizeof p[i].body, "{\"task\":\"add\",\"args\":[200,%d]}", i);
    post_start(&p[i]);
  }
  release_after_queued(db, N, &first, 100);
  for (int i = 0; i < N; i++) {
    pthread_join(p[i].th, NULL);
    if (i == TAKEN || i == EMPTY) {
      json_t *alone = i == TAKEN ? alone_taken : alone_empty;
      assert_int_equal(p[i].status, i == TAKEN ? 409 : 400);
      assert_string_equal(message(p[i].answer), message(alone));
    } else {
      assert_int_equal(p[i].status, 202);
      assert_stored(p[i].answer, 200, i);
    }
    json_decref(p[i].answer);
  }
  er__http_send_stats_t after = stats();
  assert_int_equal(after.writes, before.writes + 2); /* the first alone, then the seven */
  assert_true(after.largest >= N);
  assert_int_equal(after.alone, before.alone + N); /* each of the seven tried alone */
  assert_int_equal(after.waiting, 0);
  json_decref(alone_taken);
  json_decref(alone_empty);
}

/* The store failing as a whole (locked past its busy timeout) fails the
 * whole batch once, with the error a lone send gets, rather than trying
 * each send alone against the same lock. */
static void store_failure_fails_the_batch_once(void **state) {
  if (g_redis) skip();
  char url[512], path[400];
  snprintf(path, sizeof path, "%s/errand.db", H.dir);
  snprintf(url, sizeof url, "sqlite:%s?busy_ms=3000", path);
  er_http_opts_t o = {.listen = "127.0.0.1:0", .store_url = url};
  er_http_server_t *srv;
  char msg[256] = "";
  assert_int_equal(er_http_server_new(&o, &srv, msg, sizeof msg), 0);
  assert_int_equal(er_http_server_start(srv, msg, sizeof msg), 0);
  sqlite3 *db;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);

  post_t first = {.body = "{\"task\":\"add\",\"args\":[300,0]}",
                  .port = er_http_server_port(srv)};
  post_start(&first);
  WAIT_STATS_OF(srv, st.writes == 1, "the first send never took the lead");
  enum { N = 4 };
  post_t p[N];
  for (int i = 0; i < N; i++) {
    memset(&p[i], 0, sizeof p[i]);
    p[i].port = first.port;
    snprintf(p[i].body, sizeof p[i].body, "{\"task\":\"add\",\"args\":[300,%d]}", i + 1);
    post_start(&p[i]);
  }
  WAIT_STATS_OF(srv, st.waiting == N, "the sends never queued behind the write");
  pthread_join(first.th, NULL);
  assert_true(first.status >= 500); /* 503: busy */
  assert_non_null(message(first.answer));
  for (int i = 0; i < N; i++) {
    pthread_join(p[i].th, NULL);
    assert_int_equal(p[i].status, first.status);
    assert_string_equal(message(p[i].answer), message(first.answer));
    json_decref(p[i].answer);
  }
  json_decref(first.answer);
  er__http_send_stats_t st = stats_of(srv);
  assert_int_equal(st.writes, 2);
  assert_int_equal(st.alone, 0);
  assert_int_equal(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  er_http_server_free(srv);
}

/* Large bodies waiting behind a write go out in more than one transaction:
 * six of about 900 KB are two batches (at most 4 MiB of bodies each), not
 * one of 5.4 MB. */
static void big_sends_split_by_bytes(void **state) {
  if (g_redis) skip();
  er__http_send_stats_t before = stats();
  post_t first;
  sqlite3 *db = block_first_send(&first, "{\"task\":\"add\",\"args\":[400,0]}");
  enum { N = 6, PAD = 900000 };
  post_t p[N];
  for (int i = 0; i < N; i++) {
    memset(&p[i], 0, sizeof p[i]);
    p[i].big = malloc(PAD + 100);
    assert_non_null(p[i].big);
    int k = snprintf(p[i].big, 100, "{\"task\":\"add\",\"args\":[400,%d],\"kwargs\":{\"pad\":\"",
                     i);
    memset(p[i].big + k, 'x', PAD);
    strcpy(p[i].big + k + PAD, "\"}}");
    post_start(&p[i]);
  }
  release_after_queued(db, N, &first, 400);
  for (int i = 0; i < N; i++) {
    pthread_join(p[i].th, NULL);
    assert_int_equal(p[i].status, 202);
    assert_stored(p[i].answer, 400, i); /* each stored, with its own args */
    json_decref(p[i].answer);
    free(p[i].big);
  }
  er__http_send_stats_t after = stats();
  assert_int_equal(after.writes, before.writes + 3); /* the first, then 4 and 2 */
  assert_int_equal(after.sends, before.sends + 1 + N);
  assert_int_equal(after.alone, before.alone);
}

typedef struct get {
  char path[96];
  pthread_t th;
  int status; /* 0 until answered (atomic: read by the test's thread) */
} get_t;

static void *get_run(void *ud) {
  get_t *g = ud;
  tc_resp_t r = tc_req(g_port, "GET", g->path, NULL);
  __atomic_store_n(&g->status, r.status, __ATOMIC_RELEASE);
  tc_free(&r);
  return NULL;
}

/* A status read does not wait behind a send blocked on the write lock: it
 * reads on a handle of its own (SQLite's WAL lets it read meanwhile). */
static void status_read_not_behind_a_blocked_send(void **state) {
  if (g_redis) skip();
  er_id_t id;
  h_send(&H, "add", "[1, 2]", NULL, &id);
  post_t first;
  sqlite3 *db = block_first_send(&first, "{\"task\":\"add\",\"args\":[500,0]}");
  get_t g = {0};
  snprintf(g.path, sizeof g.path, "/api/v1/tasks/%s", id.text);
  assert_int_equal(pthread_create(&g.th, NULL, get_run, &g), 0);
  int answered = 0;
  for (int i = 0; i < 3000 && !answered; i++) {
    usleep(10000);
    answered = __atomic_load_n(&g.status, __ATOMIC_ACQUIRE);
  }
  assert_int_equal(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  pthread_join(g.th, NULL);
  pthread_join(first.th, NULL);
  json_decref(first.answer);
  assert_int_equal(first.status, 202);
  assert_int_equal(answered, 200); /* answered while the send still waited */
}

int main(int argc, char **argv) {
  g_redis = argc > 1 && !strcmp(argv[1], "redis");
  if (g_redis && system("command -v redis-server >/dev/null 2>&1") != 0) {
    fprintf(stderr, "SKIP: redis-server is not installed\n");
    return 77;
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(concurrent_sends_all_stored),
      cmocka_unit_test(batch_while_writing_fails_alone),
      cmocka_unit_test(store_failure_fails_the_batch_once),
      cmocka_unit_test(big_sends_split_by_bytes),
      cmocka_unit_test(status_read_not_behind_a_blocked_send),
  };
  return cmocka_run_group_tests_name(g_redis ? "http_group.redis" : "http_group.sqlite", tests,
                                     setup, teardown);
}
