/* The Redis store on a three-node Redis Cluster: a URL naming any node works
 * (MOVED is followed), stores under several prefixes spread over the nodes,
 * scripts are loaded on each node that needs them, wake-ups cross nodes, a
 * prefix's slot moved under open handles is followed (ASK while it moves,
 * MOVED after) and no script runs on a store half moved, and a redirect
 * loop ends. Run by redis_cluster.sh:
 *
 *   redis_cluster.sh run test_store_redis_cluster   (ERRAND_TEST_CLUSTER="P1 P2 P3")
 *
 * The record helpers are the conformance suite's (conformance_util.c); the
 * slot moves are in redis_cluster_moves.c, the fake nodes in
 * redis_cluster_fake.c. */
#include "redis_cluster.h"

int g_ports[NODES];
char g_ids[NODES][48];
char g_run[16];

/* node's reply to a command (NULL when it cannot be reached), on a
 * connection of its own; safe in any thread. */
redisReply *vnode_try(int node, const char *fmt, va_list ap) {
  redisContext *c = redisConnect("127.0.0.1", g_ports[node]);
  redisReply *r = c && !c->err ? redisvCommand(c, fmt, ap) : NULL;
  if (c) redisFree(c);
  return r;
}

redisReply *node_try(int node, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  redisReply *r = vnode_try(node, fmt, ap);
  va_end(ap);
  return r;
}

/* The same for a command that must not fail. */
redisReply *node_cmd(int node, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  redisReply *r = vnode_try(node, fmt, ap);
  va_end(ap);
  if (!r || r->type == REDIS_REPLY_ERROR)
    fail_msg("%s on %d: %s", fmt, g_ports[node], r ? r->str : "no reply");
  return r;
}

/* r's integer; r is freed. */
long long int_of(redisReply *r) {
  if (r->type != REDIS_REPLY_INTEGER) fail_msg("not a number (reply type %d)", r->type);
  long long v = r->integer;
  freeReplyObject(r);
  return v;
}

/* How many keys of slot node holds (whether it owns the slot or not). */
long long slot_keys(int node, int slot) {
  return int_of(node_cmd(node, "CLUSTER COUNTKEYSINSLOT %d", slot));
}

/* The slot of prefix's keys. */
int slot_of(const char *prefix) {
  char key[256];
  snprintf(key, sizeof key, "errand:{%s}:", prefix);
  return (int)int_of(node_cmd(0, "CLUSTER KEYSLOT %s", key));
}

/* The node that owns slot, as node asker sees it (CLUSTER SLOTS). */
int owner_of(int slot, int asker) {
  redisReply *r = node_cmd(asker, "CLUSTER SLOTS");
  int port = -1;
  for (size_t i = 0; i < r->elements; i++) {
    redisReply *e = r->element[i];
    if (slot >= e->element[0]->integer && slot <= e->element[1]->integer)
      port = (int)e->element[2]->element[1]->integer;
  }
  freeReplyObject(r);
  for (int k = 0; k < NODES; k++)
    if (g_ports[k] == port) return k;
  fail_msg("slot %d has no owner", slot);
  return -1;
}

/* A new prefix whose slot lives on node k. */
void prefix_on(int k, const char *what, char *out, size_t size) {
  for (int n = 0;; n++) {
    snprintf(out, size, "%s-%s-%d", what, g_run, n);
    if (owner_of(slot_of(out), 0) == k) return;
  }
}

/* A store for prefix through node's URL, with more options. */
er_store_t *open_via(int node, const char *prefix, const char *more) {
  char url[300], err[256];
  snprintf(url, sizeof url, "redis://127.0.0.1:%d/0?prefix=%s%s", g_ports[node], prefix, more);
  er_store_t *s = NULL;
  int rc = er_store_open(url, &s, err, sizeof err);
  if (rc) fail_msg("open %s: %s: %s", url, er_err_name(rc), err);
  return s;
}

/* Whether the task's hash is on node (a plain connection sees only the
 * keys of its own node). */
bool task_on(int node, const char *prefix, const char *id) {
  char key[200];
  snprintf(key, sizeof key, "errand:{%s}:task:%s", prefix, id);
  redisReply *r = node_try(node, "EXISTS %s", key);
  assert_non_null(r);
  bool on = r->type == REDIS_REPLY_INTEGER && r->integer == 1; /* not MOVED */
  freeReplyObject(r);
  return on;
}

void fx_init(fx_t *f, er_store_t *s, const char *queue) {
  memset(f, 0, sizeof *f);
  f->s = s;
  snprintf(f->queue, sizeof f->queue, "%s", queue);
  snprintf(f->tag, sizeof f->tag, "%s", g_run);
}

json_int_t stat_of(er_store_t *s, const char *queue, const char *state) {
  json_t *st = NULL;
  assert_int_equal(er_store_stats(s, &st), 0);
  json_t *q = json_object_get(json_object_get(st, "queues"), queue);
  json_int_t n = json_integer_value(json_object_get(q, state));
  json_decref(st);
  return n;
}

/* Every kind of call on f's store, whose slot is on node k. */
static void round_trip(fx_t *f, const char *prefix, int k) {
  er_task_rec_t *a = mk(f, "a"), *b = mk(f, "b");
  int64_t t = a->eta_ms;
  assert_int_equal(enq(f, a), 0);
  assert_int_equal(enq(f, b), 0);
  assert_true(task_on(k, prefix, a->id));
  for (int n = 0; n < NODES; n++)
    if (n != k) assert_false(task_on(n, prefix, a->id));
  assert_int_equal(stat_of(f->s, f->queue, "PENDING"), 2);

  er_task_rec_t *got = reserve1(f, t, 60000);
  assert_string_equal(got->id, a->id);
  assert_int_equal(er_store_progress(f->s, got->id, got->attempt, 0.5, "half"), 0);
  json_t *res = json_pack("{s:s}", "on", prefix);
  assert_false(complete1(f, got->id, got->attempt, ER_STATE_SUCCESS, res, NULL, t + 1, 0));
  er_task_rec_t *done = get(f, a->id);
  assert_int_equal(done->state, ER_STATE_SUCCESS);
  assert_json_eq(done->result, res);
  er_task_rec_free(done);

  er_task_state_t st;
  assert_int_equal(er_store_revoke(f->s, b->id, &st), 0);
  assert_int_equal(st, ER_STATE_PENDING); /* the state it had */
  done = get(f, b->id);
  assert_int_equal(done->state, ER_STATE_REVOKED);
  er_task_rec_free(done);
  assert_int_equal(stat_of(f->s, f->queue, "SUCCESS"), 1);
  assert_int_equal(stat_of(f->s, f->queue, "REVOKED"), 1);

  json_t *info = json_pack("{s:s}", "id", prefix), *ws = NULL;
  assert_int_equal(er_store_heartbeat(f->s, info, t, 60000), 0);
  assert_int_equal(er_store_workers(f->s, t + 1, &ws), 0);
  assert_int_equal(json_array_size(ws), 1);
  assert_string_equal(json_string_value(json_object_get(json_array_get(ws, 0), "id")), prefix);
  json_decref(ws);
  json_decref(info);
  json_decref(res);
  er_task_rec_free(got);
  er_task_rec_free(a);
  er_task_rec_free(b);
}

/* A store on each node, each opened through another node, all open at
 * once; the scripts flushed everywhere first, so each node is sent
 * EVALSHA for a script this process loaded on another (NOSCRIPT, then
 * SCRIPT LOAD on that node). */
static void test_any_node(void **state) {
  (void)state;
  for (int n = 0; n < NODES; n++) {
    freeReplyObject(node_cmd(n, "SCRIPT FLUSH"));
  }
  char prefixes[NODES][64];
  er_store_t *s[NODES];
  fx_t f[NODES];
  for (int k = 0; k < NODES; k++) {
    prefix_on(k, "any", prefixes[k], sizeof prefixes[k]);
    s[k] = open_via((k + 1) % NODES, prefixes[k], "");
    fx_init(&f[k], s[k], "q");
  }
  for (int k = 0; k < NODES; k++) round_trip(&f[k], prefixes[k], k);
  /* Each node holds its own store's keys, and only those. */
  for (int n = 0; n < NODES; n++)
    for (int k = 0; k < NODES; k++) {
      long long keys = slot_keys(n, slot_of(prefixes[k]));
      if (n == k)
        assert_true(keys > 0);
      else
        assert_int_equal(keys, 0);
    }
  for (int k = 0; k < NODES; k++) er_store_close(s[k]);
}

/* A waiter whose subscription is on one node is woken by an enqueue that
 * runs on the slot's node, made through a third. */
static void test_wake_across_nodes(void **state) {
  (void)state;
  char prefix[64];
  prefix_on(2, "wake", prefix, sizeof prefix);
  er_store_t *waiter = open_via(0, prefix, ""), *sender = open_via(1, prefix, "");
  /* The first look reports a change (the subscription is new); then quiet. */
  assert_int_equal(er_store_wait_change(waiter, 5000), 0);
  assert_int_equal(er_store_wait_change(waiter, 50), ER_ETIMEDOUT);
  fx_t f;
  fx_init(&f, sender, "q");
  er_task_rec_t *r = mk(&f, "t");
  assert_int_equal(enq(&f, r), 0);
  assert_int_equal(er_store_wait_change(waiter, 10000), 0);
  er_task_rec_free(r);
  er_store_close(sender);
  er_store_close(waiter);
}

/* A cluster has database 0 only: another is refused at open, saying why. */
static void test_database_refused(void **state) {
  (void)state;
  char url[128], err[256];
  snprintf(url, sizeof url, "redis://127.0.0.1:%d/1?prefix=db", g_ports[0]);
  er_store_t *s = (er_store_t *)1;
  assert_int_equal(er_store_open(url, &s, err, sizeof err), ER_EINVAL);
  assert_null(s);
  print_message("%s\n", err);
  assert_non_null(strstr(err, "SELECT"));
}

int main(void) {
  const char *ports = getenv("ERRAND_TEST_CLUSTER");
  if (!ports || sscanf(ports, "%d %d %d", &g_ports[0], &g_ports[1], &g_ports[2]) != NODES) {
    fprintf(stderr, "usage: ERRAND_TEST_CLUSTER=\"PORT1 PORT2 PORT3\" test_store_redis_cluster "
                    "(redis_cluster.sh run starts a cluster and sets it)\n");
    return 2;
  }
  for (int k = 0; k < NODES; k++) {
    redisReply *r = node_try(k, "CLUSTER MYID");
    if (!r || r->type != REDIS_REPLY_STRING) {
      fprintf(stderr, "node %d: no CLUSTER MYID\n", g_ports[k]);
      return 1;
    }
    snprintf(g_ids[k], sizeof g_ids[k], "%s", r->str);
    freeReplyObject(r);
  }
  er_id_t id;
  er_id_new(&id);
  snprintf(g_run, sizeof g_run, "%.8s", id.text + strlen(id.text) - 8);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_any_node),
      cmocka_unit_test(test_wake_across_nodes),
      cmocka_unit_test(test_database_refused),
      cmocka_unit_test(test_redirect_loop),
      cmocka_unit_test(test_moved_without_host),
      cmocka_unit_test(test_moved_to_dead_node),
      /* last: they reshard */
      cmocka_unit_test(test_slot_moves),
      cmocka_unit_test(test_half_moved),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
