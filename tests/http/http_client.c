#include "http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

int tc_dial(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
    if (fd >= 0) close(fd);
    return -1;
  }
  return fd;
}

static void send_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w <= 0) return; /* the server may answer and close before all is sent */
    p += w;
    n -= (size_t)w;
  }
}

tc_resp_t tc_request(int port, const char *method, const char *path, const char *extra_headers,
                     const char *body, size_t body_len) {
  tc_resp_t r = {0};
  int fd = tc_dial(port);
  if (fd < 0) return r;
  char head[4096];
  int n = snprintf(head, sizeof head,
                   "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s"
                   "Content-Length: %zu\r\n\r\n",
                   method, path, extra_headers ? extra_headers : "", body ? body_len : 0);
  send_all(fd, head, (size_t)n);
  if (body) send_all(fd, body, body_len);
  size_t cap = 8192, len = 0;
  char *buf = malloc(cap);
  for (;;) {
    if (cap - len < 4096) buf = realloc(buf, cap *= 2);
    ssize_t got = recv(fd, buf + len, cap - len - 1, 0);
    if (got <= 0) break;
    len += (size_t)got;
  }
  close(fd);
  buf[len] = 0;
  char *end = strstr(buf, "\r\n\r\n");
  if (!end || sscanf(buf, "HTTP/1.1 %d", &r.status) != 1) {
    free(buf);
    r.status = 0;
    return r;
  }
  r.headers = strndup(buf, (size_t)(end - buf) + 2);
  r.body_len = len - (size_t)(end + 4 - buf);
  r.body = malloc(r.body_len + 1);
  memcpy(r.body, end + 4, r.body_len);
  r.body[r.body_len] = 0;
  free(buf);
  return r;
}

tc_resp_t tc_req(int port, const char *method, const char *path, const char *body) {
  return tc_request(port, method, path, NULL, body, body ? strlen(body) : 0);
}

json_t *tc_json(const tc_resp_t *r) {
  return r->body ? json_loadb(r->body, r->body_len, JSON_DECODE_ANY, NULL) : NULL;
}

char *tc_header(const tc_resp_t *r, const char *name) {
  size_t n = strlen(name);
  for (const char *p = r->headers; p && *p; p = strstr(p, "\r\n") ? strstr(p, "\r\n") + 2 : "") {
    if (!strncasecmp(p, name, n) && p[n] == ':') {
      const char *v = p + n + 1;
      while (*v == ' ') v++;
      return strndup(v, strcspn(v, "\r\n"));
    }
  }
  return NULL;
}

int tc_is_error(const tc_resp_t *r) {
  json_t *j = tc_json(r);
  json_t *e = json_object_get(j, "error");
  int ok = json_is_object(e) && json_integer_value(json_object_get(e, "status")) == r->status &&
           json_string_length(json_object_get(e, "message")) > 0;
  json_decref(j);
  return ok;
}

void tc_free(tc_resp_t *r) {
  free(r->headers);
  free(r->body);
  r->headers = r->body = NULL;
}
