/*
 * qbench_timers: how late the worker starts delayed work, and how long a
 * revoke takes to reach a running task, beside a raw reference in the same
 * run.
 *
 *   qbench_timers --store URL --errand BIN --lib LIB [-n N] [--revokes R]
 *
 * Starts one `errand worker --pool threads -c 2` on the store, then:
 *   delayed   N tasks sent one by one, every 10 ms, each with a countdown of
 *             50..250 ms: lateness = started_ms - eta_ms from the store (the
 *             reservation's time against the due time), p50 and p99.
 *   uv timer  the reference: N libuv timers of the same delays (10 ms apart)
 *             on an idle loop in this process, lateness of each callback
 *             against its due time (it may be negative: libuv counts whole
 *             milliseconds).
 *   revoke    R times: a `spin` task that checks er_task_check every ms is
 *             started, then revoked; time from er_revoke's return to REVOKED
 *             seen by er_status (looked at every ms), p50 and p99.
 * Prints "R<TAB>key<TAB>value" lines (milliseconds) and a short table.
 */
#include <errand.h>
#include <errand/client.h>
#include <errand/store.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "qbench_util.h"

static void percentiles(const char *name, double *v_ms, size_t n) {
  double p50 = qb_percentile(v_ms, n, 50), p99 = qb_percentile(v_ms, n, 99);
  char key[64];
  snprintf(key, sizeof key, "%s_p50_ms", name);
  qb_result("", key, p50);
  snprintf(key, sizeof key, "%s_p99_ms", name);
  qb_result("", key, p99);
  fprintf(stderr, "%-10s p50 %8.2f ms   p99 %8.2f ms   (n=%zu)\n", name, p50, p99, n);
}

/* ---- the reference: uv timers ---- */

typedef struct {
  uv_timer_t t;
  uint64_t due_ns;
  double *out;
} ref_t;

static void on_ref(uv_timer_t *h) {
  ref_t *r = (ref_t *)h;
  *r->out = (double)((int64_t)(uv_hrtime() - r->due_ns)) / 1e6;
  uv_close((uv_handle_t *)h, NULL);
}

/* The same delays, 10 ms apart as the sends are, all set at once on an idle
 * loop: what a timer alone costs. */
static void reference(long n, const double *delays_ms, double *late_ms) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  ref_t *refs = calloc((size_t)n, sizeof *refs);
  uv_update_time(&loop);
  uint64_t t0 = uv_hrtime();
  for (long i = 0; i < n; i++) {
    uint64_t delay_ms = (uint64_t)(10 * i + delays_ms[i]);
    uv_timer_init(&loop, &refs[i].t);
    refs[i].due_ns = t0 + delay_ms * 1000000u;
    refs[i].out = &late_ms[i];
    uv_timer_start(&refs[i].t, on_ref, delay_ms, 0);
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  free(refs);
}

/* ---- the worker ---- */

static pid_t start_worker(const char *bin, const char *lib, const char *store) {
  pid_t pid = fork();
  if (pid == 0) {
    execl(bin, bin, "worker", "-A", lib, "--store", store, "--pool", "threads", "--concurrency",
          "2", "--quiet", (char *)NULL);
    _exit(127);
  }
  return pid;
}

static er_task_state_t state_of(er_client_t *c, const char *id, er_task_rec_t **keep) {
  er_task_rec_t *r = NULL;
  if (er_status(c, id, NULL, &r) < 0) qb_die("er_status: %s", er_client_last_error(c));
  er_task_state_t s = r->state;
  if (keep)
    *keep = r;
  else
    er_task_rec_free(r);
  return s;
}

static void delayed(er_client_t *c, long n, const double *delays_ms, double *late_ms) {
  er_id_t *ids = calloc((size_t)n, sizeof *ids);
  for (long i = 0; i < n; i++) {
    er_send_opts_t o = {.countdown_ms = (int64_t)delays_ms[i]};
    if (er_send(c, "tick", NULL, NULL, &o, &ids[i]) < 0)
      qb_die("er_send: %s", er_client_last_error(c));
    qb_sleep_ms(10);
  }
  for (long i = 0; i < n; i++) {
    er_task_rec_t *r = NULL;
    double t0 = qb_now();
    while (state_of(c, ids[i].text, NULL) != ER_STATE_SUCCESS) {
      if (qb_now() - t0 > 30) qb_die("task %s did not run", ids[i].text);
      qb_sleep_ms(2);
    }
    state_of(c, ids[i].text, &r);
    late_ms[i] = (double)(r->started_ms - r->eta_ms);
    er_task_rec_free(r);
  }
  free(ids);
}

static void revokes(er_client_t *c, long n, double *lat_ms) {
  for (long i = 0; i < n; i++) {
    er_id_t id;
    if (er_send(c, "spin", NULL, NULL, NULL, &id) < 0) qb_die("er_send: %s", er_client_last_error(c));
    while (state_of(c, id.text, NULL) != ER_STATE_STARTED) qb_sleep_ms(1);
    qb_sleep_ms(50); /* running, not just reserved */
    if (er_revoke(c, id.text) < 0) qb_die("er_revoke: %s", er_client_last_error(c));
    double t0 = qb_now();
    while (state_of(c, id.text, NULL) != ER_STATE_REVOKED) {
      if (qb_now() - t0 > 60) qb_die("task %s was not revoked", id.text);
      qb_sleep_ms(1);
    }
    lat_ms[i] = (qb_now() - t0) * 1e3;
  }
}

int main(int argc, char **argv) {
  const char *store = qb_opt(argc, argv, "--store", NULL);
  const char *bin = qb_opt(argc, argv, "--errand", NULL);
  const char *lib = qb_opt(argc, argv, "--lib", NULL);
  long n = qb_opt_long(argc, argv, "-n", 200);
  long nrev = qb_opt_long(argc, argv, "--revokes", 10);
  if (!store || !bin || !lib) qb_die("usage: qbench_timers --store URL --errand BIN --lib LIB [-n N]");
  double *delays = calloc((size_t)n, sizeof *delays);
  double *late = calloc((size_t)n, sizeof *late);
  double *ref = calloc((size_t)n, sizeof *ref);
  double *rev = calloc((size_t)(nrev ? nrev : 1), sizeof *rev);
  srand(42);
  for (long i = 0; i < n; i++) delays[i] = 50 + rand() % 200;

  er_client_t *c = NULL;
  char msg[512] = "";
  if (er_client_open(store, &c, msg, sizeof msg) < 0) qb_die("cannot open %s: %s", store, msg);
  pid_t w = start_worker(bin, lib, store);
  qb_sleep_ms(500);
  fprintf(stderr, "store %s\n", store);
  reference(n, delays, ref);
  percentiles("uv_timer", ref, (size_t)n);
  delayed(c, n, delays, late);
  percentiles("delayed", late, (size_t)n);
  revokes(c, nrev, rev);
  percentiles("revoke", rev, (size_t)nrev);
  qb_stop_child(w, 10);
  er_client_close(c);
  free(delays);
  free(late);
  free(ref);
  free(rev);
  return 0;
}
