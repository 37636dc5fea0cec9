/* errand pipeline: start, wait for, show, abort, list and clean up pipelines. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define POLL_MS 100

static const char pipeline_usage[] =
    "usage: errand pipeline start NAME [options] | wait ROOT | show ROOT | abort ROOT | list\n"
    "       | callback ID [NAME=VALUE ...] | cleanup | rotate-secret\n"
    "  start NAME      starts a root pipeline and prints its id; with --wait its\n"
    "                  default output as JSON (exit 1 with the message if it aborts)\n"
    "      --args JSON     positional arguments, a JSON array\n"
    "      --kwargs JSON   keyword arguments, a JSON object\n"
    "      --key K         an idempotence key: a second start is refused (exit 2)\n"
    "      --queue Q       the queue of the tree's internal tasks (default default)\n"
    "      --countdown S   start no sooner than S seconds from now\n"
    "  -A, --app LIB       load LIB to check NAME (without it NAME is not checked)\n"
    "      --wait          wait for the root's output\n"
    "      --timeout S     with --wait (and wait): give up after S seconds, exit 5\n"
    "  wait ROOT       as start --wait, for a started root\n"
    "  show ROOT       the tree, a line per pipeline, coloured by status on a terminal\n"
    "      --json          the tree as JSON\n"
    "  abort ROOT      aborts the tree; says whether it was already over\n"
    "      --message M     the abort message (default aborted)\n"
    "  list            roots, newest first\n"
    "      --name N        only the roots named N\n"
    "      --limit N       at most N (default 100)\n"
    "  callback ID [NAME=VALUE ...]  delivers a callback to async pipeline ID\n"
    "                  (no token: the operator's path), waits for a worker to run\n"
    "                  it and prints its answer; --timeout S gives up, exit 5\n"
    "  cleanup         deletes the trees of roots finished over the retention ago\n"
    "      --older-than S  roots finished over S seconds ago (default: the store's\n"
    "                      pipe_retention_ms, 7 days)\n"
    "  rotate-secret   a new secret for callback tokens; those made before stay\n"
    "                  valid until the next rotation\n"
    CLI_STORE_HELP;

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Waits for root to be over: prints its output (done) or its abort message. */
static int wait_root(er_client_t *c, const char *root, int64_t timeout_ms) {
  int64_t end = timeout_ms < 0 ? 0 : er_now_wall_ms() + timeout_ms;
  for (;;) {
    json_t *d = NULL;
    int rc = er_pipeline_get(c, root, &d);
    if (rc < 0) {
      cli_error("%s", er_client_last_error(c));
      return cli_exit_for(rc);
    }
    const char *st = json_string_value(json_object_get(d, "status"));
    const char *msg = json_string_value(json_object_get(d, "abort_message"));
    char esc[CLI_ESC_SIZE];
    int code = -1;
    if (st && !strcmp(st, "aborted")) {
      cli_error("pipeline %s aborted: %s", root, msg ? msg : "");
      code = EXIT_TASK_FAILED;
    } else if (st && !strcmp(st, "done")) {
      json_t *v = NULL;
      rc = er_pipeline_output(c, root, NULL, &v);
      code = rc < 0 ? cli_exit_for(rc) : EXIT_OK;
      if (rc < 0) cli_error("%s", er_client_last_error(c));
      char *s = rc < 0 ? NULL : cli_json_text(v ? v : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
      if (s) printf("%s\n", s);
      free(s);
      json_decref(v);
    } else if (end && er_now_wall_ms() >= end) {
      printf("%s\n", cli_esc(root, esc, sizeof esc));
      cli_error("pipeline %s is not finished (status %s)", root, st ? st : "?");
      code = EXIT_NOT_READY;
    }
    json_decref(d);
    if (code >= 0) return code;
    sleep_ms(POLL_MS);
  }
}

/* A record's string field, "" when absent (records come from the store). */
static const char *field(const json_t *j, const char *name) {
  const char *s = json_string_value(json_object_get(j, name));
  return s ? s : "";
}

static const char *colour(const char *status) {
  if (!strcmp(status, "done")) return "\033[32m";
  if (!strcmp(status, "aborted")) return "\033[31m";
  if (!strcmp(status, "retry")) return "\033[33m";
  if (!strcmp(status, "waiting")) return "\033[2m";
  return "\033[36m";
}

static void show_one(json_t *tree, const char *id, int depth, bool tty) {
  json_t *p = json_object_get(json_object_get(tree, "pipelines"), id);
  if (!p) return;
  const char *st = json_string_value(json_object_get(p, "status"));
  const char *out_id = json_string_value(json_object_get(json_object_get(p, "outputs"), "default"));
  json_t *slot = json_object_get(json_object_get(tree, "slots"), out_id ? out_id : "");
  char name[CLI_ESC_SIZE], e1[CLI_ESC_SIZE], e2[CLI_ESC_SIZE];
  char *val = NULL;
  if (slot && !strcmp(json_string_value(json_object_get(slot, "status")), "filled"))
    val = cli_json_text(json_object_get(slot, "value"), JSON_COMPACT | JSON_ENCODE_ANY);
  printf("%*s%s%-10s%s %s %s", depth * 2, "", tty ? colour(st ? st : "") : "", st ? st : "?",
         tty ? "\033[0m" : "", cli_esc(field(p, "name"), name,
                                       sizeof name), id);
  if (val) printf(" = %s", cli_esc(val, e1, sizeof e1));
  json_int_t att = json_integer_value(json_object_get(p, "attempts"));
  if (att > 1) printf(" (attempt %d)", (int)att);
  const char *why = json_string_value(json_object_get(p, st && !strcmp(st, "aborted")
                                                             ? "abort_message" : "retry_message"));
  if (why && st && strcmp(st, "done")) printf(": %s", cli_esc(why, e2, sizeof e2));
  const char *sm = json_string_value(json_object_get(p, "status_message"));
  if (sm) printf(" [%s]", cli_esc(sm, e2, sizeof e2));
  printf("\n");
  const char *ln;
  json_t *url;
  json_object_foreach(json_object_get(p, "links"), ln, url) /* a line each, under it */
    printf("%*s  %s: %s\n", depth * 2, "", cli_esc(ln, e1, sizeof e1),
           cli_esc(json_is_string(url) ? json_string_value(url) : "", e2, sizeof e2));
  free(val);
  size_t i;
  json_t *child;
  json_array_foreach(json_object_get(p, "children"), i, child)
    show_one(tree, json_string_value(child), depth + 1, tty);
}

static int show(er_client_t *c, const char *root, bool as_json) {
  json_t *t = NULL;
  int rc = er_pipeline_tree(c, root, &t);
  if (rc < 0) {
    cli_error("%s", er_client_last_error(c));
    return cli_exit_for(rc);
  }
  if (as_json) {
    char *s = cli_json_text(t, JSON_INDENT(2) | JSON_SORT_KEYS);
    printf("%s\n", s ? s : "{}");
    free(s);
  } else {
    show_one(t, root, 0, isatty(1));
  }
  json_decref(t);
  return EXIT_OK;
}

static int list(er_client_t *c, const char *name, int limit) {
  json_t *l = NULL;
  int rc = er_pipeline_list(c, name, NULL, (size_t)limit, &l, NULL);
  if (rc < 0) {
    cli_error("%s", er_client_last_error(c));
    return cli_exit_for(rc);
  }
  size_t i;
  json_t *e;
  json_array_foreach(l, i, e) {
    char when[32], n[CLI_ESC_SIZE];
    const char *st = json_string_value(json_object_get(e, "status"));
    printf("%s  %-10s %s  %s\n", field(e, "id"), st ? st : "?",
           cli_iso_time(json_integer_value(json_object_get(e, "created_ms")), when),
           cli_esc(field(e, "name"), n, sizeof n));
  }
  json_decref(l);
  return EXIT_OK;
}

static int cleanup(er_client_t *c, int64_t older_than_ms) {
  er_pipeline_cleanup_counts_t n;
  int rc = er_pipeline_cleanup(c, older_than_ms, &n);
  if (rc < 0) {
    cli_error("%s", er_client_last_error(c));
    return cli_exit_for(rc);
  }
  printf("deleted %zu roots (%zu documents)\n", n.roots, n.docs);
  return EXIT_OK;
}

static int start(er_client_t *c, const char *name, const char *args_s, const char *kwargs_s,
                 er_pipeline_opts_t *po, bool wait, int64_t timeout) {
  if (!po->unchecked && !er_pipeline_lookup(name)) {
    cli_error("unknown pipeline '%s' (not in the libraries given with -A)", name);
    return EXIT_USAGE;
  }
  /* Without -A the command knows no pipeline: the live workers' heartbeats
   * list theirs. No live worker (one may come) or a store that cannot say:
   * the start goes ahead. */
  int live = 0;
  if (po->unchecked && cli_workers_listing(c, "pipelines", name, &live) == 0 && live > 0) {
    cli_error("unknown pipeline '%s': no live worker has registered it (-A LIB checks a "
              "library instead)",
              name);
    return EXIT_USAGE;
  }
  json_t *args = args_s ? cli_json_arg("--args", args_s) : NULL;
  json_t *kwargs = kwargs_s ? cli_json_arg("--kwargs", kwargs_s) : NULL;
  if ((args_s && !args) || (kwargs_s && !kwargs)) {
    json_decref(args);
    return EXIT_USAGE;
  }
  er_id_t root;
  int rc = er_pipeline_start(c, name, args, kwargs, po, &root);
  json_decref(args);
  json_decref(kwargs);
  if (rc < 0) {
    cli_error("%s", er_client_last_error(c));
    return cli_exit_for(rc);
  }
  if (wait) return wait_root(c, root.text, timeout);
  printf("%s\n", root.text);
  return EXIT_OK;
}

int cmd_pipeline(int argc, char **argv) {
  static const struct option opts[] = {
      {"args", required_argument, 0, 'a'},    {"kwargs", required_argument, 0, 'k'},
      {"key", required_argument, 0, 'K'},     {"queue", required_argument, 0, 'Q'},
      {"countdown", required_argument, 0, 'C'}, {"app", required_argument, 0, 'A'},
      {"wait", no_argument, 0, 'w'},          {"timeout", required_argument, 0, 't'},
      {"json", no_argument, 0, 'j'},          {"message", required_argument, 0, 'm'},
      {"name", required_argument, 0, 'n'},    {"limit", required_argument, 0, 'l'},
      {"store", required_argument, 0, 's'},   {"store-file", required_argument, 0, 'S'},
      {"older-than", required_argument, 0, 'O'},
      {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
  const char *args_s = NULL, *kwargs_s = NULL, *store = NULL, *message = NULL, *name = NULL;
  er_pipeline_opts_t po = {.unchecked = true};
  bool wait = false, as_json = false;
  int64_t timeout = -1, older_than = -1;
  int limit = 100, c;
  char err[512];
  while ((c = cli_getopt(argc, argv, ":hA:", opts)) != -1) {
    switch (c) {
      case 'a': args_s = optarg; break;
      case 'k': kwargs_s = optarg; break;
      case 'K': po.key = optarg; break;
      case 'Q': po.queue = optarg; break;
      case 'C':
        if (!cli_seconds_opt("--countdown", optarg, 0, CLI_MAX_SECONDS_MS, &po.countdown_ms))
          return EXIT_USAGE;
        break;
      case 'A':
        if (er_task_load_library(optarg, err, sizeof err) < 0) {
          cli_error("%s", err);
          return EXIT_USAGE;
        }
        po.unchecked = false; /* the library says which names exist */
        break;
      case 'w': wait = true; break;
      case 't':
        if (!cli_seconds_opt("--timeout", optarg, 0, CLI_MAX_SECONDS_MS, &timeout)) return EXIT_USAGE;
        break;
      case 'j': as_json = true; break;
      case 'm': message = optarg; break;
      case 'n': name = optarg; break;
      case 'l':
        if (!cli_int_opt("--limit", optarg, 1, 10000, &limit)) return EXIT_USAGE;
        break;
      case 'O':
        if (!cli_seconds_opt("--older-than", optarg, 0, CLI_MAX_SECONDS_MS, &older_than))
          return EXIT_USAGE;
        break;
      case 's':
      case 'S':
        if (!cli_store_opt(c, optarg, &store)) return EXIT_USAGE;
        break;
      case 'h': fputs(pipeline_usage, stdout); return EXIT_OK;
      default: return EXIT_USAGE; /* cli_getopt said why */
    }
  }
  const char *sub = optind < argc ? argv[optind] : NULL;
  const char *arg = optind + 1 < argc ? argv[optind + 1] : NULL;
  bool needs_arg = sub && strcmp(sub, "list") != 0 && strcmp(sub, "cleanup") != 0 &&
                   strcmp(sub, "rotate-secret") != 0;
  bool more = sub && strcmp(sub, "callback") == 0; /* its NAME=VALUE parameters */
  if (!sub || (needs_arg && !arg) || (!more && optind + (needs_arg ? 2 : 1) < argc)) {
    cli_error("pipeline: give a subcommand and its argument (see errand pipeline --help)");
    return EXIT_USAGE;
  }
  static const char *const subs[] = {"start", "wait",     "show",    "abort",
                                     "list",  "callback", "cleanup", "rotate-secret"};
  bool known = false;
  for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) known = known || !strcmp(sub, subs[i]);
  if (!known) {
    cli_error("pipeline: unknown subcommand '%s' (see errand pipeline --help)", sub);
    return EXIT_USAGE;
  }
  int code;
  er_client_t *cl = cli_open(store, &code);
  if (!cl) return code;
  bool aborted = false;
  if (!strcmp(sub, "start")) {
    code = start(cl, arg, args_s, kwargs_s, &po, wait, timeout);
  } else if (!strcmp(sub, "wait")) {
    code = wait_root(cl, arg, timeout);
  } else if (!strcmp(sub, "show")) {
    code = show(cl, arg, as_json);
  } else if (!strcmp(sub, "list")) {
    code = list(cl, name, limit);
  } else if (!strcmp(sub, "callback")) {
    code = cli_pipeline_callback(cl, arg, argc - optind - 2, argv + optind + 2, timeout);
  } else if (!strcmp(sub, "cleanup")) {
    code = cleanup(cl, older_than);
  } else if (!strcmp(sub, "rotate-secret")) {
    int rc = er_pipeline_secret_rotate(cl);
    if (rc < 0) cli_error("%s", er_client_last_error(cl));
    else printf("rotated: callback tokens made before stay valid until the next rotation\n");
    code = cli_exit_for(rc);
  } else {
    int rc = er_pipeline_abort(cl, arg, message, &aborted);
    if (rc < 0) cli_error("%s", er_client_last_error(cl));
    else printf("%s\n", aborted ? "aborting" : "already aborted or done");
    code = cli_exit_for(rc);
  }
  er_client_close(cl);
  return code;
}
