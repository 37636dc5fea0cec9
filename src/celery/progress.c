/* The progress of a Celery-borne task run in a pool thread or a prefork
 * child, which hold a plain store handle, not the worker's Celery one: the
 * PROGRESS state, as a Python task's update_state writes it, on a
 * connection of its own (reports are rate-limited to a few a second). */
#include <string.h>

#include "celery/celery_internal.h"

bool er__celery_borne(const er_task_rec_t *rec) {
  return rec && json_is_object(json_object_get(rec->context, "celery"));
}

void er__celery_progress(void *ud, const char *id, int attempt, double p, const char *msg) {
  (void)attempt;
  er_store_t *s = NULL;
  if (er_store_open(ud, &s, NULL, 0) < 0) return;
  redisContext *c = NULL;
  char err[200];
  json_t *info = json_pack("{s:f,s:s?}", "progress", p, "message", msg);
  char *meta = er__cel_meta(id, "PROGRESS", info, NULL, NULL, NULL);
  json_decref(info);
  if (meta && strcmp(s->ops->scheme, "redis") == 0 &&
      er__rd_connect(er__rd(s), 2000, true, &c, err, sizeof err) == 0) {
    er_rd_sigpipe_t g;
    er__rd_sigpipe_block(&g);
    redisReply *r = redisCommand(c, "SETEX celery-task-meta-%s %d %s", id, ER__CEL_RESULT_TTL_S,
                                 meta);
    if (r) freeReplyObject(r);
    r = redisCommand(c, "PUBLISH celery-task-meta-%s %s", id, meta);
    if (r) freeReplyObject(r);
    er__rd_sigpipe_unblock(&g);
    redisFree(c);
  }
  er_free(meta);
  er_store_close(s);
}
