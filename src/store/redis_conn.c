/* The Redis backend's connection layer.
 *
 * Every call has a deadline, timeout_ms after it starts (the URL option,
 * default 5000). Within it the call connects when there is no connection,
 * retrying with a backoff that grows from 20 ms to 1 s and is kept across
 * calls (so a long outage is not hammered), and gives up with
 * ER_EUNAVAILABLE and a one-line reason when the deadline passes: no call
 * hangs.
 *
 * A command is written first and its reply read afterwards. A write that
 * fails never reached Redis whole, so the call may be made again on a new
 * connection. A reply that never comes (the connection broke, or the reply
 * took longer than the deadline) leaves the outcome unknown: a call that may
 * be repeated (reads, renewals, heartbeats) is repeated; any other returns
 * ER_EUNAVAILABLE, saying that it may have been applied. Before writing, a
 * connection that became readable while idle (the server closed it, say on
 * a restart) is replaced, so the common case of a restarted server costs
 * nothing but a reconnect.
 *
 * Scripts are run by EVALSHA; a script is loaded (SCRIPT LOAD) the first time
 * this process needs it, and again when the server answers NOSCRIPT (it
 * restarted, someone ran SCRIPT FLUSH, or it is a cluster node this process
 * has not used yet): on the node the call is talking to.
 *
 * In a Redis Cluster, a call answered MOVED goes to the node named, which
 * later calls keep using; one answered ASK is sent to the node named, once,
 * after ASKING (redis_cluster.c). Neither was executed, so both are resent
 * whatever the call's idempotency; more than ER_RD_MAX_REDIRECTS of them in
 * one call is a loop, and ER_EUNAVAILABLE. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "store/redis_internal.h"

#define BACKOFF_MIN_MS 20
#define BACKOFF_MAX_MS 1000

void er__rd_sleep_ms(unsigned ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* ---- SIGPIPE -------------------------------------------------------------
 * hiredis writes with write(2): a write to a socket the server closed raises
 * SIGPIPE, whose default action kills the process. Block it for the call and
 * consume the one the call raised (the technique libpq uses). */

void er__rd_sigpipe_block(er_rd_sigpipe_t *g) {
  sigset_t set, pend;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  g->was_pending = sigpending(&pend) == 0 && sigismember(&pend, SIGPIPE);
  g->blocked = pthread_sigmask(SIG_BLOCK, &set, &g->old) == 0;
}

void er__rd_sigpipe_unblock(er_rd_sigpipe_t *g) {
  if (!g->blocked) return;
  sigset_t set, pend;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  if (!g->was_pending && sigpending(&pend) == 0 && sigismember(&pend, SIGPIPE)) {
    struct timespec zero = {0, 0};
    while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR) {
    }
  }
  pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

void er__rd_disconnect(er_rd_t *rd) {
  if (rd->c) redisFree(rd->c);
  rd->c = NULL;
}

/* A connection with something to read before we asked (end of file after
 * the server closed it, most likely) is not to be used. */
static bool stale(redisContext *c) {
  struct pollfd p = {c->fd, POLLIN, 0};
  return poll(&p, 1, 0) > 0;
}

static void backoff_failed(er_rd_t *rd) {
  unsigned b = rd->backoff_ms ? rd->backoff_ms * 2 : BACKOFF_MIN_MS;
  rd->backoff_ms = b > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : b;
  rd->next_connect_ms = er_now_mono_ms() + rd->backoff_ms;
}

/* ---- one command ------------------------------------------------------------ */

typedef enum sent {
  SENT_OK,      /* *out is the reply */
  SENT_NOT,     /* it never reached the server whole */
  SENT_UNKNOWN, /* written, but no reply */
} sent_t;

static sent_t send_cmd(redisContext *c, int argc, const char **argv, const size_t *lens,
                       redisReply **out) {
  *out = NULL;
  if (redisAppendCommandArgv(c, argc, argv, lens) != REDIS_OK) return SENT_NOT;
  er_rd_sigpipe_t g;
  er__rd_sigpipe_block(&g);
  int done = 0;
  sent_t s = SENT_OK;
  do {
    if (redisBufferWrite(c, &done) != REDIS_OK) s = SENT_NOT;
  } while (s == SENT_OK && !done);
  void *r = NULL;
  if (s == SENT_OK && redisGetReply(c, &r) != REDIS_OK) s = SENT_UNKNOWN;
  er__rd_sigpipe_unblock(&g);
  *out = r;
  return s;
}

/* Server errors that mean "not done; ask again soon". */
static bool transient(const char *e) {
  return strncmp(e, "LOADING", 7) == 0 || strncmp(e, "TRYAGAIN", 8) == 0 ||
         strncmp(e, "MASTERDOWN", 10) == 0 || strncmp(e, "CLUSTERDOWN", 11) == 0;
}

/* The ER_E* code a reply error stands for. Our scripts answer "ECODE text". */
static int error_code(const char *e, const char **msg) {
  static const struct {
    const char *name;
    int code;
  } ours[] = {{"EEXIST ", ER_EEXIST},     {"ETOMBSTONED ", ER_ETOMBSTONED},
              {"ENOENT ", ER_ENOENT},     {"EFENCED ", ER_EFENCED},
              {"EINVAL ", ER_EINVAL},     {"ECORRUPT ", ER_ECORRUPT}};
  *msg = e;
  for (size_t i = 0; i < sizeof ours / sizeof ours[0]; i++) {
    size_t n = strlen(ours[i].name);
    if (strncmp(e, ours[i].name, n) == 0) {
      *msg = e + n;
      return ours[i].code;
    }
  }
  if (strncmp(e, "BUSY", 4) == 0) return ER_EBUSY;
  if (strncmp(e, "NOAUTH", 6) == 0 || strncmp(e, "WRONGPASS", 9) == 0 ||
      strncmp(e, "NOPERM", 6) == 0)
    return ER_EAUTH;
  if (strncmp(e, "OOM", 3) == 0) return ER_ENOMEM;
  if (strncmp(e, "READONLY", 8) == 0 || strncmp(e, "MOVED", 5) == 0 ||
      strncmp(e, "ASK", 3) == 0 || transient(e))
    return ER_EUNAVAILABLE;
  return ER_EIO;
}

typedef struct job {
  int argc;
  const char **argv;
  const size_t *lens;
  int script; /* -1: a plain command */
  const char *what;
} job_t;

/* The shas this process has loaded, shared by its handles: a new handle
 * runs EVALSHA at once and loads only on NOSCRIPT. */
static char g_shas[ER_RD_NSCRIPTS][41];
static pthread_mutex_t g_shas_lock = PTHREAD_MUTEX_INITIALIZER;

/* Makes sure the script's sha is known: SCRIPT LOAD on c. */
static sent_t load_script(er_rd_t *rd, redisContext *c, int script, bool force,
                          redisReply **err) {
  *err = NULL;
  if (script < 0 || rd->shas[script][0]) return SENT_OK;
  if (force) goto load;
  pthread_mutex_lock(&g_shas_lock);
  memcpy(rd->shas[script], g_shas[script], sizeof g_shas[script]);
  pthread_mutex_unlock(&g_shas_lock);
  if (rd->shas[script][0]) return SENT_OK;
load:;
  const char *text = er__rd_script_text((er_rd_script_t)script);
  const char *argv[] = {"SCRIPT", "LOAD", text};
  redisReply *r;
  sent_t s = send_cmd(c, 3, argv, NULL, &r);
  if (s != SENT_OK) return s;
  if (r->type == REDIS_REPLY_STRING && r->len == 40) {
    memcpy(rd->shas[script], r->str, 40);
    rd->shas[script][40] = 0;
    freeReplyObject(r);
    pthread_mutex_lock(&g_shas_lock);
    memcpy(g_shas[script], rd->shas[script], sizeof g_shas[script]);
    pthread_mutex_unlock(&g_shas_lock);
  } else {
    *err = r; /* an error reply, passed up */
  }
  return SENT_OK;
}

static int unavailable(er_rd_t *rd, const char *what, uint64_t start, const char *why) {
  er__store_set_error(&rd->base, "redis %s:%d unavailable (%s, after %llu ms): %s",
                      er__rd_node_host(rd), er__rd_node_port(rd), what,
                      (unsigned long long)(er_now_mono_ms() - start), why);
  return ER_EUNAVAILABLE;
}

/* Makes sure rd->c is connected to the node of the handle's slot: 0, 1 (not
 * yet: look at the deadline and come again; why says what failed) or an
 * error code (recorded). */
static int ensure_conn(er_rd_t *rd, uint64_t now, uint64_t deadline, char *why, size_t size) {
  if (rd->c && stale(rd->c)) er__rd_disconnect(rd);
  if (rd->c) return 0;
  if (now < rd->next_connect_ms) {
    uint64_t until = rd->next_connect_ms < deadline ? rd->next_connect_ms : deadline;
    er__rd_sleep_ms((unsigned)(until - now));
    return 1;
  }
  const char *host = er__rd_node_host(rd);
  int port = er__rd_node_port(rd);
  int rc = er__rd_connect_to(rd, host, port, (int)(deadline - now), true, &rd->c, why, size);
  if (rc == ER_EUNAVAILABLE) {
    if (rd->node_host) {
      /* The node a MOVED named is gone (a failover?): the URL's node will
       * say where the slot lives now. */
      char was[300];
      snprintf(was, sizeof was, "%s:%d: %s", host, port, why);
      snprintf(why, size, "%s", was);
      er__rd_forget_node(rd);
    }
    backoff_failed(rd);
    return 1;
  }
  if (rc) {
    er__store_set_error(&rd->base, "redis %s:%d: %s", host, port, why);
    return rc;
  }
  rd->backoff_ms = 0;
  rd->next_connect_ms = 0;
  return 0;
}

/* Sends j on c, its script loaded first, after ASKING when asking. */
static sent_t attempt(er_rd_t *rd, redisContext *c, job_t *j, bool asking, bool reload,
                      redisReply **r) {
  sent_t s = load_script(rd, c, j->script, reload, r);
  if (s == SENT_UNKNOWN) s = SENT_NOT; /* the call itself was not sent yet */
  if (s == SENT_OK && !*r && asking) {
    const char *argv[] = {"ASKING"};
    s = send_cmd(c, 1, argv, NULL, r);
    if (s == SENT_UNKNOWN) s = SENT_NOT;
    if (s == SENT_OK && (*r)->type != REDIS_REPLY_ERROR) {
      freeReplyObject(*r);
      *r = NULL;
    }
  }
  if (s == SENT_OK && !*r) {
    if (j->script >= 0) j->argv[1] = rd->shas[j->script];
    s = send_cmd(c, j->argc, j->argv, j->lens, r);
  }
  return s;
}

static int run_job(er_rd_t *rd, job_t *j, bool idempotent, redisReply **out) {
  *out = NULL;
  uint64_t start = er_now_mono_ms();
  uint64_t deadline = start + (uint64_t)rd->timeout_ms;
  char why[300] = "not connected";
  int noscript = 0, redirects = 0;
  bool noscript_reload = false;
  er_rd_node_t ask = {.port = 0}; /* an ASK to follow, once */
  for (;;) {
    uint64_t now = er_now_mono_ms();
    if (now >= deadline) return unavailable(rd, j->what, start, why);
    redisContext *c, *once = NULL;
    if (ask.port) {
      /* This command only, on a connection of its own; the script may be
       * unknown there, so it is loaded. */
      int rc = er__rd_connect_to(rd, ask.host, ask.port, (int)(deadline - now), true, &once, why,
                                 sizeof why);
      if (rc == ER_EUNAVAILABLE) {
        ask.port = 0; /* the slot's node will ASK again if it must */
        continue;
      }
      if (rc) {
        er__store_set_error(&rd->base, "redis %s:%d: %s", ask.host, ask.port, why);
        return rc;
      }
      if (j->script >= 0) {
        rd->shas[j->script][0] = 0;
        noscript_reload = true;
      }
      c = once;
    } else {
      int rc = ensure_conn(rd, now, deadline, why, sizeof why);
      if (rc > 0) continue;
      if (rc < 0) return rc;
      c = rd->c;
    }
    redisReply *r = NULL;
    sent_t s = attempt(rd, c, j, once != NULL, noscript_reload, &r);
    if (s != SENT_OK) {
      const char *e = c->errstr;
      if (strstr(e, "temporarily unavailable")) /* SO_RCVTIMEO/SO_SNDTIMEO ran out */
        snprintf(why, sizeof why, "no answer within %d ms", rd->timeout_ms);
      else
        snprintf(why, sizeof why, "%s", e[0] ? e : "connection lost");
      bool lost = s == SENT_UNKNOWN && !idempotent;
      if (lost)
        er__store_set_error(&rd->base,
                            "redis %s:%d: no reply to %s (%s); it may or may not have been "
                            "applied",
                            once ? ask.host : er__rd_node_host(rd),
                            once ? ask.port : er__rd_node_port(rd), j->what, why);
      if (once)
        redisFree(once);
      else
        er__rd_disconnect(rd);
      if (lost) return ER_EUNAVAILABLE;
      ask.port = 0;
      continue;
    }
    if (once) redisFree(once);
    ask.port = 0;
    if (r->type != REDIS_REPLY_ERROR) {
      *out = r;
      er__rd_wake_retry(rd);
      return 0;
    }
    if (strncmp(r->str, "NOSCRIPT", 8) == 0 && j->script >= 0 && noscript++ < 3) {
      /* Flushed or restarted, or a node that never had it: load it again
       * (the sha stays the same, so the process-wide copy may stay too). */
      rd->shas[j->script][0] = 0;
      noscript_reload = true;
      freeReplyObject(r);
      continue;
    }
    er_rd_node_t to;
    int redirect = er__rd_redirect(rd, r->str, &to);
    if (redirect && redirects++ < ER_RD_MAX_REDIRECTS) {
      /* Not executed: resending is safe, whatever the command. */
      snprintf(why, sizeof why, "%.150s", r->str);
      freeReplyObject(r);
      if (redirect == 'A') {
        ask = to;
      } else if (er__rd_follow(rd, &to)) {
        er__store_set_error(&rd->base, "out of memory");
        return ER_ENOMEM;
      }
      continue;
    }
    if (redirect) {
      er__store_set_error(&rd->base, "redis %s: more than %d cluster redirects (the last: %.150s)",
                          j->what, ER_RD_MAX_REDIRECTS, r->str);
      freeReplyObject(r);
      return ER_EUNAVAILABLE;
    }
    if (transient(r->str)) {
      snprintf(why, sizeof why, "%.150s", r->str);
      freeReplyObject(r);
      er__rd_sleep_ms(BACKOFF_MIN_MS);
      /* A slot on the move answers ASK, then TRYAGAIN, until it has moved:
       * a wait, not a loop. */
      redirects = 0;
      continue;
    }
    const char *msg;
    int code = error_code(r->str, &msg);
    if (code == ER_ENOMEM && strncmp(r->str, "OOM", 3) == 0)
      /* maxmemory with noeviction: only what adds tasks is refused (the
       * scripts that take, finish or remove them run anyway: redis_lua.c) */
      er__store_set_error(&rd->base, "store is full (Redis maxmemory reached): %s refused",
                          strcmp(j->what, "enqueue") == 0 ? "send" : j->what);
    else if (code == ER_EIO || code == ER_EUNAVAILABLE || code == ER_EBUSY || code == ER_ENOMEM ||
        code == ER_EAUTH)
      er__store_set_error(&rd->base, "redis %s: %.200s", j->what, msg);
    else
      er__store_set_error(&rd->base, "%.240s", msg);
    freeReplyObject(r);
    return code;
  }
}

int er__rd_script(er_rd_t *rd, er_rd_script_t script, bool idempotent, int argc,
                  const char *const *argv, const size_t *lens, redisReply **out) {
  /* KEYS: the start of every key, and the version key as the guard (see
   * er_rd_t.guard_key); ARGV: origin, channel, then the call's */
  int n = argc + 7;
  const char **v = er_calloc((size_t)n, sizeof *v);
  size_t *l = er_calloc((size_t)n, sizeof *l);
  if (!v || !l) {
    er_free(v);
    er_free(l);
    return ER_ENOMEM;
  }
  v[0] = "EVALSHA";
  v[1] = rd->shas[script]; /* set again once loaded */
  v[2] = "2";
  v[3] = rd->base_key;
  v[4] = rd->guard_key;
  v[5] = rd->origin;
  v[6] = rd->channel;
  for (int i = 0; i < 7; i++) l[i] = strlen(v[i]);
  l[1] = 40;
  for (int i = 0; i < argc; i++) {
    v[7 + i] = argv[i];
    l[7 + i] = lens ? lens[i] : strlen(argv[i]);
  }
  job_t j = {n, v, l, (int)script, er__rd_script_name(script)};
  int rc = run_job(rd, &j, idempotent, out);
  er_free(v);
  er_free(l);
  return rc;
}

int er__rd_command(er_rd_t *rd, int argc, const char *const *argv, const size_t *lens,
                   redisReply **out, const char *what) {
  job_t j = {argc, (const char **)argv, lens, -1, what};
  return run_job(rd, &j, true, out);
}
