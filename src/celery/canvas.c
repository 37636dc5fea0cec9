/* What a finished Celery task sends next, published as Celery 5.2's
 * Signature.apply_async would publish it from a Python worker: a plain
 * signature as one message; a chain as its first task carrying the rest in
 * embed.chain (reversed: the next one last); a group as one message per
 * task, all with the group's id; a chord as its header group, each part
 * carrying the body in embed.chord, with the chord's size written first to
 * celery-taskset-meta-<gid>.s as the Redis backend's set_chord_size does.
 * Everything is added to the caller's ops script call, so an outcome and
 * all it sends are applied together. Signatures are the dicts canvas.py
 * serializes ({"task", "args", "kwargs", "options", "subtask_type",
 * "immutable"}); they are copied before an id or option is added. */
#include <string.h>

#include "celery/celery_internal.h"

#define MAX_DEPTH 32 /* nesting of canvases inside one another */

static const char *ostr(json_t *o, const char *k) {
  return json_string_value(json_object_get(o, k));
}

static bool is_type(json_t *sig, const char *type) {
  const char *st = ostr(sig, "subtask_type");
  return st && !strcmp(st, type);
}

static json_t *tasks_of(json_t *sig) {
  json_t *t = json_object_get(json_object_get(sig, "kwargs"), "tasks");
  return json_is_array(t) ? t : NULL;
}

/* sig's options, created empty when it has none (sig is a copy of ours). */
static json_t *opts_of(json_t *sig) {
  json_t *o = json_object_get(sig, "options");
  if (!json_is_object(o)) {
    o = json_object();
    json_object_set_new(sig, "options", o);
  }
  return o;
}

/* own options overridden by over's non-null ones, except a group_id own
 * already has (Signature._merge after apply_async dropped the Nones). New. */
static json_t *merged(json_t *own, json_t *over) {
  json_t *o = json_is_object(own) ? json_deep_copy(own) : json_object();
  const char *k;
  json_t *v;
  json_object_foreach(over, k, v) {
    if (json_is_null(v)) continue;
    if (!strcmp(k, "group_id") && json_is_string(json_object_get(o, k))) continue;
    json_object_set(o, k, v);
  }
  return o;
}

/* Signature.freeze on our copy: an id unless it has one (id, else a new
 * one), and the root, group (unless set), chord and index given. */
static void freeze(json_t *sig, const char *id, json_t *root, json_t *group, json_t *chord,
                   json_t *index) {
  json_t *o = opts_of(sig);
  if (!json_is_string(json_object_get(o, "task_id"))) {
    er_id_t nid;
    er_id_new(&nid);
    json_object_set_new(o, "task_id", json_string(id ? id : nid.text));
  }
  if (json_is_string(root)) json_object_set(o, "root_id", root);
  if (json_is_string(group) && !json_is_string(json_object_get(o, "group_id")))
    json_object_set(o, "group_id", group);
  if (json_is_object(chord)) json_object_set(o, "chord", chord);
  if (json_is_integer(index)) json_object_set(o, "group_index", index);
}

/* prefix + sig's args, or sig's args alone when it is immutable. New. */
static json_t *with_prefix(json_t *sig, json_t *prefix) {
  json_t *args = json_array();
  if (json_array_size(prefix) && !json_is_true(json_object_get(sig, "immutable")))
    json_array_extend(args, prefix);
  json_t *own = json_object_get(sig, "args");
  if (json_is_array(own)) json_array_extend(args, own);
  return args;
}

/* Copies of tasks into out, a nested group's tasks in its place, as
 * group._freeze_unroll flattens them. */
static void unroll(json_t *out, json_t *tasks) {
  size_t i;
  json_t *t;
  json_array_foreach(tasks, i, t) {
    if (is_type(t, "group")) unroll(out, tasks_of(t));
    else if (json_is_object(t)) json_array_append_new(out, json_deep_copy(t));
  }
}

/* How many parts a signature adds to a chord (chord._descend). */
static size_t descend(json_t *sig) {
  size_t i, n = 0;
  json_t *t, *tasks = tasks_of(sig);
  if (is_type(sig, "group")) {
    json_array_foreach(tasks, i, t) n += descend(t);
    return n;
  }
  if (is_type(sig, "chain")) {
    for (i = json_array_size(tasks); i-- > 0;)
      if ((n = descend(json_array_get(tasks, i)))) return n;
    return 0;
  }
  if (is_type(sig, "chord"))
    return descend(json_object_get(json_object_get(sig, "kwargs"), "body"));
  return 1;
}

/* link and link_error as a list (maybe_list), or null. Borrowed or new in *keep. */
static json_t *as_list(json_t *v, json_t **keep) {
  *keep = NULL;
  if (json_is_array(v)) return v;
  if (json_is_object(v)) return *keep = json_pack("[O]", v);
  return json_null();
}

/* One message for a plain signature (Task.apply_async → send_task). */
static void publish(er__cel_pub_t *p, json_t *sig, json_t *prefix, json_t *over) {
  const char *task = ostr(sig, "task");
  if (!task) {
    er_log(ER_LOG_WARN, "celery: a signature without a task name is not sent");
    return;
  }
  json_t *o = merged(json_object_get(sig, "options"), over);
  json_t *args = with_prefix(sig, prefix);
  json_t *kw = json_object_get(sig, "kwargs"), *k1, *k2;
  er_id_t nid;
  er_id_new(&nid);
  const char *id = ostr(o, "task_id") ? ostr(o, "task_id") : nid.text;
  const char *queue = ostr(o, "queue") ? ostr(o, "queue")
                      : ostr(o, "routing_key") ? ostr(o, "routing_key")
                      : p->from->routing_key ? p->from->routing_key : "celery";
  json_t *chain = json_object_get(o, "chain"), *chord = json_object_get(o, "chord");
  json_t *embed = json_pack("{s:O,s:O,s:O,s:O}", "callbacks",
                            as_list(json_object_get(o, "link"), &k1), "errbacks",
                            as_list(json_object_get(o, "link_error"), &k2), "chain",
                            json_is_array(chain) ? chain : json_null(), "chord",
                            json_is_object(chord) ? chord : json_null());
  json_decref(k1);
  json_decref(k2);
  int pri = (int)json_integer_value(json_object_get(o, "priority"));
  const char *from_root = p->from->root_id ? p->from->root_id : p->from->id;
  json_t *gi = json_object_get(o, "group_index");
  er__cel_send_t s = {.id = id, .task = task, .queue = queue, .args = args,
                      .kwargs = json_is_object(kw) ? kw : NULL, .embed = embed,
                      .priority = pri,
                      .root_id = ostr(o, "root_id") ? ostr(o, "root_id") : from_root,
                      .parent_id = ostr(o, "parent_id") ? ostr(o, "parent_id") : p->from->id,
                      .group = ostr(o, "group_id"),
                      .group_index = json_is_integer(gi) ? gi : NULL,
                      .reply_to = ostr(o, "reply_to")};
  char *msg = embed && args && o ? er__cel_encode(&s) : NULL;
  char list[600];
  er__cel_list_name(queue, pri, list, sizeof list);
  er__rd_args_str(p->a, "push");
  er__rd_args_str(p->a, list);
  if (msg) er__rd_args_str(p->a, msg);
  else p->a->oom = true;
  ++*p->nops;
  er_free(msg);
  json_decref(args);
  json_decref(embed);
  json_decref(o);
}

/* group.apply_async: the tasks (nested groups unrolled) published with the
 * group's id (its task_id, else a new one); when they carry a chord, its
 * size is written before them. */
static void apply_group(er__cel_pub_t *p, json_t *own, json_t *tasks, json_t *prefix,
                        json_t *over) {
  json_t *o = merged(own, over);
  er_id_t nid;
  er_id_new(&nid);
  json_t *gid = json_string(ostr(o, "task_id") ? ostr(o, "task_id") : nid.text);
  json_object_del(o, "task_id");
  json_object_set(o, "group_id", gid);
  /* each part keeps its own place in the group, not one the group was given */
  json_object_del(o, "group_index");
  json_t *members = json_array(), *t;
  unroll(members, tasks);
  json_t *root = json_object_get(o, "root_id");
  size_t i, size = 0, n = json_array_size(members);
  json_array_foreach(members, i, t) {
    freeze(t, NULL, root, gid, NULL, NULL);
    json_t *chord = json_object_get(json_object_get(t, "options"), "chord");
    size += descend(t);
    json_t *to = json_copy(o);
    /* group._apply_tasks passes it; a chord's body keeps it in its options */
    json_object_set_new(to, "add_to_parent", json_false());
    if (json_is_object(chord)) json_object_set(to, "chord", chord);
    if (json_is_object(chord) && i + 1 == n) {
      er__rd_args_str(p->a, "set");
      er__rd_args_fmt(p->a, "celery-taskset-meta-%s.s", json_string_value(gid));
      er__rd_args_fmt(p->a, "%zu", size);
      er__rd_args_i64(p->a, ER__CEL_RESULT_TTL_S);
      ++*p->nops;
    }
    er__cel_apply(p, t, prefix, to);
    json_decref(to);
  }
  json_decref(members);
  json_decref(gid);
  json_decref(o);
}

/* Copies of a chain's tasks in order, nested chains spliced in and groups
 * of one task unrolled (chain.prepare_steps). */
static void flatten(json_t *out, json_t *tasks) {
  size_t i;
  json_t *t;
  json_array_foreach(tasks, i, t) {
    while (is_type(t, "group") && json_array_size(tasks_of(t)) == 1)
      t = json_array_get(tasks_of(t), 0);
    if (is_type(t, "chain")) flatten(out, tasks_of(t));
    else if (json_is_object(t)) json_array_append_new(out, json_deep_copy(t));
  }
}

/* chain.run: the first task published with the rest, reversed, in its chain;
 * a group followed by a task becomes a chord with that task as its body. */
static void apply_chain(er__cel_pub_t *p, json_t *sig, json_t *prefix, json_t *over) {
  json_t *o = merged(json_object_get(sig, "options"), over);
  json_t *pre = with_prefix(sig, prefix);
  json_t *flat = json_array(), *steps = json_array(); /* steps: the last task first */
  flatten(flat, tasks_of(sig));
  for (size_t i = json_array_size(flat); i-- > 0;) {
    json_t *t = json_array_get(flat, i);
    size_t n = json_array_size(steps);
    if (is_type(t, "group") && n) {
      json_t *body = json_array_get(steps, n - 1);
      t = json_pack("{s:s,s:[],s:{s:O,s:O,s:{}},s:{},s:s,s:b}", "task", "celery.chord", "args",
                    "kwargs", "header", t, "body", body, "kwargs", "options", "subtask_type",
                    "chord", "immutable", 0);
      json_array_remove(steps, n - 1);
      json_array_append_new(steps, t);
    } else {
      json_array_append(steps, t);
    }
  }
  size_t n = json_array_size(steps);
  json_t *root = json_object_get(o, "root_id"), *errbacks = json_object_get(o, "link_error");
  for (size_t i = 0; i < n; i++) {
    json_t *t = json_array_get(steps, i);
    if (i == 0) { /* the last task: what the chain as a whole was given */
      freeze(t, ostr(o, "task_id"), root, json_object_get(o, "group_id"),
             json_object_get(o, "chord"), json_object_get(o, "group_index"));
      json_t *link = json_object_get(o, "link"), *k;
      if (json_is_array(link) || json_is_object(link)) {
        json_t *mine = json_object_get(opts_of(t), "link"), *k2;
        json_t *all = json_array();
        json_array_extend(all, as_list(mine, &k2));
        json_array_extend(all, as_list(link, &k));
        json_object_set_new(opts_of(t), "link", all);
        json_decref(k);
        json_decref(k2);
      }
    } else {
      freeze(t, NULL, root, NULL, NULL, NULL);
    }
    if (json_is_array(errbacks) || json_is_object(errbacks)) {
      json_t *k, *k2, *all = json_array();
      json_array_extend(all, as_list(json_object_get(opts_of(t), "link_error"), &k2));
      json_array_extend(all, as_list(errbacks, &k));
      json_object_set_new(opts_of(t), "link_error", all);
      json_decref(k);
      json_decref(k2);
    }
  }
  if (n) {
    json_t *first = json_incref(json_array_get(steps, n - 1));
    json_array_remove(steps, n - 1);
    static const char *const run_params[] = {"group_id", "chord", "task_id", "link",
                                             "link_error", "root_id", "parent_id",
                                             "group_index"};
    for (size_t i = 0; i < sizeof run_params / sizeof *run_params; i++)
      json_object_del(o, run_params[i]);
    json_t *chain = json_array(), *outer = json_object_get(o, "chain");
    if (json_is_array(outer)) json_array_extend(chain, outer);
    json_array_extend(chain, steps);
    json_object_set_new(o, "chain", chain);
    er__cel_apply(p, first, pre, o);
    json_decref(first);
  }
  json_decref(steps);
  json_decref(flat);
  json_decref(pre);
  json_decref(o);
}

/* chord.run: the body takes the chord's options and an id; the header's
 * tasks are published as a group (the header's task_id, else a new id),
 * each carrying the body; the previous result goes to the header. */
static void apply_chord(er__cel_pub_t *p, json_t *sig, json_t *prefix, json_t *over) {
  json_t *kw = json_object_get(sig, "kwargs");
  json_t *header = json_object_get(kw, "header");
  if (!json_is_object(json_object_get(kw, "body"))) {
    er_log(ER_LOG_WARN, "celery: a chord without a body is not sent");
    return;
  }
  json_t *o = merged(json_object_get(sig, "options"), over);
  json_t *pre = with_prefix(sig, prefix);
  json_t *tasks = json_is_array(header) ? header
                  : is_type(header, "group") || is_type(header, "chain") ? tasks_of(header)
                  : NULL;
  json_t *one = tasks || !json_is_object(header) ? NULL : json_pack("[O]", header);
  er_id_t nid;
  er_id_new(&nid);
  const char *htid = ostr(json_object_get(header, "options"), "task_id");
  json_t *gid = json_string(htid ? htid : nid.text);
  json_t *body = json_deep_copy(json_object_get(kw, "body"));
  json_t *task_id = json_incref(json_object_get(o, "task_id"));
  json_object_del(o, "task_id");
  json_t *root = json_incref(json_object_get(json_object_get(body, "options"), "root_id"));
  json_object_update(opts_of(body), o);
  freeze(body, json_string_value(task_id), root, NULL, NULL, NULL);
  json_object_del(o, "chain");
  json_object_del(o, "chord");
  json_object_del(o, "group_index");
  json_t *members = json_array(), *t;
  unroll(members, tasks ? tasks : one);
  size_t i;
  json_array_foreach(members, i, t) {
    json_t *index = json_integer((json_int_t)i);
    freeze(t, NULL, root, gid, body, index);
    json_decref(index);
  }
  if (json_array_size(members)) {
    json_object_set(o, "task_id", gid);
    apply_group(p, NULL, members, pre, o);
  } else { /* nothing will join: the body runs at once with no results */
    json_t *none = json_pack("[[]]");
    er__cel_apply(p, body, none, NULL);
    json_decref(none);
  }
  json_decref(members);
  json_decref(one);
  json_decref(root);
  json_decref(task_id);
  json_decref(body);
  json_decref(gid);
  json_decref(pre);
  json_decref(o);
}

void er__cel_apply(er__cel_pub_t *p, json_t *sig, json_t *prefix, json_t *over) {
  if (!json_is_object(sig)) return;
  const char *st = ostr(sig, "subtask_type");
  if (p->depth >= MAX_DEPTH) {
    er_log(ER_LOG_WARN, "celery: a canvas nested deeper than %d is not sent", MAX_DEPTH);
    return;
  }
  p->depth++;
  if (!st || !*st) publish(p, sig, prefix, over);
  else if (!strcmp(st, "chain")) apply_chain(p, sig, prefix, over);
  else if (!strcmp(st, "group"))
    apply_group(p, json_object_get(sig, "options"), tasks_of(sig), prefix, over);
  else if (!strcmp(st, "chord")) apply_chord(p, sig, prefix, over);
  else
    er_log(ER_LOG_WARN, "celery: a signature of type %s is not sent by this worker (task %s)", st,
           ostr(sig, "task") ? ostr(sig, "task") : "?");
  p->depth--;
}

void er__cel_apply_links(er__cel_pub_t *p, json_t *links, json_t *prefix, json_t *over) {
  if (json_array_size(links) == 1) {
    er__cel_apply(p, json_array_get(links, 0), prefix, over);
    return;
  }
  /* as Celery's worker: several links are sent as one group, each group
   * among them on its own */
  json_t *plain = json_array(), *l;
  size_t i;
  json_array_foreach(links, i, l) {
    if (is_type(l, "group")) er__cel_apply(p, l, prefix, over);
    else json_array_append(plain, l);
  }
  if (json_array_size(plain)) apply_group(p, NULL, plain, prefix, over);
  json_decref(plain);
}

void er__cel_apply_errbacks(er__cel_pub_t *p, json_t *errbacks, json_t *prefix, json_t *over) {
  /* as the backend's _call_task_errbacks sends errbacks that take a task id:
   * as one group, even one alone */
  if (json_array_size(errbacks)) apply_group(p, NULL, errbacks, prefix, over);
}
