/* Boost.Context's fcontext, the speed anchor. Boost up to 1.86 exports these C
 * symbols from libboost_context; we declare them ourselves so that only the
 * benchmark, never the library, depends on Boost. BENCH_HAVE_FCONTEXT is set by
 * bench/CMakeLists.txt when the library was found. */
#ifndef ER_BENCH_FCTX_H
#define ER_BENCH_FCTX_H

#include <stddef.h>

#ifdef BENCH_HAVE_FCONTEXT
typedef void *fcontext_t;
typedef struct {
  fcontext_t fctx;
  void *data;
} transfer_t;

transfer_t jump_fcontext(fcontext_t const to, void *vp);
fcontext_t make_fcontext(void *sp, size_t size, void (*fn)(transfer_t));
#define BENCH_NO_FCONTEXT_WHY ""
#else
#define BENCH_NO_FCONTEXT_WHY "fcontext: n/a (libboost_context not found)"
#endif

#endif
