/* The kombu envelope Celery's protocol v2 travels in, both ways: headers
 * (task, id, retries, eta, expires, time limits, root, parent, group),
 * properties (delivery_info, priority, the delivery tag) and a base64 body
 * holding the JSON [args, kwargs, embed]. */
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "celery/celery_internal.h"
#include "errand/common.h"

void er__cel_msg_clear(er__cel_msg_t *m) {
  json_decref(m->env);
  json_decref(m->args);
  json_decref(m->kwargs);
  json_decref(m->embed);
  memset(m, 0, sizeof *m);
}

static const char *str(json_t *o, const char *k) {
  return json_string_value(json_object_get(o, k));
}

int64_t er__cel_parse_time(const char *s) {
  int y, mo, d, h, mi, n = 0;
  double sec;
  if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%lf%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6)
    return -1;
  struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h,
                  .tm_min = mi};
  int64_t ms = (int64_t)timegm(&tm) * 1000 + (int64_t)(sec * 1000.0 + 0.5);
  const char *z = s + n;
  if (*z == 'Z' || !*z) return ms;
  int zh, zm;
  if ((*z == '+' || *z == '-') && sscanf(z + 1, "%2d:%2d", &zh, &zm) == 2) {
    int64_t off = ((int64_t)zh * 60 + zm) * 60000;
    return *z == '+' ? ms - off : ms + off;
  }
  return -1;
}

void er__cel_format_time(int64_t ms, bool zone, char *out, size_t size) {
  time_t t = (time_t)(ms / 1000);
  struct tm tm;
  gmtime_r(&t, &tm);
  snprintf(out, size, "%04d-%02d-%02dT%02d:%02d:%02d.%06d%s", tm.tm_year + 1900, tm.tm_mon + 1,
           tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000) * 1000,
           zone ? "+00:00" : "");
}

/* A header's time (ISO text, or null): 0 when absent, -1 malformed. */
static int64_t header_time(json_t *h, const char *k) {
  json_t *v = json_object_get(h, k);
  if (!v || json_is_null(v)) return 0;
  return er__cel_parse_time(json_string_value(v));
}

static int64_t limit_ms(json_t *v) {
  return json_is_number(v) ? (int64_t)(json_number_value(v) * 1000.0) : 0;
}

char *er__cel_b64(const char *data, size_t n) {
  char *out = er_malloc((n + 2) / 3 * 4 + 1);
  if (out) EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)data, (int)n);
  return out;
}

json_t *er__cel_b64_json(const char *text, size_t len, json_error_t *je) {
  unsigned char *raw = len % 4 ? NULL : er_malloc(len / 4 * 3 + 4);
  int n = raw ? EVP_DecodeBlock(raw, (const unsigned char *)text, (int)len) : -1;
  /* EVP_DecodeBlock counts the padding's zero bytes in */
  for (size_t i = len; n > 0 && i > 0 && text[i - 1] == '='; i--) n--;
  json_t *v = n >= 0 ? json_loadb((const char *)raw, (size_t)n, 0, je) : NULL;
  er_free(raw);
  return v;
}

#define FAIL(...) do { snprintf(why, size, __VA_ARGS__); goto bad; } while (0)

int er__cel_decode(const char *text, size_t len, er__cel_msg_t *m, char *why, size_t size) {
  memset(m, 0, sizeof *m);
  json_error_t je = {.text = "not base64"};
  m->env = json_loadb(text, len, 0, &je);
  if (!json_is_object(m->env)) FAIL("not a JSON object: %s", m->env ? "" : je.text);
  json_t *h = json_object_get(m->env, "headers"), *p = json_object_get(m->env, "properties");
  if (!json_is_object(h)) FAIL("no headers (not Celery protocol v2)");
  if (!json_is_object(p)) FAIL("no properties");
  m->id = str(h, "id");
  m->task = str(h, "task");
  if (!m->id || !*m->id) FAIL("headers.id missing");
  if (!m->task || !*m->task) FAIL("headers.task missing");
  if (strlen(m->id) > ER_ID_LEN) FAIL("headers.id longer than %d characters", ER_ID_LEN);
  const char *ct = str(m->env, "content-type");
  if (!ct || strcmp(ct, "application/json"))
    FAIL("content-type %s: only application/json is read", ct ? ct : "missing");
  const char *enc = str(p, "body_encoding"), *body = str(m->env, "body");
  if (!body) FAIL("body missing");
  size_t blen = strlen(body);
  json_t *parts;
  if (enc && !strcmp(enc, "base64")) {
    parts = er__cel_b64_json(body, blen, &je);
    if (!parts && !strcmp(je.text, "not base64")) FAIL("body is not base64");
  } else {
    parts = json_loadb(body, blen, 0, &je);
  }
  if (!json_is_array(parts) || json_array_size(parts) != 3 ||
      !json_is_array(json_array_get(parts, 0)) || !json_is_object(json_array_get(parts, 1))) {
    json_decref(parts);
    FAIL("body is not [args, kwargs, embed]");
  }
  m->args = json_incref(json_array_get(parts, 0));
  m->kwargs = json_incref(json_array_get(parts, 1));
  m->embed = json_incref(json_array_get(parts, 2));
  json_decref(parts);
  if (!json_is_object(m->embed)) {
    json_decref(m->embed);
    m->embed = json_object();
  }
  if ((m->eta_ms = header_time(h, "eta")) < 0) FAIL("headers.eta is not an ISO 8601 time");
  if ((m->expires_ms = header_time(h, "expires")) < 0)
    FAIL("headers.expires is not an ISO 8601 time");
  m->retries = (int)json_integer_value(json_object_get(h, "retries"));
  json_t *tl = json_object_get(h, "timelimit");
  m->hard_ms = limit_ms(json_array_get(tl, 0)); /* [time_limit, soft_time_limit] */
  m->soft_ms = limit_ms(json_array_get(tl, 1));
  m->root_id = str(h, "root_id");
  m->parent_id = str(h, "parent_id");
  m->group = str(h, "group");
  m->group_index = json_object_get(h, "group_index");
  m->ignore_result = json_is_true(json_object_get(h, "ignore_result"));
  m->tag = str(p, "delivery_tag");
  m->reply_to = str(p, "reply_to");
  m->priority = (int)json_integer_value(json_object_get(p, "priority"));
  json_t *di = json_object_get(p, "delivery_info");
  m->exchange = str(di, "exchange");
  m->routing_key = str(di, "routing_key");
  return 0;
bad:
  er__cel_msg_clear(m);
  return ER_EPARSE;
}

void er__cel_list_name(const char *queue, int pri, char *out, size_t size) {
  static const int steps[] = {0, 3, 6, 9};
  int step = 0;
  for (size_t i = 0; i < 4; i++)
    if (pri >= steps[i]) step = steps[i];
  if (step)
    snprintf(out, size, "%s\x06\x16%d", queue, step);
  else
    snprintf(out, size, "%s", queue);
}

static json_t *opt_str(const char *s) { return s ? json_string(s) : json_null(); }

static json_t *time_or_null(int64_t ms) {
  if (!ms) return json_null();
  char buf[48];
  er__cel_format_time(ms, true, buf, sizeof buf);
  return json_string(buf);
}

static json_t *empty_embed(void) {
  return json_pack("{s:n,s:n,s:n,s:n}", "callbacks", "errbacks", "chain", "chord");
}

char *er__cel_encode(const er__cel_send_t *s) {
  json_t *args = s->args ? json_incref(s->args) : json_array();
  json_t *kwargs = s->kwargs ? json_incref(s->kwargs) : json_object();
  json_t *embed = s->embed ? json_incref(s->embed) : empty_embed();
  json_t *body = json_pack("[ooo]", args, kwargs, embed);
  char *bt = body ? json_dumps(body, JSON_COMPACT) : NULL;
  json_decref(body);
  if (!bt) return NULL;
  char *b64 = er__cel_b64(bt, strlen(bt));
  free(bt);
  if (!b64) return NULL;
  er_id_t tag;
  er_id_new(&tag);
  char *argsrepr = json_dumps(s->args ? s->args : json_array(), JSON_COMPACT | JSON_ENCODE_ANY);
  char *kwrepr = json_dumps(s->kwargs ? s->kwargs : json_object(), JSON_COMPACT | JSON_ENCODE_ANY);
  json_t *h = json_pack(
      "{s:s,s:s,s:s,s:n,s:o,s:o,s:o,s:O,s:i,s:[nn],s:o,s:o,s:s,s:s,s:s,s:b}", "lang", "py",
      "task", s->task, "id", s->id, "shadow", "eta", time_or_null(s->eta_ms), "expires",
      time_or_null(s->expires_ms), "group", opt_str(s->group), "group_index",
      s->group_index ? s->group_index : json_null(), "retries", s->retries, "timelimit",
      "root_id", opt_str(s->root_id ? s->root_id : s->id), "parent_id", opt_str(s->parent_id),
      "argsrepr", argsrepr ? argsrepr : "", "kwargsrepr", kwrepr ? kwrepr : "", "origin",
      "errand", "ignore_result", s->ignore_result);
  free(argsrepr);
  free(kwrepr);
  json_t *p = json_pack("{s:s,s:o,s:i,s:{s:s,s:s},s:i,s:s,s:s}", "correlation_id", s->id,
                        "reply_to", opt_str(s->reply_to), "delivery_mode", 2, "delivery_info",
                        "exchange", "", "routing_key", s->queue, "priority", s->priority,
                        "body_encoding", "base64", "delivery_tag", tag.text);
  json_t *env = json_pack("{s:s,s:s,s:s,s:o,s:o}", "body", b64, "content-encoding", "utf-8",
                          "content-type", "application/json", "headers", h, "properties", p);
  er_free(b64);
  char *out = env ? json_dumps(env, JSON_COMPACT) : NULL;
  json_decref(env);
  if (!out) return NULL;
  char *copy = er_strdup(out); /* er_free, not free, for the caller */
  free(out);
  return copy;
}

char *er__cel_meta(const char *id, const char *status, json_t *result, const char *traceback,
                   const char *group_id, const char *parent_id) {
  bool ready = !strcmp(status, "SUCCESS") || !strcmp(status, "FAILURE") ||
               !strcmp(status, "REVOKED");
  char done[48];
  er__cel_format_time(er_now_wall_ms(), false, done, sizeof done);
  json_t *m = json_pack("{s:s,s:O,s:o,s:[],s:o,s:s}", "status", status, "result",
                        result ? result : json_null(), "traceback", opt_str(traceback),
                        "children", "date_done", ready ? json_string(done) : json_null(),
                        "task_id", id);
  if (!m) return NULL;
  if (group_id) json_object_set_new(m, "group_id", json_string(group_id));
  if (parent_id) json_object_set_new(m, "parent_id", json_string(parent_id));
  char *t = json_dumps(m, JSON_COMPACT);
  json_decref(m);
  char *copy = t ? er_strdup(t) : NULL;
  free(t);
  return copy;
}

/* errand's codes as the Python exceptions a Celery client expects. */
json_t *er__cel_exception(int code, const char *message) {
  const char *type = "RuntimeError", *module = "builtins";
  switch (code) {
    case ER_EINVAL: type = "ValueError"; break;
    case ER_ENOMEM: type = "MemoryError"; break;
    case ER_ETIMEDOUT: type = "TimeLimitExceeded", module = "celery.exceptions"; break;
    case ER_EREVOKED: type = "TaskRevokedError", module = "celery.exceptions"; break;
    case ER_EUNKNOWN_TASK: type = "NotRegistered", module = "celery.exceptions"; break;
    default: break;
  }
  return json_pack("{s:s,s:[s],s:s}", "exc_type", type, "exc_message",
                   message ? message : er_strerror(code), "exc_module", module);
}

int er__cel_meta_error(json_t *meta, char *msg, size_t size) {
  json_t *r = json_object_get(meta, "result");
  const char *type = str(r, "exc_type");
  json_t *em = json_object_get(r, "exc_message");
  if (json_is_array(em)) em = json_array_get(em, 0);
  char *t = em && !json_is_string(em) ? json_dumps(em, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
  snprintf(msg, size, "%s: %s", type ? type : "Exception",
           json_is_string(em) ? json_string_value(em) : t ? t : "");
  free(t);
  return ER_EFAIL;
}
