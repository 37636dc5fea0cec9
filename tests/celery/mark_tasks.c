/* A task both a C worker and a Python Celery worker run (mixed_tasks.py
 * has its twin): mark(port, seconds) counts its run in Redis (INCR
 * mark:<id>, RPUSH marked "c"), sleeps, and returns its id; the mixed-pool
 * test checks from the counts that every task ran, and how often. */
#include <errand.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <time.h>

static int mark(er_task_t *t, json_t **result) {
  int port = (int)json_integer_value(json_array_get(er_task_args(t), 0));
  double s = json_number_value(json_array_get(er_task_args(t), 1));
  redisContext *c = redisConnect("127.0.0.1", port);
  if (!c || c->err) {
    if (c) redisFree(c);
    return er_task_fail(t, ER_EUNAVAILABLE, "mark: cannot reach redis on port %d", port);
  }
  redisReply *r = redisCommand(c, "INCR mark:%s", er_task_id(t));
  if (r) freeReplyObject(r);
  r = redisCommand(c, "RPUSH marked c");
  if (r) freeReplyObject(r);
  redisFree(c);
  struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
  *result = json_string(er_task_id(t));
  return 0;
}
ER_TASK("mark", mark, .max_retries = ER_RETRIES_NONE)
