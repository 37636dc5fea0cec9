/* errand worker: loads task libraries and runs a worker until signalled. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"

static const char usage[] =
    "usage: errand worker -A LIB [-A LIB]... [options]\n"
    "  -A, --app LIB       load a shared library of tasks (repeatable); without it\n"
    "                      the worker knows no task and fails every one it takes\n"
    "  -Q, --queues LIST   queues to consume, by priority (default: default; at\n"
    "                      most 64)\n"
    "  -c, --concurrency N tasks at once, 1 to 4096 (default: the number of CPUs)\n"
    "  -P, --pool P        prefork (default), threads or solo\n"
    "      --prefetch N    tasks reserved per slot, running or waiting, 1 to 1000\n"
    "                      (default 4)\n"
    "      --lease S       lease length in seconds, 0.1 to 86400 (default 30)\n"
    "      --grace S       warm shutdown wait in seconds, 0.001 to 86400 (default 30)\n"
    "      --max-result-size BYTES  a larger result fails its task (default 16 MiB,\n"
    "                      or the store's max_payload if larger)\n"
    "      --task-output FILE  append what prefork tasks print to FILE instead of\n"
    "                      the log\n"
    "      --base-url URL  the base of pipelines' callback URLs, http(s)://...\n"
    "                      (default: $ERRAND_BASE_URL)\n"
    CLI_SECRET_HELP
    "      --celery        also run Celery messages from the Redis lists of the same\n"
    "                      queues (default queue: celery); needs a redis:// store\n"
    "      --visibility-timeout S  --celery: unacknowledged messages older than S go\n"
    "                      back to their queue (default 3600, as kombu)\n"
    "      --track-started  --celery: write the STARTED state when a task starts, as\n"
    "                      Celery's task_track_started\n"
    "  -l, --loglevel L    error, warn, info, debug or trace; info logs each task\n"
    "                      (default: $ERRAND_LOG, else warn)\n"
    "      --quiet         no start-up banner\n"
    CLI_STORE_HELP
    "SIGTERM or SIGINT: finish running tasks, give the rest back; twice: at once.\n";

/* The level named s: the names ERRAND_LOG takes, in any case, and
 * "warning" (Celery's name for warn). */
static int log_level_from_name(const char *s) {
  if (!strcasecmp(s, "warning")) return ER_LOG_WARN;
  for (int l = ER_LOG_ERROR; l <= ER_LOG_TRACE; l++)
    if (!strcasecmp(s, er_log_level_name((er_log_level_t)l))) return l;
  return -1;
}

/* The user's tasks: liberrand's own ("errand.*", which run pipelines) are
 * always there, as are its built-in pipelines (Return, Sum, ...): those
 * registered before any library is loaded. */
static void count_task(const er_task_def_t *d, void *ud) {
  if (strncmp(d->name, "errand.", 7) != 0) ++*(size_t *)ud;
}
static void count_pipeline(const er_pipeline_def_t *d, void *ud) { ++*(size_t *)ud; }

int cmd_worker(int argc, char **argv) {
  static const struct option opts[] = {
      {"app", required_argument, 0, 'A'},  {"queues", required_argument, 0, 'Q'},
      {"concurrency", required_argument, 0, 'c'}, {"pool", required_argument, 0, 'P'},
      {"store", required_argument, 0, 's'}, {"lease", required_argument, 0, 'L'},
      {"grace", required_argument, 0, 'g'}, {"quiet", no_argument, 0, 'q'},
      {"prefetch", required_argument, 0, 'p'}, {"loglevel", required_argument, 0, 'l'},
      {"store-file", required_argument, 0, 'S'}, {"help", no_argument, 0, 'h'},
      {"max-result-size", required_argument, 0, 'R'}, {"task-output", required_argument, 0, 'T'},
      {"base-url", required_argument, 0, 'B'}, {"secret", required_argument, 0, 'x'},
      {"secret-file", required_argument, 0, 'X'}, {"celery", no_argument, 0, 'C'},
      {"track-started", no_argument, 0, 'k'},
      {"visibility-timeout", required_argument, 0, 'V'}, {0, 0, 0, 0}};
  er_worker_opts_t wo = {0};
  size_t builtins = 0;
  er_pipeline_foreach(count_pipeline, &builtins);
  char *queues[ER_WORKER_MAX_QUEUES];
  size_t nq = 0;
  int c;
  while ((c = cli_getopt(argc, argv, ":A:Q:c:P:l:h", opts)) != -1) {
    switch (c) {
      case 'A': {
        char msg[1024];
        if (er_task_load_library(optarg, msg, sizeof msg) < 0) {
          cli_error("%s", msg);
          return EXIT_USAGE;
        }
        break;
      }
      case 'Q': {
        size_t before = nq;
        for (char *tok = strtok(optarg, ","); tok; tok = strtok(NULL, ",")) {
          if (nq < ER_WORKER_MAX_QUEUES) queues[nq] = tok;
          nq++; /* counted on, to say how many were given */
        }
        if (nq == before) { /* "" or ",": not the default queue in disguise (and
                               strtok, finding no name, cut nothing) */
          cli_error("-Q takes queue names separated by commas, not '%s'", optarg);
          return EXIT_USAGE;
        }
        break;
      }
      case 'c':
        if (!cli_int_opt("--concurrency", optarg, 1, ER_WORKER_MAX_CONCURRENCY, &wo.concurrency))
          return EXIT_USAGE;
        break;
      case 'P': {
        int p = er_pool_from_name(optarg);
        if (p < 0) {
          cli_error("unknown pool '%s' (prefork, threads or solo)", optarg);
          return EXIT_USAGE;
        }
        wo.pool = (er_pool_kind_t)p;
        break;
      }
      case 's':
      case 'S':
        if (!cli_store_opt(c, optarg, &wo.store_url)) return EXIT_USAGE;
        break;
      case 'L':
        if (!cli_seconds_opt("--lease", optarg, ER_WORKER_MIN_LEASE_MS, ER_WORKER_MAX_LEASE_MS,
                             &wo.lease_ms))
          return EXIT_USAGE;
        break;
      case 'g': /* 0 would mean the default, 30 s */
        if (!cli_seconds_opt("--grace", optarg, 1, ER_WORKER_MAX_GRACE_MS, &wo.grace_ms))
          return EXIT_USAGE;
        break;
      case 'q': wo.quiet = true; break;
      case 'C': wo.celery = true; break;
      case 'k': wo.celery_track_started = true; break;
      case 'V':
        if (!cli_seconds_opt("--visibility-timeout", optarg, 1000, 30LL * 86400000,
                             &wo.celery_visibility_ms))
          return EXIT_USAGE;
        break;
      case 'T': wo.task_output = optarg; break;
      case 'B': wo.base_url = optarg; break;
      case 'x':
      case 'X':
        if (!cli_secret_opt(c, optarg, &wo.secret)) return EXIT_USAGE;
        break;
      case 'R': {
        int bytes;
        if (!cli_int_opt("--max-result-size", optarg, 1, INT_MAX, &bytes)) return EXIT_USAGE;
        wo.max_result_bytes = (size_t)bytes;
        break;
      }
      case 'p':
        if (!cli_int_opt("--prefetch", optarg, 1, ER_WORKER_MAX_PREFETCH, &wo.prefetch))
          return EXIT_USAGE;
        break;
      case 'l': {
        int level = log_level_from_name(optarg);
        if (level < 0) {
          cli_error("--loglevel takes error, warn, info, debug or trace, not '%s'", optarg);
          return EXIT_USAGE;
        }
        er_log_set_level((er_log_level_t)level);
        break;
      }
      case 'h': fputs(usage, stdout); return EXIT_OK;
      default: return EXIT_USAGE; /* cli_getopt said why */
    }
  }
  if (nq > ER_WORKER_MAX_QUEUES) {
    cli_error("-Q: %zu queues given, at most %d supported", nq, ER_WORKER_MAX_QUEUES);
    return EXIT_USAGE;
  }
  if (!cli_secret_env(&wo.secret)) return EXIT_USAGE;
  if (wo.celery_track_started && !wo.celery) {
    cli_error("--track-started: only with --celery");
    return EXIT_USAGE;
  }
  wo.queues = (const char *const *)queues;
  wo.nqueues = nq;
  er_worker_t *w;
  char msg[512] = "";
  int rc = er_worker_new(&wo, &w, msg, sizeof msg);
  if (rc < 0) {
    cli_error("%s", *msg ? msg : er_strerror(rc));
    if (wo.celery && rc == ER_EINVAL) return EXIT_USAGE;
    return cli_open_exit(rc);
  }
  size_t ntasks = 0, npipes = 0;
  er_task_foreach(count_task, &ntasks);
  er_pipeline_foreach(count_pipeline, &npipes);
  if (!ntasks && npipes == builtins)
    cli_error("no tasks loaded: this worker fails every task it takes as unknown "
              "(load a library of tasks with -A LIB)");
  rc = er_worker_run(w);
  er_worker_free(w);
  if (rc < 0) {
    cli_error("worker: %s", rc == ER_ENOENT ? "stopped: its store's file was deleted"
                                             : er_strerror(rc));
    return EXIT_STORE;
  }
  return EXIT_OK;
}
