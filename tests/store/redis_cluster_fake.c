/* Redis Cluster: redirects no real cluster gives on demand, from a fake
 * node (fault injection; see redis_cluster.c). */
#include "redis_cluster.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

/* ---- redirects that cannot be followed to the end ------------------------- */

/* A fake node: answers every command of its n-th connection with
 * reply[n] (the last one for all later connections), one connection at a
 * time. */
typedef struct fake {
  int fd, port;
  char reply[2][128];
  atomic_bool stop;
  pthread_t thread;
} fake_t;

static void *fake_main(void *arg) {
  fake_t *fk = arg;
  for (int n = 0; !atomic_load(&fk->stop);) {
    struct pollfd p = {fk->fd, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0) continue;
    int c = accept(fk->fd, NULL, NULL);
    if (c < 0) continue;
    const char *reply = fk->reply[n < 1 || !fk->reply[1][0] ? 0 : 1];
    n++;
    char buf[4096];
    while (!atomic_load(&fk->stop)) {
      struct pollfd q = {c, POLLIN, 0};
      if (poll(&q, 1, 50) <= 0) continue;
      /* one command a read: the client waits for each reply */
      if (read(c, buf, sizeof buf) <= 0) break;
      if (write(c, reply, strlen(reply)) < 0) break;
    }
    close(c);
  }
  return NULL;
}

/* A loopback socket bound to a free port; listening unless !listening (then
 * connecting to it is refused). */
static int loopback_socket(bool listening, int *port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  if (listening) assert_int_equal(listen(fd, 4), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
  *port = ntohs(a.sin_port);
  return fd;
}

/* Binds the fake; fake_run starts answering, once its replies are set. */
static void fake_bind(fake_t *fk) {
  memset(fk, 0, sizeof *fk);
  fk->fd = loopback_socket(true, &fk->port);
}

static void fake_run(fake_t *fk) {
  assert_int_equal(pthread_create(&fk->thread, NULL, fake_main, fk), 0);
}

static void fake_stop(fake_t *fk) {
  atomic_store(&fk->stop, true);
  pthread_join(fk->thread, NULL);
  close(fk->fd);
}

static er_store_t *open_fake(const fake_t *fk, const char *prefix) {
  char url[128], err[256];
  snprintf(url, sizeof url, "redis://127.0.0.1:%d/0?prefix=%s", fk->port, prefix);
  er_store_t *s = NULL;
  int rc = er_store_open(url, &s, err, sizeof err);
  if (rc) fail_msg("open %s: %s", url, err);
  return s;
}

/* A node that always redirects to itself: the call ends, saying why. */
void test_redirect_loop(void **state) {
  (void)state;
  fake_t fk;
  fake_bind(&fk);
  snprintf(fk.reply[0], sizeof fk.reply[0], "-MOVED 1 127.0.0.1:%d\r\n", fk.port);
  fake_run(&fk);
  char url[128], err[256];
  snprintf(url, sizeof url, "redis://127.0.0.1:%d/0?prefix=loop", fk.port);
  er_store_t *s = (er_store_t *)1;
  assert_int_equal(er_store_open(url, &s, err, sizeof err), ER_EUNAVAILABLE);
  assert_null(s);
  print_message("%s\n", err);
  assert_non_null(strstr(err, "redirects"));
  fake_stop(&fk);
}

/* Enqueues one task through s and checks it landed on node k. */
static void enqueue_on(er_store_t *s, const char *prefix, int k) {
  fx_t f;
  fx_init(&f, s, "q");
  er_task_rec_t *r = mk(&f, "t");
  assert_int_equal(enq(&f, r), 0);
  assert_true(task_on(k, prefix, r->id));
  er_task_rec_free(r);
}

/* "MOVED <slot> :<port>" (no host: the one the client reached) is followed
 * to that port on the same host. */
void test_moved_without_host(void **state) {
  (void)state;
  char prefix[64];
  prefix_on(1, "nohost", prefix, sizeof prefix);
  fake_t fk;
  fake_bind(&fk);
  snprintf(fk.reply[0], sizeof fk.reply[0], "-MOVED %d :%d\r\n", slot_of(prefix), g_ports[1]);
  fake_run(&fk);
  er_store_t *s = open_fake(&fk, prefix);
  enqueue_on(s, prefix, 1);
  er_store_close(s);
  fake_stop(&fk);
}

/* A MOVED to a node that cannot be reached (it failed, say): the handle asks
 * its URL's node again, which now names the slot's owner. */
void test_moved_to_dead_node(void **state) {
  (void)state;
  char prefix[64];
  prefix_on(2, "dead", prefix, sizeof prefix);
  int dead;
  int dead_fd = loopback_socket(false, &dead);
  fake_t fk;
  fake_bind(&fk);
  snprintf(fk.reply[0], sizeof fk.reply[0], "-MOVED %d 127.0.0.1:%d\r\n", slot_of(prefix),
           dead);
  snprintf(fk.reply[1], sizeof fk.reply[1], "-MOVED %d 127.0.0.1:%d\r\n", slot_of(prefix),
           g_ports[2]);
  fake_run(&fk);
  er_store_t *s = open_fake(&fk, prefix);
  enqueue_on(s, prefix, 2);
  er_store_close(s);
  fake_stop(&fk);
  close(dead_fd);
}
