/* What the worker's housekeeping asks of the pipelines. */
#ifndef ER_PIPE_MAINT_H
#define ER_PIPE_MAINT_H

#include "errand/store.h"

/* Now and then (every minute at most, more often for a short retention, at
 * once again while old roots are left), deletes a bounded part of the roots
 * finished longer ago than the store URL's pipe_retention_ms. Cheap when it
 * is not time yet. Call on the thread that owns s (the worker's store
 * thread). 0 or the store's error (logged). Thread-safe. */
int er__pipe_maintain(er_store_t *s);

#endif
