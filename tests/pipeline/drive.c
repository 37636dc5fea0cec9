/* The pipeline tests' fixture and driver (drive.h). */
#include <dirent.h>
#include <errno.h>
#include <unistd.h>

#include "drive.h"

int64_t g_now;
static int64_t test_clock(void) { return g_now; }

int setup(void **state) {
  fx_t *f = calloc(1, sizeof *f);
  er_id_t id;
  er_id_new(&id);
  snprintf(f->queue, sizeof f->queue, "q-%s", id.text);
  const char *base = getenv("ERRAND_TEST_STORE");
  if (base && *base) {
    snprintf(f->url, sizeof f->url, "%s", base);
  } else {
    snprintf(f->dir, sizeof f->dir, "/tmp/errand-pipe-XXXXXX");
    if (!mkdtemp(f->dir)) fail_msg("mkdtemp: %s", strerror(errno));
    snprintf(f->url, sizeof f->url, "sqlite:%s/store.db", f->dir);
  }
  char err[256];
  int rc = er_store_open(f->url, &f->s, err, sizeof err);
  if (rc) fail_msg("open %s: %s", f->url, err);
  rc = er_client_open(f->url, &f->c, err, sizeof err);
  if (rc) fail_msg("client %s: %s", f->url, err);
  f->applied = json_object();
  f->answers = json_object();
  g_now = er_now_wall_ms();
  er__pipe_clock = test_clock;
  *state = f;
  return 0;
}

int teardown(void **state) {
  fx_t *f = *state;
  er_client_close(f->c);
  er_store_close(f->s);
  json_decref(f->applied);
  json_decref(f->answers);
  if (f->dir[0]) {
    DIR *d = opendir(f->dir);
    struct dirent *e;
    char p[512];
    while (d && (e = readdir(d))) {
      if (e->d_name[0] == '.') continue;
      snprintf(p, sizeof p, "%s/%s", f->dir, e->d_name);
      unlink(p);
    }
    if (d) closedir(d);
    rmdir(f->dir);
  }
  free(f);
  return 0;
}

void chaos(fx_t *f, unsigned seed, double dup, double lost, double late) {
  f->seed = seed;
  f->p_dup = dup;
  f->p_lost = lost;
  f->p_late = late;
}

static double rnd(fx_t *f) { return (double)rand_r(&f->seed) / ((double)RAND_MAX + 1.0); }

er_id_t start(fx_t *f, const char *name, const char *args_json, const er_pipeline_opts_t *o) {
  er_pipeline_opts_t opts = o ? *o : (er_pipeline_opts_t){0};
  opts.queue = f->queue;
  json_t *args = args_json ? json_loads(args_json, 0, NULL) : NULL;
  er_id_t id;
  int rc = er_pipeline_start(f->c, name, args, NULL, &opts, &id);
  json_decref(args);
  if (rc) fail_msg("start %s: %s: %s", name, er_err_name(rc), er_client_last_error(f->c));
  return id;
}

void exec1(fx_t *f, er_task_rec_t *r) {
  er__pipe_result_t res;
  char err[512] = "";
  int rc = er__pipe_exec_at(f->s, r, f->base_url[0] ? f->base_url : NULL, NULL, &res, err, sizeof err);
  if (rc) fail_msg("exec %s %s: %s: %s", r->task, r->id, er_err_name(rc), err);
  f->execs++;
  if (res.answer) json_object_set_new(f->answers, r->id, res.answer);
  if (!res.applied) return;
  char k[128];
  snprintf(k, sizeof k, "%s %s", r->task, json_string_value(json_array_get(r->args, 0)));
  json_int_t n = json_integer_value(json_object_get(f->applied, k));
  json_object_set_new(f->applied, k, json_integer(n + 1));
}

static void complete(fx_t *f, er_task_rec_t *r) {
  er_completion_t c = {r->id, r->attempt, ER_STATE_SUCCESS, NULL, NULL, 0, g_now};
  bool fenced;
  int rc = er_store_complete(f->s, &c, 1, &fenced);
  if (rc) fail_msg("complete: %s: %s", er_err_name(rc), er_store_last_error(f->s));
}

void run_task(fx_t *f, er_task_rec_t *r) {
  exec1(f, r);
  complete(f, r);
}

size_t reserve_due(fx_t *f, size_t max, er_task_rec_t ***out) {
  const char *qs[] = {f->queue};
  er_reserve_req_t req = {qs, 1, "w-test", g_now, LEASE_MS, max};
  size_t n = 0;
  int rc = er_store_reserve(f->s, &req, out, &n);
  if (rc) fail_msg("reserve: %s: %s", er_err_name(rc), er_store_last_error(f->s));
  return n;
}

size_t step(fx_t *f, size_t n) {
  er_task_rec_t **got = NULL;
  size_t k = reserve_due(f, n, &got);
  for (size_t i = 0; i < k; i++) run_task(f, got[i]);
  er_task_rec_free_array(got, k);
  return k;
}

/* Leases end: tasks whose worker "died" go back to the queue. */
static void expire_leases(fx_t *f) {
  g_now += LEASE_MS + 1;
  int rc = er_store_maintain(f->s, g_now, NULL);
  if (rc) fail_msg("maintain: %s", er_err_name(rc));
}

void drive(fx_t *f, size_t max_steps) {
  er_task_rec_t *held[64];
  size_t nheld = 0, steps = 0;
  bool lost = false;
  while (steps < max_steps) {
    er_task_rec_t **got = NULL;
    size_t n = reserve_due(f, 1 + rand_r(&f->seed) % 6, &got);
    if (n == 0) {
      er_task_rec_free_array(got, 0);
      if (nheld) { /* a late delivery, after its lease was taken over (or not) */
        er_task_rec_t *r = held[--nheld];
        exec1(f, r);
        complete(f, r);
        er_task_rec_free(r);
        continue;
      }
      const char *qs[] = {f->queue};
      int64_t due = 0;
      int rc = er_store_next_due(f->s, qs, 1, &due);
      if (rc) fail_msg("next_due: %s", er_err_name(rc));
      if (!due) break; /* nothing queued for later, no lease running */
      if (due >= g_now) g_now = due + 1; /* a retry falls due, or a lease ends */
      lost = false;
      er_store_maintain(f->s, g_now, NULL);
      continue;
    }
    for (size_t i = n; i > 1; i--) { /* shuffle */
      size_t j = rand_r(&f->seed) % i;
      er_task_rec_t *t = got[i - 1];
      got[i - 1] = got[j];
      got[j] = t;
    }
    for (size_t i = 0; i < n; i++, steps++) {
      er_task_rec_t *r = got[i];
      double x = rnd(f);
      if (x < f->p_late && nheld < 64) {
        held[nheld++] = r; /* delivered later, maybe after another attempt */
        got[i] = NULL;
        lost = true;
        continue;
      }
      exec1(f, r);
      if (x < f->p_late + f->p_lost) { /* ran, but its worker died before acking */
        lost = true;
        continue;
      }
      complete(f, r);
      if (x < f->p_late + f->p_lost + f->p_dup) { /* delivered twice */
        exec1(f, r);
        complete(f, r);
      }
    }
    er_task_rec_free_array(got, n);
    if (lost && rnd(f) < 0.3) {
      expire_leases(f);
      lost = false;
    }
  }
  while (nheld) er_task_rec_free(held[--nheld]);
  if (steps >= max_steps) fail_msg("drive: still busy after %zu deliveries", steps);
}

json_t *tree(fx_t *f, const char *root) {
  json_t *t = NULL;
  int rc = er_pipeline_tree(f->c, root, &t);
  if (rc) fail_msg("tree: %s: %s", er_err_name(rc), er_client_last_error(f->c));
  return t;
}

json_t *pipe_doc(fx_t *f, const char *id) {
  json_t *d = NULL;
  int rc = er_pipeline_get(f->c, id, &d);
  if (rc) fail_msg("get %s: %s: %s", id, er_err_name(rc), er_client_last_error(f->c));
  return d;
}

json_t *output(fx_t *f, const char *root) {
  json_t *v = NULL;
  int rc = er_pipeline_output(f->c, root, NULL, &v);
  if (rc) fail_msg("output: %s: %s", er_err_name(rc), er_client_last_error(f->c));
  return v;
}

json_t *g_fin;

void record(er_pipe_ctx_t *ctx, json_t *outputs, bool was_aborted) {
  if (!g_fin) g_fin = json_object();
  json_t *l = json_object_get(g_fin, er_pipe_id(ctx));
  if (!l) json_object_set_new(g_fin, er_pipe_id(ctx), l = json_array());
  json_array_append_new(l, json_boolean(was_aborted));
}

void finalized(const char *id, bool want) {
  json_t *l = json_object_get(g_fin, id);
  if (!json_array_size(l)) fail_msg("pipeline %s was never finalized", id);
  size_t i;
  json_t *v;
  json_array_foreach(l, i, v) assert_int_equal(json_is_true(v), want);
}

int64_t next_due(fx_t *f) {
  const char *qs[] = {f->queue};
  int64_t due = 0;
  assert_int_equal(er_store_next_due(f->s, qs, 1, &due), 0);
  return due;
}

void falls_due_at(fx_t *f, int64_t t) {
  assert_int_equal(next_due(f), t);
  g_now = t - 1;
  assert_int_equal(step(f, 10), 0);
  g_now = t;
  assert_int_equal(step(f, 10), 1);
}

int applied(fx_t *f, const char *task, const char *id) {
  char k[128];
  snprintf(k, sizeof k, "%s %s", task, id);
  return (int)json_integer_value(json_object_get(f->applied, k));
}

int64_t barrier(fx_t *f, const char *id, const char *what) {
  char k[64];
  snprintf(k, sizeof k, "%s:%s", id, what);
  int64_t v = -1;
  assert_int_equal(er_store_counter_get(f->s, ER__BARRIER_COLL, k, &v), 0);
  return v;
}

void check_tree(fx_t *f, const char *root, const char *status) {
  json_t *t = tree(f, root);
  bool done = strcmp(status, "done") == 0;
  const char *id;
  json_t *p;
  json_object_foreach(json_object_get(t, "pipelines"), id, p) {
    const char *st = json_string_value(json_object_get(p, "status"));
    if (strcmp(st, status) != 0)
      fail_msg("pipeline %s (%s) is %s, not %s", id,
               json_string_value(json_object_get(p, "name")), st, status);
    assert_int_equal(barrier(f, id, "start"), 0);
    assert_int_equal(barrier(f, id, "fin"), 0);
    if (!done) continue;
    assert_int_equal(applied(f, ER__PIPE_TASK_RUN, id), 1);
    bool parent = json_array_size(json_object_get(p, "children")) > 0;
    assert_int_equal(applied(f, ER__PIPE_TASK_FIN, id), parent ? 1 : 0);
  }
  json_t *s;
  json_object_foreach(json_object_get(t, "slots"), id, s) {
    if (!done) continue;
    if (strcmp(json_string_value(json_object_get(s, "status")), "filled") != 0)
      fail_msg("slot %s is not filled", id);
    /* the owner (the last child, for an inherited output) filled it */
    assert_non_null(json_object_get(json_object_get(t, "pipelines"),
                                    json_string_value(json_object_get(s, "filler"))));
  }
  json_decref(t);
  /* nothing left in the queue, even much later */
  er_task_rec_t **got = NULL;
  const char *qs[] = {f->queue};
  er_reserve_req_t req = {qs, 1, "w-check", g_now + 86400000LL, LEASE_MS, 10};
  size_t n = 0;
  assert_int_equal(er_store_reserve(f->s, &req, &got, &n), 0);
  for (size_t i = 0; i < n; i++) {
    /* a late or lost delivery's task may remain: it must change nothing */
    er__pipe_result_t res;
    char err[256];
    assert_int_equal(er__pipe_exec(f->s, got[i], &res, err, sizeof err), 0);
    assert_false(res.applied);
    json_decref(res.answer);
  }
  er_task_rec_free_array(got, n);
}

size_t count_docs(fx_t *f, const char *coll) {
  size_t n = 0;
  char after[600] = "";
  for (;;) {
    json_t *page = NULL;
    assert_int_equal(er_store_doc_list(f->s, coll, after, 500, &page), 0);
    size_t k = json_array_size(page);
    n += k;
    json_t *last = json_array_get(page, k - 1);
    if (k) snprintf(after, sizeof after, "%s", json_string_value(json_object_get(last, "key")));
    json_decref(page);
    if (k < 500) return n;
  }
}

/* A client's task is due at the wall clock's now: the test's clock, which
 * may lag behind it, catches up. */
void catch_up(void) {
  int64_t now = er_now_wall_ms();
  if (g_now <= now) g_now = now + 1;
}

/* Queues a callback to id and returns the callback task's id. */
er_id_t callback(fx_t *f, const char *id, const char *params_json) {
  json_t *p = json_loads(params_json, 0, NULL);
  er_id_t task;
  int rc = er_pipeline_callback(f->c, id, p, &task);
  json_decref(p);
  if (rc) fail_msg("callback: %s: %s", er_err_name(rc), er_client_last_error(f->c));
  catch_up();
  return task;
}

json_int_t answer_status(fx_t *f, const char *task) {
  return json_integer_value(json_object_get(json_object_get(f->answers, task), "status"));
}

/* Snapshot of what a refused callback must leave alone. */
char *snapshot(fx_t *f, const char *root) {
  json_t *t = tree(f, root);
  char *s = json_dumps(t, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref(t);
  return s;
}
