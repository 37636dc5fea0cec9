/* errand tasks: the store's tasks, newest first, filtered by state, task
 * name and queue, a page at a time. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
    "usage: errand tasks [--state S] [--name N] [--queue Q] [--limit L] [--cursor C]\n"
    "                    [--json] [--store URL]\n"
    "Lists tasks newest first, one line each: id, state, task name, queue, created,\n"
    "finished (UTC). When more are left, the last line (on stderr) gives the --cursor\n"
    "for the next page.\n"
    "      --state S       only tasks in state S (PENDING, STARTED, RETRY, SUCCESS,\n"
    "                      FAILURE, REVOKED; any case)\n"
    "      --name N        only tasks of the registered task name N\n"
    "      --queue Q       only tasks on queue Q\n"
    "      --limit L       at most L tasks, 1 to 1000 (default 50)\n"
    "      --cursor C      the page after the one that gave cursor C\n"
    "      --json          {\"tasks\": [record...], \"next_cursor\": C} as the HTTP API\n"
    "                      answers it (next_cursor absent on the last page)\n" CLI_STORE_HELP;

/* The options into req; -1 after printing usage or an error (*code set), else
 * 0. */
static int parse(int argc, char **argv, er_task_list_req_t *req, bool *json, const char **store,
                 int *code) {
  static const struct option opts[] = {{"state", required_argument, 0, 't'},
                                       {"name", required_argument, 0, 'n'},
                                       {"queue", required_argument, 0, 'q'},
                                       {"limit", required_argument, 0, 'l'},
                                       {"cursor", required_argument, 0, 'c'},
                                       {"json", no_argument, 0, 'j'},
                                       {"store", required_argument, 0, 's'},
                                       {"store-file", required_argument, 0, 'S'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  int c, limit;
  *code = EXIT_USAGE;
  while ((c = cli_getopt(argc, argv, ":h", opts)) != -1) {
    switch (c) {
      case 't':
        req->by_state = true;
        req->state = er_state_from_name(optarg);
        if (req->state == ER_STATE_UNKNOWN) {
          cli_error("--state: unknown state '%s' (PENDING, STARTED, RETRY, SUCCESS, FAILURE or "
                    "REVOKED)", optarg);
          return -1;
        }
        break;
      case 'n': req->task = optarg; break;
      case 'q': req->queue = optarg; break;
      case 'l':
        if (!cli_int_opt("--limit", optarg, 1, ER_TASK_LIST_MAX, &limit)) return -1;
        req->limit = (size_t)limit;
        break;
      case 'c':
        if (!er_id_valid(optarg)) {
          cli_error("--cursor: '%s' is not a cursor errand tasks printed", optarg);
          return -1;
        }
        req->cursor = optarg;
        break;
      case 'j': *json = true; break;
      case 's':
      case 'S':
        if (!cli_store_opt(c, optarg, store)) return -1;
        break;
      case 'h':
        fputs(usage, stdout);
        *code = EXIT_OK;
        return -1;
      default: return -1;
    }
  }
  if (optind < argc) {
    cli_error("tasks takes no arguments ('%s'); see errand tasks --help", argv[optind]);
    return -1;
  }
  *code = EXIT_OK;
  return 0;
}

static void print_line(const er_task_rec_t *r) {
  char task[CLI_ESC_SIZE], queue[CLI_ESC_SIZE], created[32], finished[32];
  printf("%s  %-8s  %-20s  %-12s  %s  %s\n", r->id, er_state_name(r->state),
         cli_esc(r->task ? r->task : "-", task, sizeof task),
         cli_esc(r->queue ? r->queue : "-", queue, sizeof queue),
         cli_iso_time(r->created_ms, created),
         r->finished_ms ? cli_iso_time(r->finished_ms, finished) : "-");
}

int cmd_tasks(int argc, char **argv) {
  er_task_list_req_t req = {0};
  bool json = false;
  const char *store = NULL;
  int code;
  if (parse(argc, argv, &req, &json, &store, &code) < 0) return code;
  er_store_t *s;
  char msg[512] = "";
  int rc = er_store_open(store, &s, msg, sizeof msg);
  if (rc < 0) {
    cli_error("%s", *msg ? msg : er_strerror(rc));
    return cli_open_exit(rc);
  }
  er_task_rec_t **recs = NULL;
  size_t n = 0;
  char next[ER_ID_LEN + 1] = "";
  rc = er_store_list_tasks(s, &req, &recs, &n, next);
  if (rc < 0) {
    cli_error("tasks: %s", er_store_last_error(s));
    er_store_close(s);
    return rc == ER_EINVAL ? EXIT_USAGE : EXIT_STORE;
  }
  if (json) {
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(arr, er_task_rec_json(recs[i]));
    json_t *o = json_pack("{s:o}", "tasks", arr);
    if (o && next[0]) json_object_set_new(o, "next_cursor", json_string(next));
    char *text = cli_json_text(o, JSON_INDENT(2));
    printf("%s\n", text ? text : "");
    free(text);
    json_decref(o);
  } else {
    for (size_t i = 0; i < n; i++) print_line(recs[i]);
    if (next[0]) fprintf(stderr, "more: errand tasks --cursor %s\n", next);
  }
  er_task_rec_free_array(recs, n);
  er_store_close(s);
  return EXIT_OK;
}
