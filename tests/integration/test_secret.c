/* Callback secrets of a worker's and server's own, through real processes
 * on a fresh SQLite file: `errand up --secret-file` (worker and server
 * share it), `errand serve` with another secret, none, or the same one from
 * $ERRAND_SECRET beside `errand worker --secret`; and the library's options
 * refusing short secrets. */
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <errand/http.h>

#include "up_util.h"

/* Tokens made under a secret of up's own are accepted by a server given the
 * same, and refused (403) by one given another or none; tokens made under
 * the store's secret are refused by a server given its own. */
static void secrets_of_their_own(void **state) {
  char file[400];
  snprintf(file, sizeof file, "%s/secret", H.dir);
  FILE *f = fopen(file, "w");
  fprintf(f, "%s\n", SECRET_A);
  fclose(f);
  int port;
  pid_t up = start(&port, "up", "--listen", "127.0.0.1:0", "-c", "2", "--secret-file", file, NULL);
  char r1[ER_ID_LEN + 1], r2[ER_ID_LEN + 1];
  char *l1 = approve_link(port, r1), *l2 = approve_link(port, r2);
  char *body = NULL;
  assert_int_equal(get(port, path_of(l1), &body), 200); /* worker and server agree */
  assert_string_equal(body, "approved");
  free(body);
  expect_exit(up, SIGTERM, 0);
  /* The store's secret made nothing here: a server without one refuses. */
  int sp;
  pid_t serve = start(&sp, "serve", "--listen", "127.0.0.1:0", NULL);
  assert_int_equal(get(sp, path_of(l2), NULL), 403);
  expect_exit(serve, SIGTERM, 0);
  serve = start(&sp, "serve", "--listen", "127.0.0.1:0", "--secret", SECRET_B, NULL);
  assert_int_equal(get(sp, path_of(l2), NULL), 403);
  expect_exit(serve, SIGTERM, 0);
  /* The same secret again (from $ERRAND_SECRET this time), with a worker
   * beside it: accepted and delivered. */
  size_t from = log_size();
  pid_t worker = launch("worker", "-A", PIPES_LIB, "-P", "threads", "--secret", SECRET_A, NULL);
  pid_t srv = fork();
  if (srv == 0) {
    int fd = open(g_log, O_WRONLY | O_APPEND);
    dup2(fd, 1);
    dup2(fd, 2);
    setenv("ERRAND_SECRET", SECRET_A, 1);
    execl(ERRAND_BIN, ERRAND_BIN, "serve", "--listen", "127.0.0.1:0", "--store", H.url, NULL);
    _exit(127);
  }
  sp = wait_port(from);
  assert_int_equal(get(sp, path_of(l2), &body), 200);
  assert_string_equal(body, "approved");
  free(body);
  expect_exit(srv, SIGTERM, 0);
  expect_exit(worker, SIGTERM, 0);
  free(l1);
  free(l2);
  /* Vice versa: a link under the store's secret, from up without one... */
  up = start(&port, "up", "--listen", "127.0.0.1:0", "-c", "2", NULL);
  char r3[ER_ID_LEN + 1];
  char *l3 = approve_link(port, r3);
  expect_exit(up, SIGTERM, 0);
  /* ...is refused by a server with a secret of its own. */
  serve = start(&sp, "serve", "--listen", "127.0.0.1:0", "--secret", SECRET_A, NULL);
  assert_int_equal(get(sp, path_of(l3), NULL), 403);
  expect_exit(serve, SIGTERM, 0);
  free(l3);
}

/* The library's options refuse a short secret with a message that says so,
 * and take one long enough. */
static void options_refuse_short_secrets(void **state) {
  char msg[256] = "";
  er_worker_t *w = NULL;
  er_worker_opts_t wo = {.store_url = H.url, .secret = "fifteen-bytes!!", .quiet = true};
  assert_int_equal(er_worker_new(&wo, &w, msg, sizeof msg), ER_EINVAL);
  assert_non_null(strstr(msg, "secret"));
  wo.secret = SECRET_A;
  assert_int_equal(er_worker_new(&wo, &w, msg, sizeof msg), 0);
  er_worker_free(w);
  er_http_server_t *s = NULL;
  er_http_opts_t ho = {.store_url = H.url, .listen = "127.0.0.1:0", .secret = "short"};
  assert_int_equal(er_http_server_new(&ho, &s, msg, sizeof msg), ER_EINVAL);
  assert_non_null(strstr(msg, "at least 16"));
  ho.secret = SECRET_A;
  assert_int_equal(er_http_server_new(&ho, &s, msg, sizeof msg), 0);
  er_http_server_free(s);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(secrets_of_their_own, setup, teardown),
      cmocka_unit_test_setup_teardown(options_refuse_short_secrets, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
