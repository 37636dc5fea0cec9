/* The Redis store on a three-node Redis Cluster: a URL naming any node works
 * (MOVED is followed), stores under several prefixes spread over the nodes,
 * scripts are loaded on each node that needs them, wake-ups cross nodes, a
 * prefix's slot moved under open handles is followed (ASK while it moves,
 * MOVED after) and no script runs on a store half moved, and a redirect
 * loop ends. Run by redis_cluster.sh:
 *
 *   redis_cluster.sh run test_store_redis_cluster   (ERRAND_TEST_CLUSTER="P1 P2 P3")
 *
 * The record helpers are the conformance suite's (conformance_util.c). */
#include "conformance.h"

#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

#define NODES 3

static int g_ports[NODES];
static char g_ids[NODES][48]; /* CLUSTER MYID */
static char g_run[16];        /* this run's tag, in every prefix */

/* node's reply to a command (NULL when it cannot be reached), on a
 * connection of its own; safe in any thread. */
static redisReply *vnode_try(int node, const char *fmt, va_list ap) {
  redisContext *c = redisConnect("127.0.0.1", g_ports[node]);
  redisReply *r = c && !c->err ? redisvCommand(c, fmt, ap) : NULL;
  if (c) redisFree(c);
  return r;
}

static redisReply *node_try(int node, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  redisReply *r = vnode_try(node, fmt, ap);
  va_end(ap);
  return r;
}

/* The same for a command that must not fail. */
static redisReply *node_cmd(int node, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  redisReply *r = vnode_try(node, fmt, ap);
  va_end(ap);
  if (!r || r->type == REDIS_REPLY_ERROR)
    fail_msg("%s on %d: %s", fmt, g_ports[node], r ? r->str : "no reply");
  return r;
}

/* r's integer; r is freed. */
static long long int_of(redisReply *r) {
  if (r->type != REDIS_REPLY_INTEGER) fail_msg("not a number (reply type %d)", r->type);
  long long v = r->integer;
  freeReplyObject(r);
  return v;
}

/* How many keys of slot node holds (whether it owns the slot or not). */
static long long slot_keys(int node, int slot) {
  return int_of(node_cmd(node, "CLUSTER COUNTKEYSINSLOT %d", slot));
}

/* The slot of prefix's keys. */
static int slot_of(const char *prefix) {
  char key[256];
  snprintf(key, sizeof key, "errand:{%s}:", prefix);
  return (int)int_of(node_cmd(0, "CLUSTER KEYSLOT %s", key));
}

/* The node that owns slot, as node asker sees it (CLUSTER SLOTS). */
static int owner_of(int slot, int asker) {
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
static void prefix_on(int k, const char *what, char *out, size_t size) {
  for (int n = 0;; n++) {
    snprintf(out, size, "%s-%s-%d", what, g_run, n);
    if (owner_of(slot_of(out), 0) == k) return;
  }
}

/* A store for prefix through node's URL, with more options. */
static er_store_t *open_via(int node, const char *prefix, const char *more) {
  char url[300], err[256];
  snprintf(url, sizeof url, "redis://127.0.0.1:%d/0?prefix=%s%s", g_ports[node], prefix, more);
  er_store_t *s = NULL;
  int rc = er_store_open(url, &s, err, sizeof err);
  if (rc) fail_msg("open %s: %s: %s", url, er_err_name(rc), err);
  return s;
}

/* Whether the task's hash is on node (a plain connection sees only the
 * keys of its own node). */
static bool task_on(int node, const char *prefix, const char *id) {
  char key[200];
  snprintf(key, sizeof key, "errand:{%s}:task:%s", prefix, id);
  redisReply *r = node_try(node, "EXISTS %s", key);
  assert_non_null(r);
  bool on = r->type == REDIS_REPLY_INTEGER && r->integer == 1; /* not MOVED */
  freeReplyObject(r);
  return on;
}

static void fx_init(fx_t *f, er_store_t *s, const char *queue) {
  memset(f, 0, sizeof *f);
  f->s = s;
  snprintf(f->queue, sizeof f->queue, "%s", queue);
  snprintf(f->tag, sizeof f->tag, "%s", g_run);
}

static json_int_t stat_of(er_store_t *s, const char *queue, const char *state) {
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
static void test_slot_moves(void **state) {
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
static void test_half_moved(void **state) {
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

/* ---- redirects that cannot be followed to the end ------------------------- */

/* A fake node: answers every command of its n-th connection with
 * reply[n] (the last one for all later connections), one connection at a
 * time. */
typedef struct fake {
  int fd, port;
  char reply[2][128];
  atomic_bool stop;
  pthread_t thread;
} fake_t;

static void *fake_main(void *arg) {
  fake_t *fk = arg;
  for (int n = 0; !atomic_load(&fk->stop);) {
    struct pollfd p = {fk->fd, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0) continue;
    int c = accept(fk->fd, NULL, NULL);
    if (c < 0) continue;
    const char *reply = fk->reply[n < 1 || !fk->reply[1][0] ? 0 : 1];
    n++;
    char buf[4096];
    while (!atomic_load(&fk->stop)) {
      struct pollfd q = {c, POLLIN, 0};
      if (poll(&q, 1, 50) <= 0) continue;
      /* one command a read: the client waits for each reply */
      if (read(c, buf, sizeof buf) <= 0) break;
      if (write(c, reply, strlen(reply)) < 0) break;
    }
    close(c);
  }
  return NULL;
}

/* A loopback socket bound to a free port; listening unless !listening (then
 * connecting to it is refused). */
static int loopback_socket(bool listening, int *port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  if (listening) assert_int_equal(listen(fd, 4), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
  *port = ntohs(a.sin_port);
  return fd;
}

/* Binds the fake; fake_run starts answering, once its replies are set. */
static void fake_bind(fake_t *fk) {
  memset(fk, 0, sizeof *fk);
  fk->fd = loopback_socket(true, &fk->port);
}

static void fake_run(fake_t *fk) {
  assert_int_equal(pthread_create(&fk->thread, NULL, fake_main, fk), 0);
}

static void fake_stop(fake_t *fk) {
  atomic_store(&fk->stop, true);
  pthread_join(fk->thread, NULL);
  close(fk->fd);
}

static er_store_t *open_fake(const fake_t *fk, const char *prefix) {
  char url[128], err[256];
  snprintf(url, sizeof url, "redis://127.0.0.1:%d/0?prefix=%s", fk->port, prefix);
  er_store_t *s = NULL;
  int rc = er_store_open(url, &s, err, sizeof err);
  if (rc) fail_msg("open %s: %s", url, err);
  return s;
}

/* A node that always redirects to itself: the call ends, saying why. */
static void test_redirect_loop(void **state) {
  (void)state;
  fake_t fk;
  fake_bind(&fk);
  snprintf(fk.reply[0], sizeof fk.reply[0], "-MOVED 1 127.0.0.1:%d\r\n", fk.port);
  fake_run(&fk);
  char url[128], err[256];
  snprintf(url, sizeof url, "redis://127.0.0.1:%d/0?prefix=loop", fk.port);
  er_store_t *s = (er_store_t *)1;
  assert_int_equal(er_store_open(url, &s, err, sizeof err), ER_EUNAVAILABLE);
  assert_null(s);
  print_message("%s\n", err);
  assert_non_null(strstr(err, "redirects"));
  fake_stop(&fk);
}

/* Enqueues one task through s and checks it landed on node k. */
static void enqueue_on(er_store_t *s, const char *prefix, int k) {
  fx_t f;
  fx_init(&f, s, "q");
  er_task_rec_t *r = mk(&f, "t");
  assert_int_equal(enq(&f, r), 0);
  assert_true(task_on(k, prefix, r->id));
  er_task_rec_free(r);
}

/* "MOVED <slot> :<port>" (no host: the one the client reached) is followed
 * to that port on the same host. */
static void test_moved_without_host(void **state) {
  (void)state;
  char prefix[64];
  prefix_on(1, "nohost", prefix, sizeof prefix);
  fake_t fk;
  fake_bind(&fk);
  snprintf(fk.reply[0], sizeof fk.reply[0], "-MOVED %d :%d\r\n", slot_of(prefix), g_ports[1]);
  fake_run(&fk);
  er_store_t *s = open_fake(&fk, prefix);
  enqueue_on(s, prefix, 1);
  er_store_close(s);
  fake_stop(&fk);
}

/* A MOVED to a node that cannot be reached (it failed, say): the handle asks
 * its URL's node again, which now names the slot's owner. */
static void test_moved_to_dead_node(void **state) {
  (void)state;
  char prefix[64];
  prefix_on(2, "dead", prefix, sizeof prefix);
  int dead;
  int dead_fd = loopback_socket(false, &dead);
  fake_t fk;
  fake_bind(&fk);
  snprintf(fk.reply[0], sizeof fk.reply[0], "-MOVED %d 127.0.0.1:%d\r\n", slot_of(prefix),
           dead);
  snprintf(fk.reply[1], sizeof fk.reply[1], "-MOVED %d 127.0.0.1:%d\r\n", slot_of(prefix),
           g_ports[2]);
  fake_run(&fk);
  er_store_t *s = open_fake(&fk, prefix);
  enqueue_on(s, prefix, 2);
  er_store_close(s);
  fake_stop(&fk);
  close(dead_fd);
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
