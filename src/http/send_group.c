/* Group commit for the HTTP sends. Every POST /api/v1/tasks (and PUT of a
 * key) is a durable store write, and the client serialises them on one store
 * handle: one commit per request, each paying the store's fixed cost (the
 * WAL's append and locks, the doorbell; a Redis round trip) while the others
 * queue behind it. Here the requests that arrive while a write is in progress
 * wait in a list, and the next write takes them all as one er_send_batch_ex.
 * Nothing waits on a timer: a request that finds no write in progress is
 * written at once (after one yield of the CPU, see lead), so a lone caller
 * sees no added latency.
 *
 * One thread at a time leads: it takes the waiting list, writes it, answers
 * its members (each has a semaphore of its own, so no herd wakes), and hands
 * the lead to the first request that arrived meanwhile. Each request still
 * gets its answer only after its own task is committed.
 *
 * A batch is all or nothing, so one bad request (a name already taken, a
 * value the send's checks refuse) would fail its neighbours. A batch refused
 * for such a reason is therefore written again one request at a time:
 * nothing of it was written, and each request then gets its own answer and
 * its own error. A store that fails as a whole (locked past its busy
 * timeout, unreachable) fails every request of the batch with its one
 * error: trying each again alone would only make the last wait n times. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdio.h>
#include <string.h>

#include "http/http_internal.h"

/* At most this many requests in one transaction, and at most this many
 * bytes of their bodies (a request alone may be larger, up to the body
 * limit): a bound on the time the first of them waits for the rest to be
 * encoded and written, and on the transaction's size (128 sends near the
 * 1 MiB body limit would make a 128 MiB one). */
#define GROUP_MAX 128
#define GROUP_MAX_BYTES (4u << 20)

struct er__http_send {
  /* The request, borrowed from the caller, who waits. */
  const char *task;
  json_t *args, *kwargs;
  const er_send_opts_t *opts;
  size_t bytes;
  /* The answer. */
  er_id_t id;
  bool existed;
  int rc;
  char *msg;
  size_t msg_size;
  er__http_send_t *next; /* the list, under srv->send_lock */
  /* Told once by a leader, with lead false (answered) or true (the next
   * leader). A semaphore rather than a condition variable and its mutex: a
   * woken waiter has no lock to fight for, so telling it costs one wake (two
   * futex calls) and not four. */
  bool lead;
  sem_t told;
};

void er__http_group_init(er_http_server_t *s) { pthread_mutex_init(&s->send_lock, NULL); }

void er__http_group_destroy(er_http_server_t *s) { pthread_mutex_destroy(&s->send_lock); }

void er__http_send_stats(er_http_server_t *s, er__http_send_stats_t *out) {
  pthread_mutex_lock(&s->send_lock);
  *out = s->send_stats;
  pthread_mutex_unlock(&s->send_lock);
}

static void fail_msg(er__http_send_t *q, er_client_t *c) {
  if (q->msg && q->msg_size) snprintf(q->msg, q->msg_size, "%s", er_client_last_error(c));
}

static void send_one(er_client_t *c, er__http_send_t *q) {
  q->rc = er_send_ex(c, q->task, q->args, q->kwargs, q->opts, &q->id, &q->existed);
  if (q->rc < 0) fail_msg(q, c);
}

/* Whether a batch failing with rc may have failed for one request's sake
 * (its input, its name, its key rule): then each is tried alone. */
static bool request_fault(int rc) {
  return rc == ER_EINVAL || rc == ER_EPARSE || rc == ER_EEXIST || rc == ER_ETOMBSTONED ||
         rc == ER_ETOOBIG || rc == ER_ENOTSUP;
}

/* Writes the n requests of batch: one transaction, or one each when that
 * fails for a request's sake. Called without the lock; *alone counts the
 * requests written alone. */
static void write_batch(er_client_t *c, er__http_send_t **batch, size_t n, size_t *alone) {
  if (n == 1) { /* the plain send: its errors read as any send's */
    send_one(c, batch[0]);
    return;
  }
  er_send_req_t reqs[GROUP_MAX];
  er_id_t ids[GROUP_MAX];
  bool existed[GROUP_MAX];
  for (size_t i = 0; i < n; i++)
    reqs[i] = (er_send_req_t){.task = batch[i]->task, .args = batch[i]->args,
                              .kwargs = batch[i]->kwargs, .opts = batch[i]->opts};
  int rc = er_send_batch_ex(c, reqs, n, ids, existed);
  bool each = rc < 0 && request_fault(rc);
  for (size_t i = 0; i < n; i++) {
    if (each) {
      send_one(c, batch[i]);
      ++*alone;
    } else if (rc < 0) {
      batch[i]->rc = rc;
      fail_msg(batch[i], c);
    } else {
      batch[i]->rc = 0;
      batch[i]->id = ids[i];
      batch[i]->existed = existed[i];
    }
  }
}

/* Wakes q's thread, answered or leading next (the post publishes both). */
static void tell(er__http_send_t *q, bool lead) {
  q->lead = lead;
  sem_post(&q->told);
}

/* Leads: writes the batch at the list's head (me among it), answers it and
 * hands the lead to the first request that came meanwhile. */
static void lead(er_http_server_t *srv, er__http_send_t *me) {
  er__http_send_t *batch[GROUP_MAX];
  size_t n = 0;
  /* Requests whose threads are ready to run but have not joined yet (their
   * bodies still being read or parsed) would miss this batch and cost a
   * commit of their own. Yielding once lets them join first. With the CPUs
   * idle it returns at once: a lone request waits for nothing. Measured
   * under load (bench/run http), it took the batches from about 2 sends to
   * about 20 and the server's CPU time per send down by a quarter. */
  sched_yield();
  pthread_mutex_lock(&srv->send_lock);
  size_t bytes = 0;
  for (er__http_send_t *q = srv->send_head; q && n < GROUP_MAX; q = q->next) {
    if (n && bytes + q->bytes > GROUP_MAX_BYTES) break;
    bytes += q->bytes;
    batch[n++] = q;
  }
  srv->send_head = batch[n - 1]->next;
  if (!srv->send_head) srv->send_tail = NULL;
  er__http_send_stats_t *st = &srv->send_stats;
  st->waiting -= n;
  st->writes++;
  st->sends += n;
  if (n > st->largest) st->largest = n;
  pthread_mutex_unlock(&srv->send_lock);
  size_t alone = 0;
  write_batch(srv->client, batch, n, &alone);
  pthread_mutex_lock(&srv->send_lock);
  st->alone += alone;
  er__http_send_t *heir = srv->send_head;
  if (!heir) srv->send_busy = false;
  pthread_mutex_unlock(&srv->send_lock);
  for (size_t i = 0; i < n; i++)
    if (batch[i] != me) tell(batch[i], false); /* gone once told */
  if (heir) tell(heir, true); /* still waiting, in the list: not gone */
}

int er__http_send(er_http_server_t *srv, const char *task, json_t *args, json_t *kwargs,
                  const er_send_opts_t *opts, size_t bytes, er_id_t *id, bool *existed,
                  char *msg, size_t msg_size) {
  er__http_send_t me = {.task = task, .args = args, .kwargs = kwargs, .opts = opts,
                        .bytes = bytes, .msg = msg, .msg_size = msg_size};
  if (msg && msg_size) *msg = 0;
  sem_init(&me.told, 0, 0);
  pthread_mutex_lock(&srv->send_lock);
  if (srv->send_tail)
    srv->send_tail->next = &me;
  else
    srv->send_head = &me;
  srv->send_tail = &me;
  srv->send_stats.waiting++;
  /* The list holds others only while someone leads: else take the lead. */
  bool leading = !srv->send_busy;
  srv->send_busy = true;
  pthread_mutex_unlock(&srv->send_lock);
  if (!leading) {
    while (sem_wait(&me.told) < 0 && errno == EINTR) continue;
    leading = me.lead;
  }
  if (leading) lead(srv, &me); /* first in the list: the batch holds me */
  sem_destroy(&me.told);
  if (me.rc == 0) {
    if (id) *id = me.id;
    if (existed) *existed = me.existed;
  }
  return me.rc;
}
