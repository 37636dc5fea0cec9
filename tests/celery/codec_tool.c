/* The Celery codec as a filter, for test_wire.py: reads one kombu envelope
 * per line on stdin and prints what er__cel_decode read from it, as one JSON
 * object per line ({"error": why} for a message it refuses), so that the
 * test can hold it against what the Celery client sent. With the argument
 * "list QUEUE PRIORITY" it prints kombu's list name instead. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "celery/celery_internal.h"

static json_t *opt(const char *s) { return s ? json_string(s) : json_null(); }

int main(int argc, char **argv) {
  if (argc == 4 && !strcmp(argv[1], "list")) {
    char out[300];
    er__cel_list_name(argv[2], atoi(argv[3]), out, sizeof out);
    fwrite(out, 1, strlen(out), stdout);
    putchar('\n');
    return 0;
  }
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  while ((n = getline(&line, &cap, stdin)) > 0) {
    er__cel_msg_t m;
    char why[200];
    json_t *o;
    if (er__cel_decode(line, (size_t)n, &m, why, sizeof why)) {
      o = json_pack("{s:s}", "error", why);
    } else {
      o = json_pack("{s:s,s:s,s:O,s:O,s:O,s:I,s:I,s:i,s:i,s:I,s:I,s:o,s:o,s:o,s:o,s:o,s:o,s:b}",
                    "id", m.id, "task", m.task, "args", m.args, "kwargs", m.kwargs, "embed",
                    m.embed, "eta_ms", (json_int_t)m.eta_ms, "expires_ms",
                    (json_int_t)m.expires_ms, "retries", m.retries, "priority", m.priority,
                    "soft_ms", (json_int_t)m.soft_ms, "hard_ms", (json_int_t)m.hard_ms, "tag",
                    opt(m.tag), "routing_key", opt(m.routing_key), "root_id", opt(m.root_id),
                    "parent_id", opt(m.parent_id), "group", opt(m.group), "reply_to",
                    opt(m.reply_to), "ignore_result", m.ignore_result);
      er__cel_msg_clear(&m);
    }
    char *t = json_dumps(o, JSON_COMPACT);
    puts(t ? t : "null");
    free(t);
    json_decref(o);
  }
  free(line);
  return 0;
}
