/*
 * errand.h: the umbrella header. Include this, or the module headers you use.
 *
 *   errand/common.h   errors, allocation, ids, time, logging
 *   errand/loop.h     the event loop
 *   errand/future.h   futures, tasklets, combinators
 */
#ifndef ERRAND_H
#define ERRAND_H

#include "errand/common.h"
#include "errand/loop.h"
#include "errand/future.h"

#endif
