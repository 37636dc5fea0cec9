/* Reading pipelines back: one record, one output, a whole tree, the roots. */
#include <string.h>

#include "pipeline/pipe_internal.h"
#include "queue/client_internal.h"

#define LIST_DEFAULT 100
#define LIST_MAX 10000

/* Runs read(c, s, ud) on a store handle of the client's own. */
static int reading(er_client_t *c, int (*read)(er_client_t *, er_store_t *, void *), void *ud) {
  if (!c) return ER_EINVAL;
  er_store_t *s = NULL;
  int rc = er__client_take_store(c, &s);
  if (rc < 0) return rc;
  rc = read(c, s, ud);
  er__client_put_store(c, s);
  return rc;
}

static int get_doc(er_client_t *c, er_store_t *s, const char *coll, const char *id, json_t **out) {
  *out = NULL;
  if (!id || !er_id_valid(id))
    return er__client_fail(c, ER_EINVAL, "'%s' is not a pipeline id", id ? id : "");
  int rc = er_store_doc_get(s, coll, id, out, NULL);
  if (rc == ER_ENOENT) return er__client_fail(c, rc, "no pipeline %s", id);
  return rc < 0 ? er__client_store_fail(c, s, rc, "pipeline") : 0;
}

typedef struct one {
  const char *id, *name;
  json_t **out;
} one_t;

static int read_get(er_client_t *c, er_store_t *s, void *ud) {
  one_t *o = ud;
  return get_doc(c, s, ER__PIPE_COLL, o->id, o->out);
}

int er_pipeline_get(er_client_t *c, const char *id, json_t **out) {
  one_t o = {id, NULL, out};
  return reading(c, read_get, &o);
}

static int read_output(er_client_t *c, er_store_t *s, void *ud) {
  one_t *o = ud;
  json_t *doc = NULL, *slot = NULL;
  int rc = get_doc(c, s, ER__PIPE_COLL, o->id, &doc);
  if (rc < 0) return rc;
  const char *name = o->name ? o->name : "default";
  const char *sid = json_string_value(json_object_get(json_object_get(doc, "outputs"), name));
  if (!sid) {
    rc = er__client_fail(c, ER_ENOENT, "pipeline %s has no output '%s'", o->id, name);
  } else if ((rc = er_store_doc_get(s, ER__SLOT_COLL, sid, &slot, NULL)) < 0) {
    rc = er__client_store_fail(c, s, rc, "pipeline output");
  } else if (!json_is_true(json_object_get(slot, "filled"))) {
    rc = er__client_fail(c, ER_ESTATE, "output '%s' of pipeline %s is not filled yet (status %s)",
                         name, o->id, er__pipe_status(doc));
  } else {
    *o->out = json_incref(json_object_get(slot, "value"));
  }
  json_decref(slot);
  json_decref(doc);
  return rc;
}

int er_pipeline_output(er_client_t *c, const char *id, const char *name, json_t **out) {
  *out = NULL;
  one_t o = {id, name, out};
  return reading(c, read_output, &o);
}

/* Adds slot sid to slots as the tree shows it. */
static int add_slot(er_store_t *s, json_t *slots, const char *sid) {
  if (!sid || json_object_get(slots, sid)) return 0;
  json_t *d = NULL;
  int rc = er_store_doc_get(s, ER__SLOT_COLL, sid, &d, NULL);
  if (rc == ER_ENOENT) return 0;
  if (rc < 0) return rc;
  bool filled = json_is_true(json_object_get(d, "filled"));
  json_t *v = json_pack("{s:s, s:O, s:O, s:O, s:O}", "status", filled ? "filled" : "waiting",
                        "value", json_object_get(d, "value"), "fill_ms",
                        json_object_get(d, "fill_ms"), "filler", json_object_get(d, "filler"),
                        "owner", json_object_get(d, "owner"));
  json_object_set_new(slots, sid, v);
  json_decref(d);
  return 0;
}

static int add_slots_of(er_store_t *s, json_t *slots, json_t *doc) {
  int rc = 0;
  const char *k;
  json_t *v;
  size_t i;
  json_object_foreach(json_object_get(doc, "outputs"), k, v) {
    if ((rc = add_slot(s, slots, json_string_value(v))) < 0) return rc;
  }
  json_array_foreach(json_object_get(doc, "args"), i, v) {
    if ((rc = add_slot(s, slots, er__slot_ref_id(v))) < 0) return rc;
  }
  json_object_foreach(json_object_get(doc, "kwargs"), k, v) {
    if ((rc = add_slot(s, slots, er__slot_ref_id(v))) < 0) return rc;
  }
  return 0;
}

static int read_tree(er_client_t *c, er_store_t *s, void *ud) {
  one_t *o = ud;
  json_t *root = NULL;
  int rc = get_doc(c, s, ER__PIPE_COLL, o->id, &root);
  if (rc < 0) return rc;
  json_t *pipes = json_object(), *slots = json_object(), *todo = json_array();
  json_array_append_new(todo, root);
  for (size_t i = 0; rc == 0 && i < json_array_size(todo); i++) {
    json_t *doc = json_array_get(todo, i);
    json_object_set(pipes, json_string_value(json_object_get(doc, "id")), doc);
    rc = add_slots_of(s, slots, doc);
    size_t j;
    json_t *child;
    json_array_foreach(json_object_get(doc, "children"), j, child) {
      json_t *cd = NULL;
      int r = er_store_doc_get(s, ER__PIPE_COLL, json_string_value(child), &cd, NULL);
      if (r == 0) json_array_append_new(todo, cd);
      else if (r != ER_ENOENT && rc == 0) rc = r;
    }
  }
  json_decref(todo);
  if (rc < 0) {
    json_decref(pipes);
    json_decref(slots);
    return er__client_store_fail(c, s, rc, "pipeline tree");
  }
  *o->out = json_pack("{s:s, s:o, s:o}", "root", o->id, "pipelines", pipes, "slots", slots);
  return 0;
}

int er_pipeline_tree(er_client_t *c, const char *root_id, json_t **out) {
  *out = NULL;
  one_t o = {root_id, NULL, out};
  return reading(c, read_tree, &o);
}

typedef struct list {
  const char *name, *after;
  size_t limit;
  json_t *out;
  char *next;
} list_t;

static int read_list(er_client_t *c, er_store_t *s, void *ud) {
  list_t *l = ud;
  const char *after = l->after;
  char *cursor = NULL;
  int rc = 0;
  while (json_array_size(l->out) < l->limit) {
    json_t *page = NULL;
    if ((rc = er_store_doc_list(s, ER__ROOT_COLL, after, l->limit, &page)) < 0) break;
    size_t i;
    json_t *e;
    json_array_foreach(page, i, e) {
      er_free(cursor);
      cursor = er_strdup(json_string_value(json_object_get(e, "key")));
      json_t *v = json_object_get(e, "value");
      const char *name = json_string_value(json_object_get(v, "name"));
      if (l->name && (!name || strcmp(name, l->name) != 0)) continue;
      json_t *doc = NULL, *item = json_deep_copy(v);
      if (er_store_doc_get(s, ER__PIPE_COLL, json_string_value(json_object_get(v, "id")), &doc,
                           NULL) == 0)
        json_object_set_new(item, "status", json_string(er__pipe_status(doc)));
      json_decref(doc);
      json_array_append_new(l->out, item);
      if (json_array_size(l->out) == l->limit) break;
    }
    bool end = json_array_size(page) < l->limit;
    json_decref(page);
    after = cursor;
    if (json_array_size(l->out) == l->limit) break; /* more may follow the cursor */
    if (end) {
      er_free(cursor);
      cursor = NULL;
      break;
    }
  }
  l->next = cursor;
  return rc < 0 ? er__client_store_fail(c, s, rc, "pipeline list") : 0;
}

int er_pipeline_list(er_client_t *c, const char *name, const char *after, size_t limit,
                     json_t **out, char **next) {
  *out = NULL;
  if (next) *next = NULL;
  list_t l = {name, after && *after ? after : NULL, limit ? limit : LIST_DEFAULT, json_array(),
              NULL};
  if (l.limit > LIST_MAX) l.limit = LIST_MAX;
  int rc = reading(c, read_list, &l);
  if (rc < 0) {
    json_decref(l.out);
    er_free(l.next);
    return rc;
  }
  *out = l.out;
  if (next) *next = l.next;
  else er_free(l.next);
  return 0;
}
