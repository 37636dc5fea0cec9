/* Faults on the Redis store, with real `errand worker` processes and a real
 * redis-server that the test starts on a free loopback port in its own
 * temporary directory (AOF on, appendfsync always) and stops by its pid:
 *
 *   - kill -9 of a worker mid-run: every task still succeeds, once;
 *   - kill -9 of redis-server mid-run, restarted on the same port and
 *     directory: every acknowledged send still completes, a call made during
 *     the outage returns ER_EUNAVAILABLE within its timeout, the workers
 *     reconnect, and a task running through the outage reports its result
 *     from the worker that ran it;
 *   - workers on several hosts: redis-server and two workers in separate
 *     network namespaces joined by veth pairs and a bridge on a private
 *     10.x subnet made for the test (skipped, saying why, where the machine
 *     does not allow it).
 *
 * Without redis-server installed every test is skipped with that reason. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

static harness_t H;
static pid_t g_redis = -1;
static pid_t g_workers[8]; /* killed by teardown if a test failed first */
static int g_nworkers;

static pid_t worker(const char *pool, const char *lease) {
  pid_t pid = h_worker(&H, pool, 2, "--lease", lease, NULL);
  g_workers[g_nworkers++] = pid;
  return pid;
}

/* Stops a worker started by worker(). */
static int stop_worker(pid_t pid, int sig) {
  for (int i = 0; i < g_nworkers; i++)
    if (g_workers[i] == pid) g_workers[i] = g_workers[--g_nworkers];
  return h_stop(pid, sig);
}
static int g_port;

static bool g_no_redis;

/* Each test starts with this (cmocka counts a skip in a setup as an error). */
#define NEED_REDIS()                                                                  \
  do {                                                                                \
    if (g_no_redis) {                                                                 \
      print_message("SKIP: redis-server is not installed (scripts/deps test installs it)\n"); \
      skip();                                                                         \
    }                                                                                 \
  } while (0)

static int setup(void **state) {
  memset(&H, 0, sizeof H);
  g_no_redis = !h_redis_find();
  if (g_no_redis) return 0;
  snprintf(H.dir, sizeof H.dir, "/tmp/errand-redis-XXXXXX");
  assert_non_null(mkdtemp(H.dir));
  for (int tries = 0; g_redis < 0 && tries < 5; tries++) {
    g_port = h_free_port();
    g_redis = h_redis_start(H.dir, "127.0.0.1", g_port, NULL, NULL);
  }
  assert_true(g_redis > 0);
  /* A short timeout: calls during an outage give up after a second. */
  snprintf(H.url, sizeof H.url, "redis://127.0.0.1:%d/0?prefix=faults&timeout_ms=1000", g_port);
  char msg[256] = "";
  int rc = er_client_open(H.url, &H.client, msg, sizeof msg);
  if (rc) fprintf(stderr, "open %s: %s\n", H.url, msg);
  assert_int_equal(rc, 0);
  return 0;
}

static int teardown(void **state) {
  while (g_nworkers) h_stop(g_workers[--g_nworkers], SIGKILL);
  er_client_close(H.client);
  H.client = NULL;
  h_redis_kill(g_redis, SIGKILL);
  g_redis = -1;
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", H.dir);
  if (H.dir[0] && system(cmd) != 0) fprintf(stderr, "could not remove %s\n", H.dir);
  return 0;
}

/* ---- helpers ------------------------------------------------------------------ */

static long count_state(const char *state) { return h_count_state(&H, state); }

static uint64_t mono_ms(void) { return er_now_mono_ms(); }

/* Waits up to timeout_ms for count_state(state) to reach n. */
static bool wait_count(const char *state, long n, int timeout_ms) {
  uint64_t end = mono_ms() + (uint64_t)timeout_ms;
  while (mono_ms() < end) {
    if (count_state(state) >= n) return true;
    usleep(20000);
  }
  return count_state(state) >= n;
}

/* ---- kill -9 of a worker ------------------------------------------------------------- */

#define N_TASKS 3000

static void kill9_worker_mid_run_loses_nothing(void **s) {
  NEED_REDIS();
  er_send_req_t reqs[500];
  json_t *args[500];
  static er_id_t ids[N_TASKS];
  for (int b = 0; b < N_TASKS / 500; b++) {
    for (int i = 0; i < 500; i++) {
      args[i] = json_pack("[i, i]", b * 500 + i, 1);
      reqs[i] = (er_send_req_t){"add", args[i], NULL, NULL};
    }
    assert_int_equal(er_send_batch(H.client, reqs, 500, ids + b * 500), 0);
    for (int i = 0; i < 500; i++) json_decref(args[i]);
  }
  pid_t w1 = worker("prefork", "1");
  pid_t w2 = worker("threads", "1");
  assert_true(wait_count("SUCCESS", N_TASKS / 5, 60000));
  int status = stop_worker(w1, SIGKILL);
  assert_true(WIFSIGNALED(status));
  long at_kill = count_state("SUCCESS");
  print_message("worker killed with %ld of %d done\n", at_kill, N_TASKS);
  assert_true(at_kill < N_TASKS);
  pid_t w3 = worker("prefork", "1");
  assert_true(wait_count("SUCCESS", N_TASKS, 120000));
  assert_int_equal(count_state("SUCCESS"), N_TASKS);
  assert_int_equal(count_state("STARTED"), 0);
  assert_int_equal(count_state("PENDING"), 0);
  stop_worker(w2, SIGTERM);
  stop_worker(w3, SIGTERM);
  /* Every result is the right one; the record holds one completion. */
  for (int i = 0; i < N_TASKS; i++) {
    er_task_rec_t *r;
    assert_int_equal(er_status(H.client, ids[i].text, NULL, &r), 0);
    assert_int_equal(r->state, ER_STATE_SUCCESS);
    assert_int_equal(json_integer_value(r->result), i + 1);
    er_task_rec_free(r);
  }
}

/* ---- kill -9 of redis-server ------------------------------------------------------------ */

#define N_SENDS 1500

/* How many workers beat, waiting up to timeout_ms for want of them. */
static size_t live_workers(size_t want, int timeout_ms) {
  er_store_t *st;
  assert_int_equal(er_store_open(H.url, &st, NULL, 0), 0);
  size_t nw = 0;
  for (uint64_t end = mono_ms() + (uint64_t)timeout_ms;;) {
    json_t *ws = NULL;
    if (er_store_workers(st, er_now_wall_ms(), &ws) == 0) nw = json_array_size(ws);
    json_decref(ws);
    if (nw >= want || mono_ms() > end) break;
    usleep(20000);
  }
  er_store_close(st);
  return nw;
}

static void kill9_redis_mid_run_loses_nothing_acknowledged(void **s) {
  NEED_REDIS();
  pid_t w1 = worker("prefork", "20");
  pid_t w2 = worker("threads", "20");
  /* Both up before the crash (one that starts during it exits: a worker
   * needs its store to start). */
  assert_int_equal(live_workers(2, 30000), 2);
  /* A task that runs through the outage. */
  er_id_t long_id;
  h_send(&H, "sleep", "[3.0]", NULL, &long_id);
  for (int i = 0; i < 500; i++) {
    er_task_rec_t *r;
    assert_int_equal(er_status(H.client, long_id.text, NULL, &r), 0);
    bool started = r->state == ER_STATE_STARTED;
    er_task_rec_free(r);
    if (started) break;
    usleep(10000);
  }
  static er_id_t acked[N_SENDS];
  int nacked = 0, refused = 0;
  for (int i = 0; i < N_SENDS; i++) {
    if (i == N_SENDS / 3) {
      /* The crash: nothing acknowledged may be lost (AOF, fsync always). */
      h_redis_kill(g_redis, SIGKILL);
      g_redis = -1;
      print_message("redis-server killed after %d acknowledged sends\n", nacked);
      /* A call during the outage fails within its timeout (1 s here). */
      for (int k = 0; k < 2; k++) {
        json_t *a = json_pack("[i, i]", -1, 1);
        er_id_t id;
        uint64_t t0 = mono_ms();
        int rc = er_send(H.client, "add", a, NULL, NULL, &id);
        uint64_t el = mono_ms() - t0;
        json_decref(a);
        print_message("send during the outage: %s after %llu ms: %s\n", er_err_name(rc),
                      (unsigned long long)el, er_client_last_error(H.client));
        assert_int_equal(rc, ER_EUNAVAILABLE);
        assert_true(el < 2500);
        refused++;
      }
      g_redis = h_redis_start(H.dir, "127.0.0.1", g_port, NULL, NULL);
      assert_true(g_redis > 0);
      print_message("redis-server restarted on port %d with its AOF\n", g_port);
    }
    json_t *a = json_pack("[i, i]", i, 1);
    er_id_t id;
    int rc = er_send(H.client, "add", a, NULL, NULL, &id);
    json_decref(a);
    if (rc == 0) acked[nacked++] = id;
    else refused++;
  }
  print_message("%d sends acknowledged, %d refused\n", nacked, refused);
  assert_true(nacked >= N_SENDS - 5);
  /* Every acknowledged task completes; the workers reconnected. */
  uint64_t end = mono_ms() + 120000;
  int done = 0;
  for (int i = 0; i < nacked; i++) {
    er_task_rec_t *r = NULL;
    for (;;) {
      assert_int_equal(er_status(H.client, acked[i].text, NULL, &r), 0);
      if (r->state == ER_STATE_SUCCESS || mono_ms() > end) break;
      er_task_rec_free(r);
      usleep(20000);
    }
    if (r->state != ER_STATE_SUCCESS)
      fail_msg("task %s (send %d) is %s after the restart", acked[i].text, i,
               er_state_name(r->state));
    er_task_rec_free(r);
    done++;
  }
  assert_int_equal(done, nacked);
  /* The long task finished on the worker that held it through the outage. */
  er_task_rec_t *r;
  assert_int_equal(er_status(H.client, long_id.text, NULL, &r), 0);
  if (r->state != ER_STATE_SUCCESS || r->attempt != 1)
    fail_msg("the long task is %s at attempt %d (worker %s)", er_state_name(r->state), r->attempt,
             r->worker ? r->worker : "-");
  er_task_rec_free(r);
  /* Both workers beat again. */
  size_t nw = live_workers(2, 5000);
  if (nw < 2) fail_msg("%zu workers beat after the restart, not 2", nw);
  /* Nothing is left running or waiting (a send refused after it reached
   * Redis may still run: at least once). */
  for (int i = 0; i < 3000 && (count_state("STARTED") || count_state("PENDING")); i++)
    usleep(20000);
  assert_int_equal(count_state("STARTED"), 0);
  assert_int_equal(count_state("PENDING"), 0);
  stop_worker(w1, SIGTERM);
  stop_worker(w2, SIGTERM);
}

/* ---- workers on several hosts ------------------------------------------------------------ */

#define NS_TASKS 200

static char g_ns[4][32];        /* redis, worker a, worker b, client */
static int g_nns;
static char g_net[32];          /* "10.X.Y" */

static int sh(const char *fmt, ...) {
  char cmd[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  int st = system(cmd);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void ns_teardown(void) {
  for (int i = g_nns - 1; i >= 0; i--) sh("ip netns del %s 2>/dev/null", g_ns[i]);
  g_nns = 0;
}

/* Makes the namespaces, a bridge in the server's, and a veth pair from each
 * other namespace to it; addresses .1 (server), .2, .3, .4. Returns NULL, or
 * why it cannot. */
static const char *ns_setup(void) {
  if (geteuid() != 0) return "not root (ip netns needs CAP_SYS_ADMIN)";
  if (sh("command -v ip >/dev/null 2>&1") != 0) return "no ip command (iproute2)";
  int id = (int)getpid();
  snprintf(g_net, sizeof g_net, "10.%d.%d", 200 + id % 50, (id / 50) % 250);
  static const char *const role[] = {"r", "a", "b", "c"};
  for (int i = 0; i < 4; i++) {
    snprintf(g_ns[i], sizeof g_ns[i], "ertest%d%s", id, role[i]);
    if (sh("ip netns add %s 2>/dev/null", g_ns[i]) != 0) {
      ns_teardown();
      return "ip netns add failed (no permission for network namespaces here)";
    }
    g_nns++;
    if (sh("ip -n %s link set lo up", g_ns[i]) != 0) {
      ns_teardown();
      return "cannot bring lo up in a new network namespace";
    }
  }
  if (sh("ip -n %s link add br0 type bridge && ip -n %s addr add %s.1/24 dev br0 && "
         "ip -n %s link set br0 up",
         g_ns[0], g_ns[0], g_net, g_ns[0]) != 0) {
    ns_teardown();
    return "cannot make a bridge in a network namespace";
  }
  for (int i = 1; i < 4; i++) {
    if (sh("ip link add er%d%sx type veth peer name er%d%sy && "
           "ip link set er%d%sx netns %s && ip link set er%d%sy netns %s && "
           "ip -n %s link set er%d%sx master br0 up && "
           "ip -n %s addr add %s.%d/24 dev er%d%sy && ip -n %s link set er%d%sy up",
           id, role[i], id, role[i], id, role[i], g_ns[0], id, role[i], g_ns[i], g_ns[0], id,
           role[i], g_ns[i], g_net, i + 1, id, role[i], g_ns[i], id, role[i]) != 0) {
      sh("ip link del er%d%sx 2>/dev/null", id, role[i]);
      ns_teardown();
      return "cannot join network namespaces with veth pairs";
    }
  }
  return NULL;
}

static pid_t ns_worker(const char *ns, const char *url) {
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    int devnull = open("/dev/null", O_WRONLY);
    if (!getenv("ERRAND_TEST_VERBOSE")) {
      dup2(devnull, 1);
      dup2(devnull, 2);
    }
    char *argv[] = {"ip",       "netns",  "exec",      (char *)ns,   ERRAND_BIN,
                    "worker",   "-A",     TASKS_LIB,   "--store",    (char *)url,
                    "--pool",   "threads", "--concurrency", "2",    "--quiet", NULL};
    execvp("ip", argv);
    _exit(127);
  }
  return pid;
}

/* The client, in its own namespace: sends, waits for every result, and
 * counts the tasks each worker pid ran. Exit status 0 when all succeeded. */
/* A partition: the client's link goes down under a connected client, so
 * packets vanish (nothing refuses them). A call neither hangs nor fails late:
 * ER_EUNAVAILABLE within its timeout (800 ms in url_short). Once the link is
 * back, the client reconnects and its tasks run. */
static void ns_partition(const char *url_short) {
  er_client_t *c;
  if (er_client_open(url_short, &c, NULL, 0) != 0) _exit(20);
  er_id_t id;
  json_t *a = json_pack("[i, i]", 1, 2);
  if (er_send(c, "add", a, NULL, NULL, &id) != 0) _exit(21);
  char dev[32];
  snprintf(dev, sizeof dev, "er%dcy", (int)getppid());
  if (sh("ip link set %s down", dev) != 0) _exit(22);
  uint64_t t0 = er_now_mono_ms();
  int rc = er_send(c, "add", a, NULL, NULL, &id);
  uint64_t el = er_now_mono_ms() - t0;
  fprintf(stderr, "send across a partition: %s after %llu ms: %s\n", er_err_name(rc),
          (unsigned long long)el, er_client_last_error(c));
  if (sh("ip link set %s up", dev) != 0) _exit(23);
  if (rc != ER_EUNAVAILABLE || el < 700 || el > 2500) _exit(24);
  for (int i = 0; (rc = er_send(c, "add", a, NULL, NULL, &id)) != 0 && i < 50; i++) usleep(100000);
  json_t *res = NULL;
  if (rc || er_result(c, id.text, NULL, 20000, &res, NULL) != 0) _exit(25);
  fprintf(stderr, "after the partition: sent again and got %lld\n", json_integer_value(res));
  json_decref(res);
  json_decref(a);
  er_client_close(c);
}

static void ns_client(const char *url, const char *url_short, pid_t wa, pid_t wb) {
  char path[128];
  snprintf(path, sizeof path, "/var/run/netns/%s", g_ns[3]);
  int fd = open(path, O_RDONLY);
  if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) _exit(10);
  er_client_t *c;
  char msg[256] = "";
  if (er_client_open(url, &c, msg, sizeof msg) != 0) {
    fprintf(stderr, "client in %s: %s\n", g_ns[3], msg);
    _exit(11);
  }
  er_id_t ids[NS_TASKS];
  for (int i = 0; i < NS_TASKS; i++) {
    json_t *a = json_pack("[f]", 0.02);
    int rc = er_send(c, "sleep", a, NULL, NULL, &ids[i]);
    json_decref(a);
    if (rc) _exit(12);
  }
  int by_a = 0, by_b = 0;
  char pa[32], pb[32];
  snprintf(pa, sizeof pa, ":%d:", (int)wa);
  snprintf(pb, sizeof pb, ":%d:", (int)wb);
  for (int i = 0; i < NS_TASKS; i++) {
    json_t *res = NULL, *err = NULL;
    int rc = er_result(c, ids[i].text, NULL, 60000, &res, &err);
    json_decref(res);
    json_decref(err);
    if (rc) {
      fprintf(stderr, "task %d: %s: %s\n", i, er_err_name(rc), er_client_last_error(c));
      _exit(13);
    }
    er_task_rec_t *r;
    if (er_status(c, ids[i].text, NULL, &r) != 0) _exit(14);
    if (r->worker && strstr(r->worker, pa)) by_a++;
    if (r->worker && strstr(r->worker, pb)) by_b++;
    er_task_rec_free(r);
  }
  er_client_close(c);
  fprintf(stderr, "across namespaces: %d tasks, %d by worker a, %d by worker b\n", NS_TASKS, by_a,
          by_b);
  if (by_a + by_b != NS_TASKS || !by_a || !by_b) _exit(15);
  ns_partition(url_short);
  _exit(0);
}

static void workers_in_other_network_namespaces(void **s) {
  NEED_REDIS();
  const char *why = ns_setup();
  if (why) {
    print_message("SKIP: workers on several hosts: %s\n", why);
    skip();
  }
  /* Off the loopback, redis-server wants a password (protected mode): so
   * this also runs AUTH, with a password that needs percent-encoding. */
  char url[200], url_short[200], bind[48], pass[64];
  snprintf(bind, sizeof bind, "%s.1", g_net);
  snprintf(pass, sizeof pass, "p@ss:%d", (int)getpid());
  snprintf(url, sizeof url, "redis://:p%%40ss%%3A%d@%s.1:6379/3?prefix=netns&timeout_ms=5000",
           (int)getpid(), g_net);
  snprintf(url_short, sizeof url_short,
           "redis://:p%%40ss%%3A%d@%s.1:6379/3?prefix=netns&timeout_ms=800", (int)getpid(), g_net);
  print_message("redis-server in %s at %s.1, workers in %s (%s.2) and %s (%s.3), client in %s "
                "(%s.4)\n",
                g_ns[0], g_net, g_ns[1], g_net, g_ns[2], g_net, g_ns[3], g_net);
  pid_t rs = h_redis_start(H.dir, bind, 6379, g_ns[0], pass);
  pid_t wa = ns_worker(g_ns[1], url), wb = ns_worker(g_ns[2], url);
  pid_t cl = fork();
  assert_true(cl >= 0);
  if (cl == 0) ns_client(url, url_short, wa, wb);
  int st = 0;
  while (waitpid(cl, &st, 0) < 0 && errno == EINTR) {
  }
  h_stop(wa, SIGTERM);
  h_stop(wb, SIGTERM);
  h_redis_kill(rs, SIGTERM);
  ns_teardown();
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    fail_msg("the client in its namespace failed (status %d)", WEXITSTATUS(st));
}

/* test_redis_faults [PATTERN]: only the tests whose names match. */
int main(int argc, char **argv) {
  if (argc > 1) cmocka_set_test_filter(argv[1]);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(kill9_worker_mid_run_loses_nothing, setup, teardown),
      cmocka_unit_test_setup_teardown(kill9_redis_mid_run_loses_nothing_acknowledged, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(workers_in_other_network_namespaces, setup, teardown),
  };
  return cmocka_run_group_tests_name("redis faults", tests, NULL, NULL);
}
