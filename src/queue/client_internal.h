/* The client's private parts, shared by client.c and client_async.c. */
#ifndef ER_CLIENT_INTERNAL_H
#define ER_CLIENT_INTERNAL_H

#include <pthread.h>

#include "queue/queue_internal.h"

typedef struct er__watch er__watch_t;

struct er_client {
  er_store_t *store;
  pthread_mutex_t lock; /* one caller at a time on store */
  char last_error[512];
  er__watch_t *watch;   /* result futures, on one loop */
};

int er__client_fail(er_client_t *c, int rc, const char *fmt, ...) ER_PRINTF(3, 4);
/* er_store_get under the lock. */
int er__client_get(er_client_t *c, const char *id, const char *key, er_task_rec_t **out);
/* The outcome of a finished record, as er_result returns it. */
int er__client_outcome(er_client_t *c, const er_task_rec_t *r, json_t **result, json_t **error);
void er__client_watch_free(er_client_t *c);

#endif
