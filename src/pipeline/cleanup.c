/* Retention: the trees of roots finished (done or aborted) longer ago than
 * the retention are deleted, every pipeline, slot, barrier, key and index
 * entry of them. The pipe.ended index lists finished roots oldest first, so
 * finding the old ones reads only them.
 *
 * Work is bounded: a call spends a budget of store operations (reads and
 * deletions) and resumes where the last one stopped, so a tree of 10,000
 * stages goes in several calls. Each call's deletions for a root are one
 * batch whose every DOC_DEL is guarded by the version read: a stage that
 * changed meanwhile makes the batch write nothing. A tree is deleted from
 * its leaves up (a stage goes only with all its descendants, and a parent
 * that stays has its children list cut to those left), so a tree deleted in
 * part is still a tree: the next call finds the rest from its root, whose
 * record and index entry go last, together. */
#include <stdio.h>
#include <string.h>

#include "pipeline/pipe_internal.h"

/* A tree with a stage not over yet (a child still finalizing just after
 * its root) waits for a later cleanup, unless its root ended this long
 * ago: then the stage is stuck, and goes with its tree. */
#define STUCK_MS (24LL * 3600 * 1000)
#define PAGE 16           /* index entries read at a time */

typedef struct frame {
  json_t *doc; /* the stage's record */
  int64_t version;
  size_t next;  /* the next child to visit */
  json_t *gone; /* id -> true: children deleted in this batch or already absent */
  bool whole;   /* every child visited so far goes */
} frame_t;

typedef struct sweep {
  er_store_t *s;
  int64_t budget; /* store operations left */
  er_mut_t *muts;
  size_t n, cap;
  json_t *hold; /* keeps every string and value the mutations point to */
  json_t *seen; /* "coll\nkey" of the documents this batch deletes */
  size_t docs;
} sweep_t;

typedef enum { SWEPT, PARTIAL, SKIPPED, RACED } outcome_t;

static const char *hold_str(sweep_t *sw, const char *s) {
  json_t *j = json_string(s);
  if (!j || json_array_append_new(sw->hold, j) < 0) return NULL;
  return json_string_value(j);
}

static int push(sweep_t *sw, er_mut_t m) {
  if (sw->n == sw->cap) {
    size_t cap = sw->cap ? sw->cap * 2 : 64;
    er_mut_t *nm = er_realloc(sw->muts, cap * sizeof *nm);
    if (!nm) return ER_ENOMEM;
    sw->muts = nm;
    sw->cap = cap;
  }
  sw->muts[sw->n++] = m;
  return 0;
}

/* Deletes (coll, key), read at version. */
static int add_del(sweep_t *sw, const char *coll, const char *key, int64_t version) {
  char seen[600];
  snprintf(seen, sizeof seen, "%s\n%s", coll, key);
  json_object_set_new(sw->seen, seen, json_true());
  const char *c = hold_str(sw, coll), *k = hold_str(sw, key);
  if (!c || !k) return ER_ENOMEM;
  sw->docs++;
  return push(sw, (er_mut_t){.kind = ER_MUT_DOC_DEL, .coll = c, .key = k, .if_version = version});
}

/* Deletes (coll, key) when it exists (once per batch: slots are shared by a
 * stage and its last child). */
static int del_doc(sweep_t *sw, const char *coll, const char *key) {
  if (!key) return 0;
  char seen[600];
  snprintf(seen, sizeof seen, "%s\n%s", coll, key);
  if (json_object_get(sw->seen, seen)) return 0;
  int64_t v = 0;
  sw->budget--;
  int rc = er_store_doc_get(sw->s, coll, key, NULL, &v);
  if (rc == ER_ENOENT) return 0;
  return rc < 0 ? rc : add_del(sw, coll, key, v);
}

/* A barrier still above 0 (an aborted tree's) is brought to 0, which
 * removes it; one at 0 is gone already. */
static int del_barrier(sweep_t *sw, const char *id, const char *what) {
  char key[ER_ID_LEN + 8];
  snprintf(key, sizeof key, "%s:%s", id, what);
  int64_t v = 0;
  sw->budget--;
  int rc = er_store_counter_get(sw->s, ER__BARRIER_COLL, key, &v);
  if (rc < 0 || v == 0) return rc;
  const char *k = hold_str(sw, key);
  if (!k) return ER_ENOMEM;
  sw->docs++;
  return push(sw, (er_mut_t){.kind = ER_MUT_COUNTER_ADD, .coll = ER__BARRIER_COLL, .key = k,
                             .delta = -v, .if_value = v});
}

/* An async stage's callback records, "<id>:<task id>" (callback.c): they
 * sort together after "<id>:", listed a page at a time. */
static int del_callbacks(sweep_t *sw, const char *id) {
  char prefix[ER_ID_LEN + 2], after[600];
  size_t plen = (size_t)snprintf(prefix, sizeof prefix, "%s:", id);
  snprintf(after, sizeof after, "%s", prefix);
  for (;;) {
    json_t *page = NULL;
    sw->budget--;
    int rc = er_store_doc_list(sw->s, ER__CB_COLL, after, 64, &page);
    if (rc < 0) return rc;
    size_t i, n = json_array_size(page);
    json_t *e;
    json_array_foreach(page, i, e) {
      const char *key = json_string_value(json_object_get(e, "key"));
      if (!key || strncmp(key, prefix, plen) != 0) {
        n = 0; /* past this stage's records: the end */
        break;
      }
      rc = add_del(sw, ER__CB_COLL, key, json_integer_value(json_object_get(e, "version")));
      if (rc < 0) break;
      snprintf(after, sizeof after, "%s", key);
    }
    json_decref(page);
    if (rc < 0 || n < 64) return rc;
  }
}

/* A stage whose descendants all go: its record, output slots and barriers,
 * and an async stage's callback records. */
static int collect(sweep_t *sw, const frame_t *f) {
  const char *id = json_string_value(json_object_get(f->doc, "id"));
  if (!id) return 0;
  int rc = add_del(sw, ER__PIPE_COLL, id, f->version);
  const char *name;
  json_t *sid;
  json_object_foreach(json_object_get(f->doc, "outputs"), name, sid) {
    if (rc == 0) rc = del_doc(sw, ER__SLOT_COLL, json_string_value(sid));
  }
  if (rc == 0 && json_is_true(json_object_get(f->doc, "async"))) rc = del_callbacks(sw, id);
  if (rc == 0) rc = del_barrier(sw, id, "start");
  return rc ? rc : del_barrier(sw, id, "fin");
}

/* A stage that stays: its children list without those that went. */
static int prune(sweep_t *sw, const frame_t *f) {
  json_t *doc = json_copy(f->doc), *kids = json_array();
  size_t i;
  json_t *c;
  json_array_foreach(json_object_get(f->doc, "children"), i, c) {
    if (!json_object_get(f->gone, json_string_value(c) ? json_string_value(c) : ""))
      json_array_append(kids, c);
  }
  if (!doc) {
    json_decref(kids);
    return ER_ENOMEM;
  }
  if (json_object_set_new(doc, "children", kids) < 0 ||
      json_array_append_new(sw->hold, doc) < 0)
    return ER_ENOMEM;
  const char *k = hold_str(sw, json_string_value(json_object_get(doc, "id")));
  if (!k) return ER_ENOMEM;
  return push(sw, (er_mut_t){.kind = ER_MUT_DOC_PUT, .coll = ER__PIPE_COLL, .key = k,
                             .value = doc, .if_version = f->version});
}

/* What only a root has: its index entries, abort record and start key. */
static int root_rest(sweep_t *sw, const json_t *entry) {
  const json_t *v = json_object_get(entry, "value");
  const char *id = json_string_value(json_object_get(v, "id"));
  int rc = add_del(sw, ER__ENDED_COLL, json_string_value(json_object_get(entry, "key")),
                   json_integer_value(json_object_get(entry, "version")));
  if (rc < 0 || !id) return rc;
  json_t *created = json_object_get(v, "created_ms");
  char ikey[ER_ID_LEN + 32];
  er__pipe_root_index_key(ikey, sizeof ikey, json_integer_value(created), id);
  if (rc == 0 && json_is_integer(created)) rc = del_doc(sw, ER__ROOT_COLL, ikey);
  if (rc == 0) rc = del_doc(sw, ER__ABORT_COLL, id);
  const char *key = json_string_value(json_object_get(v, "key"));
  if (rc < 0 || !key) return rc;
  json_t *k = NULL;
  int64_t kv = 0;
  sw->budget--;
  rc = er_store_doc_get(sw->s, ER__KEY_COLL, key, &k, &kv);
  if (rc == ER_ENOENT) return 0;
  /* the key may belong to a newer root since */
  const char *owner = json_string_value(json_object_get(k, "root"));
  if (rc == 0 && owner && strcmp(owner, id) == 0) rc = add_del(sw, ER__KEY_COLL, key, kv);
  json_decref(k);
  return rc;
}

static void frame_free(frame_t *f) {
  json_decref(f->doc);
  json_decref(f->gone);
}

/* Walks the tree of the index entry's root depth first within the budget,
 * collecting every stage whose whole subtree was seen (and the root's own
 * records when the whole tree was). */
static int walk(sweep_t *sw, const json_t *entry, int64_t now, outcome_t *out) {
  const json_t *v = json_object_get(entry, "value");
  const char *id = json_string_value(json_object_get(v, "id"));
  bool stuck = json_integer_value(json_object_get(v, "end_ms")) <= now - STUCK_MS;
  frame_t *fr = NULL;
  size_t nf = 0, cap = 0;
  json_t *doc = NULL;
  int64_t ver = 0;
  sw->budget--;
  int rc = id ? er_store_doc_get(sw->s, ER__PIPE_COLL, id, &doc, &ver) : ER_ENOENT;
  if (rc == ER_ENOENT) { /* only the root's own records are left */
    *out = SWEPT;
    return root_rest(sw, entry);
  }
  *out = SKIPPED;
  if (rc < 0 || !er__pipe_over(doc)) {
    json_decref(doc);
    return rc;
  }
  while (rc == 0 && (doc || nf)) {
    if (doc) { /* a stage to visit */
      frame_t *nfr = nf < cap ? fr : er_realloc(fr, (cap = cap ? cap * 2 : 16) * sizeof *fr);
      if (!nfr) {
        json_decref(doc);
        rc = ER_ENOMEM;
        break;
      }
      fr = nfr;
      fr[nf++] = (frame_t){doc, ver, 0, json_object(), true};
      doc = NULL;
    }
    frame_t *f = &fr[nf - 1];
    json_t *kids = json_object_get(f->doc, "children");
    /* Until something is collected the walk goes on, so that even a tree
     * deeper than the budget makes progress. */
    if (f->next < json_array_size(kids) && (sw->budget > 0 || sw->n == 0)) {
      const char *cid = json_string_value(json_array_get(kids, f->next++));
      if (!cid) continue;
      sw->budget--;
      rc = er_store_doc_get(sw->s, ER__PIPE_COLL, cid, &doc, &ver);
      if (rc == ER_ENOENT) {
        json_object_set_new(f->gone, cid, json_true());
        rc = 0;
      } else if (rc == 0 && !er__pipe_over(doc) && !stuck) {
        json_decref(doc); /* not settled yet: a later cleanup deletes it */
        doc = NULL;
        break;
      }
      continue;
    }
    frame_t done = fr[--nf];
    frame_t *parent = nf ? &fr[nf - 1] : NULL;
    if (done.whole && done.next >= json_array_size(kids)) {
      rc = collect(sw, &done);
      if (rc == 0 && !parent) rc = root_rest(sw, entry);
      if (parent) json_object_set_new(parent->gone, json_string_value(json_object_get(done.doc, "id")),
                                      json_true());
      else *out = SWEPT;
    } else {
      if (parent) parent->whole = false;
      else *out = PARTIAL;
      if (json_object_size(done.gone)) rc = prune(sw, &done);
    }
    frame_free(&done);
  }
  while (nf) frame_free(&fr[--nf]);
  er_free(fr);
  return rc;
}

/* Cleans one root: 0 with *out saying how it went. */
static int sweep_root(er_store_t *s, const json_t *entry, int64_t now, int64_t *budget,
                      outcome_t *out, er__pipe_swept_t *counts) {
  sweep_t sw = {.s = s, .budget = *budget, .hold = json_array(), .seen = json_object()};
  int rc = sw.hold && sw.seen ? walk(&sw, entry, now, out) : ER_ENOMEM;
  if (rc == 0 && *out == SKIPPED) sw.n = 0; /* a stage not over: nothing goes */
  if (rc == 0 && sw.n) {
    size_t failed = sw.n;
    rc = er_store_apply(s, sw.muts, sw.n, NULL, &failed);
    /* Another cleaner, or a stage that moved on: the next pass looks again. */
    if (rc == ER_ESTATE || rc == ER_ENOENT || rc == ER_EEXIST) {
      rc = 0;
      *out = RACED;
    } else if (rc == 0) {
      counts->docs += sw.docs;
      counts->roots += *out == SWEPT;
    }
  }
  *budget = sw.budget;
  er_free(sw.muts);
  json_decref(sw.hold);
  json_decref(sw.seen);
  return rc;
}

int er__pipe_cleanup(er_store_t *s, int64_t now_ms, int64_t older_than_ms, int64_t budget,
                     char *cursor, size_t cursor_size, er__pipe_swept_t *out) {
  memset(out, 0, sizeof *out);
  int64_t cutoff = now_ms - older_than_ms;
  for (;;) {
    if (budget <= 0) {
      out->more = true;
      return 0;
    }
    json_t *page = NULL;
    budget--;
    int rc = er_store_doc_list(s, ER__ENDED_COLL, cursor, PAGE, &page);
    if (rc < 0) return rc;
    size_t i = 0, n = json_array_size(page);
    bool young = false;
    for (; i < n && budget > 0; i++) {
      json_t *e = json_array_get(page, i);
      if (json_integer_value(json_object_get(json_object_get(e, "value"), "end_ms")) > cutoff) {
        young = true; /* and so are the rest */
        break;
      }
      outcome_t how;
      if ((rc = sweep_root(s, e, now_ms, &budget, &how, out)) < 0) break;
      if (how == PARTIAL) { /* the same root again next time */
        json_decref(page);
        out->more = true;
        return 0;
      }
      snprintf(cursor, cursor_size, "%s", json_string_value(json_object_get(e, "key")));
    }
    json_decref(page);
    if (rc < 0) return rc;
    if (young || (i == n && n < PAGE)) { /* nothing older left: the next pass starts over */
      cursor[0] = 0;
      return 0;
    }
  }
}
