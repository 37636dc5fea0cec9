/* Callback tokens and callback URLs (see token.h). The secret they are made
 * under lives in token_secret.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "core/url_query.h"
#include "pipeline/token.h"
#include "store/store_internal.h" /* er__errmsg */

/* The first part of every MAC input: a token made for anything else (or by
 * a later encoding, which would say v2) never verifies as a callback token. */
static const char DOMAIN[] = "errand callback token v1";

static bool is_reserved(const char *name) {
  return strcmp(name, "token") == 0 || strcmp(name, "pipeline_id") == 0;
}

/* Why (name, v) cannot be a parameter, into errmsg; 0 when it can. */
static int check_param(const char *name, size_t name_len, const json_t *v, bool reserved,
                       char *errmsg, size_t size) {
  if (name_len != strlen(name))
    er__errmsg(errmsg, size, "a callback parameter name holds a NUL byte");
  else if (!*name)
    er__errmsg(errmsg, size, "a callback parameter has an empty name");
  else if (reserved && is_reserved(name))
    er__errmsg(errmsg, size,
               "callback parameter name '%s' is reserved (the URL carries it already)", name);
  else if (!json_is_string(v))
    er__errmsg(errmsg, size, "callback parameter '%.64s' is not a string", name);
  else if (strlen(json_string_value(v)) != json_string_length(v))
    er__errmsg(errmsg, size, "callback parameter '%.64s' holds a NUL byte", name);
  else
    return 0;
  return ER_EINVAL;
}

int er__pipe_params_check(const json_t *params, bool reserved, char *errmsg, size_t errmsg_size) {
  if (!params) return 0;
  if (!json_is_object(params)) {
    er__errmsg(errmsg, errmsg_size, "callback parameters must be a JSON object");
    return ER_EINVAL;
  }
  json_t *obj = (json_t *)params; /* jansson's iterators take no const */
  for (void *it = json_object_iter(obj); it; it = json_object_iter_next(obj, it)) {
    const char *name = json_object_iter_key(it);
#if JANSSON_VERSION_HEX >= 0x020e00
    size_t name_len = json_object_iter_key_len(it); /* a key may hold a NUL since 2.14 */
#else
    size_t name_len = strlen(name);
#endif
    int rc = check_param(name, name_len, json_object_iter_value(it), reserved, errmsg, errmsg_size);
    if (rc) return rc;
  }
  return 0;
}

static int cmp_names(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The names of params (checked already) in bytewise order, the reserved
 * ones left out: *names a new array (er_free) of borrowed strings. */
static int sorted_names(const json_t *params, const char ***names, size_t *n) {
  *names = NULL;
  *n = 0;
  size_t size = params ? json_object_size(params) : 0;
  const char **a = er_calloc(size ? size : 1, sizeof *a);
  if (!a) return ER_ENOMEM;
  json_t *obj = (json_t *)params;
  for (void *it = size ? json_object_iter(obj) : NULL; it; it = json_object_iter_next(obj, it)) {
    const char *name = json_object_iter_key(it);
    if (!is_reserved(name)) a[(*n)++] = name;
  }
  qsort(a, *n, sizeof *a, cmp_names);
  *names = a;
  return 0;
}

/* Appends a 64-bit big-endian length, then the bytes. */
static void add_part(er__sbuf_t *b, const char *s, size_t n) {
  char len[8];
  for (int i = 0; i < 8; i++) len[i] = (char)(((uint64_t)n >> (56 - 8 * i)) & 0xff);
  er__sbuf_add(b, len, sizeof len);
  er__sbuf_add(b, s, n);
}

/* The MAC's input: DOMAIN, the id, the count of parameters, then each name
 * and value in name order, every part prefixed with its length, so the
 * input names its parts unambiguously. *msg new (er_free). */
static int canonical(const char *id, const json_t *params, char **msg, size_t *len) {
  *msg = NULL;
  if (!id || !*id) return ER_EINVAL;
  int rc = er__pipe_params_check(params, false, NULL, 0);
  const char **names = NULL;
  size_t n = 0;
  if (!rc) rc = sorted_names(params, &names, &n);
  if (rc) return rc;
  er__sbuf_t b = {0};
  add_part(&b, DOMAIN, sizeof DOMAIN - 1);
  add_part(&b, id, strlen(id));
  char count[24];
  add_part(&b, count, (size_t)snprintf(count, sizeof count, "%zu", n));
  for (size_t i = 0; i < n; i++) {
    const json_t *v = json_object_get(params, names[i]);
    add_part(&b, names[i], strlen(names[i]));
    add_part(&b, json_string_value(v), json_string_length(v));
  }
  er_free(names);
  *len = b.len;
  return er__sbuf_take(&b, msg);
}

/* HMAC-SHA256(key, msg) as lower-case hex. */
static int mac_hex(const uint8_t *key, const char *msg, size_t len,
                   char out[ER__PIPE_TOKEN_LEN + 1]) {
  static const char hex[] = "0123456789abcdef";
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int maclen = 0;
  if (!HMAC(EVP_sha256(), key, ER__PIPE_SECRET_LEN, (const unsigned char *)msg, len, mac,
            &maclen) ||
      maclen * 2 != ER__PIPE_TOKEN_LEN)
    return ER_EINTERNAL;
  for (unsigned i = 0; i < maclen; i++) {
    out[2 * i] = hex[mac[i] >> 4];
    out[2 * i + 1] = hex[mac[i] & 15];
  }
  out[ER__PIPE_TOKEN_LEN] = 0;
  return 0;
}

int er__pipe_token_compute(const uint8_t key[ER__PIPE_SECRET_LEN], const char *pipeline_id,
                           const json_t *params, char out[ER__PIPE_TOKEN_LEN + 1]) {
  char *msg;
  size_t len;
  int rc = canonical(pipeline_id, params, &msg, &len);
  if (!rc) rc = mac_hex(key, msg, len, out);
  er_free(msg);
  return rc;
}

int er__pipe_token_make(er_store_t *s, const char *pipeline_id, const json_t *params,
                        char out[ER__PIPE_TOKEN_LEN + 1]) {
  return er__pipe_token_make_with(s, NULL, pipeline_id, params, out);
}

int er__pipe_token_make_with(er_store_t *s, const uint8_t *own, const char *pipeline_id,
                             const json_t *params, char out[ER__PIPE_TOKEN_LEN + 1]) {
  if (own) return er__pipe_token_compute(own, pipeline_id, params, out);
  er__pipe_secret_t sec;
  int rc = er__pipe_secret_get(s, &sec, NULL);
  if (!rc) rc = er__pipe_token_compute(sec.current, pipeline_id, params, out);
  OPENSSL_cleanse(&sec, sizeof sec);
  return rc;
}

/* 0 when token is msg's MAC under sec's current or previous secret.
 * Compared with CRYPTO_memcmp, whose time does not depend on where the
 * bytes differ, so a forger learns nothing from how long a refusal takes;
 * the previous secret is tried even when the current one matched, so the
 * time does not say which one did. */
static int match(const er__pipe_secret_t *sec, const char *msg, size_t len, const char *token) {
  char want[ER__PIPE_TOKEN_LEN + 1];
  int rc = mac_hex(sec->current, msg, len, want);
  int same = !rc && CRYPTO_memcmp(want, token, ER__PIPE_TOKEN_LEN) == 0;
  if (!rc && sec->has_previous && !(rc = mac_hex(sec->previous, msg, len, want)))
    same |= CRYPTO_memcmp(want, token, ER__PIPE_TOKEN_LEN) == 0;
  OPENSSL_cleanse(want, sizeof want);
  return rc ? rc : same ? 0 : ER_EAUTH;
}

int er__pipe_token_check(er_store_t *s, const char *pipeline_id, const json_t *params,
                         const char *token) {
  return er__pipe_token_check_with(s, NULL, pipeline_id, params, token);
}

int er__pipe_token_check_with(er_store_t *s, const uint8_t *own, const char *pipeline_id,
                              const json_t *params, const char *token) {
  /* Nothing is made for an empty id, and a token's length is no secret. */
  if (!pipeline_id || !*pipeline_id || !token ||
      strnlen(token, ER__PIPE_TOKEN_LEN + 1) != ER__PIPE_TOKEN_LEN)
    return ER_EAUTH;
  char *msg;
  size_t len;
  int rc = canonical(pipeline_id, params, &msg, &len);
  if (rc) return rc;
  er__pipe_secret_t sec;
  bool cached = false;
  if (own) { /* one key, no previous: a rotation is a restart with another */
    memset(&sec, 0, sizeof sec);
    memcpy(sec.current, own, ER__PIPE_SECRET_LEN);
    rc = match(&sec, msg, len, token);
    OPENSSL_cleanse(&sec, sizeof sec);
    er_free(msg);
    return rc;
  }
  rc = er__pipe_secret_get(s, &sec, &cached);
  if (!rc) rc = match(&sec, msg, len, token);
  /* Another process may have rotated since this one read the secret: the
   * token may be under a current secret this process has not seen yet. */
  if (rc == ER_EAUTH && cached && !(rc = er__pipe_secret_load(s, &sec)))
    rc = match(&sec, msg, len, token);
  OPENSSL_cleanse(&sec, sizeof sec);
  er_free(msg);
  return rc;
}

/* ---- Callback URLs ---- */

static int check_base(const char *base, char *errmsg, size_t size) {
  bool ok = base && (strncasecmp(base, "http://", 7) == 0 || strncasecmp(base, "https://", 8) == 0);
  for (const char *p = base; ok && *p; p++) ok = *p > ' ' && *p < 0x7f && *p != '?' && *p != '#';
  const char *host = ok ? strstr(base, "://") + 3 : NULL;
  if (ok && (!*host || *host == '/')) ok = false;
  if (!ok)
    er__errmsg(errmsg, size, "base URL '%.200s' is not http[s]://HOST[:PORT][/PATH]",
               base ? base : "");
  return ok ? 0 : ER_EINVAL;
}

int er__pipe_callback_url(const char *base_url, const char *pipeline_id, const json_t *params,
                          const char *token, char **out, char *errmsg, size_t errmsg_size) {
  *out = NULL;
  int rc = check_base(base_url, errmsg, errmsg_size);
  if (rc) return rc;
  if (!pipeline_id || !*pipeline_id || !token || !*token) {
    er__errmsg(errmsg, errmsg_size, "a callback URL needs a pipeline id and a token");
    return ER_EINVAL;
  }
  if ((rc = er__pipe_params_check(params, true, errmsg, errmsg_size))) return rc;
  const char **names;
  size_t n;
  if ((rc = sorted_names(params, &names, &n))) return rc;
  size_t blen = strlen(base_url);
  while (blen && base_url[blen - 1] == '/') blen--;
  er__sbuf_t b = {0};
  er__sbuf_add(&b, base_url, blen);
  er__sbuf_add(&b, "/callback?pipeline_id=", 22);
  er__sbuf_add_encoded(&b, pipeline_id, strlen(pipeline_id));
  for (size_t i = 0; i < n; i++) {
    const json_t *v = json_object_get(params, names[i]);
    er__sbuf_add(&b, "&", 1);
    er__sbuf_add_encoded(&b, names[i], strlen(names[i]));
    er__sbuf_add(&b, "=", 1);
    er__sbuf_add_encoded(&b, json_string_value(v), json_string_length(v));
  }
  er__sbuf_add(&b, "&token=", 7);
  er__sbuf_add_encoded(&b, token, strlen(token));
  er_free(names);
  return er__sbuf_take(&b, out);
}

int er__pipe_callback_url_make(er_store_t *s, const char *base_url, const char *pipeline_id,
                               const json_t *params, char **out, char *errmsg, size_t errmsg_size) {
  return er__pipe_callback_url_make_with(s, NULL, base_url, pipeline_id, params, out, errmsg,
                                         errmsg_size);
}

int er__pipe_callback_url_make_with(er_store_t *s, const uint8_t *own, const char *base_url,
                                    const char *pipeline_id, const json_t *params, char **out,
                                    char *errmsg, size_t errmsg_size) {
  *out = NULL;
  /* Bad input is refused before the store is asked for its secret. */
  int rc = check_base(base_url, errmsg, errmsg_size);
  if (!rc) rc = er__pipe_params_check(params, true, errmsg, errmsg_size);
  if (rc) return rc;
  char token[ER__PIPE_TOKEN_LEN + 1];
  rc = er__pipe_token_make_with(s, own, pipeline_id, params, token);
  if (rc == ER_EINVAL)
    er__errmsg(errmsg, errmsg_size, "a callback URL needs a pipeline id");
  else if (rc == ER_ECORRUPT)
    er__errmsg(errmsg, errmsg_size, "the callback secret (document %s/%s) is malformed",
               ER__PIPE_SECRET_COLL, ER__PIPE_SECRET_KEY);
  else if (rc == ER_ESYS)
    er__errmsg(errmsg, errmsg_size, "no random bytes for the callback secret");
  else if (rc)
    er__errmsg(errmsg, errmsg_size, "callback secret: %s", er_store_last_error(s));
  return rc ? rc
            : er__pipe_callback_url(base_url, pipeline_id, params, token, out, errmsg, errmsg_size);
}

const char *er__pipe_base_url(const char *opt) {
  if (opt && *opt) return opt;
  const char *env = getenv("ERRAND_BASE_URL");
  return env && *env ? env : NULL;
}
