/* er_store_list_tasks: checks the request and dispatches (a backend that
 * lacks the op answers ER_ENOTSUP). */
#include <string.h>

#include "store/store_internal.h"

int er_store_list_tasks(er_store_t *s, const er_task_list_req_t *req, er_task_rec_t ***out,
                        size_t *n, char *next_cursor) {
  if (!s) return ER_EINVAL;
  s->last_error[0] = 0;
  if (!req || !out || !n || !next_cursor) {
    er__store_set_error(s, "list_tasks: req, out, n and next_cursor are required");
    return ER_EINVAL;
  }
  *out = NULL;
  *n = 0;
  next_cursor[0] = 0;
  if (req->limit > ER_TASK_LIST_MAX) {
    er__store_set_error(s, "list_tasks: limit %zu is over %d", req->limit, ER_TASK_LIST_MAX);
    return ER_EINVAL;
  }
  if (req->by_state && (req->state < ER_STATE_PENDING || req->state > ER_STATE_REVOKED)) {
    er__store_set_error(s, "list_tasks: state %d is not a task state", (int)req->state);
    return ER_EINVAL;
  }
  if (req->cursor && *req->cursor && !er_id_valid(req->cursor)) {
    er__store_set_error(s, "list_tasks: cursor '%.40s' is not a task id", req->cursor);
    return ER_EINVAL;
  }
  if (!s->ops->list_tasks) {
    er__store_set_error(s, "the %s store does not support listing tasks", s->ops->scheme);
    return ER_ENOTSUP;
  }
  er_task_list_req_t r = *req;
  if (!r.limit) r.limit = ER_TASK_LIST_DEFAULT;
  if (r.cursor && !*r.cursor) r.cursor = NULL;
  return s->ops->list_tasks(s, &r, out, n, next_cursor);
}
