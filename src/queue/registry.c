/* The task registry: name -> definition, filled by ER_TASK constructors as
 * programs and task libraries load. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queue/queue_internal.h"

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static const er_task_def_t **g_defs;
static size_t g_len, g_cap;

int er_task_register(const er_task_def_t *def) {
  if (!def || !def->name || !def->name[0] || !def->fn) return ER_EINVAL;
  int rc = 0;
  pthread_mutex_lock(&g_lock);
  for (size_t i = 0; i < g_len; i++) {
    if (strcmp(g_defs[i]->name, def->name) == 0) {
      rc = g_defs[i]->fn == def->fn ? 0 : ER_EEXIST;
      goto out;
    }
  }
  if (g_len == g_cap) {
    size_t cap = g_cap ? g_cap * 2 : 32;
    const er_task_def_t **v = er_realloc(g_defs, cap * sizeof *v);
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
  if (rc == ER_EEXIST) er_log(ER_LOG_ERROR, "task '%s' is registered twice", def->name);
  return rc;
}

const er_task_def_t *er_task_lookup(const char *name) {
  if (!name) return NULL;
  const er_task_def_t *d = NULL;
  pthread_mutex_lock(&g_lock);
  for (size_t i = 0; i < g_len && !d; i++)
    if (strcmp(g_defs[i]->name, name) == 0) d = g_defs[i];
  pthread_mutex_unlock(&g_lock);
  return d;
}

static int by_name(const void *a, const void *b) {
  return strcmp((*(const er_task_def_t *const *)a)->name, (*(const er_task_def_t *const *)b)->name);
}

void er_task_foreach(void (*fn)(const er_task_def_t *def, void *ud), void *ud) {
  pthread_mutex_lock(&g_lock);
  size_t n = g_len;
  const er_task_def_t **copy = er_malloc((n ? n : 1) * sizeof *copy);
  if (copy && n) memcpy(copy, g_defs, n * sizeof *copy); /* g_defs is NULL when n is 0 */
  pthread_mutex_unlock(&g_lock);
  if (!copy) return;
  qsort(copy, n, sizeof *copy, by_name);
  for (size_t i = 0; i < n; i++) fn(copy[i], ud);
  er_free(copy);
}

int er_task_load_library(const char *path, char *errmsg, size_t errmsg_size) {
  /* A bare name would be searched on the library path; "./x.so" is meant. */
  char buf[4096];
  if (!strchr(path, '/')) {
    snprintf(buf, sizeof buf, "./%s", path);
    path = buf;
  }
  if (!dlopen(path, RTLD_NOW | RTLD_GLOBAL)) {
    if (errmsg) snprintf(errmsg, errmsg_size, "cannot load task library: %s", dlerror());
    return ER_ENOENT;
  }
  return 0;
}
