/* A small levelled logger: one line per message, to a sink that defaults to
 * stderr. The level is read from ERRAND_LOG once, on first use. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errand/common.h"

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
/* Atomic: one thread may change the level while others log (a plain int
 * here was a data race under TSan, against the header's "Thread-safe"). */
static atomic_int g_level = ER_LOG_WARN;
static er_log_sink_fn g_sink;
static void *g_sink_ud;

static const char *const g_names[] = {"error", "warn", "info", "debug", "trace"};

const char *er_log_level_name(er_log_level_t level) {
  return (unsigned)level <= ER_LOG_TRACE ? g_names[level] : "?";
}

static void read_env(void) {
  const char *v = getenv("ERRAND_LOG");
  if (!v) return;
  for (int i = 0; i <= ER_LOG_TRACE; i++)
    if (strcmp(v, g_names[i]) == 0) atomic_store(&g_level, i);
}

void er_log_set_level(er_log_level_t level) {
  pthread_once(&g_once, read_env);
  atomic_store(&g_level, (int)level);
}

er_log_level_t er_log_get_level(void) {
  pthread_once(&g_once, read_env);
  return (er_log_level_t)atomic_load(&g_level);
}

void er_log_set_sink(er_log_sink_fn sink, void *ud) {
  pthread_mutex_lock(&g_lock);
  g_sink = sink;
  g_sink_ud = ud;
  pthread_mutex_unlock(&g_lock);
}

void er_vlog(er_log_level_t level, const char *fmt, va_list ap) {
  if (level > er_log_get_level()) return;
  char line[1024];
  vsnprintf(line, sizeof line, fmt, ap);
  pthread_mutex_lock(&g_lock);
  if (g_sink)
    g_sink(level, line, g_sink_ud);
  else
    fprintf(stderr, "errand %s: %s\n", er_log_level_name(level), line);
  pthread_mutex_unlock(&g_lock);
}

void er_log(er_log_level_t level, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  er_vlog(level, fmt, ap);
  va_end(ap);
}
