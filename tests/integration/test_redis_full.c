/* A Redis store at maxmemory with noeviction: sends are refused with a clear
 * error, while workers still reserve and complete (and so drain the queue)
 * and inspect and purge still work. A private redis-server per test. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define FULL_MSG "store is full (Redis maxmemory reached): send refused"

static harness_t H;

static int setup(void **state) {
  if (!h_setup_redis(&H)) skip();
  return 0;
}

static int teardown(void **state) {
  h_teardown_redis(&H);
  return 0;
}

/* Sends one inline command to the test's redis-server; its reply's first
 * line goes to reply. */
static void redis_cmd(const char *cmd, char *reply, size_t size) {
  int port = 0;
  assert_int_equal(sscanf(H.url, "redis://127.0.0.1:%d", &port), 1);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  char line[256];
  int n = snprintf(line, sizeof line, "%s\r\n", cmd);
  assert_int_equal(write(fd, line, (size_t)n), n);
  ssize_t got = read(fd, reply, size - 1);
  assert_true(got > 0);
  reply[got] = 0;
  reply[strcspn(reply, "\r\n")] = 0;
  close(fd);
}

/* Sends tasks of about 1 KB until the store refuses; returns how many went. */
static int fill(er_id_t *ids, int max) {
  char pad[1001];
  memset(pad, 'x', 1000);
  pad[1000] = 0;
  for (int i = 0; i < max; i++) {
    json_t *args = json_pack("[i, i]", i, 1), *kwargs = json_pack("{s:s}", "pad", pad);
    int rc = er_send(H.client, "add", args, kwargs, NULL, &ids[i]);
    json_decref(args);
    json_decref(kwargs);
    if (rc < 0) {
      assert_int_equal(rc, ER_ENOMEM);
      const char *msg = er_client_last_error(H.client);
      if (!strstr(msg, FULL_MSG)) fail_msg("the refusal says: %s", msg);
      assert_null(strchr(msg, '\n'));
      return i;
    }
  }
  fail_msg("%d tasks sent and the store is not full", max);
  return 0;
}

static long pending(void) {
  char *out = NULL, *err = NULL;
  int rc = h_cli(&H, &out, &err, "inspect", NULL);
  if (rc != 0) fail_msg("inspect: exit %d: %s", rc, err);
  free(err);
  /* "default  PENDING=n STARTED=n ...", one line */
  const char *p = strstr(out, "PENDING=");
  long n = -1;
  if (p) sscanf(p, "PENDING=%ld", &n);
  else if (strstr(out, "queues:\n  (none)")) n = 0;
  if (n < 0) fail_msg("inspect says:\n%s", out);
  free(out);
  return n;
}

#define MAX 20000

static void full_store_refuses_sends_but_drains_and_purges(void **s) {
  char reply[256];
  redis_cmd("CONFIG SET maxmemory-policy noeviction", reply, sizeof reply);
  assert_string_equal(reply, "+OK");
  redis_cmd("CONFIG SET maxmemory 3mb", reply, sizeof reply);
  assert_string_equal(reply, "+OK");
  static er_id_t ids[MAX];
  int n = fill(ids, MAX);
  assert_true(n > 100);
  /* Inspect opens on a full store, and purge empties the queue. */
  assert_int_equal(pending(), n);
  char *err = NULL;
  int rc = h_cli(&H, NULL, &err, "purge", "default", NULL);
  if (rc != 0) fail_msg("purge: exit %d: %s", rc, err);
  free(err);
  assert_int_equal(pending(), 0);
  /* Full again: a worker drains the queue, results and all. */
  n = fill(ids, MAX);
  assert_true(n > 100);
  char log[400];
  snprintf(log, sizeof log, "%s/worker.log", H.dir);
  pid_t w = h_worker_log(&H, log, true, "threads", 2, NULL);
  for (int i = 0; i < n; i++) {
    er_task_rec_t *r = h_wait(&H, ids[i].text, 60000);
    assert_int_equal(r->state, ER_STATE_SUCCESS);
    assert_int_equal(json_integer_value(r->result), i + 1);
    er_task_rec_free(r);
  }
  assert_int_equal(WEXITSTATUS(h_stop(w, SIGTERM)), 0);
  assert_int_equal(pending(), 0);
  /* Nothing the worker asked was refused: no back-off, no warning. */
  char *text = h_read_file(log);
  if (strstr(text, "errand warn") || strstr(text, "errand error"))
    fail_msg("the worker's log:\n%s", text);
  free(text);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(full_store_refuses_sends_but_drains_and_purges, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
