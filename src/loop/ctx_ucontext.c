/* The portable fallback: glibc's ucontext. Slower (swapcontext makes a
 * sigprocmask system call each time) but available everywhere. */
#include <stdint.h>

#include "loop/ctx.h"

#ifdef ER_CTX_UCONTEXT
void er__ctx_switch(er__ctx_t *from, er__ctx_t *to) { swapcontext(&from->uc, &to->uc); }

/* makecontext passes int arguments only: split the two pointers in halves. */
static void start(unsigned fhi, unsigned flo, unsigned ahi, unsigned alo) {
  void (*entry)(void *) = (void (*)(void *))(((uintptr_t)fhi << 32) | flo);
  void *arg = (void *)(((uintptr_t)ahi << 32) | alo);
  entry(arg);
}

void er__ctx_make(er__ctx_t *ctx, char *lo, size_t size, void (*entry)(void *), void *arg) {
  getcontext(&ctx->uc);
  ctx->uc.uc_stack.ss_sp = lo;
  ctx->uc.uc_stack.ss_size = size;
  ctx->uc.uc_link = NULL;
  uintptr_t f = (uintptr_t)entry, a = (uintptr_t)arg;
  makecontext(&ctx->uc, (void (*)(void))start, 4, (unsigned)(f >> 32), (unsigned)f,
              (unsigned)(a >> 32), (unsigned)a);
}
#endif
