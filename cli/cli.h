/* The errand command's shared helpers. The command is written against the
 * public headers only. */
#ifndef ERRAND_CLI_H
#define ERRAND_CLI_H

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

/* Prints "errand: <message>" on one line to stderr. */
void cli_error(const char *fmt, ...) ER_PRINTF(1, 2);
/* Maps a library error code to an exit code. */
int cli_exit_for(int rc);
/* Opens a client on url (NULL: default), printing the error. */
er_client_t *cli_open(const char *url);
/* Parses a JSON text argument; prints the error and returns NULL if bad. */
json_t *cli_json_arg(const char *what, const char *text);
/* Parses seconds (may be fractional) into *ms; prints "OPT takes seconds"
 * and returns false if s is not a number of seconds. */
bool cli_seconds_opt(const char *opt, const char *s, int64_t *ms);
/* Prints the outcome of a finished task: the result JSON on stdout, or the
 * error on stderr; returns the exit code. */
int cli_print_outcome(er_client_t *c, const char *id, int rc, json_t *result, json_t *error);
/* Waits for id's result, drawing a progress bar on a terminal. */
int cli_wait_result(er_client_t *c, const char *id, int64_t timeout_ms);

int cmd_worker(int argc, char **argv);
int cmd_send(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_result(int argc, char **argv);
int cmd_revoke(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_purge(int argc, char **argv);

#endif
