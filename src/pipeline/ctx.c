/* What a stage's run function may do: fill outputs, ask for a retry or an
 * abort, declare children wired by slots, order them with After and InOrder.
 * Nothing here touches the store: run.c turns the context into one
 * transition when the function returns. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "pipeline/pipe_internal.h"

struct er_pipe_handle {
  er_pipe_ctx_t *ctx;
  er__pchild_t *child;
};

void er__pctx_init(er_pipe_ctx_t *ctx, const er_pipeline_def_t *def, json_t *doc, int attempt,
                   bool running) {
  memset(ctx, 0, sizeof *ctx);
  ctx->def = def;
  ctx->doc = doc;
  ctx->id = json_string_value(json_object_get(doc, "id"));
  ctx->root = json_string_value(json_object_get(doc, "root"));
  ctx->name = json_string_value(json_object_get(doc, "name"));
  ctx->attempt = attempt;
  ctx->running = running;
  ctx->fills = json_object();
  ctx->known = json_object();
  ctx->after = json_array();
  ctx->filled = json_object();
  ctx->cbtasks = json_array();
  json_t *state = json_object_get(doc, "state");
  ctx->state = state ? json_incref(state) : json_null();
}

static void child_free(er__pchild_t *c) {
  if (!c) return;
  json_decref(c->args);
  json_decref(c->kwargs);
  json_decref(c->outputs);
  json_decref(c->refs);
  json_decref(c->waits);
  er_free(c->h);
  er_free(c);
}

void er__pctx_free(er_pipe_ctx_t *ctx) {
  for (size_t i = 0; i < ctx->nchildren; i++) child_free(ctx->children[i]);
  er_free(ctx->children);
  json_decref(ctx->fills);
  json_decref(ctx->known);
  json_decref(ctx->after);
  er_free(ctx->message);
  er_free(ctx->status_message);
  json_decref(ctx->links);
  json_decref(ctx->filled);
  json_decref(ctx->cbtasks);
  json_decref(ctx->state);
  json_decref(ctx->answer);
  memset(ctx, 0, sizeof *ctx);
}

static void set_ask(er_pipe_ctx_t *ctx, int ask, const char *fmt, va_list ap) {
  if (ctx->ask != ER__ASK_NONE) return; /* the first one wins */
  char buf[1024];
  vsnprintf(buf, sizeof buf, fmt ? fmt : "", ap);
  ctx->ask = ask;
  ctx->message = er_strdup(buf);
}

void er__pctx_usage(er_pipe_ctx_t *ctx, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  set_ask(ctx, ER__ASK_RETRY, fmt, ap);
  va_end(ap);
}

const char *er_pipe_id(const er_pipe_ctx_t *ctx) { return ctx->id; }
const char *er_pipe_root_id(const er_pipe_ctx_t *ctx) { return ctx->root; }
const char *er_pipe_name(const er_pipe_ctx_t *ctx) { return ctx->name; }
int er_pipe_attempt(const er_pipe_ctx_t *ctx) { return ctx->attempt; }

/* A name this stage may fill: any for a dynamic pipeline; else a declared
 * one, or one it inherited as its parent's last child. */
static bool declared(const er_pipe_ctx_t *ctx, const char *name) {
  const er_pipeline_def_t *def = ctx->def;
  if (strcmp(name, "default") == 0 || !def || !def->outputs) return true;
  if (json_object_get(json_object_get(ctx->doc, "outputs"), name)) return true;
  for (const char *const *o = def->outputs; *o; o++)
    if (strcmp(*o, name) == 0) return true;
  return false;
}

int er_pipe_fill(er_pipe_ctx_t *ctx, const char *name, json_t *value) {
  if (!name) name = "default";
  if (!ctx->running) {
    er__pctx_usage(ctx, "pipeline '%s': outputs are filled in run, not in finalize", ctx->name);
    return ER_ESTATE;
  }
  if (!*name || !declared(ctx, name)) {
    er__pctx_usage(ctx, "pipeline '%s' fills undeclared output '%s'", ctx->name, name);
    return ER_EINVAL;
  }
  if (json_object_get(ctx->fills, name) ||
      (ctx->in_callback && json_object_get(ctx->filled, name))) {
    er__pctx_usage(ctx, "pipeline '%s' fills output '%s' twice", ctx->name, name);
    return ER_EALREADY;
  }
  json_object_set(ctx->fills, name, value ? value : json_null());
  return 0;
}

json_t *er_pipe_retry(er_pipe_ctx_t *ctx, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  set_ask(ctx, ER__ASK_RETRY, fmt, ap);
  va_end(ap);
  return NULL;
}

json_t *er_pipe_abort(er_pipe_ctx_t *ctx, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  set_ask(ctx, ER__ASK_ABORT, fmt, ap);
  va_end(ap);
  return NULL;
}

int er_pipe_set_status(er_pipe_ctx_t *ctx, const char *message, json_t *links) {
  if (links && !json_is_object(links)) return ER_EINVAL;
  er_free(ctx->status_message);
  ctx->status_message = message ? er_strdup(message) : NULL;
  json_decref(ctx->links);
  ctx->links = links ? json_deep_copy(links) : NULL;
  ctx->status_set = true;
  return 0;
}

void er__pctx_put_status(const er_pipe_ctx_t *ctx, json_t *doc) {
  if (!ctx->status_set) return;
  json_object_set_new(doc, "status_message",
                      ctx->status_message ? json_string(ctx->status_message) : json_null());
  json_object_set(doc, "links", ctx->links ? ctx->links : json_null());
}

/* A new slot for the child's output name. */
static json_t *new_output(er__pchild_t *c, er_pipe_ctx_t *ctx, const char *name) {
  er_id_t sid;
  if (er_id_new(&sid) < 0) return NULL;
  json_object_set_new(c->outputs, name, json_string(sid.text));
  json_object_set_new(ctx->known, sid.text, json_true());
  json_t *ref = er__slot_ref(sid.text);
  json_object_set_new(c->refs, name, ref);
  return ref;
}

/* Adds the slot references among v's top-level values to waits. */
static int add_waits(er_pipe_ctx_t *ctx, er__pchild_t *c, json_t *v) {
  size_t i;
  const char *k;
  json_t *x;
  json_t *vals = json_is_array(v) ? json_incref(v) : json_array();
  if (json_is_object(v)) json_object_foreach(v, k, x) json_array_append(vals, x);
  int rc = 0;
  json_array_foreach(vals, i, x) {
    const char *sid = er__slot_ref_id(x);
    if (!sid) continue;
    if (!json_object_get(ctx->known, sid)) {
      er__pctx_usage(ctx, "pipeline '%s': child '%s' refers to slot %s, no output of this stage's "
                     "children", ctx->name, c->def->name, sid);
      rc = ER_EINVAL;
      break;
    }
    json_array_append_new(c->waits, json_string(sid));
  }
  json_decref(vals);
  return rc;
}

static void wait_all_outputs(er__pchild_t *c, const er__pchild_t *of) {
  const char *k;
  json_t *sid;
  json_object_foreach(of->outputs, k, sid) json_array_append(c->waits, sid);
}

/* waits without repeats, in first-seen order. */
static void dedupe(json_t *waits) {
  json_t *seen = json_object(), *out = json_array();
  size_t i;
  json_t *w;
  json_array_foreach(waits, i, w) {
    if (json_object_get(seen, json_string_value(w))) continue;
    json_object_set_new(seen, json_string_value(w), json_true());
    json_array_append(out, w);
  }
  json_array_clear(waits);
  json_array_extend(waits, out);
  json_decref(out);
  json_decref(seen);
}

er_pipe_handle_t *er_pipe_child(er_pipe_ctx_t *ctx, const char *name, json_t *args) {
  return er_pipe_child_kw(ctx, name, args, NULL);
}

er_pipe_handle_t *er_pipe_child_kw(er_pipe_ctx_t *ctx, const char *name, json_t *args,
                                   json_t *kwargs) {
  if (!ctx->running) {
    er__pctx_usage(ctx, "pipeline '%s': children are declared in run", ctx->name);
    return NULL;
  }
  const er_pipeline_def_t *def = er_pipeline_lookup(name);
  if (!def) {
    er__pctx_usage(ctx, "pipeline '%s': unknown child pipeline '%s'", ctx->name, name ? name : "");
    return NULL;
  }
  if ((args && !json_is_array(args)) || (kwargs && !json_is_object(kwargs))) {
    er__pctx_usage(ctx, "pipeline '%s': child '%s' needs args an array and kwargs an object",
                   ctx->name, name);
    return NULL;
  }
  er__pchild_t *c = er_calloc(1, sizeof *c);
  er_id_t id;
  if (!c || er_id_new(&id) < 0 || !(c->h = er_calloc(1, sizeof *c->h))) goto oom;
  memcpy(c->id, id.text, sizeof c->id);
  c->def = def;
  c->args = args ? json_copy(args) : json_array();
  c->kwargs = kwargs ? json_copy(kwargs) : json_object();
  c->outputs = json_object();
  c->refs = json_object();
  c->waits = json_array();
  c->h->ctx = ctx;
  c->h->child = c;
  if (!new_output(c, ctx, "default")) goto oom;
  if (def->outputs)
    for (const char *const *o = def->outputs; *o; o++)
      if (!new_output(c, ctx, *o)) goto oom;
  if (add_waits(ctx, c, c->args) < 0 || add_waits(ctx, c, c->kwargs) < 0) goto bad;
  size_t i;
  json_t *frame, *sid;
  json_array_foreach(ctx->after, i, frame) {
    size_t j;
    json_array_foreach(frame, j, sid) json_array_append(c->waits, sid);
  }
  if (ctx->in_order && ctx->in_order_prev) wait_all_outputs(c, ctx->in_order_prev);
  dedupe(c->waits);
  if (ctx->nchildren == ctx->capchildren) {
    size_t cap = ctx->capchildren ? ctx->capchildren * 2 : 8;
    er__pchild_t **v = er_realloc(ctx->children, cap * sizeof *v);
    if (!v) goto oom;
    ctx->children = v;
    ctx->capchildren = cap;
  }
  ctx->children[ctx->nchildren++] = c;
  if (ctx->in_order) ctx->in_order_prev = c;
  return c->h;
oom:
  er__pctx_usage(ctx, "pipeline '%s': out of memory declaring a child", ctx->name);
bad:
  child_free(c);
  return NULL;
}

json_t *er_pipe_out(er_pipe_handle_t *h, const char *name) {
  if (!h) return NULL;
  if (!name) name = "default";
  er__pchild_t *c = h->child;
  json_t *ref = json_object_get(c->refs, name);
  if (ref) return ref;
  if (!*name || c->def->outputs) {
    er__pctx_usage(h->ctx, "pipeline '%s' has no output '%s' (strict outputs)", c->def->name,
                   name);
    return NULL;
  }
  return new_output(c, h->ctx, name);
}

int er_pipe_after(er_pipe_ctx_t *ctx, ...) {
  json_t *frame = json_array();
  va_list ap;
  va_start(ap, ctx);
  er_pipe_handle_t *h;
  while ((h = va_arg(ap, er_pipe_handle_t *))) {
    const char *k;
    json_t *sid;
    json_object_foreach(h->child->outputs, k, sid) json_array_append(frame, sid);
  }
  va_end(ap);
  return json_array_append_new(ctx->after, frame) ? ER_ENOMEM : 0;
}

int er_pipe_after_end(er_pipe_ctx_t *ctx) {
  size_t n = json_array_size(ctx->after);
  if (!n) {
    er__pctx_usage(ctx, "pipeline '%s': er_pipe_after_end without er_pipe_after", ctx->name);
    return ER_ESTATE;
  }
  return json_array_remove(ctx->after, n - 1) ? ER_ENOMEM : 0;
}

int er_pipe_in_order(er_pipe_ctx_t *ctx) {
  if (ctx->in_order) {
    er__pctx_usage(ctx, "pipeline '%s': er_pipe_in_order cannot be nested", ctx->name);
    return ER_ESTATE;
  }
  ctx->in_order = true;
  ctx->in_order_prev = NULL;
  return 0;
}

int er_pipe_in_order_end(er_pipe_ctx_t *ctx) {
  if (!ctx->in_order) {
    er__pctx_usage(ctx, "pipeline '%s': er_pipe_in_order_end without er_pipe_in_order",
                   ctx->name);
    return ER_ESTATE;
  }
  ctx->in_order = false;
  ctx->in_order_prev = NULL;
  return 0;
}
