/* Chaos: the mixed load of several senders and several workers, with
 * workers killed by SIGKILL every 100-500 ms and started again, and on
 * Redis the redis-server killed by SIGKILL too (every fourth worker kill) and
 * started again on the same port and directory (AOF, appendfsync always).
 *
 * A sender counts a task acknowledged only when er_send (or er_send_batch)
 * returned its id; a send refused while the store was down is sent again.
 * Every task records each execution (its id and attempt) in a log file
 * (chaos_tasks.c). Once the senders are done the killing stops, the workers
 * drain the queue, and the test checks what docs/queue.md promises:
 *
 *   - every acknowledged task is SUCCESS with the right result (a + b);
 *   - it ran once per attempt at most, and the attempt whose result is
 *     stored ran, and is the last one: a task runs more than once only when
 *     an attempt of it was cut off (its worker killed, or its lease lost)
 *     and it was delivered again (at least once), and then only its last
 *     attempt's result is stored (fenced by the attempt number);
 *   - nothing is left PENDING or STARTED.
 *
 * ER_CHAOS_TASKS sets the number of tasks per store (3,000 by default),
 * ER_CHAOS_SECONDS the time the senders spread them over at least (8),
 * ER_CHAOS_SEED the random seed (printed). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define DEFAULT_TASKS 3000
#define N_SENDERS 3
#define N_WORKERS 3
#define BATCH 10 /* sender 0 sends in batches of this many, all or none */
#define DRAIN_MS 240000

static harness_t H;
static pid_t g_workers[N_WORKERS];
static pid_t g_senders[N_SENDERS];
static pid_t g_redis = -1;
static int g_port;
static int g_worker_kills, g_redis_kills;

static int env_int(const char *name, int dflt) {
  const char *v = getenv(name);
  return v && atoi(v) > 0 ? atoi(v) : dflt;
}

/* A random number of ms in [lo, hi]. */
static unsigned rand_ms(unsigned lo, unsigned hi) { return lo + (unsigned)rand() % (hi - lo + 1); }

/* ---- workers and redis-server ------------------------------------------------- */

/* Two prefork workers and one threads worker, each with two slots and a
 * one-second lease, so that a killed worker's tasks come back soon. */
static pid_t start_worker(int i) {
  return h_worker(&H, i % 3 == 2 ? "threads" : "prefork", 2, "--lease", "1", NULL);
}

/* Starts again the workers that exited by themselves (one that starts while
 * redis-server is down exits: a worker needs its store to start). */
static void restart_exited_workers(void) {
  for (int i = 0; i < N_WORKERS; i++)
    if (waitpid(g_workers[i], NULL, WNOHANG) == g_workers[i]) g_workers[i] = start_worker(i);
}

static void redis_restart(void) {
  for (int tries = 0; (g_redis = h_redis_start(H.dir, "127.0.0.1", g_port, NULL, NULL)) < 0;)
    if (++tries == 5) fail_msg("redis-server does not start again on port %d", g_port);
}

static void redis_crash(void) {
  h_redis_kill(g_redis, SIGKILL);
  g_redis = -1;
  g_redis_kills++;
  usleep(rand_ms(200, 800) * 1000); /* the outage */
  redis_restart();
}

/* ---- senders ---------------------------------------------------------------------- */

static void sender_log(char *path, size_t size, int k) {
  snprintf(path, size, "%s/sender%d.log", H.dir, k);
}

/* Sender k (a child process): sends n tasks chaos.add [k * 10^7 + i, i],
 * spread over about spread_ms (so that the load lasts through many kills
 * even where the machine is fast; never slower than it can), and writes
 * "ID A B" for each acknowledged one, then "refused N", to its log. A
 * refused send is sent again; a sender refused for 60 s in a row gives up
 * (exit status 3). */
static void sender(int k, int n, int spread_ms) {
  char path[320];
  sender_log(path, sizeof path, k);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
  if (fd < 0) _exit(1);
  er_client_t *c = NULL;
  uint64_t give_up = er_now_mono_ms() + 60000;
  while (er_client_open(H.url, &c, NULL, 0) != 0) {
    if (er_now_mono_ms() > give_up) _exit(2);
    usleep(50000);
  }
  long refused = 0;
  int batch = k == 0 ? BATCH : 1;
  uint64_t start = er_now_mono_ms();
  for (int i = 0; i < n; i += batch) {
    uint64_t due = start + (uint64_t)spread_ms * (uint64_t)i / (uint64_t)n, now = er_now_mono_ms();
    if (now < due) usleep((useconds_t)(due - now) * 1000);
    int m = n - i < batch ? n - i : batch;
    er_send_req_t reqs[BATCH];
    json_t *args[BATCH];
    er_id_t ids[BATCH];
    for (int j = 0; j < m; j++) {
      args[j] = json_pack("[I, I]", (json_int_t)k * 10000000 + i + j, (json_int_t)(i + j));
      reqs[j] = (er_send_req_t){"chaos.add", args[j], NULL, NULL};
    }
    while ((m == 1 ? er_send(c, "chaos.add", args[0], NULL, NULL, ids)
                   : er_send_batch(c, reqs, (size_t)m, ids)) != 0) {
      refused++;
      if (er_now_mono_ms() > give_up) _exit(3);
      usleep(20000);
    }
    give_up = er_now_mono_ms() + 60000;
    for (int j = 0; j < m; j++) {
      dprintf(fd, "%s %lld %d\n", ids[j].text, (long long)k * 10000000 + i + j, i + j);
      json_decref(args[j]);
    }
  }
  dprintf(fd, "refused %ld\n", refused);
  er_client_close(c);
  close(fd);
  _exit(0);
}

/* True while a sender runs; fails the test when one gave up. */
static bool senders_running(void) {
  bool running = false;
  for (int k = 0; k < N_SENDERS; k++) {
    if (g_senders[k] <= 0) continue;
    int st;
    if (waitpid(g_senders[k], &st, WNOHANG) != g_senders[k]) {
      running = true;
      continue;
    }
    g_senders[k] = 0;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
      fail_msg("sender %d failed (status %d: 2 cannot open, 3 refused for 60 s)", k,
               WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
  }
  return running;
}

/* ---- the check ------------------------------------------------------------------------ */

typedef struct {
  char id[ER_ID_LEN + 1];
  long long a, b;
  int attempt; /* in the execution log: the attempt that ran */
} rec_t;

static int by_id(const void *x, const void *y) {
  const rec_t *p = x, *q = y;
  int c = strcmp(p->id, q->id);
  return c ? c : (p->attempt > q->attempt) - (p->attempt < q->attempt);
}

/* The acknowledged tasks from the senders' logs (sorted by id); adds up the
 * refused sends. */
static rec_t *read_acked(size_t *n, long *refused) {
  size_t cap = 1024;
  rec_t *v = malloc(cap * sizeof *v);
  *n = 0;
  *refused = 0;
  for (int k = 0; k < N_SENDERS; k++) {
    char path[320], line[128];
    sender_log(path, sizeof path, k);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    long r;
    while (fgets(line, sizeof line, f)) {
      if (sscanf(line, "refused %ld", &r) == 1) *refused += r;
      else {
        if (*n == cap) v = realloc(v, (cap *= 2) * sizeof *v);
        assert_int_equal(sscanf(line, "%36s %lld %lld", v[*n].id, &v[*n].a, &v[*n].b), 3);
        v[(*n)++].attempt = 0;
      }
    }
    fclose(f);
  }
  qsort(v, *n, sizeof *v, by_id);
  return v;
}

/* Every execution the tasks recorded (sorted by id, then attempt). */
static rec_t *read_runs(const char *path, size_t *n) {
  size_t cap = 1024;
  rec_t *v = malloc(cap * sizeof *v);
  *n = 0;
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  char line[128];
  while (fgets(line, sizeof line, f)) {
    if (*n == cap) v = realloc(v, (cap *= 2) * sizeof *v);
    if (sscanf(line, "%36s %d", v[*n].id, &v[*n].attempt) != 2) fail_msg("bad run record: %s", line);
    (*n)++;
  }
  fclose(f);
  qsort(v, *n, sizeof *v, by_id);
  return v;
}

static long count_state(const char *state) { return h_count_state(&H, state); }

/* Waits (up to deadline) for each acknowledged task's result, checks it,
 * and keeps the attempt that stored it. Meanwhile a worker that was starting
 * when redis-server was last killed, and exited, is started again. */
static void check_results(rec_t *acked, size_t n, uint64_t deadline) {
  for (size_t i = 0; i < n; i++) {
    json_t *res = NULL, *err = NULL;
    int rc;
    for (;;) {
      int64_t left = (int64_t)(deadline - er_now_mono_ms());
      rc = er_result(H.client, acked[i].id, NULL, left > 1000 ? 1000 : left > 0 ? left : 1, &res,
                     &err);
      if (rc != ER_ETIMEDOUT || left <= 1000) break;
      restart_exited_workers();
    }
    er_task_rec_t *t = NULL;
    assert_int_equal(er_status(H.client, acked[i].id, NULL, &t), 0);
    if (rc || json_integer_value(res) != acked[i].a + acked[i].b)
      fail_msg("task %s [%lld, %lld] is %s (%s) with result %lld", acked[i].id, acked[i].a,
               acked[i].b, er_state_name(t->state), er_err_name(rc), json_integer_value(res));
    acked[i].attempt = t->attempt;
    json_decref(res);
    json_decref(err);
    er_task_rec_free(t);
  }
}

/* Checks each acknowledged task's runs against the attempt that stored its
 * result; returns how many ran more than once, and adds the extra runs to
 * *extra. */
static int check_runs(const rec_t *acked, size_t n, int *extra) {
  char path[320];
  snprintf(path, sizeof path, "%s/runs.log", H.dir);
  size_t nruns, r = 0;
  rec_t *runs = read_runs(path, &nruns);
  int again = 0;
  *extra = 0;
  for (size_t i = 0; i < n; i++) {
    while (r < nruns && strcmp(runs[r].id, acked[i].id) < 0) r++; /* refused sends that ran */
    int ran = 0, last = 0;
    for (; r < nruns && strcmp(runs[r].id, acked[i].id) == 0; r++, ran++) {
      if (runs[r].attempt == last) fail_msg("task %s ran twice in attempt %d", acked[i].id, last);
      last = runs[r].attempt;
    }
    if (!ran || last != acked[i].attempt)
      fail_msg("task %s: SUCCESS stored by attempt %d, but its last run was attempt %d (%d runs)",
               acked[i].id, acked[i].attempt, last, ran);
    if (ran > 1) again++, *extra += ran - 1;
  }
  free(runs);
  return again;
}

/* ---- the test -------------------------------------------------------------------------- */

static void chaos(const char *store) {
  int tasks = env_int("ER_CHAOS_TASKS", DEFAULT_TASKS);
  int spread_ms = env_int("ER_CHAOS_SECONDS", 8) * 1000;
  unsigned seed = (unsigned)env_int("ER_CHAOS_SEED", (int)(time(NULL) ^ getpid()));
  srand(seed);
  char runs[320];
  snprintf(runs, sizeof runs, "%s/runs.log", H.dir);
  setenv("ERRAND_CHAOS_LOG", runs, 1);
  /* The schema exists before the processes race to open the store. */
  er_store_t *s;
  assert_int_equal(er_store_open(H.url, &s, NULL, 0), 0);
  er_store_close(s);
  uint64_t t0 = er_now_mono_ms();
  for (int i = 0; i < N_WORKERS; i++) g_workers[i] = start_worker(i);
  /* Forked before this process opens a client (no threads to inherit). */
  for (int k = 0; k < N_SENDERS; k++) {
    g_senders[k] = fork();
    assert_true(g_senders[k] >= 0);
    if (g_senders[k] == 0) sender(k, tasks / N_SENDERS + (k < tasks % N_SENDERS), spread_ms);
  }
  /* The killing goes on while the senders send, then until nine tasks in ten
   * are done (the workers are busy through it) or DRAIN_MS passed, and for
   * four worker kills (so one redis-server kill) at least: never a calm run. */
  uint64_t stop_by = er_now_mono_ms() + DRAIN_MS;
  for (bool sending = true;
       (sending = sending && senders_running()) || g_worker_kills < 4 ||
       (count_state("SUCCESS") < tasks * 9L / 10 && er_now_mono_ms() < stop_by);) {
    usleep(rand_ms(100, 500) * 1000);
    restart_exited_workers();
    int i = rand() % N_WORKERS;
    h_stop(g_workers[i], SIGKILL);
    g_worker_kills++;
    g_workers[i] = start_worker(i);
    if (g_redis > 0 && g_worker_kills % 4 == 0) redis_crash();
  }
  /* The killing stops; whatever exited during an outage comes back. */
  restart_exited_workers();
  size_t n;
  long refused;
  rec_t *acked = read_acked(&n, &refused);
  assert_int_equal(er_client_open(H.url, &H.client, NULL, 0), 0);
  uint64_t deadline = er_now_mono_ms() + DRAIN_MS;
  check_results(acked, n, deadline);
  /* Refused sends that reached the store run too: nothing stays behind. */
  while ((count_state("PENDING") || count_state("STARTED")) && er_now_mono_ms() < deadline) {
    restart_exited_workers();
    usleep(50000);
  }
  assert_int_equal(count_state("PENDING"), 0);
  assert_int_equal(count_state("STARTED"), 0);
  /* The runs are read once the workers are gone (the log is complete). */
  for (int i = 0; i < N_WORKERS; i++) h_stop(g_workers[i], SIGTERM), g_workers[i] = 0;
  int extra, again = check_runs(acked, n, &extra);
  assert_int_equal((long)n, tasks);
  print_message("chaos %s: %zu of %d acknowledged tasks done, right results, each attempt run "
                "once at most; %d worker kills, %d redis-server kills; %d tasks ran again after a "
                "kill (%d extra runs); %ld sends refused and sent again; %.1f s (seed %u)\n",
                store, n, tasks, g_worker_kills, g_redis_kills, again, extra, refused,
                (double)(er_now_mono_ms() - t0) / 1000.0, seed);
  free(acked);
}

static void chaos_sqlite(void **state) { chaos("sqlite"); }

static void chaos_redis(void **state) {
#ifndef CHAOS_REDIS
  print_message("SKIP: built without the Redis store (ER_REDIS=OFF)\n");
  skip();
#endif
  if (g_redis <= 0) {
    print_message("SKIP: redis-server is not installed (scripts/deps test installs it)\n");
    skip();
  }
  chaos("redis");
}

static int setup_sqlite(void **state) {
  memset(&H, 0, sizeof H);
  snprintf(H.dir, sizeof H.dir, "/tmp/errand-chaos-XXXXXX");
  assert_non_null(mkdtemp(H.dir));
  snprintf(H.url, sizeof H.url, "sqlite:%s/errand.db", H.dir);
  g_worker_kills = g_redis_kills = 0;
  return 0;
}

static int setup_redis(void **state) {
  setup_sqlite(state);
#ifdef CHAOS_REDIS
  if (!h_redis_find()) return 0;
  for (int tries = 0; g_redis < 0 && tries < 5; tries++) {
    g_port = h_free_port();
    g_redis = h_redis_start(H.dir, "127.0.0.1", g_port, NULL, NULL);
  }
  assert_true(g_redis > 0);
  /* Calls during an outage give up after a second (and are sent again). */
  snprintf(H.url, sizeof H.url, "redis://127.0.0.1:%d/0?prefix=chaos&timeout_ms=1000", g_port);
#endif
  return 0;
}

/* Whatever a failed test left running goes, by pid. */
static int teardown(void **state) {
  for (int k = 0; k < N_SENDERS; k++)
    if (g_senders[k] > 0) h_stop(g_senders[k], SIGKILL), g_senders[k] = 0;
  for (int i = 0; i < N_WORKERS; i++)
    if (g_workers[i] > 0) h_stop(g_workers[i], SIGKILL), g_workers[i] = 0;
  h_redis_kill(g_redis, SIGKILL);
  g_redis = -1;
  h_teardown(&H); /* the client, the directory */
  return 0;
}

/* test_chaos [PATTERN]: only the tests whose names match. */
int main(int argc, char **argv) {
  if (argc > 1) cmocka_set_test_filter(argv[1]);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(chaos_sqlite, setup_sqlite, teardown),
      cmocka_unit_test_setup_teardown(chaos_redis, setup_redis, teardown),
  };
  return cmocka_run_group_tests_name("chaos", tests, NULL, NULL);
}
