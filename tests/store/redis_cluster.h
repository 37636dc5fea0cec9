/* The Redis Cluster tests' shared helpers (redis_cluster.c) and the tests
 * in redis_cluster_moves.c and redis_cluster_fake.c. Nodes are numbered 0
 * to NODES - 1. */
#ifndef ER_TEST_REDIS_CLUSTER_H
#define ER_TEST_REDIS_CLUSTER_H

#include "conformance.h"

#include <hiredis/hiredis.h>

#define NODES 3

extern int g_ports[NODES];
extern char g_ids[NODES][48]; /* CLUSTER MYID */
extern char g_run[16];        /* this run's tag, in every prefix */

/* node's reply to a command (NULL when it cannot be reached), on a
 * connection of its own; safe in any thread. */
redisReply *vnode_try(int node, const char *fmt, va_list ap);
redisReply *node_try(int node, const char *fmt, ...);
/* The same for a command that must not fail. */
redisReply *node_cmd(int node, const char *fmt, ...);
/* r's integer; r is freed. */
long long int_of(redisReply *r);
/* How many keys of slot node holds (whether it owns the slot or not). */
long long slot_keys(int node, int slot);
/* The slot of prefix's keys. */
int slot_of(const char *prefix);
/* The node that owns slot, as node asker sees it. */
int owner_of(int slot, int asker);
/* A new prefix whose slot lives on node k. */
void prefix_on(int k, const char *what, char *out, size_t size);
/* A store for prefix through node's URL, with more options. */
er_store_t *open_via(int node, const char *prefix, const char *more);
/* Whether the task's hash is on node. */
bool task_on(int node, const char *prefix, const char *id);
/* A fixture around s, for the conformance suite's helpers. */
void fx_init(fx_t *f, er_store_t *s, const char *queue);
/* The count of queue's tasks in state, from the store's stats. */
json_int_t stat_of(er_store_t *s, const char *queue, const char *state);

/* redis_cluster_moves.c */
void test_slot_moves(void **state);
void test_half_moved(void **state);
/* redis_cluster_fake.c */
void test_redirect_loop(void **state);
void test_moved_without_host(void **state);
void test_moved_to_dead_node(void **state);

#endif
