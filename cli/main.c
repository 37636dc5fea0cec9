/* errand: the command. `errand COMMAND --help` tells each command's usage. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const char usage[] =
    "usage: errand COMMAND [options]\n"
    "\n"
    "commands:\n"
    "  worker   run a worker: errand worker -A LIB [-A LIB]... [--queues a,b]\n"
    "           [--concurrency N] [--pool prefork|threads|solo] [--prefetch N]\n"
    "           [--lease S] [--grace S] [--loglevel L] [--quiet]\n"
    "  send     send a task: errand send TASK [--args JSON] [--kwargs JSON]\n"
    "           [--context JSON] [--countdown S] [--key K] [--name N] [--if-absent]\n"
    "           [--queue Q] [--priority P] [--wait [--timeout S]]\n"
    "  status   a task's state: errand status ID | --key K\n"
    "  result   a task's result: errand result ID | --key K [--wait [--timeout S]]\n"
    "  revoke   revoke a task: errand revoke ID\n"
    "  inspect  queues, counts by state, live workers and their tasks\n"
    "  purge    remove a queue's waiting tasks: errand purge QUEUE\n"
    "  pipeline start, wait for, show, abort, list pipelines: errand pipeline\n"
    "           start NAME [--args JSON] [--kwargs JSON] [--key K] [--queue Q]\n"
    "           [--countdown S] [-A LIB] [--wait [--timeout S]] | wait ROOT [--timeout S]\n"
    "           | show ROOT [--json] | abort ROOT [--message M] | list [--name N]\n"
    "           [--limit N]\n"
    "\n"
    "every command takes --store URL (default $ERRAND_STORE, else sqlite:errand.db)\n"
    "or --store-file PATH (the URL from PATH's first line), and --help. ERRAND_LOG=error|warn|info|debug|trace sets the log level.\n"
    "\n"
    "exit codes: 0 ok; 1 the task failed or was revoked (a pipeline aborted); 2 bad\n"
    "usage or input; 3 store error; 4 no such task; 5 not finished (or --timeout\n"
    "passed: send --wait then prints the task's id).\n";

void cli_error(const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  /* One line, whatever the message holds, and no terminal escapes from the
   * names it quotes. */
  for (char *p = buf; *p; p++)
    if (*p == '\n') *p = ' ';
  char shown[4 * sizeof buf];
  fprintf(stderr, "errand: %s\n", cli_esc(buf, shown, sizeof shown));
}

int cli_exit_for(int rc) {
  switch (rc) {
    case 0: return EXIT_OK;
    case ER_EFAIL:
    case ER_EREVOKED: return EXIT_TASK_FAILED;
    case ER_EINVAL:
    case ER_EPARSE:
    case ER_ETOOBIG:
    case ER_EEXIST:
    case ER_ETOMBSTONED: return EXIT_USAGE;
    case ER_ENOENT: return EXIT_NOT_FOUND;
    case ER_ESTATE:
    case ER_ETIMEDOUT: return EXIT_NOT_READY;
    default: return EXIT_STORE;
  }
}

const char *cli_store_file(const char *path) {
  static char url[4096];
  FILE *f = fopen(path, "r");
  bool ok = f && fgets(url, sizeof url, f);
  int err = f ? (ferror(f) ? errno : 0) : errno;
  if (f) fclose(f);
  if (!ok) {
    cli_error("--store-file %s: %s", path, err ? strerror(err) : "no URL in its first line");
    return NULL;
  }
  url[strcspn(url, "\r\n")] = 0;
  if (!*url) {
    cli_error("--store-file %s: no URL in its first line", path);
    return NULL;
  }
  return url;
}

er_client_t *cli_open(const char *url) {
  er_client_t *c;
  char msg[512] = "";
  int rc = er_client_open(url, &c, msg, sizeof msg);
  if (rc < 0) {
    cli_error("%s", *msg ? msg : er_strerror(rc));
    return NULL;
  }
  return c;
}

json_t *cli_json_arg(const char *what, const char *text) {
  json_error_t e;
  json_t *j = json_loads(text, JSON_DECODE_ANY, &e);
  if (!j) cli_error("%s is not valid JSON: %s (at column %d)", what, e.text, e.column);
  return j;
}

bool cli_int_opt(const char *opt, const char *s, int min, int max, int *out) {
  /* atoi took "high" as 0 and "7abc" as 7: every character is checked, then
   * the range (strtoll reports overflow in errno). */
  const char *d = s + (*s == '-' || *s == '+');
  bool digits = *d != 0;
  for (const char *p = d; *p; p++) digits = digits && *p >= '0' && *p <= '9';
  errno = 0;
  long long v = digits ? strtoll(s, NULL, 10) : 0;
  if (!digits || errno || v < min || v > max) {
    cli_error("%s takes an integer from %d to %d, not '%s'", opt, min, max, s);
    return false;
  }
  *out = (int)v;
  return true;
}

bool cli_seconds_opt(const char *opt, const char *s, int64_t *ms) {
  /* Plain decimals only: strtod would also take signs, spaces, hex, "nan"
   * and "inf", none of which is a number of seconds. */
  size_t ndig = 0, ndot = 0;
  for (const char *p = s; *p; p++) {
    if (*p >= '0' && *p <= '9')
      ndig++;
    else if (*p == '.')
      ndot++;
    else
      ndot = 2;
  }
  double v = ndig && ndot < 2 ? strtod(s, NULL) : -1;
  if (!(v >= 0 && v <= 1e9)) {
    cli_error("%s takes seconds (like 30 or 1.5), not '%s'", opt, s);
    return false;
  }
  *ms = (int64_t)(v * 1000.0 + 0.5);
  return true;
}

int main(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    fputs(usage, argc < 2 ? stderr : stdout);
    return argc < 2 ? EXIT_USAGE : EXIT_OK;
  }
  if (!strcmp(argv[1], "--version")) {
    printf("errand %s\n", ER_VERSION_STRING);
    return 0;
  }
  static const struct {
    const char *name;
    int (*fn)(int, char **);
  } cmds[] = {{"worker", cmd_worker}, {"send", cmd_send},       {"status", cmd_status},
              {"result", cmd_result}, {"revoke", cmd_revoke},   {"inspect", cmd_inspect},
              {"purge", cmd_purge},   {"pipeline", cmd_pipeline}};
  for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
    if (!strcmp(argv[1], cmds[i].name)) return cmds[i].fn(argc - 1, argv + 1);
  cli_error("unknown command '%s' (see errand --help)", argv[1]);
  return EXIT_USAGE;
}
