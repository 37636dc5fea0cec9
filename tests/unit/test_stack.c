/* Tasklet stacks: an overflow is reported as one (in a child process, which it
 * kills), and tasklets with stacks of many sizes keep their frames intact
 * across suspensions. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "test_util.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

/* ---- overflow ------------------------------------------------------------------ */

static volatile int g_sink;

/* Deep recursion that the compiler cannot turn into a loop: every frame keeps
 * a buffer alive across the call. */
__attribute__((noinline)) static int recurse(int depth) {
  volatile char buf[512];
  for (size_t i = 0; i < sizeof buf; i += 64) buf[i] = (char)depth;
  if (depth == 0) return buf[0];
  int r = recurse(depth - 1);
  return r + buf[depth % sizeof buf];
}

static int overflow(void *arg) {
  (void)arg;
  g_sink = recurse(1 << 20); /* half a gigabyte of frames: far past any stack */
  return 0;
}

/* Runs the named child body (see main) in a fresh process, this program run
 * again: no signal disposition or errand state inherited from the tests that
 * ran before. Returns its wait status and what it wrote on stderr. */
static int run_child(const char *body, char *err, size_t errsize) {
  int pipefd[2];
  assert_int_equal(pipe(pipefd), 0);
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    dup2(pipefd[1], 2);
    close(pipefd[0]);
    close(pipefd[1]);
    execl("/proc/self/exe", "test_stack", "--child", body, (char *)NULL);
    _exit(127);
  }
  close(pipefd[1]);
  size_t n = 0;
  ssize_t got;
  while (n + 1 < errsize && (got = read(pipefd[0], err + n, errsize - 1 - n)) > 0) n += (size_t)got;
  err[n] = '\0';
  close(pipefd[0]);
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  return st;
}

static void overflow_child(void) {
  /* The report is opt-in: a library takes no signal unasked. */
  if (er_stack_overflow_handler_install() != 0) _exit(2);
  er_loop_t *loop;
  if (er_loop_new(&loop, NULL) != 0) _exit(3);
  er_future_t *f = er_tasklet_spawn(loop, overflow, NULL,
                                    &(er_tasklet_opts_t){.name = "deep", .stack_size = 16 * 1024});
  (void)f;
}

static int run_overflow_child(char *err, size_t errsize) {
  return run_child("overflow", err, errsize);
}

static void test_overflow_is_reported(void **state) {
  (void)state;
  char err[8192];
  int st = run_overflow_child(err, sizeof err);
  if (!WIFSIGNALED(st))
    fail_msg("the child was not killed by a signal (status %d); stderr:\n%s", st, err);
  assert_int_equal(WTERMSIG(st), SIGSEGV);
  if (!strstr(err, "stack overflow")) fail_msg("no \"stack overflow\" in stderr:\n%s", err);
  assert_non_null(strstr(err, "'deep'")); /* names the tasklet */
}

/* ---- stacks of many sizes ----------------------------------------------------------- */

typedef struct {
  size_t use;   /* bytes of the stack this tasklet fills */
  int id;
  int ok;
} filler_t;

static int fill_and_check(void *arg) {
  filler_t *f = arg;
  /* A variable-length array: most of the stack, written with a pattern that
   * must survive the suspensions in between. */
  volatile unsigned char buf[f->use];
  for (size_t i = 0; i < f->use; i++) buf[i] = (unsigned char)(i * 31 + (size_t)f->id);
  for (int round = 0; round < 3; round++) {
    er_sleep((uint64_t)(f->id % 5));
    for (size_t i = 0; i < f->use; i += 7)
      if (buf[i] != (unsigned char)(i * 31 + (size_t)f->id)) return er_fail(ER_ECORRUPT, "byte %zu", i);
  }
  f->ok = 1;
  return er_return_int(f->id);
}

static void test_many_stack_sizes(void **state) {
  (void)state;
  /* More distinct sizes than one might pool separately, small and large, not
   * all multiples of the page, alive at the same time. */
#ifdef UNDER_ASAN
  /* ASan's allocator, reached when a sleeping tasklet grows the timer heap,
   * needs more than the room a one-page stack leaves. */
  static const size_t smallest = 8 * 1024;
#else
  static const size_t smallest = 4096;
#endif
  static const size_t sizes[] = {smallest,  8 * 1024,   12 * 1024 + 100, 16 * 1024, 32 * 1024,
                                 48 * 1024, 128 * 1024, 256 * 1024,      1 << 20,   0};
  enum { NSIZES = sizeof sizes / sizeof sizes[0], EACH = 20 };
  fake_clock_t fc;
  er_loop_t *loop = new_fake_loop(&fc);
  static filler_t fl[NSIZES * EACH];
  er_future_t *fs[NSIZES * EACH];
  for (int s = 0; s < (int)NSIZES; s++) {
    size_t size = sizes[s] ? sizes[s] : 64 * 1024; /* 0: the loop's default */
    for (int k = 0; k < EACH; k++) {
      int i = s * EACH + k;
      /* Leave room for the tasklet's own record and a few frames (more under
       * ASan, whose frames are larger); the smallest stacks have about 3 KiB
       * of room per page (1.5 under ASan). */
#ifdef UNDER_ASAN
      size_t reserve = 3072;
#else
      size_t reserve = 2048;
#endif
      size_t rounded = (size + 4095) & ~(size_t)4095;
      fl[i] = (filler_t){rounded <= 8192 ? rounded / 8 : rounded - reserve * 2, i, 0};
      fs[i] = er_tasklet_spawn(loop, fill_and_check, &fl[i],
                               &(er_tasklet_opts_t){.name = "filler", .stack_size = sizes[s]});
      if (!fs[i]) fail_msg("cannot spawn a tasklet with a stack of %zu bytes", sizes[s]);
    }
  }
  assert_int_equal(er_future_wait_all(fs, NSIZES * EACH), 0);
  for (int i = 0; i < (int)(NSIZES * EACH); i++) {
    if (er_future_status(fs[i]) != 0) {
      char buf[256];
      fail_msg("tasklet %d: %s", i, er_error_format(er_future_error(fs[i]), buf, sizeof buf));
    }
    assert_true(fl[i].ok);
    assert_int_equal(er_future_int(fs[i]), i);
    er_future_unref(fs[i]);
  }
  er_loop_free(loop);
}

static int tiny(void *arg) {
  (void)arg;
  er_sleep(1);
  return er_return_int(1);
}

static void test_stack_reuse(void **state) {
  (void)state;
  /* Many short tasklets one after another reuse pooled stacks; many at once
   * need several slabs. */
  fake_clock_t fc;
  er_loop_t *loop = new_fake_loop(&fc);
  for (int i = 0; i < 2000; i++) {
    er_future_t *f = er_tasklet_spawn(loop, tiny, NULL, &(er_tasklet_opts_t){.stack_size = 8192});
    assert_int_equal(er_future_get_result(f), 0);
    er_future_unref(f);
  }
  enum { N = 500 };
  er_future_t *fs[N];
  for (int i = 0; i < N; i++) fs[i] = er_tasklet_spawn(loop, tiny, NULL, &(er_tasklet_opts_t){.stack_size = 8192});
  assert_int_equal(er_future_wait_all(fs, N), 0);
  for (int i = 0; i < N; i++) {
    assert_int_equal(er_future_int(fs[i]), 1);
    er_future_unref(fs[i]);
  }
  er_loop_free(loop);
}

static void test_loop_default_stack_size(void **state) {
  (void)state;
  /* er_loop_opts_t.stack_size is the default for tasklets without their own. */
  er_loop_opts_t opts = {.stack_size = 512 * 1024};
  er_loop_t *loop;
  assert_int_equal(er_loop_new(&loop, &opts), 0);
  filler_t f = {400 * 1024, 3, 0};
  er_future_t *fut = er_tasklet_spawn(loop, fill_and_check, &f, NULL);
  assert_int_equal(er_future_get_result(fut), 0);
  assert_true(f.ok);
  er_future_unref(fut);
  er_loop_free(loop);
}

/* ---- signals: errand's handler is opt-in and chains ------------------------------- */

enum { USER_HANDLED = 42 };

static void user_segv(int sig, siginfo_t *si, void *uc) {
  (void)sig, (void)si, (void)uc;
  static const char msg[] = "user handler\n";
  ssize_t r = write(2, msg, sizeof msg - 1);
  (void)r;
  _exit(USER_HANDLED);
}

static void user_segv_plain(int sig) { user_segv(sig, NULL, NULL); }

static void install_user_handler(bool siginfo) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  if (siginfo) {
    sa.sa_sigaction = user_segv;
    sa.sa_flags = SA_SIGINFO;
  } else {
    sa.sa_handler = user_segv_plain;
  }
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGSEGV, &sa, NULL) != 0) _exit(2);
}

/* A fault that is no tasklet overflow: a write to a page mapped without
 * access (not a null pointer, which sanitizers and compilers treat as UB). */
static void fault(void) {
  volatile int *p = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if ((void *)p == MAP_FAILED) _exit(7);
  *p = 1;
}

static int faults_in_tasklet(void *arg) {
  (void)arg;
  fault();
  return 0;
}

static void child_loop_keeps_user_handler(void) {
  install_user_handler(true);
  struct sigaction bus, cur;
  sigaction(SIGBUS, NULL, &bus);
  er_loop_t *loop;
  if (er_loop_new(&loop, NULL) != 0) _exit(3);
  sigaction(SIGSEGV, NULL, &cur);
  if (!(cur.sa_flags & SA_SIGINFO) || cur.sa_sigaction != user_segv) _exit(5);
  sigaction(SIGBUS, NULL, &cur);
  if (cur.sa_handler != bus.sa_handler) _exit(6);
  er_future_unref(er_spawn(loop, faults_in_tasklet, NULL));
}

static void child_chains_fault_outside_tasklets(void) {
  install_user_handler(true);
  if (er_stack_overflow_handler_install() != 0) _exit(2);
  er_loop_t *loop;
  if (er_loop_new(&loop, NULL) != 0) _exit(3);
  fault();
}

static void child_chains_fault_in_tasklet(void) {
  install_user_handler(false);
  if (er_stack_overflow_handler_install() != 0) _exit(2);
  er_loop_t *loop;
  if (er_loop_new(&loop, NULL) != 0) _exit(3);
  er_future_unref(er_spawn(loop, faults_in_tasklet, NULL));
}

static void child_default_still_kills(void) {
  signal(SIGSEGV, SIG_DFL); /* not a sanitizer's handler: none */
  if (er_stack_overflow_handler_install() != 0) _exit(2);
  er_loop_t *loop;
  if (er_loop_new(&loop, NULL) != 0) _exit(3);
  er_future_unref(er_spawn(loop, faults_in_tasklet, NULL));
}

static void expect_user_handler(const char *body) {
  char err[4096];
  int st = run_child(body, err, sizeof err);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != USER_HANDLED)
    fail_msg("the user's handler did not get the fault (status %d); stderr:\n%s", st, err);
  assert_null(strstr(err, "stack overflow"));
}

/* er_loop_new leaves the process's signal dispositions alone: the user's own
 * SIGSEGV handler stays installed and gets a fault, even in a tasklet. */
static void test_loop_takes_no_signals(void **state) {
  (void)state;
  expect_user_handler("loop_keeps_user_handler");
}

/* Opted in, errand's handler passes a fault that is no overflow on to the
 * handler that was there before, outside or inside a tasklet, with or
 * without SA_SIGINFO; with none there, the default action ends the process
 * and nothing is reported as an overflow. */
static void test_overflow_handler_chains(void **state) {
  (void)state;
  expect_user_handler("chains_fault_outside_tasklets");
  expect_user_handler("chains_fault_in_tasklet");
  char err[4096];
  int st = run_child("default_still_kills", err, sizeof err);
  if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGSEGV)
    fail_msg("not killed by SIGSEGV (status %d); stderr:\n%s", st, err);
  assert_null(strstr(err, "stack overflow"));
}

/* ---- the alternate signal stack ---------------------------------------------- */

static const char k_alt_mark[16] = "errand alt mark";

static void *loop_thread(void *arg) {
  er_loop_t *loop = NULL;
  if (er_loop_new(&loop, NULL) != 0) _exit(2);
  stack_t cur;
  if (sigaltstack(NULL, &cur) != 0 || (cur.ss_flags & SS_DISABLE)) _exit(3); /* none given */
  *(void **)arg = cur.ss_sp;
  memcpy(cur.ss_sp, k_alt_mark, sizeof k_alt_mark); /* its lowest bytes: never used */
  er_loop_free(loop);
  return NULL;
}

/* A thread that made a loop after the handler was installed got an alternate
 * stack; once that thread has ended, the stack is unmapped. */
static void child_alt_stack_freed(void) {
  if (er_stack_overflow_handler_install() != 0) _exit(2);
  for (int i = 0; i < 3; i++) {
    void *sp = NULL;
    pthread_t t;
    if (pthread_create(&t, NULL, loop_thread, &sp) != 0 || pthread_join(t, NULL) != 0) _exit(2);
    /* Unmapped (the kernel cannot read it: EFAULT), or mapped again since
     * for something else (the mark is gone): not the thread's any more. */
    int p[2];
    char got[sizeof k_alt_mark];
    if (pipe(p) != 0) _exit(2);
    bool readable = write(p[1], sp, sizeof got) == (ssize_t)sizeof got;
    if (readable && read(p[0], got, sizeof got) != (ssize_t)sizeof got) _exit(2);
    close(p[0]);
    close(p[1]);
    if (readable && memcmp(got, k_alt_mark, sizeof got) == 0) _exit(1); /* still there */
  }
  _exit(0);
}

/* Threads that run loops may come and go (embedded workers started and
 * stopped): each one's alternate signal stack goes with it. */
static void test_alt_stack_freed_with_its_thread(void **state) {
  (void)state;
  char err[4096];
  int st = run_child("alt_stack_freed", err, sizeof err);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    fail_msg("status %d (1: the alternate stack outlived its thread); stderr:\n%s", st, err);
}

static const struct {
  const char *name;
  void (*body)(void);
} k_children[] = {
    {"alt_stack_freed", child_alt_stack_freed},
    {"overflow", overflow_child},
    {"loop_keeps_user_handler", child_loop_keeps_user_handler},
    {"chains_fault_outside_tasklets", child_chains_fault_outside_tasklets},
    {"chains_fault_in_tasklet", child_chains_fault_in_tasklet},
    {"default_still_kills", child_default_still_kills},
};

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--child") == 0) {
    for (size_t i = 0; i < sizeof k_children / sizeof k_children[0]; i++) {
      if (strcmp(argv[2], k_children[i].name) == 0) {
        k_children[i].body();
        _exit(4); /* a body ends the process itself */
      }
    }
    _exit(127);
  }
  test_watchdog(110);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_overflow_is_reported),
      cmocka_unit_test(test_many_stack_sizes),
      cmocka_unit_test(test_stack_reuse),
      cmocka_unit_test(test_loop_default_stack_size),
      cmocka_unit_test(test_loop_takes_no_signals),
      cmocka_unit_test(test_overflow_handler_chains),
      cmocka_unit_test(test_alt_stack_freed_with_its_thread),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
