/* The two indexes of roots: newest first by creation (pipe.root, for
 * er_pipeline_list) and oldest first by end (pipe.ended, for the cleanup of
 * old roots). A root's end entry is written in the batch that finishes it,
 * whatever transition that is: er__pb_commit calls er__pipe_index_ended on
 * every batch, so no path that ends a root (a leaf root's run, a finalize,
 * an abort, a completion) can forget it. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "pipeline/pipe_internal.h"

void er__pipe_root_index_key(char *out, size_t size, int64_t created_ms, const char *id) {
  snprintf(out, size, "%012" PRIx64 ":%s", (uint64_t)(0xffffffffffffLL - created_ms), id);
}

void er__pipe_ended_key(char *out, size_t size, int64_t end_ms, const char *id) {
  snprintf(out, size, "%013" PRId64 ":%s", end_ms < 0 ? 0 : end_ms, id);
}

/* A root this batch finishes: over, and not marked as indexed yet. */
static bool ends_here(const er__pdoc_t *d) {
  if (!d->dirty || !d->value || strcmp(d->coll, ER__PIPE_COLL) != 0) return false;
  const char *root = json_string_value(json_object_get(d->value, "root"));
  return root && strcmp(root, d->key) == 0 && er__pipe_over(d->value) &&
         !json_object_get(d->value, "ended_index");
}

int er__pipe_index_ended(er__pb_t *pb) {
  size_t n = pb->ndocs; /* the entries added below are not roots */
  for (size_t i = 0; i < n; i++) {
    er__pdoc_t *d = pb->docs[i];
    if (!ends_here(d)) continue;
    json_t *end = json_object_get(d->value, "end_ms");
    int64_t end_ms = json_is_integer(end) ? json_integer_value(end) : pb->now;
    char key[ER_ID_LEN + 32];
    er__pipe_ended_key(key, sizeof key, end_ms, d->key);
    json_t *entry = json_pack("{s:s, s:I, s:O}", "id", d->key, "end_ms", (json_int_t)end_ms,
                              "created_ms", json_object_get(d->value, "created_ms"));
    json_t *start_key = json_object_get(d->value, "key");
    if (entry && json_is_string(start_key)) json_object_set(entry, "key", start_key);
    json_object_set_new(d->value, "ended_index", json_string(key));
    int rc = er__pb_doc_new(pb, ER__ENDED_COLL, key, entry);
    if (rc < 0) return rc;
  }
  return 0;
}
