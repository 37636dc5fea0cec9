/* Wake-ups without polling.
 *
 * Every script that makes work due or finishes a task PUBLISHes this
 * handle's origin (a random token) on the store's channel. A handle that is
 * asked for wake-ups keeps a second connection SUBSCRIBEd to it; a message
 * whose origin is another handle's is a change.
 *
 * er_store_wakeup_fd is an epoll fd over that connection's socket and an
 * eventfd, not the socket itself: the socket changes when the connection is
 * made again (after Redis restarted), and a loop keeps watching the fd it
 * was given. The eventfd is written when a message may have been missed
 * (a new subscription, a lost one), so a watcher looks again.
 *
 * The subscription is made when first wanted (the first wakeup_fd,
 * drain_wakeups or wait_change), and that first look reports a change;
 * after a connection is lost, the next successful store call, or
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

/* Subscribes within timeout_ms unless the backoff says not yet. */
static int subscribe(er_rd_t *rd, int timeout_ms) {
  if (rd->sub) return 0;
  rd->wake_used = true;
  if (er_now_mono_ms() < rd->sub_next_ms) return ER_EUNAVAILABLE;
  char why[200];
  redisContext *c = NULL;
  int rc = er__rd_connect(rd, timeout_ms, false, &c, why, sizeof why);
  if (!rc) {
    const char *argv[] = {"SUBSCRIBE", rd->channel};
    er_rd_sigpipe_t g;
    er__rd_sigpipe_block(&g);
    redisReply *r = redisCommandArgv(c, 2, argv, NULL);
    er__rd_sigpipe_unblock(&g);
    if (!r || r->type != REDIS_REPLY_ARRAY) rc = ER_EUNAVAILABLE;
    if (r) freeReplyObject(r);
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
  signal_evfd(rd);
  return 0;
}

void er__rd_wake_retry(er_rd_t *rd) {
  if (rd->wake_used && !rd->sub) subscribe(rd, rd->timeout_ms);
}

/* Reads what the subscription has without blocking; sets rd->changed on a
 * message from another handle, or when the connection is lost. */
static void pump(er_rd_t *rd) {
  for (int reads = 0; rd->sub && reads < 64; reads++) {
    struct pollfd p = {rd->sub->fd, POLLIN, 0};
    if (poll(&p, 1, 0) <= 0) return;
    if (redisBufferRead(rd->sub) != REDIS_OK) {
      drop_sub(rd);
      return;
    }
    void *v = NULL;
    int rc;
    while ((rc = redisGetReplyFromReader(rd->sub, &v)) == REDIS_OK && v) {
      redisReply *r = v;
      if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
          r->element[0]->type == REDIS_REPLY_STRING && strcmp(r->element[0]->str, "message") == 0 &&
          r->element[2]->type == REDIS_REPLY_STRING && strcmp(r->element[2]->str, rd->origin) != 0)
        rd->changed = true;
      freeReplyObject(r);
      v = NULL;
    }
    if (rc != REDIS_OK) {
      drop_sub(rd);
      return;
    }
  }
}

int er__rd_wakeup_fd(er_store_t *s) {
  er_rd_t *rd = er__rd(s);
  rd->wake_used = true;
  if (rd->epfd < 0) {
    rd->epfd = epoll_create1(EPOLL_CLOEXEC);
    rd->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (rd->epfd < 0 || rd->evfd < 0) {
      er_log(ER_LOG_WARN, "store %s: no wake-up fd (%s); waiting by polling", s->url,
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
    if (rd->changed) {
      rd->changed = false;
      return 0;
    }
    uint64_t now = er_now_mono_ms();
    if (now >= deadline) {
      er__store_set_error(s, "no change within %d ms", timeout_ms);
      return ER_ETIMEDOUT;
    }
    uint64_t left = deadline - now;
    if (!rd->sub) {
      /* Redis is away: look again when the backoff allows. */
      uint64_t next = rd->sub_next_ms > now ? rd->sub_next_ms - now : SUB_BACKOFF_MIN_MS;
      er__rd_sleep_ms((unsigned)(next < left ? next : left));
      continue;
    }
    struct pollfd p = {rd->sub->fd, POLLIN, 0};
    poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
  }
}
