/* Celery's remote control, answered as a Python worker answers it, so that
 * `celery status`, `celery inspect ...` and app.control list the C worker
 * beside Python ones. A command comes on kombu's pidbox fanout as
 * {"method", "arguments", "destination", "pattern", "matcher", "ticket",
 * "reply_to": {"exchange", "routing_key"}} (base64 in a kombu envelope);
 * the reply {node: answer} goes to the reply exchange, which on Redis is a
 * direct exchange whose bindings are the members "key\x06\x16pattern\x06\x16
 * queue" of the set _kombu.binding.<exchange>: it is pushed on each queue
 * bound with the reply's routing key, as kombu's Redis transport does.
 *
 * What inspect lists comes from the worker's heartbeat (er__worker_info),
 * made into Celery's shapes on the store thread and read here under the
 * lock: it is as fresh as the last heartbeat. */
#include <fnmatch.h>
#include <regex.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "celery/celery_internal.h"
#include "store/store_internal.h"

/* ---- the view inspect answers from (store thread) ---- */

/* A task as Celery's Request.info() describes it. */
static json_t *task_info(er__cel_t *cs, json_t *f, const char *id, int64_t started_ms,
                         int pid) {
  const char *raw = json_string_value(json_object_get(f, "raw"));
  er__cel_msg_t m;
  char why[200];
  if (!raw || er__cel_decode(raw, strlen(raw), &m, why, sizeof why)) return NULL;
  json_t *t = json_pack(
      "{s:s, s:s, s:O, s:O, s:s, s:s, s:o, s:b, s:{s:s?, s:s?, s:i, s:b}, s:o}", "id", id,
      "name", m.task, "args", m.args, "kwargs", m.kwargs, "type", m.task, "hostname", cs->node,
      "time_start", started_ms ? json_real((double)started_ms / 1000.0) : json_null(),
      "acknowledged", false, "delivery_info", "exchange", m.exchange, "routing_key",
      m.routing_key ? m.routing_key : json_string_value(json_object_get(f, "list")), "priority",
      m.priority, "redelivered", false, "worker_pid", started_ms ? json_integer(pid) : json_null());
  er__cel_msg_clear(&m);
  return t;
}

/* The Celery messages among a heartbeat's tasks (errand's own are listed
 * by errand inspect). */
static json_t *tasks(er__cel_t *cs, json_t *list, int pid) {
  json_t *out = json_array();
  size_t i;
  json_t *v;
  json_array_foreach(list, i, v) {
    const char *id = json_string_value(json_object_get(v, "id"));
    json_t *f = id ? json_object_get(cs->flight, id) : NULL;
    int64_t started = json_integer_value(json_object_get(v, "started_ms"));
    json_t *t = f ? task_info(cs, f, id, started, pid) : NULL;
    if (t) json_array_append_new(out, t);
  }
  return out;
}

/* The view shares nothing with info, which the worker's loop thread frees. */
static json_t *mine(json_t *info, const char *key) {
  return json_deep_copy(json_object_get(info, key));
}

void er__cel_control_view(er__cel_t *cs, json_t *info) {
  int pid = (int)json_integer_value(json_object_get(info, "pid"));
  json_t *reg = json_array();
  size_t i;
  json_t *v;
  /* errand's internal tasks are left out as Celery leaves out celery.* */
  json_array_foreach(json_object_get(info, "registered"), i, v) {
    const char *name = json_string_value(v);
    if (name && strncmp(name, "errand.", 7) != 0) json_array_append_new(reg, json_string(name));
  }
  int64_t up = er_now_wall_ms() - json_integer_value(json_object_get(info, "started_ms"));
  const char *pool = json_string_value(json_object_get(info, "pool"));
  char impl[64];
  snprintf(impl, sizeof impl, "errand:%s", pool ? pool : "");
  int conc = (int)json_integer_value(json_object_get(info, "concurrency"));
  json_t *view = json_pack(
      "{s:o, s:o, s:o, s:{s:i, s:o, s:i, s:{s:s, s:i, s:[i]}, s:{s:s}, s:i, s:{s:o?, s:o?, "
      "s:o?, s:o?}}}",
      "active", tasks(cs, json_object_get(info, "active_tasks"), pid), "reserved",
      tasks(cs, json_object_get(info, "reserved_tasks"), pid), "registered", reg, "stats", "pid",
      pid, "total", json_deep_copy(cs->totals), "uptime", (int)(up > 0 ? up / 1000 : 0), "pool",
      "implementation", impl, "max-concurrency", conc, "processes", pid, "broker", "transport",
      "redis", "prefetch_count", conc, "errand", "id", mine(info, "id"), "queues",
      mine(info, "queues"), "processed", mine(info, "processed"), "failed", mine(info, "failed"));
  if (!view) return; /* out of memory: the last view stays */
  pthread_mutex_lock(&cs->mu);
  json_t *old = cs->ctl;
  cs->ctl = view;
  pthread_mutex_unlock(&cs->mu);
  json_decref(old);
}

/* ---- commands (listener thread) ---- */

/* A copy of part of the view; def when there is no view yet. */
static json_t *viewed(er__cel_t *cs, const char *key, json_t *def) {
  pthread_mutex_lock(&cs->mu);
  json_t *v = cs->ctl ? json_deep_copy(json_object_get(cs->ctl, key)) : NULL;
  pthread_mutex_unlock(&cs->mu);
  if (!v) return def;
  json_decref(def);
  return v;
}

static json_t *revoked_ids(er__cel_t *cs) {
  json_t *a = json_array();
  const char *id;
  json_t *v;
  pthread_mutex_lock(&cs->mu);
  json_object_foreach(cs->revoked, id, v) json_array_append_new(a, json_string(id));
  pthread_mutex_unlock(&cs->mu);
  return a;
}

static json_t *ok(const char *fmt, const char *arg) {
  char text[600];
  snprintf(text, sizeof text, fmt, arg);
  return json_pack("{s:s}", "ok", text);
}

/* Runs method; a new reply (never NULL but when out of memory). */
static json_t *run(er__cel_t *cs, redisContext **cmd, const char *method, json_t *args,
                   json_int_t clock) {
  if (!strcmp(method, "ping")) return ok("%s", "pong");
  if (!strcmp(method, "active")) return viewed(cs, "active", json_array());
  if (!strcmp(method, "reserved")) return viewed(cs, "reserved", json_array());
  if (!strcmp(method, "registered")) return viewed(cs, "registered", json_array());
  if (!strcmp(method, "stats"))
    return viewed(cs, "stats", json_pack("{s:i, s:{}, s:{s:s}}", "pid", (int)getpid(), "total",
                                         "pool", "implementation", "errand"));
  /* a message with an eta waits in Redis, not in the worker's memory */
  if (!strcmp(method, "scheduled")) return json_array();
  if (!strcmp(method, "revoked")) return revoked_ids(cs);
  if (!strcmp(method, "revoke")) {
    json_t *ids = json_object_get(args, "task_id");
    er__cel_revoked_add(cs, cmd, ids);
    char list[500] = "";
    size_t i, at = 0;
    json_t *v, *all = json_is_array(ids) ? json_incref(ids) : json_pack("[O]", ids);
    json_array_foreach(all, i, v) if (json_is_string(v) && at < sizeof list) at +=
        (size_t)snprintf(list + at, sizeof list - at, "%s%s", at ? ", " : "", json_string_value(v));
    json_decref(all);
    return ok("tasks %s flagged as revoked", list);
  }
  /* a Python worker's mingle at its start: revokes go both ways */
  if (!strcmp(method, "hello")) {
    const char *from = json_string_value(json_object_get(args, "from_node"));
    if (from && !strcmp(from, cs->node)) return json_null();
    er__cel_revoked_add(cs, cmd, json_object_get(args, "revoked"));
    return json_pack("{s:o?, s:I}", "revoked", er__cel_revoked_mingle(cs), "clock", clock);
  }
  char text[300];
  snprintf(text, sizeof text, "the errand worker does not answer the control command %s",
           method);
  return json_pack("{s:s}", "error", text);
}

/* Is the message meant for this node? As kombu's Node.handle_message. */
static bool for_me(er__cel_t *cs, json_t *b) {
  json_t *dest = json_object_get(b, "destination");
  if (json_array_size(dest)) {
    size_t i;
    json_t *v;
    json_array_foreach(dest, i, v) if (json_is_string(v) &&
                                       !strcmp(json_string_value(v), cs->node)) return true;
    return false;
  }
  const char *pattern = json_string_value(json_object_get(b, "pattern"));
  const char *matcher = json_string_value(json_object_get(b, "matcher"));
  if (!pattern || !*pattern || !matcher || !*matcher) return true;
  if (!strcmp(matcher, "glob")) return fnmatch(pattern, cs->node, 0) == 0;
  if (!strcmp(matcher, "pcre")) { /* re.match: anchored at the start */
    regex_t re;
    if (regcomp(&re, pattern, REG_EXTENDED)) return false;
    regmatch_t at;
    bool hit = regexec(&re, cs->node, 1, &at, 0) == 0 && at.rm_so == 0;
    regfree(&re);
    return hit;
  }
  return false;
}

/* Publishes {node: reply} as kombu's Mailbox._publish_reply does. */
static void publish(er__cel_t *cs, redisContext **cmd, json_t *to, json_t *ticket,
                    json_int_t clock, json_t *reply) {
  const char *ex = json_string_value(json_object_get(to, "exchange"));
  const char *key = json_string_value(json_object_get(to, "routing_key"));
  if (!ex || !key) return;
  json_t *body = json_pack("{s:O}", cs->node, reply);
  char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
  char *enc = text ? er__cel_b64(text, strlen(text)) : NULL;
  er_id_t tag;
  er_id_new(&tag);
  json_t *msg = enc ? json_pack("{s:s, s:s, s:s, s:{s:O, s:I}, s:{s:i, s:{s:s, s:s}, s:i, "
                                "s:s, s:s}}",
                                "body", enc, "content-encoding", "utf-8", "content-type",
                                "application/json", "headers", "ticket", ticket ? ticket : json_null(), "clock", clock,
                                "properties", "delivery_mode", 1, "delivery_info", "exchange",
                                ex, "routing_key", key, "priority", 0, "body_encoding",
                                "base64", "delivery_tag", tag.text)
                    : NULL;
  char *out = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
  if (out) {
    er_rd_args_t a = {0};
    er__rd_args_fmt(&a, "_kombu.binding.%s", ex);
    er__rd_args_str(&a, key);
    er__rd_args_str(&a, out);
    redisReply *r;
    char err[300];
    if (er__cel_eval_on(cs, cmd, er__rd_lua_celery_reply, &a, &r, err, sizeof err))
      er_log(ER_LOG_WARN, "celery: cannot reply to a remote control command: %s", err);
    else
      freeReplyObject(r);
    er__rd_args_free(&a);
  }
  free(out);
  json_decref(msg);
  er_free(enc);
  free(text); /* json_dumps: malloc, not er_malloc */
  json_decref(body);
}

/* The JSON in a kombu envelope's base64 body; NULL when it is not. */
static json_t *body_of(json_t *env) {
  const char *body = json_string_value(json_object_get(env, "body"));
  if (!body) return NULL;
  return er__cel_b64_json(body, strlen(body), NULL);
}

void er__cel_control(er__cel_t *cs, redisContext **cmd, const char *text, size_t len) {
  json_t *env = json_loadb(text, len, 0, NULL);
  json_t *b = body_of(env);
  const char *method = json_string_value(json_object_get(b, "method"));
  /* a command whose sender stopped waiting: no one reads the reply */
  json_t *headers = json_object_get(env, "headers");
  double expires = json_number_value(json_object_get(headers, "expires"));
  /* kombu's Lamport clock: the reply's is past the request's */
  json_int_t clock = json_integer_value(json_object_get(headers, "clock")) + 1;
  bool late = expires > 0 && (double)er_now_wall_ms() / 1000.0 > expires;
  if (method && for_me(cs, b) && !(late && strcmp(method, "revoke"))) {
    json_t *reply = run(cs, cmd, method, json_object_get(b, "arguments"), clock);
    json_t *to = json_object_get(b, "reply_to");
    if (reply && json_is_object(to)) publish(cs, cmd, to, json_object_get(b, "ticket"), clock, reply);
    json_decref(reply);
  }
  json_decref(b);
  json_decref(env);
}
