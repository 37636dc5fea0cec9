/* What `errand inspect` shows, as JSON: the queues with their depth by
 * state, and the live workers with their heartbeats. Both name the store
 * by its URL with the password hidden. */
#include "http/http_internal.h"
#include "queue/client_internal.h"

typedef int (*read_fn)(er_store_t *s, json_t **out);

static int read_stats(er_store_t *s, json_t **out) { return er_store_stats(s, out); }

static int read_workers(er_store_t *s, json_t **out) {
  json_t *list = NULL;
  int rc = er_store_workers(s, er_now_wall_ms(), &list);
  *out = rc < 0 ? NULL : json_pack("{s:o}", "workers", list);
  return rc;
}

/* Answers with what read gives, plus "store", on a store handle of the
 * client's own. */
static void answer(er__http_req_t *rq, er__http_resp_t *out, read_fn read, const char *what) {
  er_client_t *c = rq->srv->client;
  er_store_t *s = NULL;
  json_t *j = NULL;
  int rc = er__client_take_store(c, &s);
  if (rc == 0) {
    rc = read(s, &j);
    if (rc < 0) er__client_store_fail(c, s, rc, what);
    char shown[512];
    er_url_redact(er_store_url(s), shown, sizeof shown);
    if (rc == 0) json_object_set_new(j, "store", json_string(shown));
    er__client_put_store(c, s);
  }
  if (rc < 0)
    er__http_client_error(rq, out, rc);
  else
    er__http_json(out, 200, j);
}

void er__http_queues(er__http_req_t *rq, er__http_resp_t *out) {
  answer(rq, out, read_stats, "queues");
}

void er__http_workers(er__http_req_t *rq, er__http_resp_t *out) {
  answer(rq, out, read_workers, "workers");
}
