/* What store.c shares with the backends: the registry entry each backend
 * exports, URL option parsing and error helpers. Private to src/store. */
#ifndef ER_STORE_INTERNAL_H
#define ER_STORE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errand/store.h"

/* One backend in the registry (store.c): its vtable and the URL query options
 * it understands besides the common ones (tombstone_ms, max_payload,
 * pipe_retention_ms). An option no backend understands is refused, so a typo
 * is never ignored. */
typedef struct er__store_backend {
  const er_store_ops_t *ops;
  const char *const *options; /* NULL-terminated */
} er__store_backend_t;

extern const er__store_backend_t er__sqlite_backend;
/* The redis backend (src/store/redis*.c) adds itself here and in store.c's
 * registry under ER_HAVE_REDIS. */
#ifdef ER_HAVE_REDIS
extern const er__store_backend_t er__redis_backend;
#endif

/* When a record's result_ttl_ms is 0: keep a finished task's result a day. */
#define ER__RESULT_TTL_DEFAULT_MS (24LL * 3600 * 1000)
#define ER__TOMBSTONE_DEFAULT_MS (24LL * 3600 * 1000)
#define ER__MAX_PAYLOAD_DEFAULT ((size_t)1 << 20)
/* How long a finished pipeline root is kept before the cleanup deletes it. */
#define ER__PIPE_RETENTION_DEFAULT_MS (7LL * 24 * 3600 * 1000)
/* The most tasks one reserve call takes, whatever req->max asks. */
#define ER__RESERVE_MAX 4096

/* The task states as SQL text, for the statements' static strings (Lua gets
 * its constants generated from the enum: src/store/redis_lua.c). */
#define ER__SQL_PENDING "0"
#define ER__SQL_STARTED "1"
#define ER__SQL_RETRY "2"
#define ER__SQL_SUCCESS "3"
#define ER__SQL_FAILURE "4"
#define ER__SQL_REVOKED "5"
_Static_assert(ER_STATE_PENDING == 0 && ER_STATE_STARTED == 1 && ER_STATE_RETRY == 2 &&
                   ER_STATE_SUCCESS == 3 && ER_STATE_FAILURE == 4 && ER_STATE_REVOKED == 5,
               "the ER__SQL_* texts follow er_task_state_t");

/* Counters stay strictly within +-this (Redis's Lua reads them as doubles,
 * exact only near here and below; lua/docs.lua says the same number). */
#define ER__COUNTER_LIMIT 9200000000000000000LL

/* Writes a one-line message into s->last_error. */
void er__store_set_error(er_store_t *s, const char *fmt, ...) ER_PRINTF(2, 3);
/* Writes a one-line message into errmsg (may be NULL). */
void er__errmsg(char *errmsg, size_t size, const char *fmt, ...) ER_PRINTF(3, 4);

/* The raw value of query option name in url ("...?a=1&b=2"), as a pointer into
 * url with its length in *len, or NULL when absent. */
const char *er__store_url_opt(const char *url, const char *name, size_t *len);
/* Option name as an integer in [min, max], def when absent. ER_EINVAL (with
 * errmsg) when malformed or out of range. */
int er__store_url_int(const char *url, const char *name, int64_t def, int64_t min, int64_t max,
                      int64_t *out, char *errmsg, size_t size);

/* Argument checks shared by the single calls and the batch (store_batch.c):
 * 0, or ER_EINVAL / ER_ETOOBIG with the reason in s->last_error. */
int er__store_check_record(er_store_t *s, const er_task_rec_t *r);
int er__store_check_completion(er_store_t *s, const er_completion_t *c);

/* A new error object {"code": code, "name": "E...", "message": message}. */
json_t *er__store_error_json(int code, const char *message);
/* src/celery/client.c: for a URL with ?protocol=celery, *out is s wrapped so
 * that enqueue, get and revoke speak Celery (s is then the wrapper's; on an
 * error it is closed); without it, *out is s. ER_EINVAL for another
 * protocol, or celery on a store that is not redis://. */
int er__celery_client_wrap(const char *url, er_store_t *s, er_store_t **out, char *errmsg,
                           size_t size);
/* For stats: a new object with every state's name at 0, and adding n to one. */
json_t *er__stats_zero_counts(void);
void er__stats_add(json_t *counts, const char *state, json_int_t n);

/* Bytes of v as compact JSON (0 for NULL). */
size_t er__json_size(const json_t *v);

/* ---- Records that cannot be decoded (store_rec.c) ----
 * A reader notes the first reason a stored record is unusable ("args: ...")
 * in an er_rec_why_t and goes on reading: a reserve then fails that task
 * alone (FAILURE, with er__rec_poison_error) and a get shows the rest. */
typedef struct er_rec_why {
  char why[160]; /* "" while the record is fine */
} er_rec_why_t;
/* Notes "field: fmt..." unless a reason is noted already. */
void er__rec_bad(er_rec_why_t *w, const char *field, const char *fmt, ...) ER_PRINTF(3, 4);
/* s[0..n) as JSON (a new value), or NULL with the parser's reason noted. */
json_t *er__rec_json(const char *s, size_t n, const char *field, er_rec_why_t *w);
/* s[0..n) as a decimal integer into *out; false (noted) when it is not one. */
bool er__rec_int(const char *s, size_t n, const char *field, int64_t *out, er_rec_why_t *w);
/* Notes what a worker cannot run: no task name or queue, an unknown state,
 * args not an array, kwargs or context not an object. */
void er__rec_check(er_task_rec_t *r, er_rec_why_t *w);
/* A new error object: ER_ECORRUPT, "task record cannot be decoded: <why>"
 * (w NULL: without ": <why>", for Lua to complete: finish.lua). */
json_t *er__rec_poison_error(const er_rec_why_t *w);
/* For a get of an unusable record: its error becomes the reason, unless it
 * finished with an error of its own (the reserve that failed it wrote it). */
void er__rec_lenient(er_task_rec_t *r, const er_rec_why_t *w);

#endif
