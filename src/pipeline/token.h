/* Callback tokens: who may call a pipeline back. A callback URL carries an
 * HMAC-SHA256, under a secret the store keeps, over the pipeline id and the
 * URL's parameters; the callback endpoint recomputes it. Internal to the
 * library (the pipeline and HTTP layers); docs/pipeline-callbacks.md says
 * the same for users.
 *
 * Threads: every function may be called from any thread; a store handle is
 * used by one thread at a time, as always. Errors: 0 or a negative ER_E*
 * code; a store's errors pass through (its er_store_last_error has the
 * detail). */
#ifndef ER_PIPELINE_TOKEN_H
#define ER_PIPELINE_TOKEN_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errand/store.h"

/* ---- The secret ----
 *
 * 32 random bytes kept by the store as the document ("pipe.secret",
 * "callback"): {"current": HEX, "previous": HEX or null, "rotated_ms": N},
 * rotated_ms the wall time the current secret was made. Made at first use;
 * when processes race to make it, one wins and the others read and use the
 * winner's. A rotation makes a new current secret and keeps the old one as
 * previous, so a token made before one rotation still verifies, and one
 * made before two rotations no longer does. */
#define ER__PIPE_SECRET_LEN 32
#define ER__PIPE_SECRET_COLL "pipe.secret"
#define ER__PIPE_SECRET_KEY "callback"
/* How long a process keeps a secret it read before reading it again. A
 * token that fails against a kept secret is checked again against the
 * store's, so a rotation elsewhere never refuses a good token; it can only
 * make this process sign with the previous secret for this long. */
#define ER__PIPE_SECRET_TTL_MS 5000

typedef struct er__pipe_secret {
  uint8_t current[ER__PIPE_SECRET_LEN];
  uint8_t previous[ER__PIPE_SECRET_LEN];
  bool has_previous;  /* false until the first rotation */
  int64_t rotated_ms; /* when current was made */
  int64_t version;    /* the document's version */
} er__pipe_secret_t;

/* The store's secret, made if absent, from the process's cache when read
 * less than ER__PIPE_SECRET_TTL_MS ago (the cache is keyed by the store's
 * URL). *cached (may be NULL) says whether it came from the cache.
 * ER_ECORRUPT (logged at error level with the reason) for a document that
 * is not of the form above; ER_ESYS when there is no randomness. */
int er__pipe_secret_get(er_store_t *s, er__pipe_secret_t *out, bool *cached);
/* The same, always read from the store (and the cache refreshed). */
int er__pipe_secret_load(er_store_t *s, er__pipe_secret_t *out);
/* Rotates: a new current secret, the old current kept as previous (the old
 * previous is dropped), guarded by the document's version. When another
 * rotation commits between this one's read and write, that rotation stands
 * and this returns 0 without rotating again (two rotations racing make one,
 * so tokens made before them still verify). Makes the secret first when
 * there is none. */
int er__pipe_secret_rotate(er_store_t *s);
/* A secret of a worker's or server's own, given as text (at least
 * ER_SECRET_MIN_LEN bytes, from --secret or er_worker_opts_t.secret), as
 * the key tokens are made and checked under instead of the store's:
 * HMAC-SHA256 of a fixed label under the text, so any length gives a key
 * of ER__PIPE_SECRET_LEN bytes. ER_EINVAL for a NULL or short text;
 * ER_EINTERNAL when the HMAC fails. Pure. */
int er__pipe_secret_derive(const char *text, uint8_t out[ER__PIPE_SECRET_LEN]);
/* Forgets every secret the process keeps (tests; a program that wants the
 * store read at once). */
void er__pipe_secret_cache_clear(void);
/* Fault injection for tests: when set, called between reading the secret
 * and writing a new one (rotating false: none was found and one is about to
 * be made; true: a rotation is about to be written), so a test can play
 * another process that writes first. */
extern void (*er__pipe_secret_race_hook)(er_store_t *s, bool rotating);

/* ---- Tokens ----
 *
 * Parameters are a JSON object of string values (NULL: none). Names must be
 * non-empty; names and values must hold no NUL byte. The names "token" and
 * "pipeline_id" are left out of the MAC (they travel beside the parameters
 * in a URL), so the object the query parser returns can be checked as it
 * is. The MAC is over a length-prefixed encoding (docs/pipeline-callbacks.md),
 * so no two different (id, parameters) share an input: {"a": "bc"} and
 * {"ab": "c"} differ, as do {"a": "b&c=d"} and {"a": "b", "c": "d"}. */
#define ER__PIPE_TOKEN_LEN 64 /* lower-case hex digits of an HMAC-SHA256 */

/* 0, or ER_EINVAL with a one-line reason in errmsg (may be NULL) when
 * params is not an object of string values as above. With reserved true,
 * "token" and "pipeline_id" are refused too (a URL cannot carry them twice). */
int er__pipe_params_check(const json_t *params, bool reserved, char *errmsg, size_t errmsg_size);

/* The token for (pipeline_id, params) under key, into out (NUL-terminated).
 * ER_EINVAL for a NULL or empty id or bad params; ER_ENOMEM. Pure. */
int er__pipe_token_compute(const uint8_t key[ER__PIPE_SECRET_LEN], const char *pipeline_id,
                           const json_t *params, char out[ER__PIPE_TOKEN_LEN + 1]);
/* The token under the store's current secret (er__pipe_secret_get). */
int er__pipe_token_make(er_store_t *s, const char *pipeline_id, const json_t *params,
                        char out[ER__PIPE_TOKEN_LEN + 1]);
/* The same under own (ER__PIPE_SECRET_LEN bytes, er__pipe_secret_derive)
 * when own is not NULL; the store is then not asked. */
int er__pipe_token_make_with(er_store_t *s, const uint8_t *own, const char *pipeline_id,
                             const json_t *params, char out[ER__PIPE_TOKEN_LEN + 1]);
/* 0 when token is the token for (pipeline_id, params) under the store's
 * current or previous secret; ER_EAUTH when it is not (NULL, wrong length,
 * wrong digits, or made for another id or other parameters). Compared in
 * constant time (CRYPTO_memcmp). A failure against a cached secret is
 * checked once more against the store's. ER_EINVAL for bad params (an
 * HTTP layer answers it as it answers ER_EAUTH); a store's errors. */
int er__pipe_token_check(er_store_t *s, const char *pipeline_id, const json_t *params,
                         const char *token);
/* The same under own alone when own is not NULL (a server given a secret
 * of its own refuses tokens made under the store's, and the store is not
 * asked); as er__pipe_token_check when it is NULL. */
int er__pipe_token_check_with(er_store_t *s, const uint8_t *own, const char *pipeline_id,
                              const json_t *params, const char *token);

/* ---- Callback URLs ---- */

/* *out: a new string (er_free)
 *   BASE/callback?pipeline_id=ID&NAME=VALUE&...&token=TOKEN
 * with the parameters in bytewise order of their names and every name and
 * value percent-encoded (RFC 3986 unreserved bytes kept), so that
 * er__url_query_parse (core/url_query.h) gives back exactly params plus
 * pipeline_id and token. base_url is http:// or https://, printable ASCII
 * without '?' or '#'; trailing slashes are dropped. ER_EINVAL with a
 * one-line reason in errmsg (may be NULL) for a bad base, an empty id or
 * token, or bad params (reserved names refused); ER_ENOMEM. Pure. */
int er__pipe_callback_url(const char *base_url, const char *pipeline_id, const json_t *params,
                          const char *token, char **out, char *errmsg, size_t errmsg_size);
/* The same with the token made under the store's secret
 * (er__pipe_token_make). */
int er__pipe_callback_url_make(er_store_t *s, const char *base_url, const char *pipeline_id,
                               const json_t *params, char **out, char *errmsg, size_t errmsg_size);
/* The same with the token made under own when it is not NULL
 * (er__pipe_token_make_with). */
int er__pipe_callback_url_make_with(er_store_t *s, const uint8_t *own, const char *base_url,
                                    const char *pipeline_id, const json_t *params, char **out,
                                    char *errmsg, size_t errmsg_size);
/* The base URL for callback URLs: opt when set and non-empty, else
 * $ERRAND_BASE_URL when set and non-empty, else NULL (the caller says that
 * none is configured). Returns opt or the environment's string (not copied). */
const char *er__pipe_base_url(const char *opt);

#endif
