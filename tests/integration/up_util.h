/* The `errand up` and secret tests' helpers (up_util.c). */
#ifndef ER_TEST_UP_UTIL_H
#define ER_TEST_UP_UTIL_H

#include <jansson.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/types.h>

#include <errand.h>

#include "harness.h"
#include "http_client.h"

#define SECRET_A "a-secret-of-twenty-four!"
#define SECRET_B "another-secret-of-24-b!!"

extern harness_t H;    /* a fresh SQLite store per test */
extern char g_log[400]; /* what the started commands print */

/* cmocka's setup and teardown: H, and g_log in its directory. */
int setup(void **state);
int teardown(void **state);
/* ERRAND_BIN with args (NULL-ended) and --store H's URL, its stdout and
 * stderr appended to g_log. */
pid_t launch(const char *first, ...);
pid_t launchv(const char *first, va_list ap);
/* The same; *port gets the port of the first URL it prints. */
pid_t start(int *port, const char *first, ...);
/* The port of the first "http://127.0.0.1:PORT" in g_log past byte from. */
int wait_port(size_t from);
size_t log_size(void);
/* A request whose answer must have status want: its JSON body (new). */
json_t *request(int port, const char *method, const char *path, const char *body, int want);
/* Sends add [2, 3] over HTTP and waits for its result, 5. */
void add_over_http(int port);
/* Starts approve_demo over HTTP; root gets its id; its approve link (new). */
char *approve_link(int port, char root[ER_ID_LEN + 1]);
/* The path and query of an http:// URL (a pointer into it). */
const char *path_of(const char *url);
/* Waits until pipeline root's status is want. */
void wait_status(int port, const char *root, const char *want);
/* GET path: its status, its body into body (new; may be NULL). */
int get(int port, const char *path, char **body);
/* The latest pid after "worker pid " in g_log. */
pid_t worker_pid(void);
/* Sends sig to pid and expects it to exit with code. */
void expect_exit(pid_t pid, int sig, int code);
/* Runs argv: exit code want, one errand: line holding needle on stderr,
 * nothing on stdout. */
void refused(int want, const char *needle, char *const argv[]);

#endif
