/* errand pipeline callback ID [k=v ...]: delivers a callback locally (the
 * trusted operator's path: no token), waits for a worker to run it, and
 * prints its answer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* The exit code for a refused callback's HTTP-like status: an unknown
 * pipeline is not found (4), one that takes no callback now is bad input
 * (2), and the callback's own refusal (a wrong token, ...) is a failure (1). */
static int exit_for_status(json_int_t status) {
  return status == 404 ? EXIT_NOT_FOUND : status == 409 ? EXIT_USAGE : EXIT_TASK_FAILED;
}

static int print_answer(const char *id, json_t *answer) {
  json_int_t status = json_integer_value(json_object_get(answer, "status"));
  const char *body = json_string_value(json_object_get(answer, "body"));
  if (!body) body = "";
  size_t n = strlen(body);
  if (status >= 400) {
    char esc[CLI_ESC_SIZE];
    cli_error("callback to pipeline %s refused (%d): %s", id, (int)status,
              cli_esc(body, esc, sizeof esc));
    return exit_for_status(status);
  }
  if (n) printf("%s%s", body, body[n - 1] == '\n' ? "" : "\n");
  return EXIT_OK;
}

int cli_pipeline_callback(er_client_t *c, const char *id, int nparams, char **params,
                          int64_t timeout_ms) {
  json_t *p = json_object();
  for (int i = 0; i < nparams; i++) {
    char *eq = strchr(params[i], '=');
    if (!eq || eq == params[i]) {
      cli_error("pipeline callback: parameters are NAME=VALUE, not '%s'", params[i]);
      json_decref(p);
      return EXIT_USAGE;
    }
    json_t *v = json_stringn(eq + 1, strlen(eq + 1));
    char *name = strndup(params[i], (size_t)(eq - params[i]));
    if (!v || !name || json_object_get(p, name)) {
      cli_error("pipeline callback: '%.*s' %s", (int)(eq - params[i]), params[i],
                v && name ? "is given twice" : "is not UTF-8");
      json_decref(v);
      free(name);
      json_decref(p);
      return EXIT_USAGE;
    }
    json_object_set_new(p, name, v);
    free(name);
  }
  er_id_t task;
  int rc = er_pipeline_callback(c, id, p, &task);
  json_decref(p);
  if (rc < 0) {
    cli_error("%s", er_client_last_error(c));
    return rc == ER_ESTATE ? EXIT_USAGE : cli_exit_for(rc);
  }
  /* Nobody would run the callback task: say so before waiting for it. */
  er_task_rec_t *r = NULL;
  if (er_status(c, task.text, NULL, &r) == 0 && r->queue && !cli_queue_served(c, r->queue))
    cli_error("no live worker serves queue '%s'; the callback waits in the queue", r->queue);
  er_task_rec_free(r);
  json_t *answer = NULL, *error = NULL;
  rc = er_result(c, task.text, NULL, timeout_ms, &answer, &error);
  int code;
  if (rc == ER_ETIMEDOUT) {
    char d[32];
    printf("%s\n", task.text); /* the callback task, to wait for with errand result */
    cli_error("the callback to pipeline %s is not delivered after %s (task %s)", id,
              cli_duration(timeout_ms, d), task.text);
    code = EXIT_NOT_READY;
  } else if (rc < 0) {
    code = cli_print_outcome(c, task.text, rc, answer, error);
  } else {
    code = print_answer(id, answer);
  }
  json_decref(answer);
  json_decref(error);
  return code;
}
