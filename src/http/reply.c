/* Answers (JSON bodies, errors as {"error": {"status", "message"}}) and
 * what a request brings in (a JSON body, query parameters), and the bounded
 * wait the long polls and callbacks share. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/url_query.h"
#include "http/http_internal.h"

void er__http_json(er__http_resp_t *out, int status, json_t *j) {
  char *text = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
  json_decref(j);
  er_free(out->body);
  out->body = NULL;
  if (!text) {
    static const char oom[] = "{\"error\":{\"status\":500,\"message\":\"out of memory\"}}";
    out->status = 500;
    out->body = er_strdup(oom);
    out->body_len = out->body ? strlen(oom) : 0;
    return;
  }
  /* jansson allocates with malloc unless told otherwise; the server frees
   * with er_free, so hand it a copy of ours. */
  out->body = er_strdup(text);
  out->body_len = out->body ? strlen(out->body) : 0;
  free(text);
  out->status = status;
  out->content_type = "application/json";
}

void er__http_error(er__http_resp_t *out, int status, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  json_t *m = json_string(msg);
  if (!m) m = json_string("(a message that is not UTF-8)");
  er__http_json(out, status, json_pack("{s:{s:i, s:o}}", "error", "status", status, "message", m));
}

int er__http_status_for(int rc) {
  switch (rc) {
    case ER_EINVAL:
    case ER_EPARSE: return 400;
    case ER_EAUTH: return 403;
    case ER_ENOENT: return 404;
    case ER_EEXIST:
    case ER_ETOMBSTONED:
    case ER_ESTATE: return 409;
    case ER_ETOOBIG: return 413;
    case ER_ETIMEDOUT: return 504;
    case ER_EUNAVAILABLE:
    case ER_EBUSY: return 503;
    default: return 500;
  }
}

void er__http_status_url(er__http_req_t *rq, const char *kind, json_t *o, const char *id) {
  char url[512];
  const char *base = rq->srv->base_url ? rq->srv->base_url : "";
  snprintf(url, sizeof url, "%s/api/v1/%s/%s", base, kind, id);
  json_object_set_new(o, "status_url", json_string(url));
}

void er__http_client_error(er__http_req_t *rq, er__http_resp_t *out, int rc) {
  er__http_error(out, er__http_status_for(rc), "%s", er_client_last_error(rq->srv->client));
}

json_t *er__http_body_object(er__http_req_t *rq, er__http_resp_t *out) {
  json_error_t e;
  json_t *j = json_loadb(rq->body ? rq->body : "", rq->body_len, JSON_REJECT_DUPLICATES, &e);
  if (!j) {
    er__http_error(out, 400, "malformed JSON: %s (line %d, column %d, position %d)", e.text,
                   e.line, e.column, e.position);
    return NULL;
  }
  if (!json_is_object(j)) {
    json_decref(j);
    er__http_error(out, 400, "the body must be a JSON object");
    return NULL;
  }
  return j;
}

json_t *er__http_query(er__http_req_t *rq, er__http_resp_t *out) {
  json_t *q = NULL;
  char why[256] = "";
  if (er__url_query_parse(rq->query, strlen(rq->query), &q, why, sizeof why) < 0) {
    er__http_error(out, 400, "query: %s", *why ? why : "malformed");
    return NULL;
  }
  return q;
}

void er__http_wait_done(er_http_server_t *srv, const char *id, int64_t ms) {
  if (ms > srv->o.max_wait_ms) ms = srv->o.max_wait_ms;
  int64_t end = (int64_t)er_now_mono_ms() + ms;
  /* In slices, so that a stopping server is not kept waiting by a poll. */
  for (;;) {
    int64_t left = end - (int64_t)er_now_mono_ms();
    if (left <= 0 || atomic_load(&srv->stopping)) return;
    json_t *res = NULL, *err = NULL;
    int rc = er_result(srv->client, id, NULL, left < 500 ? left : 500, &res, &err);
    json_decref(res);
    json_decref(err);
    if (rc != ER_ETIMEDOUT) return;
  }
}
