/* Opening and closing the Redis store: the URL, the first connection and the
 * key layout's version, and the backend's vtable.
 *
 *   redis://[[USER]:PASSWORD@]HOST[:PORT][/DB][?prefix=P&timeout_ms=N]
 *
 * HOST may be an IPv6 address in brackets; PORT defaults to 6379, DB to 0,
 * the prefix to "default" (keys are errand:{P}:...), timeout_ms to 5000. The
 * password may be percent-encoded. */
#include <ctype.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/redis_internal.h"

static void rd_close(er_store_t *s);

static char *dup_range(const char *p, size_t n) {
  char *d = er_malloc(n + 1);
  if (d) {
    memcpy(d, p, n);
    d[n] = 0;
  }
  return d;
}

static int hexval(int c) {
  return isdigit(c) ? c - '0' : isxdigit(c) ? (tolower(c) - 'a' + 10) : -1;
}

/* Percent-decodes s in place. */
static void unescape(char *s) {
  char *o = s;
  for (char *p = s; *p; p++) {
    if (p[0] == '%' && hexval(p[1]) >= 0 && hexval(p[2]) >= 0) {
      *o++ = (char)(hexval(p[1]) * 16 + hexval(p[2]));
      p += 2;
    } else {
      *o++ = *p;
    }
  }
  *o = 0;
}

static int bad_url(const char *url, const char *why, char *errmsg, size_t size) {
  char shown[512];
  er_url_redact(url, shown, sizeof shown);
  er__errmsg(errmsg, size, "store URL '%s': %s (want redis://[:PASSWORD@]HOST:PORT[/DB])", shown,
             why);
  return ER_EINVAL;
}

static int parse_url(er_rd_t *rd, const char *url, char *errmsg, size_t size) {
  const char *p = url + strcspn(url, ":") + 1;
  if (strncmp(p, "//", 2) != 0) return bad_url(url, "no //", errmsg, size);
  p += 2;
  size_t auth_len = strcspn(p, "@/?");
  if (p[auth_len] == '@') {
    const char *colon = memchr(p, ':', auth_len);
    if (!colon) return bad_url(url, "a user without a password", errmsg, size);
    if (colon > p && !(rd->user = dup_range(p, (size_t)(colon - p)))) return ER_ENOMEM;
    if (!(rd->password = dup_range(colon + 1, (size_t)(p + auth_len - colon - 1))))
      return ER_ENOMEM;
    unescape(rd->password);
    if (rd->user) unescape(rd->user);
    p += auth_len + 1;
  }
  const char *host = p;
  size_t host_len;
  if (*p == '[') {
    const char *close = strchr(p, ']');
    if (!close) return bad_url(url, "an unclosed [", errmsg, size);
    host = p + 1;
    host_len = (size_t)(close - host);
    p = close + 1;
  } else {
    host_len = strcspn(p, ":/?");
    p += host_len;
  }
  if (!host_len) return bad_url(url, "no host", errmsg, size);
  if (!(rd->host = dup_range(host, host_len))) return ER_ENOMEM;
  rd->port = 6379;
  if (*p == ':') {
    char *end;
    long port = strtol(p + 1, &end, 10);
    if (end == p + 1 || port < 1 || port > 65535 || (*end && *end != '/' && *end != '?'))
      return bad_url(url, "a bad port", errmsg, size);
    rd->port = (int)port;
    p = end;
  }
  if (*p == '/' && p[1] && p[1] != '?') {
    char *end;
    long db = strtol(p + 1, &end, 10);
    if (end == p + 1 || db < 0 || db > 1000000 || (*end && *end != '?'))
      return bad_url(url, "a bad database number", errmsg, size);
    rd->db = (int)db;
    p = end;
  } else if (*p == '/') {
    p++;
  }
  if (*p && *p != '?') return bad_url(url, "unexpected text after the host", errmsg, size);
  return 0;
}

static int parse_options(er_rd_t *rd, const char *url, char *errmsg, size_t size) {
  int64_t t;
  int rc = er__store_url_int(url, "timeout_ms", 5000, 1, 3600000, &t, errmsg, size);
  if (rc) return rc;
  rd->timeout_ms = (int)t;
  size_t len;
  const char *v = er__store_url_opt(url, "prefix", &len);
  if (!v) v = "default", len = 7;
  if (!(rd->prefix = dup_range(v, len))) return ER_ENOMEM;
  unescape(rd->prefix);
  if (!*rd->prefix || strlen(rd->prefix) > 200 || strpbrk(rd->prefix, "{}")) {
    er__errmsg(errmsg, size,
               "store URL option prefix=%.*s: want 1 to 200 characters without { or }",
               (int)(len > 40 ? 40 : len), v);
    return ER_EINVAL;
  }
  size_t n = strlen(rd->prefix) + 32;
  rd->base_key = er_malloc(n);
  rd->guard_key = er_malloc(n);
  rd->channel = er_malloc(n);
  if (!rd->base_key || !rd->guard_key || !rd->channel) return ER_ENOMEM;
  snprintf(rd->base_key, n, "errand:{%s}:", rd->prefix);
  snprintf(rd->guard_key, n, "errand:{%s}:version", rd->prefix);
  snprintf(rd->channel, n, "errand:{%s}:wake:%d", rd->prefix, rd->db);
  return 0;
}

/* Brings a store of layout version 1 to this one (lua/migrate.lua). */
static int migrate(er_rd_t *rd, char *errmsg, size_t size) {
  redisReply *r = NULL;
  int rc = er__rd_script(rd, ER_RD_MIGRATE, true, 0, NULL, NULL, &r);
  if (rc) {
    er__errmsg(errmsg, size, "redis %s:%d prefix '%s': migrating from key layout version 1: %s",
               rd->host, rd->port, rd->prefix, rd->base.last_error);
    return rc;
  }
  bool ok = r->type == REDIS_REPLY_STRING && strcmp(r->str, "2") == 0;
  freeReplyObject(r);
  if (!ok) {
    er__errmsg(errmsg, size, "redis %s:%d prefix '%s': migrating from key layout version 1 "
               "left another version", rd->host, rd->port, rd->prefix);
    return ER_ECORRUPT;
  }
  return 0;
}

/* Reads the layout version, writing the current one into an empty store
 * and migrating one of version 1. It is read
 * first: a write, even one that changes nothing, is refused by a server at
 * maxmemory (noeviction), and a full store must still open (to inspect,
 * purge and drain it). */
static int check_version(er_rd_t *rd, char *errmsg, size_t size) {
  const char *key = rd->guard_key;
  char cur[16];
  snprintf(cur, sizeof cur, "%d", ER_RD_LAYOUT_VERSION);
  const char *set[] = {"SET", key, cur, "NX"};
  const char *get[] = {"GET", key};
  redisReply *r = NULL;
  int rc = er__rd_command(rd, 2, get, NULL, &r, "open");
  if (!rc && r->type == REDIS_REPLY_NIL) {
    freeReplyObject(r);
    rc = er__rd_command(rd, 4, set, NULL, &r, "open");
    if (!rc) {
      freeReplyObject(r);
      rc = er__rd_command(rd, 2, get, NULL, &r, "open");
    }
  }
  if (rc) {
    if (rc == ER_EIO && strstr(rd->base.last_error, "WRONGTYPE")) rc = ER_ECORRUPT;
    er__errmsg(errmsg, size, "%s", rd->base.last_error);
    return rc;
  }
  long long v = 0;
  char *end = NULL;
  if (r->type == REDIS_REPLY_STRING) v = strtoll(r->str, &end, 10);
  bool ok = end && !*end && v >= 1;
  freeReplyObject(r);
  if (!ok) {
    er__errmsg(errmsg, size, "redis %s:%d: %s is not an errand layout version", rd->host,
               rd->port, key);
    return ER_ECORRUPT;
  }
  if (v > ER_RD_LAYOUT_VERSION) {
    er__errmsg(errmsg, size,
               "redis %s:%d prefix '%s' was made by a newer errand (key layout version %lld; "
               "this errand knows up to %d)",
               rd->host, rd->port, rd->prefix, v, ER_RD_LAYOUT_VERSION);
    return ER_ECORRUPT;
  }
  _Static_assert(ER_RD_LAYOUT_VERSION == 2, "migrate from every older layout version");
  if (v == 1) return migrate(rd, errmsg, size);
  return 0;
}

/* A server that may evict keys at will (maxmemory-policy allkeys-*) could
 * drop queued tasks without a trace: say so at the process's first open. errand sets no
 * TTL on its keys, so the volatile-* policies never touch them. */
static void check_eviction(er_rd_t *rd) {
  static atomic_bool checked; /* once a process */
  if (atomic_exchange(&checked, true)) return;
  const char *argv[] = {"INFO", "memory"};
  redisReply *r = NULL;
  if (er__rd_command(rd, 2, argv, NULL, &r, "open") != 0) return; /* INFO may be disabled */
  const char *p = r->type == REDIS_REPLY_STRING ? strstr(r->str, "maxmemory_policy:") : NULL;
  if (p && strncmp(p + 17, "allkeys", 7) == 0)
    er_log(ER_LOG_WARN,
           "redis %s:%d: maxmemory-policy is %.*s: when memory runs out Redis may evict queued "
           "tasks; use noeviction (or a volatile-* policy) for an errand store",
           rd->host, rd->port, (int)strcspn(p + 17, "\r\n"), p + 17);
  freeReplyObject(r);
  rd->base.last_error[0] = 0;
}

static int rd_open(const char *url, er_store_t **out, char *errmsg, size_t size) {
  er_rd_t *rd = er_calloc(1, sizeof *rd);
  if (!rd) return ER_ENOMEM;
  rd->base.ops = er__redis_backend.ops;
  er__rd_wake_init(rd);
  er_id_t origin;
  er_id_new(&origin);
  memcpy(rd->origin, origin.text, sizeof origin.text);
  int rc = parse_url(rd, url, errmsg, size);
  if (!rc) rc = parse_options(rd, url, errmsg, size);
  if (!rc) rc = check_version(rd, errmsg, size);
  if (!rc) check_eviction(rd);
  if (rc) {
    rd_close(&rd->base);
    return rc;
  }
  *out = &rd->base;
  return 0;
}

static void rd_close(er_store_t *s) {
  er_rd_t *rd = er__rd(s);
  if (!rd) return;
  er__rd_wake_close(rd);
  er__rd_watch_free(rd);
  er__rd_disconnect(rd);
  er__rd_forget_node(rd);
  er_free(rd->host);
  er_free(rd->user);
  er_free(rd->password);
  er_free(rd->prefix);
  er_free(rd->base_key);
  er_free(rd->guard_key);
  er_free(rd->channel);
  er_free(rd);
}

static const er_store_ops_t g_ops = {
    .version = ER_STORE_OPS_VERSION,
    .scheme = "redis",
    .open = rd_open,
    .close = rd_close,
    .enqueue = er__rd_enqueue,
    .reserve = er__rd_reserve,
    .renew = er__rd_renew,
    .complete = er__rd_complete,
    .progress = er__rd_progress,
    .get = er__rd_get,
    .revoke = er__rd_revoke,
    .purge = er__rd_purge,
    .maintain = er__rd_maintain,
    .heartbeat = er__rd_heartbeat,
    .worker_gone = er__rd_worker_gone,
    .workers = er__rd_workers,
    .stats = er__rd_stats,
    .list_tasks = er__rd_list_tasks,
    .wakeup_fd = er__rd_wakeup_fd,
    .drain_wakeups = er__rd_drain_wakeups,
    .wait_change = er__rd_wait_change,
    .apply = er__rd_apply,
    .doc_get = er__rd_doc_get,
    .doc_list = er__rd_doc_list,
    .counter_get = er__rd_counter_get,
    .watch = er__rd_watch,
    .read_wakeups = er__rd_read_wakeups,
    .next_due = er__rd_next_due,
};

static const char *const g_options[] = {"prefix", "timeout_ms", NULL};

const er__store_backend_t er__redis_backend = {&g_ops, g_options};
