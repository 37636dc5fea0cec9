/* GET /metrics: the Prometheus text exposition format (0.0.4). Gauges from
 * the store's counts (by queue and state, by task name and state), the live
 * workers, the pipeline roots by status; histograms of task run time and
 * round trip summed over the live workers' heartbeats. Each worker counts
 * from its own start, so a histogram's counts fall back when a worker
 * stops or restarts, as Prometheus counters may (rate() copes). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "errand/pipeline.h"
#include "http/http_internal.h"
#include "queue/client_internal.h"
#include "queue/histogram.h"

/* Pipeline roots are counted by walking them (the pipeline layer keeps no
 * count by status): at most this many, the newest; errand_pipelines_truncated
 * says when there were more. */
#define PIPE_ROOTS_MAX 10000
#define PIPE_PAGE 1000

typedef struct text {
  char *p;
  size_t n, cap;
  bool oom;
} text_t;

static void put(text_t *t, const char *fmt, ...) ER_PRINTF(2, 3);
static void put(text_t *t, const char *fmt, ...) {
  if (t->oom) return;
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(t->p ? t->p + t->n : NULL, t->p ? t->cap - t->n : 0, fmt, ap);
    va_end(ap);
    if (k < 0) {
      t->oom = true;
      return;
    }
    if (t->p && t->n + (size_t)k < t->cap) {
      t->n += (size_t)k;
      return;
    }
    size_t cap = t->cap ? t->cap * 2 : 4096;
    while (cap < t->n + (size_t)k + 1) cap *= 2;
    char *p = er_realloc(t->p, cap);
    if (!p) {
      t->oom = true;
      return;
    }
    t->p = p;
    t->cap = cap;
  }
}

/* A label value as the format wants it: backslash, double quote and line
 * feed escaped. */
static void put_label(text_t *t, const char *name, const char *v, bool first) {
  put(t, "%s%s=\"", first ? "" : ",", name);
  for (const char *s = v ? v : ""; *s; s++) {
    if (*s == '\\') put(t, "\\\\");
    else if (*s == '"') put(t, "\\\"");
    else if (*s == '\n') put(t, "\\n");
    else put(t, "%c", *s);
  }
  put(t, "\"");
}

static void head(text_t *t, const char *name, const char *type, const char *help) {
  put(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* counts: {"key": {"STATE": n, ...}} as name{label="key",state="STATE"} n */
static void by_state(text_t *t, const char *name, const char *label, json_t *counts) {
  const char *k, *st;
  json_t *v, *n;
  json_object_foreach(counts, k, v) {
    json_object_foreach(v, st, n) {
      put(t, "%s{", name);
      put_label(t, label, k, true);
      put_label(t, "state", st, false);
      put(t, "} %lld\n", (long long)json_integer_value(n));
    }
  }
}

static void workers(text_t *t, json_t *list) {
  head(t, "errand_workers", "gauge", "Live workers (a heartbeat within its time to live).");
  put(t, "errand_workers %zu\n", json_array_size(list));
  head(t, "errand_worker_up", "gauge", "1 for each live worker.");
  size_t i;
  json_t *w;
  json_array_foreach(list, i, w) {
    put(t, "errand_worker_up{");
    put_label(t, "worker", json_string_value(json_object_get(w, "id")), true);
    put_label(t, "hostname", json_string_value(json_object_get(w, "hostname")), false);
    put(t, "} 1\n");
  }
  head(t, "errand_worker_active_tasks", "gauge", "Tasks running on each live worker.");
  json_array_foreach(list, i, w) {
    put(t, "errand_worker_active_tasks{");
    put_label(t, "worker", json_string_value(json_object_get(w, "id")), true);
    put(t, "} %lld\n", (long long)json_integer_value(json_object_get(w, "active")));
  }
}

static void histogram(text_t *t, json_t *list, const char *which, const char *name,
                      const char *help) {
  er__hist_sum_t sum = {{0}, 0, 0};
  size_t i;
  json_t *w;
  json_array_foreach(list, i, w) {
    er__hist_sum_add(&sum, json_object_get(json_object_get(w, "histograms"), which));
  }
  head(t, name, "histogram", help);
  for (int b = 0; b <= ER__HIST_NB; b++) {
    if (b < ER__HIST_NB) put(t, "%s_bucket{le=\"%g\"} %llu\n", name, er__hist_le[b],
                             (unsigned long long)sum.cum[b]);
    else put(t, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)sum.cum[b]);
  }
  put(t, "%s_sum %.3f\n%s_count %llu\n", name, (double)sum.sum_ms / 1000.0, name,
      (unsigned long long)sum.count);
}

/* Pipeline roots by status, the newest PIPE_ROOTS_MAX. */
static int pipelines(text_t *t, er_client_t *c) {
  json_t *by = json_object();
  char *after = NULL;
  size_t seen = 0;
  bool more = false;
  int rc = by ? 0 : ER_ENOMEM;
  while (!rc) {
    json_t *page = NULL;
    char *next = NULL;
    rc = er_pipeline_list(c, NULL, after, PIPE_PAGE, &page, &next);
    er_free(after);
    after = next;
    if (rc < 0) break;
    size_t i;
    json_t *p;
    json_array_foreach(page, i, p) {
      const char *st = json_string_value(json_object_get(p, "status"));
      if (!st) st = "unknown";
      json_t *n = json_object_get(by, st);
      json_object_set_new(by, st, json_integer(json_integer_value(n) + 1));
    }
    seen += json_array_size(page);
    json_decref(page);
    if (!after) break;
    if (seen >= PIPE_ROOTS_MAX) {
      more = true;
      break;
    }
  }
  er_free(after);
  if (rc < 0) {
    json_decref(by);
    return rc;
  }
  head(t, "errand_pipelines", "gauge", "Pipeline roots by status (the newest 10000).");
  const char *k;
  json_t *v;
  json_object_foreach(by, k, v) {
    put(t, "errand_pipelines{");
    put_label(t, "status", k, true);
    put(t, "} %lld\n", (long long)json_integer_value(v));
  }
  head(t, "errand_pipelines_truncated", "gauge",
       "1 when there were more pipeline roots than errand_pipelines counts.");
  put(t, "errand_pipelines_truncated %d\n", more ? 1 : 0);
  json_decref(by);
  return 0;
}

void er__http_metrics(er__http_req_t *rq, er__http_resp_t *out) {
  er_client_t *c = rq->srv->client;
  er_store_t *s = NULL;
  json_t *stats = NULL, *live = NULL;
  int rc = er__client_take_store(c, &s);
  if (rc == 0) {
    rc = er_store_stats(s, &stats);
    if (rc == 0) rc = er_store_workers(s, er_now_wall_ms(), &live);
    if (rc < 0) er__client_store_fail(c, s, rc, "metrics");
    er__client_put_store(c, s);
  }
  text_t t = {0};
  if (rc == 0) {
    head(&t, "errand_queue_tasks", "gauge", "Tasks by queue and state.");
    by_state(&t, "errand_queue_tasks", "queue", json_object_get(stats, "queues"));
    head(&t, "errand_tasks", "gauge", "Tasks by task name and state.");
    by_state(&t, "errand_tasks", "name", json_object_get(stats, "names"));
    workers(&t, live);
    rc = pipelines(&t, c);
  }
  if (rc == 0) {
    histogram(&t, live, "runtime", "errand_task_runtime_seconds",
              "Run time of task attempts that ended on the live workers.");
    histogram(&t, live, "roundtrip", "errand_task_roundtrip_seconds",
              "Time from sending to finishing of tasks that finished on the live workers.");
  }
  json_decref(stats);
  json_decref(live);
  if (rc < 0) {
    er_free(t.p);
    er__http_client_error(rq, out, rc);
    return;
  }
  if (t.oom) {
    er_free(t.p);
    er__http_error(out, 500, "out of memory");
    return;
  }
  er_free(out->body);
  out->body = t.p;
  out->body_len = t.n;
  out->status = 200;
  out->content_type = "text/plain; version=0.0.4; charset=utf-8";
}
