/* What a sender may put in a queue: only what the store and a worker can read
 * back. Invalid UTF-8 and keys with NUL bytes are refused wherever they hide,
 * nesting past the parser's depth is refused without recursing (100,000 deep
 * must not crash the sender), a NUL inside a string goes through a real
 * worker and comes back intact, names have limits and count toward the
 * payload, times cannot be negative or wrap, and a task that expires before
 * its eta ends expired at its expiry instead of waiting.
 *
 * Each test gets a fresh SQLite file, or, when ERRAND_TEST_STORE names a
 * Redis server (redis_server.sh run), a fresh prefix on it. Workers run
 * in-process on a thread (threads pool), with the echo task below. */
#include <errand.h>
#include <errand/client.h>
#include <errand/store.h>
#include <errand/worker.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "store_url.h"

static int echo(er_task_t *t, json_t **result) {
  *result = json_pack("[O,O,O]", er_task_args(t), er_task_kwargs(t),
                      er_task_context(t) ? er_task_context(t) : json_null());
  return 0;
}
ER_TASK("send_check_echo", echo)

typedef struct fx {
  char dir[64]; /* SQLite: the temporary directory; "" on Redis */
  char url[512];
  er_client_t *c;
  er_worker_t *w;
  pthread_t thread;
} fx_t;

static void open_fx(fx_t *f, const char *extra) {
  test_store_url("sendck", extra, f->dir, sizeof f->dir, f->url, sizeof f->url);
  char msg[256] = "";
  if (er_client_open(f->url, &f->c, msg, sizeof msg)) fail_msg("open %s: %s", f->url, msg);
}

static int setup(void **state) {
  fx_t *f = calloc(1, sizeof *f);
  open_fx(f, NULL);
  *state = f;
  return 0;
}

static int setup_small(void **state) {
  fx_t *f = calloc(1, sizeof *f);
  open_fx(f, "max_payload=2000");
  *state = f;
  return 0;
}

static void *run_worker(void *arg) {
  er_worker_run(arg);
  return NULL;
}

/* A worker on the fixture's store, on a thread of its own. */
static void start_worker(fx_t *f) {
  er_worker_opts_t o = {.store_url = f->url, .pool = ER_POOL_THREADS, .concurrency = 1,
                        .quiet = true};
  char msg[256] = "";
  if (er_worker_new(&o, &f->w, msg, sizeof msg)) fail_msg("worker: %s", msg);
  assert_int_equal(pthread_create(&f->thread, NULL, run_worker, f->w), 0);
}

static int teardown(void **state) {
  fx_t *f = *state;
  if (f->w) {
    er_worker_stop(f->w, true);
    pthread_join(f->thread, NULL);
    er_worker_free(f->w);
  }
  er_client_close(f->c);
  if (f->dir[0]) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", f->dir);
  }
  free(f);
  return 0;
}

/* Sends and expects rc with exactly the reason want (NULL: any reason). */
static void refused(fx_t *f, int rc, const char *want, const char *task, json_t *args,
                    json_t *kwargs, const er_send_opts_t *o) {
  er_id_t id;
  int got = er_send(f->c, task, args, kwargs, o, &id);
  if (got != rc)
    fail_msg("send gave %s (%s), not %s", er_err_name(got), er_client_last_error(f->c),
             er_err_name(rc));
  if (want && strcmp(er_client_last_error(f->c), want) != 0)
    fail_msg("reason '%s', not '%s'", er_client_last_error(f->c), want);
}

/* n arrays, each the only element of the next. */
static json_t *deep(size_t n) {
  json_t *v = json_array();
  for (size_t i = 1; i < n; i++) {
    json_t *w = json_array();
    json_array_append_new(w, v);
    v = w;
  }
  return v;
}

/* Takes a deep() value apart level by level: json_decref would recurse. */
static void free_deep(json_t *v) {
  while (v) {
    json_t *child = json_array_size(v) ? json_incref(json_array_get(v, 0)) : NULL;
    json_array_clear(v);
    json_decref(v);
    v = child;
  }
}

static size_t depth_of(const json_t *v) {
  size_t n = 0;
  for (; json_is_array(v); v = json_array_get(v, 0)) n++;
  return n;
}

/* ---- UTF-8 and keys ---- */

static void invalid_utf8_is_refused_wherever_it_is(void **state) {
  fx_t *f = *state;
  json_t *bad = json_stringn_nocheck("ok\xff", 3);
  json_t *args = json_pack("[iO]", 1, bad);
  refused(f, ER_EINVAL, "send: args[1]: invalid UTF-8", "t", args, NULL, NULL);
  json_t *kw = json_pack("{s:[i,i,i,O]}", "x", 1, 2, 3, bad);
  refused(f, ER_EINVAL, "send: kwargs.x[3]: invalid UTF-8", "t", NULL, kw, NULL);
  json_t *ctx = json_pack("{s:{s:O}}", "user", "name", bad);
  refused(f, ER_EINVAL, "send: context.user.name: invalid UTF-8", "t", NULL, NULL,
          &(er_send_opts_t){.context = ctx});
  /* Keys: invalid bytes, and a NUL the parser would never read back. */
  json_t *k = json_object();
  json_object_set_new_nocheck(k, "\xc3(", json_true());
  refused(f, ER_EINVAL, "send: kwargs.\\xC3(: invalid UTF-8 in a key", "t", NULL, k, NULL);
  json_t *nul = json_object();
  json_object_setn_new_nocheck(nul, "a\0b", 3, json_true());
  refused(f, ER_EINVAL, "send: context.a\\x00b: a key with a NUL byte", "t", NULL, NULL,
          &(er_send_opts_t){.context = nul});
  /* Overlong, surrogate, past U+10FFFF, truncated. */
  static const char *const forms[] = {"\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82"};
  for (size_t i = 0; i < sizeof forms / sizeof *forms; i++) {
    json_t *a = json_pack("[o]", json_stringn_nocheck(forms[i], strlen(forms[i])));
    refused(f, ER_EINVAL, "send: args[0]: invalid UTF-8", "t", a, NULL, NULL);
    json_decref(a);
  }
  refused(f, ER_EINVAL, "send: task: invalid UTF-8", "t\xff", NULL, NULL, NULL);
  refused(f, ER_EINVAL, "send: queue: invalid UTF-8", "t", NULL, NULL,
          &(er_send_opts_t){.queue = "q\x80"});
  refused(f, ER_EINVAL, "send: name: invalid UTF-8", "t", NULL, NULL,
          &(er_send_opts_t){.name = "\xfe"});
  refused(f, ER_EINVAL, "send: key: invalid UTF-8", "t", NULL, NULL,
          &(er_send_opts_t){.key = "k\xc3"});
  /* Valid multi-byte text goes through. */
  json_t *fine = json_pack("[s]", "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
  assert_int_equal(er_send(f->c, "t", fine, NULL, &(er_send_opts_t){.key = "\xc3\xa9"}, NULL), 0);
  json_decref(fine);
  json_decref(bad);
  json_decref(args);
  json_decref(kw);
  json_decref(ctx);
  json_decref(k);
  json_decref(nul);
}

/* ---- nesting ---- */

static void nesting_up_to_the_parser_limit_reads_back(void **state) {
  fx_t *f = *state;
  json_t *ok = deep(ER_SEND_MAX_DEPTH);
  er_id_t id;
  int rc = er_send(f->c, "t", ok, NULL, NULL, &id);
  if (rc) fail_msg("send: %s", er_client_last_error(f->c));
  er_task_rec_t *r = NULL;
  assert_int_equal(er_status(f->c, id.text, NULL, &r), 0);
  assert_int_equal(r->state, ER_STATE_PENDING);
  assert_int_equal(depth_of(r->args), ER_SEND_MAX_DEPTH);
  json_t *back = json_incref(r->args);
  er_task_rec_free(r);
  free_deep(back);
  /* One more level would be stored and never read back. */
  json_t *over = json_array();
  json_array_append_new(over, json_incref(ok));
  refused(f, ER_EINVAL, NULL, "t", over, NULL, NULL);
  assert_non_null(strstr(er_client_last_error(f->c), ": nested deeper than 2048"));
  json_array_clear(over);
  json_decref(over);
  /* The parser counts a scalar's level too: 2,047 arrays around a number
   * read back, 2,048 do not. */
  json_t *inner = ok, *parent = NULL;
  for (size_t level = 1; level < ER_SEND_MAX_DEPTH; level++)
    parent = inner, inner = json_array_get(inner, 0);
  json_array_append_new(inner, json_integer(7));
  refused(f, ER_EINVAL, NULL, "t", ok, NULL, NULL);
  assert_non_null(strstr(er_client_last_error(f->c), ": nested deeper than 2048"));
  json_array_clear(parent);
  json_array_append_new(parent, json_integer(7));
  assert_int_equal(depth_of(ok), ER_SEND_MAX_DEPTH - 1);
  rc = er_send(f->c, "t", ok, NULL, NULL, &id);
  if (rc) fail_msg("send: %s", er_client_last_error(f->c));
  assert_int_equal(er_status(f->c, id.text, NULL, &r), 0);
  assert_int_equal(r->state, ER_STATE_PENDING); /* read back */
  er_task_rec_free(r);
  free_deep(ok);
}

static void nesting_of_100000_is_refused_not_a_crash(void **state) {
  fx_t *f = *state;
  json_t *v = deep(100000);
  refused(f, ER_EINVAL, NULL, "t", v, NULL, NULL);
  const char *why = er_client_last_error(f->c);
  assert_int_equal(strncmp(why, "send: args[0][0][0][0][0][0]...[0][0]: ", 39), 0);
  assert_non_null(strstr(why, "nested deeper than 2048"));
  /* In kwargs and context, in a batch, and as a future (which copies). */
  json_t *kw = json_object();
  json_object_set(kw, "x", v);
  refused(f, ER_EINVAL, NULL, "t", NULL, kw, NULL);
  assert_int_equal(strncmp(er_client_last_error(f->c), "send: kwargs.x[0][0]", 20), 0);
  er_send_req_t reqs[] = {{"t", NULL, NULL, &(er_send_opts_t){.key = "first"}},
                          {"t", NULL, NULL, &(er_send_opts_t){.context = kw}}};
  assert_int_equal(er_send_batch(f->c, reqs, 2, NULL), ER_EINVAL);
  const char *batch = "send: request 1 of the batch: context.x[0][0]";
  assert_int_equal(strncmp(er_client_last_error(f->c), batch, strlen(batch)), 0);
  er_id_t none;
  assert_int_equal(er_id_for_key(f->c, "first", &none), ER_ENOENT); /* nothing sent */
  er_loop_t *loop;
  assert_int_equal(er_loop_new(&loop, NULL), 0);
  er_future_t *fut = er_send_async(f->c, loop, "t", v, NULL, NULL);
  assert_non_null(fut);
  er_future_wait(fut);
  assert_int_equal(er_future_status(fut), ER_EINVAL);
  assert_non_null(strstr(er_error_message(er_future_error(fut)), "nested deeper than 2048"));
  er_future_unref(fut);
  er_loop_free(loop);
  json_object_clear(kw);
  json_decref(kw);
  free_deep(v);
}

static void values_that_contain_or_share_themselves_end(void **state) {
  fx_t *f = *state;
  /* A cycle: refused as too deep, not walked forever. */
  json_t *a = json_array(), *b = json_array();
  json_array_append(b, a);
  json_array_append(a, b);
  refused(f, ER_EINVAL, NULL, "t", a, NULL, NULL);
  assert_non_null(strstr(er_client_last_error(f->c), "nested deeper than 2048"));
  json_array_clear(a);
  json_decref(a);
  json_decref(b);
  /* 2^60 paths through 60 shared levels: refused by size, in no time. */
  json_t *v = json_array();
  for (int i = 0; i < 60; i++) v = json_pack("[oO]", v, v);
  refused(f, ER_ETOOBIG, NULL, "t", v, NULL, NULL);
  assert_non_null(strstr(er_client_last_error(f->c), "max_payload"));
  json_decref(v);
}

/* ---- NUL inside strings, through a real worker ---- */

static void nul_in_strings_comes_back_intact(void **state) {
  fx_t *f = *state;
  start_worker(f);
  json_t *args = json_pack("[s#]", "a\0b", (size_t)3);
  json_t *kw = json_pack("{s:s#}", "k", "\0", (size_t)1);
  json_t *ctx = json_pack("{s:s#}", "c", "x\0", (size_t)2);
  er_id_t id;
  int rc = er_send(f->c, "send_check_echo", args, kw, &(er_send_opts_t){.context = ctx}, &id);
  if (rc) fail_msg("send: %s", er_client_last_error(f->c));
  json_t *res = NULL;
  rc = er_result(f->c, id.text, NULL, 30000, &res, NULL);
  if (rc) fail_msg("result: %s: %s", er_err_name(rc), er_client_last_error(f->c));
  json_t *want = json_pack("[O,O,O]", args, kw, ctx);
  assert_true(json_equal(res, want));
  json_t *s = json_array_get(json_array_get(res, 0), 0);
  assert_int_equal(json_string_length(s), 3);
  assert_memory_equal(json_string_value(s), "a\0b", 3);
  json_decref(want);
  json_decref(res);
  json_decref(args);
  json_decref(kw);
  json_decref(ctx);
}

/* ---- names ---- */

static char *text(size_t n) {
  char *s = malloc(n + 1);
  memset(s, 'n', n);
  s[n] = 0;
  return s;
}

static void names_have_limits(void **state) {
  fx_t *f = *state;
  char *name255 = text(ER_SEND_MAX_NAME), *name256 = text(ER_SEND_MAX_NAME + 1);
  char *key1024 = text(ER_SEND_MAX_KEY), *key1025 = text(ER_SEND_MAX_KEY + 1);
  assert_int_equal(er_send(f->c, name255, NULL, NULL,
                           &(er_send_opts_t){.queue = name255, .name = key1024, .key = key1024},
                           NULL),
                   0);
  refused(f, ER_EINVAL, "send: task: 256 bytes, over the limit of 255", name256, NULL, NULL, NULL);
  refused(f, ER_EINVAL, "send: queue: 256 bytes, over the limit of 255", "t", NULL, NULL,
          &(er_send_opts_t){.queue = name256});
  refused(f, ER_EINVAL, "send: name: 1025 bytes, over the limit of 1024", "t", NULL, NULL,
          &(er_send_opts_t){.name = key1025});
  refused(f, ER_EINVAL, "send: key: 1025 bytes, over the limit of 1024", "t", NULL, NULL,
          &(er_send_opts_t){.key = key1025});
  refused(f, ER_EINVAL, "send: an empty queue name", "t", NULL, NULL,
          &(er_send_opts_t){.queue = ""});
  free(name255);
  free(name256);
  free(key1024);
  free(key1025);
}

/* max_payload=2000: 340 empty strings are 1,021 bytes of JSON; with a key of
 * 1,000 bytes the task is over, and without it under. */
static void names_count_toward_the_payload(void **state) {
  fx_t *f = *state;
  json_t *args = json_array();
  for (int i = 0; i < 340; i++) json_array_append_new(args, json_string(""));
  assert_int_equal(er_send(f->c, "t", args, NULL, NULL, NULL), 0);
  char *key = text(1000);
  refused(f, ER_ETOOBIG, NULL, "t", args, NULL, &(er_send_opts_t){.key = key});
  assert_non_null(strstr(er_client_last_error(f->c), "max_payload"));
  refused(f, ER_ETOOBIG, NULL, "t", args, NULL, &(er_send_opts_t){.name = key});
  free(key);
  json_decref(args);
}

/* ---- numbers ---- */

static void times_and_limits_are_range_checked(void **state) {
  fx_t *f = *state;
  const er_send_opts_t bad[] = {
      {.countdown_ms = -1},        {.eta_ms = -1},           {.expires_ms = -1},
      {.soft_limit_ms = -1},       {.hard_limit_ms = -1},    {.result_ttl_ms = -2},
      {.countdown_ms = INT64_MAX}, {.expires_ms = INT64_MAX},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    refused(f, ER_EINVAL, NULL, "t", NULL, NULL, &bad[i]);
  er_id_t id;
  assert_int_equal(er_send(f->c, "t", NULL, NULL,
                           &(er_send_opts_t){.result_ttl_ms = -1, .priority = INT32_MIN,
                                             .eta_ms = INT64_MAX},
                           &id),
                   0);
  er_task_rec_t *r = NULL;
  assert_int_equal(er_status(f->c, id.text, NULL, &r), 0);
  assert_int_equal(r->priority, INT32_MIN);
  assert_int_equal(r->result_ttl_ms, -1);
  er_task_rec_free(r);
}

/* ---- expiry before the eta ---- */

static void expiring_before_its_eta_ends_expired_at_expiry(void **state) {
  fx_t *f = *state;
  er_id_t id;
  assert_int_equal(er_send(f->c, "send_check_echo", NULL, NULL,
                           &(er_send_opts_t){.countdown_ms = 600000, .expires_ms = 200}, &id),
                   0);
  er_task_rec_t *r = NULL;
  assert_int_equal(er_status(f->c, id.text, NULL, &r), 0);
  assert_int_equal(r->eta_ms, r->expires_ms); /* due when it expires */
  er_task_rec_free(r);
  start_worker(f);
  json_t *err = NULL;
  int rc = er_result(f->c, id.text, NULL, 30000, NULL, &err);
  if (rc != ER_EREVOKED) fail_msg("result: %s, not EREVOKED", er_err_name(rc));
  assert_int_equal(er_status(f->c, id.text, NULL, &r), 0);
  assert_int_equal(r->state, ER_STATE_REVOKED);
  assert_int_equal(r->attempt, 0); /* never run */
  assert_non_null(strstr(json_string_value(json_object_get(r->error, "message")), "expired"));
  er_task_rec_free(r);
  json_decref(err);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(invalid_utf8_is_refused_wherever_it_is, setup, teardown),
      cmocka_unit_test_setup_teardown(nesting_up_to_the_parser_limit_reads_back, setup, teardown),
      cmocka_unit_test_setup_teardown(nesting_of_100000_is_refused_not_a_crash, setup, teardown),
      cmocka_unit_test_setup_teardown(values_that_contain_or_share_themselves_end, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(nul_in_strings_comes_back_intact, setup, teardown),
      cmocka_unit_test_setup_teardown(names_have_limits, setup, teardown),
      cmocka_unit_test_setup_teardown(names_count_toward_the_payload, setup_small, teardown),
      cmocka_unit_test_setup_teardown(times_and_limits_are_range_checked, setup, teardown),
      cmocka_unit_test_setup_teardown(expiring_before_its_eta_ends_expired_at_expiry, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
