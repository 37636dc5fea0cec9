/* Reading many slots at once. A stage's arguments may refer to thousands of
 * slots (a fan-in: Sum over every child's output), and a store call
 * per slot is a transaction or a round trip per slot, on one worker, while
 * the whole tree waits for that one stage. Slot ids are UUIDv7 text, made in
 * order by the stage that declared them, so the slots a stage waits on
 * mostly sit side by side in the slot collection: they are read a page at a
 * time with er_store_doc_list, from just before the smallest id, keeping
 * those wanted. A page that brings few of them (slots of other trees made at
 * the same moment lie between) ends the paging, and what is left is read one
 * by one, so scattered slots cost at most one page more than before. */
#include <stdlib.h>
#include <string.h>

#include "pipeline/pipe_internal.h"

#define FEW 8      /* below this many, one by one */
#define PAGE 1000  /* documents per er_store_doc_list */

static int by_text(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Pages through the slot collection from just before ids[0] to ids[n-1]
 * (sorted), putting the wanted slots into out. Stops early, with 0, when the
 * store has no listing or the wanted ones are too thin on a page. */
static int read_pages(er_store_t *s, const char **ids, size_t n, json_t *want, json_t *out) {
  /* A key's prefix sorts before it: the listing starts at most a few keys
   * early. */
  char after[ER_ID_LEN + 1];
  size_t len = strlen(ids[0]);
  if (len == 0 || len > ER_ID_LEN) return 0;
  memcpy(after, ids[0], len - 1);
  after[len - 1] = 0;
  for (size_t left = n; left > 0;) {
    json_t *page = NULL;
    int rc = er_store_doc_list(s, ER__SLOT_COLL, after, PAGE, &page);
    if (rc == ER_ENOTSUP) return 0;
    if (rc < 0) return rc;
    size_t i, hits = 0, size = json_array_size(page);
    bool past = false;
    json_t *e;
    json_array_foreach(page, i, e) {
      const char *k = json_string_value(json_object_get(e, "key"));
      if (!k || strcmp(k, ids[n - 1]) > 0) {
        past = true;
        break;
      }
      if (json_object_get(want, k) && !json_object_get(out, k)) {
        json_object_set(out, k, json_object_get(e, "value"));
        hits++;
        left--;
      }
    }
    const char *last = json_string_value(json_object_get(json_array_get(page, size - 1), "key"));
    bool more = !past && size == PAGE && last && strlen(last) <= ER_ID_LEN;
    if (more) strcpy(after, last);
    json_decref(page);
    if (!more || hits * 4 < size) return 0;
  }
  return 0;
}

int er__pipe_slots_read(er_store_t *s, json_t *want, json_t **out) {
  *out = json_object();
  size_t n = json_object_size(want), k = 0;
  const char **ids = n >= FEW ? er_calloc(n, sizeof *ids) : NULL;
  const char *id;
  json_t *v;
  int rc = 0;
  if (ids) {
    json_object_foreach(want, id, v) ids[k++] = id;
    qsort(ids, n, sizeof *ids, by_text);
    rc = read_pages(s, ids, n, want, *out);
    er_free(ids);
  }
  json_object_foreach(want, id, v) {
    if (rc < 0 || json_object_get(*out, id)) continue;
    json_t *slot = NULL;
    rc = er_store_doc_get(s, ER__SLOT_COLL, id, &slot, NULL);
    if (rc == ER_ENOENT) rc = 0;
    else if (rc == 0) json_object_set_new(*out, id, slot);
  }
  if (rc < 0) {
    json_decref(*out);
    *out = NULL;
  }
  return rc;
}
