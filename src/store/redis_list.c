/* Listing tasks (lua/list.lua): the ids index walked down from the cursor,
 * at most ER_TASK_LIST_SCAN entries a call, so that a filter that matches
 * little never holds Redis long; the caller follows the cursor. */
#include <string.h>

#include "store/redis_internal.h"

int er__rd_list_tasks(er_store_t *s, const er_task_list_req_t *req, er_task_rec_t ***out,
                      size_t *n, char *next_cursor) {
  er_rd_t *rd = er__rd(s);
  er_rd_args_t a = {0};
  er__rd_args_opt(&a, req->cursor);
  er__rd_args_i64(&a, (int64_t)req->limit);
  if (req->by_state) er__rd_args_fmt(&a, "+%d", (int)req->state);
  else er__rd_args_opt(&a, NULL);
  er__rd_args_opt(&a, req->task);
  er__rd_args_opt(&a, req->queue);
  er__rd_args_i64(&a, er_now_wall_ms());
  er__rd_args_i64(&a, ER_TASK_LIST_SCAN);
  redisReply *r;
  int rc = er__rd_run(rd, ER_RD_LIST, true, &a, &r);
  er__rd_args_free(&a);
  if (rc) return rc;
  if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 || r->elements - 1 > req->limit) {
    freeReplyObject(r);
    er__store_set_error(s, "redis list_tasks: an unexpected reply");
    return ER_EIO;
  }
  er_task_rec_t **recs = er_calloc(r->elements, sizeof *recs);
  if (!recs) {
    freeReplyObject(r);
    return ER_ENOMEM;
  }
  size_t got = 0;
  for (size_t i = 1; !rc && i < r->elements; i++) {
    /* An undecodable record is listed with the reason as its error, as a
     * get shows it. */
    er_rec_why_t why;
    rc = er__rd_read_rec(rd, r->element[i], &recs[got], &why);
    if (!rc) er__rec_lenient(recs[got++], &why);
  }
  const redisReply *next = r->element[0];
  if (!rc && next->type == REDIS_REPLY_STRING && next->len <= ER_ID_LEN) {
    memcpy(next_cursor, next->str, next->len);
    next_cursor[next->len] = 0;
  }
  freeReplyObject(r);
  if (rc) {
    er_task_rec_free_array(recs, got);
    return rc;
  }
  *out = recs;
  *n = got;
  return 0;
}
