/* The integration tests' harness: a fresh SQLite store in a temporary
 * directory per test, and real `errand worker` processes started and stopped
 * by pid. ERRAND_BIN and TASKS_LIB come from the build. */
#ifndef ER_TEST_HARNESS_H
#define ER_TEST_HARNESS_H

#include <errand.h>
#include <errand/client.h>
#include <errand/store.h>
#include <errand/worker.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/types.h>

typedef struct harness {
  char dir[256];
  char url[320];
  er_client_t *client;
} harness_t;

/* Makes the store and a client on it. extra_query (may be NULL) is appended
 * to the URL, like "?tombstone_ms=50". */
void h_setup(harness_t *h, const char *extra_query);
void h_teardown(harness_t *h);

/* Starts `errand worker` on h's store; extra are more arguments, NULL-ended. */
pid_t h_worker(harness_t *h, const char *pool, int concurrency, ...);
/* Sends sig and waits for the process; returns its wait status. */
int h_stop(pid_t pid, int sig);

/* Runs the errand command with args (NULL-ended) on h's store; returns its
 * exit code and, if out is not NULL, its stdout (and err its stderr) as new
 * strings. */
int h_cli(harness_t *h, char **out, char **err, ...);
/* Runs argv (argv[0] a path, NULL-ended) as h_cli does, adding nothing. */
int h_run(char **out, char **err, char *const argv[]);

/* Sends task with args given as JSON text; returns the id (static buffer
 * per call site is the caller's: pass id). */
void h_send(harness_t *h, const char *task, const char *args_json, const er_send_opts_t *o,
            er_id_t *id);
/* The task's state now (ER_STATE_UNKNOWN for an id the store never saw). */
er_task_state_t h_state(harness_t *h, const char *id);
/* Waits up to timeout_ms for the task to reach state (fails the test if it
 * does not). */
void h_wait_state(harness_t *h, const char *id, er_task_state_t state, int64_t timeout_ms);
/* Waits up to timeout_ms for the task to finish; returns its record. */
er_task_rec_t *h_wait(harness_t *h, const char *id, int64_t timeout_ms);

/* Starts the errand command with args (NULL-ended) and --store h's URL in the
 * background, its stdout and stderr appended to the file at log; stop it with
 * h_stop. */
pid_t h_cli_start(harness_t *h, const char *log, ...);
/* The whole file as a new string ("" when it does not exist). */
char *h_read_file(const char *path);
/* Waits up to timeout_ms for the file at path to contain needle. */
bool h_wait_text(const char *path, const char *needle, int64_t timeout_ms);
/* How many tasks in h's store are in state (a state name, as the store's
 * stats count them), or -1 when the store cannot be read now. */
long h_count_state(harness_t *h, const char *state);
/* Waits up to timeout_ms for at least n live workers in h's store. */
void h_wait_workers(harness_t *h, size_t n, int64_t timeout_ms);

/* ---- Redis stores and worker logs ---- */

/* As h_setup, on a private redis-server started in h->dir (a URL with
 * prefix "t"). Returns false, having set nothing up, when redis-server is
 * not installed or does not start (the caller skips). */
bool h_setup_redis(harness_t *h);
/* Stops that redis-server, then as h_teardown. */
void h_teardown_redis(harness_t *h);
/* As h_worker, with ERRAND_LOG=info and the worker's stderr written to the
 * file log; quiet false keeps the start-up banner. */
pid_t h_worker_log(harness_t *h, const char *log, bool quiet, const char *pool, int concurrency,
                   ...);
/* The heartbeat info of the worker whose pid is pid (new reference), or NULL
 * when it is not listed. */
json_t *h_worker_info(harness_t *h, pid_t pid);

/* ---- a redis-server run by the test (harness_redis.c) ---- */

/* Finds redis-server on PATH; false when it is not installed. */
bool h_redis_find(void);
/* A loopback TCP port free at the time of the call. */
int h_free_port(void);
/* Starts redis-server (found by h_redis_find) in dir on bind:port, AOF on with
 * appendfsync always, optionally inside network namespace netns (through `ip
 * netns exec`, which execs: the pid is the server's) and with a password.
 * Waits until it answers when it is on the loopback here; -1 when it exited
 * first (the port was taken meanwhile). */
pid_t h_redis_start(const char *dir, const char *bind, int port, const char *netns,
                    const char *password);
/* Sends sig to the server started by h_redis_start and waits for it (pid <= 0:
 * nothing). */
void h_redis_kill(pid_t pid, int sig);

/* A worker made with opts (its store_url set to h's) run in a forked copy of
 * this process, so it has the tasks this test registered; its stdout and
 * stderr become out_fd and err_fd (-1: kept). Stop it with h_stop. */
pid_t h_worker_fork(harness_t *h, er_worker_opts_t opts, int out_fd, int err_fd);

#endif
