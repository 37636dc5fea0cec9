/* errand serve: the HTTP API (errand/http.h) until SIGTERM or SIGINT. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <errand/http.h>

#include "cli.h"

int cmd_serve(int argc, char **argv) {
  static const char usage[] =
      "usage: errand serve [--listen HOST:PORT] [--token T] [--secret S] [--base-url URL]\n"
      "                    [--store URL]\n"
      "Serves the HTTP API (docs/http-api.md) until SIGTERM or SIGINT; prints the URL it\n"
      "listens on.\n"
      "      --listen HOST:PORT  where to listen (default 127.0.0.1:8080; port 0 picks a\n"
      "                      free one)\n"
      "      --token T       every /api/ request needs 'Authorization: Bearer T'\n"
      "      --base-url URL  the base of the status URLs answers give (http(s)://...)\n"
      CLI_SECRET_HELP CLI_STORE_HELP;
  static const struct option opts[] = {
      {"listen", required_argument, 0, 'l'},   {"token", required_argument, 0, 't'},
      {"secret", required_argument, 0, 'x'},   {"base-url", required_argument, 0, 'B'},
      {"store", required_argument, 0, 's'},    {"store-file", required_argument, 0, 'S'},
      {"secret-file", required_argument, 0, 'X'},
      {"help", no_argument, 0, 'h'},           {0, 0, 0, 0}};
  er_http_opts_t o = {0};
  int c;
  while ((c = cli_getopt(argc, argv, ":h", opts)) != -1) {
    switch (c) {
      case 'l': o.listen = optarg; break;
      case 't': o.token = optarg; break;
      case 'x':
      case 'X':
        if (!cli_secret_opt(c, optarg, &o.secret)) return EXIT_USAGE;
        break;
      case 'B': o.base_url = optarg; break;
      case 's':
      case 'S':
        if (!cli_store_opt(c, optarg, &o.store_url)) return EXIT_USAGE;
        break;
      case 'h': fputs(usage, stdout); return EXIT_OK;
      default: return EXIT_USAGE;
    }
  }
  if (optind < argc) {
    cli_error("serve takes no arguments (see errand serve --help)");
    return EXIT_USAGE;
  }
  if (!cli_secret_env(&o.secret)) return EXIT_USAGE;
  /* The server's threads inherit this mask: the signals come to sigwait. */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);
  er_http_server_t *s;
  char msg[512] = "";
  int rc = er_http_server_new(&o, &s, msg, sizeof msg);
  if (rc < 0) {
    cli_error("%s", *msg ? msg : er_strerror(rc));
    return rc == ER_EINVAL ? EXIT_USAGE : EXIT_STORE;
  }
  rc = er_http_server_start(s, msg, sizeof msg);
  if (rc < 0) {
    cli_error("%s", *msg ? msg : er_strerror(rc));
    er_http_server_free(s);
    return EXIT_USAGE; /* an address that cannot be bound is the caller's input */
  }
  printf("%s\n", er_http_server_url(s));
  fflush(stdout);
  int sig;
  sigwait(&set, &sig);
  er_http_server_free(s);
  return EXIT_OK;
}
