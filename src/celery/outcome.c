/* What a finished Celery message writes, as Celery's worker and Redis
 * result backend would: its celery-task-meta-<id> (SET with the result TTL
 * and PUBLISH), the next link of its chain (the result prepended to the
 * next signature's args), its links or errbacks, its part of a chord (the
 * .j/.t/.s join keys; the callback sent when the count is reached), a retry
 * published again with one more retry counted, and its ack. */
#include <stdio.h>
#include <string.h>

#include "celery/celery_internal.h"

void er__cel_ops_result(er_rd_args_t *a, const char *id, const char *status, json_t *result,
                        const char *group, const char *parent) {
  char *meta = er__cel_meta(id, status, result, NULL, group, parent);
  er__rd_args_str(a, "set");
  er__rd_args_fmt(a, "celery-task-meta-%s", id);
  if (meta) er__rd_args_str(a, meta);
  else a->oom = true;
  er__rd_args_i64(a, ER__CEL_RESULT_TTL_S);
  er_free(meta);
}

static const char *ostr(json_t *o, const char *k) {
  return json_string_value(json_object_get(o, k));
}

/* What Celery's worker passes when it sends what comes next: the finished
 * task as parent, its root. New. */
static json_t *next_opts(const er__cel_msg_t *m) {
  return json_pack("{s:s,s:s}", "parent_id", m->id, "root_id", m->root_id ? m->root_id : m->id);
}

static int error_code(json_t *err) {
  json_t *c = json_object_get(err, "code");
  return json_is_integer(c) ? (int)json_integer_value(c) : ER_EFAIL;
}

int er__cel_outcome_ops(er__cel_t *cs, const er_completion_t *c, json_t *f, er_rd_args_t *a,
                        size_t *nops, json_t **join) {
  (void)cs;
  const char *tag = ostr(f, "tag"), *list = ostr(f, "list"), *raw = ostr(f, "raw");
  er__cel_msg_t m;
  char why[200];
  if (er__cel_decode(raw, strlen(raw), &m, why, sizeof why))
    return ER_EINTERNAL; /* it decoded when it was taken */
  if (c->state == ER_STATE_PENDING) { /* given back: next in its list */
    er__rd_args_str(a, "back");
    er__rd_args_str(a, tag);
    er__rd_args_str(a, list);
    er__rd_args_str(a, raw);
    ++*nops;
    er__cel_msg_clear(&m);
    return 0;
  }
  json_t *value = NULL; /* what the result key holds, and a chord part */
  const char *status = "SUCCESS";
  if (c->state == ER_STATE_SUCCESS) {
    value = c->result ? json_incref(c->result) : json_null();
  } else {
    const char *msg = ostr(c->error, "message");
    value = er__cel_exception(error_code(c->error), msg);
    status = c->state == ER_STATE_RETRY ? "RETRY" : c->state == ER_STATE_REVOKED ? "REVOKED"
                                                                                 : "FAILURE";
  }
  if (!m.ignore_result || c->state == ER_STATE_RETRY) {
    er__cel_ops_result(a, m.id, status, value, m.group, m.parent_id);
    ++*nops;
  }
  if (c->state == ER_STATE_RETRY) {
    /* as Task.retry: the same message again, one more retry, due later */
    er__cel_send_t s = {.id = m.id, .task = m.task,
                        .queue = m.routing_key ? m.routing_key : list, .args = m.args,
                        .kwargs = m.kwargs, .embed = m.embed, .eta_ms = c->retry_eta_ms,
                        .expires_ms = m.expires_ms, .retries = m.retries + 1,
                        .priority = m.priority, .root_id = m.root_id, .parent_id = m.parent_id,
                        .group = m.group, .group_index = m.group_index, .reply_to = m.reply_to,
                        .ignore_result = m.ignore_result};
    char *msg = er__cel_encode(&s);
    er__rd_args_str(a, "push");
    er__rd_args_str(a, list);
    if (msg) er__rd_args_str(a, msg);
    else a->oom = true;
    er_free(msg);
    ++*nops;
  } else if (c->state == ER_STATE_SUCCESS) {
    er__cel_pub_t p = {.a = a, .nops = nops, .from = &m};
    json_t *prefix = json_pack("[O]", value), *over = next_opts(&m);
    er__cel_apply_links(&p, json_object_get(m.embed, "callbacks"), prefix, over);
    json_t *chain = json_object_get(m.embed, "chain");
    size_t n = json_array_size(chain);
    if (n) {
      json_t *rest = json_array();
      for (size_t i = 0; i + 1 < n; i++) json_array_append(rest, json_array_get(chain, i));
      json_object_set_new(over, "chain", rest);
      er__cel_apply(&p, json_array_get(chain, n - 1), prefix, over);
    }
    json_decref(prefix);
    json_decref(over);
  } else {
    er__cel_pub_t p = {.a = a, .nops = nops, .from = &m};
    json_t *prefix = json_pack("[s]", m.id), *over = next_opts(&m);
    er__cel_apply_errbacks(&p, json_object_get(m.embed, "errbacks"), prefix, over);
    json_decref(prefix);
    json_decref(over);
  }
  json_t *chord = json_object_get(m.embed, "chord");
  if (!m.group || !json_is_object(chord) || c->state == ER_STATE_RETRY) {
    er__rd_args_str(a, "ack");
    er__rd_args_str(a, tag);
    ++*nops;
  } else {
    /* A chord part: the join acks it, unless it is the last part. Then the
     * message stays unacked until the callback is sent (er__cel_chord_ready),
     * so a worker that dies in between leaves it to come back after the
     * visibility timeout; run again, it finds the join full and sends the
     * callback then. */
    json_t *part = json_pack("[i,s,s,O]", 1, m.id, status, value);
    char *enc = part ? json_dumps(part, JSON_COMPACT) : NULL;
    json_decref(part);
    er__rd_args_str(a, "join");
    er__rd_args_str(a, tag);
    er__rd_args_fmt(a, "celery-taskset-meta-%s.j", m.group);
    er__rd_args_fmt(a, "celery-taskset-meta-%s.t", m.group);
    er__rd_args_fmt(a, "celery-taskset-meta-%s.s", m.group);
    json_t *gi = m.group_index;
    if (json_is_integer(gi)) er__rd_args_i64(a, json_integer_value(gi));
    else er__rd_args_str(a, "+inf");
    if (enc) er__rd_args_str(a, enc);
    else a->oom = true;
    free(enc);
    er__rd_args_i64(a, ER__CEL_RESULT_TTL_S);
    ++*nops;
    *join = json_pack("{s:O,s:s,s:s?,s:s?,s:s,s:s}", "chord", chord, "id", m.id, "root_id",
                      m.root_id, "queue", m.routing_key, "tag", tag, "group", m.group);
  }
  json_decref(value);
  er__cel_msg_clear(&m);
  return a->oom ? ER_ENOMEM : 0;
}

void er__cel_chord_ready(er__cel_t *cs, json_t *join, redisReply *parts) {
  json_t *results = json_array();
  const char *failed = NULL;
  json_t *decoded = json_array();
  for (size_t i = 0; i < parts->elements; i++) {
    json_t *p = json_loadb(parts->element[i]->str, parts->element[i]->len, 0, NULL);
    json_array_append_new(decoded, p ? p : json_null());
    const char *st = json_string_value(json_array_get(p, 2));
    if (st && strcmp(st, "SUCCESS") && !failed) failed = json_string_value(json_array_get(p, 1));
    json_array_append(results, json_array_get(p, 3) ? json_array_get(p, 3) : json_null());
  }
  json_t *sig = json_object_get(join, "chord");
  er__cel_msg_t from = {.id = json_string_value(json_object_get(join, "id")),
                        .root_id = json_string_value(json_object_get(join, "root_id")),
                        .routing_key = json_string_value(json_object_get(join, "queue"))};
  er_rd_args_t a = {0};
  size_t nops = 0;
  er__cel_ops_begin(cs, &a);
  if (failed) {
    /* as Celery: the callback fails with ChordError, naming the part */
    const char *cid = ostr(json_object_get(sig, "options"), "task_id");
    json_t *steps = json_object_get(json_object_get(sig, "kwargs"), "tasks");
    if (!cid && json_is_array(steps)) /* a chain: where the client waits, its last task */
      cid = ostr(json_object_get(json_array_get(steps, json_array_size(steps) - 1), "options"),
                 "task_id");
    char msg[200];
    snprintf(msg, sizeof msg, "Dependency %s raised an error", failed);
    json_t *exc = json_pack("{s:s,s:[s],s:s}", "exc_type", "ChordError", "exc_message", msg,
                            "exc_module", "celery.exceptions");
    if (cid) er__cel_ops_result(&a, cid, "FAILURE", exc, NULL, NULL);
    json_decref(exc);
  } else {
    er__cel_pub_t p = {.a = &a, .nops = &nops, .from = &from};
    json_t *prefix = json_pack("[O]", results);
    er__cel_apply(&p, sig, prefix, NULL);
    json_decref(prefix);
  }
  /* In the same script as the callback: the last part's ack, and the join
   * keys deleted. */
  const char *group = ostr(join, "group");
  er__rd_args_str(&a, "joined");
  er__rd_args_str(&a, ostr(join, "tag"));
  er__rd_args_fmt(&a, "celery-taskset-meta-%s.j", group);
  er__rd_args_fmt(&a, "celery-taskset-meta-%s.t", group);
  er__rd_args_fmt(&a, "celery-taskset-meta-%s.s", group);
  redisReply *r;
  if (er__cel_eval(cs, er__rd_lua_celery_ops, &a, &r) == 0)
    freeReplyObject(r);
  else
    er_log(ER_LOG_ERROR,
           "celery: the chord callback %s could not be sent: %s (its last part %s comes back "
           "after the visibility timeout and sends it then)",
           ostr(sig, "task") ? ostr(sig, "task") : "?", cs->base.last_error,
           ostr(join, "id"));
  er__rd_args_free(&a);
  json_decref(results);
  json_decref(decoded);
}
