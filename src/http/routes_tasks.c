/* Tasks and polling keys: send, status (with a long poll), list, revoke; start by
 * key unless the key names a live task, and read by key. The server does
 * not know which tasks exist (workers register them): a task no worker has
 * waits in its queue until one that has it runs, as with er_send. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_internal.h"
#include "queue/client_internal.h"

/* The record as `errand status` prints it, with the result when done. */
static json_t *rec_json(const er_task_rec_t *r) {
  json_t *o = er_task_rec_json(r);
  if (o && r->state == ER_STATE_SUCCESS)
    json_object_set(o, "result", r->result ? r->result : json_null());
  return o;
}

/* Seconds (a number >= 0) into ms, or false. */
static bool seconds(json_t *v, int64_t *ms) {
  if (!json_is_number(v)) return false;
  double s = json_number_value(v);
  if (!isfinite(s) || s < 0 || s > 1e9) return false;
  *ms = (int64_t)(s * 1000.0 + 0.5); /* no libm: liberrand links without it */
  return true;
}

/* The send's fields out of body into *o (strings borrowed from body);
 * false with a 400 in out. */
static bool send_fields(json_t *body, bool need_task, er_send_opts_t *o, const char **task,
                        json_t **args, json_t **kwargs, er__http_resp_t *out) {
  const char *k;
  json_t *v;
  *task = NULL;
  *args = *kwargs = NULL;
  json_object_foreach(body, k, v) {
    bool ok = true;
    if (!strcmp(k, "task")) ok = (*task = json_string_value(v)) != NULL;
    else if (!strcmp(k, "args")) ok = json_is_array(*args = v);
    else if (!strcmp(k, "kwargs")) ok = json_is_object(*kwargs = v);
    else if (!strcmp(k, "context")) ok = json_is_object(o->context = v);
    else if (!strcmp(k, "key")) ok = (o->key = json_string_value(v)) != NULL;
    else if (!strcmp(k, "name")) ok = (o->name = json_string_value(v)) != NULL;
    else if (!strcmp(k, "queue")) ok = (o->queue = json_string_value(v)) != NULL;
    else if (!strcmp(k, "if_absent")) ok = json_is_boolean(v) && ((o->if_absent = json_is_true(v)), 1);
    else if (!strcmp(k, "countdown")) ok = seconds(v, &o->countdown_ms);
    else if (!strcmp(k, "expires")) ok = seconds(v, &o->expires_ms);
    else if (!strcmp(k, "eta")) /* ms, or a time as the records show them */
      ok = json_is_integer(v) ? (o->eta_ms = json_integer_value(v)) >= 0
                              : json_is_string(v) && !er_time_parse(json_string_value(v), &o->eta_ms);
    else if (!strcmp(k, "priority"))
      ok = json_is_integer(v) && json_integer_value(v) >= INT32_MIN &&
           json_integer_value(v) <= INT32_MAX && ((o->priority = (int)json_integer_value(v)), 1);
    else {
      er__http_error(out, 400, "unknown field '%s'", k);
      return false;
    }
    if (!ok) {
      static const char *const what[][2] = {
          {"args", "an array"}, {"kwargs", "an object"}, {"context", "an object"},
          {"if_absent", "true or false"}, {"countdown", "seconds (a number >= 0)"},
          {"expires", "seconds (a number >= 0)"}, {"eta", "ms since the epoch (an integer >= 0) or an RFC 3339 time "
           "(2026-12-02T15:41:32.934Z, 2026-12-02T16:41:32+01:00; from 1970)"},
          {"priority", "a 32-bit integer"}};
      const char *want = "a string";
      for (size_t i = 0; i < sizeof what / sizeof what[0]; i++)
        if (!strcmp(k, what[i][0])) want = what[i][1];
      er__http_error(out, 400, "'%s' must be %s", k, want);
      return false;
    }
  }
  if (need_task && !*task) {
    er__http_error(out, 400, "'task' (the task's name) is required");
    return false;
  }
  return true;
}

/* Answers with the record of id (or of key's newest task) and its status URL. */
static void answer_rec(er__http_req_t *rq, er__http_resp_t *out, const char *id, const char *key,
                       int status) {
  er_task_rec_t *r = NULL;
  int rc = er_status(rq->srv->client, id, key, &r);
  if (rc < 0) {
    er__http_client_error(rq, out, rc);
  } else if (r->state == ER_STATE_UNKNOWN) {
    er__http_error(out, 404, id ? "no task %s" : "no task for key %s", id ? id : key);
  } else {
    json_t *o = rec_json(r);
    er__http_status_url(rq, "tasks", o, r->id);
    er__http_json(out, status, o);
  }
  er_task_rec_free(r);
}

/* Sends the task the body describes; with key (the path's), the key's live
 * task instead when there is one. False with the error in out. */
static bool send_body(er__http_req_t *rq, er__http_resp_t *out, const char *key, er_id_t *id,
                      bool *existed) {
  json_t *body = er__http_body_object(rq, out);
  if (!body) return false;
  er_send_opts_t o = {0};
  const char *task;
  json_t *args, *kwargs;
  bool ok = send_fields(body, true, &o, &task, &args, &kwargs, out);
  if (ok && key && o.key && strcmp(o.key, key)) {
    er__http_error(out, 400, "'key' in the body differs from the path's");
    ok = false;
  } else if (ok && key) {
    o.key = key;
    o.if_absent = true; /* the key's live task, if any, is the answer */
  }
  char msg[512];
  int rc = ok ? er__http_send(rq->srv, task, args, kwargs, &o, rq->body_len, id, existed, msg,
                                sizeof msg) : 0;
  if (rc < 0) er__http_error(out, er__http_status_for(rc), "%s", msg);
  json_decref(body);
  return ok && rc == 0;
}

void er__http_task_post(er__http_req_t *rq, er__http_resp_t *out) {
  er_id_t id;
  bool existed = false;
  if (!send_body(rq, out, NULL, &id, &existed)) return;
  json_t *a = json_pack("{s:s, s:b}", "id", id.text, "existed", existed);
  er__http_status_url(rq, "tasks", a, id.text);
  er__http_json(out, 202, a);
}

void er__http_task_get(er__http_req_t *rq, er__http_resp_t *out) {
  const char *id = rq->caps[0];
  if (!er_id_valid(id)) {
    er__http_error(out, 404, "no task %s", id);
    return;
  }
  json_t *q = er__http_query(rq, out);
  if (!q) return;
  const char *k;
  json_t *v;
  int64_t wait_ms = 0;
  json_object_foreach(q, k, v) {
    char *end;
    double s = strcmp(k, "wait") ? -1 : strtod(json_string_value(v), &end);
    if (s < 0 || !isfinite(s) || *end || end == json_string_value(v)) {
      er__http_error(out, 400, strcmp(k, "wait") ? "unknown parameter '%s'"
                                                 : "'%s' takes seconds (a number >= 0)", k);
      json_decref(q);
      return;
    }
    wait_ms = s * 1000.0 > (double)rq->srv->o.max_wait_ms ? rq->srv->o.max_wait_ms
                                                          : (int64_t)(s * 1000.0);
  }
  json_decref(q);
  if (wait_ms > 0) er__http_wait_done(rq->srv, id, wait_ms);
  answer_rec(rq, out, id, NULL, 200);
}

/* ---- listing ---------------------------------------------------------------- */

/* The listing's query parameters into req (strings borrowed from q); false
 * with a 400 in out. */
static bool list_params(json_t *q, er_task_list_req_t *req, er__http_resp_t *out) {
  const char *k;
  json_t *v;
  json_object_foreach(q, k, v) {
    const char *s = json_string_value(v);
    if (!strcmp(k, "state")) {
      req->state = er_state_from_name(s);
      req->by_state = true;
      if (req->state == ER_STATE_UNKNOWN) {
        er__http_error(out, 400, "unknown state '%s' (PENDING, STARTED, RETRY, SUCCESS, "
                                 "FAILURE or REVOKED)", s);
        return false;
      }
    } else if (!strcmp(k, "name")) {
      req->task = s;
    } else if (!strcmp(k, "queue")) {
      req->queue = s;
    } else if (!strcmp(k, "cursor")) {
      req->cursor = s;
      if (*s && !er_id_valid(s)) {
        er__http_error(out, 400, "'cursor' must be a next_cursor this API gave");
        return false;
      }
    } else if (!strcmp(k, "limit")) {
      char *end;
      long n = strtol(s, &end, 10);
      if (end == s || *end || n < 1 || n > ER_TASK_LIST_MAX) {
        er__http_error(out, 400, "'limit' must be an integer from 1 to %d", ER_TASK_LIST_MAX);
        return false;
      }
      req->limit = (size_t)n;
    } else {
      er__http_error(out, 400, "unknown parameter '%s'", k);
      return false;
    }
  }
  return true;
}

void er__http_task_list(er__http_req_t *rq, er__http_resp_t *out) {
  json_t *q = er__http_query(rq, out);
  if (!q) return;
  er_task_list_req_t req = {0};
  if (!list_params(q, &req, out)) {
    json_decref(q);
    return;
  }
  er_client_t *c = rq->srv->client;
  er_store_t *s = NULL;
  er_task_rec_t **recs = NULL;
  size_t n = 0;
  char next[ER_ID_LEN + 1] = "";
  int rc = er__client_take_store(c, &s);
  if (rc == 0) {
    rc = er_store_list_tasks(s, &req, &recs, &n, next);
    if (rc < 0) er__client_store_fail(c, s, rc, "list tasks");
    er__client_put_store(c, s);
  }
  json_decref(q);
  if (rc < 0) {
    er__http_client_error(rq, out, rc);
    return;
  }
  json_t *arr = json_array();
  for (size_t i = 0; i < n; i++) {
    /* as GET /api/v1/tasks/{id} answers it, without the result */
    json_t *o = er_task_rec_json(recs[i]);
    er__http_status_url(rq, "tasks", o, recs[i]->id);
    json_array_append_new(arr, o);
  }
  er_task_rec_free_array(recs, n);
  json_t *res = json_pack("{s:o}", "tasks", arr);
  if (res && next[0]) json_object_set_new(res, "next_cursor", json_string(next));
  er__http_json(out, 200, res);
}

void er__http_task_delete(er__http_req_t *rq, er__http_resp_t *out) {
  const char *id = rq->caps[0];
  int rc = er_id_valid(id) ? er_revoke(rq->srv->client, id) : ER_ENOENT;
  if (rc == ER_ENOENT)
    er__http_error(out, 404, "no task %s", id);
  else if (rc < 0)
    er__http_client_error(rq, out, rc);
  else
    answer_rec(rq, out, id, NULL, 200);
}

void er__http_key_put(er__http_req_t *rq, er__http_resp_t *out) {
  er_id_t id;
  bool existed = false;
  if (send_body(rq, out, rq->caps[0], &id, &existed))
    answer_rec(rq, out, id.text, NULL, existed ? 200 : 202);
}

void er__http_key_get(er__http_req_t *rq, er__http_resp_t *out) {
  answer_rec(rq, out, NULL, rq->caps[0], 200);
}

void er__http_healthz(er__http_req_t *rq, er__http_resp_t *out) {
  er__http_json(out, 200, json_pack("{s:s}", "status", "ok"));
}
