/* Who deletes old roots: a client asked to (er_pipeline_cleanup, `errand
 * pipeline cleanup`), and every worker's housekeeping, a little at a time
 * (er__pipe_maintain). cleanup.c does the deleting. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "pipeline/pipe_internal.h"
#include "pipeline/pipe_maint.h"
#include "queue/client_internal.h"
#include "store/store_internal.h"

#define CLIENT_BUDGET 2000 /* store operations per batch of er_pipeline_cleanup */
#define WORKER_BUDGET 256  /* per call of the worker's housekeeping */
#define EVERY_MAX_MS 60000
#define EVERY_MIN_MS 1000

int64_t er__pipe_retention_ms(er_store_t *s) {
  int64_t keep = ER__PIPE_RETENTION_DEFAULT_MS;
  /* er_store_open checked the option: it parses */
  er__store_url_int(er_store_url(s), "pipe_retention_ms", ER__PIPE_RETENTION_DEFAULT_MS, 0,
                    INT64_MAX / 4, &keep, NULL, 0);
  return keep;
}

int er_pipeline_cleanup(er_client_t *c, int64_t older_than_ms,
                        er_pipeline_cleanup_counts_t *counts) {
  if (counts) memset(counts, 0, sizeof *counts);
  if (!c) return ER_EINVAL;
  er_store_t *s = NULL;
  int rc = er__client_take_store(c, &s);
  if (rc < 0) return rc;
  int64_t older = older_than_ms >= 0 ? older_than_ms : er__pipe_retention_ms(s);
  char cursor[64] = "";
  er__pipe_swept_t sw;
  do { /* one pass over the index, a bounded batch at a time */
    rc = er__pipe_cleanup(s, er__pipe_clock(), older, CLIENT_BUDGET, cursor, sizeof cursor, &sw);
    if (rc == 0 && counts) {
      counts->roots += sw.roots;
      counts->docs += sw.docs;
    }
  } while (rc == 0 && sw.more);
  if (rc < 0) er__client_store_fail(c, s, rc, "pipeline cleanup");
  er__client_put_store(c, s);
  return rc;
}

/* ---- the worker's share ---- */

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static char *g_url;        /* the store the state below is about */
static int64_t g_next_ms;  /* not before then */
static char g_cursor[64];  /* where the last call stopped */

int er__pipe_maintain(er_store_t *s) {
  int64_t now = er__pipe_clock();
  const char *url = er_store_url(s);
  char cursor[64];
  pthread_mutex_lock(&g_mu);
  if (!g_url || strcmp(g_url, url) != 0) { /* another store: start afresh */
    er_free(g_url);
    g_url = er_strdup(url);
    g_next_ms = 0;
    g_cursor[0] = 0;
  }
  bool due = now >= g_next_ms;
  int64_t keep = er__pipe_retention_ms(s);
  /* A short retention is looked at more often than a long one. */
  int64_t every = keep / 10 < EVERY_MIN_MS ? EVERY_MIN_MS
                  : keep / 10 > EVERY_MAX_MS ? EVERY_MAX_MS : keep / 10;
  if (due) g_next_ms = now + every; /* this thread's turn; others wait */
  snprintf(cursor, sizeof cursor, "%s", g_cursor);
  pthread_mutex_unlock(&g_mu);
  if (!due) return 0;
  er__pipe_swept_t sw;
  int rc = er__pipe_cleanup(s, now, keep, WORKER_BUDGET, cursor, sizeof cursor, &sw);
  pthread_mutex_lock(&g_mu);
  if (g_url && strcmp(g_url, url) == 0) {
    snprintf(g_cursor, sizeof g_cursor, "%s", rc == 0 ? cursor : "");
    if (rc == 0 && sw.more) g_next_ms = 0; /* old roots are left: again at the next turn */
  }
  pthread_mutex_unlock(&g_mu);
  if (rc < 0)
    er_log(ER_LOG_WARN, "pipelines: cannot delete old roots: %s",
           er_store_last_error(s)[0] ? er_store_last_error(s) : er_strerror(rc));
  else if (sw.roots)
    er_log(ER_LOG_INFO, "pipelines: deleted %zu roots finished over %lld s ago (%zu documents)",
           sw.roots, (long long)(keep / 1000), sw.docs);
  return rc;
}
