/* GET /api/v1/events: a server-sent events stream of what changes, so that
 * the dashboard need not poll. Each stream has a store handle of its own that
 * watches tasks finishing (a store's precise wake-up), and looks at the
 * queues' counts, the workers and what it was asked about (?task=ID,
 * ?pipeline=ROOT) at most every TICK_MS, sending only what differs from what
 * it sent last. The reader runs on the connection's thread and blocks in
 * slices of at most SLICE_MS, so a stopping server ends every stream at once.
 * Streams are connections like the others (the server's bound counts them),
 * and at most half of that bound may be streams, so the API stays reachable. */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <microhttpd.h>

#include "errand/pipeline.h"
#include "http/http_internal.h"

#define TICK_MS 500         /* the shortest time between two looks */
#define WORKERS_TICK_MS 2000 /* heartbeats change slowly: looked at less often */
#define SLICE_MS 200        /* the longest a reader blocks without looking at stop */
#define MAX_FINISHED 16     /* task events per tick; past it the counts tell */
#define DEFAULT_KEEPALIVE_S 15

typedef struct stream {
  er_http_server_t *srv;
  er_store_t *store;
  char *task, *pipeline; /* what ?task= and ?pipeline= asked about, or NULL */
  int64_t keepalive_ms;
  char *out;             /* bytes not yet handed to libmicrohttpd */
  size_t len, off;
  char *sent_stats, *sent_workers, *sent_task, *sent_tree; /* the last data sent */
  char *finished[MAX_FINISHED]; /* ids finished since the last look */
  size_t nfinished;
  int64_t next_tick, next_workers, last_write;
} stream_t;

static void stream_free(void *cls) {
  stream_t *st = cls;
  if (!st) return;
  er_store_close(st->store);
  er_free(st->out);
  er_free(st->task);
  er_free(st->pipeline);
  free(st->sent_stats);
  free(st->sent_workers);
  free(st->sent_task);
  free(st->sent_tree);
  for (size_t i = 0; i < st->nfinished; i++) er_free(st->finished[i]);
  atomic_fetch_sub(&st->srv->streams, 1);
  er_free(st);
}

static bool put(stream_t *st, const char *text, size_t n) {
  char *b = er_realloc(st->out, st->len + n);
  if (!b) return false;
  memcpy(b + st->len, text, n);
  st->out = b;
  st->len += n;
  return true;
}

/* Sends event `name` with j (stolen) as its data when it differs from *last
 * (jansson's text, kept in *last); with last NULL, always. */
static void event(stream_t *st, const char *name, json_t *j, char **last) {
  char *text = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
  json_decref(j);
  if (!text) return;
  if (last && *last && !strcmp(*last, text)) {
    free(text);
    return;
  }
  char head[64];
  int n = snprintf(head, sizeof head, "event: %s\ndata: ", name);
  size_t was = st->len;
  /* compact JSON has no newline: one data line */
  if (!put(st, head, (size_t)n) || !put(st, text, strlen(text)) || !put(st, "\n\n", 2)) {
    st->len = was; /* out of memory: not sent, so not remembered as sent */
    free(text);
    return;
  }
  if (last) {
    free(*last);
    *last = text;
  } else {
    free(text);
  }
}

/* A task's record as the task route gives it, the result included. */
static json_t *task_json(stream_t *st, const char *id) {
  er_task_rec_t *r = NULL;
  if (er_store_get(st->store, id, NULL, &r) < 0) return NULL;
  json_t *o = er_task_rec_json(r);
  if (o && r->state == ER_STATE_SUCCESS)
    json_object_set(o, "result", r->result ? r->result : json_null());
  er_task_rec_free(r);
  return o;
}

/* Notes the ids of tasks that finished, for the next look: a busy store
 * wakes the stream often, and the events go out at most once a tick. */
static void note_finished(stream_t *st) {
  er_wakeups_t w = {0};
  if (er_store_read_wakeups(st->store, &w) < 0) return;
  for (size_t i = 0; i < w.nfinished && st->nfinished < MAX_FINISHED; i++) {
    if (st->task && !strcmp(st->task, w.finished[i])) continue; /* its own look sends it */
    char *id = er_strdup(w.finished[i]);
    if (id) st->finished[st->nfinished++] = id;
  }
  er_wakeups_clear(&w);
}

/* What changed since the last look, as events. */
static void look(stream_t *st, int64_t now) {
  for (size_t i = 0; i < st->nfinished; i++) {
    event(st, "task", task_json(st, st->finished[i]), NULL);
    er_free(st->finished[i]);
  }
  st->nfinished = 0;
  json_t *j = NULL;
  if (er_store_stats(st->store, &j) == 0) event(st, "stats", j, &st->sent_stats);
  if (now >= st->next_workers) {
    st->next_workers = now + WORKERS_TICK_MS;
    json_t *list = NULL;
    if (er_store_workers(st->store, er_now_wall_ms(), &list) == 0) {
      /* the live set, not each beat: ids only decide whether it changed */
      json_t *ids = json_array();
      size_t i;
      json_t *w;
      json_array_foreach(list, i, w) json_array_append(ids, json_object_get(w, "id"));
      char *key = json_dumps(ids, JSON_COMPACT);
      json_decref(ids);
      if (key && (!st->sent_workers || strcmp(key, st->sent_workers))) {
        free(st->sent_workers);
        st->sent_workers = key;
        key = NULL;
        event(st, "workers", json_pack("{s:O}", "workers", list), NULL);
      }
      free(key);
    }
    json_decref(list);
  }
  if (st->task) event(st, "task", task_json(st, st->task), &st->sent_task);
  if (st->pipeline) {
    json_t *tree = NULL;
    if (er_pipeline_tree(st->srv->client, st->pipeline, &tree) == 0)
      event(st, "pipeline", tree, &st->sent_tree);
  }
}

/* libmicrohttpd's content reader: hands out what is pending, else waits for
 * something to send (never returns 0: in thread-per-connection mode that
 * would spin). */
static ssize_t reader(void *cls, uint64_t pos, char *buf, size_t max) {
  stream_t *st = cls;
  for (;;) {
    if (st->off < st->len) {
      size_t n = st->len - st->off < max ? st->len - st->off : max;
      memcpy(buf, st->out + st->off, n);
      st->off += n;
      if (st->off == st->len) st->off = st->len = 0;
      st->last_write = (int64_t)er_now_mono_ms();
      return (ssize_t)n;
    }
    if (atomic_load(&st->srv->stopping)) return MHD_CONTENT_READER_END_OF_STREAM;
    int64_t now = (int64_t)er_now_mono_ms();
    if (now >= st->next_tick) {
      st->next_tick = now + TICK_MS;
      look(st, now);
      continue;
    }
    if (now >= st->last_write + st->keepalive_ms) {
      if (!put(st, ": keepalive\n\n", 13)) st->last_write = now; /* out of memory: later */
      continue;
    }
    int64_t wait = st->next_tick - now;
    if (wait > SLICE_MS) wait = SLICE_MS;
    int fd = er_store_wakeup_fd(st->store);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (fd >= 0 && poll(&p, 1, (int)wait) > 0 && p.revents == POLLIN) {
      note_finished(st);
    } else if (fd < 0 || p.revents) {
      /* no wake-up to wait on (or a broken one, which poll would report at
       * once, again and again): a slice's sleep, then a look */
      struct timespec ts = {0, (long)wait * 1000000L};
      nanosleep(&ts, NULL);
      note_finished(st);
    }
  }
}

/* The query's id parameter k into *dst (new), or false with a 400. */
static bool id_param(json_t *v, const char *k, char **dst, er__http_resp_t *out) {
  const char *s = json_string_value(v);
  if (!s || !er_id_valid(s)) {
    er__http_error(out, 400, "'%s' must be an id", k);
    return false;
  }
  *dst = er_strdup(s);
  return true;
}

static bool params(er__http_req_t *rq, stream_t *st, er__http_resp_t *out) {
  json_t *q = er__http_query(rq, out);
  if (!q) return false;
  const char *k;
  json_t *v;
  bool ok = true;
  json_object_foreach(q, k, v) {
    if (!strcmp(k, "task")) {
      ok = id_param(v, k, &st->task, out);
    } else if (!strcmp(k, "pipeline")) {
      ok = id_param(v, k, &st->pipeline, out);
    } else if (!strcmp(k, "keepalive")) {
      const char *s = json_string_value(v);
      char *end = NULL;
      long n = strtol(s, &end, 10);
      if (end == s || *end || n < 1 || n > 300) {
        er__http_error(out, 400, "'keepalive' takes seconds from 1 to 300");
        ok = false;
      }
      st->keepalive_ms = n * 1000;
    } else {
      er__http_error(out, 400, "unknown parameter '%s'", k);
      ok = false;
    }
    if (!ok) break;
  }
  json_decref(q);
  return ok;
}

void er__http_events(er__http_req_t *rq, er__http_resp_t *out) {
  er_http_server_t *srv = rq->srv;
  unsigned most = srv->o.max_connections > 1 ? srv->o.max_connections / 2 : 1;
  if ((unsigned)atomic_fetch_add(&srv->streams, 1) >= most) {
    atomic_fetch_sub(&srv->streams, 1);
    er__http_error(out, 503, "too many event streams (at most %u on this server)", most);
    return;
  }
  stream_t *st = er_calloc(1, sizeof *st);
  if (!st) {
    atomic_fetch_sub(&srv->streams, 1);
    er__http_error(out, 500, "out of memory");
    return;
  }
  st->srv = srv;
  st->keepalive_ms = DEFAULT_KEEPALIVE_S * 1000;
  if (!params(rq, st, out)) {
    stream_free(st);
    return;
  }
  char msg[256] = "";
  int rc = er_store_open(er_client_url(srv->client), &st->store, msg, sizeof msg);
  /* Watch before the first look: no finish between the two is missed. */
  if (rc == 0) rc = er_store_watch(st->store, &(er_watch_t){.finished = true});
  if (rc < 0) {
    er__http_error(out, er__http_status_for(rc), "events: %s",
                   *msg ? msg : er_store_last_error(st->store));
    stream_free(st);
    return;
  }
  st->last_write = (int64_t)er_now_mono_ms();
  out->status = 200;
  out->content_type = "text/event-stream";
  out->stream = reader;
  out->stream_done = stream_free;
  out->stream_cls = st;
  /* A comment first: the client sees the stream open before any change. */
  put(st, ": errand events\n\n", 17);
}
