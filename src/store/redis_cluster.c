/* Redis Cluster: following MOVED and ASK.
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
