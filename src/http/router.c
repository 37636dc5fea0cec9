/* Routes: a method and a path pattern whose "{id}" segments capture one
 * decoded segment each. A path no pattern matches is 404; one that matches
 * with another method is 405 with Allow. Requests under /api/, and
 * /metrics (queue and task names tell about the application), need the
 * bearer token when the server has one. */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "http/http_internal.h"

typedef struct route {
  const char *method, *pattern;
  er__http_handler_fn fn;
} route_t;

static const route_t routes[] = {
    {"POST", "/api/v1/tasks", er__http_task_post},
    {"GET", "/api/v1/tasks/{id}", er__http_task_get},
    {"GET", "/api/v1/tasks", er__http_task_list},
    {"DELETE", "/api/v1/tasks/{id}", er__http_task_delete},
    {"PUT", "/api/v1/keys/{key}", er__http_key_put},
    {"GET", "/api/v1/keys/{key}", er__http_key_get},
    {"POST", "/api/v1/pipelines", er__http_pipeline_post},
    {"GET", "/api/v1/pipelines", er__http_pipeline_list},
    {"GET", "/api/v1/pipelines/{id}", er__http_pipeline_get},
    {"POST", "/api/v1/pipelines/{id}/abort", er__http_pipeline_abort},
    {"GET", "/api/v1/queues", er__http_queues},
    {"GET", "/api/v1/workers", er__http_workers},
    {"GET", "/api/v1/openapi.json", er__http_openapi},
    {"GET", "/healthz", er__http_healthz},
    {"GET", "/callback", er__http_callback},
    {"POST", "/callback", er__http_callback},
    {"GET", "/metrics", er__http_metrics},
    {"GET", "/api/v1/events", er__http_events},
    {"GET", "/", er__http_web},
    {"GET", "/core.js", er__http_web},
    {"GET", "/dash.js", er__http_web},
    {"GET", "/style.css", er__http_web},
};

static int hex(char c) {
  return c >= '0' && c <= '9' ? c - '0'
         : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                : -1;
}

char *er__http_pct_decode(const char *s, size_t n) {
  char *out = er_malloc(n + 1), *o = out;
  if (!out) return NULL;
  for (size_t i = 0; i < n; i++) {
    if (s[i] != '%') {
      *o++ = s[i];
      continue;
    }
    int a = i + 2 < n ? hex(s[i + 1]) : -1, b = i + 2 < n ? hex(s[i + 2]) : -1;
    if (a < 0 || b < 0 || (a == 0 && b == 0)) {
      er_free(out);
      return NULL;
    }
    *o++ = (char)(a * 16 + b);
    i += 2;
  }
  *o = 0;
  return out;
}

/* Whether path matches pattern; captures go to caps (new strings) when
 * caps is not NULL. *bad is set for a capture that does not decode. */
static bool match(const char *pattern, const char *path, char **caps, bool *bad) {
  int ncap = 0;
  while (*pattern && *path) {
    if (*pattern != '/' || *path != '/') return false;
    pattern++, path++;
    size_t pn = strcspn(pattern, "/"), sn = strcspn(path, "/");
    if (pattern[0] == '{') {
      if (!sn) return false;
      if (caps) {
        caps[ncap] = er__http_pct_decode(path, sn);
        if (!caps[ncap]) *bad = true;
      }
      ncap++;
    } else if (pn != sn || memcmp(pattern, path, pn)) {
      return false;
    }
    pattern += pn, path += sn;
  }
  return !*pattern && !*path;
}

/* Whether the Authorization header carries the server's token. Both sides
 * are hashed first, so the comparison takes the same time whatever the
 * length or the bytes of what was sent. */
static bool authorised(const er__http_req_t *rq) {
  const char *want = rq->srv->token;
  if (!want) return true;
  const char *got = rq->auth;
  if (!got || strncmp(got, "Bearer ", 7)) return false;
  unsigned char a[SHA256_DIGEST_LENGTH], b[SHA256_DIGEST_LENGTH];
  SHA256((const unsigned char *)got + 7, strlen(got + 7), a);
  SHA256((const unsigned char *)want, strlen(want), b);
  return CRYPTO_memcmp(a, b, sizeof a) == 0;
}

void er__http_dispatch(er__http_req_t *rq, er__http_resp_t *out) {
  const size_t n = sizeof routes / sizeof routes[0];
  const route_t *found = NULL;
  size_t allowed = 0;
  for (size_t i = 0; i < n; i++) {
    bool bad = false;
    if (!match(routes[i].pattern, rq->path, NULL, &bad)) continue;
    if (!strcmp(routes[i].method, rq->method)) {
      found = &routes[i];
      break;
    }
    size_t used = strlen(out->allow);
    snprintf(out->allow + used, sizeof out->allow - used, "%s%s", allowed++ ? ", " : "",
             routes[i].method);
  }
  /* Before telling which routes exist: a caller without the token learns
   * nothing of the API. */
  if ((!strncmp(rq->path, "/api/", 5) || !strcmp(rq->path, "/metrics")) && !authorised(rq)) {
    out->allow[0] = 0;
    er__http_error(out, 401, "this API needs 'Authorization: Bearer TOKEN'");
    return;
  }
  if (!found && !allowed) {
    er__http_error(out, 404, "no route for %s %s", rq->method, rq->path);
    return;
  }
  if (!found) {
    er__http_error(out, 405, "%s is not allowed on %s (allowed: %s)", rq->method, rq->path,
                   out->allow);
    return;
  }
  out->allow[0] = 0;
  bool bad = false;
  match(found->pattern, rq->path, rq->caps, &bad);
  if (bad) {
    er__http_error(out, 400, "the path %s has a bad percent-escape", rq->path);
    return;
  }
  found->fn(rq, out);
}
