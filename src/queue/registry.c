/* The task registry: name -> definition, filled by ER_TASK constructors as
 * programs and task libraries load. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/named.h"
#include "queue/queue_internal.h"

static const char *def_name(const void *d) { return ((const er_task_def_t *)d)->name; }
static bool same_fn(const void *a, const void *b) {
  return ((const er_task_def_t *)a)->fn == ((const er_task_def_t *)b)->fn;
}
static er__named_t g_defs = ER__NAMED_INIT(def_name, same_fn);

int er_task_register(const er_task_def_t *def) {
  if (!def || !def->name || !def->name[0] || !def->fn) return ER_EINVAL;
  int rc = er__named_add(&g_defs, def);
  if (rc == ER_EEXIST) er_log(ER_LOG_ERROR, "task '%s' is registered twice", def->name);
  return rc;
}

const er_task_def_t *er_task_lookup(const char *name) { return er__named_find(&g_defs, name); }

typedef struct each {
  void (*fn)(const er_task_def_t *def, void *ud);
  void *ud;
} each_t;

static void call(const void *item, void *ud) {
  each_t *e = ud;
  e->fn(item, e->ud);
}

void er_task_foreach(void (*fn)(const er_task_def_t *def, void *ud), void *ud) {
  each_t e = {fn, ud};
  er__named_foreach(&g_defs, call, &e);
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
