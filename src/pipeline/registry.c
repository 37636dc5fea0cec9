/* The pipeline registry: name -> definition, filled by ER_PIPELINE
 * constructors as programs and libraries load. */
#include <string.h>

#include "core/named.h"
#include "pipeline/pipe_internal.h"

#define NAME_MAX_BYTES 200

static const char *def_name(const void *d) { return ((const er_pipeline_def_t *)d)->name; }
static bool same_run(const void *a, const void *b) {
  return ((const er_pipeline_def_t *)a)->run == ((const er_pipeline_def_t *)b)->run;
}
static er__named_t g_defs = ER__NAMED_INIT(def_name, same_run);

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
  if (def->flags & ~(ER_PIPE_ASYNC | ER_PIPE_PUBLIC_CALLBACKS)) {
    er_log(ER_LOG_ERROR, "pipeline '%s' is not registered: unknown flags 0x%x", def->name,
           (unsigned)def->flags);
    return ER_EINVAL;
  }
  if (!(def->flags & ER_PIPE_ASYNC) &&
      (def->callback || def->try_cancel || (def->flags & ER_PIPE_PUBLIC_CALLBACKS))) {
    er_log(ER_LOG_ERROR, "pipeline '%s' is not registered: a callback, try_cancel and "
           "ER_PIPE_PUBLIC_CALLBACKS are for async pipelines (ER_PIPE_ASYNC)", def->name);
    return ER_EINVAL;
  }
  int rc = er__named_add(&g_defs, def);
  if (rc == ER_EEXIST) er_log(ER_LOG_ERROR, "pipeline '%s' is registered twice", def->name);
  return rc;
}

const er_pipeline_def_t *er_pipeline_lookup(const char *name) {
  er__pipe_init();
  return er__named_find(&g_defs, name);
}

typedef struct each {
  void (*fn)(const er_pipeline_def_t *def, void *ud);
  void *ud;
} each_t;

static void call(const void *item, void *ud) {
  each_t *e = ud;
  e->fn(item, e->ud);
}

void er_pipeline_foreach(void (*fn)(const er_pipeline_def_t *def, void *ud), void *ud) {
  er__pipe_init();
  each_t e = {fn, ud};
  er__named_foreach(&g_defs, call, &e);
}
