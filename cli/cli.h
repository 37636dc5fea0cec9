/* The errand command's shared helpers. The command is written against the
 * public headers only. */
#ifndef ERRAND_CLI_H
#define ERRAND_CLI_H

#include <getopt.h>

#include <errand.h>
#include <errand/client.h>
#include <errand/worker.h>

/* Exit codes, documented in docs/cli.md and `errand --help`. */
enum {
  EXIT_OK = 0,
  EXIT_TASK_FAILED = 1, /* the task ended in FAILURE or REVOKED */
  EXIT_USAGE = 2,       /* bad arguments or input (malformed JSON, ...) */
  EXIT_STORE = 3,       /* the store cannot be opened or used */
  EXIT_NOT_FOUND = 4,   /* no such task or key */
  EXIT_NOT_READY = 5    /* not finished (or --timeout passed) */
};

/* Every command's --help ends with this line. */
#define CLI_STORE_HELP \
  "      --store URL     the store (default $ERRAND_STORE, else sqlite:errand.db)\n" \
  "      --store-file PATH  the store URL from PATH's first line (keeps a password\n" \
  "                      out of ps)\n"

/* Prints "errand: <message>" on one line to stderr. */
void cli_error(const char *fmt, ...) ER_PRINTF(1, 2);
/* Maps a library error code to an exit code. */
int cli_exit_for(int rc);
/* The URL in path's first line (its newline stripped), for --store-file; a
 * static buffer. NULL after printing the error (the caller exits 2). */
const char *cli_store_file(const char *path);
/* The store options every command takes: c is 's' (--store URL) or 'S'
 * (--store-file PATH); sets *store. False (the error printed) for a file
 * that cannot be read. */
bool cli_store_opt(int c, const char *arg, const char **store);
/* The exit code for a store that did not open with rc: 2 for a malformed
 * URL (ER_EINVAL), else 3. */
int cli_open_exit(int rc);
/* Opens a client on url (NULL: default); on failure prints the store's
 * message as one line, sets *code (cli_open_exit) and returns NULL. */
er_client_t *cli_open(const char *url, int *code);
/* How many live workers list value in their heartbeat's array field
 * ("queues", "pipelines"); *live (may be NULL) gets how many live workers
 * there are. -1 when the store cannot say, or none lists it and some
 * worker's heartbeat has no such field (wait.c). */
int cli_workers_listing(er_client_t *c, const char *field, const char *value, int *live);
/* Whether a live worker consumes queue; true when the store cannot say, so
 * that a store hiccup never produces a false warning. */
bool cli_queue_served(er_client_t *c, const char *queue);
/* Parses a JSON text argument; prints the error and returns NULL if bad. */
json_t *cli_json_arg(const char *what, const char *text);
/* Reading the command line (opts.c). */
/* getopt_long with one-line errors: an unknown option or a missing value
 * prints "errand: unknown option '--x'; see 'errand CMD --help'" (CMD is
 * argv[0]) and returns '?'. shortopts must begin with ':'. */
int cli_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts);
/* Parses a decimal integer in [min, max] into *out; prints "OPT takes an
 * integer ..." for junk, "OPT: S is out of range (MIN..MAX)" past the range
 * (overflow included), and returns false. */
bool cli_int_opt(const char *opt, const char *s, int min, int max, int *out);
/* Parses seconds (digits, an optional fraction) into *ms, which must land in
 * [min_ms, max_ms]; prints "OPT takes seconds" (sign, NaN, inf, junk) or
 * "OPT: S is out of range (MIN..MAX seconds)" and returns false. */
bool cli_seconds_opt(const char *opt, const char *s, int64_t min_ms, int64_t max_ms,
                     int64_t *ms);
/* Parses a time as status prints it, 2026-12-02T11:40:00[.123]Z, or any
 * RFC 3339 time with an offset (er_time_parse: 1970 to 9999), into ms since
 * the epoch; prints the error and returns false. */
bool cli_time_opt(const char *opt, const char *s, int64_t *ms);

/* The callback secret's options: c is 'x' (--secret S) or 'X'
 * (--secret-file PATH, its first line); sets *secret. False (the error
 * printed) for a file that cannot be read or holds no secret. */
bool cli_secret_opt(int c, const char *arg, const char **secret);
/* After the options: *secret from $ERRAND_SECRET when none was given, then
 * its length checked (ER_SECRET_MIN_LEN bytes at least); false after
 * printing the error (the caller exits 2). */
bool cli_secret_env(const char **secret);
/* Help lines for the secret's options. */
#define CLI_SECRET_HELP \
  "      --secret S      callback tokens are made and checked under S (at least 16\n" \
  "                      bytes) instead of the store's secret\n" \
  "      --secret-file PATH  the secret from PATH's first line (default\n" \
  "                      $ERRAND_SECRET; a secret on the command line shows in ps)\n"

/* The most seconds a countdown, expiry or --timeout takes (about 31 years):
 * far enough for any schedule, and now + it never overflows. */
#define CLI_MAX_SECONDS_MS 1000000000000LL

/* Output formatting (format.c). */
/* A buffer for cli_esc: longer names end in "...". */
#define CLI_ESC_SIZE 512
/* s with control characters (< 0x20, 0x7f) written as \n, \t or \xNN, so a
 * name cannot break lines or send terminal escapes. buf holds size >= 4
 * bytes (CLI_ESC_SIZE); returns buf. */
char *cli_esc(const char *s, char *buf, size_t size);
/* ms since the epoch as ISO 8601 UTC with milliseconds:
 * 2026-12-02T11:40:00.123Z. Returns buf. */
char *cli_iso_time(int64_t ms, char buf[32]);
/* How long before now then was: 0 for a time to come, and no overflow for
 * any then (a store's value, not to be trusted). */
int64_t cli_ago(int64_t now, int64_t then);
/* A duration in human units: "250 ms", "1.5 s", "2 min 3 s", "1 h 5 min",
 * "3 d 4 h". Returns buf. */
char *cli_duration(int64_t ms, char buf[32]);
/* json_dumps with reals printed as written: the fewest digits that read back
 * as the same double (0.45, not 0.45000000000000001). New string (free()),
 * or NULL when out of memory. */
char *cli_json_text(const json_t *j, size_t flags);
/* Prints the outcome of a finished task: the result JSON on stdout, or the
 * error on stderr; returns the exit code. */
int cli_print_outcome(er_client_t *c, const char *id, int rc, json_t *result, json_t *error);
/* Waits for id's result (timeout_ms < 0: forever), drawing a progress bar on
 * a terminal; warns once on stderr when no live worker serves the task's
 * queue after a few seconds. Past the timeout: "not finished after ..." and
 * EXIT_NOT_READY. Returns the exit code (wait.c). */
int cli_wait_result(er_client_t *c, const char *id, int64_t timeout_ms);
/* errand pipeline callback ID k=v...: delivers the callback, waits (timeout_ms
 * < 0: forever) and prints its answer; returns the exit code
 * (cmd_pipeline_callback.c). */
int cli_pipeline_callback(er_client_t *c, const char *id, int nparams, char **params,
                          int64_t timeout_ms);

int cmd_worker(int argc, char **argv);
int cmd_send(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_result(int argc, char **argv);
int cmd_revoke(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_tasks(int argc, char **argv);
int cmd_purge(int argc, char **argv);
int cmd_pipeline(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_up(int argc, char **argv);

#endif
