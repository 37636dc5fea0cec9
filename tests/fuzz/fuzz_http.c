/* The HTTP layer's request parsing and routing: an input is
 *   FLAGS METHOD-INDEX URI '\n' BODY
 * (FLAGS bit 0: the server has a token; bit 1: the request carries it;
 * bit 2: a form content type), run through the same split of the raw URI
 * and the same dispatch a served request takes, on a server (never
 * started) whose store is a SQLite file in a temporary directory. Every
 * answer must be a status from 100 to 599, and every JSON answer valid
 * JSON; anything else aborts (a finding), as do the sanitizers. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http/http_internal.h"

static er_http_server_t *s[2];
static char dir[512] = "";

/* The servers closed and their store's files removed, at exit. */
static void cleanup(void) {
  er_http_server_free(s[0]);
  er_http_server_free(s[1]);
  const char *const files[] = {"fuzz.db", "fuzz.db-wal", "fuzz.db-shm", "fuzz.db-journal",
                               "fuzz.db-bell"};
  char path[600];
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    snprintf(path, sizeof path, "%s/%s", dir, files[i]);
    unlink(path);
  }
  rmdir(dir);
}

static er_http_server_t *server(bool token) {
  if (s[token]) return s[token];
  if (!*dir) {
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/errand-fuzz-http-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) abort();
    atexit(cleanup);
  }
  char url[600];
  snprintf(url, sizeof url, "sqlite:%s/fuzz.db", dir);
  /* A wait (?wait=, a delivered callback) is over in a millisecond. */
  er_http_opts_t o = {.listen = "127.0.0.1:0", .store_url = url, .token = token ? "T0k" : NULL,
                      .max_wait_ms = 1};
  if (er_http_server_new(&o, &s[token], NULL, 0) < 0) abort();
  return s[token];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char *const methods[] = {"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"};
  if (size < 2) return 0;
  uint8_t flags = data[0];
  const char *method = methods[data[1] % 6];
  const char *rest = (const char *)data + 2;
  size_t n = size - 2;
  const char *nl = memchr(rest, '\n', n);
  size_t ulen = nl ? (size_t)(nl - rest) : n;
  char *uri = strndup(rest, ulen); /* libmicrohttpd hands a C string */
  er__http_req_t *rq = er__http_req_new(server(flags & 1), uri);
  free(uri);
  if (!rq || !rq->path || !rq->query) {
    er__http_req_free(rq);
    return 0;
  }
  rq->method = method;
  rq->auth = flags & 2 ? "Bearer T0k" : NULL;
  rq->content_type = flags & 4 ? "application/x-www-form-urlencoded" : "application/json";
  if (nl) {
    rq->body_len = n - ulen - 1;
    rq->body = er_malloc(rq->body_len + 1);
    memcpy(rq->body, nl + 1, rq->body_len);
    rq->body[rq->body_len] = 0;
  }
  er__http_resp_t r = {0};
  er__http_dispatch(rq, &r);
  if (r.status < 100 || r.status > 599) abort();
  if (r.content_type && !strcmp(r.content_type, "application/json")) {
    json_t *j = json_loadb(r.body, r.body_len, JSON_DECODE_ANY, NULL);
    if (!j) abort();
    json_decref(j);
  }
  er_free(r.body);
  er_free(r.owned_type);
  er__http_req_free(rq);
  return 0;
}
