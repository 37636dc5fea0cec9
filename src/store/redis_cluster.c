/* The nodes a handle talks to: connecting to one, and following a Redis
 * Cluster's MOVED and ASK redirects between them.
 *
 * Every key of a store shares one hash tag, errand:{P}:..., so one slot, so
 * one node, holds all of a handle's keys and serves every script it runs. A
 * handle therefore needs no slot map: it talks to the node its URL names
 * until a call is answered "MOVED <slot> <host>:<port>", then goes to that
 * node and stays there until the next MOVED (a resharding, a failover). A
 * URL naming any node of a cluster works, and stores under several prefixes
 * spread over its nodes.
 *
 * "ASK <slot> <host>:<port>" (the slot is moving and the keys asked for are
 * already on the other node) is followed once: that node is sent ASKING and
 * the command, and not remembered (redis_conn.c).
 *
 * A redirected command was not executed, so resending it is always safe,
 * whatever its idempotency. When the remembered node cannot be reached, the
 * handle goes back to the URL's node, which redirects it to the slot's
 * owner of the moment. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/redis_internal.h"

/* ---- connecting to a node ------------------------------------------------------ */

static struct timeval tv_ms(int ms) {
  if (ms < 1) ms = 1;
  return (struct timeval){ms / 1000, (ms % 1000) * 1000};
}

/* Runs one setup command on a fresh connection; 0 or the reply's error. */
static int setup_cmd(redisContext *c, int argc, const char **argv, int code, char *errbuf,
                     size_t size) {
  er_rd_sigpipe_t g;
  er__rd_sigpipe_block(&g);
  redisReply *r = redisCommandArgv(c, argc, argv, NULL);
  er__rd_sigpipe_unblock(&g);
  if (!r) {
    er__errmsg(errbuf, size, "%s: %s", argv[0], c->errstr[0] ? c->errstr : "connection lost");
    return ER_EUNAVAILABLE;
  }
  int rc = 0;
  if (r->type == REDIS_REPLY_ERROR) {
    er__errmsg(errbuf, size, "%s refused: %.120s", argv[0], r->str);
    rc = strncmp(r->str, "LOADING", 7) == 0 ? ER_EUNAVAILABLE : code;
  }
  freeReplyObject(r);
  return rc;
}

int er__rd_connect(er_rd_t *rd, int timeout_ms, bool select_db, redisContext **out,
                   char *errbuf, size_t size) {
  return er__rd_connect_to(rd, er__rd_node_host(rd), er__rd_node_port(rd), timeout_ms, select_db,
                           out, errbuf, size);
}

int er__rd_connect_to(er_rd_t *rd, const char *host, int port, int timeout_ms, bool select_db,
                      redisContext **out, char *errbuf, size_t size) {
  *out = NULL;
  redisContext *c = redisConnectWithTimeout(host, port, tv_ms(timeout_ms));
  if (!c) {
    er__errmsg(errbuf, size, "out of memory");
    return ER_ENOMEM;
  }
  if (c->err) {
    er__errmsg(errbuf, size, "cannot connect: %s", c->errstr);
    redisFree(c);
    return ER_EUNAVAILABLE;
  }
  redisSetTimeout(c, tv_ms(timeout_ms));
  redisEnableKeepAlive(c);
  int rc = 0;
  if (rd->password) {
    const char *auth[] = {"AUTH", rd->user ? rd->user : rd->password, rd->password};
    rc = setup_cmd(c, rd->user ? 3 : 2, auth, ER_EAUTH, errbuf, size);
  }
  if (!rc && select_db && rd->db) {
    char db[16];
    snprintf(db, sizeof db, "%d", rd->db);
    const char *sel[] = {"SELECT", db};
    rc = setup_cmd(c, 2, sel, ER_EINVAL, errbuf, size);
  }
  if (rc) {
    redisFree(c);
    return rc;
  }
  /* Commands time out with the call's whole budget from here on. */
  if (timeout_ms != rd->timeout_ms) redisSetTimeout(c, tv_ms(rd->timeout_ms));
  *out = c;
  return 0;
}

/* ---- redirects ---------------------------------------------------------------- */

const char *er__rd_node_host(const er_rd_t *rd) { return rd->node_host ? rd->node_host : rd->host; }

int er__rd_node_port(const er_rd_t *rd) { return rd->node_host ? rd->node_port : rd->port; }

int er__rd_redirect(er_rd_t *rd, const char *err, er_rd_node_t *to) {
  int kind;
  if (strncmp(err, "MOVED ", 6) == 0)
    kind = 'M', err += 6;
  else if (strncmp(err, "ASK ", 4) == 0)
    kind = 'A', err += 4;
  else
    return 0;
  /* "<slot> <host>:<port>"; the host may be an IPv6 address, colons and
   * all, so the port is after the last colon. */
  const char *node = strchr(err, ' ');
  if (!node) return 0;
  node++;
  const char *colon = strrchr(node, ':');
  if (!colon) return 0;
  char *end;
  long port = strtol(colon + 1, &end, 10);
  if (end == colon + 1 || *end || port < 1 || port > 65535) return 0;
  size_t n = (size_t)(colon - node);
  if (n >= sizeof to->host) return 0;
  if (n == 0 || (n == 1 && node[0] == '?')) {
    /* "the endpoint you reached me at" */
    snprintf(to->host, sizeof to->host, "%s", er__rd_node_host(rd));
  } else {
    memcpy(to->host, node, n);
    to->host[n] = 0;
  }
  to->port = (int)port;
  return kind;
}

int er__rd_follow(er_rd_t *rd, const er_rd_node_t *to) {
  if (strcmp(to->host, er__rd_node_host(rd)) == 0 && to->port == er__rd_node_port(rd)) return 0;
  er__rd_disconnect(rd);
  er__rd_forget_node(rd);
  if (strcmp(to->host, rd->host) != 0 || to->port != rd->port) {
    if (!(rd->node_host = er_strdup(to->host))) return ER_ENOMEM;
    rd->node_port = to->port;
  }
  /* A new node: no backoff from the old one's troubles. */
  rd->backoff_ms = 0;
  rd->next_connect_ms = 0;
  return 0;
}

void er__rd_forget_node(er_rd_t *rd) {
  er_free(rd->node_host);
  rd->node_host = NULL;
  rd->node_port = 0;
}
