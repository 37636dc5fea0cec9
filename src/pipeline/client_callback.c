/* Delivering a callback from a client: the trusted path (an operator's
 * `errand pipeline callback`, or the HTTP layer once it checked the
 * token). The callback runs in a worker, through the callback task; this
 * checks first that the pipeline takes one, so that a callback to an
 * unknown or finished pipeline is refused at once with nothing written. */
#include <string.h>

#include "pipeline/pipe_internal.h"
#include "pipeline/token.h"
#include "queue/client_internal.h"

int er_pipeline_callback(er_client_t *c, const char *id, json_t *params, er_id_t *task_id) {
  if (!c) return ER_EINVAL;
  if (!id || !er_id_valid(id))
    return er__client_fail(c, ER_EINVAL, "pipeline callback: '%s' is not a pipeline id",
                           id ? id : "");
  char why[256] = "";
  json_t *p = params ? json_incref(params) : json_object();
  int rc = er__pipe_params_check(p, false, why, sizeof why);
  if (rc < 0) {
    json_decref(p);
    return er__client_fail(c, rc, "pipeline callback: %s", why);
  }
  json_t *doc = NULL;
  rc = er_pipeline_get(c, id, &doc);
  if (rc == ER_ENOENT) {
    rc = er__client_fail(c, rc, "pipeline callback: no pipeline %s", id);
  } else if (rc == 0 && !er__pipe_takes_callback(doc, why, sizeof why)) {
    rc = er__client_fail(c, ER_ESTATE, "pipeline callback: %s", why);
  } else if (rc == 0) {
    json_t *args = json_pack("[s, O]", id, p);
    er_send_opts_t o = {.queue = json_string_value(json_object_get(doc, "queue"))};
    rc = er_send(c, ER__PIPE_TASK_CALLBACK, args, NULL, &o, task_id);
    json_decref(args);
  }
  json_decref(doc);
  json_decref(p);
  return rc;
}

int er_pipeline_secret_rotate(er_client_t *c) {
  if (!c) return ER_EINVAL;
  er_store_t *s = NULL;
  int rc = er__client_take_store(c, &s);
  if (rc < 0) return rc;
  rc = er__pipe_secret_rotate(s);
  if (rc < 0) er__client_store_fail(c, s, rc, "pipeline secret rotate");
  er__client_put_store(c, s);
  return rc;
}
