/* The store conformance suite's shared fixture and helpers (see
 * conformance.c), and the tests that live in conformance_more.c. */
#ifndef ER_TEST_CONFORMANCE_H
#define ER_TEST_CONFORMANCE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "errand/common.h"
#include "errand/store.h"

extern const char *g_base; /* the URL given, or NULL */

typedef struct fx {
  char dir[128];      /* temporary directory (own-file mode) */
  char base[512];     /* the store URL without the test's options */
  char queue[64];     /* this test's queue */
  char tag[40];       /* unique suffix for names, keys, workers */
  er_store_t *s;
} fx_t;

bool is_sqlite(const fx_t *f);
void url_with(const fx_t *f, const char *opts, char *out, size_t size);
er_store_t *open_with(const fx_t *f, const char *opts);
int setup(void **state);
void rm_dir(const char *dir);
int teardown(void **state);
int64_t now_ms(void);
void sleep_ms(int ms);
er_task_rec_t *mk(const fx_t *f, const char *task);
char *tagged(const fx_t *f, const char *what);
int enq(fx_t *f, er_task_rec_t *r);
er_task_rec_t *get(fx_t *f, const char *id);
int get_rc(fx_t *f, const char *id);
size_t reserve_at(fx_t *f, size_t max, int64_t now, int64_t lease_ms, er_task_rec_t ***out);
er_task_rec_t *reserve1(fx_t *f, int64_t now, int64_t lease_ms);
bool complete1(fx_t *f, const char *id, int attempt, er_task_state_t state, json_t *result, json_t *error, int64_t now, int64_t retry_eta);
void assert_json_eq(const json_t *a, const json_t *b);
void reap(pid_t pid);
er_task_rec_t *mk_on(const fx_t *f, const char *queue);
er_task_rec_t *running_on(er_store_t *s, const fx_t *f, const char *queue);
/* Mutations for er_store_apply. */
er_mut_t mut_doc_put(const char *coll, const char *key, json_t *v, int64_t if_version);
er_mut_t mut_counter_add(const char *coll, const char *key, int64_t delta, int64_t if_value);

/* conformance_more.c */
void test_result_ttl(void **state);
void test_purge(void **state);
void test_stats(void **state);
void test_heartbeats(void **state);
void test_too_big(void **state);
void test_corrupt_file(void **state);
void test_schema_version(void **state);
void test_busy(void **state);
void test_concurrent_create(void **state);
void test_wake_other_process(void **state);
void test_wait_timeout(void **state);
void test_multi_process(void **state);

/* conformance_oom.c */
void test_complete_oom(void **state);

#endif
