/* The transition builder: reads through a cache, writes into it, and turns
 * what changed into one er_store_apply batch guarded by what was read. Every
 * pipeline state change goes through er__pb_commit. */
#include <string.h>
#include <time.h>

#include "pipeline/pipe_internal.h"
#include "store/store_internal.h"

#define COMMIT_TRIES 64
/* Internal: the batch lost a race and is built again (never returned). */
#define ER_EAGAIN_ 1000

void er__pb_init(er__pb_t *pb, er_store_t *s, int64_t now) {
  memset(pb, 0, sizeof *pb);
  pb->s = s;
  pb->now = now;
  pb->queue = "default";
}

void er__pb_free(er__pb_t *pb) {
  for (size_t i = 0; i < pb->ndocs; i++) {
    er_free(pb->docs[i]->coll);
    er_free(pb->docs[i]->key);
    json_decref(pb->docs[i]->value);
    er_free(pb->docs[i]);
  }
  er_free(pb->docs);
  for (size_t i = 0; i < pb->nctrs; i++) er_free(pb->ctrs[i].key);
  er_free(pb->ctrs);
  er_task_rec_free_array(pb->recs, pb->nrecs);
  memset(pb, 0, sizeof *pb);
}

/* Grows *v (elements of size sz) to hold one more. */
static int grow(void **v, size_t *cap, size_t n, size_t sz) {
  if (n < *cap) return 0;
  size_t c = *cap ? *cap * 2 : 16;
  void *nv = er_realloc(*v, c * sz);
  if (!nv) return ER_ENOMEM;
  *v = nv;
  *cap = c;
  return 0;
}

static er__pdoc_t *find_doc(er__pb_t *pb, const char *coll, const char *key) {
  for (size_t i = pb->ndocs; i-- > 0;)
    if (strcmp(pb->docs[i]->key, key) == 0 && strcmp(pb->docs[i]->coll, coll) == 0)
      return pb->docs[i];
  return NULL;
}

static er__pdoc_t *add_doc(er__pb_t *pb, const char *coll, const char *key, json_t *value,
                           int64_t version) {
  er__pdoc_t *d = NULL;
  if (grow((void **)&pb->docs, &pb->capdocs, pb->ndocs, sizeof *pb->docs) ||
      !(d = er_calloc(1, sizeof *d)) || !(d->coll = er_strdup(coll)) ||
      !(d->key = er_strdup(key))) {
    if (d) er_free(d->coll);
    er_free(d);
    json_decref(value);
    return NULL;
  }
  d->value = value;
  d->version = version;
  pb->docs[pb->ndocs++] = d;
  return d;
}

er__pdoc_t *er__pb_doc(er__pb_t *pb, const char *coll, const char *key, int *rc) {
  er__pdoc_t *d = find_doc(pb, coll, key);
  if (d) return d;
  json_t *v = NULL;
  int64_t version = 0;
  int r = er_store_doc_get(pb->s, coll, key, &v, &version);
  if (r == ER_ENOENT) {
    v = NULL;
    version = 0;
  } else if (r < 0) {
    *rc = r;
    return NULL;
  }
  d = add_doc(pb, coll, key, v, version);
  if (!d) *rc = ER_ENOMEM;
  return d;
}

int er__pb_doc_new(er__pb_t *pb, const char *coll, const char *key, json_t *value) {
  if (!value) return ER_ENOMEM;
  er__pdoc_t *d = add_doc(pb, coll, key, value, 0);
  if (!d) return ER_ENOMEM;
  d->dirty = true;
  return 0;
}

int er__pb_doc_seed(er__pb_t *pb, const char *coll, const char *key, json_t *value,
                    int64_t version) {
  er__pdoc_t *d = add_doc(pb, coll, key, value, value ? version : 0);
  if (!d) return ER_ENOMEM;
  /* Absent stays absent only under a guard: a DOC_DEL that must find none. */
  d->dirty = !value;
  return 0;
}

static er__pctr_t *find_ctr(er__pb_t *pb, const char *key) {
  for (size_t i = 0; i < pb->nctrs; i++)
    if (strcmp(pb->ctrs[i].key, key) == 0) return &pb->ctrs[i];
  return NULL;
}

static er__pctr_t *add_ctr(er__pb_t *pb, const char *key, int64_t read) {
  char *k = er_strdup(key);
  if (!k || grow((void **)&pb->ctrs, &pb->capctrs, pb->nctrs, sizeof *pb->ctrs)) {
    er_free(k);
    return NULL;
  }
  pb->ctrs[pb->nctrs] = (er__pctr_t){k, read, 0};
  return &pb->ctrs[pb->nctrs++];
}

int er__pb_counter(er__pb_t *pb, const char *key, int64_t *value) {
  er__pctr_t *c = find_ctr(pb, key);
  if (!c) {
    int64_t v = 0;
    int rc = er_store_counter_get(pb->s, ER__BARRIER_COLL, key, &v);
    if (rc < 0) return rc;
    if (!(c = add_ctr(pb, key, v))) return ER_ENOMEM;
  }
  *value = c->read + c->delta;
  return 0;
}

int er__pb_counter_add(er__pb_t *pb, const char *key, int64_t delta) {
  int64_t v;
  int rc = er__pb_counter(pb, key, &v);
  if (rc < 0) return rc;
  find_ctr(pb, key)->delta += delta;
  return 0;
}

int er__pb_counter_new(er__pb_t *pb, const char *key, int64_t value) {
  er__pctr_t *c = find_ctr(pb, key);
  if (!c && !(c = add_ctr(pb, key, 0))) return ER_ENOMEM;
  c->delta += value;
  return 0;
}

int er__pb_enqueue(er__pb_t *pb, const char *task, json_t *args, int64_t eta, const char *key) {
  er_task_rec_t *r = er_task_rec_new();
  er_id_t id;
  if (!r || !args || er_id_new(&id) < 0 ||
      grow((void **)&pb->recs, &pb->caprecs, pb->nrecs, sizeof *pb->recs)) {
    er_task_rec_free(r);
    json_decref(args);
    return ER_ENOMEM;
  }
  memcpy(r->id, id.text, sizeof r->id);
  r->task = er_strdup(task);
  r->queue = er_strdup(pb->queue);
  r->key = er_strdup(key);
  r->args = args;
  r->kwargs = json_object();
  r->created_ms = pb->now;
  r->eta_ms = eta;
  r->max_retries = -1;
  r->progress = -1;
  pb->recs[pb->nrecs++] = r;
  return (r->task && r->queue && r->key && r->kwargs) ? 0 : ER_ENOMEM;
}

int er__pb_apply(er__pb_t *pb, bool *fenced) {
  *fenced = false;
  size_t n = (pb->guard_id ? 1 : 0) + pb->ndocs + pb->nctrs + pb->nrecs, k = 0;
  er_mut_t *m = er_calloc(n ? n : 1, sizeof *m);
  if (!m) return ER_ENOMEM;
  if (pb->guard_id)
    m[k++] = (er_mut_t){.kind = ER_MUT_TASK_GUARD, .id = pb->guard_id,
                        .state = ER_STATE_STARTED, .attempt = pb->guard_attempt};
  for (size_t i = 0; i < pb->ndocs; i++) {
    er__pdoc_t *d = pb->docs[i];
    if (!d->dirty) continue;
    m[k++] = (er_mut_t){.kind = d->value ? ER_MUT_DOC_PUT : ER_MUT_DOC_DEL, .coll = d->coll,
                        .key = d->key, .value = d->value,
                        .if_version = d->version ? d->version : ER_VERSION_ABSENT};
  }
  for (size_t i = 0; i < pb->nctrs; i++) {
    if (!pb->ctrs[i].delta) continue;
    m[k++] = (er_mut_t){.kind = ER_MUT_COUNTER_ADD, .coll = ER__BARRIER_COLL,
                        .key = pb->ctrs[i].key, .delta = pb->ctrs[i].delta,
                        .if_value = pb->ctrs[i].read};
  }
  for (size_t i = 0; i < pb->nrecs; i++)
    m[k++] = (er_mut_t){.kind = ER_MUT_ENQUEUE, .rec = pb->recs[i], .flags = ER_ENQ_IF_ABSENT};
  size_t failed = k;
  int rc = er_store_apply(pb->s, m, k, NULL, &failed);
  if (rc < 0 && pb->guard_id && failed == 0) *fenced = true;
  er_free(m);
  return rc;
}

/* A short random pause before rebuilding, so that writers racing for the
 * same barrier spread out instead of colliding again. */
static void pause_a_little(int tries) {
  unsigned char b = 0;
  er_id_t id;
  if (er_id_new(&id) == 0) b = (unsigned char)id.text[ER_ID_LEN - 1];
  long us = (long)(b % 16 + 1) * 50L * (tries < 10 ? tries + 1 : 10);
  struct timespec ts = {0, us * 1000L};
  nanosleep(&ts, NULL);
}

int er__pb_commit(er_store_t *s, const er_task_rec_t *guard, const char *queue,
                  er__pb_build_fn build, void *ud, bool *applied) {
  if (applied) *applied = false;
  for (int tries = 0; tries < COMMIT_TRIES; tries++) {
    er__pb_t pb;
    er__pb_init(&pb, s, er__pipe_clock());
    if (queue) pb.queue = queue;
    if (guard) {
      pb.guard_id = guard->id;
      pb.guard_attempt = guard->attempt;
    }
    int rc = build(&pb, ud);
    bool fenced = false;
    if (rc == 0) rc = er__pipe_index_ended(&pb); /* a root it ends: in the same batch */
    if (rc == 0) {
      rc = er__pb_apply(&pb, &fenced);
      /* Only a write that lost a race is worth building again. */
      if (rc == ER_ESTATE || rc == ER_EEXIST || rc == ER_ENOENT) rc = fenced ? 0 : ER_EAGAIN_;
      else if (rc == 0 && applied) *applied = true;
    } else if (rc == ER__PB_NOOP) {
      rc = 0;
    }
    er__pb_free(&pb);
    if (rc != ER_EAGAIN_) return rc;
    pause_a_little(tries);
  }
  er__store_set_error(s, "pipeline: %d attempts lost a race for the same records", COMMIT_TRIES);
  return ER_EBUSY;
}
