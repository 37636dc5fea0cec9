/* The store conformance suite's fixture and helpers. */
#include <dirent.h>

#include "conformance.h"

const char *g_base; /* the URL given, or NULL */



bool is_sqlite(const fx_t *f) { return strncmp(f->base, "sqlite:", 7) == 0; }

/* f->base with extra query options (may be ""). */
void url_with(const fx_t *f, const char *opts, char *out, size_t size) {
  snprintf(out, size, "%s%s%s", f->base, *opts ? (strchr(f->base, '?') ? "&" : "?") : "", opts);
}

er_store_t *open_with(const fx_t *f, const char *opts) {
  char url[700], err[256];
  url_with(f, opts, url, sizeof url);
  er_store_t *s = NULL;
  int rc = er_store_open(url, &s, err, sizeof err);
  if (rc) fail_msg("open %s: %s: %s", url, er_err_name(rc), err);
  return s;
}

int setup(void **state) {
  fx_t *f = calloc(1, sizeof *f);
  er_id_t id;
  er_id_new(&id);
  snprintf(f->tag, sizeof f->tag, "%s", id.text);
  snprintf(f->queue, sizeof f->queue, "q-%s", id.text);
  if (g_base) {
    snprintf(f->base, sizeof f->base, "%s", g_base);
  } else {
    snprintf(f->dir, sizeof f->dir, "/tmp/errand-store-XXXXXX");
    if (!mkdtemp(f->dir)) fail_msg("mkdtemp: %s", strerror(errno));
    snprintf(f->base, sizeof f->base, "sqlite:%s/store.db", f->dir);
  }
  f->s = open_with(f, "tombstone_ms=50");
  *state = f;
  return 0;
}

/* Removes the test's directory and every file in it (the database, its WAL,
 * the doorbells). */
void rm_dir(const char *dir) {
  DIR *d = opendir(dir);
  struct dirent *e;
  char p[512];
  while (d && (e = readdir(d))) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
    unlink(p);
  }
  if (d) closedir(d);
  rmdir(dir);
}

int teardown(void **state) {
  fx_t *f = *state;
  er_store_close(f->s);
  if (f->dir[0]) rm_dir(f->dir);
  free(f);
  return 0;
}

/* ---- helpers ------------------------------------------------------------------------ */

int64_t now_ms(void) { return er_now_wall_ms(); }

void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) && errno == EINTR) {
  }
}

/* A minimal valid record for f's queue, due now. */
er_task_rec_t *mk(const fx_t *f, const char *task) {
  er_task_rec_t *r = er_task_rec_new();
  er_id_t id;
  er_id_new(&id);
  memcpy(r->id, id.text, sizeof r->id);
  r->task = er_strdup(task);
  r->queue = er_strdup(f->queue);
  r->args = json_array();
  r->kwargs = json_object();
  r->created_ms = r->eta_ms = now_ms();
  return r;
}

char *tagged(const fx_t *f, const char *what) {
  char buf[128];
  snprintf(buf, sizeof buf, "%s-%s", what, f->tag);
  return er_strdup(buf);
}

int enq(fx_t *f, er_task_rec_t *r) { return er_store_enqueue(f->s, &r, 1, 0, NULL); }

er_task_rec_t *get(fx_t *f, const char *id) {
  er_task_rec_t *r = NULL;
  int rc = er_store_get(f->s, id, NULL, &r);
  if (rc) fail_msg("get %s: %s: %s", id, er_err_name(rc), er_store_last_error(f->s));
  return r;
}

int get_rc(fx_t *f, const char *id) {
  er_task_rec_t *r = NULL;
  int rc = er_store_get(f->s, id, NULL, &r);
  er_task_rec_free(r);
  return rc;
}

/* Reserves up to max from f's queue at time now with a lease of lease_ms. */
size_t reserve_at(fx_t *f, size_t max, int64_t now, int64_t lease_ms,
                         er_task_rec_t ***out) {
  const char *qs[] = {f->queue};
  er_reserve_req_t req = {qs, 1, "w-test", now, lease_ms, max};
  size_t n = 0;
  int rc = er_store_reserve(f->s, &req, out, &n);
  if (rc) fail_msg("reserve: %s: %s", er_err_name(rc), er_store_last_error(f->s));
  return n;
}

/* Reserves exactly one task and returns it. */
er_task_rec_t *reserve1(fx_t *f, int64_t now, int64_t lease_ms) {
  er_task_rec_t **got = NULL;
  size_t n = reserve_at(f, 1, now, lease_ms, &got);
  assert_int_equal(n, 1);
  er_task_rec_t *r = got[0];
  er_free(got);
  return r;
}

bool complete1(fx_t *f, const char *id, int attempt, er_task_state_t state,
                      json_t *result, json_t *error, int64_t now, int64_t retry_eta) {
  er_completion_t c = {id, attempt, state, result, error, retry_eta, now};
  bool fenced = false;
  int rc = er_store_complete(f->s, &c, 1, &fenced);
  if (rc) fail_msg("complete: %s: %s", er_err_name(rc), er_store_last_error(f->s));
  return fenced;
}

void assert_json_eq(const json_t *a, const json_t *b) {
  if (!a || !b) {
    assert_null(a);
    assert_null(b);
    return;
  }
  if (!json_equal(a, b)) {
    char *x = json_dumps(a, JSON_ENCODE_ANY), *y = json_dumps(b, JSON_ENCODE_ANY);
    fail_msg("JSON differs: %s vs %s", x, y);
  }
}

void reap(pid_t pid) {
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
}

/* A minimal valid record for queue, due now. */
er_task_rec_t *mk_on(const fx_t *f, const char *queue) {
  er_task_rec_t *r = mk(f, "t");
  er_free(r->queue);
  r->queue = er_strdup(queue);
  return r;
}

/* A task of queue, enqueued and reserved through s (worker "w-wake", a
 * lease of a minute); returns it. */
er_task_rec_t *running_on(er_store_t *s, const fx_t *f, const char *queue) {
  er_task_rec_t *r = mk_on(f, queue);
  assert_int_equal(er_store_enqueue(s, &r, 1, 0, NULL), 0);
  er_task_rec_free(r);
  const char *qs[] = {queue};
  er_reserve_req_t req = {qs, 1, "w-wake", now_ms() + 1, 60000, 1};
  er_task_rec_t **got = NULL;
  size_t n = 0;
  assert_int_equal(er_store_reserve(s, &req, &got, &n), 0);
  assert_int_equal(n, 1);
  r = got[0];
  er_free(got);
  return r;
}

er_mut_t mut_doc_put(const char *coll, const char *key, json_t *v, int64_t if_version) {
  return (er_mut_t){.kind = ER_MUT_DOC_PUT, .coll = coll, .key = key, .value = v,
                    .if_version = if_version};
}

er_mut_t mut_counter_add(const char *coll, const char *key, int64_t delta, int64_t if_value) {
  return (er_mut_t){.kind = ER_MUT_COUNTER_ADD, .coll = coll, .key = key, .delta = delta,
                    .if_value = if_value};
}
