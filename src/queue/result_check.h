/* What a task's result may be: nested at most ER__RESULT_MAX_DEPTH deep and
 * at most the worker's limit in bytes of compact JSON (result_check.c). */
#ifndef ER_QUEUE_RESULT_CHECK_H
#define ER_QUEUE_RESULT_CHECK_H

#include <jansson.h>
#include <stddef.h>

/* jansson reads at most 2047 levels; the worker's pipe and the records that
 * carry a result wrap it in a few more. */
#define ER__RESULT_MAX_DEPTH 2000
/* The limit when none is set and the store's max_payload is smaller. */
#define ER__RESULT_DEFAULT_BYTES ((size_t)16 << 20)

/* The limit a worker applies: opt_bytes when set (> 0), else the larger of
 * ER__RESULT_DEFAULT_BYTES and the store's max_payload. */
size_t er__result_limit(size_t opt_bytes, size_t store_max_payload);

/* 0 when v can be a result under limit bytes (0: the default); else
 * ER_ETOOBIG with the reason in why ("result too large: N bytes (limit M;
 * ...)", "result nested deeper than 2000"). Never recursive, and it stops
 * early, so a value nested 100,000 deep or sharing its parts many times is
 * judged quickly on a small stack (a tasklet's). */
int er__result_check(const json_t *v, size_t limit, char *why, size_t why_size);

#endif
