/* The pipeline registry: name -> definition, filled by ER_PIPELINE
 * constructors as programs and libraries load. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/pipe_internal.h"

#define NAME_MAX_BYTES 200

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static const er_pipeline_def_t **g_defs;
static size_t g_len, g_cap;

static bool valid(const er_pipeline_def_t *def) {
  if (!def || !def->name || !def->name[0] || strlen(def->name) > NAME_MAX_BYTES || !def->run)
    return false;
  if (def->outputs)
    for (const char *const *o = def->outputs; *o; o++)
      if (!**o || strcmp(*o, "default") == 0) return false;
  return true;
}

int er_pipeline_register(const er_pipeline_def_t *def) {
  er__pipe_init();
  return er__pipe_register_raw(def);
}

int er__pipe_register_raw(const er_pipeline_def_t *def) {
  if (!valid(def)) {
    er_log(ER_LOG_ERROR, "pipeline '%s' is not registered: it needs a name (at most %d bytes), "
           "a run function, and outputs other than \"\" and \"default\"",
           def && def->name ? def->name : "", NAME_MAX_BYTES);
    return ER_EINVAL;
  }
  int rc = 0;
  pthread_mutex_lock(&g_lock);
  for (size_t i = 0; i < g_len; i++) {
    if (strcmp(g_defs[i]->name, def->name) == 0) {
      rc = g_defs[i]->run == def->run ? 0 : ER_EEXIST;
      goto out;
    }
  }
  if (g_len == g_cap) {
    size_t cap = g_cap ? g_cap * 2 : 32;
    const er_pipeline_def_t **v = er_realloc(g_defs, cap * sizeof *v);
    if (!v) {
      rc = ER_ENOMEM;
      goto out;
    }
    g_defs = v;
    g_cap = cap;
  }
  g_defs[g_len++] = def;
out:
  pthread_mutex_unlock(&g_lock);
  if (rc == ER_EEXIST) er_log(ER_LOG_ERROR, "pipeline '%s' is registered twice", def->name);
  return rc;
}

const er_pipeline_def_t *er_pipeline_lookup(const char *name) {
  if (!name) return NULL;
  er__pipe_init();
  const er_pipeline_def_t *d = NULL;
  pthread_mutex_lock(&g_lock);
  for (size_t i = 0; i < g_len && !d; i++)
    if (strcmp(g_defs[i]->name, name) == 0) d = g_defs[i];
  pthread_mutex_unlock(&g_lock);
  return d;
}

static int by_name(const void *a, const void *b) {
  return strcmp((*(const er_pipeline_def_t *const *)a)->name,
                (*(const er_pipeline_def_t *const *)b)->name);
}

void er_pipeline_foreach(void (*fn)(const er_pipeline_def_t *def, void *ud), void *ud) {
  er__pipe_init();
  pthread_mutex_lock(&g_lock);
  size_t n = g_len;
  const er_pipeline_def_t **copy = er_malloc((n ? n : 1) * sizeof *copy);
  if (copy && n) memcpy(copy, g_defs, n * sizeof *copy);
  pthread_mutex_unlock(&g_lock);
  if (!copy) return;
  qsort(copy, n, sizeof *copy, by_name);
  for (size_t i = 0; i < n; i++) fn(copy[i], ud);
  er_free(copy);
}
