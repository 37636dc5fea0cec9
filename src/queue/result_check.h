/* What a task's result may be: nested at most ER__RESULT_MAX_DEPTH deep and
 * at most the worker's limit in bytes of compact JSON (result_check.c). */
#ifndef ER_QUEUE_RESULT_CHECK_H
#define ER_QUEUE_RESULT_CHECK_H

#include <jansson.h>
#include <stddef.h>

#include "errand/client.h"

/* How deep a value may nest, both limits in one place. jansson's parser
 * reads at most JSON_PARSER_MAX_DEPTH (2,048) levels, every value counted, a
 * scalar's too; its encoder has no limit, so a value deeper than that is
 * written and never read back.
 *  - A send's args, kwargs and context: ER_SEND_MAX_DEPTH (errand/client.h,
 *    public), the parser's limit itself, counted as it counts: each is
 *    stored, read back and sent to a prefork child as a JSON text of its own.
 *  - A result: ER__RESULT_MAX_DEPTH arrays or objects, two fewer. This check
 *    counts containers only, and a scalar inside the deepest is a level
 *    more; a prefork child's answer wraps the result in one object
 *    ({"id":..,"rc":0,"result":..}) that the worker reads whole. Every pool
 *    applies the same limit, so where a task runs does not decide whether
 *    its result is taken.
 * Measured, not guessed: a result of 2,046 arrays around a number crosses
 * the pipe and 2,047 do not ("worker child sent an unreadable answer"); on
 * a thread, 2,048 are stored and cannot be read back (test_child_io.c tests
 * the limit in every pool, test_send_check.c the sender's). */
#define ER__RESULT_MAX_DEPTH (ER_SEND_MAX_DEPTH - 2)
#if defined(JSON_PARSER_MAX_DEPTH)
_Static_assert(ER__RESULT_MAX_DEPTH + 2 <= JSON_PARSER_MAX_DEPTH,
               "a result the worker takes must parse back from a prefork child's answer");
#endif
/* The limit when none is set and the store's max_payload is smaller. */
#define ER__RESULT_DEFAULT_BYTES ((size_t)16 << 20)

/* The limit a worker applies: opt_bytes when set (> 0), else the larger of
 * ER__RESULT_DEFAULT_BYTES and the store's max_payload. */
size_t er__result_limit(size_t opt_bytes, size_t store_max_payload);

/* 0 when v can be a result under limit bytes (0: the default); else
 * ER_ETOOBIG with the reason in why ("result too large: N bytes (limit M;
 * ...)", "result nested deeper than 2046"), or ER_EPARSE for a string or
 * key no store can keep ("result cannot be stored as JSON: result.k[2]:
 * invalid UTF-8"; a key with a NUL byte). Never recursive, and it stops
 * early, so a value nested 100,000 deep or sharing its parts many times is
 * judged quickly on a small stack (a tasklet's). */
int er__result_check(const json_t *v, size_t limit, char *why, size_t why_size);

#endif
