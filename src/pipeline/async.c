/* What an async pipeline's run and callback functions may do besides a
 * stage's usual: complete it, make callback URLs, schedule callback tasks,
 * answer a callback, keep a state. As in ctx.c nothing here writes to the
 * store: er__pctx_put_async adds what was asked to the stage's transition.
 * (Making a URL reads the callback secret, and makes it at first use.) */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "pipeline/pipe_internal.h"
#include "pipeline/token.h"

#define COUNTDOWN_MAX_MS (10LL * 365 * 86400000) /* ten years */

/* Whether ctx may use the async API; else the attempt fails, saying so. */
static bool async_ok(er_pipe_ctx_t *ctx, const char *what) {
  if (ctx->running && ctx->def && (ctx->def->flags & ER_PIPE_ASYNC)) return true;
  er__pctx_usage(ctx, "pipeline '%s': %s is for async pipelines (ER_PIPE_ASYNC), in run or "
                 "callback", ctx->name ? ctx->name : "", what);
  return false;
}

int er__pctx_bind(er_pipe_ctx_t *ctx, er_store_t *s, const char *base_url, const uint8_t *secret,
                  const char *source) {
  ctx->s = s;
  ctx->base_url = base_url;
  ctx->secret = secret;
  snprintf(ctx->source, sizeof ctx->source, "%s", source);
  const char *name;
  json_t *sid;
  json_object_foreach(json_object_get(ctx->doc, "outputs"), name, sid) {
    json_t *slot = NULL;
    int rc = er_store_doc_get(s, ER__SLOT_COLL, json_string_value(sid), &slot, NULL);
    if (rc < 0 && rc != ER_ENOENT) return rc;
    if (json_is_true(json_object_get(slot, "filled")))
      json_object_set_new(ctx->filled, name, json_true());
    json_decref(slot);
  }
  return 0;
}

bool er__pctx_unfilled(const er_pipe_ctx_t *ctx, char *buf, size_t size) {
  buf[0] = 0;
  const char *name;
  json_t *sid;
  json_object_foreach(json_object_get(ctx->doc, "outputs"), name, sid) {
    if (!json_object_get(ctx->fills, name) && !json_object_get(ctx->filled, name))
      snprintf(buf + strlen(buf), size - strlen(buf), "%s%s", buf[0] ? ", " : "", name);
  }
  return buf[0] != 0;
}

int er_pipe_complete(er_pipe_ctx_t *ctx, json_t *value) {
  if (!async_ok(ctx, "er_pipe_complete")) return ER_ESTATE;
  if (ctx->completed) {
    er__pctx_usage(ctx, "pipeline '%s' is completed twice", ctx->name);
    return ER_EALREADY;
  }
  ctx->completed = true;
  bool has_default = json_object_get(ctx->fills, "default") || json_object_get(ctx->filled,
                                                                               "default");
  if (!value && has_default) return 0;
  return er_pipe_fill(ctx, "default", value);
}

/* params with the pipeline's own "token" taken out into *own (new), for a
 * pipeline with public callbacks; else params itself (a new reference). */
static json_t *split_own_token(er_pipe_ctx_t *ctx, json_t *params, char **own) {
  *own = NULL;
  const char *t = json_string_value(json_object_get(params, "token"));
  if (!t || !(ctx->def->flags & ER_PIPE_PUBLIC_CALLBACKS)) return json_incref(params);
  json_t *rest = json_copy(params);
  json_object_del(rest, "token");
  *own = er_strdup(t);
  return rest;
}

char *er_pipe_callback_url(er_pipe_ctx_t *ctx, json_t *params) {
  if (!async_ok(ctx, "er_pipe_callback_url")) return NULL;
  json_t *none = json_object();
  char *own = NULL, *url = NULL, err[256] = "";
  json_t *rest = split_own_token(ctx, params ? params : none, &own);
  int rc = er__pipe_params_check(rest, true, err, sizeof err);
  const char *base = er__pipe_base_url(ctx->base_url);
  if (rc == 0 && !base) {
    er_log(ER_LOG_WARN, "pipeline %s: no callback URL: no base URL (give the worker "
           "--base-url URL, or set ERRAND_BASE_URL)", ctx->id);
  } else if (rc == 0 && own) {
    rc = er__pipe_callback_url(base, ctx->id, rest, own, &url, err, sizeof err);
  } else if (rc == 0) {
    rc = er__pipe_callback_url_make_with(ctx->s, ctx->secret, base, ctx->id, rest, &url, err,
                                         sizeof err);
  }
  if (rc == ER_EINVAL)
    er__pctx_usage(ctx, "pipeline '%s': er_pipe_callback_url: %s", ctx->name, err);
  else if (rc < 0)
    er__pctx_usage(ctx, "pipeline '%s': er_pipe_callback_url: %s", ctx->name,
                   ctx->s && er_store_last_error(ctx->s)[0] ? er_store_last_error(ctx->s)
                                                            : er_strerror(rc));
  er_free(own);
  json_decref(rest);
  json_decref(none);
  return url;
}

/* The task's key: the pipeline, who asked (this attempt or callback), and
 * a digest of the call, so that only the same call gives the same key. */
static void task_key(const er_pipe_ctx_t *ctx, int64_t countdown_ms, const char *params_text,
                     char *out, size_t size) {
  size_t n = strlen(params_text) + 32;
  char *call = er_malloc(n);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  if (call) {
    snprintf(call, n, "%" PRId64 ":%s", countdown_ms, params_text);
    EVP_Digest(call, strlen(call), md, &mdlen, EVP_sha256(), NULL);
  }
  er_free(call);
  char hex[2 * 16 + 1] = "";
  for (unsigned i = 0; i < 16 && i < mdlen; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
  snprintf(out, size, "%s:%s:%s:%s", ER__PIPE_TASK_CALLBACK, ctx->id, ctx->source, hex);
}

int er_pipe_callback_task(er_pipe_ctx_t *ctx, int64_t countdown_ms, json_t *params) {
  if (!async_ok(ctx, "er_pipe_callback_task")) return ER_ESTATE;
  char err[256] = "";
  json_t *p = params ? json_incref(params) : json_object();
  int rc = er__pipe_params_check(p, false, err, sizeof err);
  if (rc == 0 && (countdown_ms < 0 || countdown_ms > COUNTDOWN_MAX_MS)) {
    snprintf(err, sizeof err, "the countdown must be 0 to %lld ms, not %" PRId64,
             COUNTDOWN_MAX_MS, countdown_ms);
    rc = ER_EINVAL;
  }
  char *text = rc == 0 ? json_dumps(p, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
  if (rc == 0 && !text) {
    snprintf(err, sizeof err, "out of memory");
    rc = ER_ENOMEM;
  }
  if (rc < 0) {
    er__pctx_usage(ctx, "pipeline '%s': er_pipe_callback_task: %s", ctx->name, err);
    json_decref(p);
    return rc;
  }
  char key[256];
  task_key(ctx, countdown_ms, text, key, sizeof key);
  free(text);
  size_t i;
  json_t *t;
  json_array_foreach(ctx->cbtasks, i, t) {
    if (strcmp(json_string_value(json_object_get(t, "key")), key) == 0) {
      json_decref(p);
      return 0; /* the same call twice: one task */
    }
  }
  json_array_append_new(ctx->cbtasks, json_pack("{s:s, s:I, s:o}", "key", key, "countdown_ms",
                                                (json_int_t)countdown_ms, "params", p));
  return 0;
}

int er_pipe_respond(er_pipe_ctx_t *ctx, int status, const char *content_type, const char *body) {
  if (!ctx->in_callback) {
    er__pctx_usage(ctx, "pipeline '%s': er_pipe_respond is for callbacks", ctx->name);
    return ER_ESTATE;
  }
  if (status < 100 || status > 599) return ER_EINVAL;
  json_t *a = json_pack("{s:i, s:s, s:s}", "status", status, "content_type",
                        content_type ? content_type : "text/plain; charset=utf-8", "body",
                        body ? body : "");
  if (!a) return ER_EINVAL; /* not UTF-8 */
  json_decref(ctx->answer);
  ctx->answer = a;
  return 0;
}

int er_pipe_set_state(er_pipe_ctx_t *ctx, json_t *state) {
  if (!async_ok(ctx, "er_pipe_set_state")) return ER_ESTATE;
  json_t *copy = state ? json_deep_copy(state) : json_null();
  if (!copy) return ER_ENOMEM;
  json_decref(ctx->state);
  ctx->state = copy;
  ctx->state_set = true;
  return 0;
}

json_t *er_pipe_state(const er_pipe_ctx_t *ctx) { return ctx->state; }

int er__pctx_put_async(er__pb_t *pb, const er_pipe_ctx_t *ctx, json_t *doc) {
  if (ctx->state_set) json_object_set(doc, "state", ctx->state);
  size_t i;
  json_t *t;
  json_array_foreach(ctx->cbtasks, i, t) {
    int64_t eta = pb->now + json_integer_value(json_object_get(t, "countdown_ms"));
    json_t *args = json_pack("[s, O]", ctx->id, json_object_get(t, "params"));
    int rc = er__pb_enqueue(pb, ER__PIPE_TASK_CALLBACK, args, eta,
                            json_string_value(json_object_get(t, "key")));
    if (rc < 0) return rc;
  }
  return 0;
}
