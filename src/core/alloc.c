/* Allocation hooks. Every allocation in errand goes through here so that tests
 * can inject failures and embedders can bring their own allocator. */
#include <stdlib.h>
#include <string.h>

#include "errand/common.h"

static er_allocator_t g_alloc = {malloc, realloc, free};

void er_set_allocator(const er_allocator_t *a) {
  g_alloc.malloc_fn = a && a->malloc_fn ? a->malloc_fn : malloc;
  g_alloc.realloc_fn = a && a->realloc_fn ? a->realloc_fn : realloc;
  g_alloc.free_fn = a && a->free_fn ? a->free_fn : free;
}

void *er_malloc(size_t size) { return g_alloc.malloc_fn(size ? size : 1); }

void *er_calloc(size_t n, size_t size) {
  if (size && n > SIZE_MAX / size) return NULL;
  void *p = er_malloc(n * size);
  if (p) memset(p, 0, n * size);
  return p;
}

void *er_realloc(void *ptr, size_t size) { return g_alloc.realloc_fn(ptr, size ? size : 1); }

void er_free(void *ptr) {
  if (ptr) g_alloc.free_fn(ptr);
}

char *er_strdup(const char *s) {
  if (!s) return NULL;
  size_t n = strlen(s) + 1;
  char *p = er_malloc(n);
  if (p) memcpy(p, s, n);
  return p;
}
