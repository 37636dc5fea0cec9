/* The Celery source's Redis side: its command connection and script calls
 * (on the worker's store thread), and two threads that make the store's
 * wake-up fd ring for Celery: the watcher, which blocks until a Celery list
 * holds a message without taking it (BLMOVE of a list onto its own tail
 * moves nothing), and the listener, subscribed to kombu's pidbox fanout, for
 * Celery's remote control (control.c). The watcher rings once and waits until the
 * worker has reserved again, so a busy worker is not woken in a loop. */
#include <stdint.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "celery/celery_internal.h"
#include "store/store_internal.h"

#define WATCH_BLOCK_S "0.2" /* how long one BLMOVE blocks: bounds a stop */
#define CONNECT_MS 2000

static void drop(redisContext **c) {
  if (*c) redisFree(*c);
  *c = NULL;
}

int er__cel_eval_on(er__cel_t *cs, redisContext **c, const char *script, er_rd_args_t *a,
                    redisReply **out, char *err, size_t size) {
  *out = NULL;
  if (a->oom) return ER_ENOMEM;
  if (!*c && er__rd_connect(er__rd(cs->inner), CONNECT_MS, true, c, err, size))
    return ER_EUNAVAILABLE;
  size_t n = a->n + 3;
  const char **argv = er_calloc(n, sizeof *argv);
  size_t *lens = er_calloc(n, sizeof *lens);
  if (!argv || !lens) {
    er_free(argv);
    er_free(lens);
    return ER_ENOMEM;
  }
  argv[0] = "EVAL", lens[0] = 4;
  argv[1] = script, lens[1] = strlen(script);
  argv[2] = "0", lens[2] = 1;
  for (size_t i = 0; i < a->n; i++) argv[i + 3] = a->v[i], lens[i + 3] = a->len[i];
  er_rd_sigpipe_t g;
  er__rd_sigpipe_block(&g);
  redisReply *r = redisCommandArgv(*c, (int)n, argv, lens);
  er__rd_sigpipe_unblock(&g);
  er_free(argv);
  er_free(lens);
  if (!r) {
    snprintf(err, size, "redis: %s", (*c)->errstr);
    drop(c);
    return ER_EUNAVAILABLE;
  }
  if (r->type == REDIS_REPLY_ERROR) {
    snprintf(err, size, "redis: %s", r->str);
    freeReplyObject(r);
    return ER_EIO;
  }
  *out = r;
  return 0;
}

int er__cel_eval(er__cel_t *cs, const char *script, er_rd_args_t *a, redisReply **out) {
  char err[300] = "";
  int rc = er__cel_eval_on(cs, &cs->c, script, a, out, err, sizeof err);
  if (rc && *err) er__store_set_error(&cs->base, "celery: %s", err);
  return rc;
}

void er__cel_ops_begin(er__cel_t *cs, er_rd_args_t *a) {
  er__rd_args_str(a, "unacked");
  er__rd_args_str(a, "unacked_index");
  er__rd_args_str(a, "errand.celery.rejected");
  er__rd_args_str(a, "errand.celery.delayed");
  er__rd_args_str(a, "errand.celery.delayed_index");
  er__rd_args_fmt(a, "%.6f", (double)er_now_wall_ms() / 1000.0);
  (void)cs;
}

void er__cel_ring(er__cel_t *cs) {
  uint64_t one = 1;
  ssize_t w = write(cs->evfd, &one, sizeof one);
  (void)w;
}

bool er__cel_rang(er__cel_t *cs) {
  uint64_t v;
  return read(cs->evfd, &v, sizeof v) == (ssize_t)sizeof v;
}

void er__cel_arm(er__cel_t *cs) {
  pthread_mutex_lock(&cs->mu);
  cs->gen++;
  pthread_cond_signal(&cs->cv);
  pthread_mutex_unlock(&cs->mu);
}

bool er__cel_is_revoked(er__cel_t *cs, const char *id) {
  double oldest = (double)er_now_wall_ms() / 1000.0 - ER__CEL_REVOKE_EXPIRES_S;
  pthread_mutex_lock(&cs->mu);
  json_t *when = json_object_get(cs->revoked, id);
  bool r = when && json_real_value(when) >= oldest; /* Celery forgets a revoke then */
  pthread_mutex_unlock(&cs->mu);
  return r;
}

static bool stopping(er__cel_t *cs) {
  pthread_mutex_lock(&cs->mu);
  bool s = cs->stop;
  pthread_mutex_unlock(&cs->mu);
  return s;
}

/* One look: is there a message in any list, or a delayed one due? Blocks on
 * the first list for up to WATCH_BLOCK_S. */
static int look(er__cel_t *cs, redisContext *c) {
  redisReply *r = redisCommand(c, "ZRANGEBYSCORE errand.celery.delayed_index -inf %f LIMIT 0 1",
                               (double)er_now_wall_ms() / 1000.0);
  int found = !r ? -1 : r->type == REDIS_REPLY_ARRAY && r->elements > 0;
  if (r) freeReplyObject(r);
  for (size_t i = 1; found == 0 && i < cs->nlists; i++) {
    r = redisCommand(c, "LLEN %s", cs->lists[i]);
    found = !r ? -1 : r->type == REDIS_REPLY_INTEGER && r->integer > 0;
    if (r) freeReplyObject(r);
  }
  if (found) return found;
  r = redisCommand(c, "BLMOVE %s %s RIGHT RIGHT " WATCH_BLOCK_S, cs->lists[0], cs->lists[0]);
  found = !r ? -1 : r->type == REDIS_REPLY_STRING;
  if (r) freeReplyObject(r);
  return found;
}

static void *watch_main(void *arg) {
  er__cel_t *cs = arg;
  redisContext *c = NULL;
  char err[200];
  /* the reservation count when it last rang: it rings again only after
   * another reservation (one made while it looked counts) */
  uint64_t rung = 0, gen;
  while (!stopping(cs)) {
    pthread_mutex_lock(&cs->mu);
    while (cs->gen == rung && !cs->stop) pthread_cond_wait(&cs->cv, &cs->mu);
    gen = cs->gen;
    pthread_mutex_unlock(&cs->mu);
    if (!c && er__rd_connect(er__rd(cs->inner), CONNECT_MS, true, &c, err, sizeof err)) {
      usleep(200000);
      continue;
    }
    /* the BLMOVE waits past the command timeout */
    redisSetTimeout(c, (struct timeval){.tv_sec = 5});
    int found = look(cs, c);
    if (found < 0) {
      drop(&c);
      er__cel_ring(cs); /* the worker's reserve tells the story, and backs off */
      usleep(200000);
      continue;
    }
    if (found) {
      rung = gen;
      er__cel_ring(cs);
    }
  }
  drop(&c);
  return NULL;
}

static void *listen_main(void *arg) {
  er__cel_t *cs = arg;
  redisContext *c = NULL, *cmd = NULL; /* subscribed; for replies and revokes */
  char err[200];
  while (!stopping(cs)) {
    if (!c) {
      if (er__rd_connect(er__rd(cs->inner), CONNECT_MS, false, &c, err, sizeof err)) {
        usleep(500000);
        continue;
      }
      redisReply *r = redisCommand(c, "PSUBSCRIBE /%d.celery.pidbox*", er__rd(cs->inner)->db);
      if (!r) {
        drop(&c);
        continue;
      }
      freeReplyObject(r);
      redisSetTimeout(c, (struct timeval){.tv_usec = 300000});
      /* the revokes sent while it was not listening */
      er__cel_revoked_load(cs, &cmd);
    }
    void *rv = NULL;
    if (redisGetReply(c, &rv) != REDIS_OK) {
      bool timeout = c->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK);
      if (!timeout) {
        drop(&c);
        continue;
      }
      c->err = 0; /* hiredis keeps a timed-out context usable for reading again */
      continue;
    }
    redisReply *r = rv;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 4 &&
        r->element[3]->type == REDIS_REPLY_STRING)
      er__cel_control(cs, &cmd, r->element[3]->str, r->element[3]->len);
    freeReplyObject(r);
  }
  drop(&c);
  drop(&cmd);
  return NULL;
}

int er__cel_wake_start(er__cel_t *cs, char *errmsg, size_t size) {
  cs->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  cs->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (cs->evfd < 0 || cs->epfd < 0) {
    snprintf(errmsg, size, "celery: eventfd/epoll: %s", strerror(errno));
    return ER_ESYS;
  }
  struct epoll_event ev = {.events = EPOLLIN};
  epoll_ctl(cs->epfd, EPOLL_CTL_ADD, cs->evfd, &ev);
  int in = er_store_wakeup_fd(cs->inner);
  if (in >= 0) epoll_ctl(cs->epfd, EPOLL_CTL_ADD, in, &ev);
  cs->gen = 1;
  if (pthread_create(&cs->watcher, NULL, watch_main, cs)) {
    snprintf(errmsg, size, "celery: cannot start the watcher thread");
    return ER_ESYS;
  }
  cs->have_watcher = true;
  if (pthread_create(&cs->listener, NULL, listen_main, cs)) {
    snprintf(errmsg, size, "celery: cannot start the remote control listener thread");
    return ER_ESYS;
  }
  cs->have_listener = true;
  return 0;
}

void er__cel_wake_stop(er__cel_t *cs) {
  pthread_mutex_lock(&cs->mu);
  cs->stop = true;
  pthread_cond_broadcast(&cs->cv);
  pthread_mutex_unlock(&cs->mu);
  if (cs->have_watcher) pthread_join(cs->watcher, NULL);
  if (cs->have_listener) pthread_join(cs->listener, NULL);
  cs->have_watcher = cs->have_listener = false;
  if (cs->evfd >= 0) close(cs->evfd);
  if (cs->epfd >= 0) close(cs->epfd);
  cs->evfd = cs->epfd = -1;
}
