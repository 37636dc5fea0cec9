#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

void h_setup(harness_t *h, const char *extra_query) {
  memset(h, 0, sizeof *h);
  snprintf(h->dir, sizeof h->dir, "/tmp/errand-test-XXXXXX");
  assert_non_null(mkdtemp(h->dir));
  snprintf(h->url, sizeof h->url, "sqlite:%s/errand.db%s", h->dir, extra_query ? extra_query : "");
  char msg[256] = "";
  int rc = er_client_open(h->url, &h->client, msg, sizeof msg);
  if (rc) fprintf(stderr, "open %s: %s\n", h->url, msg);
  assert_int_equal(rc, 0);
}

void h_teardown(harness_t *h) {
  er_client_close(h->client);
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", h->dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", h->dir);
}

static pid_t spawn(char *const argv[], int out_fd, int err_fd) {
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    if (out_fd >= 0) dup2(out_fd, 1);
    if (err_fd >= 0) dup2(err_fd, 2);
    execv(argv[0], argv);
    _exit(127);
  }
  return pid;
}

pid_t h_worker(harness_t *h, const char *pool, int concurrency, ...) {
  char conc[16];
  snprintf(conc, sizeof conc, "%d", concurrency);
  char *argv[32] = {ERRAND_BIN, "worker", "-A", TASKS_LIB, "--store", h->url, "--pool",
                    (char *)pool, "--concurrency", conc, "--quiet"};
  int n = 11;
  va_list ap;
  va_start(ap, concurrency);
  for (char *a; (a = va_arg(ap, char *)) && n < 31;) argv[n++] = a;
  va_end(ap);
  argv[n] = NULL;
  int devnull = open("/dev/null", O_WRONLY);
  pid_t pid = spawn(argv, devnull, getenv("ERRAND_TEST_VERBOSE") ? -1 : devnull);
  close(devnull);
  return pid;
}

int h_stop(pid_t pid, int sig) {
  kill(pid, sig);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
  return status;
}

static char *slurp(int fd) {
  size_t cap = 4096, len = 0;
  char *buf = malloc(cap);
  ssize_t got;
  while ((got = read(fd, buf + len, cap - len - 1)) > 0) {
    len += (size_t)got;
    if (cap - len < 2) buf = realloc(buf, cap *= 2);
  }
  buf[len] = 0;
  return buf;
}

/* argv for the errand command: the NULL-ended args of ap, then --store h's
 * URL. */
static void cli_argv(harness_t *h, char *argv[32], va_list ap) {
  int n = 0;
  argv[n++] = ERRAND_BIN;
  for (char *a; (a = va_arg(ap, char *)) && n < 28;) argv[n++] = a;
  argv[n++] = "--store";
  argv[n++] = h->url;
  argv[n] = NULL;
}

int h_cli(harness_t *h, char **out, char **err, ...) {
  char *argv[32];
  va_list ap;
  va_start(ap, err);
  cli_argv(h, argv, ap);
  va_end(ap);
  /* Options after positional arguments are fine: getopt permutes. */
  return h_run(out, err, argv);
}

int h_run(char **out, char **err, char *const argv[]) {
  char tmpl_o[] = "/tmp/errand-cli-out-XXXXXX", tmpl_e[] = "/tmp/errand-cli-err-XXXXXX";
  int fo = mkstemp(tmpl_o), fe = mkstemp(tmpl_e);
  unlink(tmpl_o);
  unlink(tmpl_e);
  pid_t pid = spawn(argv, fo, fe);
  int status;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
  lseek(fo, 0, SEEK_SET);
  lseek(fe, 0, SEEK_SET);
  if (out) *out = slurp(fo);
  if (err) *err = slurp(fe);
  close(fo);
  close(fe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void h_send(harness_t *h, const char *task, const char *args_json, const er_send_opts_t *o,
            er_id_t *id) {
  json_t *args = args_json ? json_loads(args_json, 0, NULL) : NULL;
  int rc = er_send(h->client, task, args, NULL, o, id);
  if (rc) fprintf(stderr, "send %s: %s\n", task, er_client_last_error(h->client));
  assert_int_equal(rc, 0);
  json_decref(args);
}

er_task_rec_t *h_wait(harness_t *h, const char *id, int64_t timeout_ms) {
  json_t *res = NULL, *err = NULL;
  er_result(h->client, id, NULL, timeout_ms, &res, &err);
  json_decref(res);
  json_decref(err);
  er_task_rec_t *r = NULL;
  assert_int_equal(er_status(h->client, id, NULL, &r), 0);
  return r;
}

void h_wait_state(harness_t *h, const char *id, er_task_state_t state, int64_t timeout_ms) {
  uint64_t deadline = er_now_mono_ms() + (uint64_t)timeout_ms;
  for (;;) {
    er_task_rec_t *r = NULL;
    assert_int_equal(er_status(h->client, id, NULL, &r), 0);
    er_task_state_t got = r->state;
    er_task_rec_free(r);
    if (got == state) return;
    if (er_now_mono_ms() >= deadline)
      fail_msg("task %s is %s, not %s, after %lld ms", id, er_state_name(got), er_state_name(state),
               (long long)timeout_ms);
    usleep(5000);
  }
}

er_task_state_t h_state(harness_t *h, const char *id) {
  er_task_rec_t *r = NULL;
  assert_int_equal(er_status(h->client, id, NULL, &r), 0);
  er_task_state_t st = r->state;
  er_task_rec_free(r);
  return st;
}

pid_t h_cli_start(harness_t *h, const char *log, ...) {
  char *argv[32];
  va_list ap;
  va_start(ap, log);
  cli_argv(h, argv, ap);
  va_end(ap);
  int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
  assert_true(fd >= 0);
  pid_t pid = spawn(argv, fd, fd);
  close(fd);
  return pid;
}

char *h_read_file(const char *path) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) return strdup("");
  char *s = slurp(fd);
  close(fd);
  return s;
}

bool h_wait_text(const char *path, const char *needle, int64_t timeout_ms) {
  uint64_t deadline = er_now_mono_ms() + (uint64_t)timeout_ms;
  for (;;) {
    char *s = h_read_file(path);
    bool found = strstr(s, needle) != NULL;
    free(s);
    if (found) return true;
    if (er_now_mono_ms() >= deadline) return false;
    usleep(20000);
  }
}

long h_count_state(harness_t *h, const char *state) {
  er_store_t *s;
  if (er_store_open(h->url, &s, NULL, 0)) return -1;
  json_t *stats = NULL;
  long n = -1;
  if (er_store_stats(s, &stats) == 0)
    n = (long)json_integer_value(json_object_get(json_object_get(stats, "total"), state));
  json_decref(stats);
  er_store_close(s);
  return n;
}

void h_wait_workers(harness_t *h, size_t n, int64_t timeout_ms) {
  er_store_t *s;
  assert_int_equal(er_store_open(h->url, &s, NULL, 0), 0);
  uint64_t deadline = er_now_mono_ms() + (uint64_t)timeout_ms;
  for (;;) {
    json_t *ws = NULL;
    assert_int_equal(er_store_workers(s, er_now_wall_ms(), &ws), 0);
    size_t got = json_array_size(ws);
    json_decref(ws);
    if (got >= n) break;
    if (er_now_mono_ms() >= deadline)
      fail_msg("%zu live workers, not %zu, after %lld ms", got, n, (long long)timeout_ms);
    usleep(20000);
  }
  er_store_close(s);
}

/* ---- Redis stores and worker logs ---- */

bool h_setup_redis(harness_t *h) {
  memset(h, 0, sizeof *h);
  snprintf(h->dir, sizeof h->dir, "/tmp/errand-test-XXXXXX");
  assert_non_null(mkdtemp(h->dir));
  char cmd[600], url[256] = "";
  snprintf(cmd, sizeof cmd, "'%s' start '%s' 2>/dev/null", REDIS_SERVER_SH, h->dir);
  FILE *p = popen(cmd, "r");
  bool ok = p && fgets(url, sizeof url, p) != NULL;
  if (p) ok = pclose(p) == 0 && ok;
  url[strcspn(url, "\n")] = 0;
  if (!ok || !*url) {
    h_teardown_redis(h);
    return false;
  }
  snprintf(h->url, sizeof h->url, "%s?prefix=t", url);
  char msg[256] = "";
  int rc = er_client_open(h->url, &h->client, msg, sizeof msg);
  if (rc) fprintf(stderr, "open %s: %s\n", h->url, msg);
  assert_int_equal(rc, 0);
  return true;
}

void h_teardown_redis(harness_t *h) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "'%s' stop '%s'", REDIS_SERVER_SH, h->dir);
  if (system(cmd) != 0) fprintf(stderr, "could not stop redis-server in %s\n", h->dir);
  h_teardown(h);
}

pid_t h_worker_log(harness_t *h, const char *log, bool quiet, const char *pool, int concurrency,
                   ...) {
  char conc[16];
  snprintf(conc, sizeof conc, "%d", concurrency);
  char *argv[32] = {ERRAND_BIN, "worker", "-A",  TASKS_LIB, "--store", h->url, "--pool",
                    (char *)pool, "--concurrency", conc};
  int n = 10;
  if (quiet) argv[n++] = "--quiet";
  va_list ap;
  va_start(ap, concurrency);
  for (char *a; (a = va_arg(ap, char *)) && n < 31;) argv[n++] = a;
  va_end(ap);
  argv[n] = NULL;
  int devnull = open("/dev/null", O_WRONLY);
  int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
  assert_true(fd >= 0);
  setenv("ERRAND_LOG", "info", 1);
  pid_t pid = spawn(argv, devnull, fd);
  unsetenv("ERRAND_LOG");
  close(fd);
  close(devnull);
  return pid;
}

json_t *h_worker_info(harness_t *h, pid_t pid) {
  er_store_t *st = NULL;
  assert_int_equal(er_store_open(h->url, &st, NULL, 0), 0);
  json_t *all = NULL, *found = NULL;
  assert_int_equal(er_store_workers(st, er_now_wall_ms(), &all), 0);
  size_t i;
  json_t *v;
  json_array_foreach(all, i, v) if (json_integer_value(json_object_get(v, "pid")) == pid) found =
      json_incref(v);
  json_decref(all);
  er_store_close(st);
  return found;
}

pid_t h_worker_fork(harness_t *h, er_worker_opts_t opts, int out_fd, int err_fd) {
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    if (out_fd >= 0) dup2(out_fd, 1);
    if (err_fd >= 0) dup2(err_fd, 2);
    opts.store_url = h->url;
    er_worker_t *w = NULL;
    if (er_worker_new(&opts, &w, NULL, 0) < 0) _exit(1);
    er_worker_run(w);
    er_worker_free(w);
    _exit(0);
  }
  return pid;
}
