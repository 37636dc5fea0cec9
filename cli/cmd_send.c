/* errand send and errand result: sending a task and reading its outcome. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cli_print_outcome(er_client_t *c, const char *id, int rc, json_t *result, json_t *error) {
  if (rc == 0) {
    char *s = cli_json_text(result ? result : json_null(), JSON_COMPACT);
    printf("%s\n", s ? s : "null");
    free(s);
    return EXIT_OK;
  }
  if (rc == ER_EFAIL || rc == ER_EREVOKED) {
    const char *name = json_string_value(json_object_get(error, "name"));
    const char *msg = json_string_value(json_object_get(error, "message"));
    cli_error("task %s %s: %s%s%s", id, rc == ER_EREVOKED ? "was revoked" : "failed",
              name ? name : "", name ? ": " : "", msg ? msg : "");
    return EXIT_TASK_FAILED;
  }
  cli_error("%s", er_client_last_error(c));
  return cli_exit_for(rc);
}

/* --expires: seconds after sending, or a UTC time. An expiry already past
 * (0 s, or a past time) becomes 1 ms after sending, the soonest the library
 * takes (0 means "never expires", a negative time is refused): the task can
 * never start, and the first reserve ends it REVOKED as expired. */
static bool expires_opt(const char *s, int64_t *expires_ms) {
  int64_t ms;
  if (strchr(s, 'T')) {
    if (!cli_time_opt("--expires", s, &ms)) return false;
    ms -= er_now_wall_ms();
  } else if (!cli_seconds_opt("--expires", s, 0, CLI_MAX_SECONDS_MS, &ms)) {
    return false;
  }
  *expires_ms = ms > 0 ? ms : 1;
  return true;
}

static const char send_usage[] =
    "usage: errand send TASK [options]\n"
    "Sends TASK and prints its id; with --wait, its result as JSON.\n"
    "      --args JSON     positional arguments, a JSON array\n"
    "      --kwargs JSON   keyword arguments, a JSON object\n"
    "      --context JSON  the caller's data for the task, a JSON object\n"
    "      --countdown S   run no sooner than S seconds from now (0 to 1000000000)\n"
    "      --eta TIME      run no sooner than TIME, a UTC time like\n"
    "                      2026-12-02T11:40:00Z; a past TIME runs now\n"
    "      --expires S|TIME  revoked (error \"expired\") if not started within S\n"
    "                      seconds (0 to 1000000000) or by TIME; 0 or a past TIME:\n"
    "                      never runs (a worker's first look ends it)\n"
    "      --key K         a polling key: status and result take --key K\n"
    "      --name N        a unique name: refused while a task by that name is known\n"
    "      --if-absent     with --key: a live task for K is returned, not added\n"
    "      --queue Q       the queue (default: the task's queue, else default)\n"
    "      --priority P    an integer, higher runs first (default 0)\n"
    "      --wait          wait and print the result (a progress bar on a terminal);\n"
    "                      warns when no live worker serves the queue\n"
    "      --timeout S     with --wait: give up after S seconds (0 to 1000000000),\n"
    "                      print the id, exit 5\n"
    CLI_STORE_HELP;

int cmd_send(int argc, char **argv) {
  static const struct option opts[] = {
      {"args", required_argument, 0, 'a'},    {"kwargs", required_argument, 0, 'k'},
      {"countdown", required_argument, 0, 'C'}, {"key", required_argument, 0, 'K'},
      {"name", required_argument, 0, 'n'},    {"queue", required_argument, 0, 'Q'},
      {"priority", required_argument, 0, 'p'}, {"if-absent", no_argument, 0, 'i'},
      {"context", required_argument, 0, 'x'}, {"wait", no_argument, 0, 'w'},
      {"timeout", required_argument, 0, 't'}, {"store", required_argument, 0, 's'},
      {"store-file", required_argument, 0, 'S'}, {"help", no_argument, 0, 'h'},
      {"eta", required_argument, 0, 'e'},     {"expires", required_argument, 0, 'E'},
      {0, 0, 0, 0}};
  const char *args_s = NULL, *kwargs_s = NULL, *ctx_s = NULL, *store = NULL, *expires = NULL;
  er_send_opts_t so = {0};
  bool wait = false;
  int64_t timeout = -1;
  int c;
  while ((c = cli_getopt(argc, argv, ":h", opts)) != -1) {
    switch (c) {
      case 'a': args_s = optarg; break;
      case 'k': kwargs_s = optarg; break;
      case 'x': ctx_s = optarg; break;
      case 'C':
        if (!cli_seconds_opt("--countdown", optarg, 0, CLI_MAX_SECONDS_MS, &so.countdown_ms))
          return EXIT_USAGE;
        break;
      case 'e':
        if (!cli_time_opt("--eta", optarg, &so.eta_ms)) return EXIT_USAGE;
        break;
      case 'E': expires = optarg; break;
      case 'K': so.key = optarg; break;
      case 'n': so.name = optarg; break;
      case 'Q': so.queue = optarg; break;
      case 'p':
        if (!cli_int_opt("--priority", optarg, INT_MIN, INT_MAX, &so.priority)) return EXIT_USAGE;
        break;
      case 'i': so.if_absent = true; break;
      case 'w': wait = true; break;
      case 't':
        if (!cli_seconds_opt("--timeout", optarg, 0, CLI_MAX_SECONDS_MS, &timeout))
          return EXIT_USAGE;
        break;
      case 's':
      case 'S':
        if (!cli_store_opt(c, optarg, &store)) return EXIT_USAGE;
        break;
      case 'h': fputs(send_usage, stdout); return EXIT_OK;
      default: return EXIT_USAGE; /* cli_getopt said why */
    }
  }
  if (optind != argc - 1) {
    cli_error("send needs exactly one task name (see errand send --help)");
    return EXIT_USAGE;
  }
  if (so.countdown_ms && so.eta_ms) {
    cli_error("give --countdown or --eta, not both");
    return EXIT_USAGE;
  }
  if (expires && !expires_opt(expires, &so.expires_ms)) return EXIT_USAGE;
  json_t *args = NULL, *kwargs = NULL, *ctx = NULL;
  int code = EXIT_USAGE;
  if ((args_s && !(args = cli_json_arg("--args", args_s))) ||
      (kwargs_s && !(kwargs = cli_json_arg("--kwargs", kwargs_s))) ||
      (ctx_s && !(ctx = cli_json_arg("--context", ctx_s))))
    goto out;
  so.context = ctx;
  er_client_t *cl = cli_open(store, &code);
  if (!cl) goto out;
  er_id_t id;
  int rc = er_send(cl, argv[optind], args, kwargs, &so, &id);
  if (rc < 0) {
    cli_error("%s", er_client_last_error(cl));
    code = cli_exit_for(rc);
  } else if (wait) {
    code = cli_wait_result(cl, id.text, timeout);
    /* Not finished in time: the id on stdout, for a script to wait again. */
    if (code == EXIT_NOT_READY) printf("%s\n", id.text);
  } else {
    printf("%s\n", id.text);
    code = EXIT_OK;
  }
  er_client_close(cl);
out:
  json_decref(args);
  json_decref(kwargs);
  json_decref(ctx);
  return code;
}

static const char result_usage[] =
    "usage: errand result ID|--key K [--wait [--timeout S]] [--store URL]\n"
    "Prints the result as JSON.\n"
    "      --key K         the newest task sent with --key K\n"
    "      --wait          wait for it (a progress bar on a terminal); warns when\n"
    "                      no live worker serves the task's queue\n"
    "      --timeout S     with --wait: give up after S seconds (0 to 1000000000;\n"
    "                      exit 5)\n"
    CLI_STORE_HELP;

int cmd_result(int argc, char **argv) {
  static const struct option opts[] = {
      {"key", required_argument, 0, 'K'},   {"wait", no_argument, 0, 'w'},
      {"timeout", required_argument, 0, 't'}, {"store", required_argument, 0, 's'},
      {"store-file", required_argument, 0, 'S'}, {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0}};
  const char *key = NULL, *store = NULL;
  bool wait = false;
  int64_t timeout = -1;
  int c;
  while ((c = cli_getopt(argc, argv, ":h", opts)) != -1) {
    switch (c) {
      case 'K': key = optarg; break;
      case 'w': wait = true; break;
      case 't':
        if (!cli_seconds_opt("--timeout", optarg, 0, CLI_MAX_SECONDS_MS, &timeout))
          return EXIT_USAGE;
        break;
      case 's':
      case 'S':
        if (!cli_store_opt(c, optarg, &store)) return EXIT_USAGE;
        break;
      case 'h': fputs(result_usage, stdout); return EXIT_OK;
      default: return EXIT_USAGE; /* cli_getopt said why */
    }
  }
  if ((optind == argc) == (key == NULL) || argc - optind > 1) {
    cli_error("result needs an ID or --key K (see errand result --help)");
    return EXIT_USAGE;
  }
  int code;
  er_client_t *cl = cli_open(store, &code);
  if (!cl) return code;
  er_id_t id;
  if (key && er_id_for_key(cl, key, &id) < 0) {
    cli_error("%s", er_client_last_error(cl));
    code = EXIT_NOT_FOUND;
  } else {
    const char *tid = key ? id.text : argv[optind];
    if (wait) {
      code = cli_wait_result(cl, tid, timeout);
    } else {
      json_t *result = NULL, *error = NULL;
      int rc = er_result(cl, tid, NULL, 0, &result, &error);
      code = cli_print_outcome(cl, tid, rc, result, error);
      json_decref(result);
      json_decref(error);
    }
  }
  er_client_close(cl);
  return code;
}
