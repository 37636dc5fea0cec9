/* The HTTP server's private parts: server.c (life, libmicrohttpd),
 * router.c (routes, auth, dispatch), reply.c (answers and request bodies),
 * routes_tasks.c, routes_pipelines.c, routes_admin.c, routes_openapi.c,
 * routes_callback.c, routes_events.c and routes_web.c (the handlers). A route module adds its entries to the
 * table in router.c and to openapi.json. */
#ifndef ER_HTTP_INTERNAL_H
#define ER_HTTP_INTERNAL_H

#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "errand/client.h"
#include "errand/http.h"

#define ER__HTTP_MAX_CAPS 2 /* {id} parameters in one route */

typedef struct er__http_send er__http_send_t; /* one send waiting (send_group.c) */

/* What the group commit has done (send_group.c), for tests. */
typedef struct er__http_send_stats {
  uint64_t writes; /* batches written, a send alone counting as one */
  uint64_t sends;  /* sends in them */
  size_t largest;  /* the most sends in one batch */
  uint64_t alone;  /* sends written again alone, their batch refused */
  size_t waiting;  /* sends in the list now, not yet taken by a leader */
} er__http_send_stats_t;

struct er_http_server {
  er_http_opts_t o; /* strings below are copies */
  char *listen, *token, *base_url;
  uint8_t secret[32]; /* o.secret as a key (er__pipe_secret_derive) */
  bool has_secret;    /* false: tokens are checked under the store's secret */
  er_client_t *client;
  struct MHD_Daemon *mhd;
  atomic_bool stopping;
  int port;
  char url[96];
  atomic_int streams; /* event streams open (routes_events.c) */
  bool v6;
  /* The sends waiting for the next group commit (send_group.c). */
  pthread_mutex_t send_lock;
  er__http_send_t *send_head, *send_tail;
  bool send_busy; /* a thread is writing a batch */
  er__http_send_stats_t send_stats;
  union {
    struct sockaddr_in v4;
    struct sockaddr_in6 v6;
  } addr; /* the address to bind */
};

/* One request, as the handlers see it. */
typedef struct er__http_req {
  er_http_server_t *srv;
  const char *method;
  char *path;            /* raw, without the query */
  char *query;           /* raw, after '?' ("" when none) */
  const char *content_type; /* the header's value, or NULL */
  const char *auth;      /* Authorization's value, or NULL */
  const char *if_none_match; /* If-None-Match's value, or NULL */
  char *body;            /* NUL-terminated */
  size_t body_len;
  char *caps[ER__HTTP_MAX_CAPS]; /* decoded {id} parameters */
} er__http_req_t;

/* One answer: status and a body (new, er_free'd by the server). */
typedef struct er__http_resp {
  int status;
  char *body;
  size_t body_len;
  const char *content_type; /* static, or owned_type */
  char *owned_type;
  char allow[64];           /* the Allow header of a 405 */
  const char *etag;          /* static or owned by the handler's module; NULL: none */
  const char *cache_control; /* static; NULL: no-store */
  /* A body of unknown length written as it comes (an event stream) instead
   * of body: libmicrohttpd's content reader, called on the connection's
   * thread, returning bytes written, or -1 at the end; stream_done frees
   * stream_cls once the connection is over (also when never read). */
  ssize_t (*stream)(void *cls, uint64_t pos, char *buf, size_t max);
  void (*stream_done)(void *cls);
  void *stream_cls;
} er__http_resp_t;

/* A request for the raw URI ("/path?query"), path and query split (NULL
 * when out of memory; its path or query NULL too then); the caller sets
 * method, headers and body (an er_malloc'd buffer the request then owns).
 * er__http_req_free releases it (accepts NULL). */
er__http_req_t *er__http_req_new(er_http_server_t *srv, const char *uri);
void er__http_req_free(er__http_req_t *rq);

typedef void (*er__http_handler_fn)(er__http_req_t *rq, er__http_resp_t *out);

/* Routes, auth and dispatch: fills out for rq (router.c). */
void er__http_dispatch(er__http_req_t *rq, er__http_resp_t *out);
/* Percent-decodes s[0..n) (no '+' rule: a path) into a new string; NULL for
 * a bad escape or a decoded NUL byte. */
char *er__http_pct_decode(const char *s, size_t n);

/* ---- Answers (reply.c) ---- */
/* out gets j (stolen) as compact JSON with status. */
void er__http_json(er__http_resp_t *out, int status, json_t *j);
/* out gets {"error": {"status": status, "message": the text}}. */
void er__http_error(er__http_resp_t *out, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The HTTP status for a library error code (ER_ENOENT 404, ...). */
int er__http_status_for(int rc);
/* o gets "status_url": BASE/api/v1/KIND/ID (KIND "tasks" or "pipelines";
 * BASE the server's base URL, or none). */
void er__http_status_url(er__http_req_t *rq, const char *kind, json_t *o, const char *id);
/* out gets the client's last error with the status for rc. */
void er__http_client_error(er__http_req_t *rq, er__http_resp_t *out, int rc);
/* rq's body as a JSON object (new), or NULL with a 400 in out: malformed
 * JSON (jansson's text, line, column and position) or not an object. */
json_t *er__http_body_object(er__http_req_t *rq, er__http_resp_t *out);
/* The query's parameters as an object of strings (new), or NULL with a 400
 * in out. */
json_t *er__http_query(er__http_req_t *rq, er__http_resp_t *out);
/* Waits up to ms (capped by max_wait_ms) for task id to finish, giving up
 * early when the server stops. */
void er__http_wait_done(er_http_server_t *srv, const char *id, int64_t ms);

/* ---- Sends, committed in groups (send_group.c) ---- */
void er__http_group_init(er_http_server_t *s);
void er__http_group_destroy(er_http_server_t *s);
/* er_send_ex on srv's client, in one store transaction with the sends
 * other threads make meanwhile; returns once this task is committed (or
 * refused). Each send keeps its own answer: 0 with *id and *existed (either
 * may be NULL), or the negative code with the client's one-line reason in
 * msg (may be NULL) of msg_size bytes, as er_send_ex alone would give. The
 * strings and values are borrowed for the call. bytes is the request's size
 * (its body's length), which bounds the transaction it joins. Any thread. */
int er__http_send(er_http_server_t *srv, const char *task, json_t *args, json_t *kwargs,
                  const er_send_opts_t *opts, size_t bytes, er_id_t *id, bool *existed,
                  char *msg, size_t msg_size);
void er__http_send_stats(er_http_server_t *s, er__http_send_stats_t *out);

/* ---- Handlers ---- */
void er__http_task_post(er__http_req_t *rq, er__http_resp_t *out);
void er__http_task_get(er__http_req_t *rq, er__http_resp_t *out);
void er__http_task_list(er__http_req_t *rq, er__http_resp_t *out);
void er__http_metrics(er__http_req_t *rq, er__http_resp_t *out);
void er__http_task_delete(er__http_req_t *rq, er__http_resp_t *out);
void er__http_key_put(er__http_req_t *rq, er__http_resp_t *out);
void er__http_key_get(er__http_req_t *rq, er__http_resp_t *out);
void er__http_healthz(er__http_req_t *rq, er__http_resp_t *out);
void er__http_callback(er__http_req_t *rq, er__http_resp_t *out);
void er__http_pipeline_post(er__http_req_t *rq, er__http_resp_t *out);
void er__http_pipeline_get(er__http_req_t *rq, er__http_resp_t *out);
void er__http_pipeline_list(er__http_req_t *rq, er__http_resp_t *out);
void er__http_pipeline_abort(er__http_req_t *rq, er__http_resp_t *out);
void er__http_queues(er__http_req_t *rq, er__http_resp_t *out);
void er__http_workers(er__http_req_t *rq, er__http_resp_t *out);
void er__http_openapi(er__http_req_t *rq, er__http_resp_t *out);
void er__http_events(er__http_req_t *rq, er__http_resp_t *out);
void er__http_web(er__http_req_t *rq, er__http_resp_t *out);

#endif
