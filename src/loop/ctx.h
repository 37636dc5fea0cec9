/* The tasklet context switch. Our own assembly on x86-64 and aarch64 (SysV):
 * it saves only the callee-saved registers and the floating-point control
 * words, which is all a C function call must preserve. ucontext elsewhere,
 * chosen at build time (ER_CTX_UCONTEXT). */
#ifndef ER_LOOP_CTX_H
#define ER_LOOP_CTX_H

#include <stddef.h>

#ifdef ER_CTX_UCONTEXT
#include <ucontext.h>
typedef struct er__ctx {
  ucontext_t uc;
} er__ctx_t;
#else
typedef struct er__ctx {
  void *sp;
} er__ctx_t;
#endif

/* Saves the running context in from and continues in to. Returns when
 * something switches back to from. */
void er__ctx_switch(er__ctx_t *from, er__ctx_t *to);

/* Prepares ctx to run entry(arg) on the stack [lo, lo + size) the first time
 * it is switched to. entry must never return: it switches away for good. */
void er__ctx_make(er__ctx_t *ctx, char *lo, size_t size, void (*entry)(void *), void *arg);

#endif
