/* Built-in pipelines, as App Engine's pipeline.common has them (more are
 * coming): "errand.Return" gives its argument (null without one),
 * "errand.Sum" the sum of its arguments (integers stay integers). */
#include "pipeline/pipe_internal.h"

static json_t *ret(er_pipe_ctx_t *ctx, json_t *args, json_t *kwargs) {
  json_t *v = json_array_get(args, 0);
  return v ? json_incref(v) : NULL;
}

static json_t *sum(er_pipe_ctx_t *ctx, json_t *args, json_t *kwargs) {
  json_int_t isum = 0;
  double dsum = 0;
  bool real = false;
  size_t i;
  json_t *v;
  json_array_foreach(args, i, v) {
    if (json_is_integer(v)) {
      isum += json_integer_value(v);
    } else if (json_is_real(v)) {
      real = true;
      dsum += json_real_value(v);
    } else {
      return er_pipe_abort(ctx, "errand.Sum: argument %zu is not a number", i);
    }
  }
  return real ? json_real(dsum + (double)isum) : json_integer(isum);
}

static const er_pipeline_def_t g_return = {.name = "errand.Return", .run = ret};
static const er_pipeline_def_t g_sum = {.name = "errand.Sum", .run = sum};

void er__pipe_builtins_register(void) {
  er__pipe_register_raw(&g_return);
  er__pipe_register_raw(&g_sum);
}
