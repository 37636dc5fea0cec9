/*
 * Example pipelines, built into a library a worker loads:
 *
 *   errand worker -A ./build/libexample_pipelines.so
 *
 * and started from a program (er_pipeline_start) linked with the same
 * library, or with .unchecked from one that is not.
 *
 * euclid  [a, b]  gcd by one child per step, recursively: the last child
 *                 gives its output to its parent (1071, 462 gives 21)
 * fan_sum [n]     n children each returning its index, summed by the Sum
 *                 built-in once all are filled: n(n-1)/2
 * chain   [n]     n stages one after the other, each adding 1 to the output
 *                 of the one before: n
 * approve_demo    an async pipeline that waits for a choice: its callback
 *                 completes it with choice == "approve". Its approve and
 *                 deny callback URLs are its status links, where a real
 *                 application would mail them (the worker needs --base-url
 *                 or ERRAND_BASE_URL for them); from the shell:
 *                   errand pipeline callback ID choice=approve
 * delay_demo [s]  the Delay built-in (s seconds, default 1), then Return
 *                 "done"
 */
#include <string.h>

#include <errand.h>

static json_int_t arg_int(json_t *args, size_t i) {
  return json_integer_value(json_array_get(args, i));
}

static json_t *euclid(er_pipe_ctx_t *ctx, json_t *args, json_t *kwargs) {
  json_int_t a = arg_int(args, 0), b = arg_int(args, 1);
  if (a < 0 || b < 0) return er_pipe_abort(ctx, "euclid takes two integers >= 0");
  if (b == 0) return json_integer(a);
  json_t *next = json_pack("[I, I]", b, a % b);
  er_pipe_child(ctx, "euclid", next); /* the last child fills our output */
  json_decref(next);
  return NULL;
}
ER_PIPELINE("euclid", euclid)

static json_t *fan_sum(er_pipe_ctx_t *ctx, json_t *args, json_t *kwargs) {
  json_int_t n = arg_int(args, 0);
  if (n < 0 || n > 100000) return er_pipe_abort(ctx, "fan_sum takes 0..100000");
  json_t *parts = json_array();
  for (json_int_t i = 0; i < n; i++) {
    json_t *a = json_pack("[I]", i);
    er_pipe_handle_t *h = er_pipe_child(ctx, "Return", a);
    json_decref(a);
    json_array_append(parts, er_pipe_out(h, NULL)); /* a slot reference */
  }
  er_pipe_child(ctx, "Sum", parts); /* waits for every part */
  json_decref(parts);
  return NULL;
}
ER_PIPELINE("fan_sum", fan_sum)

static json_t *add_one(er_pipe_ctx_t *ctx, json_t *args, json_t *kwargs) {
  return json_integer(arg_int(args, 0) + 1);
}
ER_PIPELINE("chain.step", add_one)

static json_t *chain(er_pipe_ctx_t *ctx, json_t *args, json_t *kwargs) {
  json_int_t n = arg_int(args, 0);
  if (n < 1 || n > 100000) return er_pipe_abort(ctx, "chain takes 1..100000");
  json_t *prev = json_integer(0);
  for (json_int_t i = 0; i < n; i++) {
    json_t *a = json_pack("[O]", prev);
    er_pipe_handle_t *h = er_pipe_child(ctx, "chain.step", a);
    json_decref(a);
    json_decref(prev);
    prev = json_incref(er_pipe_out(h, NULL)); /* the next stage waits for it */
  }
  json_decref(prev);
  return NULL;
}
ER_PIPELINE("chain", chain)

static json_t *approve_demo(er_pipe_ctx_t *ctx, json_t *args, json_t *kwargs) {
  json_t *links = json_object();
  const char *const choices[] = {"approve", "deny"};
  for (int i = 0; i < 2; i++) {
    json_t *p = json_pack("{s:s}", "choice", choices[i]);
    char *url = er_pipe_callback_url(ctx, p); /* NULL without a base URL */
    if (url) json_object_set_new(links, choices[i], json_string(url));
    er_free(url);
    json_decref(p);
  }
  er_pipe_set_status(ctx, "waiting for a choice", links);
  json_decref(links);
  return NULL; /* in RUN until the callback completes it */
}

static json_t *approve_demo_cb(er_pipe_ctx_t *ctx, json_t *params) {
  const char *choice = json_string_value(json_object_get(params, "choice"));
  if (!choice) {
    er_pipe_respond(ctx, 400, NULL, "give choice=approve or choice=deny");
    return NULL;
  }
  bool approved = strcmp(choice, "approve") == 0;
  er_pipe_complete(ctx, json_boolean(approved));
  er_pipe_set_status(ctx, approved ? "approved" : "denied", NULL);
  er_pipe_respond(ctx, 200, NULL, approved ? "approved" : "denied");
  return NULL;
}
/* An abort may abort it while it waits: nothing outside is left half done. */
static bool approve_demo_cancel(er_pipe_ctx_t *ctx) { return true; }
ER_PIPELINE("approve_demo", approve_demo, .callback = approve_demo_cb,
            .try_cancel = approve_demo_cancel, .flags = ER_PIPE_ASYNC)

static json_t *delay_demo(er_pipe_ctx_t *ctx, json_t *args, json_t *kwargs) {
  json_t *s = json_array_size(args) ? json_array_get(args, 0) : NULL;
  json_t *a = s ? json_pack("[O]", s) : json_pack("[i]", 1);
  er_pipe_handle_t *d = er_pipe_child(ctx, "Delay", a);
  json_decref(a);
  er_pipe_after(ctx, d, NULL); /* Return waits for the Delay */
  a = json_pack("[s]", "done");
  er_pipe_child(ctx, "Return", a);
  json_decref(a);
  er_pipe_after_end(ctx);
  return NULL;
}
ER_PIPELINE("delay_demo", delay_demo)
