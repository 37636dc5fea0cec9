/* A tiny blocking HTTP/1.1 client for the tests: one request per
 * connection (Connection: close), the whole answer read to EOF. */
#ifndef ER_TEST_HTTP_CLIENT_H
#define ER_TEST_HTTP_CLIENT_H

#include <jansson.h>
#include <stddef.h>

typedef struct tc_resp {
  int status;    /* 0 when the exchange failed */
  char *headers; /* the header lines, as received */
  char *body;    /* NUL-terminated */
  size_t body_len;
} tc_resp_t;

/* Sends METHOD path to 127.0.0.1:port with body (may be NULL) of body_len
 * bytes and extra header lines (may be NULL; each ending in \r\n). */
tc_resp_t tc_request(int port, const char *method, const char *path, const char *extra_headers,
                     const char *body, size_t body_len);
/* The same with a NUL-terminated body. */
tc_resp_t tc_req(int port, const char *method, const char *path, const char *body);
/* The body as JSON (new), or NULL. */
json_t *tc_json(const tc_resp_t *r);
/* The value of header name (case-insensitive) as a new string, or NULL. */
char *tc_header(const tc_resp_t *r, const char *name);
/* Whether the body is {"error": {"status": r->status, "message": "..."}}. */
int tc_is_error(const tc_resp_t *r);
void tc_free(tc_resp_t *r);
/* A connected socket to 127.0.0.1:port, or -1. */
int tc_dial(int port);

#endif
