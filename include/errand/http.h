/*
 * errand/http.h: the HTTP API (docs/http-api.md), to mount in a program's
 * own process; `errand serve` is this and a signal wait.
 *
 * The server answers JSON on libmicrohttpd: tasks (send, status with a long
 * poll, revoke), polling keys, the pipelines' callback endpoint and a
 * health check. It opens a client of its own on the store it is given.
 * It also serves the dashboard (GET /, docs/dashboard.md) and its event
 * stream (GET /api/v1/events), each stream on its own connection and store
 * handle; at most half of max_connections may be streams.
 *
 * Threads: er_http_server_start runs the server on threads of its own (one
 * listening thread, one per connection, at most max_connections of them),
 * so a request that waits (?wait=S, a callback) holds up no other. Sends
 * made at the same time share one store transaction, each answered once its
 * task is committed (docs/http-api.md, Performance). The
 * server's calls (new, start, stop, free) are made from one thread at a
 * time; er_http_server_port and er_http_server_url from any thread once
 * started.
 *
 * Security: the default listen address is loopback. With a token, every
 * /api/ request needs "Authorization: Bearer TOKEN" (compared in constant
 * time); /healthz and /callback need none (a callback carries a token of
 * its own, checked against the store's secret, or against the server's own
 * secret alone when it is given one).
 * The dashboard's files (/, /core.js, /dash.js, /style.css) need none
 * either.
 *
 * Errors: 0 or a negative ER_E* code, with a one-line reason in errmsg (may
 * be NULL) of errmsg_size bytes.
 */
#ifndef ERRAND_HTTP_H
#define ERRAND_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "errand/common.h"

#ifdef __cplusplus
extern "C" {
#endif
ER_API_BEGIN

/* The server's settings; zero (or NULL) means the default. Strings are
 * copied by er_http_server_new. */
typedef struct er_http_opts {
  const char *listen;    /* "HOST:PORT": 127.0.0.1:8080; HOST an IPv4 address,
                            [IPv6] or localhost; PORT 0 picks a free one */
  const char *store_url; /* the store (NULL: $ERRAND_STORE, else sqlite:errand.db) */
  const char *token;     /* the bearer token /api/ needs (NULL or "": none) */
  const char *secret;    /* callback tokens are checked under this secret (at
                            least ER_SECRET_MIN_LEN bytes) alone: give the
                            workers the same (er_worker_opts_t.secret); tokens
                            made under the store's secret are refused (403).
                            NULL or "": the store's secret */
  const char *base_url;  /* http(s)://... the status URLs answers give are made
                            from (NULL: paths relative to the server) */
  size_t max_body;       /* request body limit in bytes: 1 MiB (413 past it) */
  unsigned max_connections; /* connections served at once: 64 */
  unsigned timeout_s;    /* an idle connection is closed after this: 30 s */
  int64_t max_wait_ms;   /* the longest ?wait= or callback wait: 60 s */
} er_http_opts_t;

typedef struct er_http_server er_http_server_t;

/* Checks opts and opens the store: *out is new, not yet listening.
 * ER_EINVAL for a malformed listen address or base URL, or a secret
 * shorter than ER_SECRET_MIN_LEN; the store's errors as er_client_open. */
int er_http_server_new(const er_http_opts_t *opts, er_http_server_t **out, char *errmsg,
                       size_t errmsg_size);
/* Binds and starts serving. ER_ESYS when the address cannot be bound (in
 * use, not local), ER_ESTATE when already started. */
int er_http_server_start(er_http_server_t *s, char *errmsg, size_t errmsg_size);
/* The bound port (the one picked when listen said :0); 0 before start. */
int er_http_server_port(const er_http_server_t *s);
/* "http://HOST:PORT", the address served (borrowed, valid until free);
 * "" before start. */
const char *er_http_server_url(const er_http_server_t *s);
/* Stops listening and ends every connection: requests that wait give up
 * within half a second, event streams end as soon; returns when all
 * threads have ended. A stopped
 * server may not be started again. Accepts a server never started. */
void er_http_server_stop(er_http_server_t *s);
/* Stops (if needed) and frees s; accepts NULL. */
void er_http_server_free(er_http_server_t *s);

ER_API_END
#ifdef __cplusplus
}
#endif
#endif
