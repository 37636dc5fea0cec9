/* errand up: everything on one machine in one command. The HTTP API (with
 * the dashboard at /) serves in this process; the worker pool is a
 * supervised child, `errand worker` run from this same executable, so every
 * pool works (an embedded worker cannot fork a prefork pool out of a
 * threaded server) and a task that brings its worker down brings down only
 * the child, which is started again.
 *
 * Signals: the worker runs in a process group of its own, so a terminal's
 * Ctrl-C reaches this process alone, which forwards one SIGTERM per signal
 * it gets: the first drains the worker (its running tasks finish within its
 * grace), a second stops it at once, as for `errand worker`. The server
 * keeps answering while the worker drains (results, polls) and stops last.
 * If this process dies without a word, the kernel sends the worker SIGTERM
 * (PR_SET_PDEATHSIG), so no worker outlives its server. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <errand/http.h>
#include <errand/store.h>

#include "cli.h"

static const char usage[] =
    "usage: errand up [--listen HOST:PORT] [-A LIB]... [options]\n"
    "Runs the HTTP API (the dashboard at /) and a worker pool in one command, on one\n"
    "store, until SIGTERM or SIGINT (twice: the worker stops at once).\n"
    "      --listen HOST:PORT  where to listen (default 127.0.0.1:8080; port 0 picks a\n"
    "                      free one)\n"
    "  -A, --app LIB       the worker loads this library of tasks (repeatable); default:\n"
    "                      the example tasks and pipelines, found next to this\n"
    "                      executable or in the install's lib/errand\n"
    "  -c, --concurrency N tasks at once, 1 to 4096 (default: the number of CPUs)\n"
    "  -P, --pool P        prefork (default), threads or solo\n"
    "  -Q, --queues LIST   queues to consume, by priority (default: default)\n"
    "      --token T       every /api/ request needs 'Authorization: Bearer T'\n"
    CLI_SECRET_HELP
    "      --base-url URL  where the outside world reaches this server, http(s)://...\n"
    "                      (callback and status URLs; default: the listen address)\n"
    CLI_STORE_HELP;

/* The most -A libraries taken: far more than anyone loads. */
#define MAX_APPS 64
#define EXAMPLE_TASKS "libexample_tasks.so"
#define EXAMPLE_PIPES "libexample_pipelines.so"

typedef struct up {
  char exe[PATH_MAX];     /* this executable: the worker is run from it */
  char libs[2][PATH_MAX]; /* the example libraries, when no -A */
  const char *argv[2 * MAX_APPS + 16];
  pid_t pid;              /* the worker; 0 when none runs */
  int64_t started_ms;     /* when it was started (restart back-off) */
} up_t;

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool is_file(const char *path) { return access(path, R_OK) == 0; }

/* The example libraries into u->libs: beside the executable (a build tree),
 * else in the install's lib/errand, found relative to the executable (a
 * moved prefix) or at the configured prefix. False when neither is found. */
static bool find_examples(up_t *u) {
  char dir[PATH_MAX];
  snprintf(dir, sizeof dir, "%s", u->exe);
  char *slash = strrchr(dir, '/');
  if (!slash) return false;
  *slash = 0;
  const char *const where[3][2] = {{dir, ""}, {dir, "/" ER_UP_LIB_REL}, {ER_UP_LIB_DIR, ""}};
  for (int i = 0; i < 3; i++) {
    int a = snprintf(u->libs[0], sizeof u->libs[0], "%s%s/%s", where[i][0], where[i][1],
                     EXAMPLE_TASKS);
    int b = snprintf(u->libs[1], sizeof u->libs[1], "%s%s/%s", where[i][0], where[i][1],
                     EXAMPLE_PIPES);
    if (a > 0 && a < (int)sizeof u->libs[0] && b > 0 && b < (int)sizeof u->libs[1] &&
        is_file(u->libs[0]) && is_file(u->libs[1]))
      return true;
  }
  cli_error("the example libraries (%s, %s) are neither next to %s nor in %s: give the "
            "worker's tasks with -A LIB", EXAMPLE_TASKS, EXAMPLE_PIPES, u->exe, ER_UP_LIB_DIR);
  return false;
}

/* Starts the worker: u->argv run from u->exe. Between fork and exec only
 * async-signal-safe calls: the server's threads may hold any lock. */
static bool spawn(up_t *u, const sigset_t *blocked) {
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    cli_error("cannot start the worker: %s", strerror(errno));
    return false;
  }
  if (pid == 0) {
    setpgid(0, 0); /* out of the terminal's foreground group: Ctrl-C is ours */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(EXIT_STORE); /* died before prctl took */
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    sigaction(SIGPIPE, &dfl, NULL); /* the worker sets its own */
    sigprocmask(SIG_UNBLOCK, blocked, NULL);
    execv(u->exe, (char *const *)u->argv);
    _exit(127);
  }
  u->pid = pid;
  u->started_ms = now_ms();
  return true;
}

/* The base URL that reaches this server from this machine: the listen
 * address, with a wildcard host replaced by loopback. */
static void own_base(const char *url, char *out, size_t size) {
  if (!strncmp(url, "http://0.0.0.0:", 15))
    snprintf(out, size, "http://127.0.0.1:%s", url + 15);
  else if (!strncmp(url, "http://[::]:", 12))
    snprintf(out, size, "http://[::1]:%s", url + 12);
  else
    snprintf(out, size, "%s", url);
}

/* What to try, on stdout: the dashboard's URL first. */
static void print_welcome(const up_t *u, const char *url, const char *store, bool examples,
                          const char *token) {
  char shown[1024] = "sqlite:errand.db";
  const char *env = getenv("ERRAND_STORE");
  if (store || (env && *env)) er_url_redact(store ? store : env, shown, sizeof shown);
  char auth[64] = "";
  if (token) snprintf(auth, sizeof auth, " -H 'Authorization: Bearer TOKEN'");
  /* The errand lines must reach the same store; a password is not shown. */
  char where[1100] = "";
  if (store && !strcmp(store, shown))
    snprintf(where, sizeof where, " --store '%s'", store);
  else if (store)
    snprintf(where, sizeof where, " --store-file FILE");
  printf("errand up: the dashboard is at %s/\n", url);
  printf("  API %s/api/v1, worker pid %d, store %s\n", url, (int)u->pid, shown);
  if (examples) {
    printf("send it work from another terminal:\n");
    printf("  curl%s -H 'Content-Type: application/json' -d '{\"task\": \"add\", \"args\": [2, 3]}' "
           "%s/api/v1/tasks\n", auth, url);
    printf("  curl%s '%s/api/v1/tasks/ID?wait=10'\n", auth, url);
    printf("  curl%s -H 'Content-Type: application/json' -d '{\"pipeline\": \"approve_demo\"}' "
           "%s/api/v1/pipelines\n", auth, url);
    printf("  %s send add --args '[2, 3]' --wait%s\n", u->exe, where);
    printf("  %s send progress --args '[3]' --wait%s\n", u->exe, where);
    printf("  %s pipeline start euclid --args '[1071, 462]' --wait%s\n", u->exe, where);
    printf("  %s inspect%s\n", u->exe, where);
  } else {
    printf("send it work:\n  curl%s -H 'Content-Type: application/json' -d '{\"task\": \"NAME\", "
           "\"args\": []}' %s/api/v1/tasks\n  %s send NAME --args '[]' --wait%s\n", auth, url, u->exe,
           where);
  }
  printf("Ctrl-C stops it (twice: the worker at once).\n");
  fflush(stdout);
}

/* Runs until a signal stops the worker, or the worker ends by itself;
 * restarts a worker killed by a signal, backing off. Returns the exit code. */
static int supervise(up_t *u, const sigset_t *set) {
  int stops = 0, code = EXIT_OK;
  int64_t delay_ms = 1000, restart_at = -1;
  for (;;) {
    struct timespec tick = {.tv_sec = 0, .tv_nsec = 200 * 1000000L};
    int sig = sigtimedwait(set, NULL, &tick);
    if (sig == SIGTERM || sig == SIGINT) {
      if (!u->pid) return code; /* between two workers: nothing to drain */
      if (!stops++)
        cli_error("stopping: the worker finishes its running tasks (again: at once)");
      kill(u->pid, SIGTERM);
    }
    int st;
    if (u->pid && waitpid(u->pid, &st, WNOHANG) == u->pid) {
      u->pid = 0;
      if (stops) return code;
      if (WIFEXITED(st)) {
        code = WEXITSTATUS(st);
        cli_error("the worker exited (code %d): stopping", code);
        return code;
      }
      /* Killed (out of memory, by hand): the server still serves, so the
       * pool comes back; one that keeps dying is retried less often. */
      if (now_ms() - u->started_ms > 60000) delay_ms = 1000;
      cli_error("the worker was killed by signal %d: starting another in %lld s",
                WTERMSIG(st), (long long)(delay_ms / 1000));
      restart_at = now_ms() + delay_ms;
      delay_ms = delay_ms * 2 > 30000 ? 30000 : delay_ms * 2;
    }
    if (!u->pid && restart_at >= 0 && now_ms() >= restart_at) {
      restart_at = -1;
      if (!spawn(u, set)) return EXIT_STORE;
    }
  }
}

int cmd_up(int argc, char **argv) {
  static const struct option opts[] = {
      {"listen", required_argument, 0, 'l'},     {"app", required_argument, 0, 'A'},
      {"concurrency", required_argument, 0, 'c'}, {"pool", required_argument, 0, 'P'},
      {"queues", required_argument, 0, 'Q'},     {"token", required_argument, 0, 't'},
      {"secret", required_argument, 0, 'x'},     {"secret-file", required_argument, 0, 'X'},
      {"base-url", required_argument, 0, 'B'},   {"store", required_argument, 0, 's'},
      {"store-file", required_argument, 0, 'S'}, {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0}};
  static up_t u;
  memset(&u, 0, sizeof u);
  er_http_opts_t o = {0};
  const char *apps[MAX_APPS], *conc = NULL, *pool = NULL, *queues = NULL, *base = NULL;
  int napps = 0, c;
  while ((c = cli_getopt(argc, argv, ":A:c:P:Q:h", opts)) != -1) {
    switch (c) {
      case 'l': o.listen = optarg; break;
      case 'A':
        if (napps == MAX_APPS) {
          cli_error("-A: at most %d libraries", MAX_APPS);
          return EXIT_USAGE;
        }
        apps[napps++] = optarg;
        break;
      case 'c': {
        int n;
        if (!cli_int_opt("--concurrency", optarg, 1, ER_WORKER_MAX_CONCURRENCY, &n))
          return EXIT_USAGE;
        conc = optarg;
        break;
      }
      case 'P':
        if (er_pool_from_name(optarg) < 0) {
          cli_error("unknown pool '%s' (prefork, threads or solo)", optarg);
          return EXIT_USAGE;
        }
        pool = optarg;
        break;
      case 'Q':
        if (!optarg[strspn(optarg, ",")]) {
          cli_error("-Q takes queue names separated by commas, not '%s'", optarg);
          return EXIT_USAGE;
        }
        queues = optarg;
        break;
      case 't': o.token = optarg; break;
      case 'x':
      case 'X':
        if (!cli_secret_opt(c, optarg, &o.secret)) return EXIT_USAGE;
        break;
      case 'B': base = optarg; break;
      case 's':
      case 'S':
        if (!cli_store_opt(c, optarg, &o.store_url)) return EXIT_USAGE;
        break;
      case 'h': fputs(usage, stdout); return EXIT_OK;
      default: return EXIT_USAGE;
    }
  }
  if (optind < argc) {
    cli_error("up takes no arguments (see errand up --help)");
    return EXIT_USAGE;
  }
  if (!cli_secret_env(&o.secret)) return EXIT_USAGE;
  ssize_t n = readlink("/proc/self/exe", u.exe, sizeof u.exe - 1);
  if (n <= 0 || n >= (ssize_t)sizeof u.exe - 1) {
    cli_error("cannot find this executable (/proc/self/exe): %s", strerror(errno));
    return EXIT_STORE;
  }
  u.exe[n] = 0;
  bool examples = napps == 0;
  if (examples) {
    if (!find_examples(&u)) return EXIT_USAGE;
    apps[napps++] = u.libs[0];
    apps[napps++] = u.libs[1];
  }
  /* Loaded here too, before anything runs: a library that does not load is
   * named now, with the loader's reason, rather than by a worker that exits. */
  for (int i = 0; i < napps; i++) {
    char msg[1024];
    if (er_task_load_library(apps[i], msg, sizeof msg) < 0) {
      cli_error("%s", msg);
      return EXIT_USAGE;
    }
  }
  /* The worker learns the store and the secret from its environment, not
   * its command line, which ps shows. Set before any thread runs. */
  if (o.store_url && setenv("ERRAND_STORE", o.store_url, 1)) return EXIT_STORE;
  if (o.secret && setenv("ERRAND_SECRET", o.secret, 1)) return EXIT_STORE;
  o.base_url = base;

  /* The server's threads inherit this mask: the signals come to sigtimedwait. */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGCHLD);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);
  er_http_server_t *s;
  char msg[512] = "";
  int rc = er_http_server_new(&o, &s, msg, sizeof msg);
  if (rc < 0) {
    cli_error("%s", *msg ? msg : er_strerror(rc));
    return rc == ER_EINVAL ? EXIT_USAGE : EXIT_STORE;
  }
  rc = er_http_server_start(s, msg, sizeof msg);
  if (rc < 0) { /* as serve: an address that cannot be bound is the caller's */
    cli_error("%s", *msg ? msg : er_strerror(rc));
    er_http_server_free(s);
    return EXIT_USAGE;
  }
  char cb_base[512];
  own_base(er_http_server_url(s), cb_base, sizeof cb_base);
  int k = 0;
  u.argv[k++] = u.exe;
  u.argv[k++] = "worker";
  for (int i = 0; i < napps; i++) u.argv[k++] = "-A", u.argv[k++] = apps[i];
  if (conc) u.argv[k++] = "-c", u.argv[k++] = conc;
  if (pool) u.argv[k++] = "-P", u.argv[k++] = pool;
  if (queues) u.argv[k++] = "-Q", u.argv[k++] = queues;
  u.argv[k++] = "--base-url";
  u.argv[k++] = base ? base : cb_base;
  u.argv[k] = NULL;
  int code = EXIT_STORE;
  if (spawn(&u, &set)) {
    print_welcome(&u, cb_base, o.store_url, examples, o.token);
    code = supervise(&u, &set);
  }
  er_http_server_free(s);
  return code;
}
