/* Pipelines: start a root, read its tree, list roots, abort one. The server
 * loads no libraries, so it starts names it has not registered (a worker
 * has them); a worker lacking the name aborts the root. */
#include <stdlib.h>
#include <string.h>

#include "errand/pipeline.h"
#include "http/http_internal.h"

/* The start's fields out of body (strings borrowed); false with a 400. */
static bool start_fields(json_t *body, const char **name, json_t **args, json_t **kwargs,
                         er_pipeline_opts_t *o, er__http_resp_t *out) {
  const char *k;
  json_t *v;
  json_object_foreach(body, k, v) {
    const char *want = NULL;
    if (!strcmp(k, "pipeline")) want = (*name = json_string_value(v)) ? NULL : "a string";
    else if (!strcmp(k, "key")) want = (o->key = json_string_value(v)) ? NULL : "a string";
    else if (!strcmp(k, "args")) want = json_is_array(*args = v) ? NULL : "an array";
    else if (!strcmp(k, "kwargs")) want = json_is_object(*kwargs = v) ? NULL : "an object";
    else {
      er__http_error(out, 400, "unknown field '%s'", k);
      return false;
    }
    if (want) {
      er__http_error(out, 400, "'%s' must be %s", k, want);
      return false;
    }
  }
  if (!*name) er__http_error(out, 400, "'pipeline' (the pipeline's name) is required");
  return *name != NULL;
}

void er__http_pipeline_post(er__http_req_t *rq, er__http_resp_t *out) {
  json_t *body = er__http_body_object(rq, out);
  if (!body) return;
  const char *name = NULL;
  json_t *args = NULL, *kwargs = NULL;
  er_pipeline_opts_t o = {.unchecked = true};
  er_id_t root = {{0}};
  if (start_fields(body, &name, &args, &kwargs, &o, out)) {
    int rc = er_pipeline_start(rq->srv->client, name, args, kwargs, &o, &root);
    if (rc == ER_EEXIST) {
      /* The key is taken: the root that holds it, for the caller to poll. */
      er__http_client_error(rq, out, rc);
      json_t *e = json_loadb(out->body, out->body_len, 0, NULL);
      json_object_set_new(e, "id", json_string(root.text));
      er__http_status_url(rq, "pipelines", e, root.text);
      er__http_json(out, 409, e);
    } else if (rc < 0) {
      er__http_client_error(rq, out, rc);
    } else {
      json_t *a = json_pack("{s:s}", "id", root.text);
      er__http_status_url(rq, "pipelines", a, root.text);
      er__http_json(out, 202, a);
    }
  }
  json_decref(body);
}

void er__http_pipeline_get(er__http_req_t *rq, er__http_resp_t *out) {
  json_t *tree = NULL;
  int rc = er_id_valid(rq->caps[0]) ? er_pipeline_tree(rq->srv->client, rq->caps[0], &tree)
                                    : ER_ENOENT;
  if (rc == ER_ENOENT)
    er__http_error(out, 404, "no pipeline %s", rq->caps[0]);
  else if (rc < 0)
    er__http_client_error(rq, out, rc);
  else
    er__http_json(out, 200, tree);
}

void er__http_pipeline_list(er__http_req_t *rq, er__http_resp_t *out) {
  json_t *q = er__http_query(rq, out);
  if (!q) return;
  const char *name = NULL, *cursor = NULL, *k;
  long limit = 0;
  json_t *v;
  json_object_foreach(q, k, v) {
    const char *s = json_string_value(v), *why = NULL;
    char *end = NULL;
    if (!strcmp(k, "name")) {
      name = s;
    } else if (!strcmp(k, "cursor")) {
      cursor = s;
    } else if (!strcmp(k, "limit")) {
      limit = strtol(s, &end, 10);
      if (end == s || *end || limit < 1 || limit > 1000)
        why = "'%s' takes an integer from 1 to 1000";
    } else {
      why = "unknown parameter '%s'";
    }
    if (why) {
      er__http_error(out, 400, why, k);
      json_decref(q);
      return;
    }
  }
  json_t *list = NULL;
  char *next = NULL;
  int rc = er_pipeline_list(rq->srv->client, name, cursor, (size_t)limit, &list, &next);
  json_decref(q);
  if (rc < 0) {
    er__http_client_error(rq, out, rc);
    return;
  }
  er__http_json(out, 200, json_pack("{s:o, s:o}", "pipelines", list, "next_cursor",
                                   next ? json_string(next) : json_null()));
  er_free(next);
}

void er__http_pipeline_abort(er__http_req_t *rq, er__http_resp_t *out) {
  const char *message = NULL;
  json_t *body = NULL;
  if (rq->body_len) { /* the body is optional */
    if (!(body = er__http_body_object(rq, out))) return;
    const char *k;
    json_t *v;
    json_object_foreach(body, k, v) {
      if (strcmp(k, "message") || !(message = json_string_value(v))) {
        er__http_error(out, 400, strcmp(k, "message") ? "unknown field '%s'"
                                                      : "'%s' must be a string", k);
        json_decref(body);
        return;
      }
    }
  }
  bool aborted = false;
  int rc = er_id_valid(rq->caps[0])
               ? er_pipeline_abort(rq->srv->client, rq->caps[0], message, &aborted)
               : ER_ENOENT;
  json_decref(body);
  if (rc == ER_ENOENT)
    er__http_error(out, 404, "no pipeline %s", rq->caps[0]);
  else if (rc < 0)
    er__http_client_error(rq, out, rc);
  else
    er__http_json(out, 200, json_pack("{s:b}", "aborted", aborted));
}
