/* GET|POST /callback?pipeline_id=ID&NAME=VALUE...&token=TOKEN: an outside
 * person or system calls an async pipeline back. The token is the HMAC the
 * worker signed the URL with (src/pipeline/token.h), over the parameters
 * minus pipeline_id and token; a pipeline with public callbacks (Approval)
 * instead checks its own token, which it gets among the parameters. Every
 * refusal before delivery is the same 403, so that a caller without a good
 * token cannot learn whether a pipeline exists. Once delivered, the answer
 * is the callback's own ({status, content_type, body}). */
#include <string.h>

#include "core/url_query.h"
#include "http/http_internal.h"
#include "errand/pipeline.h"
#include "pipeline/token.h"
#include "queue/client_internal.h"

#define REFUSED "callback refused"

/* The form body's parameters merged into q; false with a 400 in out. */
static bool merge_form(er__http_req_t *rq, json_t *q, er__http_resp_t *out) {
  const char *ct = rq->content_type;
  if (!rq->body_len || !ct || strncasecmp(ct, "application/x-www-form-urlencoded", 33))
    return true;
  json_t *form = NULL;
  char why[256] = "";
  if (er__url_query_parse(rq->body, rq->body_len, &form, why, sizeof why) < 0) {
    er__http_error(out, 400, "form body: %s", why);
    return false;
  }
  const char *k;
  json_t *v;
  json_object_foreach(form, k, v) {
    if (json_object_get(q, k)) {
      er__http_error(out, 400, "parameter '%s' is given twice", k);
      json_decref(form);
      return false;
    }
    json_object_set(q, k, v);
  }
  json_decref(form);
  return true;
}

/* Whether token is the HMAC for (id, q) under the server's own secret, or
 * the store's when it has none. */
static bool signed_ok(er_http_server_t *srv, const char *id, json_t *q, const char *token) {
  er_client_t *c = srv->client;
  if (srv->has_secret)
    return er__pipe_token_check_with(NULL, srv->secret, id, q, token) == 0;
  er_store_t *s;
  if (er__client_take_store(c, &s) < 0) return false;
  bool ok = er__pipe_token_check(s, id, q, token) == 0;
  er__client_put_store(c, s);
  return ok;
}

/* Whether pipeline id checks its own token (public callbacks). */
static bool is_public(er_client_t *c, const char *id) {
  json_t *doc = NULL;
  bool yes = er_pipeline_get(c, id, &doc) == 0 &&
             json_is_true(json_object_get(doc, "public_callbacks"));
  json_decref(doc);
  return yes;
}

/* Answers with the callback task's answer once a worker ran it. */
static void relay(er__http_req_t *rq, er__http_resp_t *out, const char *task_id) {
  er_http_server_t *srv = rq->srv;
  er__http_wait_done(srv, task_id, srv->o.max_wait_ms);
  json_t *answer = NULL, *error = NULL;
  int rc = er_result(srv->client, task_id, NULL, 0, &answer, &error);
  json_int_t status = json_integer_value(json_object_get(answer, "status"));
  const char *body = json_string_value(json_object_get(answer, "body"));
  const char *type = json_string_value(json_object_get(answer, "content_type"));
  if (rc == ER_ESTATE || rc == ER_ETIMEDOUT) {
    er__http_error(out, 504, "the callback is not delivered yet (no worker ran task %s)",
                   task_id);
  } else if (rc < 0) {
    er__http_error(out, 502, "the callback failed: %s", er_client_last_error(srv->client));
  } else if (status < 100 || status > 599) {
    er__http_error(out, 502, "the callback gave no answer");
  } else {
    out->status = (int)status;
    out->body = er_strdup(body ? body : "");
    out->body_len = out->body ? strlen(out->body) : 0;
    out->owned_type = er_strdup(type && *type ? type : "text/plain; charset=utf-8");
    out->content_type = out->owned_type;
  }
  json_decref(answer);
  json_decref(error);
}

void er__http_callback(er__http_req_t *rq, er__http_resp_t *out) {
  er_client_t *c = rq->srv->client;
  json_t *q = er__http_query(rq, out);
  if (!q) return;
  if (!merge_form(rq, q, out)) {
    json_decref(q);
    return;
  }
  char *id = er_strdup(json_string_value(json_object_get(q, "pipeline_id")));
  char *token = er_strdup(json_string_value(json_object_get(q, "token")));
  json_object_del(q, "pipeline_id");
  bool ok = id && token && er_id_valid(id);
  if (ok && signed_ok(rq->srv, id, q, token)) {
    json_object_del(q, "token"); /* the HMAC is the server's, not the callback's */
  } else if (!(ok && is_public(c, id))) {
    ok = false;
  }
  er_id_t task;
  int rc = ok ? er_pipeline_callback(c, id, q, &task) : ER_EAUTH;
  if (rc == ER_ESTATE && !json_object_get(q, "token")) /* signed: the caller may know */
    er__http_error(out, 409, "%s", er_client_last_error(c));
  else if (rc == ER_EAUTH || rc == ER_ENOENT || rc == ER_ESTATE || rc == ER_EINVAL)
    er__http_error(out, 403, REFUSED);
  else if (rc < 0)
    er__http_error(out, er__http_status_for(rc), "%s", er_client_last_error(c));
  else
    relay(rq, out, task.text);
  er_free(id);
  er_free(token);
  json_decref(q);
}
