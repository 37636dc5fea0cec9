/* The event stream (GET /api/v1/events) and the dashboard's files, against
 * the fixture's real server, store and worker: a task finishing, the
 * queues' counts, a watched task's progress, a watched pipeline's tree,
 * keepalives, the token, the bound on streams, and a server stopped while
 * streams are open. */
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <errand.h>

#include "http_fixture.h"

#define WAIT_MS 60000 /* generous: the machine may be loaded */

typedef struct stream {
  int fd;
  char *buf;
  size_t len, cap;
  bool eof;
} stream_t;

/* Opens path as a stream over HTTP/1.0 (no chunked framing to undo: the
 * server writes the events as they are and closes at the end). */
static stream_t open_stream(int port, const char *path, const char *headers) {
  stream_t s = {.fd = tc_dial(port), .cap = 65536};
  assert_true(s.fd >= 0);
  s.buf = calloc(1, s.cap);
  char req[1024];
  int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n%s\r\n", path,
                   headers ? headers : "");
  assert_int_equal(send(s.fd, req, (size_t)n, MSG_NOSIGNAL), n);
  return s;
}

/* Reads until the text received holds needle (after offset from), or the
 * stream ends, or ms pass; the needle's offset past from, or -1. */
static long read_until(stream_t *s, size_t from, const char *needle, int64_t ms) {
  int64_t end = (int64_t)er_now_mono_ms() + ms;
  for (;;) {
    char *hit = s->len > from ? strstr(s->buf + from, needle) : NULL;
    if (hit) return (long)(hit - s->buf);
    int64_t left = end - (int64_t)er_now_mono_ms();
    if (left <= 0 || s->eof) return -1;
    struct pollfd p = {.fd = s->fd, .events = POLLIN};
    if (poll(&p, 1, (int)(left < 1000 ? left : 1000)) <= 0) continue;
    if (s->cap - s->len < 8192) {
      s->buf = realloc(s->buf, s->cap * 2);
      s->cap *= 2;
    }
    ssize_t got = recv(s->fd, s->buf + s->len, s->cap - s->len - 1, 0);
    if (got <= 0) {
      s->eof = true;
      continue;
    }
    s->len += (size_t)got;
    s->buf[s->len] = 0;
  }
}

static void close_stream(stream_t *s) {
  close(s->fd);
  free(s->buf);
}

/* The data line of the first event `name` at or after from whose data holds
 * needle, as JSON (new); fails after WAIT_MS. */
static json_t *event_with(stream_t *s, size_t *from, const char *name, const char *needle) {
  char head[64];
  snprintf(head, sizeof head, "event: %s\ndata: ", name);
  for (;;) {
    long at = read_until(s, *from, head, WAIT_MS);
    if (at < 0) fail_msg("no '%s' event with %s in: %s", name, needle, s->buf);
    /* the whole line first */
    long nl = read_until(s, (size_t)at + strlen(head), "\n", WAIT_MS);
    assert_true(nl > 0);
    *from = (size_t)nl;
    const char *data = s->buf + at + strlen(head);
    json_t *j = json_loadb(data, (size_t)(s->buf + nl - data), 0, NULL);
    assert_non_null(j);
    char *text = json_dumps(j, JSON_COMPACT);
    bool has = strstr(text, needle) != NULL;
    free(text);
    if (has) return j;
    json_decref(j);
  }
}

static void stream_headers_ok(stream_t *s) {
  assert_true(read_until(s, 0, "\r\n\r\n", WAIT_MS) > 0);
  assert_int_equal(strncmp(s->buf, "HTTP/1.0 200", 12) && strncmp(s->buf, "HTTP/1.1 200", 12),
                   0);
  assert_non_null(strstr(s->buf, "Content-Type: text/event-stream"));
}

/* A task finishing gives a `task` event with its state and result, and the
 * queues' counts a `stats` event. */
static void task_and_stats_events(void **state) {
  stream_t s = open_stream(g_port, "/api/v1/events", NULL);
  stream_headers_ok(&s);
  size_t at = 0;
  json_decref(event_with(&s, &at, "stats", "\"total\""));
  er_id_t id;
  json_t *args = json_pack("[i, i]", 20, 22);
  assert_int_equal(er_send(H.client, "add", args, NULL, NULL, &id), 0);
  json_decref(args);
  size_t from = at;
  json_t *t = event_with(&s, &from, "task", id.text);
  assert_string_equal(str(t, "state"), "SUCCESS");
  assert_int_equal(json_integer_value(json_object_get(t, "result")), 42);
  json_decref(t);
  /* the counts after it: SUCCESS counted in the default queue */
  json_t *st = event_with(&s, &at, "stats", "\"default\"");
  json_t *q = json_object_get(json_object_get(st, "queues"), "default");
  assert_true(json_integer_value(json_object_get(q, "SUCCESS")) >= 1);
  json_decref(st);
  close_stream(&s);
}

/* A failing task is reported too, with its error. */
static void failure_event(void **state) {
  stream_t s = open_stream(g_port, "/api/v1/events", NULL);
  stream_headers_ok(&s);
  size_t at = 0;
  json_decref(event_with(&s, &at, "stats", "\"total\""));
  er_id_t id;
  json_t *args = json_pack("[s]", "no luck");
  assert_int_equal(er_send(H.client, "fail", args, NULL, NULL, &id), 0);
  json_decref(args);
  json_t *t = event_with(&s, &at, "task", id.text);
  assert_string_equal(str(t, "state"), "FAILURE");
  char *e = json_dumps(json_object_get(t, "error"), JSON_COMPACT);
  assert_non_null(e);
  assert_non_null(strstr(e, "no luck"));
  free(e);
  json_decref(t);
  close_stream(&s);
}

/* ?task=ID: its progress as it changes, then its end. */
static void watched_task_progress(void **state) {
  er_id_t id;
  json_t *args = json_pack("[f]", 3.0);
  assert_int_equal(er_send(H.client, "progress", args, NULL, NULL, &id), 0);
  json_decref(args);
  char path[128];
  snprintf(path, sizeof path, "/api/v1/events?task=%s", id.text);
  stream_t s = open_stream(g_port, path, NULL);
  stream_headers_ok(&s);
  size_t at = 0;
  bool partial = false;
  for (;;) {
    json_t *t = event_with(&s, &at, "task", id.text);
    double p = json_number_value(json_object_get(t, "progress"));
    bool done = !strcmp(str(t, "state"), "SUCCESS");
    if (!done && p > 0 && p < 1) partial = true;
    json_decref(t);
    if (done) break;
  }
  assert_true(partial); /* seen between 0 and 1, not only at the end */
  close_stream(&s);
}

/* ?pipeline=ROOT: the tree while it waits for a choice, then done. */
static void watched_pipeline(void **state) {
  er_id_t root;
  json_decref(links_of("approve_demo", &root));
  char path[128];
  snprintf(path, sizeof path, "/api/v1/events?pipeline=%s", root.text);
  stream_t s = open_stream(g_port, path, NULL);
  stream_headers_ok(&s);
  size_t at = 0;
  json_t *tree = event_with(&s, &at, "pipeline", "waiting for a choice");
  assert_string_equal(str(tree, "root"), root.text);
  json_decref(tree);
  json_t *p = json_pack("{s:s}", "choice", "approve");
  int rc = er_pipeline_callback(H.client, root.text, p, NULL);
  json_decref(p);
  assert_int_equal(rc, 0);
  json_decref(event_with(&s, &at, "pipeline", "\"status\":\"done\""));
  close_stream(&s);
}

static void keepalive(void **state) {
  stream_t s = open_stream(g_port, "/api/v1/events?keepalive=1", NULL);
  stream_headers_ok(&s);
  long first = read_until(&s, 0, ": keepalive\n\n", WAIT_MS);
  assert_true(first > 0);
  assert_true(read_until(&s, (size_t)first + 1, ": keepalive\n\n", WAIT_MS) > first);
  close_stream(&s);
}

/* A server that closes idle connections after 1 s: a quiet stream, with
 * keepalives 2 s apart, lives on past that. */
static void stream_outlives_idle_timeout(void **state) {
  er_http_opts_t o = {.listen = "127.0.0.1:0", .store_url = H.url, .timeout_s = 1};
  er_http_server_t *srv;
  assert_int_equal(er_http_server_new(&o, &srv, NULL, 0), 0);
  assert_int_equal(er_http_server_start(srv, NULL, 0), 0);
  stream_t s = open_stream(er_http_server_port(srv), "/api/v1/events?keepalive=2", NULL);
  stream_headers_ok(&s);
  int64_t t0 = (int64_t)er_now_mono_ms();
  long at = 0;
  while ((int64_t)er_now_mono_ms() - t0 < 5000) {
    at = read_until(&s, (size_t)at + 1, ": keepalive\n\n", WAIT_MS);
    assert_true(at > 0); /* never closed for being idle */
  }
  close_stream(&s);
  er_http_server_free(srv);
}

static void bad_parameters(void **state) {
  json_decref(call("GET", "/api/v1/events?task=nope", NULL, 400));
  json_decref(call("GET", "/api/v1/events?pipeline=1", NULL, 400));
  json_decref(call("GET", "/api/v1/events?keepalive=0", NULL, 400));
  json_decref(call("GET", "/api/v1/events?color=red", NULL, 400));
  json_decref(call("POST", "/api/v1/events", NULL, 405));
}

/* With a token: the stream needs it, the page's files do not; at most half
 * the connection bound are streams; stopping the server ends open streams
 * at once. */
static void token_bound_and_stop(void **state) {
  er_http_opts_t o = {.listen = "127.0.0.1:0", .store_url = H.url, .token = "s3cret",
                      .max_connections = 4};
  er_http_server_t *srv;
  assert_int_equal(er_http_server_new(&o, &srv, NULL, 0), 0);
  assert_int_equal(er_http_server_start(srv, NULL, 0), 0);
  int port = er_http_server_port(srv);
  tc_resp_t r = tc_req(port, "GET", "/api/v1/events", NULL);
  assert_int_equal(r.status, 401);
  assert_true(tc_is_error(&r));
  tc_free(&r);
  r = tc_req(port, "GET", "/", NULL);
  assert_int_equal(r.status, 200);
  tc_free(&r);
  const char *auth = "Authorization: Bearer s3cret\r\n";
  stream_t a = open_stream(port, "/api/v1/events?keepalive=300", auth);
  stream_t b = open_stream(port, "/api/v1/events?keepalive=1", auth);
  stream_headers_ok(&a);
  stream_headers_ok(&b);
  r = tc_request(port, "GET", "/api/v1/events", auth, NULL, 0);
  assert_int_equal(r.status, 503);
  assert_true(tc_is_error(&r));
  tc_free(&r);
  r = tc_request(port, "GET", "/api/v1/queues", auth, NULL, 0); /* the API still answers */
  assert_int_equal(r.status, 200);
  tc_free(&r);
  /* A stream its client closed gives its place back once the server
   * notices (at its next write: b's keepalive every second). */
  close_stream(&b);
  int64_t t0 = (int64_t)er_now_mono_ms();
  for (;;) {
    stream_t c = open_stream(port, "/api/v1/events", auth);
    assert_true(read_until(&c, 0, "\r\n\r\n", WAIT_MS) > 0);
    bool ok = strstr(c.buf, " 200 ") != NULL;
    close_stream(&c);
    if (ok) break;
    assert_true((int64_t)er_now_mono_ms() - t0 < WAIT_MS);
    usleep(200000);
  }
  /* Stop with a stream open and quiet (no keepalive due for 300 s): it
   * ends then, not at its next write. */
  int64_t start = (int64_t)er_now_mono_ms();
  er_http_server_free(srv);
  assert_true((int64_t)er_now_mono_ms() - start < WAIT_MS);
  assert_true(read_until(&a, 0, "\x01never", WAIT_MS) < 0);
  assert_true(a.eof); /* the server closed it */
  close_stream(&a);
}

/* The dashboard's files: types, ETag and 304, no token. */
static void web_assets(void **state) {
  static const char *const files[][2] = {{"/", "text/html"},
                                         {"/core.js", "text/javascript"},
                                         {"/dash.js", "text/javascript"},
                                         {"/style.css", "text/css"}};
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    tc_resp_t r = tc_req(g_port, "GET", files[i][0], NULL);
    assert_int_equal(r.status, 200);
    char *type = tc_header(&r, "Content-Type"), *etag = tc_header(&r, "ETag");
    char *cache = tc_header(&r, "Cache-Control");
    assert_non_null(type);
    assert_int_equal(strncmp(type, files[i][1], strlen(files[i][1])), 0);
    assert_non_null(etag);
    assert_string_equal(cache, "no-cache");
    assert_true(r.body_len > 100);
    char hdr[128];
    snprintf(hdr, sizeof hdr, "If-None-Match: %s\r\n", etag);
    tc_resp_t again = tc_request(g_port, "GET", files[i][0], hdr, NULL, 0);
    assert_int_equal(again.status, 304);
    assert_int_equal(again.body_len, 0);
    tc_free(&again);
    again = tc_request(g_port, "GET", files[i][0], "If-None-Match: \"other\"\r\n", NULL, 0);
    assert_int_equal(again.status, 200);
    tc_free(&again);
    free(type);
    free(etag);
    free(cache);
    tc_free(&r);
  }
  tc_resp_t r = tc_req(g_port, "GET", "/", NULL);
  assert_non_null(strstr(r.body, "<script src=\"/core.js\">"));
  assert_non_null(strstr(r.body, "<script src=\"/dash.js\">"));
  tc_free(&r);
  json_decref(call("GET", "/app.js", NULL, 404));
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(task_and_stats_events), cmocka_unit_test(failure_event),
      cmocka_unit_test(watched_task_progress), cmocka_unit_test(watched_pipeline),
      cmocka_unit_test(keepalive),             cmocka_unit_test(stream_outlives_idle_timeout),
      cmocka_unit_test(bad_parameters),
      cmocka_unit_test(token_bound_and_stop),  cmocka_unit_test(web_assets),
  };
  return fx_run(argc, argv, "http_events", tests, sizeof tests / sizeof tests[0]);
}
