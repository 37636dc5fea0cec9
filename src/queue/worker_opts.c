/* A worker's options: each checked against its documented range (errand/
 * worker.h), then the defaults filled in. A negative or huge number used to
 * be taken as "the default" or wrapped in a timer's unsigned period; a queue
 * list past what the worker serves must be an error, not a silent drop. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "pipeline/token.h"
#include "queue/worker_internal.h"

/* 0 (the default) or min..max; else ER_EINVAL with errmsg naming the option. */
static int in_range(const char *name, int64_t v, int64_t min, int64_t max, char *errmsg,
                    size_t size) {
  if (v == 0 || (v >= min && v <= max)) return 0;
  if (errmsg && size)
    snprintf(errmsg, size, "worker option %s: %lld is out of range (%lld..%lld, or 0: the default)",
             name, (long long)v, (long long)min, (long long)max);
  return ER_EINVAL;
}

static int check_queues(const er_worker_opts_t *o, char *errmsg, size_t size) {
  if (!o->queues) return 0;
  if (o->nqueues > ER_WORKER_MAX_QUEUES) {
    if (errmsg && size)
      snprintf(errmsg, size, "worker option queues: %zu queues given, at most %d supported",
               o->nqueues, ER_WORKER_MAX_QUEUES);
    return ER_EINVAL;
  }
  for (size_t i = 0; i < o->nqueues; i++)
    if (!o->queues[i] || !*o->queues[i]) {
      if (errmsg && size)
        snprintf(errmsg, size, "worker option queues: queue %zu has no name", i + 1);
      return ER_EINVAL;
    }
  return 0;
}

/* The base of callback URLs, given or from $ERRAND_BASE_URL, is checked
 * as the worker starts rather than at a pipeline's first callback URL. */
static int check_base_url(const char *opt, char *errmsg, size_t size) {
  const char *base = er__pipe_base_url(opt);
  char *url = NULL, why[256] = "";
  int rc = base ? er__pipe_callback_url(base, "id", NULL, "token", &url, why, sizeof why) : 0;
  er_free(url);
  if (rc == ER_EINVAL && errmsg && size)
    snprintf(errmsg, size, "worker option base_url%s: %s", opt && *opt ? "" : " ($ERRAND_BASE_URL)",
             why);
  return rc;
}

int er__worker_opts_resolve(const er_worker_opts_t *in, er_worker_opts_t *out, char *errmsg,
                            size_t size) {
  int rc = check_queues(in, errmsg, size);
  if (!rc && (in->pool < ER_POOL_PREFORK || in->pool > ER_POOL_SOLO)) {
    if (errmsg && size) snprintf(errmsg, size, "worker option pool: unknown pool %d", (int)in->pool);
    rc = ER_EINVAL;
  }
  if (!rc) rc = in_range("concurrency", in->concurrency, 1, ER_WORKER_MAX_CONCURRENCY, errmsg, size);
  if (!rc) rc = in_range("prefetch", in->prefetch, 1, ER_WORKER_MAX_PREFETCH, errmsg, size);
  if (!rc)
    rc = in_range("lease_ms", in->lease_ms, ER_WORKER_MIN_LEASE_MS, ER_WORKER_MAX_LEASE_MS, errmsg,
                  size);
  if (!rc)
    rc = in_range("heartbeat_ms", in->heartbeat_ms, ER_WORKER_MIN_HEARTBEAT_MS,
                  ER_WORKER_MAX_HEARTBEAT_MS, errmsg, size);
  if (!rc) rc = in_range("grace_ms", in->grace_ms, 1, ER_WORKER_MAX_GRACE_MS, errmsg, size);
  if (!rc)
    rc = in_range("revoke_grace_ms", in->revoke_grace_ms, 1, ER_WORKER_MAX_GRACE_MS, errmsg, size);
  if (!rc) rc = check_base_url(in->base_url, errmsg, size);
  if (!rc && in->secret && *in->secret && strlen(in->secret) < ER_SECRET_MIN_LEN) {
    if (errmsg && size)
      snprintf(errmsg, size, "worker option secret: %zu bytes, at least %d needed",
               strlen(in->secret), ER_SECRET_MIN_LEN);
    rc = ER_EINVAL;
  }
  if (rc) return rc;
  *out = *in;
  if (!out->concurrency) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    out->concurrency = cpus < 1 ? 1 : cpus > ER_WORKER_MAX_CONCURRENCY ? ER_WORKER_MAX_CONCURRENCY
                                                                       : (int)cpus;
  }
  if (!out->lease_ms) out->lease_ms = 30000;
  if (!out->heartbeat_ms) out->heartbeat_ms = 2000;
  if (!out->grace_ms) out->grace_ms = 30000;
  if (!out->revoke_grace_ms) out->revoke_grace_ms = 2000;
  if (!out->prefetch) out->prefetch = 4;
  return 0;
}
