/* The SQLite commit counter every process of a pipeline benchmark run shares:
 * a 64-bit count at the start of the file named by $PBENCH_COMMITS, mapped
 * shared, so that the worker, its prefork children and the harness add to
 * and read the same number without a store call. */
#ifndef PBENCH_COUNTER_H
#define PBENCH_COUNTER_H

#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* The counter, or NULL when $PBENCH_COMMITS is unset or cannot be mapped. */
static inline uint64_t *pbench_counter_map(void) {
  const char *path = getenv("PBENCH_COMMITS");
  if (!path || !*path) return NULL;
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return NULL;
  void *p = ftruncate(fd, sizeof(uint64_t)) == 0
                ? mmap(NULL, sizeof(uint64_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
                : MAP_FAILED;
  close(fd);
  return p == MAP_FAILED ? NULL : (uint64_t *)p;
}

#endif
