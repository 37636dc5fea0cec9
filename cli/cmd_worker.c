/* errand worker: loads task libraries and runs a worker until signalled. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
    "usage: errand worker [-A LIB]... [--queues a,b] [--concurrency N]\n"
    "                     [--pool prefork|threads|solo] [--store URL]\n"
    "  -A, --app LIB       load a shared library of tasks (repeatable)\n"
    "  -Q, --queues LIST   queues to consume, by priority (default: default)\n"
    "  -c, --concurrency N tasks at once (default: the number of CPUs)\n"
    "  -P, --pool P        prefork (default), threads or solo\n"
    "      --prefetch N    tasks reserved per slot, running or waiting (default 4)\n"
    "      --lease S       lease length in seconds (default 30)\n"
    "      --grace S       warm shutdown wait in seconds (default 30)\n"
    "      --store URL     the store (default $ERRAND_STORE, else sqlite:errand.db)\n"
    "SIGTERM or SIGINT: finish running tasks, give the rest back; twice: at once.\n";

static void list_task(const er_task_def_t *d, void *ud) {
  fprintf(stderr, "  . %s%s\n", d->name, d->tasklet ? " (tasklet)" : "");
}

int cmd_worker(int argc, char **argv) {
  static const struct option opts[] = {
      {"app", required_argument, 0, 'A'},  {"queues", required_argument, 0, 'Q'},
      {"concurrency", required_argument, 0, 'c'}, {"pool", required_argument, 0, 'P'},
      {"store", required_argument, 0, 's'}, {"lease", required_argument, 0, 'l'},
      {"grace", required_argument, 0, 'g'}, {"quiet", no_argument, 0, 'q'},
      {"prefetch", required_argument, 0, 'p'},
      {"help", no_argument, 0, 'h'},        {0, 0, 0, 0}};
  er_worker_opts_t wo = {0};
  char *queues[64];
  size_t nq = 0;
  int c;
  while ((c = getopt_long(argc, argv, "A:Q:c:P:h", opts, NULL)) != -1) {
    switch (c) {
      case 'A': {
        char msg[1024];
        if (er_task_load_library(optarg, msg, sizeof msg) < 0) {
          cli_error("%s", msg);
          return EXIT_USAGE;
        }
        break;
      }
      case 'Q':
        for (char *tok = strtok(optarg, ","); tok && nq < 64; tok = strtok(NULL, ","))
          queues[nq++] = tok;
        break;
      case 'c':
        wo.concurrency = atoi(optarg);
        if (wo.concurrency <= 0) {
          cli_error("--concurrency must be a positive number, not '%s'", optarg);
          return EXIT_USAGE;
        }
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
      case 's': wo.store_url = optarg; break;
      case 'l':
        if (!cli_seconds_opt("--lease", optarg, &wo.lease_ms)) return EXIT_USAGE;
        break;
      case 'g':
        if (!cli_seconds_opt("--grace", optarg, &wo.grace_ms)) return EXIT_USAGE;
        break;
      case 'q': wo.quiet = true; break;
      case 'p':
        wo.prefetch = atoi(optarg);
        if (wo.prefetch <= 0) {
          cli_error("--prefetch must be a positive number, not '%s'", optarg);
          return EXIT_USAGE;
        }
        break;
      case 'h': fputs(usage, stdout); return EXIT_OK;
      default: fputs(usage, stderr); return EXIT_USAGE;
    }
  }
  wo.queues = (const char *const *)queues;
  wo.nqueues = nq;
  er_worker_t *w;
  char msg[512] = "";
  int rc = er_worker_new(&wo, &w, msg, sizeof msg);
  if (rc < 0) {
    cli_error("%s", *msg ? msg : er_strerror(rc));
    return cli_exit_for(rc);
  }
  if (!wo.quiet) {
    fprintf(stderr, "tasks:\n");
    er_task_foreach(list_task, NULL);
  }
  rc = er_worker_run(w);
  er_worker_free(w);
  if (rc < 0) {
    cli_error("worker: %s", er_strerror(rc));
    return EXIT_STORE;
  }
  return EXIT_OK;
}
