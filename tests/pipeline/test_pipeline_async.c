/* Async pipelines: completion by a callback, a callback's retry, callbacks
 * refused, named callback tasks, try_cancel. */
#include "drive.h"

static int g_cb_calls; /* callback functions run */

static const char *str(json_t *doc, const char *field) {
  const char *s = json_string_value(json_object_get(doc, field));
  return s ? s : "(null)";
}

static const char *child_id(json_t *doc, size_t i) {
  return json_string_value(json_array_get(json_object_get(doc, "children"), i));
}

/* Waits in RUN; a callback {"v": x} completes it with x, {"retry": "1"}
 * asks for another attempt, {"note": n} only sets its status. */
static json_t *waiter(er_pipe_ctx_t *ctx, json_t *args, json_t *kwargs) {
  json_t *st = json_pack("{s:i}", "attempt", er_pipe_attempt(ctx));
  er_pipe_set_state(ctx, st);
  json_decref(st);
  return NULL;
}
static json_t *waiter_cb(er_pipe_ctx_t *ctx, json_t *params) {
  g_cb_calls++;
  const char *v = json_string_value(json_object_get(params, "v"));
  const char *note = json_string_value(json_object_get(params, "note"));
  if (json_object_get(params, "retry")) return er_pipe_retry(ctx, "again, please");
  if (json_object_get(params, "abort"))
    return er_pipe_abort(ctx, "%s", json_string_value(json_object_get(params, "abort")));
  if (note) er_pipe_set_status(ctx, note, NULL);
  if (v) {
    json_t *val = json_string(v);
    er_pipe_complete(ctx, val);
    json_decref(val);
    er_pipe_respond(ctx, 201, "text/x-test", "completed");
  }
  return NULL;
}
ER_PIPELINE("t.waiter", waiter, .callback = waiter_cb, .flags = ER_PIPE_ASYNC,
            .finalize = record, .backoff_s = 1)

/* A parent: the waiter, then Return of its output. */
static json_t *waits_for(er_pipe_ctx_t *ctx, json_t *args, json_t *kwargs) {
  er_pipe_handle_t *w = er_pipe_child(ctx, "t.waiter", NULL);
  json_t *a = json_pack("[O]", er_pipe_out(w, NULL));
  er_pipe_child(ctx, "Return", a);
  json_decref(a);
  return NULL;
}
ER_PIPELINE("t.waits_for", waits_for, .finalize = record)

/* An async child stays in RUN after its run, its parent waiting, until a
 * callback completes it; the tree then finishes, in random orders. */
void test_async_completed_by_callback(void **state) {
  fx_t *f = *state;
  for (unsigned seed = 1; seed <= 4; seed++) {
    chaos(f, seed, 0.2, 0.1, 0.1);
    g_cb_calls = 0;
    er_id_t root = start(f, "t.waits_for", NULL, NULL);
    drive(f, 1000);
    json_t *d = pipe_doc(f, root.text);
    assert_string_equal(str(d, "status"), "run");
    json_t *w = pipe_doc(f, child_id(d, 0));
    assert_string_equal(str(w, "status"), "run");
    assert_true(json_is_true(json_object_get(w, "async")));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(w, "state"), "attempt")),
                     1);
    json_t *v = NULL;
    assert_int_equal(er_pipeline_output(f->c, child_id(d, 0), NULL, &v), ER_ESTATE);
    /* a callback that only sets its status: still in RUN */
    er_id_t t1 = callback(f, child_id(d, 0), "{\"note\": \"half way\"}");
    drive(f, 1000);
    assert_int_equal(answer_status(f, t1.text), 200);
    json_decref(w);
    w = pipe_doc(f, child_id(d, 0));
    assert_string_equal(str(w, "status"), "run");
    assert_string_equal(str(w, "status_message"), "half way");
    er_id_t t2 = callback(f, child_id(d, 0), "{\"v\": \"seven\"}");
    drive(f, 1000);
    json_t *a = json_object_get(f->answers, t2.text);
    assert_int_equal(json_integer_value(json_object_get(a, "status")), 201);
    assert_string_equal(str(a, "content_type"), "text/x-test");
    assert_string_equal(str(a, "body"), "completed");
    check_tree(f, root.text, "done");
    v = output(f, root.text);
    assert_string_equal(json_string_value(v), "seven");
    assert_true(g_cb_calls >= 2);
    finalized(child_id(d, 0), false); /* once it completed, not aborted */
    json_decref(v);
    json_decref(w);
    json_decref(d);
  }
}

/* A callback may ask for a retry: the run function runs again, as the
 * next attempt, and the pipeline waits for a callback again. */
void test_callback_retry(void **state) {
  fx_t *f = *state;
  er_id_t root = start(f, "t.waiter", NULL, NULL);
  drive(f, 100);
  callback(f, root.text, "{\"retry\": \"1\"}");
  drive(f, 100); /* the retry falls due on the driver's clock */
  json_t *d = pipe_doc(f, root.text);
  assert_string_equal(str(d, "status"), "run");
  assert_int_equal(json_integer_value(json_object_get(d, "attempts")), 2);
  assert_string_equal(str(d, "retry_message"), "again, please");
  assert_int_equal(json_integer_value(json_object_get(json_object_get(d, "state"), "attempt")), 2);
  json_decref(d);
  callback(f, root.text, "{\"v\": \"x\"}");
  drive(f, 100);
  json_t *v = output(f, root.text);
  assert_string_equal(json_string_value(v), "x");
  json_decref(v);
}

/* A callback that aborts the tree, or retries after the last attempt: the
 * root aborts, and the async stage is aborted at once (finalized so), not
 * left in RUN for the abort to ask its try_cancel. */
void test_callback_aborts(void **state) {
  fx_t *f = *state;
  chaos(f, 5, 0.2, 0.1, 0.1);
  er_id_t root = start(f, "t.waits_for", NULL, NULL);
  drive(f, 1000);
  json_t *d = pipe_doc(f, root.text);
  callback(f, child_id(d, 0), "{\"abort\": \"no way\"}");
  drive(f, 1000);
  json_t *r = pipe_doc(f, root.text), *w = pipe_doc(f, child_id(d, 0));
  assert_string_equal(str(r, "status"), "aborted");
  assert_string_equal(str(r, "abort_message"), "no way");
  assert_string_equal(str(w, "status"), "aborted");
  finalized(child_id(d, 0), true);
  json_decref(r);
  json_decref(w);
  json_decref(d);
  /* a root whose callbacks retry until its attempts are spent */
  root = start(f, "t.waiter", NULL, NULL);
  drive(f, 1000);
  for (int i = 0; i < 3; i++) {
    callback(f, root.text, "{\"retry\": \"1\"}");
    drive(f, 1000);
  }
  r = pipe_doc(f, root.text);
  assert_string_equal(str(r, "status"), "aborted");
  assert_string_equal(str(r, "abort_message"), "aborting after 3 attempts");
  finalized(root.text, true);
  json_decref(r);
}

/* A callback to an unknown pipeline, to a sync one, to one not started or
 * finished: one line, nothing queued; a callback task that reaches a
 * finished pipeline anyway writes nothing and answers why. */
void test_callback_refused(void **state) {
  fx_t *f = *state;
  er_id_t task, none;
  er_id_new(&none);
  json_t *p = json_pack("{s:s}", "v", "1");
  assert_int_equal(er_pipeline_callback(f->c, none.text, p, &task), ER_ENOENT);
  assert_non_null(strstr(er_client_last_error(f->c), "pipeline callback: no pipeline "));
  er_id_t root = start(f, "t.waiter", NULL, NULL);
  assert_int_equal(er_pipeline_callback(f->c, root.text, p, &task), ER_ESTATE);
  assert_non_null(strstr(er_client_last_error(f->c), "is not started: callback refused"));
  json_t *bad = json_pack("{s:i}", "v", 1);
  assert_int_equal(er_pipeline_callback(f->c, root.text, bad, &task), ER_EINVAL);
  json_decref(bad);
  drive(f, 100);
  er_id_t sync = start(f, "euclid", "[4, 2]", NULL);
  drive(f, 100);
  assert_int_equal(er_pipeline_callback(f->c, sync.text, p, &task), ER_ESTATE);
  assert_non_null(strstr(er_client_last_error(f->c), "is not async: callback refused"));
  callback(f, root.text, "{\"v\": \"done\"}");
  drive(f, 100);
  /* finished */
  char *before = snapshot(f, root.text);
  size_t cbs = count_docs(f, ER__CB_COLL);
  assert_int_equal(er_pipeline_callback(f->c, root.text, p, &task), ER_ESTATE);
  assert_non_null(strstr(er_client_last_error(f->c), "is done: callback refused"));
  assert_int_equal(step(f, 10), 0); /* nothing was queued */
  /* a callback task that reaches it anyway (queued before it finished) */
  json_t *args = json_pack("[s, O]", root.text, p);
  er_send_opts_t o = {.queue = f->queue};
  assert_int_equal(er_send(f->c, ER__PIPE_TASK_CALLBACK, args, NULL, &o, &task), 0);
  json_decref(args);
  catch_up();
  int calls = g_cb_calls;
  assert_int_equal(step(f, 10), 1);
  assert_int_equal(g_cb_calls, calls); /* its callback function did not run */
  assert_int_equal(answer_status(f, task.text), 409);
  assert_non_null(strstr(str(json_object_get(f->answers, task.text), "body"),
                         "is done: callback refused"));
  assert_int_equal(applied(f, ER__PIPE_TASK_CALLBACK, root.text), 1); /* the first only */
  char *after = snapshot(f, root.text);
  assert_string_equal(before, after);
  assert_int_equal(count_docs(f, ER__CB_COLL), cbs);
  free(before);
  free(after);
  json_decref(p);
}

/* Schedules callback tasks: {"n": "1"} twice (one task) and {"n": "2"} in
 * 60 s; its callback for n=1 schedules n=3 at once; n=3 completes it. */
static json_t *poller(er_pipe_ctx_t *ctx, json_t *args, json_t *kwargs) {
  json_t *a = json_pack("{s:s}", "n", "1"), *b = json_pack("{s:s}", "n", "2");
  assert_int_equal(er_pipe_callback_task(ctx, 0, a), 0);
  assert_int_equal(er_pipe_callback_task(ctx, 0, a), 0); /* the same call: one task */
  assert_int_equal(er_pipe_callback_task(ctx, 60000, b), 0);
  json_decref(a);
  json_decref(b);
  return NULL;
}
static json_t *poller_cb(er_pipe_ctx_t *ctx, json_t *params) {
  g_cb_calls++;
  const char *n = json_string_value(json_object_get(params, "n"));
  if (n && !strcmp(n, "1")) {
    json_t *c = json_pack("{s:s}", "n", "3");
    er_pipe_callback_task(ctx, 0, c);
    json_decref(c);
  } else if (n && !strcmp(n, "3")) {
    er_pipe_complete(ctx, json_object_get(params, "n"));
  }
  return NULL;
}
ER_PIPELINE("t.poller", poller, .callback = poller_cb, .flags = ER_PIPE_ASYNC)

/* Callback tasks are named: the same call twice, an attempt run twice, a
 * callback task delivered twice never deliver a callback twice. */
void test_callback_task_idempotent(void **state) {
  fx_t *f = *state;
  g_cb_calls = 0;
  er_id_t root = start(f, "t.poller", NULL, NULL);
  /* the run, delivered twice (its worker died before acknowledging) */
  er_task_rec_t **got = NULL;
  const char *qs[] = {f->queue};
  er_reserve_req_t req = {qs, 1, "w-test", g_now, LEASE_MS, 10};
  size_t n = 0;
  assert_int_equal(er_store_reserve(f->s, &req, &got, &n), 0);
  assert_int_equal(n, 1);
  exec1(f, got[0]);
  exec1(f, got[0]);
  er_task_rec_free_array(got, n);
  g_now += LEASE_MS + 1;
  assert_int_equal(er_store_maintain(f->s, g_now, NULL), 0);
  /* the run again (nothing to do) and the n=1 task; n=2 is 60 s away */
  assert_int_equal(step(f, 10), 2);
  assert_int_equal(g_cb_calls, 1);
  /* n=3, queued by the n=1 callback: delivered, then delivered again */
  req.now_ms = g_now;
  assert_int_equal(er_store_reserve(f->s, &req, &got, &n), 0);
  assert_int_equal(n, 1);
  assert_string_equal(got[0]->task, ER__PIPE_TASK_CALLBACK);
  exec1(f, got[0]); /* written; its worker dies */
  char task[ER_ID_LEN + 1];
  snprintf(task, sizeof task, "%s", got[0]->id);
  json_t *first = json_incref(json_object_get(f->answers, task));
  er_task_rec_free_array(got, n);
  g_now += LEASE_MS + 1;
  assert_int_equal(er_store_maintain(f->s, g_now, NULL), 0);
  assert_int_equal(step(f, 10), 1); /* the same task, a later attempt */
  assert_int_equal(g_cb_calls, 2);  /* its callback did not run again */
  assert_true(json_equal(first, json_object_get(f->answers, task))); /* the same answer */
  json_t *v = output(f, root.text);
  assert_string_equal(json_string_value(v), "3");
  json_decref(v);
  assert_int_equal(applied(f, ER__PIPE_TASK_RUN, root.text), 1);
  assert_int_equal(applied(f, ER__PIPE_TASK_CALLBACK, root.text), 2); /* n=1, n=3 */
  json_decref(first);
  /* n=2 comes 60 s later, to a finished pipeline: refused */
  drive(f, 100);
  assert_int_equal(g_cb_calls, 2);
}


static bool agree(er_pipe_ctx_t *ctx) { return true; }
ER_PIPELINE("t.cancellable", waiter, .callback = waiter_cb, .flags = ER_PIPE_ASYNC,
            .finalize = record, .try_cancel = agree)

/* Two async children, one whose try_cancel agrees, one without. */
static json_t *two(er_pipe_ctx_t *ctx, json_t *args, json_t *kwargs) {
  er_pipe_child(ctx, "t.cancellable", NULL);
  er_pipe_child(ctx, "t.waiter", NULL);
  return NULL;
}
ER_PIPELINE("t.two_async", two, .finalize = record)

/* An abort aborts an async pipeline in RUN only if its try_cancel agrees;
 * the other goes on, and is aborted when a callback ends it. */
void test_try_cancel(void **state) {
  fx_t *f = *state;
  chaos(f, 9, 0.2, 0.1, 0.1);
  er_id_t root = start(f, "t.two_async", NULL, NULL);
  drive(f, 1000);
  json_t *d = pipe_doc(f, root.text);
  const char *c0 = child_id(d, 0), *c1 = child_id(d, 1);
  bool aborted = false;
  assert_int_equal(er_pipeline_abort(f->c, root.text, "stop", &aborted), 0);
  assert_true(aborted);
  drive(f, 1000);
  json_t *a = pipe_doc(f, c0), *b = pipe_doc(f, c1), *r = pipe_doc(f, root.text);
  assert_string_equal(str(r, "status"), "aborted");
  assert_string_equal(str(a, "status"), "aborted");
  assert_string_equal(str(b, "status"), "run");
  assert_true(json_is_true(json_object_get(b, "cancel_refused")));
  assert_null(json_object_get(g_fin, c1)); /* not finalized yet */
  json_t *l = json_object_get(g_fin, c0);
  assert_true(json_is_true(json_array_get(l, json_array_size(l) - 1)));
  /* its callback ends it: aborted, finalized as such, its output unfilled */
  callback(f, c1, "{\"v\": \"late\"}");
  drive(f, 1000);
  json_decref(b);
  b = pipe_doc(f, c1);
  assert_string_equal(str(b, "status"), "aborted");
  l = json_object_get(g_fin, c1);
  assert_int_equal(json_array_size(l), 1);
  assert_true(json_is_true(json_array_get(l, 0)));
  json_t *v = NULL;
  assert_int_equal(er_pipeline_output(f->c, c1, NULL, &v), ER_ESTATE);
  json_decref(a);
  json_decref(b);
  json_decref(r);
  json_decref(d);
}
