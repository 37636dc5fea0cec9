/* The store's version-2 calls: transition batches, documents and counters,
 * precise wake-ups and the next due time. This file checks arguments and
 * dispatches; a backend that lacks an op answers ER_ENOTSUP. */
#include <string.h>

#include "store/store_internal.h"

#define ER__COLL_MAX 64
#define ER__DOC_KEY_MAX 512
#define ER__DOC_LIST_MAX ((size_t)1 << 30)

static int bad(er_store_t *s, const char *what) {
  er__store_set_error(s, "%s", what);
  return ER_EINVAL;
}

static int lacks(er_store_t *s, const char *what) {
  er__store_set_error(s, "the %s store does not support %s", s->ops->scheme, what);
  return ER_ENOTSUP;
}

#define BEGIN_CALL(s)           \
  do {                          \
    if (!(s)) return ER_EINVAL; \
    (s)->last_error[0] = 0;     \
  } while (0)

/* A collection and key as documents and counters take them. */
static int check_name(er_store_t *s, const char *coll, const char *key) {
  if (!coll || !*coll || strlen(coll) > ER__COLL_MAX)
    return bad(s, "document: coll must be 1 to 64 bytes");
  if (!key || !*key || strlen(key) > ER__DOC_KEY_MAX)
    return bad(s, "document: key must be 1 to 512 bytes");
  return 0;
}

static int check_version_guard(er_store_t *s, int64_t v) {
  return v < ER_VERSION_ANY ? bad(s, "document: if_version must be ANY, ABSENT or >= 1") : 0;
}

static int check_mut(er_store_t *s, const er_mut_t *m) {
  switch (m->kind) {
    case ER_MUT_ENQUEUE:
      return er__store_check_record(s, m->rec);
    case ER_MUT_COMPLETE:
      return er__store_check_completion(s, &m->completion);
    case ER_MUT_TASK_GUARD:
      return m->id ? 0 : bad(s, "task guard: no id");
    case ER_MUT_DOC_PUT:
      if (!m->value) return bad(s, "document put: no value");
      /* fall through */
    case ER_MUT_DOC_DEL: {
      int rc = check_name(s, m->coll, m->key);
      return rc ? rc : check_version_guard(s, m->if_version);
    }
    case ER_MUT_DOC_MERGE: {
      if (!json_is_object(m->value)) return bad(s, "document merge: value must be an object");
      int rc = check_name(s, m->coll, m->key);
      return rc ? rc : check_version_guard(s, m->if_version);
    }
    case ER_MUT_COUNTER_ADD:
      return check_name(s, m->coll, m->key);
  }
  return bad(s, "apply: unknown mutation kind");
}

int er_store_apply(er_store_t *s, const er_mut_t *muts, size_t n, er_mut_result_t *results,
                   size_t *failed) {
  BEGIN_CALL(s);
  if (failed) *failed = n;
  if (n && !muts) return bad(s, "apply: no mutations");
  for (size_t i = 0; i < n; i++) {
    int rc = check_mut(s, &muts[i]);
    if (rc) {
      if (failed) *failed = i;
      return rc;
    }
  }
  if (results) memset(results, 0, n * sizeof *results);
  if (!n) return 0;
  if (!s->ops->apply) return lacks(s, "transition batches");
  return s->ops->apply(s, muts, n, results, failed);
}

int er_store_doc_get(er_store_t *s, const char *coll, const char *key, json_t **value,
                     int64_t *version) {
  BEGIN_CALL(s);
  if (value) *value = NULL;
  if (version) *version = 0;
  int rc = check_name(s, coll, key);
  if (rc) return rc;
  if (!s->ops->doc_get) return lacks(s, "documents");
  return s->ops->doc_get(s, coll, key, value, version);
}

int er_store_doc_list(er_store_t *s, const char *coll, const char *after, size_t limit,
                      json_t **out) {
  BEGIN_CALL(s);
  if (!out) return bad(s, "doc_list: out is required");
  *out = NULL;
  int rc = check_name(s, coll, "-");
  if (rc) return rc;
  if (!s->ops->doc_list) return lacks(s, "documents");
  if (!limit) {
    *out = json_array();
    return *out ? 0 : ER_ENOMEM;
  }
  /* Backends count in 32 bits (Redis reads a limit as a Lua number). */
  if (limit > ER__DOC_LIST_MAX) limit = ER__DOC_LIST_MAX;
  return s->ops->doc_list(s, coll, after ? after : "", limit, out);
}

int er_store_counter_get(er_store_t *s, const char *coll, const char *key, int64_t *value) {
  BEGIN_CALL(s);
  if (!value) return bad(s, "counter_get: value is required");
  *value = 0;
  int rc = check_name(s, coll, key);
  if (rc) return rc;
  if (!s->ops->counter_get) return lacks(s, "counters");
  return s->ops->counter_get(s, coll, key, value);
}

int er_store_watch(er_store_t *s, const er_watch_t *w) {
  BEGIN_CALL(s);
  if (!w || (w->nqueues && !w->queues)) return bad(s, "watch: no watch set");
  for (size_t i = 0; i < w->nqueues; i++)
    if (!w->queues[i] || !*w->queues[i]) return bad(s, "watch: an empty queue name");
  if (!s->ops->watch) return lacks(s, "precise wake-ups");
  return s->ops->watch(s, w);
}

int er_store_read_wakeups(er_store_t *s, er_wakeups_t *out) {
  BEGIN_CALL(s);
  if (!out) return bad(s, "read_wakeups: out is required");
  memset(out, 0, sizeof *out);
  if (!s->ops->read_wakeups) return lacks(s, "precise wake-ups");
  return s->ops->read_wakeups(s, out);
}

void er_wakeups_clear(er_wakeups_t *w) {
  if (!w) return;
  for (size_t i = 0; i < w->nfinished; i++) er_free(w->finished[i]);
  er_free(w->finished);
  memset(w, 0, sizeof *w);
}

int er_store_next_due(er_store_t *s, const char *const *queues, size_t nqueues,
                      int64_t *due_ms) {
  BEGIN_CALL(s);
  if (!due_ms) return bad(s, "next_due: due_ms is required");
  *due_ms = 0;
  if (nqueues && !queues) return bad(s, "next_due: no queues");
  if (!s->ops->next_due) return lacks(s, "next_due");
  return s->ops->next_due(s, queues, nqueues, due_ms);
}
