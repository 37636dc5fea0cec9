/* A registry of definitions by name, shared by the task and pipeline
 * registries: thread-safe, filled as programs and libraries load (their
 * constructors), never emptied. Items are pointers the caller keeps alive
 * (statics). */
#ifndef ER_CORE_NAMED_H
#define ER_CORE_NAMED_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct er__named {
  pthread_mutex_t lock;
  const void **items;
  size_t len, cap;
  const char *(*name)(const void *item);       /* the item's name */
  bool (*same)(const void *a, const void *b);  /* registering b again is harmless */
} er__named_t;

#define ER__NAMED_INIT(name_fn, same_fn) {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0, name_fn, same_fn}

/* Adds item: 0 (also when an item of that name is the same), ER_EEXIST when
 * the name is taken by another, ER_ENOMEM. */
int er__named_add(er__named_t *r, const void *item);
/* The item named name, or NULL. */
const void *er__named_find(er__named_t *r, const char *name);
/* Calls fn for each item, in name order, outside the lock. */
void er__named_foreach(er__named_t *r, void (*fn)(const void *item, void *ud), void *ud);

#endif
