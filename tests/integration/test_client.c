/* The client against a real store: what a send stores, batches that keep
 * each request's key rule, result futures served by the client's watcher
 * thread, and er_result waiting without holding up other callers.
 *
 * Each test gets a fresh SQLite file in a temporary directory, or, when
 * ERRAND_TEST_STORE names a Redis server (redis_server.sh run), a fresh
 * prefix on it. Tasks are finished here through a store handle of the
 * test's own, as a worker would, so no worker process is needed. */
#include <errand.h>
#include <errand/client.h>
#include <errand/store.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "queue/client_internal.h"
#include "store_url.h"

typedef struct fx {
  char dir[64]; /* SQLite: the temporary directory; "" on Redis */
  char url[512];
  er_client_t *c;
  er_store_t *s; /* the test's own handle, playing the worker */
} fx_t;

static void make_url(fx_t *f, const char *extra) {
  test_store_url("client", extra, f->dir, sizeof f->dir, f->url, sizeof f->url);
}

static void open_fx(fx_t *f) {
  char msg[256] = "";
  int rc = er_client_open(f->url, &f->c, msg, sizeof msg);
  if (rc) fail_msg("open %s: %s", f->url, msg);
  assert_int_equal(er_store_open(f->url, &f->s, msg, sizeof msg), 0);
}

static int setup(void **state) {
  fx_t *f = calloc(1, sizeof *f);
  make_url(f, NULL);
  open_fx(f);
  *state = f;
  return 0;
}

static void close_fx(fx_t *f) {
  er_client_close(f->c);
  er_store_close(f->s);
  if (f->dir[0]) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", f->dir);
  }
}

static int teardown(void **state) {
  close_fx(*state);
  free(*state);
  return 0;
}

static void send_ok(fx_t *f, const char *queue, const er_send_opts_t *o, er_id_t *id) {
  er_send_opts_t opts = o ? *o : (er_send_opts_t){0};
  opts.queue = queue;
  int rc = er_send(f->c, "t", NULL, NULL, &opts, id);
  if (rc) fail_msg("send: %s", er_client_last_error(f->c));
}

static er_task_rec_t *status(fx_t *f, const char *id, const char *key) {
  er_task_rec_t *r = NULL;
  assert_int_equal(er_status(f->c, id, key, &r), 0);
  return r;
}

/* Takes the one task waiting on queue and records its outcome, as a worker. */
static void finish(fx_t *f, const char *queue, er_task_state_t state, json_t *value) {
  const char *qs[] = {queue};
  int64_t now = er_now_wall_ms();
  er_reserve_req_t req = {qs, 1, "w-test", now, 60000, 1};
  er_task_rec_t **got = NULL;
  size_t n = 0;
  assert_int_equal(er_store_reserve(f->s, &req, &got, &n), 0);
  assert_int_equal(n, 1);
  json_t *err = state == ER_STATE_FAILURE ? json_pack("{s:i,s:s,s:s}", "code", ER_EFAIL, "name",
                                                      "EFAIL", "message", "it broke")
                                          : NULL;
  er_completion_t c = {got[0]->id, got[0]->attempt, state, value, err, 0, now};
  bool fenced = true;
  assert_int_equal(er_store_complete(f->s, &c, 1, &fenced), 0);
  assert_false(fenced);
  json_decref(err);
  er_task_rec_free_array(got, n);
}

/* ---- 1. max_retries: unset, none, n ---- */

static void send_stores_max_retries_as_the_worker_reads_it(void **state) {
  fx_t *f = *state;
  static const struct {
    int given, stored;
  } cases[] = {{0, -1}, {ER_RETRIES_NONE, 0}, {5, 5}, {1, 1}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    er_id_t id;
    send_ok(f, "q", &(er_send_opts_t){.max_retries = cases[i].given}, &id);
    er_task_rec_t *r = status(f, id.text, NULL);
    assert_int_equal(r->max_retries, cases[i].stored);
    er_task_rec_free(r);
  }
  /* Anything below ER_RETRIES_NONE is a mistake, not "the default". */
  er_id_t id;
  assert_int_equal(er_send(f->c, "t", NULL, NULL, &(er_send_opts_t){.max_retries = -5}, &id),
                   ER_EINVAL);
  assert_non_null(strstr(er_client_last_error(f->c), "max_retries"));
}

/* ---- 2. batches keep each request's key rule ---- */

static bool store_has_batches(fx_t *f) {
  /* An empty batch answers 0 on every store: ask with a guard. */
  er_mut_t m = {.kind = ER_MUT_TASK_GUARD, .id = "00000000-0000-7000-8000-000000000000",
                .state = ER_STATE_UNKNOWN};
  return er_store_apply(f->s, &m, 1, NULL, NULL) != ER_ENOTSUP;
}

static size_t count_queue(fx_t *f, const char *queue) {
  json_t *st = NULL;
  assert_int_equal(er_store_stats(f->s, &st), 0);
  json_t *q = json_object_get(json_object_get(st, "queues"), queue);
  size_t n = (size_t)json_integer_value(json_object_get(q, "PENDING"));
  json_decref(st);
  return n;
}

/* A live task for key K exists. In one batch, a request with if_absent gets
 * it back; one without is added all the same (App Engine and lingcod: only
 * the asker de-duplicates). The old client turned the rule on for the whole
 * batch and de-duplicated both. */
static void batch_request_without_if_absent_is_always_added(void **state) {
  fx_t *f = *state;
  er_id_t live;
  send_ok(f, "qb", &(er_send_opts_t){.key = "K"}, &live);
  er_send_opts_t dedup = {.queue = "qb", .key = "K", .if_absent = true};
  er_send_opts_t plain = {.queue = "qb", .key = "K"};
  er_send_req_t reqs[] = {{"t", NULL, NULL, &dedup}, {"t", NULL, NULL, &plain}};
  er_id_t ids[2];
  bool existed[2] = {false, false};
  int rc = er_send_batch_ex(f->c, reqs, 2, ids, existed);
  if (!store_has_batches(f)) {
    print_message("store without transition batches: a mixed batch must be refused\n");
    assert_int_equal(rc, ER_ENOTSUP);
    assert_non_null(strstr(er_client_last_error(f->c), "if_absent"));
    assert_int_equal(count_queue(f, "qb"), 1); /* nothing sent */
    return;
  }
  assert_int_equal(rc, 0);
  assert_string_equal(ids[0].text, live.text);
  assert_true(existed[0]);
  assert_string_not_equal(ids[1].text, live.text);
  assert_false(existed[1]);
  assert_int_equal(count_queue(f, "qb"), 2);
}

/* No task for K yet: the plain request adds one, and the if_absent request
 * after it in the same batch gets that one back. */
static void batch_if_absent_sees_a_task_added_earlier_in_the_batch(void **state) {
  fx_t *f = *state;
  er_send_opts_t plain = {.queue = "qc", .key = "K2"};
  er_send_opts_t dedup = {.queue = "qc", .key = "K2", .if_absent = true};
  er_send_req_t reqs[] = {{"t", NULL, NULL, &plain}, {"t", NULL, NULL, &dedup}};
  er_id_t ids[2];
  bool existed[2] = {true, true};
  int rc = er_send_batch_ex(f->c, reqs, 2, ids, existed);
  if (!store_has_batches(f)) {
    assert_int_equal(rc, ER_ENOTSUP);
    assert_int_equal(count_queue(f, "qc"), 0);
    print_message("SKIP: the store has no transition batches (er_store_apply: ENOTSUP)\n");
    skip();
  }
  assert_int_equal(rc, 0);
  assert_false(existed[0]);
  assert_true(existed[1]);
  assert_string_equal(ids[0].text, ids[1].text);
  assert_int_equal(count_queue(f, "qc"), 1);
}

/* A batch where every keyed request asks for the rule works on any store,
 * and a keyless request beside them is simply added. */
static void batch_all_if_absent_works_on_every_store(void **state) {
  fx_t *f = *state;
  er_id_t live;
  send_ok(f, "qd", &(er_send_opts_t){.key = "K3"}, &live);
  er_send_opts_t dedup = {.queue = "qd", .key = "K3", .if_absent = true};
  er_send_opts_t keyless = {.queue = "qd"};
  er_send_req_t reqs[] = {{"t", NULL, NULL, &dedup}, {"t", NULL, NULL, &keyless}};
  er_id_t ids[2];
  bool existed[2] = {false, true};
  assert_int_equal(er_send_batch_ex(f->c, reqs, 2, ids, existed), 0);
  assert_string_equal(ids[0].text, live.text);
  assert_true(existed[0]);
  assert_false(existed[1]);
  assert_int_equal(count_queue(f, "qd"), 2);
}

/* ---- 3. result futures ---- */

static er_loop_t *new_loop(void) {
  er_loop_t *loop = NULL;
  assert_int_equal(er_loop_new(&loop, NULL), 0);
  return loop;
}

static void futures_complete_with_each_outcome(void **state) {
  fx_t *f = *state;
  er_loop_t *loop = new_loop();
  er_id_t ok, bad, gone;
  send_ok(f, "q1", NULL, &ok);
  send_ok(f, "q2", NULL, &bad);
  send_ok(f, "q3", NULL, &gone);
  er_future_t *fs[] = {er_result_future(f->c, loop, ok.text, -1),
                       er_result_future(f->c, loop, ok.text, -1), /* two waiters, one task */
                       er_result_future(f->c, loop, bad.text, -1),
                       er_result_future(f->c, loop, gone.text, -1),
                       er_result_future(f->c, loop, "00000000-0000-7000-8000-000000000001", -1),
                       er_result_future(f->c, loop, gone.text, 50),
                       er_result_future(f->c, loop, "not an id", -1)};
  json_t *v = json_integer(42);
  finish(f, "q1", ER_STATE_SUCCESS, v);
  json_decref(v);
  finish(f, "q2", ER_STATE_FAILURE, NULL);
  for (size_t i = 0; i < 5; i++)
    if (i != 3) assert_int_equal(er_future_wait(fs[i]), 0);
  assert_int_equal(er_future_status(fs[0]), 0);
  assert_int_equal(json_integer_value(er_future_json(fs[0])), 42);
  assert_int_equal(json_integer_value(er_future_json(fs[1])), 42);
  assert_int_equal(er_future_status(fs[2]), ER_EFAIL);
  assert_string_equal(er_error_message(er_future_error(fs[2])), "it broke");
  assert_int_equal(er_future_status(fs[4]), ER_ENOENT);
  assert_int_equal(er_future_wait(fs[5]), 0);
  assert_int_equal(er_future_status(fs[5]), ER_ETIMEDOUT);
  assert_int_equal(er_future_status(fs[6]), ER_EINVAL);
  assert_int_equal(er_revoke(f->c, gone.text), 0);
  assert_int_equal(er_future_wait(fs[3]), 0);
  assert_int_equal(er_future_status(fs[3]), ER_EREVOKED);
  for (size_t i = 0; i < sizeof fs / sizeof fs[0]; i++) er_future_unref(fs[i]);
  er_loop_free(loop);
}

/* Closing the client stops its watcher thread and cancels what still waits. */
static void close_cancels_waiting_futures(void **state) {
  fx_t *f = *state;
  er_loop_t *loop = new_loop();
  er_id_t id;
  send_ok(f, "q", NULL, &id);
  er_future_t *fut = er_result_future(f->c, loop, id.text, -1);
  er__watch_stats_t st;
  er__client_watch_stats(f->c, &st);
  assert_true(st.running);
  er_client_close(f->c);
  f->c = NULL;
  assert_true(er_future_done(fut));
  assert_int_equal(er_future_status(fut), ER_ECANCELED);
  er_future_unref(fut);
  er_loop_free(loop);
}

/* Waits (without the loop: the watcher is a thread) until it has read every
 * waiter once. */
static void wait_watcher_settled(fx_t *f, size_t waiting, er__watch_stats_t *st) {
  for (int i = 0; i < 2000; i++) {
    er__client_watch_stats(f->c, st);
    if (st->gets >= waiting && st->waiting == waiting) return;
    usleep(5000);
  }
  fail_msg("the watcher read %llu of %zu waiters", (unsigned long long)st->gets, waiting);
}

/* With a store that lists finished ids, a task finishing re-reads its own
 * waiters, not all of them. The safety sweep is put out of the way so that
 * only the wake-up can complete the future. */
static void future_woken_for_its_own_id(void **state) {
  fx_t *f = *state;
  er_store_t *probe = NULL;
  assert_int_equal(er_store_open(f->url, &probe, NULL, 0), 0);
  int rc = er_store_watch(probe, &(er_watch_t){.finished = true});
  er_store_close(probe);
  if (rc == ER_ENOTSUP) {
    print_message("SKIP: this store does not list finished tasks (er_store_watch: ENOTSUP); "
                  "waiters are re-read at every change instead\n");
    skip();
  }
  assert_int_equal(rc, 0);
  f->c->watch_safety_ms = 600000;
  er_loop_t *loop = new_loop();
  enum { N = 20 };
  er_future_t *fs[N];
  for (int i = 0; i < N; i++) {
    char q[16];
    snprintf(q, sizeof q, "p%d", i);
    er_id_t id;
    send_ok(f, q, NULL, &id);
    fs[i] = er_result_future(f->c, loop, id.text, -1);
  }
  er__watch_stats_t before, after;
  wait_watcher_settled(f, N, &before);
  assert_true(before.precise);
  json_t *v = json_string("done");
  finish(f, "p7", ER_STATE_SUCCESS, v);
  json_decref(v);
  assert_int_equal(er_future_wait(fs[7]), 0);
  assert_string_equal(json_string_value(er_future_json(fs[7])), "done");
  er__client_watch_stats(f->c, &after);
  assert_int_equal(after.sweeps, before.sweeps);
  assert_true(after.gets - before.gets <= 2);
  assert_int_equal(after.waiting, N - 1);
  for (int i = 0; i < N; i++) {
    assert_true(i == 7 || !er_future_done(fs[i]));
    er_future_unref(fs[i]);
  }
  er_client_close(f->c); /* cancels the rest, on this (the loop's) thread */
  f->c = NULL;
  er_loop_free(loop);
}

/* ---- 3b. the loop never waits for the store ----
 * A Redis server stopped with SIGSTOP answers nothing: a store call waits
 * until it is woken (SIGCONT), or for the URL's timeout_ms. The watcher's reads then stall its own
 * thread, not the loop: er_result_future returns at once and the loop's
 * timers keep firing. */

static int redis_script(const char *args, char *out, size_t size) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "%s %s", REDIS_SERVER_SH, args);
  FILE *p = popen(cmd, "r");
  if (!p) return -1;
  if (!out || !fgets(out, (int)size, p)) {
    if (out) out[0] = 0;
  }
  int st = pclose(p);
  if (out) out[strcspn(out, "\n")] = 0;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void on_tick(void *arg) { atomic_fetch_add((atomic_int *)arg, 1); }

static char g_redis_dir[64];
static int g_redis_pid;

/* Stops the test's redis-server, by its pid (woken first if stopped), even
 * when the test failed half-way. */
static int redis_teardown(void **state) {
  (void)state;
  if (!g_redis_dir[0]) return 0;
  if (g_redis_pid > 0) kill(g_redis_pid, SIGCONT);
  char args[256];
  snprintf(args, sizeof args, "stop %s; rm -rf %s", g_redis_dir, g_redis_dir);
  redis_script(args, NULL, 0);
  g_redis_dir[0] = 0;
  g_redis_pid = 0;
  return 0;
}

static void loop_runs_while_the_store_hangs(void **state) {
  (void)state;
  if (getenv("ERRAND_TEST_STORE")) skip(); /* run once, in the SQLite run */
  char args[256], base[256];
  snprintf(g_redis_dir, sizeof g_redis_dir, "/tmp/errand-client-redis-XXXXXX");
  assert_non_null(mkdtemp(g_redis_dir));
  snprintf(args, sizeof args, "start %s 2>/dev/null", g_redis_dir);
  int rc = redis_script(args, base, sizeof base);
  if (rc == 77 || !base[0]) {
    print_message("SKIP: no redis-server to stop (rc %d)\n", rc);
    skip();
  }
  char pidfile[128];
  snprintf(pidfile, sizeof pidfile, "%s/redis.pid", g_redis_dir);
  FILE *pf = fopen(pidfile, "r");
  assert_non_null(pf);
  assert_int_equal(fscanf(pf, "%d", &g_redis_pid), 1);
  fclose(pf);
  fx_t fx = {0};
  snprintf(fx.url, sizeof fx.url, "%s?timeout_ms=10000", base);
  open_fx(&fx);
  er_loop_t *loop = new_loop();
  er_id_t a, b;
  send_ok(&fx, "qa", NULL, &a);
  send_ok(&fx, "qb", NULL, &b);
  er_future_t *fa = er_result_future(fx.c, loop, a.text, -1); /* starts the watcher */
  er__watch_stats_t st;
  wait_watcher_settled(&fx, 1, &st);

  assert_int_equal(kill(g_redis_pid, SIGSTOP), 0);
  uint64_t t0 = er_now_mono_ms();
  er_future_t *fb = er_result_future(fx.c, loop, b.text, -1);
  atomic_int ticks = 0;
  for (int i = 1; i <= 5; i++) er_loop_call_later(loop, (uint64_t)i * 20, on_tick, &ticks);
  while (atomic_load(&ticks) < 5) er_loop_run1(loop);
  uint64_t ticked = er_now_mono_ms() - t0;
  er__watch_stats_t now;
  er__client_watch_stats(fx.c, &now);
  assert_int_equal(kill(g_redis_pid, SIGCONT), 0);
  /* A read on the stopped server takes timeout_ms (10 s): a loop that made
   * one could not have run its timers sooner. Half of it is a bound no load
   * reaches for 100 ms of timers. And the watcher's read of b had not come
   * back when they ran. */
  assert_true(ticked < 5000);
  assert_int_equal(now.gets, st.gets);

  json_t *v = json_true();
  finish(&fx, "qb", ER_STATE_SUCCESS, v);
  json_decref(v);
  assert_int_equal(er_future_wait(fb), 0);
  assert_int_equal(er_future_status(fb), 0);
  assert_false(er_future_done(fa));
  er_future_unref(fb);
  close_fx(&fx); /* cancels fa */
  assert_int_equal(er_future_status(fa), ER_ECANCELED);
  er_future_unref(fa);
  er_loop_free(loop);
}

/* ---- 4. er_result holds up nobody ---- */

typedef struct waiter {
  fx_t *f;
  const char *id;
  int64_t timeout_ms;
  atomic_bool started, done;
  int rc;
} waiter_t;

static void *wait_thread(void *arg) {
  waiter_t *w = arg;
  atomic_store(&w->started, true);
  json_t *res = NULL, *err = NULL;
  w->rc = er_result(w->f->c, w->id, NULL, w->timeout_ms, &res, &err);
  json_decref(res);
  json_decref(err);
  atomic_store(&w->done, true);
  return NULL;
}

/* Thread A waits 4 s for a task nobody runs; meanwhile thread B (this one)
 * sends and reads on the same client, pausing briefly between calls, and all
 * of it returns while A still waits. The old client held the client's lock
 * through each of A's waits (250 ms slices): in each pause A took it again,
 * so every call of B's queued behind a slice and A's timeout came first. */
static void result_wait_does_not_block_sends(void **state) {
  fx_t *f = *state;
  er_id_t id;
  send_ok(f, "idle", NULL, &id);
  waiter_t w = {.f = f, .id = id.text, .timeout_ms = 4000};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, wait_thread, &w), 0);
  while (!atomic_load(&w.started)) usleep(1000);
  for (int i = 0; i < 40; i++) {
    usleep(10 * 1000);
    er_id_t other;
    send_ok(f, "busy", NULL, &other);
    er_task_rec_t *r = status(f, other.text, NULL);
    assert_int_equal(r->state, ER_STATE_PENDING);
    er_task_rec_free(r);
  }
  bool a_done_first = atomic_load(&w.done);
  pthread_join(t, NULL);
  assert_false(a_done_first);
  assert_int_equal(w.rc, ER_ETIMEDOUT);
}

/* Several threads in er_result at once each get their outcome. */
static void concurrent_results_each_get_theirs(void **state) {
  fx_t *f = *state;
  er_id_t ids[3];
  waiter_t ws[3];
  pthread_t ts[3];
  for (int i = 0; i < 3; i++) {
    char q[8];
    snprintf(q, sizeof q, "r%d", i);
    send_ok(f, q, NULL, &ids[i]);
    ws[i] = (waiter_t){.f = f, .id = ids[i].text, .timeout_ms = 30000};
    assert_int_equal(pthread_create(&ts[i], NULL, wait_thread, &ws[i]), 0);
  }
  for (int i = 0; i < 3; i++) {
    char q[8];
    snprintf(q, sizeof q, "r%d", i);
    json_t *v = json_integer(i);
    finish(f, q, ER_STATE_SUCCESS, v);
    json_decref(v);
  }
  for (int i = 0; i < 3; i++) {
    pthread_join(ts[i], NULL);
    assert_int_equal(ws[i].rc, 0);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(send_stores_max_retries_as_the_worker_reads_it, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(batch_request_without_if_absent_is_always_added, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(batch_if_absent_sees_a_task_added_earlier_in_the_batch,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(batch_all_if_absent_works_on_every_store, setup, teardown),
      cmocka_unit_test_setup_teardown(futures_complete_with_each_outcome, setup, teardown),
      cmocka_unit_test_setup_teardown(close_cancels_waiting_futures, setup, teardown),
      cmocka_unit_test_setup_teardown(future_woken_for_its_own_id, setup, teardown),
      cmocka_unit_test_teardown(loop_runs_while_the_store_hangs, redis_teardown),
      cmocka_unit_test_setup_teardown(result_wait_does_not_block_sends, setup, teardown),
      cmocka_unit_test_setup_teardown(concurrent_results_each_get_theirs, setup, teardown),
  };
  return cmocka_run_group_tests_name("client", tests, NULL, NULL);
}
