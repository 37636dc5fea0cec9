/* A redis-server run by the test itself (not through redis_server.sh): on a
 * port the test chose, so that it can be killed with -9 and started again on
 * the same port and directory, its AOF (appendfsync always) holding every
 * acknowledged write. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
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

static char g_redis_bin[512];

bool h_redis_find(void) {
  const char *path = getenv("PATH");
  char buf[4096];
  snprintf(buf, sizeof buf, "%s", path ? path : "/usr/bin:/bin");
  for (char *save, *d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
    snprintf(g_redis_bin, sizeof g_redis_bin, "%s/redis-server", d);
    if (access(g_redis_bin, X_OK) == 0) return true;
  }
  return false;
}

int h_free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
  close(fd);
  return ntohs(a.sin_port);
}

/* True when a server on 127.0.0.1:port answers PING with PONG (not while it
 * is still loading its AOF: it answers -LOADING then). */
static bool answers(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  bool ok = false;
  if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0 && write(fd, "PING\r\n", 6) == 6) {
    char buf[16] = {0};
    ok = read(fd, buf, sizeof buf - 1) > 0 && strncmp(buf, "+PONG", 5) == 0;
  }
  close(fd);
  return ok;
}

pid_t h_redis_start(const char *dir, const char *bind, int port, const char *netns,
                    const char *password) {
  char portbuf[16], log[300];
  snprintf(portbuf, sizeof portbuf, "%d", port);
  snprintf(log, sizeof log, "%s/redis.log", dir);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    char *args[] = {"ip",         "netns",          "exec",     (char *)netns,
                    g_redis_bin,  "--port",         portbuf,    "--bind",
                    (char *)bind, "--dir",          (char *)dir, "--save",
                    "",           "--appendonly",   "yes",      "--appendfsync",
                    "always",     "--daemonize",    "no",       NULL, NULL, NULL};
    if (password) {
      args[19] = "--requirepass";
      args[20] = (char *)password;
    }
    if (netns) execvp("ip", args);
    else execv(g_redis_bin, args + 4);
    _exit(127);
  }
  if (!netns) {
    /* Generous: a restart replays the AOF on a machine that may be busy. */
    for (int i = 0; i < 3000 && !answers(port); i++) {
      if (waitpid(pid, NULL, WNOHANG) == pid) return -1; /* the port was taken meanwhile */
      usleep(10000);
    }
    assert_true(answers(port));
  }
  return pid;
}

void h_redis_kill(pid_t pid, int sig) {
  if (pid <= 0) return;
  kill(pid, sig);
  while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
  }
}
