/* The store of one test in a suite that runs on SQLite or on Redis: a fresh
 * SQLite file in a new temporary directory, or, when ERRAND_TEST_STORE names
 * a Redis server (tests/store/redis_server.sh run), a fresh key prefix on it.
 * Include after cmocka.h. */
#ifndef ER_TEST_STORE_URL_H
#define ER_TEST_STORE_URL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Writes the URL (extra, may be NULL, is more of its query) into url, and
 * the SQLite directory into dir ("" on Redis); tag names the test suite. */
static inline void test_store_url(const char *tag, const char *extra, char *dir, size_t dir_size,
                                  char *url, size_t url_size) {
  static int seq;
  const char *base = getenv("ERRAND_TEST_STORE");
  if (base && strncmp(base, "redis://", 8) == 0) {
    dir[0] = 0;
    size_t n = strcspn(base, "?");
    snprintf(url, url_size, "%.*s?prefix=%s-%d-%d%s%s", (int)n, base, tag, (int)getpid(), ++seq,
             extra ? "&" : "", extra ? extra : "");
  } else {
    snprintf(dir, dir_size, "/tmp/errand-%s-XXXXXX", tag);
    assert_non_null(mkdtemp(dir));
    snprintf(url, url_size, "sqlite:%s/errand.db%s%s", dir, extra ? "?" : "", extra ? extra : "");
  }
}

#endif
