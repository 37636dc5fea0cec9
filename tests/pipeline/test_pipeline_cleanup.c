/* Retention: finished roots older than the retention are deleted with their
 * whole trees (done and aborted ones, barriers above 0 included), roots
 * still running are kept, a tree with a stage not over waits, the work is
 * bounded and resumable, and the worker's housekeeping does it now and
 * then. Bad input changes nothing in the store. */
#include "drive.h"
#include "pipeline/pipe_maint.h"

#define DAY_MS (24LL * 3600 * 1000)

static const char *const g_colls[] = {ER__PIPE_COLL,  ER__SLOT_COLL,  ER__KEY_COLL,
                                      ER__ROOT_COLL,  ER__ABORT_COLL, ER__ENDED_COLL,
                                      ER__CB_COLL,    NULL};

/* How many documents each pipeline collection holds, and how many tasks
 * the store has (new). */
static json_t *store_snapshot(fx_t *f) {
  json_t *snap = json_object();
  for (const char *const *c = g_colls; *c; c++)
    json_object_set_new(snap, *c, json_integer((json_int_t)count_docs(f, *c)));
  json_t *stats = NULL;
  assert_int_equal(er_store_stats(f->s, &stats), 0);
  json_int_t tasks = 0;
  const char *k;
  json_t *n;
  json_object_foreach(json_object_get(stats, "total"), k, n) tasks += json_integer_value(n);
  json_decref(stats);
  json_object_set_new(snap, "tasks", json_integer(tasks));
  return snap;
}

static void same_docs(json_t *want, json_t *got) {
  for (const char *const *c = g_colls; *c; c++)
    if (!json_equal(json_object_get(want, *c), json_object_get(got, *c)))
      fail_msg("%s: %lld documents, not %lld", *c,
               (long long)json_integer_value(json_object_get(got, *c)),
               (long long)json_integer_value(json_object_get(want, *c)));
}

/* A store shared by several tests (Redis) holds their roots: delete those
 * finished at any time, so that the counts below are this test's. */
static void purge(fx_t *f) {
  int64_t now = g_now;
  g_now += 1000LL * 365 * DAY_MS;
  assert_int_equal(er_pipeline_cleanup(f->c, 0, NULL), 0);
  g_now = now;
}

static er_pipeline_cleanup_counts_t cleanup(fx_t *f, int64_t older_than_ms) {
  er_pipeline_cleanup_counts_t n;
  int rc = er_pipeline_cleanup(f->c, older_than_ms, &n);
  if (rc) fail_msg("cleanup: %s: %s", er_err_name(rc), er_client_last_error(f->c));
  return n;
}

/* The ids of the tree's pipelines (new array). */
static json_t *tree_ids(fx_t *f, const char *root) {
  json_t *t = tree(f, root), *ids = json_array();
  const char *id;
  json_t *p;
  json_object_foreach(json_object_get(t, "pipelines"), id, p) json_array_append_new(ids, json_string(id));
  json_decref(t);
  return ids;
}

/* Every pipeline of ids is gone, and so are its barriers. */
static void all_gone(fx_t *f, json_t *ids) {
  size_t i;
  json_t *id;
  json_array_foreach(ids, i, id) {
    json_t *d = NULL;
    assert_int_equal(er_pipeline_get(f->c, json_string_value(id), &d), ER_ENOENT);
    assert_int_equal(barrier(f, json_string_value(id), "start"), 0);
    assert_int_equal(barrier(f, json_string_value(id), "fin"), 0);
  }
}

/* A chain of n aborted once its root declared the steps: steps 2..n never
 * started, their start barriers stay at 1. */
static er_id_t aborted_chain(fx_t *f, int n) {
  char args[16];
  snprintf(args, sizeof args, "[%d]", n);
  er_id_t root = start(f, "chain", args, NULL);
  assert_int_equal(step(f, 1), 1); /* the root's run: children declared */
  bool aborted = false;
  assert_int_equal(er_pipeline_abort(f->c, root.text, "stop", &aborted), 0);
  assert_true(aborted);
  drive(f, 1000);
  return root;
}

void test_retention(void **state) {
  fx_t *f = *state;
  purge(f);
  /* not finished (on a queue no one serves): kept whatever its age */
  char q[80];
  snprintf(q, sizeof q, "%s-idle", f->queue);
  er_pipeline_opts_t idle = {.queue = q};
  er_id_t running;
  assert_int_equal(er_pipeline_start(f->c, "chain", NULL, NULL, &idle, &running), 0);
  json_t *before = store_snapshot(f);
  er_pipeline_opts_t keyed = {.key = "cleanup-key"};
  er_id_t done = start(f, "euclid", "[1071, 462]", &keyed);
  er_id_t fan = start(f, "fan_sum", "[5]", NULL);
  er_id_t leaf = start(f, "Return", "[1]", NULL); /* a root done by its run */
  er_id_t waiter = start(f, "t.waiter", NULL, NULL); /* async: done by a callback */
  drive(f, 1000);
  callback(f, waiter.text, "{\"v\": \"x\"}");
  drive(f, 1000);
  er_id_t aborted = aborted_chain(f, 4);
  json_t *ids = json_array();
  const char *roots[] = {done.text, fan.text, leaf.text, waiter.text, aborted.text};
  for (size_t i = 0; i < 5; i++) {
    json_t *t = tree_ids(f, roots[i]);
    json_array_extend(ids, t);
    json_decref(t);
  }
  json_t *adoc = pipe_doc(f, aborted.text);
  const char *step2 = json_string_value(json_array_get(json_object_get(adoc, "children"), 1));
  assert_int_equal(barrier(f, step2, "start"), 1);
  json_decref(adoc);
  /* younger than the retention (7 days by default): nothing goes */
  g_now += 7 * DAY_MS - 60000;
  er_pipeline_cleanup_counts_t n = cleanup(f, -1);
  assert_int_equal(n.roots, 0);
  assert_int_equal(n.docs, 0);
  json_t *mid = store_snapshot(f);
  assert_int_equal(json_integer_value(json_object_get(mid, ER__ENDED_COLL)), 5);
  json_decref(mid);
  /* older: every finished tree goes, the running root stays */
  g_now += 120000;
  n = cleanup(f, -1);
  assert_int_equal(n.roots, 5);
  assert_true(n.docs > json_array_size(ids));
  json_t *after = store_snapshot(f);
  same_docs(before, after);
  all_gone(f, ids);
  json_decref(pipe_doc(f, running.text));
  /* the key is free again; a second cleanup finds nothing */
  er_id_t again = start(f, "euclid", "[4, 2]", &keyed);
  assert_string_not_equal(again.text, done.text);
  n = cleanup(f, -1);
  assert_int_equal(n.roots, 0);
  drive(f, 1000);
  json_decref(ids);
  json_decref(before);
  json_decref(after);
}

static bool gone(fx_t *f, const char *id) {
  json_t *d = NULL;
  int rc = er_pipeline_get(f->c, id, &d);
  json_decref(d);
  return rc == ER_ENOENT;
}

/* Cleans up, budget 8 a call, the roots ended by now_ms, until done:
 * returns how many calls it took. Each call deletes at most max_docs, makes
 * progress, and leaves what is left of root's tree a whole tree (every stage
 * left is reachable from the root). */
static size_t sweep_all(fx_t *f, int64_t now_ms, const char *root, size_t base, size_t max_docs) {
  char cursor[64] = "";
  er__pipe_swept_t sw;
  size_t calls = 0, roots = 0;
  do {
    assert_int_equal(er__pipe_cleanup(f->s, now_ms, 0, 8, cursor, sizeof cursor, &sw), 0);
    calls++;
    roots += sw.roots;
    if (sw.docs > max_docs) fail_msg("call %zu deleted %zu documents", calls, sw.docs);
    assert_true(sw.docs > 0 || !sw.more);
    size_t reach = 0;
    if (!gone(f, root)) {
      json_t *ids = tree_ids(f, root);
      reach = json_array_size(ids);
      json_decref(ids);
    }
    assert_int_equal(count_docs(f, ER__PIPE_COLL) - base, reach);
  } while (sw.more && calls < 1000);
  assert_int_equal(roots, 1);
  assert_true(gone(f, root));
  return calls;
}

/* The cleanup a little at a time: a wide tree goes in many calls of about
 * the budget each; a tree deeper than the budget goes too (a call reads
 * down to a leaf whatever its budget, then its chain of parents goes). */
void test_bounded(void **state) {
  fx_t *f = *state;
  purge(f);
  json_t *before = store_snapshot(f);
  size_t base = count_docs(f, ER__PIPE_COLL);
  er_id_t fan = start(f, "fan_sum", "[40]", NULL);
  drive(f, 20000);
  check_tree(f, fan.text, "done");
  int64_t fan_end = g_now;
  g_now += 1000;
  er_id_t deep = start(f, "euclid", "[832040, 514229]", NULL); /* Fibonacci: 29 levels */
  drive(f, 20000);
  json_t *fan_ids = tree_ids(f, fan.text), *deep_ids = tree_ids(f, deep.text);
  assert_true(json_array_size(deep_ids) > 20);
  assert_true(sweep_all(f, fan_end, fan.text, base + json_array_size(deep_ids), 8 + 10) > 10);
  sweep_all(f, g_now, deep.text, base, json_array_size(deep_ids) + 10);
  json_t *after = store_snapshot(f);
  same_docs(before, after);
  all_gone(f, fan_ids);
  all_gone(f, deep_ids);
  json_decref(fan_ids);
  json_decref(deep_ids);
  json_decref(before);
  json_decref(after);
}

/* Runs the due internal tasks until none is left, except the finalize
 * tasks of stages other than root, which stay reserved in held. */
static size_t run_holding(fx_t *f, const char *root, er_task_rec_t **held, size_t max) {
  size_t nheld = 0, n;
  er_task_rec_t **got = NULL;
  while ((n = reserve_due(f, 16, &got)) > 0) {
    for (size_t i = 0; i < n; i++) {
      const char *id = json_string_value(json_array_get(got[i]->args, 0));
      if (strcmp(got[i]->task, ER__PIPE_TASK_FIN) == 0 && strcmp(id, root) != 0 && nheld < max) {
        held[nheld++] = got[i];
        got[i] = NULL;
      } else {
        run_task(f, got[i]);
      }
    }
    er_task_rec_free_array(got, n);
  }
  er_task_rec_free_array(got, 0);
  return nheld;
}

/* A root done while stages of its tree still finalize: its tree waits for
 * them, unless its root ended over a day ago (they are stuck). A finalize
 * delivered after its tree went changes nothing. */
void test_waits_for_stages(void **state) {
  fx_t *f = *state;
  purge(f);
  json_t *before = store_snapshot(f);
  /* euclid's stages share the last one's output: it releases every
   * finalize at once */
  er_id_t root = start(f, "euclid", "[1071, 462]", NULL);
  er_task_rec_t *held[8];
  size_t nheld = run_holding(f, root.text, held, 8);
  assert_int_equal(nheld, 2);
  json_t *d = pipe_doc(f, root.text);
  assert_string_equal(json_string_value(json_object_get(d, "status")), "done");
  json_decref(d);
  json_t *mid = store_snapshot(f);
  er_pipeline_cleanup_counts_t n = cleanup(f, 0);
  assert_int_equal(n.roots, 0);
  assert_int_equal(n.docs, 0);
  json_t *now = store_snapshot(f);
  same_docs(mid, now);
  json_decref(now);
  run_task(f, held[0]); /* one finalize done, one still to come */
  n = cleanup(f, 0);
  assert_int_equal(n.roots, 0);
  /* a day later the last one is stuck: the tree goes */
  g_now += DAY_MS + 1;
  n = cleanup(f, 0);
  assert_int_equal(n.roots, 1);
  json_t *after = store_snapshot(f);
  same_docs(before, after);
  /* its finalize comes at last: nothing is written back */
  er__pipe_result_t res;
  char err[256] = "";
  assert_int_equal(er__pipe_exec(f->s, held[1], &res, err, sizeof err), 0);
  assert_false(res.applied);
  run_task(f, held[1]); /* and once more, acknowledged */
  json_t *late = store_snapshot(f);
  same_docs(before, late);
  json_decref(late);
  er_task_rec_free(held[0]);
  er_task_rec_free(held[1]);
  json_decref(mid);
  json_decref(before);
  json_decref(after);
}

/* The URL with one more query option (new text in buf). */
static const char *url_with(fx_t *f, char *buf, size_t size, const char *opt) {
  snprintf(buf, size, "%s%c%s", f->url, strchr(f->url, '?') ? '&' : '?', opt);
  return buf;
}

/* The retention comes from the store URL (pipe_retention_ms); a worker's
 * housekeeping deletes old roots now and then (here every 6 s, a tenth of
 * the retention), a bounded part at a time. */
void test_maintain(void **state) {
  fx_t *f = *state;
  purge(f);
  char url[700], err[256];
  er_store_t *s = NULL;
  assert_int_equal(er_store_open(url_with(f, url, sizeof url, "pipe_retention_ms=abc"), &s, err,
                                 sizeof err), ER_EINVAL);
  assert_non_null(strstr(err, "pipe_retention_ms=abc: want an integer"));
  assert_int_equal(er_store_open(url_with(f, url, sizeof url, "pipe_retention_ms=60000"), &s,
                                 err, sizeof err), 0);
  int64_t t0 = g_now;
  er_id_t a = start(f, "euclid", "[4, 2]", NULL);
  drive(f, 100);
  g_now = t0 + 30000;
  assert_int_equal(er__pipe_maintain(s), 0); /* younger than the retention */
  assert_false(gone(f, a.text));
  g_now = t0 + 61000;
  assert_int_equal(er__pipe_maintain(s), 0);
  assert_true(gone(f, a.text));
  /* not again before 6 s have passed */
  g_now = t0 - 120000;
  er_id_t b = start(f, "euclid", "[4, 2]", NULL);
  drive(f, 100);
  g_now = t0 + 62000;
  assert_int_equal(er__pipe_maintain(s), 0);
  assert_false(gone(f, b.text));
  g_now = t0 + 67001;
  assert_int_equal(er__pipe_maintain(s), 0);
  assert_true(gone(f, b.text));
  /* a big tree takes several calls, the next one at once */
  er_id_t big = start(f, "fan_sum", "[100]", NULL);
  drive(f, 20000);
  size_t docs = count_docs(f, ER__SLOT_COLL);
  g_now += 61000;
  assert_int_equal(er__pipe_maintain(s), 0);
  assert_false(gone(f, big.text));
  assert_true(count_docs(f, ER__SLOT_COLL) < docs);
  for (int i = 0; i < 10 && !gone(f, big.text); i++) assert_int_equal(er__pipe_maintain(s), 0);
  assert_true(gone(f, big.text));
  er_store_close(s);
  /* a client's cleanup takes the URL's retention too */
  er_client_t *c = NULL;
  assert_int_equal(er_client_open(url, &c, err, sizeof err), 0);
  er_id_t d = start(f, "euclid", "[4, 2]", NULL);
  drive(f, 100);
  g_now += 59000;
  er_pipeline_cleanup_counts_t n;
  assert_int_equal(er_pipeline_cleanup(c, -1, &n), 0);
  assert_int_equal(n.roots, 0);
  g_now += 2000;
  assert_int_equal(er_pipeline_cleanup(c, -1, &n), 0);
  assert_int_equal(n.roots, 1);
  assert_true(gone(f, d.text));
  er_client_close(c);
}

/* A refusal: rc as expected, and a one-line message saying needle. */
static void refused(fx_t *f, int rc, int want, const char *needle) {
  const char *msg = er_client_last_error(f->c);
  if (rc != want) fail_msg("%s instead of %s (%s)", er_err_name(rc), er_err_name(want), msg);
  if (!strstr(msg, needle)) fail_msg("'%s' does not say '%s'", msg, needle);
  assert_null(strchr(msg, '\n'));
}

/* Bad input: a one-line error each, and nothing changed in the store. */
void test_bad_input_unchanged(void **state) {
  fx_t *f = *state;
  er_id_t t = start(f, "euclid", "[1071, 462]", NULL);
  drive(f, 1000);
  json_t *d = pipe_doc(f, t.text);
  const char *child = json_string_value(json_array_get(json_object_get(d, "children"), 0));
  json_t *before = store_snapshot(f);
  er_pipeline_opts_t o = {.queue = f->queue};
  json_t *obj = json_object(), *arr = json_array(), *str = json_string("[1]");
  er_id_t id;
  refused(f, er_pipeline_start(f->c, "no.such", NULL, NULL, &o, &id), ER_EINVAL,
          "unknown pipeline 'no.such'");
  refused(f, er_pipeline_start(f->c, NULL, NULL, NULL, &o, &id), ER_EINVAL, "no pipeline name");
  refused(f, er_pipeline_start(f->c, "euclid", obj, NULL, &o, &id), ER_EINVAL,
          "args must be a JSON array");
  refused(f, er_pipeline_start(f->c, "euclid", str, NULL, &o, &id), ER_EINVAL,
          "args must be a JSON array");
  refused(f, er_pipeline_start(f->c, "euclid", arr, arr, &o, &id), ER_EINVAL,
          "kwargs must be a JSON object");
  o.countdown_ms = -1;
  refused(f, er_pipeline_start(f->c, "euclid", arr, NULL, &o, &id), ER_EINVAL, "negative");
  o = (er_pipeline_opts_t){.queue = f->queue, .key = ""};
  refused(f, er_pipeline_start(f->c, "euclid", arr, NULL, &o, &id), ER_EINVAL, "1 to 512 bytes");
  o = (er_pipeline_opts_t){.queue = ""};
  refused(f, er_pipeline_start(f->c, "euclid", arr, NULL, &o, &id), ER_EINVAL, "queue name");
  bool aborted = true;
  refused(f, er_pipeline_abort(f->c, "nope", NULL, &aborted), ER_EINVAL, "not a pipeline id");
  assert_false(aborted);
  refused(f, er_pipeline_abort(f->c, "01a2372a-0000-7000-8000-000000000000", NULL, &aborted),
          ER_ENOENT, "no pipeline 01a2372a-0000-7000-8000-000000000000");
  refused(f, er_pipeline_abort(f->c, child, NULL, &aborted), ER_EINVAL, "is not a root");
  json_t *v = NULL;
  refused(f, er_pipeline_output(f->c, t.text, "nope", &v), ER_ENOENT, "has no output 'nope'");
  refused(f, er_pipeline_tree(f->c, "nope", &v), ER_EINVAL, "not a pipeline id");
  json_t *after = store_snapshot(f);
  if (!json_equal(before, after)) {
    char *a = json_dumps(before, JSON_SORT_KEYS), *b = json_dumps(after, JSON_SORT_KEYS);
    fail_msg("the store changed: %s, then %s", a, b);
  }
  /* a stage that fills an output twice: its attempt writes nothing (the
   * output stays unfilled) and says why on one line */
  er_id_t twice = start(f, "t.twice", NULL, NULL);
  drive(f, 1000);
  json_t *td = pipe_doc(f, twice.text);
  const char *msg = json_string_value(json_object_get(td, "retry_message"));
  assert_non_null(strstr(msg, "fills output 'default' twice"));
  assert_null(strchr(msg, '\n'));
  refused(f, er_pipeline_output(f->c, twice.text, NULL, &v), ER_ESTATE, "is not filled yet");
  json_decref(td);
  json_decref(d);
  json_decref(obj);
  json_decref(arr);
  json_decref(str);
  json_decref(before);
  json_decref(after);
}

/* A stage that declares a child its library lacks fails clearly, saying
 * which; it is retried, then its root aborts. */
static json_t *lacks(er_pipe_ctx_t *ctx, json_t *args, json_t *kwargs) {
  er_pipe_child(ctx, "t.not.in.this.library", NULL);
  return NULL;
}
ER_PIPELINE("t.lacks", lacks, .max_attempts = 2, .backoff_s = 1)

void test_missing_stage(void **state) {
  fx_t *f = *state;
  er_id_t root = start(f, "t.lacks", NULL, NULL);
  drive(f, 1000);
  json_t *d = pipe_doc(f, root.text);
  assert_string_equal(json_string_value(json_object_get(d, "retry_message")),
                      "pipeline 't.lacks': unknown child pipeline 't.not.in.this.library'");
  assert_string_equal(json_string_value(json_object_get(d, "abort_message")),
                      "aborting after 2 attempts");
  assert_int_equal(json_array_size(json_object_get(d, "children")), 0); /* nothing declared */
  json_decref(d);
  check_tree(f, root.text, "aborted");
}
