/* The client's private parts, shared by client.c (life, reading),
 * client_send.c (sending), client_async.c (sends as futures) and
 * client_watch.c (result futures). */
#ifndef ER_CLIENT_INTERNAL_H
#define ER_CLIENT_INTERNAL_H

#include <pthread.h>

#include "queue/queue_internal.h"

typedef struct er__watch er__watch_t;

struct er_client {
  er_store_t *store;
  pthread_mutex_t lock; /* one caller at a time on store */
  char last_error[512];
  /* Handles er_result waits on, one per concurrent waiter, kept for reuse:
   * a waiting thread holds one of these, never store, so it blocks nobody. */
  pthread_mutex_t spare_lock;
  er_store_t **spare;
  size_t nspare, spare_cap;
  int watch_safety_ms;  /* 0: the watcher's default (tests set it) */
  er__watch_t *watch;   /* result futures: a thread of its own, one loop */
};

int er__client_fail(er_client_t *c, int rc, const char *fmt, ...) ER_PRINTF(3, 4);
/* Records the store's own message for a failed call on s. */
int er__client_store_fail(er_client_t *c, er_store_t *s, int rc, const char *what);
/* er_store_get under the lock. */
int er__client_get(er_client_t *c, const char *id, const char *key, er_task_rec_t **out);
/* The outcome of a finished record, as er_result returns it: 0 with *result,
 * or the code with *error and a one-line message in msg. Touches no client,
 * so the watcher thread may call it. */
int er__rec_outcome(const er_task_rec_t *r, json_t **result, json_t **error, char *msg,
                    size_t msg_size);
/* A store handle of the client's own for a caller that waits (new, or a
 * spare); give it back with er__client_put_store. */
int er__client_take_store(er_client_t *c, er_store_t **out);
void er__client_put_store(er_client_t *c, er_store_t *s);
/* Completes out, on a thread-pool thread, with id's text as a JSON string
 * when rc is 0, else with rc and c's last error (the async sends). */
void er__future_set_id(er_future_t *out, int rc, const er_id_t *id, er_client_t *c);
/* Stops the watcher thread (joining it) and fails the futures still waiting
 * with ER_ECANCELED. */
void er__client_watch_free(er_client_t *c);

/* What the watcher has done, for tests. */
typedef struct er__watch_stats {
  bool running;   /* the thread exists */
  bool precise;   /* its store lists finished ids (er_store_read_wakeups) */
  uint64_t gets;  /* er_store_get calls made */
  uint64_t sweeps; /* times every waiter was re-read */
  size_t waiting; /* futures not yet done */
} er__watch_stats_t;
void er__client_watch_stats(er_client_t *c, er__watch_stats_t *out);

#endif
