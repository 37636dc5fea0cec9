/* Sending: a send's options become a store record, and a batch becomes one
 * transaction whose requests each keep their own key rule. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "queue/client_internal.h"
#include "queue/send_check.h"

/* Builds the record for one send (request i of a batch, or SIZE_MAX for a
 * single send); *rec is new. Nothing is built that the store could not
 * encode or a worker read back (send_check.c). */
static int make_rec(er_client_t *c, size_t i, const char *task, json_t *args, json_t *kwargs,
                    const er_send_opts_t *o, int64_t now, er_task_rec_t **rec) {
  static const er_send_opts_t none;
  if (!o) o = &none;
  char why[384];
  int rc = er__send_check(task, args, kwargs, o, now, er_store_max_payload(c->store), why,
                          sizeof why);
  if (rc == ER_ENOMEM) return rc;
  if (rc < 0 && i == SIZE_MAX) return er__client_fail(c, rc, "send: %s", why);
  if (rc < 0) return er__client_fail(c, rc, "send: request %zu of the batch: %s", i, why);
  er_task_rec_t *r = er_task_rec_new();
  if (!r) return ER_ENOMEM;
  if (er_id_new((er_id_t *)r->id) < 0) {
    er_task_rec_free(r);
    return er__client_fail(c, ER_ESYS, "send: no randomness for an id");
  }
  const er_task_def_t *def = er_task_lookup(task);
  r->task = er_strdup(task);
  r->queue = er_strdup(o->queue ? o->queue : def && def->queue ? def->queue : "default");
  r->priority = o->priority;
  r->args = args ? json_incref(args) : json_array();
  r->kwargs = kwargs ? json_incref(kwargs) : json_object();
  r->context = o->context ? json_incref(o->context) : NULL;
  r->name = o->name ? er_strdup(o->name) : NULL;
  r->key = o->key ? er_strdup(o->key) : NULL;
  r->created_ms = now;
  r->eta_ms = o->eta_ms > 0 ? o->eta_ms : now + o->countdown_ms;
  r->expires_ms = o->expires_ms > 0 ? now + o->expires_ms : 0;
  /* Expiring at or before its eta, the task can never start: due at its
   * expiry, the first reserve then ends it REVOKED rather than leaving it
   * scheduled until an eta that can only expire it. */
  if (r->expires_ms && r->expires_ms <= r->eta_ms) r->eta_ms = r->expires_ms;
  /* The options' zero is "unset" (zero-initialised structs); the record's
   * -1 is the task's default and its 0 means no retries. */
  r->max_retries = o->max_retries == ER_RETRIES_NONE ? 0 : o->max_retries > 0 ? o->max_retries : -1;
  r->soft_limit_ms = o->soft_limit_ms;
  r->hard_limit_ms = o->hard_limit_ms;
  r->result_ttl_ms = o->result_ttl_ms ? o->result_ttl_ms : def ? def->result_ttl_ms : 0;
  r->ignore_result = o->ignore_result || (def && def->ignore_result);
  r->progress = -1;
  if (!r->task || !r->queue || !r->args || !r->kwargs || (o->name && !r->name) ||
      (o->key && !r->key)) {
    er_task_rec_free(r);
    return ER_ENOMEM;
  }
  *rec = r;
  return 0;
}

static int enqueue(er_client_t *c, er_task_rec_t **recs, size_t n, int flags, bool *existing) {
  pthread_mutex_lock(&c->lock);
  int rc = er_store_enqueue(c->store, recs, n, flags, existing);
  if (rc < 0) er__client_store_fail(c, c->store, rc, "send");
  pthread_mutex_unlock(&c->lock);
  return rc;
}

int er_send_ex(er_client_t *c, const char *task, json_t *args, json_t *kwargs,
               const er_send_opts_t *opts, er_id_t *id, bool *existed) {
  er_task_rec_t *r;
  int rc = make_rec(c, SIZE_MAX, task, args, kwargs, opts, er_now_wall_ms(), &r);
  if (rc < 0) return rc;
  bool ex = false;
  rc = enqueue(c, &r, 1, opts && opts->if_absent ? ER_ENQ_IF_ABSENT : 0, &ex);
  if (rc == 0) {
    if (id) memcpy(id->text, r->id, sizeof id->text);
    if (existed) *existed = ex;
  }
  er_task_rec_free(r);
  return rc;
}

int er_send(er_client_t *c, const char *task, json_t *args, json_t *kwargs,
            const er_send_opts_t *opts, er_id_t *id) {
  return er_send_ex(c, task, args, kwargs, opts, id, NULL);
}

int er_fire(er_client_t *c, const char *task, json_t *args, json_t *kwargs,
            const er_send_opts_t *opts) {
  er_send_opts_t o = opts ? *opts : (er_send_opts_t){0};
  o.ignore_result = true;
  return er_send(c, task, args, kwargs, &o, NULL);
}

static bool wants_if_absent(const er_send_req_t *q) { return q->opts && q->opts->if_absent; }

/* One ENQUEUE mutation per request, each with its own key rule, in one
 * transition batch. ER_ENOTSUP (nothing written) when the store has none. */
static int apply_batch(er_client_t *c, const er_send_req_t *reqs, er_task_rec_t **recs,
                       size_t n, bool *existing) {
  er_mut_t *muts = er_calloc(n, sizeof *muts);
  er_mut_result_t *res = er_calloc(n, sizeof *res);
  int rc = muts && res ? 0 : ER_ENOMEM;
  for (size_t i = 0; i < n && rc == 0; i++) {
    muts[i].kind = ER_MUT_ENQUEUE;
    muts[i].rec = recs[i];
    muts[i].flags = wants_if_absent(&reqs[i]) ? ER_ENQ_IF_ABSENT : 0;
  }
  if (rc == 0) {
    size_t failed = n;
    pthread_mutex_lock(&c->lock);
    rc = er_store_apply(c->store, muts, n, res, &failed);
    if (rc < 0 && rc != ER_ENOTSUP) {
      char what[64];
      snprintf(what, sizeof what, failed < n ? "send: request %zu of the batch" : "send",
               failed);
      er__client_store_fail(c, c->store, rc, what);
    }
    pthread_mutex_unlock(&c->lock);
  }
  for (size_t i = 0; rc == 0 && i < n; i++) existing[i] = res[i].existing;
  er_free(muts);
  er_free(res);
  return rc;
}

/* Without transition batches the store's enqueue takes one key rule for the
 * whole batch. That is right only when every keyed request asks for the same
 * rule (the rule never touches a request without a key); anything else is
 * refused rather than de-duplicating a request that asked to be added. */
static int enqueue_batch(er_client_t *c, const er_send_req_t *reqs, er_task_rec_t **recs,
                         size_t n, bool *existing) {
  size_t absent = 0, keyed = 0;
  for (size_t i = 0; i < n; i++) {
    absent += wants_if_absent(&reqs[i]);
    keyed += recs[i]->key != NULL;
  }
  if (absent && absent < keyed)
    return er__client_fail(c, ER_ENOTSUP,
                           "send: the %s store cannot mix if_absent and plain sends of keyed "
                           "tasks in one batch; send them in two batches",
                           c->store->ops->scheme);
  return enqueue(c, recs, n, absent ? ER_ENQ_IF_ABSENT : 0, existing);
}

int er_send_batch_ex(er_client_t *c, const er_send_req_t *reqs, size_t n, er_id_t *ids,
                     bool *existed) {
  if (n == 0) return 0;
  if (!reqs) return er__client_fail(c, ER_EINVAL, "send: no requests");
  er_task_rec_t **recs = er_calloc(n, sizeof *recs);
  bool *ex = er_calloc(n, sizeof *ex);
  int rc = recs && ex ? 0 : ER_ENOMEM;
  int64_t now = er_now_wall_ms();
  for (size_t i = 0; i < n && rc == 0; i++)
    rc = make_rec(c, i, reqs[i].task, reqs[i].args, reqs[i].kwargs, reqs[i].opts, now, &recs[i]);
  if (rc == 0) rc = apply_batch(c, reqs, recs, n, ex);
  if (rc == ER_ENOTSUP) rc = enqueue_batch(c, reqs, recs, n, ex);
  for (size_t i = 0; recs && i < n; i++) {
    if (rc == 0 && ids) memcpy(ids[i].text, recs[i]->id, sizeof ids[i].text);
    if (rc == 0 && existed) existed[i] = ex[i];
    er_task_rec_free(recs[i]);
  }
  er_free(recs);
  er_free(ex);
  return rc;
}

int er_send_batch(er_client_t *c, const er_send_req_t *reqs, size_t n, er_id_t *ids) {
  return er_send_batch_ex(c, reqs, n, ids, NULL);
}
