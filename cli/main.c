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
    "           [--lease S] [--grace S] [--max-result-size BYTES]\n"
    "           [--task-output FILE] [--base-url URL] [--secret S] [--secret-file PATH]\n"
    "           [--loglevel L] [--quiet]\n"
    "           [--celery [--visibility-timeout S] [--track-started]]\n"
    "  send     send a task: errand send TASK [--args JSON] [--kwargs JSON]\n"
    "           [--context JSON] [--countdown S] [--eta TIME] [--expires S|TIME]\n"
    "           [--key K] [--name N] [--if-absent] [--queue Q] [--priority P]\n"
    "           [--wait [--timeout S]]\n"
    "  status   a task's state: errand status ID | --key K\n"
    "  result   a task's result: errand result ID | --key K [--wait [--timeout S]]\n"
    "  revoke   revoke a task: errand revoke ID\n"
    "  inspect  queues, counts by state, live workers and their tasks\n"
    "  tasks    list tasks, newest first: errand tasks [--state S] [--name N]\n"
    "           [--queue Q] [--limit L] [--cursor C] [--json]\n"
    "  purge    remove a queue's waiting tasks: errand purge QUEUE\n"
    "  pipeline start, wait for, show, abort, list pipelines: errand pipeline\n"
    "           start NAME [--args JSON] [--kwargs JSON] [--key K] [--queue Q]\n"
    "           [--countdown S] [-A LIB] [--wait [--timeout S]] | wait ROOT [--timeout S]\n"
    "           | show ROOT [--json] | abort ROOT [--message M] | list [--name N]\n"
    "           [--limit N]\n"
    "  serve    the HTTP API: errand serve [--listen HOST:PORT] [--token T]\n"
"           [--secret S] [--secret-file PATH] [--base-url URL]\n"
    "  up       the HTTP API and a worker in one: errand up [--listen HOST:PORT]\n"
    "           [-A LIB]... [--concurrency N] [--pool P] [--queues a,b] [--token T]\n"
    "           [--secret S] [--secret-file PATH] [--base-url URL]\n"
    "\n"
    "every command takes --store URL (default $ERRAND_STORE, else sqlite:errand.db)\n"
    "or --store-file PATH (the URL from PATH's first line), and --help. ERRAND_LOG=error|warn|info|debug|trace sets the log level.\n"
    "\n"
    "exit codes: 0 ok; 1 the task failed or was revoked (a pipeline aborted); 2 bad\n"
    "usage or input (a malformed store URL too); 3 the store cannot be opened or\n"
    "used; 4 no such task; 5 not finished (or --timeout passed: send --wait then\n"
    "prints the task's id).\n";

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

bool cli_store_opt(int c, const char *arg, const char **store) {
  const char *url = c == 'S' ? cli_store_file(arg) : arg;
  if (url) *store = url;
  return url != NULL;
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

int cli_open_exit(int rc) {
  /* A URL that does not parse is the user's input (2); a store that does
   * not answer, a file that cannot be opened or read, is the store's (3). */
  return rc == ER_EINVAL ? EXIT_USAGE : EXIT_STORE;
}

er_client_t *cli_open(const char *url, int *code) {
  er_client_t *c;
  char msg[512] = "";
  int rc = er_client_open(url, &c, msg, sizeof msg);
  if (rc < 0) {
    cli_error("%s", *msg ? msg : er_strerror(rc));
    *code = cli_open_exit(rc);
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

int main(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    fputs(usage, argc < 2 ? stderr : stdout);
    return argc < 2 ? EXIT_USAGE : EXIT_OK;
  }
  if (!strcmp(argv[1], "--version")) {
    printf("errand %s\n", ER_VERSION_STRING);
    return 0;
  }
  if (argv[1][0] == '-') {
    cli_error("unknown option '%.*s'; see 'errand --help'", (int)strcspn(argv[1], "="), argv[1]);
    return EXIT_USAGE;
  }
  static const struct {
    const char *name;
    int (*fn)(int, char **);
  } cmds[] = {{"worker", cmd_worker}, {"send", cmd_send},       {"status", cmd_status},
              {"result", cmd_result}, {"revoke", cmd_revoke},   {"inspect", cmd_inspect},
              {"purge", cmd_purge},   {"pipeline", cmd_pipeline},
              {"serve", cmd_serve},   {"tasks", cmd_tasks},
              {"up", cmd_up}};
  for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
    if (!strcmp(argv[1], cmds[i].name)) return cmds[i].fn(argc - 1, argv + 1);
  cli_error("unknown command '%s' (see errand --help)", argv[1]);
  return EXIT_USAGE;
}
