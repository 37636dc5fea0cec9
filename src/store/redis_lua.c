/* The scripts' registry and their assembly.
 *
 * The Lua lives in src/store/lua/ (NAME.lua), embedded as C arrays at build time
 * (src/store/lua/embed.cmake): no file is read at run time. Each script's
 * text is, in order: constants generated here from the C definitions (task
 * states, default result TTL, argument strides, mutation kinds), so that no
 * number is typed twice; the prelude every script shares (prelude.lua); the
 * libraries it needs (finish.lua: ending tasks; cleanup.lua: deleting them
 * and commands over long lists; task.lua,
 * lib_enqueue.lua, lib_complete.lua: enqueue and complete as check + write;
 * docs.lua: documents and counters); and its body, run as main(), after
 * which the counts it changed are written and its wake-ups published, once
 * each. Only the libraries a script uses are in it: Redis runs a script's
 * whole text at every call, and each function and table it makes costs time
 * there (allocation, and the garbage collector's work for it: measured
 * under callgrind, a few thousand instructions a function).
 *
 * Every script starts with a Redis 7 shebang, so that Redis knows before it
 * runs one whether it may add memory: at maxmemory (noeviction) a script
 * without one runs until its first write that may grow memory and fails
 * there, its earlier writes kept. The scripts that take, finish, renew or
 * remove tasks say allow-oom, so that workers drain a full store and purge
 * empties it; enqueue and apply, which add, say nothing and are refused whole
 * before they start. Every key a script touches shares the store's hash tag,
 * so one slot, as a declared script needs in a cluster. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/redis_internal.h"

/* The embedded files (the build's generated redis_lua_embed.c). */
extern const char er__rd_lua_prelude[], er__rd_lua_finish[], er__rd_lua_cleanup[], er__rd_lua_task[],
    er__rd_lua_lib_enqueue[], er__rd_lua_lib_complete[], er__rd_lua_docs[],
    er__rd_lua_enqueue[], er__rd_lua_get[], er__rd_lua_revoke[], er__rd_lua_purge[],
    er__rd_lua_reserve[], er__rd_lua_renew[], er__rd_lua_complete[], er__rd_lua_progress[],
    er__rd_lua_maintain[], er__rd_lua_heartbeat[], er__rd_lua_worker_gone[],
    er__rd_lua_workers[], er__rd_lua_apply[], er__rd_lua_docread[], er__rd_lua_next_due[],
    er__rd_lua_list[], er__rd_lua_migrate[];

/* Libraries, in the order they are included. */
enum { LIB_FINISH = 1, LIB_CLEANUP = 2, LIB_TASK = 4, LIB_ENQUEUE = 8, LIB_COMPLETE = 16, LIB_DOCS = 32 };
#define LIB_ENQ (LIB_TASK | LIB_ENQUEUE)
#define LIB_DONE (LIB_FINISH | LIB_TASK | LIB_COMPLETE)

static const struct {
  const char *name; /* for messages */
  const char *body;
  int libs;
  bool grows; /* adds tasks or documents: refused at maxmemory */
} g_scripts[ER_RD_NSCRIPTS] = {
    [ER_RD_ENQUEUE] = {"enqueue", er__rd_lua_enqueue, LIB_ENQ, true},
    [ER_RD_GET] = {"get", er__rd_lua_get, 0, false},
    [ER_RD_REVOKE] = {"revoke", er__rd_lua_revoke, LIB_FINISH, false},
    [ER_RD_PURGE] = {"purge", er__rd_lua_purge, LIB_FINISH | LIB_CLEANUP, false},
    [ER_RD_RESERVE] = {"reserve", er__rd_lua_reserve, LIB_FINISH | LIB_CLEANUP, false},
    [ER_RD_RENEW] = {"renew", er__rd_lua_renew, 0, false},
    [ER_RD_COMPLETE] = {"complete", er__rd_lua_complete, LIB_DONE, false},
    [ER_RD_PROGRESS] = {"progress", er__rd_lua_progress, 0, false},
    [ER_RD_MAINTAIN] = {"maintain", er__rd_lua_maintain, LIB_FINISH | LIB_CLEANUP, false},
    [ER_RD_HEARTBEAT] = {"heartbeat", er__rd_lua_heartbeat, 0, false},
    [ER_RD_WORKER_GONE] = {"worker_gone", er__rd_lua_worker_gone, 0, false},
    [ER_RD_WORKERS] = {"workers", er__rd_lua_workers, 0, false},
    [ER_RD_APPLY] = {"apply", er__rd_lua_apply, LIB_ENQ | LIB_DONE | LIB_DOCS, true},
    [ER_RD_DOCREAD] = {"docread", er__rd_lua_docread, LIB_DOCS, false},
    [ER_RD_NEXT_DUE] = {"next_due", er__rd_lua_next_due, 0, false},
    [ER_RD_LIST] = {"list", er__rd_lua_list, 0, false},
    [ER_RD_MIGRATE] = {"migrate", er__rd_lua_migrate, 0, false},
};

/* Each body runs as main(); what it changed is written once after. */
static const char g_main[] = "\nlocal function main()\n";
static const char g_epilogue[] =
    "\nend\nlocal r = main()\nflush_counts()\nflush_wakes()\nreturn r\n";

/* Lua constants from the C definitions: states as the text a task hash
 * stores ("local PENDING = '0'"), numbers as integers. */
static size_t constants(char *buf, size_t size) {
  size_t n = 0;
#define OUT(...) n += (size_t)snprintf(buf + n, n < size ? size - n : 0, __VA_ARGS__)
  for (int s = ER_STATE_PENDING; s <= ER_STATE_REVOKED; s++)
    OUT("local %s = '%d'\n", er_state_name((er_task_state_t)s), s);
  static const struct {
    const char *name;
    long long v;
  } nums[] = {
      {"RESULT_TTL_DEFAULT_MS", ER__RESULT_TTL_DEFAULT_MS},
      {"REC_FIELDS", ER_RD_REC_FIELDS},
      {"DONE_FIELDS", ER_RD_DONE_FIELDS},
      {"WAKE_IDS_MAX", ER_RD_WAKE_IDS_MAX},
      {"MUT_ENQUEUE", ER_MUT_ENQUEUE},
      {"MUT_COMPLETE", ER_MUT_COMPLETE},
      {"MUT_TASK_GUARD", ER_MUT_TASK_GUARD},
      {"MUT_DOC_PUT", ER_MUT_DOC_PUT},
      {"MUT_DOC_MERGE", ER_MUT_DOC_MERGE},
      {"MUT_DOC_DEL", ER_MUT_DOC_DEL},
      {"MUT_COUNTER_ADD", ER_MUT_COUNTER_ADD},
  };
  for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++)
    OUT("local %s = %lld\n", nums[i].name, nums[i].v);
#undef OUT
  return n;
}

static char *g_texts[ER_RD_NSCRIPTS];
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

/* Built with the C library's malloc: they live as long as the process. */
static void build(void) {
  char consts[2048];
  if (constants(consts, sizeof consts) >= sizeof consts) return;
  for (int i = 0; i < ER_RD_NSCRIPTS; i++) {
    int libs = g_scripts[i].libs;
    const char *parts[] = {g_scripts[i].grows ? "#!lua\n" : "#!lua flags=allow-oom\n",
                           consts,
                           er__rd_lua_prelude,
                           libs & LIB_FINISH ? er__rd_lua_finish : "",
                           libs & LIB_CLEANUP ? er__rd_lua_cleanup : "",
                           libs & LIB_TASK ? er__rd_lua_task : "",
                           libs & LIB_ENQUEUE ? er__rd_lua_lib_enqueue : "",
                           libs & LIB_COMPLETE ? er__rd_lua_lib_complete : "",
                           libs & LIB_DOCS ? er__rd_lua_docs : "",
                           g_main,
                           g_scripts[i].body,
                           g_epilogue};
    size_t np = sizeof parts / sizeof parts[0], len = 1;
    for (size_t k = 0; k < np; k++) len += strlen(parts[k]);
    char *t = malloc(len);
    if (!t) continue;
    char *p = t;
    for (size_t k = 0; k < np; k++) {
      size_t l = strlen(parts[k]);
      memcpy(p, parts[k], l);
      p += l;
    }
    *p = 0;
    g_texts[i] = t;
  }
}

const char *er__rd_script_text(er_rd_script_t n) {
  pthread_once(&g_once, build);
  return g_texts[n] ? g_texts[n] : "return redis.error_reply('ENOMEM script text')";
}

const char *er__rd_script_name(er_rd_script_t n) { return g_scripts[n].name; }
