/*
 * Tasklets: a fan-out fetch that runs in parallel on one thread.
 *
 * fetch() pretends to fetch a page: it sleeps for the page's latency and
 * returns its size. crawl() starts one fetch per page at once, awaits them
 * all, and sums their sizes; one page is broken, and its error comes back to
 * main() with the chain of tasklets it passed through. The whole crawl takes
 * as long as the slowest page, not the sum of them.
 *
 * Build: cc tasklets.c $(pkg-config --cflags --libs errand) -o tasklets
 */
#include <errand.h>
#include <stdio.h>
#include <string.h>

typedef struct page {
  const char *url;
  unsigned latency_ms;
  int64_t size;
} page_t;

static int fetch(void *arg) {
  const page_t *p = arg;
  er_sleep(p->latency_ms); /* suspends this tasklet; the others go on */
  if (p->size < 0) return er_fail(ER_EIO, "cannot fetch %s", p->url);
  return er_return_int(p->size);
}

typedef struct crawl {
  page_t *pages;
  size_t n;
} crawl_t;

static int crawl(void *arg) {
  crawl_t *c = arg;
  er_loop_t *loop = er_loop_current();
  er_future_t *fs[16];
  for (size_t i = 0; i < c->n; i++) fs[i] = er_spawn(loop, fetch, &c->pages[i]);
  int rc = er_await_all(fs, c->n); /* all done; rc is the first error, if any */
  int64_t total = 0;
  for (size_t i = 0; i < c->n; i++) {
    total += er_future_int(fs[i]);
    er_future_unref(fs[i]);
  }
  if (rc < 0) return rc; /* passes the child's error up, adding "crawl" to its chain */
  return er_return_int(total);
}

static int run(page_t *pages, size_t n, er_loop_t *loop) {
  crawl_t c = {pages, n};
  uint64_t t0 = er_now_mono_ms();
  er_future_t *f = er_spawn(loop, crawl, &c);
  int rc = er_future_get_result(f); /* runs the loop until the crawl is done */
  uint64_t ms = er_now_mono_ms() - t0;
  if (rc == 0) {
    printf("fetched %zu pages, %lld bytes, in %llu ms\n", n, (long long)er_future_int(f),
           (unsigned long long)ms);
  } else {
    char buf[256];
    printf("crawl failed after %llu ms: %s\n", (unsigned long long)ms,
           er_error_format(er_future_error(f), buf, sizeof buf));
  }
  er_future_unref(f);
  return rc;
}

int main(void) {
  er_loop_t *loop;
  if (er_loop_new(&loop, NULL) < 0) return 1;
  page_t good[] = {{"/a", 120, 1000}, {"/b", 80, 2000}, {"/c", 150, 3000}, {"/d", 40, 4000}};
  page_t bad[] = {{"/a", 20, 1000}, {"/broken", 30, -1}, {"/c", 50, 3000}};
  int rc1 = run(good, 4, loop);
  int rc2 = run(bad, 3, loop);
  er_loop_free(loop);
  return rc1 == 0 && rc2 == ER_EIO ? 0 : 1;
}
