/* Percent-encoding and query strings (see url_query.h). */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "core/url_query.h"
#include "errand/common.h"

void er__sbuf_add(er__sbuf_t *b, const char *s, size_t n) {
  if (b->err) return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + n + 1) {
      if (cap > SIZE_MAX / 2) {
        b->err = ER_ENOMEM;
        return;
      }
      cap *= 2;
    }
    char *p = er_realloc(b->p, cap);
    if (!p) {
      b->err = ER_ENOMEM;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = 0;
}

static bool unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

void er__sbuf_add_encoded(er__sbuf_t *b, const char *s, size_t n) {
  static const char hex[] = "0123456789ABCDEF";
  size_t run = 0; /* unreserved bytes not yet copied, ending at s[i] */
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (unreserved(c)) {
      run++;
      continue;
    }
    er__sbuf_add(b, s + i - run, run);
    run = 0;
    char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
    er__sbuf_add(b, esc, 3);
  }
  er__sbuf_add(b, s + n - run, run);
}

int er__sbuf_take(er__sbuf_t *b, char **out) {
  *out = NULL;
  if (!b->err && !b->p) er__sbuf_add(b, "", 0); /* an empty string is still a string */
  if (b->err) {
    er__sbuf_free(b);
    return ER_ENOMEM;
  }
  *out = b->p;
  b->p = NULL;
  b->len = b->cap = 0;
  return 0;
}

void er__sbuf_free(er__sbuf_t *b) {
  er_free(b->p);
  memset(b, 0, sizeof *b);
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Decodes p[0..n) (which starts at byte `at` of the query) into out, which
 * has room for n bytes; *outn its length. ER_EPARSE for a bad escape or a
 * NUL. */
static int decode(const char *p, size_t n, size_t at, char *out, size_t *outn, char *errmsg,
                  size_t size) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    char c = p[i];
    size_t start = i;
    if (c == '+') {
      c = ' ';
    } else if (c == '%') {
      int hi = i + 2 < n ? hexval(p[i + 1]) : -1;
      int lo = hi >= 0 ? hexval(p[i + 2]) : -1;
      if (lo < 0) {
        if (errmsg) snprintf(errmsg, size, "malformed percent escape at byte %zu", at + start);
        return ER_EPARSE;
      }
      c = (char)(hi * 16 + lo);
      i += 2;
    }
    if (c == 0) {
      if (errmsg) snprintf(errmsg, size, "a NUL byte (%%00) at byte %zu", at + start);
      return ER_EPARSE;
    }
    out[o++] = c;
  }
  *outn = o;
  return 0;
}

/* Adds one "name[=value]" part, p[0..n) at byte `at`, to obj; buf has room
 * for n bytes. */
static int add_part(json_t *obj, const char *p, size_t n, size_t at, char *buf, char *errmsg,
                    size_t size) {
  const char *eq = memchr(p, '=', n);
  size_t kn = eq ? (size_t)(eq - p) : n, klen, vlen = 0;
  int rc = decode(p, kn, at, buf, &klen, errmsg, size);
  if (rc) return rc;
  if (klen == 0) {
    if (errmsg) snprintf(errmsg, size, "a parameter without a name at byte %zu", at);
    return ER_EPARSE;
  }
  buf[klen] = 0;
  /* The value is decoded after the name's NUL, in the same buffer. */
  char *val = buf + klen + 1;
  if (eq && (rc = decode(eq + 1, n - kn - 1, at + kn + 1, val, &vlen, errmsg, size))) return rc;
  /* jansson refuses text that is not UTF-8: the name is made a string only
   * to be checked (a failed allocation reads as "not UTF-8" too, harmlessly). */
  json_t *k = json_stringn(buf, klen), *v = json_stringn(val, vlen);
  bool utf8 = k && v;
  json_decref(k);
  if (!utf8) {
    json_decref(v);
    if (errmsg) snprintf(errmsg, size, "parameter at byte %zu is not UTF-8 once decoded", at);
    return ER_EPARSE;
  }
  if (json_object_get(obj, buf)) {
    json_decref(v);
    if (errmsg) snprintf(errmsg, size, "parameter '%.64s' given twice", buf);
    return ER_EPARSE;
  }
  return json_object_set_new(obj, buf, v) ? ER_ENOMEM : 0;
}

int er__url_query_parse(const char *query, size_t len, json_t **out, char *errmsg,
                        size_t errmsg_size) {
  *out = NULL;
  if (!query && len) return ER_EINVAL;
  json_t *obj = json_object();
  char *buf = er_malloc(len + 2); /* a part's name, NUL, its value */
  int rc = obj && buf ? 0 : ER_ENOMEM;
  for (size_t at = 0; !rc && at < len;) {
    const char *amp = memchr(query + at, '&', len - at);
    size_t n = amp ? (size_t)(amp - (query + at)) : len - at;
    if (n) rc = add_part(obj, query + at, n, at, buf, errmsg, errmsg_size);
    at += n + 1;
  }
  er_free(buf);
  if (rc) {
    json_decref(obj);
    return rc;
  }
  *out = obj;
  return 0;
}
