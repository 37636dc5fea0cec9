/* The Redis backend's private header: the handle, the connection layer and
 * the Lua scripts shared by src/store/redis_*.c.
 *
 *   redis_open.c    URL, open/close, the layout version, the vtable
 *   redis_conn.c    connections: timeouts, reconnect with backoff, SIGPIPE,
 *                   scripts by EVALSHA (loaded once, reloaded on NOSCRIPT)
 *   redis_cluster.c nodes: connecting to one (AUTH, SELECT), and following
 *                   a Redis Cluster's MOVED and ASK redirects
 *   redis_lua.c     the scripts' registry and assembly (Lua in lua/, one file a script)
 *   redis_rec.c     task records and outcomes to script arguments and back
 *   redis_tasks.c   enqueue, get, revoke, purge
 *   redis_work.c    reserve, renew, complete, progress
 *   redis_maint.c   maintain
 *   redis_admin.c   heartbeats, workers, stats
 *   redis_list.c    listing tasks
 *   redis_docs.c    transition batches (apply), documents and counters
 *   redis_wake.c    wake-ups: a SUBSCRIBEd connection behind an epoll fd
 *   redis_watch.c   precise wake-ups (watch, read_wakeups) and next_due
 *
 * The key layout is described in docs/store-redis.md; every key of a store
 * lives under one hash tag, "errand:{P}:", so one Redis Cluster slot holds
 * everything a script touches. */
#ifndef ER_REDIS_INTERNAL_H
#define ER_REDIS_INTERNAL_H

#include <hiredis/hiredis.h>
#include <signal.h>

#include "store/store_internal.h"

/* The key layout this code writes (the value of errand:{P}:version); a store
 * with a larger one is refused, one with version 1 (no ids index, no counts
 * by name) is migrated when opened (lua/migrate.lua). */
#define ER_RD_LAYOUT_VERSION 2

/* Scripts, by number: src/store/lua/<name>.lua after the shared prelude
 * (redis_lua.c). */
typedef enum er_rd_script {
  ER_RD_ENQUEUE,
  ER_RD_GET,
  ER_RD_REVOKE,
  ER_RD_PURGE,
  ER_RD_RESERVE,
  ER_RD_RENEW,
  ER_RD_COMPLETE,
  ER_RD_PROGRESS,
  ER_RD_MAINTAIN,
  ER_RD_HEARTBEAT,
  ER_RD_WORKER_GONE,
  ER_RD_WORKERS,
  ER_RD_APPLY,
  ER_RD_DOCREAD,
  ER_RD_NEXT_DUE,
  ER_RD_LIST,
  ER_RD_MIGRATE,
  ER_RD_NSCRIPTS
} er_rd_script_t;

typedef struct er_rd {
  er_store_t base; /* first: er_store_t * and er_rd_t * convert */
  /* from the URL */
  char *host;
  int port;
  char *user, *password; /* NULL when absent */
  int db;
  char *prefix;
  int timeout_ms;
  /* "errand:{P}:", the start of every key; KEYS[1] of every script */
  char *base_key;
  /* "errand:{P}:version", KEYS[2] of every script, which never touch it:
   * base_key never exists and this key always does, so while a Redis
   * Cluster moves the slot, one of the two is missing on either node and
   * both answer TRYAGAIN (waited out) until the move is over: no script
   * runs on a store half moved. */
  char *guard_key;
  /* the wake-up channels' base name (scripts publish on <it>:q:<queue>,
   * <it>:fin and <it>:ctl), and this handle's origin in its messages */
  char *channel;
  char origin[40];
  /* the command connection (NULL while down) and its backoff */
  redisContext *c;
  uint64_t next_connect_ms; /* monotonic: no connect attempt before */
  unsigned backoff_ms;
  char shas[ER_RD_NSCRIPTS][41]; /* "" until loaded */
  /* Redis Cluster: the node c talks to since a MOVED named it (all of a
   * handle's keys share one slot, so one node serves every call); NULL: the
   * URL's node */
  char *node_host;
  int node_port;
  /* wake-ups (redis_wake.c) */
  redisContext *sub; /* SUBSCRIBEd, or NULL */
  int epfd;          /* epoll over sub's socket and evfd: the wake-up fd */
  int evfd;          /* eventfd: "look, something may have been missed" */
  bool changed;      /* another's change seen (or maybe missed), not yet reported */
  bool wake_used;    /* wake-ups were asked for: keep subscribed */
  uint64_t sub_next_ms;
  unsigned sub_backoff_ms;
  /* precise wake-ups (redis_watch.c): what er_store_watch asked for, and
   * what arrived since the last read */
  bool watching;
  char **w_queues;
  size_t w_nqueues;
  bool w_finished, w_control;
  bool got_work, got_control, got_overflow;
  char **got_fin;
  size_t got_nfin, got_cap;
} er_rd_t;

/* Arguments per task record (er__rd_args_rec) and per outcome
 * (er__rd_args_done); the scripts get the same numbers. */
#define ER_RD_REC_FIELDS 17
#define ER_RD_DONE_FIELDS 7
/* A script that finishes more tasks than this publishes "too many to list". */
#define ER_RD_WAKE_IDS_MAX 1000

static inline er_rd_t *er__rd(er_store_t *s) { return (er_rd_t *)s; }

/* ---- redis_conn.c ---- */

/* Runs script with ARGV = origin, channel, argv[0..argc). *out is the reply
 * (free with freeReplyObject), never an error reply: those become codes.
 * idempotent: the call may be repeated on a new connection when the old one
 * broke after sending it. 0 or an ER_E* code (error recorded). */
int er__rd_script(er_rd_t *rd, er_rd_script_t script, bool idempotent, int argc,
                  const char *const *argv, const size_t *lens, redisReply **out);
/* Runs a plain read-only command. */
int er__rd_command(er_rd_t *rd, int argc, const char *const *argv, const size_t *lens,
                   redisReply **out, const char *what);
/* Drops the command connection. */
void er__rd_disconnect(er_rd_t *rd);
/* SIGPIPE-safe I/O on a hiredis context: a write to a socket the server
 * closed must not kill the process. */
typedef struct er_rd_sigpipe {
  bool was_pending, blocked;
  sigset_t old;
} er_rd_sigpipe_t;
void er__rd_sigpipe_block(er_rd_sigpipe_t *g);
void er__rd_sigpipe_unblock(er_rd_sigpipe_t *g);
/* Monotonic sleep of ms milliseconds. */
void er__rd_sleep_ms(unsigned ms);

/* ---- redis_cluster.c ---- */

/* Connects to the node the handle talks to (the URL's, or the one a MOVED
 * named: in a cluster, the slot's owner, whose subscribers get the
 * store's messages without a trip over the cluster bus) and runs AUTH, and
 * SELECT unless for pub/sub, within timeout_ms, with commands timing out
 * after timeout_ms. 0, or ER_EUNAVAILABLE (cannot reach it), ER_EAUTH (AUTH
 * refused) or ER_EINVAL (no such DB), with errbuf filled. */
int er__rd_connect(er_rd_t *rd, int timeout_ms, bool select_db, redisContext **out,
                   char *errbuf, size_t size);
/* The same to host:port (a cluster node a redirect named). */
int er__rd_connect_to(er_rd_t *rd, const char *host, int port, int timeout_ms, bool select_db,
                      redisContext **out, char *errbuf, size_t size);

/* A node named by a redirect. */
typedef struct er_rd_node {
  char host[256];
  int port;
} er_rd_node_t;
/* At most this many MOVED and ASK redirects in one call: more is a loop
 * (a cluster whose nodes disagree while a slot moves). */
#define ER_RD_MAX_REDIRECTS 5
/* The redirect an error reply stands for: 'M' (MOVED), 'A' (ASK) with *to
 * filled, or 0 (not a redirect, or one that cannot be read). An empty host
 * ("MOVED 3999 :6380") means the node we asked's. */
int er__rd_redirect(er_rd_t *rd, const char *err, er_rd_node_t *to);
/* Follows a MOVED: later calls go to that node, on a new connection. 0 or
 * ER_ENOMEM. */
int er__rd_follow(er_rd_t *rd, const er_rd_node_t *to);
/* Forgets the node a MOVED named (it cannot be reached): the URL's node is
 * asked again, and says where the slot lives now. */
void er__rd_forget_node(er_rd_t *rd);
/* The node the command connection goes to. */
const char *er__rd_node_host(const er_rd_t *rd);
int er__rd_node_port(const er_rd_t *rd);

/* ---- redis_lua.c ---- */

/* The full text of script n (constants, prelude, libraries, body), built
 * once; static. */
const char *er__rd_script_text(er_rd_script_t n);
/* Its name, for messages; static. */
const char *er__rd_script_name(er_rd_script_t n);

/* ---- redis_rec.c ---- */

/* Arguments under construction: strings that the vector owns. */
typedef struct er_rd_args {
  char **v;
  size_t *len;
  size_t n, cap;
  bool oom;
} er_rd_args_t;
void er__rd_args_str(er_rd_args_t *a, const char *s);
void er__rd_args_fmt(er_rd_args_t *a, const char *fmt, ...) ER_PRINTF(2, 3);
void er__rd_args_i64(er_rd_args_t *a, int64_t x);
/* "-" for NULL, "+" followed by the text otherwise: optional strings. */
void er__rd_args_opt(er_rd_args_t *a, const char *s);
/* Compact JSON text; with opt, as for er__rd_args_opt. */
void er__rd_args_json(er_rd_args_t *a, const json_t *v, bool opt);
void er__rd_args_free(er_rd_args_t *a);
/* A task record as ER_RD_REC_FIELDS arguments (tasks.lua's rec_read). */
void er__rd_args_rec(er_rd_args_t *a, const er_task_rec_t *r);
/* An outcome as ER_RD_DONE_FIELDS arguments (tasks.lua's done_read). */
void er__rd_args_done(er_rd_args_t *a, const er_completion_t *c);
/* Runs script with a's arguments (ER_ENOMEM if building them failed). */
int er__rd_run(er_rd_t *rd, er_rd_script_t script, bool idempotent, er_rd_args_t *a,
               redisReply **out);

/* A new record from a flat HGETALL reply. A record that cannot be decoded
 * (store_rec.c) is ER_ECORRUPT when why is NULL; else it is returned, its bad
 * values NULL, with the reason in why (why->why[0] is 0 for a good one). A
 * reply without an id is ER_ECORRUPT either way. */
int er__rd_read_rec(er_rd_t *rd, const redisReply *r, er_task_rec_t **out, er_rec_why_t *why);

/* ---- operations ---- */

int er__rd_enqueue(er_store_t *s, er_task_rec_t *const *recs, size_t n, int flags,
                   bool *existing);
int er__rd_get(er_store_t *s, const char *id, const char *key, er_task_rec_t **out);
int er__rd_revoke(er_store_t *s, const char *id, er_task_state_t *state);
int er__rd_purge(er_store_t *s, const char *queue, size_t *count);

int er__rd_reserve(er_store_t *s, const er_reserve_req_t *req, er_task_rec_t ***out, size_t *n);
int er__rd_renew(er_store_t *s, const char *const *ids, const int *attempts, size_t n,
                 int64_t lease_until_ms, bool *revoked, bool *fenced);
int er__rd_complete(er_store_t *s, const er_completion_t *cs, size_t n, bool *fenced);
int er__rd_progress(er_store_t *s, const char *id, int attempt, double progress,
                    const char *msg);
int er__rd_maintain(er_store_t *s, int64_t now_ms, er_maint_counts_t *counts);

int er__rd_heartbeat(er_store_t *s, json_t *info, int64_t now_ms, int64_t ttl_ms);
int er__rd_worker_gone(er_store_t *s, const char *worker_id);
int er__rd_workers(er_store_t *s, int64_t now_ms, json_t **out);
int er__rd_stats(er_store_t *s, json_t **out);
int er__rd_list_tasks(er_store_t *s, const er_task_list_req_t *req, er_task_rec_t ***out,
                      size_t *n, char *next_cursor);

int er__rd_apply(er_store_t *s, const er_mut_t *muts, size_t n, er_mut_result_t *results,
                 size_t *failed);
int er__rd_doc_get(er_store_t *s, const char *coll, const char *key, json_t **value,
                   int64_t *version);
int er__rd_doc_list(er_store_t *s, const char *coll, const char *after, size_t limit,
                    json_t **out);
int er__rd_counter_get(er_store_t *s, const char *coll, const char *key, int64_t *value);

/* redis_wake.c */
int er__rd_wake_init(er_rd_t *rd);
/* After a successful call: subscribe again if wanted and lost. */
void er__rd_wake_retry(er_rd_t *rd);
void er__rd_wake_close(er_rd_t *rd);
int er__rd_wakeup_fd(er_store_t *s);
void er__rd_drain_wakeups(er_store_t *s);
int er__rd_wait_change(er_store_t *s, int timeout_ms);
/* Subscribes (again) to what the handle wants, within timeout_ms. */
int er__rd_resubscribe(er_rd_t *rd, int timeout_ms);

/* redis_watch.c */
int er__rd_watch(er_store_t *s, const er_watch_t *w);
int er__rd_read_wakeups(er_store_t *s, er_wakeups_t *out);
int er__rd_next_due(er_store_t *s, const char *const *queues, size_t nqueues, int64_t *due_ms);
/* The channels the watch set names (new array of new strings, *n of them). */
int er__rd_watch_channels(er_rd_t *rd, char ***out, size_t *n);
/* One published message on channel ch with payload p: noted for the next
 * read (a watched handle). */
void er__rd_watch_note(er_rd_t *rd, const char *ch, size_t chlen, const char *p, size_t plen);
/* The subscription was (re)made or lost: anything may have been missed. */
void er__rd_watch_missed(er_rd_t *rd);
void er__rd_watch_free(er_rd_t *rd);

#endif
