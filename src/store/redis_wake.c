/* Wake-ups without polling: the subscription connection.
 *
 * Scripts publish what they did (lua/prelude.lua): work on a queue on
 * <channel>:q:<queue>, finished tasks' ids on <channel>:fin, revokes of
 * running tasks on <channel>:ctl, each message carrying the origin (a random
 * token per handle) of the handle that ran the script. A handle that is asked
 * for wake-ups keeps a second connection subscribed: to exactly the channels
 * er_store_watch named (redis_watch.c), or, for a handle that never called
 * it, to all of them (PSUBSCRIBE <channel>:*), where a message whose origin
 * is another handle's is a change, as before precise wake-ups.
 *
 * er_store_wakeup_fd is an epoll fd over that connection's socket and an
 * eventfd, not the socket itself: the socket changes when the connection is
 * made again (after Redis restarted), and a loop keeps watching the fd it
 * was given. The eventfd is written when a message may have been missed
 * (a new subscription, a lost one), so a watcher looks again.
 *
 * The subscription is made when first wanted (the first wakeup_fd,
 * drain_wakeups, wait_change or watch), and that first look reports a
 * change; after a connection is lost, the next successful store call, or
 * wait_change, subscribes again with its own backoff. */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "store/redis_internal.h"

#define SUB_BACKOFF_MIN_MS 20
#define SUB_BACKOFF_MAX_MS 1000

int er__rd_wake_init(er_rd_t *rd) {
  rd->epfd = rd->evfd = -1;
  return 0;
}

static void signal_evfd(er_rd_t *rd) {
  if (rd->evfd < 0) return;
  uint64_t one = 1;
  if (write(rd->evfd, &one, sizeof one) < 0) {
    /* full (it never is at 1 per signal) or closed: nothing to do */
  }
}

static void drop_sub(er_rd_t *rd) {
  if (!rd->sub) return;
  if (rd->epfd >= 0) epoll_ctl(rd->epfd, EPOLL_CTL_DEL, rd->sub->fd, NULL);
  redisFree(rd->sub);
  rd->sub = NULL;
  rd->changed = true; /* something may have happened meanwhile */
  er__rd_watch_missed(rd);
  signal_evfd(rd);
}

void er__rd_wake_close(er_rd_t *rd) {
  drop_sub(rd);
  if (rd->epfd >= 0) close(rd->epfd);
  if (rd->evfd >= 0) close(rd->evfd);
  rd->epfd = rd->evfd = -1;
}

static void watch_sub(er_rd_t *rd) {
  if (rd->epfd < 0 || !rd->sub) return;
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = rd->sub->fd};
  epoll_ctl(rd->epfd, EPOLL_CTL_ADD, rd->sub->fd, &ev);
}

/* Whether this handle wants a subscription at all: a watch set that names
 * nothing needs none. */
static bool wants_sub(er_rd_t *rd) {
  return rd->wake_used && (!rd->watching || rd->w_nqueues || rd->w_finished || rd->w_control);
}

/* The pattern that matches every channel of the store: the base name with
 * glob characters escaped, then ":*". */
static char *all_pattern(const char *ch) {
  size_t n = strlen(ch);
  char *p = er_malloc(2 * n + 3), *o = p;
  if (!p) return NULL;
  for (const char *c = ch; *c; c++) {
    if (strchr("*?[]\\", *c)) *o++ = '\\';
    *o++ = *c;
  }
  memcpy(o, ":*", 3);
  return p;
}

/* SUBSCRIBEs c to the watch set's channels (or PSUBSCRIBEs to all), and
 * reads the confirmations: once they are in, no later message is missed. */
static int subscribe_on(er_rd_t *rd, redisContext *c) {
  char **chans = NULL;
  size_t n = 0;
  int rc = 0;
  if (rd->watching) {
    rc = er__rd_watch_channels(rd, &chans, &n);
  } else {
    chans = er_calloc(1, sizeof *chans);
    if (chans && (chans[0] = all_pattern(rd->channel))) n = 1;
    else rc = ER_ENOMEM;
  }
  const char **argv = rc ? NULL : er_calloc(n + 1, sizeof *argv);
  if (!rc && !argv) rc = ER_ENOMEM;
  if (!rc) {
    argv[0] = rd->watching ? "SUBSCRIBE" : "PSUBSCRIBE";
    for (size_t i = 0; i < n; i++) argv[i + 1] = chans[i];
    er_rd_sigpipe_t g;
    er__rd_sigpipe_block(&g);
    if (redisAppendCommandArgv(c, (int)n + 1, argv, NULL) != REDIS_OK) rc = ER_EUNAVAILABLE;
    for (size_t i = 0; !rc && i < n; i++) {
      void *v = NULL;
      if (redisGetReply(c, &v) != REDIS_OK || !v ||
          ((redisReply *)v)->type != REDIS_REPLY_ARRAY)
        rc = ER_EUNAVAILABLE;
      if (v) freeReplyObject(v);
    }
    er__rd_sigpipe_unblock(&g);
  }
  for (size_t i = 0; i < n; i++) er_free(chans[i]);
  er_free(chans);
  er_free(argv);
  return rc;
}

/* Subscribes within timeout_ms unless the backoff says not yet. */
static int subscribe(er_rd_t *rd, int timeout_ms) {
  if (rd->sub) return 0;
  rd->wake_used = true;
  if (!wants_sub(rd)) return 0;
  if (er_now_mono_ms() < rd->sub_next_ms) return ER_EUNAVAILABLE;
  char why[200];
  redisContext *c = NULL;
  int rc = er__rd_connect(rd, timeout_ms, false, &c, why, sizeof why);
  if (!rc) {
    rc = subscribe_on(rd, c);
    if (rc) redisFree(c);
  }
  if (rc) {
    unsigned b = rd->sub_backoff_ms ? rd->sub_backoff_ms * 2 : SUB_BACKOFF_MIN_MS;
    rd->sub_backoff_ms = b > SUB_BACKOFF_MAX_MS ? SUB_BACKOFF_MAX_MS : b;
    rd->sub_next_ms = er_now_mono_ms() + rd->sub_backoff_ms;
    return rc;
  }
  rd->sub_backoff_ms = 0;
  rd->sub_next_ms = 0;
  rd->sub = c;
  watch_sub(rd);
  rd->changed = true; /* whatever was published before this is unknown */
  er__rd_watch_missed(rd);
  signal_evfd(rd);
  return 0;
}

int er__rd_resubscribe(er_rd_t *rd, int timeout_ms) {
  if (rd->sub) {
    if (rd->epfd >= 0) epoll_ctl(rd->epfd, EPOLL_CTL_DEL, rd->sub->fd, NULL);
    redisFree(rd->sub);
    rd->sub = NULL;
  }
  rd->sub_next_ms = 0;
  return subscribe(rd, timeout_ms);
}

void er__rd_wake_retry(er_rd_t *rd) {
  if (!rd->sub && wants_sub(rd)) subscribe(rd, rd->timeout_ms);
}

/* A handle that never watched: whether a message came from this handle
 * (its payload is the origin, alone or before a newline and ids). */
static bool from_self(const er_rd_t *rd, const char *p, size_t n) {
  size_t o = strlen(rd->origin);
  return n >= o && memcmp(p, rd->origin, o) == 0 && (n == o || p[o] == '\n');
}

static bool is_str(const redisReply *r) { return r->type == REDIS_REPLY_STRING; }

static void on_reply(er_rd_t *rd, const redisReply *r) {
  if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 || !is_str(r->element[0])) return;
  const char *kind = r->element[0]->str;
  if (strcmp(kind, "message") == 0 && is_str(r->element[1]) && is_str(r->element[2])) {
    er__rd_watch_note(rd, r->element[1]->str, r->element[1]->len, r->element[2]->str,
                      r->element[2]->len);
  } else if (strcmp(kind, "pmessage") == 0 && r->elements == 4 && is_str(r->element[3])) {
    if (!from_self(rd, r->element[3]->str, r->element[3]->len)) rd->changed = true;
  }
}

/* Takes the replies hiredis has buffered; false when the connection broke. */
static bool take_replies(er_rd_t *rd) {
  void *v = NULL;
  int rc;
  while ((rc = redisGetReplyFromReader(rd->sub, &v)) == REDIS_OK && v) {
    on_reply(rd, v);
    freeReplyObject(v);
    v = NULL;
  }
  if (rc != REDIS_OK) {
    drop_sub(rd);
    return false;
  }
  return true;
}

/* Reads what the subscription has without blocking: messages for the
 * watch set, or rd->changed on a message from another handle (never
 * watched), or when the connection is lost. */
static void pump(er_rd_t *rd) {
  for (int reads = 0; rd->sub && reads < 64; reads++) {
    if (!take_replies(rd)) return;
    struct pollfd p = {rd->sub->fd, POLLIN, 0};
    if (poll(&p, 1, 0) <= 0) return;
    if (redisBufferRead(rd->sub) != REDIS_OK) {
      drop_sub(rd);
      return;
    }
  }
  if (rd->sub) take_replies(rd);
}

/* Whether something arrived that the handle has not been told of. */
static bool pending(er_rd_t *rd) {
  if (!rd->watching) return rd->changed;
  return rd->got_work || rd->got_control || rd->got_nfin || rd->got_overflow;
}

int er__rd_wakeup_fd(er_store_t *s) {
  er_rd_t *rd = er__rd(s);
  rd->wake_used = true;
  if (rd->epfd < 0) {
    rd->epfd = epoll_create1(EPOLL_CLOEXEC);
    rd->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (rd->epfd < 0 || rd->evfd < 0) {
      char shown[512];
      er_url_redact(s->url, shown, sizeof shown);
      er_log(ER_LOG_WARN, "store %s: no wake-up fd (%s); waiting by polling", shown,
             strerror(errno));
      er__rd_wake_close(rd);
      return -1;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = rd->evfd};
    epoll_ctl(rd->epfd, EPOLL_CTL_ADD, rd->evfd, &ev);
    watch_sub(rd);
    subscribe(rd, rd->timeout_ms);
    signal_evfd(rd); /* a first look */
  }
  return rd->epfd;
}

void er__rd_drain_wakeups(er_store_t *s) {
  er_rd_t *rd = er__rd(s);
  rd->wake_used = true;
  if (rd->evfd >= 0) {
    uint64_t n;
    while (read(rd->evfd, &n, sizeof n) > 0) {
    }
  }
  pump(rd);
}

int er__rd_wait_change(er_store_t *s, int timeout_ms) {
  er_rd_t *rd = er__rd(s);
  uint64_t start = er_now_mono_ms();
  uint64_t deadline = timeout_ms < 0 ? UINT64_MAX : start + (uint64_t)timeout_ms;
  for (;;) {
    if (!rd->sub) {
      uint64_t now = er_now_mono_ms();
      uint64_t left = deadline > now ? deadline - now : 0;
      int t = left < (uint64_t)rd->timeout_ms ? (int)left : rd->timeout_ms;
      subscribe(rd, t > 0 ? t : 1);
    }
    pump(rd);
    if (pending(rd)) {
      /* a watching handle is told what by er_store_read_wakeups */
      if (!rd->watching) rd->changed = false;
      return 0;
    }
    uint64_t now = er_now_mono_ms();
    if (now >= deadline) {
      er__store_set_error(s, "no change within %d ms", timeout_ms);
      return ER_ETIMEDOUT;
    }
    uint64_t left = deadline - now;
    if (!rd->sub) {
      /* Redis is away (or nothing is watched): look again when the backoff
       * allows. */
      uint64_t next = rd->sub_next_ms > now ? rd->sub_next_ms - now : SUB_BACKOFF_MIN_MS;
      er__rd_sleep_ms((unsigned)(next < left ? next : left));
      continue;
    }
    struct pollfd p = {rd->sub->fd, POLLIN, 0};
    poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
  }
}
