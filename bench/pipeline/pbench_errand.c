/*
 * pbench_errand: errand's side of the pipeline benchmark, through the public
 * API.
 *
 *   pbench_errand --store URL --errand BIN --pipelines LIB --tasks LIB
 *                 [--fan N] [--chain M] [--plain K] [-c C] [--redis-port P]
 *                 [--timeout S]
 *
 * Starts one `errand worker --pool prefork -c C` (default 2, Celery's shape)
 * loading both libraries, waits until it has run a small pipeline, then runs
 * each shape (0 skips it) and times it from the call that starts it to its
 * final result:
 *
 *   fan    fan_sum [N] (examples/pipelines.c): N Return children, one
 *          Sum waiting on all their slots; N(N-1)/2. N + 2 stages.
 *   chain  chain [M]: M chain.step stages, each waiting on the one before and
 *          adding 1; M. M + 1 stages.
 *   plain  K `add` tasks (libpbench_tasks.so), sent in batches of 1000 on
 *          their own queue, done when the store counts K SUCCESS there.
 *
 * The end of a pipeline is its root's default output filled (its slot read
 * every 2 ms); the counters below are read once the root is done (its
 * finalize committed), so they hold the whole tree's cost.
 *
 * Store cost of each shape, from the first call to the end:
 *   commits     SQLite commits of every process (with libpbench_commits.so
 *               preloaded and $PBENCH_COMMITS set; see pbench_counter.h)
 *   evalsha     with --redis-port, the server's EVALSHA calls (each store
 *               call on Redis is one script), from INFO commandstats
 *   redis_cmds  and every command it ran, those inside scripts included
 * less what this harness's own looks cost (each kind of look is measured
 * after the run, 20 times with the worker idle) and what two readings of
 * the counters cost with nothing in between. The worker's own housekeeping
 * (heartbeats, lease checks) meanwhile is counted: it is part of running.
 *
 * Prints "R<TAB><shape>.<key><TAB>value": seconds, units (stages or tasks),
 * commits, evalsha, redis_cmds.
 */
#include <errand.h>
#include <errand/client.h>
#include <errand/pipeline.h>
#include <errand/store.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../queue/qbench_util.h"
#include "pbench_counter.h"

#define PLAIN_QUEUE "pbench.plain"
#define POLL_MS 2

static const char *g_store, *g_bin, *g_pipes, *g_tasks;
static int g_conc = 2;
static long g_redis_port;
static double g_timeout = 600;
static uint64_t *g_commits;
static er_client_t *g_client;
static er_store_t *g_st;

/* ---- the store's counters ---- */

typedef struct counts {
  double commits, evalsha, cmds;
} counts_t;

static void read_redis(counts_t *c) {
  char cmd[128], line[512];
  snprintf(cmd, sizeof cmd, "redis-cli -p %ld info commandstats", g_redis_port);
  FILE *p = popen(cmd, "r");
  if (!p) qb_die("cannot run redis-cli");
  while (fgets(line, sizeof line, p)) {
    char *calls = strstr(line, ":calls=");
    if (strncmp(line, "cmdstat_", 8) != 0 || !calls) continue;
    double n = strtod(calls + 7, NULL);
    c->cmds += n;
    if (strncmp(line, "cmdstat_evalsha:", 16) == 0) c->evalsha += n;
  }
  if (pclose(p) != 0) qb_die("redis-cli info commandstats failed");
}

static counts_t read_counts(void) {
  counts_t c = {0, 0, 0};
  if (g_commits) c.commits = (double)__atomic_load_n(g_commits, __ATOMIC_RELAXED);
  if (g_redis_port) read_redis(&c);
  return c;
}

static counts_t diff(counts_t a, counts_t b) {
  return (counts_t){b.commits - a.commits, b.evalsha - a.evalsha, b.cmds - a.cmds};
}

/* ---- looks at the store, counted to take their cost out ---- */

typedef struct look {
  const char *what;
  bool (*fn)(const char *arg); /* true: done */
  long calls;
} look_t;

/* The slot arg filled (a root's default output). */
static bool slot_filled(const char *sid) {
  json_t *v = NULL;
  int rc = er_store_doc_get(g_st, "pipe.slot", sid, &v, NULL);
  if (rc < 0) qb_die("reading slot %s: %s", sid, er_store_last_error(g_st));
  bool done = json_is_true(json_object_get(v, "filled"));
  json_decref(v);
  return done;
}

static const char *root_status(const char *root, json_t **doc) {
  if (er_pipeline_get(g_client, root, doc) < 0)
    qb_die("er_pipeline_get %s: %s", root, er_client_last_error(g_client));
  const char *st = json_string_value(json_object_get(*doc, "status"));
  return st ? st : "?";
}

static bool root_done(const char *root) {
  json_t *d = NULL;
  const char *st = root_status(root, &d);
  if (strcmp(st, "aborted") == 0)
    qb_die("pipeline %s aborted: %s", root,
           json_string_value(json_object_get(d, "abort_message")));
  bool done = strcmp(st, "done") == 0;
  json_decref(d);
  return done;
}

static long g_plain_want;
static bool plain_done(const char *queue) {
  json_t *st = NULL;
  if (er_store_stats(g_st, &st) < 0) qb_die("er_store_stats: %s", er_store_last_error(g_st));
  json_t *q = json_object_get(json_object_get(st, "queues"), queue);
  long ok = (long)json_integer_value(json_object_get(q, "SUCCESS"));
  long bad = (long)json_integer_value(json_object_get(q, "FAILURE"));
  json_decref(st);
  if (bad) qb_die("%ld add tasks failed", bad);
  return ok >= g_plain_want;
}

static look_t g_looks[] = {{"slot", slot_filled, 0}, {"root", root_done, 0},
                           {"stats", plain_done, 0}};
enum { LOOK_SLOT, LOOK_ROOT, LOOK_STATS, NLOOKS };
static counts_t g_look_cost[NLOOKS], g_read_cost;

/* Looks every ms milliseconds until done; dies after g_timeout. */
static void wait_for(int kind, const char *arg, int ms) {
  double deadline = qb_now() + g_timeout;
  look_t *l = &g_looks[kind];
  for (;;) {
    l->calls++;
    if (l->fn(arg)) return;
    if (qb_now() > deadline) qb_die("%s %s: not done after %.0f s", l->what, arg, g_timeout);
    qb_sleep_ms(ms);
  }
}

/* What one look of each kind, and two readings of the counters, cost (the
 * worker idle): measured once, after the shapes ran, on their last ids. */
static void measure_looks(const char *args[NLOOKS]) {
  counts_t a = read_counts(), b = read_counts();
  g_read_cost = diff(a, b);
  for (int k = 0; k < NLOOKS; k++) {
    if (!args[k]) continue;
    counts_t c0 = read_counts();
    for (int i = 0; i < 20; i++) g_looks[k].fn(args[k]);
    counts_t d = diff(c0, read_counts());
    g_look_cost[k] = (counts_t){(d.commits - g_read_cost.commits) / 20,
                                (d.evalsha - g_read_cost.evalsha) / 20,
                                (d.cmds - g_read_cost.cmds) / 20};
  }
}

/* ---- the shapes ---- */

typedef struct shape {
  const char *name;
  double seconds, units;
  counts_t raw;
  long looks[NLOOKS];
} shape_t;

static void begin(shape_t *sh, counts_t *c0) {
  for (int k = 0; k < NLOOKS; k++) g_looks[k].calls = 0;
  *c0 = read_counts();
}

static void end(shape_t *sh, counts_t c0) {
  sh->raw = diff(c0, read_counts());
  for (int k = 0; k < NLOOKS; k++) sh->looks[k] = g_looks[k].calls;
}

/* Starts pipeline name [n], times it to its output, checks the value. */
static void run_pipeline(shape_t *sh, const char *name, long n, long long want,
                         char root_out[ER_ID_LEN + 1]) {
  counts_t c0;
  begin(sh, &c0);
  json_t *args = json_pack("[i]", (int)n);
  er_id_t root;
  er_pipeline_opts_t o = {.unchecked = true}; /* the worker has it */
  double t0 = qb_now();
  if (er_pipeline_start(g_client, name, args, NULL, &o, &root) < 0)
    qb_die("er_pipeline_start %s: %s", name, er_client_last_error(g_client));
  json_decref(args);
  json_t *doc = NULL;
  root_status(root.text, &doc);
  g_looks[LOOK_ROOT].calls++;
  char sid[ER_ID_LEN + 1];
  snprintf(sid, sizeof sid, "%s",
           json_string_value(json_object_get(json_object_get(doc, "outputs"), "default")));
  json_decref(doc);
  wait_for(LOOK_SLOT, sid, POLL_MS);
  sh->seconds = qb_now() - t0;
  wait_for(LOOK_ROOT, root.text, 20); /* its finalize is part of its cost */
  end(sh, c0);
  json_t *v = NULL;
  if (er_pipeline_output(g_client, root.text, NULL, &v) < 0)
    qb_die("er_pipeline_output: %s", er_client_last_error(g_client));
  if (json_integer_value(v) != want)
    qb_die("%s [%ld] gave %lld, not %lld", name, n, (long long)json_integer_value(v), want);
  json_decref(v);
  memcpy(root_out, root.text, ER_ID_LEN + 1);
}

static void run_plain(shape_t *sh, long n) {
  enum { BATCH = 1000 };
  er_send_req_t reqs[BATCH];
  er_send_opts_t o = {.queue = PLAIN_QUEUE};
  json_t *args[BATCH];
  for (long i = 0; i < BATCH; i++) {
    args[i] = json_pack("[i, i]", (int)i, 1);
    reqs[i] = (er_send_req_t){.task = "add", .args = args[i], .opts = &o};
  }
  g_plain_want = n;
  counts_t c0;
  begin(sh, &c0);
  double t0 = qb_now();
  for (long done = 0; done < n;) {
    long k = n - done < BATCH ? n - done : BATCH;
    if (er_send_batch(g_client, reqs, (size_t)k, NULL) < 0)
      qb_die("er_send_batch: %s", er_client_last_error(g_client));
    done += k;
  }
  wait_for(LOOK_STATS, PLAIN_QUEUE, POLL_MS);
  sh->seconds = qb_now() - t0;
  end(sh, c0);
  for (long i = 0; i < BATCH; i++) json_decref(args[i]);
}

static void report(const shape_t *sh) {
  counts_t c = sh->raw;
  c.commits -= g_read_cost.commits;
  c.evalsha -= g_read_cost.evalsha;
  c.cmds -= g_read_cost.cmds;
  for (int k = 0; k < NLOOKS; k++) {
    c.commits -= (double)sh->looks[k] * g_look_cost[k].commits;
    c.evalsha -= (double)sh->looks[k] * g_look_cost[k].evalsha;
    c.cmds -= (double)sh->looks[k] * g_look_cost[k].cmds;
  }
  char p[64];
  snprintf(p, sizeof p, "%s.", sh->name);
  qb_result(p, "seconds", sh->seconds);
  qb_result(p, "units", sh->units);
  if (g_commits) qb_result(p, "commits", c.commits);
  if (g_redis_port) {
    qb_result(p, "evalsha", c.evalsha);
    qb_result(p, "redis_cmds", c.cmds);
    qb_result(p, "harness_looks", (double)(sh->looks[0] + sh->looks[1] + sh->looks[2]));
  }
}

static pid_t start_worker(void) {
  char conc[16];
  snprintf(conc, sizeof conc, "%d", g_conc);
  char *argv[] = {(char *)g_bin, "worker", "-A", (char *)g_pipes, "-A", (char *)g_tasks, "-Q",
                  "default," PLAIN_QUEUE, "--store", (char *)g_store, "--pool", "prefork", "-c",
                  conc, "--quiet", NULL};
  return qb_spawn(argv);
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  g_store = qb_opt(argc, argv, "--store", NULL);
  g_bin = qb_opt(argc, argv, "--errand", "errand");
  g_pipes = qb_opt(argc, argv, "--pipelines", NULL);
  g_tasks = qb_opt(argc, argv, "--tasks", NULL);
  if (!g_store || !g_pipes || !g_tasks)
    qb_die("usage: pbench_errand --store URL --errand BIN --pipelines LIB --tasks LIB "
           "[--fan N] [--chain M] [--plain K] [-c C] [--redis-port P] [--timeout S]");
  long n_fan = qb_opt_long(argc, argv, "--fan", 10000);
  long n_chain = qb_opt_long(argc, argv, "--chain", 1000);
  long n_plain = qb_opt_long(argc, argv, "--plain", 10000);
  g_conc = (int)qb_opt_long(argc, argv, "-c", 2);
  g_redis_port = qb_opt_long(argc, argv, "--redis-port", 0);
  g_timeout = (double)qb_opt_long(argc, argv, "--timeout", 600);
  g_commits = pbench_counter_map();

  char msg[512] = "";
  if (er_client_open(g_store, &g_client, msg, sizeof msg) < 0)
    qb_die("cannot open %s: %s", g_store, msg);
  if (er_store_open(g_store, &g_st, msg, sizeof msg) < 0) qb_die("store: %s", msg);
  pid_t worker = start_worker();
  shape_t warm = {.name = "warm-up"}, fan = {.name = "fan", .units = (double)n_fan + 2},
          chain = {.name = "chain", .units = (double)n_chain + 1},
          plain = {.name = "plain", .units = (double)n_plain};
  char root[ER_ID_LEN + 1] = "";
  /* The worker is up (its pool started, its scripts loaded) once it has run
   * a small tree. */
  run_pipeline(&warm, "fan_sum", 10, 45, root);
  const char *look_args[NLOOKS] = {NULL, NULL, NULL};
  if (n_fan > 0) run_pipeline(&fan, "fan_sum", n_fan, (long long)n_fan * (n_fan - 1) / 2, root);
  if (n_chain > 0) run_pipeline(&chain, "chain", n_chain, n_chain, root);
  if (n_plain > 0) {
    run_plain(&plain, n_plain);
    look_args[LOOK_STATS] = PLAIN_QUEUE;
  }
  /* The costs of looking, on the last root (its slot, its record). */
  json_t *doc = NULL;
  root_status(root, &doc);
  static char sid[ER_ID_LEN + 1];
  snprintf(sid, sizeof sid, "%s",
           json_string_value(json_object_get(json_object_get(doc, "outputs"), "default")));
  json_decref(doc);
  look_args[LOOK_SLOT] = sid;
  look_args[LOOK_ROOT] = root;
  measure_looks(look_args);
  qb_stop_child(worker, 30);
  if (n_fan > 0) report(&fan);
  if (n_chain > 0) report(&chain);
  if (n_plain > 0) report(&plain);
  er_store_close(g_st);
  er_client_close(g_client);
  return 0;
}
