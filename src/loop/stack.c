/* Tasklet stacks. Stacks are carved from slabs of one mmap each, since a
 * mapping per stack would run into vm.max_map_count (65530 by default) long
 * before a million tasklets. Each stack gets a guard page below it: on Linux
 * 6.13 and later a MADV_GUARD_INSTALL guard, which costs no mapping; before
 * that a PROT_NONE page while the process stays well inside that count (such
 * a guard splits a mapping in up to three); beyond it stacks go unguarded and their lowest word, zero in a
 * fresh mapping and never written but by an overflow, is checked on every
 * switch instead (reading it maps the shared zero page: no memory). Freed
 * stacks are pooled per loop; whole free slabs past a warm few have their
 * memory handed back to the kernel while kept mapped.
 *
 * Overflow into a guard page raises SIGSEGV on the tasklet's stack. Only when
 * the program asked for it (er_stack_overflow_handler_install) does a handler,
 * on an alternate signal stack, name the overflow on stderr before the default
 * action ends the process; any other fault goes to the handler that was there
 * before. A library must not take the process's signals unasked. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "loop/loop_internal.h"

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define ER_HAVE_VALGRIND 1
#endif
#endif

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102 /* Linux 6.13; older kernels answer EINVAL */
#endif
#define SLAB_STACKS 64
#define MIN_STACK 1024 /* room for the tasklet's record and a few frames */
#define WARM_STACKS 256

/* One mapping of SLAB_STACKS stacks of one size, each above its guard page. */
typedef struct slab {
  struct slab *next;
  char *base;
  size_t len;
  size_t nfree; /* of its stacks, how many are in the pool */
} slab_t;

/* The free stacks of one size. The list lives outside the stacks: writing it
 * into them would touch pages of stacks that are not running. */
typedef struct size_class {
  size_t size;
  er__stack_t *free;
  size_t nfree, cap;
} size_class_t;

struct er__stack_pool {
  slab_t *slabs;
  /* Grows as sizes come: a fixed handful made er_tasklet_spawn fail (NULL,
   * read as out of memory) for the fifth distinct stack_size on a loop. */
  size_class_t *classes;
  size_t nclasses, cap;
  size_t page;
};

static atomic_long g_maps;      /* mappings we have added, process-wide */
static long g_map_budget = -1;  /* half of vm.max_map_count */
static atomic_uintptr_t g_guard_lo, g_guard_hi; /* span of all slabs, for the handler */

static long map_budget(void) {
  if (g_map_budget < 0) {
    long max = 65530;
    FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
    if (f) {
      if (fscanf(f, "%ld", &max) != 1) max = 65530;
      fclose(f);
    }
    g_map_budget = max / 2;
  }
  return g_map_budget;
}

static er__stack_pool_t *pool_of(er_loop_t *loop) {
  if (!loop->stacks) {
    loop->stacks = er_calloc(1, sizeof *loop->stacks);
    if (loop->stacks) loop->stacks->page = (size_t)sysconf(_SC_PAGESIZE);
  }
  return loop->stacks;
}

static size_class_t *class_of(er__stack_pool_t *p, size_t size) {
  for (size_t i = 0; i < p->nclasses; i++)
    if (p->classes[i].size == size) return &p->classes[i];
  if (p->nclasses == p->cap) {
    size_t cap = p->cap ? p->cap * 2 : 4;
    size_class_t *classes = er_realloc(p->classes, cap * sizeof *classes);
    if (!classes) return NULL;
    p->classes = classes;
    p->cap = cap;
  }
  p->classes[p->nclasses] = (size_class_t){size, NULL, 0, 0};
  return &p->classes[p->nclasses++];
}

static int reserve_free(size_class_t *c, size_t more) {
  if (c->nfree + more <= c->cap) return 0;
  size_t cap = c->cap ? c->cap * 2 : 256;
  while (cap < c->nfree + more) cap *= 2;
  er__stack_t *v = er_realloc(c->free, cap * sizeof *v);
  if (!v) return ER_ENOMEM;
  c->free = v;
  c->cap = cap;
  return 0;
}

static void note_span(char *lo, char *hi) {
  uintptr_t l = (uintptr_t)lo, h = (uintptr_t)hi;
  uintptr_t cur = atomic_load(&g_guard_lo);
  while ((cur == 0 || l < cur) && !atomic_compare_exchange_weak(&g_guard_lo, &cur, l)) {}
  cur = atomic_load(&g_guard_hi);
  while (h > cur && !atomic_compare_exchange_weak(&g_guard_hi, &cur, h)) {}
}

/* Maps a slab of SLAB_STACKS stacks of `size` usable bytes, each preceded by
 * one page that becomes a guard page when the budget allows. Stacks smaller
 * than a page (Go-sized tasklets) are packed without guards: they rely on the
 * canary. Touches none of the stacks' pages. */
static int add_slab(er__stack_pool_t *p, size_class_t *c) {
  bool small = c->size < p->page;
  size_t stride = small ? c->size : c->size + p->page;
  size_t len = (stride * SLAB_STACKS + p->page - 1) & ~(p->page - 1);
  if (reserve_free(c, SLAB_STACKS) < 0) return ER_ENOMEM;
  char *base = mmap(NULL, len, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base == MAP_FAILED) return ER_ENOMEM;
  slab_t *s = er_malloc(sizeof *s);
  if (!s) {
    munmap(base, len);
    return ER_ENOMEM;
  }
  *s = (slab_t){p->slabs, base, len, SLAB_STACKS};
  p->slabs = s;
  atomic_fetch_add(&g_maps, 1);
  note_span(base, base + len);
  /* Pushed highest first, so the lowest addresses are handed out first. */
  for (size_t i = SLAB_STACKS; i-- > 0;) {
    char *lo = base + i * stride + (small ? 0 : p->page);
    bool guarded = false;
    if (!small && madvise(lo - p->page, p->page, MADV_GUARD_INSTALL) == 0) {
      guarded = true; /* Linux 6.13+: a guard that does not split the mapping */
    } else if (!small && atomic_load(&g_maps) + 2 < map_budget() &&
               mprotect(lo - p->page, p->page, PROT_NONE) == 0) {
      atomic_fetch_add(&g_maps, 2);
      guarded = true;
    }
    c->free[c->nfree++] = (er__stack_t){lo, c->size, guarded, 0, s};
  }
  return 0;
}

int er__stack_get(er_loop_t *loop, size_t size, er__stack_t *out) {
  er__stack_pool_t *p = pool_of(loop);
  if (!p) return ER_ENOMEM;
  if (size < MIN_STACK) size = MIN_STACK;
  size_t unit = size < p->page ? 64 : p->page;
  size = (size + unit - 1) & ~(unit - 1);
  size_class_t *c = class_of(p, size);
  if (!c) return ER_ENOMEM;
  if (!c->nfree) {
    int rc = add_slab(p, c);
    if (rc < 0) return rc;
  }
  *out = c->free[--c->nfree];
  ((slab_t *)out->slab)->nfree--;
#ifdef ER_HAVE_VALGRIND
  out->vg_id = VALGRIND_STACK_REGISTER(out->lo, out->lo + size);
#endif
  return 0;
}

void er__stack_put(er_loop_t *loop, const er__stack_t *s) {
  er__stack_pool_t *p = loop->stacks;
  size_class_t *c = class_of(p, s->size);
#ifdef ER_HAVE_VALGRIND
  VALGRIND_STACK_DEREGISTER(s->vg_id);
#endif
  if (!c || reserve_free(c, 1) < 0) return; /* the stack stays mapped, unused */
  c->free[c->nfree++] = *s;
  slab_t *slab = s->slab;
  /* Once a whole slab is free and the pool has plenty, give its pages back
   * in one call: a call per stack would cost a system call and a TLB flush
   * each time a tasklet ends. The mapping stays; pages come back as zeros. */
  if (++slab->nfree == SLAB_STACKS && c->nfree > WARM_STACKS)
    madvise(slab->base, slab->len, MADV_DONTNEED);
}

void er__stack_pool_free(er_loop_t *loop) {
  er__stack_pool_t *p = loop->stacks;
  if (!p) return;
  for (slab_t *s = p->slabs, *next; s; s = next) {
    next = s->next;
    munmap(s->base, s->len);
    er_free(s);
  }
  for (size_t i = 0; i < p->nclasses; i++) er_free(p->classes[i].free);
  er_free(p->classes);
  er_free(p);
  loop->stacks = NULL;
}

/* ---- overflow reporting (opt-in: er_stack_overflow_handler_install) ----
 * The handler runs in signal context: write(2), sigaction and the like only;
 * no stdio, no allocation. */

static _Thread_local const char *tl_name;
static _Thread_local char *tl_lo;
static _Thread_local size_t tl_size;
static struct sigaction g_prev_segv, g_prev_bus;
static atomic_int g_installed;

static void say(const char *s) {
  ssize_t r = write(2, s, strlen(s));
  (void)r;
}

/* n in decimal, in buf (snprintf is not async-signal-safe). */
static const char *decimal(size_t n, char buf[static 24]) {
  char *p = buf + 23;
  *p = '\0';
  do *--p = (char)('0' + n % 10);
  while ((n /= 10) != 0);
  return p;
}

static void report_overflow(const char *name, size_t size, bool guarded) {
  char num[24];
  say("errand: tasklet stack overflow in '");
  say(name ? name : "tasklet");
  say("' (stack of ");
  say(decimal(size, num));
  say(guarded ? " bytes; raise er_tasklet_opts_t.stack_size)\n"
              : " bytes, unguarded; raise er_tasklet_opts_t.stack_size)\n");
}

static void set_default(int sig) {
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  sigaction(sig, &dfl, NULL);
}

/* Ends the process by sig's default action. A fault would re-run on return
 * and end it anyway; a signal sent with kill or raise would not, so it is
 * raised again (blocked in here, delivered on return). */
static void die_by(int sig) {
  set_default(sig);
  raise(sig);
}

/* Gives a signal that is not a tasklet overflow to the disposition that was
 * in place before ours, as the kernel would have: its mask, SA_RESETHAND,
 * default and ignore. */
static void chain(int sig, siginfo_t *si, void *uc, const struct sigaction *prev) {
  bool sent = si->si_code <= 0; /* kill, raise, sigqueue: not a fault */
  if (prev->sa_handler == SIG_IGN) {
    if (sent) return;
    die_by(sig); /* the kernel does not let a fault be ignored either */
    return;
  }
  if (prev->sa_handler == SIG_DFL) {
    die_by(sig);
    return;
  }
  sigset_t old;
  pthread_sigmask(SIG_BLOCK, &prev->sa_mask, &old);
  if (prev->sa_flags & SA_RESETHAND) set_default(sig);
  if (prev->sa_flags & SA_SIGINFO)
    prev->sa_sigaction(sig, si, uc);
  else
    prev->sa_handler(sig);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void on_fault(int sig, siginfo_t *si, void *uc) {
  uintptr_t a = (uintptr_t)si->si_addr;
  size_t page = 4096;
  /* A fault in the page just below the running tasklet's stack, or anywhere in
   * our slabs' guard area while a tasklet runs, is an overflow. */
  bool ours = si->si_code > 0 && tl_lo != NULL &&
              ((a + page >= (uintptr_t)tl_lo && a < (uintptr_t)tl_lo + page) ||
               (a >= atomic_load(&g_guard_lo) && a < atomic_load(&g_guard_hi)));
  if (ours) {
    report_overflow(tl_name, tl_size, true);
    die_by(sig);
    return;
  }
  chain(sig, si, uc, sig == SIGBUS ? &g_prev_bus : &g_prev_segv);
}

/* The handler runs on an alternate stack: the overflowing stack has no room
 * left. One per thread that makes a loop, for the thread's life: unmapped
 * when the thread ends, so that a process starting and ending threads that
 * run loops (embedded workers) does not leak one each time. */
#define ALT_STACK_SIZE (64 * 1024)
static pthread_key_t g_alt_key;
static pthread_once_t g_alt_once = PTHREAD_ONCE_INIT;

static void alt_stack_free(void *alt) {
  stack_t off = {.ss_flags = SS_DISABLE};
  sigaltstack(&off, NULL);
  munmap(alt, ALT_STACK_SIZE);
}

static void alt_key_make(void) { pthread_key_create(&g_alt_key, alt_stack_free); }

static void alt_stack_for_thread(void) {
  stack_t cur;
  if (sigaltstack(NULL, &cur) != 0 || !(cur.ss_flags & SS_DISABLE)) return; /* has one */
  pthread_once(&g_alt_once, alt_key_make);
  char *alt =
      mmap(NULL, ALT_STACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (alt == MAP_FAILED) return;
  stack_t ss = {.ss_sp = alt, .ss_size = ALT_STACK_SIZE, .ss_flags = 0};
  if (sigaltstack(&ss, NULL) != 0 || pthread_setspecific(g_alt_key, alt) != 0) {
    stack_t off = {.ss_flags = SS_DISABLE};
    sigaltstack(&off, NULL);
    munmap(alt, ALT_STACK_SIZE);
  }
}

int er_stack_overflow_handler_install(void) {
  int expected = 0;
  if (atomic_compare_exchange_strong(&g_installed, &expected, 1)) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSEGV, &sa, &g_prev_segv) != 0) {
      atomic_store(&g_installed, 0);
      return ER_ESYS;
    }
    if (sigaction(SIGBUS, &sa, &g_prev_bus) != 0) {
      sigaction(SIGSEGV, &g_prev_segv, NULL);
      atomic_store(&g_installed, 0);
      return ER_ESYS;
    }
  }
  alt_stack_for_thread();
  return 0;
}

void er__stack_overflow_guard_thread(void) {
  if (atomic_load(&g_installed)) alt_stack_for_thread();
}

/* Called on every switch into a tasklet (name != NULL) or out of it (NULL):
 * tells the fault handler which stack is running. */
void er__stack_running(const er__stack_t *s, const char *name) {
  tl_name = name;
  tl_lo = s && name ? s->lo : NULL;
  tl_size = s ? s->size : 0;
}

void er__stack_check(const er__stack_t *s, const char *name) {
  /* A guarded stack faults before anything below it is touched; an unguarded
   * one can only show, after the fact, that its lowest bytes were written. */
  if (!s->guarded && *(volatile uint64_t *)s->lo != 0) {
    report_overflow(name, s->size, false);
    abort();
  }
}
