/* Redis Cluster: a store's slot moved under open handles (see
 * redis_cluster.c). */
#include "redis_cluster.h"

#include <pthread.h>

/* ---- a slot that moves under open handles ----------------------------------- */

/* These run in a thread too: they report failure in err instead of
 * asserting. */
static bool run_cmd(int node, char *err, size_t size, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  redisReply *r = vnode_try(node, fmt, ap);
  va_end(ap);
  bool ok = r && r->type != REDIS_REPLY_ERROR;
  if (!ok) snprintf(err, size, "%s on %d: %s", fmt, g_ports[node], r ? r->str : "no reply");
  if (r) freeReplyObject(r);
  return ok;
}

/* Opens the move of slot from node `from` to node `to`. */
static bool move_begin(int slot, int from, int to, char *err, size_t size) {
  return run_cmd(to, err, size, "CLUSTER SETSLOT %d IMPORTING %s", slot, g_ids[from]) &&
         run_cmd(from, err, size, "CLUSTER SETSLOT %d MIGRATING %s", slot, g_ids[to]);
}

/* Moves the slot's keys still on `from` to `to` in one MIGRATE; with
 * hold_back, all but the store's counts and version. */
static bool move_keys(int slot, int from, int to, bool hold_back, char *err, size_t size) {
  redisContext *c = redisConnect("127.0.0.1", g_ports[from]);
  redisReply *keys = c && !c->err ? redisCommand(c, "CLUSTER GETKEYSINSLOT %d 100000", slot) : NULL;
  bool ok = keys && keys->type == REDIS_REPLY_ARRAY && keys->elements > 0;
  if (!ok) snprintf(err, size, "no keys in slot %d on %d", slot, g_ports[from]);
  const char **argv = ok ? calloc(7 + keys->elements, sizeof *argv) : NULL;
  if (ok) {
    char port[16];
    snprintf(port, sizeof port, "%d", g_ports[to]);
    const char *head[] = {"MIGRATE", "127.0.0.1", port, "", "0", "5000", "KEYS"};
    memcpy(argv, head, sizeof head);
    int argc = 7;
    for (size_t i = 0; i < keys->elements; i++) {
      const char *k = keys->element[i]->str;
      size_t n = strlen(k);
      if (hold_back && ((n > 6 && !strcmp(k + n - 6, "counts")) ||
                        (n > 7 && !strcmp(k + n - 7, "version"))))
        continue;
      argv[argc++] = k;
    }
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);
    ok = r && r->type != REDIS_REPLY_ERROR;
    if (!ok) snprintf(err, size, "MIGRATE: %s", r ? r->str : c->errstr);
    if (r) freeReplyObject(r);
  }
  free(argv);
  if (keys) freeReplyObject(keys);
  if (c) redisFree(c);
  return ok;
}

/* Closes the move: the slot is to's, on every node (to first, as Redis
 * asks). */
static bool move_end(int slot, int to, char *err, size_t size) {
  for (int i = 0; i < NODES; i++)
    if (!run_cmd((to + i) % NODES, err, size, "CLUSTER SETSLOT %d NODE %s", slot, g_ids[to]))
      return false;
  return true;
}

/* Finishes a move in the background, while a call waits for it. */
typedef struct mover {
  int slot, from, to;
  bool keys; /* the keys still on `from` move first */
  char err[300];
  pthread_t thread;
} mover_t;

static void *mover_main(void *arg) {
  mover_t *m = arg;
  sleep_ms(300);
  if (m->keys && !move_keys(m->slot, m->from, m->to, false, m->err, sizeof m->err)) return NULL;
  sleep_ms(200); /* all moved, the slot not yet: ASK, then TRYAGAIN */
  move_end(m->slot, m->to, m->err, sizeof m->err);
  return NULL;
}

static void mover_start(mover_t *m, int slot, int from, int to, bool keys) {
  *m = (mover_t){.slot = slot, .from = from, .to = to, .keys = keys};
  assert_int_equal(pthread_create(&m->thread, NULL, mover_main, m), 0);
}

static void mover_join(mover_t *m) {
  pthread_join(m->thread, NULL);
  if (m->err[0]) fail_msg("moving slot %d: %s", m->slot, m->err);
}

static json_int_t pending(er_store_t *s) { return stat_of(s, "q", "PENDING"); }

/* A store whose slot is on node `from`, opened through node via, with task
 * a sent (its keys are on `from`) and b made; then the move of its slot to
 * node `to` begun and its keys moved (with hold_back, all but counts and
 * version). */
typedef struct moving {
  char prefix[64];
  int slot;
  er_store_t *s;
  fx_t f;
  er_task_rec_t *a, *b;
} moving_t;

static void moving_start(moving_t *m, const char *what, int from, int via, int to,
                         bool hold_back) {
  char err[300];
  prefix_on(from, what, m->prefix, sizeof m->prefix);
  m->slot = slot_of(m->prefix);
  m->s = open_via(via, m->prefix, "&timeout_ms=30000");
  fx_init(&m->f, m->s, "q");
  m->a = mk(&m->f, "a");
  m->b = mk(&m->f, "b");
  assert_int_equal(enq(&m->f, m->a), 0);
  assert_true(task_on(from, m->prefix, m->a->id));
  if (!move_begin(m->slot, from, to, err, sizeof err) ||
      !move_keys(m->slot, from, to, hold_back, err, sizeof err))
    fail_msg("%s", err);
}

static void moving_free(moving_t *m) {
  er_task_rec_free(m->a);
  er_task_rec_free(m->b);
  er_store_close(m->s);
}

/* A handle bound to node 0 (by a MOVED from node 1) while its slot moves to
 * node 2: once the keys are there, plain commands (an open's version check,
 * stats) follow ASK to them; a script waits (TRYAGAIN) until the slot has
 * moved, then follows the MOVED, and the handle stays on node 2. */
void test_slot_moves(void **state) {
  (void)state;
  moving_t m;
  moving_start(&m, "moves", 0, 1, 2, false);
  /* ASK: the old handle, and a new one through the slot's node */
  assert_int_equal(pending(m.s), 1);
  er_store_t *s2 = open_via(0, m.prefix, "");
  assert_int_equal(pending(s2), 1);
  /* a script waits for the move, then follows it */
  mover_t mv;
  mover_start(&mv, m.slot, 0, 2, false);
  assert_int_equal(enq(&m.f, m.b), 0);
  mover_join(&mv);
  assert_int_equal(owner_of(m.slot, 0), 2);
  assert_int_equal(pending(s2), 2);

  int64_t t = m.b->eta_ms;
  er_task_rec_t *got = reserve1(&m.f, t + 1, 60000);
  assert_string_equal(got->id, m.a->id);
  assert_false(complete1(&m.f, got->id, got->attempt, ER_STATE_SUCCESS, NULL, NULL, t + 2, 0));
  assert_true(task_on(2, m.prefix, m.a->id));
  assert_true(task_on(2, m.prefix, m.b->id));
  assert_int_equal(slot_keys(0, m.slot), 0);
  er_task_rec_free(got);
  er_store_close(s2);
  moving_free(&m);
}

/* A call made while only some of a store's keys have moved waits until all
 * have: a script run on either node then would see half a store (here: it
 * would write a counts hash on the new node, and moving the old one there
 * would fail, BUSYKEY). */
void test_half_moved(void **state) {
  (void)state;
  moving_t m;
  moving_start(&m, "half", 1, 0, 2, true);
  mover_t mv;
  mover_start(&mv, m.slot, 1, 2, true);
  assert_int_equal(enq(&m.f, m.b), 0);
  mover_join(&mv);
  assert_int_equal(pending(m.s), 2);
  assert_true(task_on(2, m.prefix, m.a->id));
  assert_true(task_on(2, m.prefix, m.b->id));
  assert_int_equal(slot_keys(1, m.slot), 0);
  moving_free(&m);
}
