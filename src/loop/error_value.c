/* Error values: a code, a message and the chain of tasklets the error passed
 * through. Immutable once made, so futures on different loops may share one;
 * adding a frame makes a copy. */
#include <stdio.h>
#include <string.h>

#include "loop/loop_internal.h"

er_error_t *er__error_vnew(int code, const char *fmt, va_list ap) {
  er_error_t *e = er_calloc(1, sizeof *e);
  if (!e) return NULL;
  atomic_init(&e->refs, 1);
  e->code = code;
  if (fmt) {
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    e->message = er_malloc((size_t)(n > 0 ? n : 0) + 1);
    if (e->message) vsnprintf(e->message, (size_t)(n > 0 ? n : 0) + 1, fmt, ap);
  } else {
    e->message = er_strdup(er_strerror(code));
  }
  if (!e->message) {
    er_free(e);
    return NULL;
  }
  return e;
}

er_error_t *er_error_new(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  er_error_t *e = er__error_vnew(code, fmt, ap);
  va_end(ap);
  return e;
}

er_error_t *er__error_with_frame(const er_error_t *err, const char *name) {
  er_error_t *e = er_error_new(err->code, "%s", err->message);
  if (!e) return NULL;
  e->chain = er_calloc(err->chain_len + 1, sizeof *e->chain);
  if (!e->chain) goto fail;
  for (size_t i = 0; i < err->chain_len; i++) {
    if (!(e->chain[i] = er_strdup(err->chain[i]))) goto fail;
    e->chain_len++;
  }
  if (!(e->chain[e->chain_len] = er_strdup(name ? name : "tasklet"))) goto fail;
  e->chain_len++;
  return e;
fail:
  er_error_unref(e);
  return NULL;
}

er_error_t *er_error_ref(er_error_t *err) {
  if (err) atomic_fetch_add(&err->refs, 1);
  return err;
}

void er_error_unref(er_error_t *err) {
  if (!err || atomic_fetch_sub(&err->refs, 1) != 1) return;
  for (size_t i = 0; i < err->chain_len; i++) er_free(err->chain[i]);
  er_free(err->chain);
  er_free(err->message);
  er_free(err);
}

int er_error_code(const er_error_t *err) { return err ? err->code : 0; }
const char *er_error_message(const er_error_t *err) { return err ? err->message : ""; }
size_t er_error_chain_len(const er_error_t *err) { return err ? err->chain_len : 0; }

const char *er_error_chain_at(const er_error_t *err, size_t i) {
  return err && i < err->chain_len ? err->chain[i] : NULL;
}

char *er_error_format(const er_error_t *err, char *buf, size_t size) {
  if (!size) return buf;
  size_t n = (size_t)snprintf(buf, size, "%s: %s", er_err_name(err->code), err->message);
  for (size_t i = 0; i < err->chain_len && n < size; i++)
    n += (size_t)snprintf(buf + n, size - n, "%s%s", i ? " <- " : " (in ", err->chain[i]);
  if (err->chain_len && n < size) snprintf(buf + n, size - n, ")");
  return buf;
}
