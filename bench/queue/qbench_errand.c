/*
 * qbench_errand: errand's side of the queue benchmark, through the public API.
 *
 *   qbench_errand enqueue --store URL -n N [--batch B] [--seconds S]
 *       N no-op sends from one client: er_send one at a time (each a durable
 *       commit; stops early after S seconds, for sync=full), or
 *       er_send_batch of B. Prints enqueue_rate (tasks/s).
 *   qbench_errand drain --store URL -n N --errand BIN --lib LIB
 *                 [--pool P] [-c C] [--procs K]
 *       Enqueues N (untimed, batches of 1000), then starts K `errand worker`
 *       processes (--pool P -c C) and times until all N are SUCCESS.
 *       Prints drain_rate (N / time from starting the workers), drain_first_ms
 *       (start to the first task done) and drain_steady_rate (N-1 / time from
 *       the first task done to the last).
 *   qbench_errand rtt --store URL -n N --errand BIN --lib LIB [--pool P] [-c C]
 *       Starts one worker and, once it answers, times N sequential round trips
 *       er_send + er_result(id, timeout). Prints p50_ms, p99_ms, mean_ms, max_ms.
 *
 * The end of a drain is seen by er_status on the first and the last id, looked
 * at every 2 ms as the peers' drains are, then confirmed by er_store_stats:
 * all N SUCCESS. The round trip waits with er_result, as a user would.
 */
#include <errand.h>
#include <errand/client.h>
#include <errand/store.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qbench_util.h"

static const char *g_store, *g_bin, *g_lib, *g_pool;
static int g_conc = 2;

static er_client_t *open_client(void) {
  er_client_t *c;
  char msg[512] = "";
  if (er_client_open(g_store, &c, msg, sizeof msg) < 0) qb_die("cannot open %s: %s", g_store, msg);
  return c;
}

static void send1(er_client_t *c, er_id_t *id) {
  int rc = er_send(c, "noop", NULL, NULL, NULL, id);
  if (rc < 0) qb_die("er_send: %s", er_client_last_error(c));
}

/* Sends n tasks in batches of b; ids (may be NULL) gets the first and last. */
static void send_batches(er_client_t *c, long n, long b, er_id_t *first, er_id_t *last) {
  er_send_req_t *reqs = calloc((size_t)b, sizeof *reqs);
  er_id_t *ids = calloc((size_t)b, sizeof *ids);
  if (!reqs || !ids) qb_die("out of memory");
  for (long i = 0; i < b; i++) reqs[i].task = "noop";
  for (long done = 0; done < n;) {
    long k = n - done < b ? n - done : b;
    if (er_send_batch(c, reqs, (size_t)k, ids) < 0)
      qb_die("er_send_batch: %s", er_client_last_error(c));
    if (done == 0 && first) *first = ids[0];
    done += k;
    if (done == n && last) *last = ids[k - 1];
  }
  free(reqs);
  free(ids);
}

static int cmd_enqueue(long n, long batch, double max_s) {
  er_client_t *c = open_client();
  double t0 = qb_now();
  if (batch <= 1) {
    double deadline = t0 + max_s;
    for (long i = 0; i < n; i++) {
      send1(c, NULL);
      if ((i & 63) == 63 && qb_now() > deadline) n = i + 1; /* stop here */
    }
  } else {
    send_batches(c, n, batch, NULL, NULL);
  }
  double dt = qb_now() - t0;
  er_client_close(c);
  qb_result(NULL, "enqueue_rate", (double)n / dt);
  qb_result(NULL, "enqueue_seconds", dt);
  return 0;
}

static pid_t start_worker(void) {
  char conc[16];
  snprintf(conc, sizeof conc, "%d", g_conc);
  char *argv[] = {(char *)g_bin, "worker", "-A", (char *)g_lib, "--store", (char *)g_store,
                  "--pool", (char *)g_pool, "-c", conc, "--quiet", NULL};
  return qb_spawn(argv);
}

/* Waits for the task's outcome; dies on anything but SUCCESS. */
static void wait_success(er_client_t *c, const char *id, int64_t timeout_ms) {
  json_t *res = NULL, *err = NULL;
  int rc = er_result(c, id, NULL, timeout_ms, &res, &err);
  if (rc < 0) qb_die("er_result %s: %s", id, er_client_last_error(c));
  json_decref(res);
  json_decref(err);
}

/* Sleeps 2 ms between looks until the task is finished; dies unless SUCCESS. */
static void poll_finished(er_client_t *c, const char *id, double timeout_s) {
  double deadline = qb_now() + timeout_s;
  for (;;) {
    er_task_rec_t *r = NULL;
    if (er_status(c, id, NULL, &r) < 0) qb_die("er_status %s: %s", id, er_client_last_error(c));
    er_task_state_t st = r->state;
    er_task_rec_free(r);
    if (st == ER_STATE_SUCCESS) return;
    if (er_state_finished(st)) qb_die("task %s ended %s", id, er_state_name(st));
    if (qb_now() > deadline) qb_die("task %s not done after %.0f s", id, timeout_s);
    qb_sleep_ms(2);
  }
}

static long count_state(er_store_t *s, const char *state) {
  json_t *st = NULL;
  if (er_store_stats(s, &st) < 0) qb_die("er_store_stats: %s", er_store_last_error(s));
  long n = (long)json_integer_value(json_object_get(json_object_get(st, "total"), state));
  json_decref(st);
  return n;
}

static int cmd_drain(long n, int procs) {
  er_client_t *c = open_client();
  er_id_t first, last;
  send_batches(c, n, 1000, &first, &last);
  er_store_t *s;
  char msg[512] = "";
  if (er_store_open(g_store, &s, msg, sizeof msg) < 0) qb_die("store: %s", msg);
  if (count_state(s, "PENDING") != n) qb_die("expected %ld pending tasks", n);

  pid_t pids[16];
  if (procs < 1 || procs > 16) qb_die("--procs 1..16");
  double cpu0 = qb_self_cpu();
  double t0 = qb_now();
  for (int i = 0; i < procs; i++) pids[i] = start_worker();
  /* Looked at every 2 ms, as the peers' drains are: er_result's own wait
   * (inotify, then data_version every millisecond while commits go on) costs
   * this process a third of a core during a drain, taken from the workers. */
  poll_finished(c, first.text, 120);
  double t_first = qb_now();
  poll_finished(c, last.text, 600);
  long ok;
  while ((ok = count_state(s, "SUCCESS")) < n) {
    if (count_state(s, "FAILURE") > 0) qb_die("some tasks failed");
    qb_sleep_ms(1);
  }
  double t_done = qb_now();
  double cpu1 = qb_self_cpu();
  for (int i = 0; i < procs; i++) qb_stop_child(pids[i], 10);
  er_store_close(s);
  er_client_close(c);
  qb_result(NULL, "drain_rate", (double)n / (t_done - t0));
  qb_result(NULL, "drain_seconds", t_done - t0);
  qb_result(NULL, "drain_first_ms", 1e3 * (t_first - t0));
  qb_result(NULL, "drain_steady_rate", (double)(n - 1) / (t_done - t_first));
  qb_result(NULL, "harness_cpu_s", cpu1 - cpu0);
  return 0;
}

static int cmd_rtt(long n) {
  er_client_t *c = open_client();
  pid_t pid = start_worker();
  er_id_t id;
  /* The worker is up once it has run one; then warm up. */
  send1(c, &id);
  wait_success(c, id.text, 30000);
  for (int i = 0; i < 100; i++) {
    send1(c, &id);
    wait_success(c, id.text, 10000);
  }
  double *lat = calloc((size_t)n, sizeof *lat);
  if (!lat) qb_die("out of memory");
  double t_all = qb_now();
  for (long i = 0; i < n; i++) {
    double t0 = qb_now();
    send1(c, &id);
    wait_success(c, id.text, 10000);
    lat[i] = qb_now() - t0;
  }
  t_all = qb_now() - t_all;
  qb_stop_child(pid, 10);
  er_client_close(c);
  qb_latency_results(NULL, lat, (size_t)n);
  qb_result(NULL, "rtt_per_second", (double)n / t_all);
  free(lat);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: qbench_errand enqueue|drain|rtt --store URL -n N ...\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  g_store = qb_opt(argc, argv, "--store", NULL);
  if (!g_store) qb_die("--store URL is required");
  g_bin = qb_opt(argc, argv, "--errand", "errand");
  g_lib = qb_opt(argc, argv, "--lib", NULL);
  g_pool = qb_opt(argc, argv, "--pool", "prefork");
  g_conc = (int)qb_opt_long(argc, argv, "-c", 2);
  long n = qb_opt_long(argc, argv, "-n", 10000);
  if (n < 2) qb_die("-n must be at least 2");
  const char *cmd = argv[1];
  if (strcmp(cmd, "enqueue") == 0)
    return cmd_enqueue(n, qb_opt_long(argc, argv, "--batch", 1),
                       (double)qb_opt_long(argc, argv, "--seconds", 600));
  if (!g_lib) qb_die("--lib LIB (the no-op task library) is required");
  if (strcmp(cmd, "drain") == 0) return cmd_drain(n, (int)qb_opt_long(argc, argv, "--procs", 1));
  if (strcmp(cmd, "rtt") == 0) return cmd_rtt(n);
  qb_die("unknown command %s", cmd);
}
