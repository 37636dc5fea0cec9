/*
 * errand.h: the umbrella header. `#include <errand.h>` gives the whole public
 * API; a program may instead include only the module headers it uses.
 *
 * Link with `pkg-config --cflags --libs errand` (the headers include
 * <jansson.h>, so jansson's flags come with errand's).
 */
#ifndef ERRAND_H
#define ERRAND_H

#include "errand/common.h" /* errors, allocation, ids, time, logging */
#include "errand/loop.h"   /* the event loop */
#include "errand/future.h" /* futures, tasklets, combinators */
#include "errand/store.h"  /* the durable store behind the queue, by URL */
#include "errand/task.h"   /* tasks: ER_TASK, what a task reads and reports */
#include "errand/client.h" /* sending tasks, reading their state and result */
#include "errand/worker.h" /* workers and their pools */
#include "errand/pipeline.h" /* pipelines: stages, slots, barriers, retries, abort */
#include "errand/http.h"     /* the HTTP API, mounted in a program's own process */

#endif
