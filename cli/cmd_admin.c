/* errand status, revoke, inspect and purge. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Parses "--store URL", "--key K" and "--help" for the small commands;
 * returns -1 after printing usage or an error, else the index of the first
 * positional argument. */
static int small_opts(int argc, char **argv, const char *usage, const char **store,
                      const char **key, int *code) {
  static const struct option opts[] = {{"store", required_argument, 0, 's'},
                                       {"store-file", required_argument, 0, 'S'},
                                       {"key", required_argument, 0, 'K'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  int c;
  while ((c = cli_getopt(argc, argv, ":h", opts)) != -1) {
    if (c == 's' || c == 'S') {
      if (!cli_store_opt(c, optarg, store)) {
        *code = EXIT_USAGE;
        return -1;
      }
    } else if (c == 'K' && key) {
      *key = optarg;
    } else if (c == 'h') {
      fputs(usage, stdout);
      *code = EXIT_OK;
      return -1;
    } else { /* cli_getopt said what was wrong, but not of --key */
      if (c == 'K') cli_error("unknown option '--key'; see 'errand %s --help'", argv[0]);
      *code = EXIT_USAGE;
      return -1;
    }
  }
  return optind;
}

int cmd_status(int argc, char **argv) {
  static const char usage[] =
      "usage: errand status ID | --key K [--store URL]\n"
      "Prints the task's state, progress, attempts, times (ISO 8601, UTC), error and\n"
      "what it was called with (args, kwargs, context) as JSON.\n"
      "      --key K         the newest task sent with --key K\n" CLI_STORE_HELP;
  const char *store = NULL, *key = NULL;
  int code = EXIT_OK;
  int i = small_opts(argc, argv, usage, &store, &key, &code);
  if (i < 0) return code;
  if ((i == argc) == (key == NULL) || argc - i > 1) {
    cli_error("status needs an ID or --key K (see errand status --help)");
    return EXIT_USAGE;
  }
  er_client_t *c = cli_open(store, &code);
  if (!c) return code;
  er_task_rec_t *r;
  int rc = er_status(c, key ? NULL : argv[i], key, &r);
  if (rc < 0) {
    cli_error("%s", er_client_last_error(c));
    code = cli_exit_for(rc);
  } else {
    json_t *o = er_task_rec_json(r);
    char *s = cli_json_text(o, JSON_INDENT(2));
    printf("%s\n", s ? s : "");
    free(s);
    json_decref(o);
    code = r->state == ER_STATE_UNKNOWN ? EXIT_NOT_FOUND : EXIT_OK;
    er_task_rec_free(r);
  }
  er_client_close(c);
  return code;
}

int cmd_revoke(int argc, char **argv) {
  static const char usage[] = "usage: errand revoke ID [--store URL]\n"
                              "A pending task never runs; a running one is told, then killed.\n"
                              CLI_STORE_HELP;
  const char *store = NULL;
  int code = EXIT_OK;
  int i = small_opts(argc, argv, usage, &store, NULL, &code);
  if (i < 0) return code;
  if (argc - i != 1) {
    cli_error("revoke needs one task ID");
    return EXIT_USAGE;
  }
  er_client_t *c = cli_open(store, &code);
  if (!c) return code;
  int rc = er_revoke(c, argv[i]);
  if (rc < 0) cli_error("%s", er_client_last_error(c));
  er_client_close(c);
  return cli_exit_for(rc);
}

int cmd_purge(int argc, char **argv) {
  static const char usage[] = "usage: errand purge QUEUE [--store URL]\n"
                              "Removes the queue's waiting tasks (not the running ones).\n"
                              CLI_STORE_HELP;
  const char *store = NULL;
  int code = EXIT_OK;
  int i = small_opts(argc, argv, usage, &store, NULL, &code);
  if (i < 0) return code;
  if (argc - i != 1) {
    cli_error("purge needs one queue name");
    return EXIT_USAGE;
  }
  er_client_t *c = cli_open(store, &code);
  if (!c) return code;
  size_t n = 0;
  char b[CLI_ESC_SIZE];
  int rc = er_purge(c, argv[i], &n);
  if (rc < 0)
    cli_error("%s", er_client_last_error(c));
  else
    printf("purged %zu tasks from queue '%s'\n", n, cli_esc(argv[i], b, sizeof b));
  er_client_close(c);
  return cli_exit_for(rc);
}

/* A heartbeat is whatever a worker wrote: a missing string prints as "?",
 * a string escaped into buf (CLI_ESC_SIZE). */
static const char *str_or_what(const json_t *v, char *buf) {
  return json_is_string(v) ? cli_esc(json_string_value(v), buf, CLI_ESC_SIZE) : "?";
}

/* Prints names, a JSON array of strings, as "a, b, c". */
static void print_names(const char *label, const json_t *names) {
  printf("    %s:", label);
  size_t i;
  json_t *n;
  char b[CLI_ESC_SIZE];
  json_array_foreach(names, i, n) printf("%s %s", i ? "," : "", str_or_what(n, b));
  printf("%s\n", json_array_size(names) ? "" : " (none)");
}

/* Prints a worker's tasks, an array of {"id", "task"[, "started_ms"]}. */
static void print_tasks(const char *label, const json_t *tasks, int64_t now) {
  printf("    %s:%s\n", label, json_array_size(tasks) ? "" : " (none)");
  size_t i;
  json_t *t;
  char b1[CLI_ESC_SIZE], b2[CLI_ESC_SIZE];
  json_array_foreach(tasks, i, t) {
    printf("      %s %s", str_or_what(json_object_get(t, "id"), b1),
           str_or_what(json_object_get(t, "task"), b2));
    json_t *started = json_object_get(t, "started_ms");
    if (json_is_integer(started)) {
      char at[32], d[32];
      printf("  started %s (%s ago)", cli_iso_time(json_integer_value(started), at),
             cli_duration(cli_ago(now, json_integer_value(started)), d));
    }
    printf("\n");
  }
}

/* One worker of er_store_workers: the counters its heartbeat carries, then
 * what it serves and holds when its heartbeat says (older workers do not). */
static void print_worker(const json_t *w, int64_t now) {
  char d[32], b1[CLI_ESC_SIZE], b2[CLI_ESC_SIZE];
  printf("  %s  pool=%s concurrency=%lld active=%lld processed=%lld",
         str_or_what(json_object_get(w, "id"), b1), str_or_what(json_object_get(w, "pool"), b2),
         (long long)json_integer_value(json_object_get(w, "concurrency")),
         (long long)json_integer_value(json_object_get(w, "active")),
         (long long)json_integer_value(json_object_get(w, "processed")));
  json_t *started = json_object_get(w, "started_ms");
  if (json_is_integer(started))
    printf("  up %s", cli_duration(cli_ago(now, json_integer_value(started)), d));
  printf(", beat %s ago\n",
         cli_duration(cli_ago(now, json_integer_value(json_object_get(w, "heartbeat_ms"))), d));
  print_names("queues", json_object_get(w, "queues"));
  json_t *f;
  if (json_is_array(f = json_object_get(w, "registered"))) print_names("registered", f);
  if (json_is_array(f = json_object_get(w, "active_tasks"))) print_tasks("active", f, now);
  if (json_is_array(f = json_object_get(w, "reserved_tasks"))) print_tasks("reserved", f, now);
}

int cmd_inspect(int argc, char **argv) {
  static const char usage[] =
      "usage: errand inspect [--store URL]\n"
      "Prints the queues with their counts by state, and the live workers: their\n"
      "queues, registered tasks, running (active) and reserved tasks.\n" CLI_STORE_HELP;
  const char *store = NULL;
  int code = EXIT_OK;
  int i = small_opts(argc, argv, usage, &store, NULL, &code);
  if (i < 0) return code;
  er_store_t *s;
  char msg[512] = "";
  int rc = er_store_open(store, &s, msg, sizeof msg);
  if (rc < 0) {
    cli_error("%s", *msg ? msg : er_strerror(rc));
    return cli_open_exit(rc);
  }
  json_t *stats = NULL, *workers = NULL;
  int64_t now = er_now_wall_ms();
  rc = er_store_stats(s, &stats);
  if (rc == 0) rc = er_store_workers(s, now, &workers);
  if (rc < 0) {
    cli_error("inspect: %s", er_store_last_error(s));
    code = EXIT_STORE;
  } else {
    char shown[512];
    er_url_redact(er_store_url(s), shown, sizeof shown);
    printf("store %s\n\nqueues:\n", shown);
    const char *qname;
    json_t *counts;
    json_t *queues = json_object_get(stats, "queues");
    if (!json_object_size(queues)) printf("  (none)\n");
    json_object_foreach(queues, qname, counts) {
      char b[CLI_ESC_SIZE];
      printf("  %-20s", cli_esc(qname, b, sizeof b));
      const char *state;
      json_t *n;
      json_object_foreach(counts, state, n) printf(" %s=%lld", state, (long long)json_integer_value(n));
      printf("\n");
    }
    printf("\nworkers:\n");
    if (!json_array_size(workers)) printf("  (none)\n");
    size_t k;
    json_t *w;
    json_array_foreach(workers, k, w) print_worker(w, now);
  }
  json_decref(stats);
  json_decref(workers);
  er_store_close(s);
  return code;
}
