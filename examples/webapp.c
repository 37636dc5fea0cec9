/*
 * A web service that answers at once and hands the slow work to errand, with
 * the caller's identity carried into the task (as pymacaron's with_async
 * does). POST /signup sends a `send_email` task (examples/tasks.c) whose
 * context is {"user": U}, U taken from the request's `Authorization: Bearer
 * U` header, and answers 202 with the task's id; the task reads U back with
 * er_task_context. The tasks run on an embedded worker (er_worker_start,
 * threads pool) inside this same process, on the same store.
 *
 *   build/example_webapp [--port 8080] [--store URL]     (port 0: any free one)
 *   curl -X POST -H 'Authorization: Bearer alice' http://127.0.0.1:8080/signup
 *   build/errand result ID --wait                        # "mail to alice: welcome"
 *
 * A demo: the bearer token *is* the user's name; a real service would check
 * it and look its user up. SIGINT or SIGTERM stops it in order: no new
 * requests, then a warm stop of the worker (the running tasks finish).
 */
#include <arpa/inet.h>
#include <errand.h>
#include <errand/client.h>
#include <errand/worker.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static er_client_t *g_client; /* used by the server's thread; a client may be */

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, json_t *body) {
  char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
  json_decref(body);
  if (!text) return MHD_NO; /* out of memory: MHD drops the connection */
  struct MHD_Response *r =
      MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
  if (!r) {
    free(text);
    return MHD_NO;
  }
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
  if (status == MHD_HTTP_METHOD_NOT_ALLOWED) MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "POST");
  enum MHD_Result ok = MHD_queue_response(conn, status, r);
  MHD_destroy_response(r);
  return ok;
}

static enum MHD_Result error(struct MHD_Connection *conn, unsigned status, const char *msg) {
  return reply(conn, status, json_pack("{s:s}", "error", msg));
}

/* POST /signup: who is asking goes into the task's context, then 202. */
static enum MHD_Result signup(struct MHD_Connection *conn) {
  const char *auth =
      MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
  if (!auth || strncmp(auth, "Bearer ", 7) != 0 || !auth[7])
    return error(conn, MHD_HTTP_UNAUTHORIZED, "Authorization: Bearer USER needed");
  json_t *ctx = json_pack("{s:s}", "user", auth + 7);
  if (!ctx) return error(conn, MHD_HTTP_BAD_REQUEST, "the user must be UTF-8");
  er_send_opts_t o = {.context = ctx};
  er_id_t id;
  int rc = er_send(g_client, "send_email", NULL, NULL, &o, &id);
  json_decref(ctx);
  if (rc < 0) return error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, er_client_last_error(g_client));
  return reply(conn, MHD_HTTP_ACCEPTED, json_pack("{s:s}", "id", id.text));
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
  if (!*con_cls) { /* the headers: answer once the body (ignored) is in */
    *con_cls = conn;
    return MHD_YES;
  }
  if (*upload_data_size) {
    *upload_data_size = 0;
    return MHD_YES;
  }
  if (strcmp(url, "/signup") != 0) return error(conn, MHD_HTTP_NOT_FOUND, "no such page");
  if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
    return error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "POST only");
  return signup(conn);
}

/* A listening socket on the loopback; *port 0 picks a free one, which it then
 * holds. Made here rather than by MHD so that port 0 works. */
static int listen_on(int *port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)*port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 64) < 0 ||
      getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
    close(fd);
    return -1;
  }
  *port = ntohs(a.sin_port);
  return fd;
}

static int usage(void) {
  fprintf(stderr, "usage: example_webapp [--port N (0..65535, 0: any free)] [--store URL]\n");
  return 2;
}

int main(int argc, char **argv) {
  int port = 8080;
  const char *store = NULL;
  for (int i = 1; i < argc; i++) {
    char *end;
    if (!strcmp(argv[i], "--port") && i + 1 < argc) {
      long p = strtol(argv[++i], &end, 10);
      if (*end || end == argv[i] || p < 0 || p > 65535) return usage();
      port = (int)p;
    } else if (!strcmp(argv[i], "--store") && i + 1 < argc) {
      store = argv[++i];
    } else {
      return usage();
    }
  }
  /* Blocked before any thread starts, so that every thread inherits it:
   * main alone takes the stop signals, with sigwait, and shuts down in
   * order. The embedded worker installs no handler of its own. */
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, NULL);

  char msg[512] = "";
  if (er_client_open(store, &g_client, msg, sizeof msg) < 0) {
    fprintf(stderr, "example_webapp: %s\n", msg);
    return 1;
  }
  er_worker_opts_t o = {.store_url = er_client_url(g_client), .pool = ER_POOL_THREADS,
                        .concurrency = 2, .quiet = true};
  er_worker_t *w = NULL;
  if (er_worker_start(&o, &w, msg, sizeof msg) < 0) {
    fprintf(stderr, "example_webapp: worker: %s\n", msg);
    er_client_close(g_client);
    return 1;
  }
  int fd = listen_on(&port);
  struct MHD_Daemon *d =
      fd < 0 ? NULL
             : MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL,
                                on_request, NULL, MHD_OPTION_LISTEN_SOCKET, fd,
                                MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
  int rc = 0;
  if (!d) {
    perror("example_webapp: cannot listen");
    if (fd >= 0) close(fd);
    rc = 1;
  } else {
    printf("example_webapp: listening on http://127.0.0.1:%d (POST /signup)\n", port);
    fflush(stdout);
    int sig;
    sigwait(&stop, &sig);
    MHD_stop_daemon(d); /* no new request, so no new task from here */
  }
  int wrc = 0;
  er_worker_stop(w, false);
  er_worker_join(w, &wrc);
  er_client_close(g_client);
  return rc || wrc ? 1 : 0;
}
