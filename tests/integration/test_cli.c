/* The errand command as a user meets it: the real binary on a real SQLite
 * store, its exit codes, stdout and stderr. */
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

static harness_t H;

static int setup(void **state) {
  h_setup(&H, NULL);
  return 0;
}

static int teardown(void **state) {
  h_teardown(&H);
  return 0;
}

/* An error is one line on stderr, starting "errand: ". */
static void assert_one_error_line(const char *err, const char *needle) {
  if (!strstr(err, needle)) fail_msg("stderr lacks '%s': %s", needle, err);
  assert_int_equal(strncmp(err, "errand: ", 8), 0);
  assert_ptr_equal(strchr(err, '\n'), err + strlen(err) - 1);
}

/* Runs the command (args NULL-ended, at most 6) expecting exit 2 and one
 * error line naming opt. */
static void expect_refused(const char *opt, const char *const *args) {
  char *a[7] = {0};
  for (int i = 0; i < 6 && args[i]; i++) a[i] = (char *)args[i];
  char *out = NULL, *err = NULL;
  int rc = h_cli(&H, &out, &err, a[0], a[1], a[2], a[3], a[4], a[5], NULL);
  if (rc != 2) fail_msg("%s %s %s: exit %d, not 2 (%s)", a[0], a[1], a[2], rc, err);
  assert_one_error_line(err, opt);
  free(out);
  free(err);
}

static void number_options_are_strict(void **s) {
  static const char *const bad_ints[] = {"high", "7x", "", "1.5", " 3", "99999999999", NULL};
  for (int i = 0; bad_ints[i]; i++) {
    expect_refused("--priority", (const char *[]){"send", "add", "--priority", bad_ints[i], NULL});
    expect_refused("--concurrency", (const char *[]){"worker", "--concurrency", bad_ints[i], NULL});
    expect_refused("--prefetch", (const char *[]){"worker", "--prefetch", bad_ints[i], NULL});
  }
  expect_refused("--concurrency", (const char *[]){"worker", "-c", "0", NULL});
  expect_refused("--prefetch", (const char *[]){"worker", "--prefetch", "-2", NULL});
  static const char *const bad_secs[] = {"nan", "inf", "-1", "1x", "1e999", "0x10", " 5", "1..2",
                                         ".", "", "2000000000", NULL};
  for (int i = 0; bad_secs[i]; i++) {
    expect_refused("--countdown", (const char *[]){"send", "add", "--countdown", bad_secs[i], NULL});
    expect_refused("--timeout",
                   (const char *[]){"result", "--key", "k", "--wait", "--timeout", bad_secs[i], NULL});
    expect_refused("--lease", (const char *[]){"worker", "--lease", bad_secs[i], NULL});
    expect_refused("--grace", (const char *[]){"worker", "--grace", bad_secs[i], NULL});
  }
  /* Good numbers still pass, and mean what they say. */
  char *out = NULL, *err = NULL;
  assert_int_equal(h_cli(&H, &out, &err, "send", "add", "--priority", "-7", "--countdown", "1.5",
                         NULL), 0);
  out[strcspn(out, "\n")] = 0;
  er_task_rec_t *r;
  assert_int_equal(er_status(H.client, out, NULL, &r), 0);
  assert_int_equal(r->priority, -7);
  assert_int_equal(r->eta_ms - r->created_ms, 1500);
  er_task_rec_free(r);
  free(out);
  free(err);
}

/* A --wait that gives up leaves the id on stdout, for the script to wait
 * again, and says how long it waited in human units. */
static void send_wait_timeout_prints_the_id(void **s) {
  char *out = NULL, *err = NULL;
  assert_int_equal(
      h_cli(&H, &out, &err, "send", "add", "--args", "[1, 2]", "--wait", "--timeout", "1.5", NULL),
      5);
  out[strcspn(out, "\n")] = 0;
  assert_true(er_id_valid(out));
  assert_int_equal(h_state(&H, out), ER_STATE_PENDING);
  assert_one_error_line(err, "is not finished after 1.5 s");
  assert_non_null(strstr(err, out));
  free(out);
  free(err);
}

static int count(const char *hay, const char *needle) {
  int n = 0;
  for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) n++;
  return n;
}

static void send_wait_warns_once_when_no_worker_serves_the_queue(void **s) {
  char *out = NULL, *err = NULL;
  assert_int_equal(h_cli(&H, &out, &err, "send", "add", "--args", "[1, 2]", "--wait",
                         "--timeout", "6", NULL), 5);
  assert_int_equal(count(err, "errand: no live worker serves queue 'default'; the task waits"), 1);
  assert_non_null(strstr(err, "is not finished after 6 s")); /* it kept waiting */
  free(out);
  free(err);
}

static void send_wait_is_quiet_when_a_worker_serves_the_queue(void **s) {
  pid_t w = h_worker(&H, "threads", 1, "--queues", "other", NULL);
  h_wait_workers(&H, 1, 10000);
  char *out = NULL, *err = NULL;
  /* Served: the task waits for its countdown, with no warning. */
  assert_int_equal(h_cli(&H, &out, &err, "send", "add", "--args", "[1, 2]", "--queue", "other",
                         "--countdown", "30", "--wait", "--timeout", "4", NULL), 5);
  assert_null(strstr(err, "no live worker"));
  free(out);
  free(err);
  /* A worker on another queue does not serve this one. */
  assert_int_equal(h_cli(&H, &out, &err, "send", "add", "--args", "[1, 2]", "--wait",
                         "--timeout", "4", NULL), 5);
  assert_non_null(strstr(err, "no live worker serves queue 'default'"));
  free(out);
  free(err);
  h_stop(w, SIGTERM);
}

static void worker_without_app_warns(void **s) {
  char log[300];
  snprintf(log, sizeof log, "%s/bare.log", H.dir);
  pid_t w = h_cli_start(&H, log, "worker", "--quiet", NULL);
  bool warned = h_wait_text(log, "\n", 10000);
  h_stop(w, SIGTERM);
  assert_true(warned);
  char *text = h_read_file(log);
  assert_one_error_line(text, "fails every task it takes as unknown");
  assert_non_null(strstr(text, "-A LIB"));
  free(text);
  /* With tasks loaded: no such warning. */
  snprintf(log, sizeof log, "%s/app.log", H.dir);
  w = h_cli_start(&H, log, "worker", "-A", TASKS_LIB, "--quiet", NULL);
  h_wait_workers(&H, 1, 10000);
  h_stop(w, SIGTERM);
  text = h_read_file(log);
  assert_null(strstr(text, "unknown"));
  free(text);
}

/* Runs a worker at loglevel (NULL: the default) through a failing task;
 * returns what it wrote. */
static char *worker_log(const char *loglevel, const char *name) {
  char log[300];
  snprintf(log, sizeof log, "%s/%s.log", H.dir, name);
  pid_t w = loglevel ? h_cli_start(&H, log, "worker", "-A", TASKS_LIB, "--pool", "threads",
                                   "--quiet", "--loglevel", loglevel, NULL)
                     : h_cli_start(&H, log, "worker", "-A", TASKS_LIB, "--pool", "threads",
                                   "--quiet", NULL);
  er_id_t id;
  h_send(&H, "fail", "[\"on purpose\"]", NULL, &id);
  er_task_rec_free(h_wait(&H, id.text, 10000));
  assert_int_equal(h_state(&H, id.text), ER_STATE_FAILURE);
  h_stop(w, SIGTERM);
  return h_read_file(log);
}

static void worker_loglevel_sets_the_level(void **s) {
  char *quiet = worker_log(NULL, "default");
  assert_null(strstr(quiet, "on purpose"));
  free(quiet);
  char *info = worker_log("info", "info");
  assert_non_null(strstr(info, "errand info: task fail"));
  assert_non_null(strstr(info, "on purpose"));
  free(info);
  char *upper = worker_log("INFO", "upper");
  assert_non_null(strstr(upper, "errand info: task fail"));
  free(upper);
  char *warning = worker_log("warning", "warning"); /* Celery's name for warn */
  assert_null(strstr(warning, "on purpose"));
  free(warning);
  expect_refused("--loglevel", (const char *[]){"worker", "--loglevel", "loud", NULL});
}

/* What the test expects cli_iso_time to print, worked out separately. */
static void iso(int64_t ms, char buf[64]) {
  time_t t = (time_t)(ms / 1000);
  struct tm tm;
  gmtime_r(&t, &tm);
  snprintf(buf, 64, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
           tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

static void status_prints_iso_times_and_floats_as_written(void **s) {
  er_id_t id;
  h_send(&H, "sleep", "[0.45]", NULL, &id);
  /* Stand in for a worker: reserve the task and report progress 0.45. */
  er_store_t *st;
  assert_int_equal(er_store_open(H.url, &st, NULL, 0), 0);
  const char *q[] = {"default"};
  er_reserve_req_t req = {.queues = q, .nqueues = 1, .worker = "test-worker",
                          .now_ms = er_now_wall_ms(), .lease_ms = 60000, .max = 1};
  er_task_rec_t **recs;
  size_t n;
  assert_int_equal(er_store_reserve(st, &req, &recs, &n), 0);
  assert_int_equal(n, 1);
  assert_int_equal(er_store_progress(st, id.text, recs[0]->attempt, 0.45, "halfway"), 0);
  er_task_rec_free_array(recs, n);
  er_store_close(st);
  er_task_rec_t *r;
  assert_int_equal(er_status(H.client, id.text, NULL, &r), 0);
  char created[64], started[64], want[100];
  iso(r->created_ms, created);
  iso(r->started_ms, started);
  er_task_rec_free(r);
  char *out = NULL, *err = NULL;
  assert_int_equal(h_cli(&H, &out, &err, "status", id.text, NULL), 0);
  assert_non_null(strstr(out, "\"progress\": 0.45,"));
  snprintf(want, sizeof want, "\"created\": \"%s\"", created);
  assert_non_null(strstr(out, want));
  snprintf(want, sizeof want, "\"started\": \"%s\"", started);
  assert_non_null(strstr(out, want));
  assert_null(strstr(out, "_ms\""));
  free(out);
  free(err);
}

static void result_prints_floats_as_written(void **s) {
  pid_t w = h_worker(&H, "threads", 1, NULL);
  char *out = NULL, *err = NULL;
  assert_int_equal(h_cli(&H, &out, &err, "send", "sleep", "--args", "[0.45]", "--wait", NULL), 0);
  assert_string_equal(out, "0.45\n");
  free(out);
  free(err);
  h_stop(w, SIGTERM);
}

/* Under script(1), on a terminal: the bar's last frame is 100% on success. */
static void progress_bar_ends_at_100_percent(void **s) {
  if (system("command -v script >/dev/null 2>&1") != 0) skip();
  pid_t w = h_worker(&H, "prefork", 1, NULL);
  char cmd[1024], path[300];
  snprintf(path, sizeof path, "%s/tty.txt", H.dir);
  snprintf(cmd, sizeof cmd,
           "script -qfec '%s send progress --args [1.2] --wait --store %s' /dev/null > %s 2>&1 "
           "</dev/null",
           ERRAND_BIN, H.url, path);
  assert_int_equal(system(cmd), 0);
  char *text = h_read_file(path);
  assert_non_null(strstr(text, "% working"));
  assert_non_null(strstr(text, "[##############################] 100% SUCCESS"));
  assert_non_null(strstr(text, "20")); /* the result, after the bar */
  free(text);
  h_stop(w, SIGTERM);
}

static void beat(er_store_t *st, json_t *info) {
  assert_int_equal(er_store_heartbeat(st, info, er_now_wall_ms(), 60000), 0);
  json_decref(info);
}

static void inspect_shows_what_workers_run_hold_and_serve(void **s) {
  er_store_t *st;
  assert_int_equal(er_store_open(H.url, &st, NULL, 0), 0);
  json_int_t now = er_now_wall_ms();
  /* A worker whose heartbeat has only the counters: nothing more printed. */
  beat(st, json_pack("{s:s, s:s, s:i, s:i, s:i, s:[s], s:I}", "id", "old:1:aaaa", "pool",
                     "prefork", "concurrency", 2, "active", 0, "processed", 3, "queues",
                     "default", "started_ms", now - (2 * 86400 + 3 * 3600) * (json_int_t)1000));
  char *out = NULL, *err = NULL;
  assert_int_equal(h_cli(&H, &out, &err, "inspect", NULL), 0);
  assert_non_null(strstr(out, "old:1:aaaa  pool=prefork concurrency=2 active=0 processed=3"));
  assert_non_null(strstr(out, "up 2 d 3 h"));
  assert_non_null(strstr(out, "    queues: default\n"));
  assert_null(strstr(out, "registered"));
  assert_null(strstr(out, "active:"));
  assert_null(strstr(out, "reserved:"));
  free(out);
  free(err);
  beat(st, json_pack("{s:s, s:s, s:i, s:i, s:i, s:[s,s], s:I, s:[s,s], s:[{s:s, s:s, s:I}], "
                     "s:[{s:s, s:s}]}",
                     "id", "new:2:bbbb", "pool", "threads", "concurrency", 4, "active", 1,
                     "processed", 9, "queues", "default", "mail", "started_ms", now,
                     "registered", "add", "sleep", "active_tasks", "id", "run-1", "task", "sleep",
                     "started_ms", now - 125000, "reserved_tasks", "id", "held-1", "task", "add"));
  assert_int_equal(h_cli(&H, &out, &err, "inspect", NULL), 0);
  char started[64], want[200];
  iso(now - 125000, started);
  snprintf(want, sizeof want,
           "    queues: default, mail\n"
           "    registered: add, sleep\n"
           "    active:\n"
           "      run-1 sleep  started %s (2 min ",
           started);
  if (!strstr(out, want)) fail_msg("inspect printed:\n%s", out);
  assert_non_null(strstr(out, "    reserved:\n      held-1 add\n"));
  free(out);
  free(err);
  er_store_close(st);
}

#define NASTY "\n\x1b[2J"
#define NASTY_SHOWN "\\n\\x1b[2J"

/* No raw newline inside a line we expect, and no terminal escape at all. */
static void assert_no_raw(const char *text) {
  if (strchr(text, 0x1b)) fail_msg("raw ESC in:\n%s", text);
}

static void names_are_printed_escaped(void **s) {
  er_send_opts_t o = {.queue = "q" NASTY, .key = "k" NASTY, .name = "n" NASTY};
  er_id_t id;
  h_send(&H, "sleep", "[1]", &o, &id);
  er_store_t *st;
  assert_int_equal(er_store_open(H.url, &st, NULL, 0), 0);
  beat(st, json_pack("{s:s, s:s, s:i, s:i, s:i, s:[s], s:[s], s:[{s:s, s:s}]}", "id",
                     "w" NASTY ":1", "pool", "solo" NASTY, "concurrency", 1, "active", 0,
                     "processed", 0, "queues", "q" NASTY, "registered", "t" NASTY,
                     "reserved_tasks", "id", "r" NASTY, "task", "t" NASTY));
  er_store_close(st);
  char *out = NULL, *err = NULL;
  assert_int_equal(h_cli(&H, &out, &err, "inspect", NULL), 0);
  assert_no_raw(out);
  static const char *const want[] = {"  q" NASTY_SHOWN " ",
                                     "  w" NASTY_SHOWN ":1  pool=solo" NASTY_SHOWN " ",
                                     "    queues: q" NASTY_SHOWN "\n",
                                     "    registered: t" NASTY_SHOWN "\n",
                                     "      r" NASTY_SHOWN " t" NASTY_SHOWN "\n"};
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
    if (!strstr(out, want[i])) fail_msg("no '%s' in inspect's:\n%s", want[i], out);
  free(out);
  free(err);
  /* status prints JSON, whose strings escape control characters. */
  assert_int_equal(h_cli(&H, &out, &err, "status", "--key", "k" NASTY, NULL), 0);
  assert_no_raw(out);
  if (!strstr(out, "\"key\": \"k\\n\\u001")) fail_msg("status printed:\n%s", out);
  free(out);
  free(err);
  /* Errors quote names too. */
  assert_int_equal(h_cli(&H, &out, &err, "status", id.text, "--key", "k" NASTY, NULL), 2);
  assert_no_raw(err);
  free(out);
  free(err);
  assert_int_equal(h_cli(&H, &out, &err, "purge", "q" NASTY, NULL), 0);
  assert_no_raw(out);
  assert_non_null(strstr(out, "queue 'q" NASTY_SHOWN "'\n"));
  free(out);
  free(err);
}

/* A store password shows nowhere: not in an open error, not in inspect. */
static void store_password_is_never_printed(void **s) {
  static const char *const urls[] = {"redis://:secret@127.0.0.1:1/0?timeout_ms=200",
                                     "redis://:secret@127.0.0.1:1/x",
                                     "redis://u:secret@127.0.0.1:1?nope=1"};
  char saved[sizeof H.url];
  memcpy(saved, H.url, sizeof saved);
  for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
    snprintf(H.url, sizeof H.url, "%s", urls[i]);
    char *out = NULL, *err = NULL;
    int rc = h_cli(&H, &out, &err, "inspect", NULL);
    if (rc == 0 || strstr(out, "secret") || strstr(err, "secret"))
      fail_msg("%s: exit %d: %s%s", urls[i], rc, out, err);
    free(out);
    free(err);
  }
  memcpy(H.url, saved, sizeof saved);
}

/* Runs "errand ARGS" through the shell (h_cli always adds --store, which
 * would win over --store-file); returns the exit code and both outputs. */
static int run_shell(const char *args, char **out) {
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "'%s' %s 2>&1", ERRAND_BIN, args);
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  size_t cap = 65536, n = 0;
  *out = calloc(1, cap);
  while (n + 1 < cap && fgets(*out + n, (int)(cap - n), p)) n += strlen(*out + n);
  int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void store_file_gives_the_url(void **s) {
  er_send_opts_t o = {.queue = "filed"};
  h_send(&H, "sleep", "[1]", &o, NULL);
  char path[300], args[700];
  snprintf(path, sizeof path, "%s/store-url", H.dir);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fprintf(f, "%s\nignored second line\n", H.url);
  fclose(f);
  char *out;
  snprintf(args, sizeof args, "inspect --store-file '%s'", path);
  int rc = run_shell(args, &out);
  if (rc != 0 || !strstr(out, "  filed ")) fail_msg("exit %d:\n%s", rc, out);
  free(out);
  snprintf(args, sizeof args, "status --key nope --store-file '%s'", path);
  assert_int_equal(run_shell(args, &out), 4);
  free(out);
  snprintf(args, sizeof args, "send sleep --store-file '%s/absent'", H.dir);
  assert_int_equal(run_shell(args, &out), 2);
  assert_one_error_line(out, "--store-file");
  free(out);
}

/* Calls fn(flag, ud) for each "--flag" in text. */
static void each_flag(const char *text, void (*fn)(const char *flag, void *ud), void *ud) {
  for (const char *p = text; (p = strstr(p, "--"));) {
    size_t n = 2;
    while ((p[n] >= 'a' && p[n] <= 'z') || p[n] == '-') n++;
    if (n > 2) {
      char flag[64];
      snprintf(flag, sizeof flag, "%.*s", (int)n, p);
      fn(flag, ud);
    }
    p += n;
  }
}

static void flag_in(const char *flag, void *text) {
  /* Whole flags only: --key must not be found inside --keyword. */
  for (const char *p = text; (p = strstr(p, flag)); p++) {
    char next = p[strlen(flag)];
    if (!((next >= 'a' && next <= 'z') || next == '-')) return;
  }
  fail_msg("%s is missing from:\n%s", flag, (const char *)text);
}

static void help_and_docs_list_the_same_options(void **s) {
  char *docs = h_read_file(DOCS_CLI);
  assert_non_null(strstr(docs, "ERRAND_LOG"));
  char *usage = NULL, *err = NULL;
  assert_int_equal(h_cli(&H, &usage, &err, "--help", NULL), 0);
  free(err);
  static const char *const cmds[] = {"worker", "send",    "status", "result",
                                     "revoke", "inspect", "purge",  "serve",
                                     "tasks", "up"};
  for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
    char *help = NULL;
    assert_int_equal(h_cli(&H, &help, &err, cmds[i], "--help", NULL), 0);
    /* The command's row in the page's table. */
    char head[64];
    snprintf(head, sizeof head, "| `errand %s", cmds[i]);
    const char *row = strstr(docs, head);
    assert_non_null(row);
    char *line = strndup(row, strcspn(row, "\n"));
    each_flag(line, flag_in, help);  /* documented: in its --help */
    each_flag(line, flag_in, usage); /* and in errand --help */
    each_flag(help, flag_in, docs);  /* in its --help: documented */
    free(line);
    free(help);
    free(err);
  }
  assert_non_null(strstr(usage, "ERRAND_LOG"));
  free(usage);
  free(docs);
}

/* errand tasks: newest first, a line each, paged by the cursor it prints;
 * filters; JSON; bad input exits 2. */
static void tasks_lists_newest_first(void **s) {
  er_id_t ids[3];
  er_send_opts_t o = {.queue = "q-cli-list"};
  for (int i = 0; i < 3; i++) h_send(&H, i == 1 ? "sleep" : "add", "[1, 2]", &o, &ids[i]);
  char *out = NULL, *err = NULL;
  assert_int_equal(h_cli(&H, &out, &err, "tasks", "--queue", "q-cli-list", "--limit", "2", NULL),
                   0);
  const char *second = strchr(out, '\n');
  assert_non_null(second);
  assert_int_equal(strncmp(out, ids[2].text, ER_ID_LEN), 0);
  assert_int_equal(strncmp(second + 1, ids[1].text, ER_ID_LEN), 0);
  assert_non_null(strstr(out, "PENDING"));
  assert_non_null(strstr(out, "q-cli-list"));
  char want[128];
  snprintf(want, sizeof want, "more: errand tasks --cursor %s\n", ids[1].text);
  assert_string_equal(err, want);
  free(out);
  free(err);
  assert_int_equal(h_cli(&H, &out, &err, "tasks", "--queue", "q-cli-list", "--cursor",
                         ids[1].text, NULL),
                   0);
  assert_int_equal(strncmp(out, ids[0].text, ER_ID_LEN), 0);
  assert_int_equal(strlen(out), strcspn(out, "\n") + 1); /* one line */
  assert_string_equal(err, "");
  free(out);
  free(err);
  assert_int_equal(h_cli(&H, &out, &err, "tasks", "--name", "sleep", "--state", "pending",
                         "--json", NULL),
                   0);
  json_t *j = json_loads(out, 0, NULL);
  assert_non_null(j);
  json_t *tasks = json_object_get(j, "tasks");
  assert_int_equal(json_array_size(tasks), 1);
  assert_string_equal(json_string_value(json_object_get(json_array_get(tasks, 0), "id")),
                      ids[1].text);
  assert_null(json_object_get(j, "next_cursor"));
  json_decref(j);
  free(out);
  free(err);
  static const char *const bad[][2] = {
      {"--state", "bogus"}, {"--limit", "0"}, {"--limit", "1001"}, {"--cursor", "x"}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(h_cli(&H, &out, &err, "tasks", bad[i][0], bad[i][1], NULL), 2);
    assert_int_equal(strncmp(err, "errand: ", 8), 0);
    assert_int_equal(strlen(err), strcspn(err, "\n") + 1); /* one line */
    free(out);
    free(err);
  }
}

/* A store file cut short, or one that is not SQLite's: inspect exits 3 (the
 * store cannot be opened) with one line that says which. */
static void damaged_store_file_is_named_so(void **s) {
  for (int i = 0; i < 200; i++)
    h_send(&H, "sleep", "[\"a task with some arguments to fill pages of the file\"]", NULL,
           NULL);
  er_client_close(H.client); /* the last close checkpoints: the file is whole */
  H.client = NULL;
  char args[1200], *out = NULL;
  snprintf(args, sizeof args, "inspect --store 'sqlite://%s/errand.db'", H.dir);
  assert_int_equal(run_shell(args, &out), 0);
  free(out);
  static const struct {
    const char *make, *says;
  } cases[] = {
      {"head -c 8192 '%s/errand.db' > '%s/bad.db'", "database file is truncated"},
      {"head -c 10000 '%s/errand.db' > '%s/bad.db'", "database file is truncated"},
      {"head -c 9000 /dev/urandom > '%s/bad.db' # %s", "is corrupt (not an SQLite database)"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char make[1200];
    snprintf(make, sizeof make, cases[i].make, H.dir, H.dir);
    assert_int_equal(system(make), 0);
    snprintf(args, sizeof args, "inspect --store 'sqlite://%s/bad.db'", H.dir);
    int rc = run_shell(args, &out);
    if (rc != 3) fail_msg("%s: exit %d, not 3: %s", make, rc, out);
    assert_one_error_line(out, cases[i].says);
    free(out);
  }
}

int main(void) {
  unsetenv("ERRAND_LOG"); /* the default level is part of what is tested */
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(number_options_are_strict, setup, teardown),
      cmocka_unit_test_setup_teardown(send_wait_timeout_prints_the_id, setup, teardown),
      cmocka_unit_test_setup_teardown(send_wait_warns_once_when_no_worker_serves_the_queue, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(send_wait_is_quiet_when_a_worker_serves_the_queue, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(worker_without_app_warns, setup, teardown),
      cmocka_unit_test_setup_teardown(worker_loglevel_sets_the_level, setup, teardown),
      cmocka_unit_test_setup_teardown(status_prints_iso_times_and_floats_as_written, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(result_prints_floats_as_written, setup, teardown),
      cmocka_unit_test_setup_teardown(progress_bar_ends_at_100_percent, setup, teardown),
      cmocka_unit_test_setup_teardown(inspect_shows_what_workers_run_hold_and_serve, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(help_and_docs_list_the_same_options, setup, teardown),
      cmocka_unit_test_setup_teardown(names_are_printed_escaped, setup, teardown),
      cmocka_unit_test_setup_teardown(store_password_is_never_printed, setup, teardown),
      cmocka_unit_test_setup_teardown(store_file_gives_the_url, setup, teardown),
      cmocka_unit_test_setup_teardown(damaged_store_file_is_named_so, setup, teardown),
      cmocka_unit_test_setup_teardown(tasks_lists_newest_first, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
