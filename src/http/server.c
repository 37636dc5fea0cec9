/* The HTTP server's life on libmicrohttpd: options, the listen address,
 * and the request's journey (raw URI, headers, body within the limit) to
 * the router. A thread per connection, so that a long poll or a callback
 * waiting for its worker holds up no other request. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "http/http_internal.h"
#include "pipeline/token.h"

#define DEFAULT_LISTEN "127.0.0.1:8080"
#define DEFAULT_MAX_BODY (1024 * 1024)
#define DEFAULT_MAX_CONNECTIONS 64
#define DEFAULT_TIMEOUT_S 30
#define DEFAULT_MAX_WAIT_MS 60000

static int fail(char *errmsg, size_t size, int rc, const char *fmt, const char *arg) {
  if (errmsg && size) snprintf(errmsg, size, fmt, arg);
  return rc;
}

/* HOST:PORT into s->addr; false when malformed. */
static bool parse_listen(er_http_server_t *s, const char *text) {
  const char *colon = strrchr(text, ':');
  if (!colon || !colon[1] || strlen(colon + 1) > 5) return false;
  char *end;
  long port = strtol(colon + 1, &end, 10);
  if (*end || port < 0 || port > 65535 || colon[1] < '0' || colon[1] > '9') return false;
  char host[64];
  size_t n = (size_t)(colon - text);
  if (n >= sizeof host) return false;
  memcpy(host, text, n);
  host[n] = 0;
  memset(&s->addr, 0, sizeof s->addr);
  if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
    struct sockaddr_in6 *a = &s->addr.v6;
    host[n - 1] = 0;
    if (inet_pton(AF_INET6, host + 1, &a->sin6_addr) != 1) return false;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)port);
    s->v6 = true;
    return true;
  }
  struct sockaddr_in *a = &s->addr.v4;
  if (!strcmp(host, "localhost") || !*host) strcpy(host, "127.0.0.1");
  if (inet_pton(AF_INET, host, &a->sin_addr) != 1) return false;
  a->sin_family = AF_INET;
  a->sin_port = htons((uint16_t)port);
  return true;
}

int er_http_server_new(const er_http_opts_t *opts, er_http_server_t **out, char *errmsg,
                       size_t errmsg_size) {
  if (!out) return ER_EINVAL;
  *out = NULL;
  er_http_opts_t o = opts ? *opts : (er_http_opts_t){0};
  if (o.secret && *o.secret && strlen(o.secret) < ER_SECRET_MIN_LEN) {
    if (errmsg && errmsg_size)
      snprintf(errmsg, errmsg_size, "the callback secret is %zu bytes: it takes at least %d",
               strlen(o.secret), ER_SECRET_MIN_LEN);
    return ER_EINVAL;
  }
  const char *listen = o.listen && *o.listen ? o.listen : DEFAULT_LISTEN;
  if (o.base_url && *o.base_url && strncmp(o.base_url, "http://", 7) &&
      strncmp(o.base_url, "https://", 8))
    return fail(errmsg, errmsg_size, ER_EINVAL, "base URL '%s' is not http:// or https://",
                o.base_url);
  er_http_server_t *s = er_calloc(1, sizeof *s);
  if (!s) return ER_ENOMEM;
  if (!parse_listen(s, listen)) {
    er_free(s);
    return fail(errmsg, errmsg_size, ER_EINVAL,
                "listen address '%s' is not HOST:PORT (127.0.0.1:8080, [::1]:0)", listen);
  }
  s->o = o;
  /* Kept as the key only, never as the caller's text. */
  s->has_secret = o.secret && *o.secret;
  if (s->has_secret && er__pipe_secret_derive(o.secret, s->secret) < 0) {
    er_free(s);
    return ER_EINTERNAL;
  }
  er__http_group_init(s);
  if (!s->o.max_body) s->o.max_body = DEFAULT_MAX_BODY;
  if (!s->o.max_connections) s->o.max_connections = DEFAULT_MAX_CONNECTIONS;
  if (!s->o.timeout_s) s->o.timeout_s = DEFAULT_TIMEOUT_S;
  if (s->o.max_wait_ms <= 0) s->o.max_wait_ms = DEFAULT_MAX_WAIT_MS;
  s->listen = er_strdup(listen);
  s->token = o.token && *o.token ? er_strdup(o.token) : NULL;
  s->base_url = o.base_url && *o.base_url ? er_strdup(o.base_url) : NULL;
  if (s->base_url) { /* status URLs are base_url + path: no doubled slash */
    size_t n = strlen(s->base_url);
    while (n > 0 && s->base_url[n - 1] == '/') s->base_url[--n] = 0;
  }
  s->o.listen = s->listen;
  s->o.token = s->token;
  s->o.base_url = s->base_url;
  s->o.store_url = s->o.secret = NULL; /* not kept: the caller's strings */
  int rc = er_client_open(o.store_url, &s->client, errmsg, errmsg_size);
  if (rc < 0) {
    er_http_server_free(s);
    return rc;
  }
  *out = s;
  return 0;
}

/* The raw URI, before libmicrohttpd decodes it: the router decodes each
 * path segment itself (a key may hold an encoded '/'), and the callback's
 * token is checked over the query exactly as sent. */
er__http_req_t *er__http_req_new(er_http_server_t *srv, const char *uri) {
  er__http_req_t *rq = er_calloc(1, sizeof *rq);
  if (!rq) return NULL;
  rq->srv = srv;
  const char *q = strchr(uri, '?');
  size_t plen = q ? (size_t)(q - uri) : strlen(uri);
  rq->path = er_malloc(plen + 1);
  rq->query = er_strdup(q ? q + 1 : "");
  if (rq->path) {
    memcpy(rq->path, uri, plen);
    rq->path[plen] = 0;
  }
  char *hash = rq->query ? strchr(rq->query, '#') : NULL;
  if (hash) *hash = 0;
  return rq;
}

static void *uri_seen(void *cls, const char *uri, struct MHD_Connection *conn) {
  return er__http_req_new(cls, uri);
}

void er__http_req_free(er__http_req_t *rq) {
  if (!rq) return;
  er_free(rq->path);
  er_free(rq->query);
  er_free(rq->body);
  for (int i = 0; i < ER__HTTP_MAX_CAPS; i++) er_free(rq->caps[i]);
  er_free(rq);
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode why) {
  er__http_req_free(*con_cls);
  *con_cls = NULL;
}

static enum MHD_Result answer(struct MHD_Connection *conn, er__http_resp_t *r) {
  struct MHD_Response *resp =
      r->stream ? MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, r->stream,
                                                    r->stream_cls, r->stream_done)
                : MHD_create_response_from_buffer(r->body_len, r->body ? r->body : "",
                                                  MHD_RESPMEM_MUST_COPY);
  if (!resp) {
    if (r->stream && r->stream_done) r->stream_done(r->stream_cls);
    er_free(r->body);
    er_free(r->owned_type);
    return MHD_NO;
  }
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                          r->content_type ? r->content_type : "application/json");
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL,
                          r->cache_control ? r->cache_control : "no-store");
  if (r->etag) MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, r->etag);
  if (r->allow[0]) MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
  enum MHD_Result ok = MHD_queue_response(conn, (unsigned)r->status, resp);
  MHD_destroy_response(resp);
  er_free(r->body);
  er_free(r->owned_type);
  return ok;
}

/* Appends a piece of the body; past the limit the rest is read and
 * dropped (body_len keeps counting) so the 413 goes out once it is all in. */
static bool body_add(er__http_req_t *rq, const char *data, size_t n) {
  size_t max = rq->srv->o.max_body;
  if (rq->body_len + n > max || rq->body_len > max) {
    rq->body_len = max + 1;
    er_free(rq->body);
    rq->body = NULL;
    return true;
  }
  char *b = er_realloc(rq->body, rq->body_len + n + 1);
  if (!b) return false;
  memcpy(b + rq->body_len, data, n);
  rq->body = b;
  rq->body_len += n;
  b[rq->body_len] = 0;
  return true;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **con_cls) {
  er__http_req_t *rq = *con_cls;
  if (!rq || !rq->path || !rq->query) return MHD_NO; /* out of memory */
  er__http_resp_t r = {0};
  if (!rq->method) { /* the headers are in; the body, if any, comes next */
    rq->method = method;
    rq->content_type = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                   MHD_HTTP_HEADER_CONTENT_TYPE);
    rq->auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    rq->if_none_match = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                    MHD_HTTP_HEADER_IF_NONE_MATCH);
    const char *len = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                  MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (len && strtoull(len, NULL, 10) > rq->srv->o.max_body) {
      er__http_error(&r, 413, "request body over %zu bytes", rq->srv->o.max_body);
      return answer(conn, &r);
    }
    return MHD_YES;
  }
  if (*upload_size) {
    bool ok = body_add(rq, upload_data, *upload_size);
    *upload_size = 0;
    return ok ? MHD_YES : MHD_NO;
  }
  if (rq->body_len > rq->srv->o.max_body)
    er__http_error(&r, 413, "request body over %zu bytes", rq->srv->o.max_body);
  else
    er__http_dispatch(rq, &r);
  return answer(conn, &r);
}

int er_http_server_start(er_http_server_t *s, char *errmsg, size_t errmsg_size) {
  if (!s) return ER_EINVAL;
  if (s->mhd || atomic_load(&s->stopping))
    return fail(errmsg, errmsg_size, ER_ESTATE, "the server is %s", s->mhd ? "started" : "stopped");
  unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                   MHD_USE_POLL | (s->v6 ? MHD_USE_IPv6 : 0);
  errno = 0;
  s->mhd = MHD_start_daemon(
      flags, 0, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&s->addr,
      MHD_OPTION_URI_LOG_CALLBACK, uri_seen, s, MHD_OPTION_NOTIFY_COMPLETED, completed, s,
      MHD_OPTION_CONNECTION_LIMIT, s->o.max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
      s->o.timeout_s, MHD_OPTION_END);
  if (!s->mhd) {
    char what[160];
    snprintf(what, sizeof what, "%s: %s", s->listen, errno ? strerror(errno) : "cannot listen");
    return fail(errmsg, errmsg_size, ER_ESYS, "cannot listen on %s", what);
  }
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
  s->port = info ? info->port : 0;
  char host[INET6_ADDRSTRLEN] = "";
  if (s->v6)
    inet_ntop(AF_INET6, &s->addr.v6.sin6_addr, host, sizeof host);
  else
    inet_ntop(AF_INET, &s->addr.v4.sin_addr, host, sizeof host);
  snprintf(s->url, sizeof s->url, s->v6 ? "http://[%s]:%d" : "http://%s:%d", host, s->port);
  return 0;
}

int er_http_server_port(const er_http_server_t *s) { return s ? s->port : 0; }

const char *er_http_server_url(const er_http_server_t *s) { return s ? s->url : ""; }

void er_http_server_stop(er_http_server_t *s) {
  if (!s) return;
  atomic_store(&s->stopping, true); /* waiting requests see it and answer */
  if (s->mhd) MHD_stop_daemon(s->mhd);
  s->mhd = NULL;
}

void er_http_server_free(er_http_server_t *s) {
  if (!s) return;
  er_http_server_stop(s);
  er_client_close(s->client);
  er_free(s->listen);
  er_free(s->token);
  er_free(s->base_url);
  er__http_group_destroy(s);
  er_free(s);
}
