/* The async built-ins: Delay, which completes after N seconds through a
 * callback task (App Engine's), and Approval, which waits for a person's
 * choice through public callback URLs guarded by a random token of its own. */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "pipeline/pipe_internal.h"

#define DELAY_MAX_S (365.0 * 86400.0)
#define TOKEN_BYTES 16

static bool yes(er_pipe_ctx_t *ctx) { return true; } /* nothing outside to stop */

/* [seconds] (or kwargs {"seconds": s}): the wait, a number 0..a year. */
static json_t *seconds_of(json_t *args, json_t *kwargs) {
  json_t *s = json_array_size(args) ? json_array_get(args, 0) : json_object_get(kwargs, "seconds");
  return json_is_number(s) && json_number_value(s) >= 0 && json_number_value(s) <= DELAY_MAX_S
             ? s : NULL;
}

static json_t *delay(er_pipe_ctx_t *ctx, json_t *args, json_t *kwargs) {
  json_t *s = seconds_of(args, kwargs);
  if (!s) return er_pipe_abort(ctx, "Delay takes [seconds], a number from 0 to %.0f", DELAY_MAX_S);
  er_pipe_set_state(ctx, s); /* the record's args may be a slot reference */
  er_pipe_callback_task(ctx, (int64_t)(json_number_value(s) * 1000.0), NULL);
  return NULL;
}

/* The callback task's call: done, with the seconds waited as the output. */
static json_t *delay_cb(er_pipe_ctx_t *ctx, json_t *params) {
  er_pipe_complete(ctx, er_pipe_state(ctx));
  return NULL;
}

/* [message]: the status message shown while it waits. Its state keeps a
 * random token; its links are the approve and deny URLs, which carry it. */
static json_t *approval(er_pipe_ctx_t *ctx, json_t *args, json_t *kwargs) {
  unsigned char raw[TOKEN_BYTES];
  if (RAND_bytes(raw, sizeof raw) != 1) return er_pipe_retry(ctx, "Approval: no randomness");
  char token[2 * TOKEN_BYTES + 1];
  for (int i = 0; i < TOKEN_BYTES; i++) snprintf(token + 2 * i, 3, "%02x", raw[i]);
  json_t *state = json_pack("{s:s}", "token", token);
  er_pipe_set_state(ctx, state);
  json_decref(state);
  json_t *links = json_object();
  const char *const choices[] = {"approve", "deny"};
  for (int i = 0; i < 2; i++) {
    json_t *p = json_pack("{s:s, s:s}", "choice", choices[i], "token", token);
    char *url = er_pipe_callback_url(ctx, p);
    if (url) json_object_set_new(links, choices[i], json_string(url));
    er_free(url);
    json_decref(p);
  }
  const char *msg = json_string_value(json_array_get(args, 0));
  er_pipe_set_status(ctx, msg ? msg : "waiting for approval", links);
  json_decref(links);
  return NULL;
}

/* {"choice": "approve"|"deny", "token": t}: true or false; a token other
 * than its own is refused (403), nothing changed. */
static json_t *approval_cb(er_pipe_ctx_t *ctx, json_t *params) {
  const char *want = json_string_value(json_object_get(er_pipe_state(ctx), "token"));
  const char *got = json_string_value(json_object_get(params, "token"));
  const char *choice = json_string_value(json_object_get(params, "choice"));
  if (!want || !got || strlen(got) != strlen(want) || CRYPTO_memcmp(got, want, strlen(want))) {
    er_pipe_respond(ctx, 403, NULL, "Approval: wrong token: callback refused");
    return NULL;
  }
  bool approve = choice && strcmp(choice, "approve") == 0;
  if (!approve && !(choice && strcmp(choice, "deny") == 0)) {
    er_pipe_respond(ctx, 400, NULL, "Approval: choice must be approve or deny");
    return NULL;
  }
  er_pipe_complete(ctx, approve ? json_true() : json_false());
  er_pipe_set_status(ctx, approve ? "approved" : "denied", NULL);
  er_pipe_respond(ctx, 200, NULL, approve ? "approved" : "denied");
  return NULL;
}

const er_pipeline_def_t er__pipe_builtins_async[] = {
    {.name = "Delay", .run = delay, .callback = delay_cb, .try_cancel = yes,
     .flags = ER_PIPE_ASYNC},
    {.name = "Approval", .run = approval, .callback = approval_cb, .try_cancel = yes,
     .flags = ER_PIPE_ASYNC | ER_PIPE_PUBLIC_CALLBACKS},
    {0},
};
