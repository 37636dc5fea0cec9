/* Percent-encoding (RFC 3986) and query strings
 * (application/x-www-form-urlencoded): what callback URLs are made of, and
 * what the HTTP layer reads back from a request's query or form body.
 * Internal to the library. */
#ifndef ER_CORE_URL_QUERY_H
#define ER_CORE_URL_QUERY_H

#include <jansson.h>
#include <stddef.h>

/* A growing NUL-terminated string. The first failed append sets err to
 * ER_ENOMEM and makes every later append a no-op, so a builder checks once,
 * at the end (er__sbuf_take). Zero-initialise; er__sbuf_take or
 * er__sbuf_free releases it. */
typedef struct er__sbuf {
  char *p;
  size_t len, cap;
  int err;
} er__sbuf_t;

/* Appends s[0..n) as it is. */
void er__sbuf_add(er__sbuf_t *b, const char *s, size_t n);
/* Appends s[0..n) percent-encoded: every byte outside RFC 3986's unreserved
 * set (ALPHA DIGIT - . _ ~) becomes %XX in upper-case hex, so the result is
 * safe anywhere in a URL's path or query ('+', '&', '=', '/' included). */
void er__sbuf_add_encoded(er__sbuf_t *b, const char *s, size_t n);
/* Hands the string over: *out new (er_free), or NULL with ER_ENOMEM when an
 * append failed (the buffer is released either way). */
int er__sbuf_take(er__sbuf_t *b, char **out);
void er__sbuf_free(er__sbuf_t *b);

/* Parses query[0..len) ("k=v&k2=v2", no leading '?', no '#...') into *out,
 * a new JSON object of string values. Each name and value is
 * percent-decoded, '+' meaning a space (form encoding; a literal '+' comes
 * as %2B). A part without '=' has the value ""; empty parts ("a=1&&b=2", a
 * trailing '&') are skipped; a value may hold a raw '='. Refused with
 * ER_EPARSE and a one-line reason in errmsg (may be NULL): a '%' not
 * followed by two hex digits, a decoded NUL byte, a name or value that is
 * not UTF-8 once decoded, an empty name, and a name given twice (refused
 * rather than "last wins", so that no two readers of one URL can see
 * different values). ER_ENOMEM. Pure and thread-safe. */
int er__url_query_parse(const char *query, size_t len, json_t **out, char *errmsg,
                        size_t errmsg_size);

#endif
