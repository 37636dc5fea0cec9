/* Task duration histograms: fixed buckets (histogram.h). */
#include "queue/histogram.h"

const double er__hist_le[ER__HIST_NB] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                         0.5,   1,      2.5,   5,    10,    30,    60};
/* The same bounds in ms, for the compare on the loop thread. */
static const int64_t g_le_ms[ER__HIST_NB] = {1,   2,    5,    10,   25,    50,    100, 250,
                                             500, 1000, 2500, 5000, 10000, 30000, 60000};

void er__hist_add(er__hist_t *h, int64_t ms) {
  if (ms < 0) ms = 0;
  int i = 0;
  while (i < ER__HIST_NB && ms > g_le_ms[i]) i++;
  h->bucket[i]++;
  h->count++;
  h->sum_ms += ms;
}

json_t *er__hist_json(const er__hist_t *h) {
  json_t *le = json_array(), *b = json_array();
  uint64_t cum = 0;
  for (int i = 0; i <= ER__HIST_NB; i++) {
    if (i < ER__HIST_NB) json_array_append_new(le, json_real(er__hist_le[i]));
    cum += h->bucket[i];
    json_array_append_new(b, json_integer((json_int_t)cum));
  }
  return json_pack("{s:o, s:o, s:I, s:I}", "le", le, "buckets", b, "count",
                   (json_int_t)h->count, "sum_ms", (json_int_t)h->sum_ms);
}

bool er__hist_sum_add(er__hist_sum_t *sum, const json_t *o) {
  json_t *le = json_object_get(o, "le"), *b = json_object_get(o, "buckets");
  json_t *count = json_object_get(o, "count"), *ms = json_object_get(o, "sum_ms");
  if (json_array_size(le) != ER__HIST_NB || json_array_size(b) != ER__HIST_NB + 1 ||
      !json_is_integer(count) || !json_is_integer(ms))
    return false;
  for (int i = 0; i < ER__HIST_NB; i++) {
    double v = json_number_value(json_array_get(le, (size_t)i));
    if (v < er__hist_le[i] * 0.999 || v > er__hist_le[i] * 1.001) return false;
  }
  for (int i = 0; i <= ER__HIST_NB; i++)
    if (!json_is_integer(json_array_get(b, (size_t)i))) return false;
  for (int i = 0; i <= ER__HIST_NB; i++)
    sum->cum[i] += (uint64_t)json_integer_value(json_array_get(b, (size_t)i));
  sum->count += (uint64_t)json_integer_value(count);
  sum->sum_ms += json_integer_value(ms);
  return true;
}
