/*
 * qbench_beanstalk: beanstalkd's side of the queue benchmark, a small client
 * speaking the beanstalk text protocol (put / reserve / delete) over TCP.
 *
 *   qbench_beanstalk enqueue --port P -n N [--pipeline B]
 *       N puts from one client. B = 1: each put waits for INSERTED (what
 *       er_send does); B > 1: B puts are written, then B answers read (the
 *       protocol has no batch command; pipelining is its nearest thing).
 *   qbench_beanstalk drain --port P -n N [--workers W]
 *       Puts N (untimed, pipelined), then forks W worker processes that
 *       reserve and delete until the tube is empty; times until beanstalkd's
 *       stats-tube counts N deletes (looked at every 2 ms). Prints drain_rate, drain_first_ms,
 *       drain_steady_rate as qbench_errand does.
 *   qbench_beanstalk rtt --port P -n N [--workers W]
 *       W worker processes wait on tube "rtt"; the client puts a job naming
 *       its reply tube, a worker reserves it, puts the reply in that tube and
 *       deletes the job; the client reserves the reply and deletes it. Prints
 *       p50_ms, p99_ms, mean_ms, max_ms.
 *
 * The job body is "noop" (the drain), or the reply tube's name (the round
 * trip); the worker's "task" does nothing. beanstalkd keeps no result: the
 * drain's workers only delete, while errand and Celery also store one.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qbench_util.h"

static int g_port;

typedef struct conn {
  int fd;
  char buf[65536];
  size_t len, off;
} conn_t;

static conn_t *bs_connect(void) {
  conn_t *c = calloc(1, sizeof *c);
  if (!c) qb_die("out of memory");
  c->fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g_port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&a, sizeof a) < 0)
    qb_die("connect 127.0.0.1:%d: %s", g_port, strerror(errno));
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return c;
}

static void bs_close(conn_t *c) {
  close(c->fd);
  free(c);
}

static void bs_write(conn_t *c, const char *p, size_t n) {
  while (n) {
    ssize_t w = write(c->fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) qb_die("write: %s", strerror(errno));
    p += w;
    n -= (size_t)w;
  }
}

/* Makes sure n bytes are buffered from off on. */
static void bs_fill(conn_t *c, size_t n) {
  if (c->off && c->len - c->off < n) {
    memmove(c->buf, c->buf + c->off, c->len - c->off);
    c->len -= c->off;
    c->off = 0;
  }
  while (c->len - c->off < n) {
    if (c->len == sizeof c->buf) qb_die("reply too long");
    ssize_t r = read(c->fd, c->buf + c->len, sizeof c->buf - c->len);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) qb_die("read: %s", r ? strerror(errno) : "beanstalkd closed the connection");
    c->len += (size_t)r;
  }
}

/* Reads one "...\r\n" line into line (without the CRLF). */
static void bs_line(conn_t *c, char *line, size_t size) {
  for (;;) {
    char *p = memmem(c->buf + c->off, c->len - c->off, "\r\n", 2);
    if (p) {
      size_t n = (size_t)(p - (c->buf + c->off));
      if (n >= size) qb_die("line too long");
      memcpy(line, c->buf + c->off, n);
      line[n] = 0;
      c->off += n + 2;
      return;
    }
    bs_fill(c, c->len - c->off + 1);
  }
}

/* Reads a job body of n bytes and its CRLF into body (NUL-terminated). */
static void bs_body(conn_t *c, size_t n, char *body, size_t size) {
  bs_fill(c, n + 2);
  if (body) {
    size_t k = n < size - 1 ? n : size - 1;
    memcpy(body, c->buf + c->off, k);
    body[k] = 0;
  }
  c->off += n + 2;
}

static void bs_cmd(conn_t *c, const char *cmd, const char *want_prefix) {
  char line[256];
  bs_write(c, cmd, strlen(cmd));
  bs_line(c, line, sizeof line);
  if (strncmp(line, want_prefix, strlen(want_prefix)) != 0)
    qb_die("'%.*s': beanstalkd said '%s'", (int)strcspn(cmd, "\r"), cmd, line);
}

static void put_nowait(conn_t *c, const char *body) {
  char cmd[512];
  int n = snprintf(cmd, sizeof cmd, "put 0 0 120 %zu\r\n%s\r\n", strlen(body), body);
  bs_write(c, cmd, (size_t)n);
}

static void expect_inserted(conn_t *c) {
  char line[256];
  bs_line(c, line, sizeof line);
  if (strncmp(line, "INSERTED ", 9) != 0) qb_die("put: beanstalkd said '%s'", line);
}

/* Reserves one job (timeout_s < 0: block). Returns 0 and the id, or 1 on
 * TIMED_OUT. */
static int reserve(conn_t *c, int timeout_s, unsigned long long *id, char *body, size_t size) {
  char cmd[64], line[256];
  if (timeout_s < 0)
    snprintf(cmd, sizeof cmd, "reserve\r\n");
  else
    snprintf(cmd, sizeof cmd, "reserve-with-timeout %d\r\n", timeout_s);
  bs_write(c, cmd, strlen(cmd));
  bs_line(c, line, sizeof line);
  if (strcmp(line, "TIMED_OUT") == 0) return 1;
  size_t bytes;
  if (sscanf(line, "RESERVED %llu %zu", id, &bytes) != 2) qb_die("reserve: beanstalkd said '%s'", line);
  bs_body(c, bytes, body, size);
  return 0;
}

static void delete_job(conn_t *c, unsigned long long id) {
  char cmd[64];
  snprintf(cmd, sizeof cmd, "delete %llu\r\n", id);
  bs_cmd(c, cmd, "DELETED");
}

static void use_tube(conn_t *c, const char *tube) {
  char cmd[256];
  snprintf(cmd, sizeof cmd, "use %s\r\n", tube);
  bs_cmd(c, cmd, "USING");
}

static void watch_only(conn_t *c, const char *tube) {
  char cmd[256];
  snprintf(cmd, sizeof cmd, "watch %s\r\n", tube);
  bs_cmd(c, cmd, "WATCHING");
  if (strcmp(tube, "default") != 0) bs_cmd(c, "ignore default\r\n", "WATCHING");
}

/* The tube's cmd-delete count, from stats-tube (a YAML body). */
static long tube_deletes(conn_t *c, const char *tube) {
  char cmd[256], line[256], body[4096];
  snprintf(cmd, sizeof cmd, "stats-tube %s\r\n", tube);
  bs_write(c, cmd, strlen(cmd));
  bs_line(c, line, sizeof line);
  size_t bytes;
  if (sscanf(line, "OK %zu", &bytes) != 1) qb_die("stats-tube: beanstalkd said '%s'", line);
  bs_body(c, bytes, body, sizeof body);
  const char *p = strstr(body, "\ncmd-delete: ");
  return p ? strtol(p + 13, NULL, 10) : -1;
}

static void put_many(conn_t *c, long n, long pipeline) {
  for (long done = 0; done < n;) {
    long k = n - done < pipeline ? n - done : pipeline;
    for (long i = 0; i < k; i++) put_nowait(c, "noop");
    for (long i = 0; i < k; i++) expect_inserted(c);
    done += k;
  }
}

static int cmd_enqueue(long n, long pipeline) {
  conn_t *c = bs_connect();
  use_tube(c, "enqueue");
  double t0 = qb_now();
  put_many(c, n, pipeline < 1 ? 1 : pipeline);
  double dt = qb_now() - t0;
  bs_close(c);
  qb_result(NULL, "enqueue_rate", (double)n / dt);
  qb_result(NULL, "enqueue_seconds", dt);
  return 0;
}

static pid_t fork_worker(void (*body)(const char *tube), const char *tube) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) qb_die("fork failed");
  if (pid == 0) {
    signal(SIGTERM, SIG_DFL);
    body(tube);
    _exit(0);
  }
  return pid;
}

/* A drain worker: reserve, run the no-op, delete; exits when the tube has
 * stayed empty for a second. */
static void drain_worker(const char *tube) {
  conn_t *c = bs_connect();
  watch_only(c, tube);
  unsigned long long id;
  char body[64];
  while (reserve(c, 1, &id, body, sizeof body) == 0) delete_job(c, id);
  bs_close(c);
}

static int cmd_drain(long n, int workers) {
  conn_t *c = bs_connect();
  use_tube(c, "drain");
  put_many(c, n, 1000);
  if (tube_deletes(c, "drain") != 0) qb_die("tube drain is not fresh");
  pid_t pids[16];
  if (workers < 1 || workers > 16) qb_die("--workers 1..16");
  double cpu0 = qb_self_cpu();
  double t0 = qb_now(), t_first = 0;
  for (int i = 0; i < workers; i++) pids[i] = fork_worker(drain_worker, "drain");
  long del;
  while ((del = tube_deletes(c, "drain")) < n) {
    if (del > 0 && !t_first) t_first = qb_now();
    qb_sleep_ms(2);
  }
  double t_done = qb_now();
  double cpu1 = qb_self_cpu();
  if (!t_first) t_first = t_done;
  for (int i = 0; i < workers; i++) qb_stop_child(pids[i], 5);
  bs_close(c);
  qb_result(NULL, "drain_rate", (double)n / (t_done - t0));
  qb_result(NULL, "drain_seconds", t_done - t0);
  qb_result(NULL, "drain_first_ms", 1e3 * (t_first - t0));
  qb_result(NULL, "drain_steady_rate", (double)(n - 1) / (t_done - t_first));
  qb_result(NULL, "harness_cpu_s", cpu1 - cpu0);
  return 0;
}

/* A round-trip worker: reserve from "rtt", put the reply in the tube the job
 * names, delete the job; until killed. */
static void rtt_worker(const char *tube) {
  conn_t *c = bs_connect();
  watch_only(c, tube);
  char using[200] = "default", body[200];
  unsigned long long id;
  for (;;) {
    reserve(c, -1, &id, body, sizeof body);
    if (strcmp(body, using) != 0) {
      use_tube(c, body);
      snprintf(using, sizeof using, "%s", body);
    }
    put_nowait(c, "null");
    expect_inserted(c);
    delete_job(c, id);
  }
}

static int cmd_rtt(long n, int workers) {
  pid_t pids[16];
  if (workers < 1 || workers > 16) qb_die("--workers 1..16");
  for (int i = 0; i < workers; i++) pids[i] = fork_worker(rtt_worker, "rtt");
  conn_t *c = bs_connect();
  char reply[64];
  snprintf(reply, sizeof reply, "rtt-reply-%d", (int)getpid());
  use_tube(c, "rtt");
  watch_only(c, reply);
  unsigned long long id;
  char body[64];
  double *lat = calloc((size_t)n, sizeof *lat);
  if (!lat) qb_die("out of memory");
  double t_all = 0;
  for (long i = -100; i < n; i++) { /* 100 warm-up trips first */
    if (i == 0) t_all = qb_now();
    double t0 = qb_now();
    put_nowait(c, reply);
    expect_inserted(c);
    if (reserve(c, 10, &id, body, sizeof body)) qb_die("no reply within 10 s");
    delete_job(c, id);
    if (i >= 0) lat[i] = qb_now() - t0;
  }
  t_all = qb_now() - t_all;
  for (int i = 0; i < workers; i++) qb_stop_child(pids[i], 5);
  bs_close(c);
  qb_latency_results(NULL, lat, (size_t)n);
  qb_result(NULL, "rtt_per_second", (double)n / t_all);
  free(lat);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: qbench_beanstalk enqueue|drain|rtt --port P -n N ...\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  g_port = (int)qb_opt_long(argc, argv, "--port", 11300);
  long n = qb_opt_long(argc, argv, "-n", 10000);
  int workers = (int)qb_opt_long(argc, argv, "--workers", 2);
  if (n < 2) qb_die("-n must be at least 2");
  if (strcmp(argv[1], "enqueue") == 0)
    return cmd_enqueue(n, qb_opt_long(argc, argv, "--pipeline", 1));
  if (strcmp(argv[1], "drain") == 0) return cmd_drain(n, workers);
  if (strcmp(argv[1], "rtt") == 0) return cmd_rtt(n, workers);
  qb_die("unknown command %s", argv[1]);
}
