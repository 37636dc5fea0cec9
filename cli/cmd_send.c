/* errand send and errand result: sending a task and reading its outcome. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

int cli_print_outcome(er_client_t *c, const char *id, int rc, json_t *result, json_t *error) {
  if (rc == 0) {
    char *s = json_dumps(result ? result : json_null(), JSON_ENCODE_ANY | JSON_COMPACT);
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

/* Shows "[#####.....]  50% message" on stderr while the task reports progress. */
static void draw(const er_task_rec_t *r) {
  int filled = (int)(r->progress * 30 + 0.5);
  char bar[31];
  for (int i = 0; i < 30; i++) bar[i] = i < filled ? '#' : '.';
  bar[30] = 0;
  fprintf(stderr, "\r[%s] %3d%% %-40.40s", bar, (int)(r->progress * 100 + 0.5),
          r->progress_msg ? r->progress_msg : er_state_name(r->state));
  fflush(stderr);
}

int cli_wait_result(er_client_t *c, const char *id, int64_t timeout_ms) {
  json_t *result = NULL, *error = NULL;
  int rc;
  if (isatty(2)) {
    /* On a terminal: poll the status to draw progress, waiting in steps. */
    uint64_t deadline = timeout_ms > 0 ? er_now_mono_ms() + (uint64_t)timeout_ms : 0;
    bool drawn = false;
    for (;;) {
      er_task_rec_t *r;
      if (er_status(c, id, NULL, &r) == 0 && r->progress >= 0 && !er_state_finished(r->state)) {
        draw(r);
        drawn = true;
      }
      er_task_rec_free(r);
      int64_t step = 200;
      if (deadline) {
        uint64_t now = er_now_mono_ms();
        step = now >= deadline ? 0 : (int64_t)(deadline - now) < step ? (int64_t)(deadline - now) : step;
      }
      rc = er_result(c, id, NULL, step ? step : 1, &result, &error);
      if (rc != ER_ETIMEDOUT || (deadline && er_now_mono_ms() >= deadline)) break;
    }
    if (drawn) fprintf(stderr, "\r%78s\r", "");
  } else {
    rc = er_result(c, id, NULL, timeout_ms, &result, &error);
  }
  int code = cli_print_outcome(c, id, rc, result, error);
  json_decref(result);
  json_decref(error);
  return code;
}

static const char send_usage[] =
    "usage: errand send TASK [--args JSON] [--kwargs JSON] [--countdown S] [--key K]\n"
    "                   [--name N] [--queue Q] [--priority P] [--if-absent]\n"
    "                   [--context JSON] [--wait [--timeout S]] [--store URL]\n"
    "Prints the task's id, or with --wait its result as JSON.\n";

int cmd_send(int argc, char **argv) {
  static const struct option opts[] = {
      {"args", required_argument, 0, 'a'},    {"kwargs", required_argument, 0, 'k'},
      {"countdown", required_argument, 0, 'C'}, {"key", required_argument, 0, 'K'},
      {"name", required_argument, 0, 'n'},    {"queue", required_argument, 0, 'Q'},
      {"priority", required_argument, 0, 'p'}, {"if-absent", no_argument, 0, 'i'},
      {"context", required_argument, 0, 'x'}, {"wait", no_argument, 0, 'w'},
      {"timeout", required_argument, 0, 't'}, {"store", required_argument, 0, 's'},
      {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
  const char *args_s = NULL, *kwargs_s = NULL, *ctx_s = NULL, *store = NULL;
  er_send_opts_t so = {0};
  bool wait = false;
  int64_t timeout = -1;
  int c;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
      case 'a': args_s = optarg; break;
      case 'k': kwargs_s = optarg; break;
      case 'x': ctx_s = optarg; break;
      case 'C':
        if (!cli_seconds_opt("--countdown", optarg, &so.countdown_ms)) return EXIT_USAGE;
        break;
      case 'K': so.key = optarg; break;
      case 'n': so.name = optarg; break;
      case 'Q': so.queue = optarg; break;
      case 'p': so.priority = atoi(optarg); break;
      case 'i': so.if_absent = true; break;
      case 'w': wait = true; break;
      case 't':
        if (!cli_seconds_opt("--timeout", optarg, &timeout)) return EXIT_USAGE;
        break;
      case 's': store = optarg; break;
      case 'h': fputs(send_usage, stdout); return EXIT_OK;
      default: fputs(send_usage, stderr); return EXIT_USAGE;
    }
  }
  if (optind != argc - 1) {
    cli_error("send needs exactly one task name (see errand send --help)");
    return EXIT_USAGE;
  }
  json_t *args = NULL, *kwargs = NULL, *ctx = NULL;
  int code = EXIT_USAGE;
  if ((args_s && !(args = cli_json_arg("--args", args_s))) ||
      (kwargs_s && !(kwargs = cli_json_arg("--kwargs", kwargs_s))) ||
      (ctx_s && !(ctx = cli_json_arg("--context", ctx_s))))
    goto out;
  so.context = ctx;
  er_client_t *cl = cli_open(store);
  if (!cl) {
    code = EXIT_STORE;
    goto out;
  }
  er_id_t id;
  int rc = er_send(cl, argv[optind], args, kwargs, &so, &id);
  if (rc < 0) {
    cli_error("%s", er_client_last_error(cl));
    code = cli_exit_for(rc);
  } else if (wait) {
    code = cli_wait_result(cl, id.text, timeout);
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
    "Prints the result as JSON; with --wait, waits for it (a progress bar on a terminal).\n";

int cmd_result(int argc, char **argv) {
  static const struct option opts[] = {
      {"key", required_argument, 0, 'K'},   {"wait", no_argument, 0, 'w'},
      {"timeout", required_argument, 0, 't'}, {"store", required_argument, 0, 's'},
      {"help", no_argument, 0, 'h'},         {0, 0, 0, 0}};
  const char *key = NULL, *store = NULL;
  bool wait = false;
  int64_t timeout = -1;
  int c;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
      case 'K': key = optarg; break;
      case 'w': wait = true; break;
      case 't':
        if (!cli_seconds_opt("--timeout", optarg, &timeout)) return EXIT_USAGE;
        break;
      case 's': store = optarg; break;
      case 'h': fputs(result_usage, stdout); return EXIT_OK;
      default: fputs(result_usage, stderr); return EXIT_USAGE;
    }
  }
  if ((optind == argc) == (key == NULL) || argc - optind > 1) {
    cli_error("result needs an ID or --key K (see errand result --help)");
    return EXIT_USAGE;
  }
  er_client_t *cl = cli_open(store);
  if (!cl) return EXIT_STORE;
  er_id_t id;
  int code;
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
