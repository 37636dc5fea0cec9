/* Precise wake-ups and the next due time, against one store URL like
 * conformance.c (no URL: a fresh SQLite file per test):
 *
 *   test_store_wake [URL]      (or ERRAND_TEST_STORE=URL)
 *
 * A store that answers ER_ENOTSUP for watch or next_due has the test
 * skipped. Changes are made through a second handle, as another process
 * would. A watcher that must NOT be woken is checked by what it reads once
 * a later event it does watch has arrived: a backend delivers in order, so
 * by then the unwanted event would have been seen. */
#include "conformance.h"

#define WAIT_MS 10000

/* What a watcher read, summed over reads. */
typedef struct seen {
  int work_reads, control_reads, overflow_reads, reads;
  char ids[16][ER_ID_LEN + 1];
  size_t nids;
} seen_t;

static void skip_unless_supported(int rc) {
  if (rc == ER_ENOTSUP) skip();
  assert_int_equal(rc, 0);
}

/* Blocks until s's wake-up fd is readable (or the wait times out). */
static void wait_wake(er_store_t *s, int timeout_ms) {
  int fd = er_store_wakeup_fd(s);
  if (fd < 0) {
    er_store_wait_change(s, timeout_ms);
    return;
  }
  struct pollfd p = {fd, POLLIN, 0};
  poll(&p, 1, timeout_ms);
}

static void read_into(er_store_t *s, seen_t *v) {
  er_wakeups_t w;
  assert_int_equal(er_store_read_wakeups(s, &w), 0);
  v->reads++;
  v->work_reads += w.work;
  v->control_reads += w.control;
  v->overflow_reads += w.finished_overflow;
  for (size_t i = 0; i < w.nfinished; i++) {
    assert_true(v->nids < 16);
    snprintf(v->ids[v->nids++], ER_ID_LEN + 1, "%s", w.finished[i]);
  }
  er_wakeups_clear(&w);
}

/* Reads s's wake-ups until done(v) or WAIT_MS pass; fails on the timeout. */
static void read_until(er_store_t *s, seen_t *v, bool (*done)(const seen_t *)) {
  int64_t end = now_ms() + WAIT_MS;
  while (!done(v)) {
    if (now_ms() > end) fail_msg("no wake-up within %d ms", WAIT_MS);
    wait_wake(s, 200);
    read_into(s, v);
  }
}

static bool got_id(const seen_t *v) { return v->nids > 0; }
static bool got_work(const seen_t *v) { return v->work_reads > 0; }
static bool got_control(const seen_t *v) { return v->control_reads > 0; }

/* Skips the test (before it allocates anything) when f's store has no
 * precise wake-ups and next_due. */
static void need_support(fx_t *f) {
  er_watch_t none = {NULL, 0, false, false};
  skip_unless_supported(er_store_watch(f->s, &none));
  int64_t d;
  skip_unless_supported(er_store_next_due(f->s, NULL, 0, &d));
}

/* Starts watching w on f->s and reads the first look away. */
static void watch(fx_t *f, const er_watch_t *w) {
  er_store_wakeup_fd(f->s);
  skip_unless_supported(er_store_watch(f->s, w));
  seen_t first = {0};
  read_into(f->s, &first);
  assert_int_equal(first.nids, 0); /* the first read starts the record */
}

static void enqueue_on(er_store_t *s, const fx_t *f, const char *queue) {
  er_task_rec_t *r = mk_on(f, queue);
  assert_int_equal(er_store_enqueue(s, &r, 1, 0, NULL), 0);
  er_task_rec_free(r);
}

static void succeed(er_store_t *s, const er_task_rec_t *r) {
  json_t *res = json_integer(1);
  er_completion_t c = {r->id, r->attempt, ER_STATE_SUCCESS, res, NULL, 0, now_ms()};
  bool fenced = true;
  assert_int_equal(er_store_complete(s, &c, 1, &fenced), 0);
  assert_false(fenced);
  json_decref(res);
}

static void heartbeat(er_store_t *s, const fx_t *f) {
  json_t *info = json_pack("{s:s}", "id", f->tag);
  assert_int_equal(er_store_heartbeat(s, info, now_ms(), 60000), 0);
  json_decref(info);
}

static char *queue_named(const fx_t *f, const char *what) {
  char buf[128];
  snprintf(buf, sizeof buf, "%s-%s", f->queue, what);
  return er_strdup(buf);
}

/* A watcher of queue A is not woken by work on B nor by a heartbeat; it
 * hears of a finished task by its id, exactly once; work on A wakes it. */
static void test_watch_queue(void **state) {
  fx_t *f = *state;
  need_support(f);
  char *qa = queue_named(f, "a"), *qb = queue_named(f, "b"), *qc = queue_named(f, "c");
  er_store_t *o = open_with(f, "");
  er_task_rec_t *x = running_on(o, f, qc);
  const char *qs[] = {qa};
  er_watch_t w = {qs, 1, true, false};
  watch(f, &w);

  enqueue_on(o, f, qb);
  heartbeat(o, f);
  succeed(o, x); /* the event we wait for: after the two we must not see */
  seen_t v = {0};
  read_until(f->s, &v, got_id);
  assert_int_equal(v.work_reads, 0);
  assert_int_equal(v.overflow_reads, 0);
  assert_int_equal(v.nids, 1);
  assert_string_equal(v.ids[0], x->id);

  seen_t v2 = {0};
  enqueue_on(o, f, qa);
  read_until(f->s, &v2, got_work);
  assert_int_equal(v2.nids, 0); /* nothing finished since */

  er_task_rec_free(x);
  er_store_close(o);
  er_free(qa);
  er_free(qb);
  er_free(qc);
}

/* With `finished` not watched, no finished id is listed. */
static void test_finished_unwatched(void **state) {
  fx_t *f = *state;
  need_support(f);
  char *qa = queue_named(f, "a"), *qc = queue_named(f, "c");
  er_store_t *o = open_with(f, "");
  er_task_rec_t *x = running_on(o, f, qc);
  const char *qs[] = {qa};
  er_watch_t w = {qs, 1, false, false};
  watch(f, &w);
  succeed(o, x);
  enqueue_on(o, f, qa); /* arrives after the finish */
  seen_t v = {0};
  read_until(f->s, &v, got_work);
  assert_int_equal(v.nids, 0);
  assert_int_equal(v.overflow_reads, 0);
  er_task_rec_free(x);
  er_store_close(o);
  er_free(qa);
  er_free(qc);
}

/* Control fires when a running task is revoked; finishing tasks and queued
 * work do not wake a watcher of control alone. */
static void test_control(void **state) {
  fx_t *f = *state;
  need_support(f);
  char *qc = queue_named(f, "c");
  er_store_t *o = open_with(f, "");
  er_task_rec_t *x = running_on(o, f, qc);
  er_task_rec_t *y = running_on(o, f, qc);
  er_watch_t w = {NULL, 0, false, true};
  watch(f, &w);
  succeed(o, y);
  enqueue_on(o, f, qc);
  er_task_state_t was;
  assert_int_equal(er_store_revoke(o, x->id, &was), 0);
  assert_int_equal(was, ER_STATE_STARTED);
  seen_t v = {0};
  read_until(f->s, &v, got_control);
  assert_int_equal(v.work_reads, 0);
  assert_int_equal(v.nids, 0);
  er_task_rec_free(x);
  er_task_rec_free(y);
  er_store_close(o);
  er_free(qc);
}

/* A store of this test's own: next_due looks at leases of every queue. */
static er_store_t *own_store(fx_t *f) {
  if (is_sqlite(f)) {
    if (!f->dir[0]) skip(); /* a shared SQLite file: other tests' leases */
    return open_with(f, "");
  }
  /* the same server under a prefix of its own (in place of the URL's) */
  char url[700], err[256];
  snprintf(url, sizeof url, "%.*s?prefix=due-%s", (int)strcspn(f->base, "?"), f->base, f->tag);
  er_store_t *s = NULL;
  int rc = er_store_open(url, &s, err, sizeof err);
  if (rc) fail_msg("open %s: %s", url, err);
  return s;
}

static int64_t due(er_store_t *s, const char *const *qs, size_t n) {
  int64_t d = -1;
  skip_unless_supported(er_store_next_due(s, qs, n, &d));
  return d;
}

/* next_due: the earliest eta of a delayed task of the queues asked, and the
 * earliest lease end of any queue; 0 when there is none. */
static void test_next_due(void **state) {
  fx_t *f = *state;
  need_support(f);
  er_store_t *s = own_store(f);
  char *qa = queue_named(f, "a"), *qb = queue_named(f, "b");
  const char *a[] = {qa}, *b[] = {qb}, *ab[] = {qa, qb};
  assert_int_equal(due(s, a, 1), 0);
  int64_t t = now_ms();
  er_task_rec_t *late = mk_on(f, qa), *soon = mk_on(f, qa);
  late->eta_ms = t + 600000;
  soon->eta_ms = t + 300000;
  assert_int_equal(er_store_enqueue(s, &late, 1, 0, NULL), 0);
  assert_int_equal(due(s, a, 1), t + 600000);
  assert_int_equal(due(s, b, 1), 0); /* not asked */
  assert_int_equal(er_store_enqueue(s, &soon, 1, 0, NULL), 0);
  assert_int_equal(due(s, a, 1), t + 300000);
  assert_int_equal(due(s, ab, 2), t + 300000);

  /* a lease on B that ends first counts for every queue */
  er_task_rec_t *r = mk_on(f, qb);
  assert_int_equal(er_store_enqueue(s, &r, 1, 0, NULL), 0);
  er_reserve_req_t req = {b, 1, "w-due", r->eta_ms, 100000, 1};
  er_task_rec_t **got = NULL;
  size_t n = 0;
  assert_int_equal(er_store_reserve(s, &req, &got, &n), 0);
  assert_int_equal(n, 1);
  int64_t lease_end = r->eta_ms + 100000;
  assert_int_equal(due(s, a, 1), lease_end);
  assert_int_equal(due(s, NULL, 0), lease_end);

  /* done: back to the delayed tasks */
  succeed(s, got[0]);
  assert_int_equal(due(s, a, 1), t + 300000);
  assert_int_equal(due(s, NULL, 0), 0);
  er_task_rec_free_array(got, n);
  er_task_rec_free(r);
  er_task_rec_free(late);
  er_task_rec_free(soon);
  er_free(qa);
  er_free(qb);
  er_store_close(s);
}

int main(int argc, char **argv) {
  g_base = argc > 1 ? argv[1] : getenv("ERRAND_TEST_STORE");
  if (g_base && !*g_base) g_base = NULL;
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_watch_queue),
      T(test_finished_unwatched),
      T(test_control),
      T(test_next_due),
  };
  return cmocka_run_group_tests_name(g_base ? g_base : "store wake-ups (sqlite)", tests, NULL,
                                     NULL);
}
