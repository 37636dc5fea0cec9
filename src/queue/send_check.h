/* What a send may carry: only what the stores can encode and read back and
 * the worker can decode (send_check.c). */
#ifndef ER_SEND_CHECK_H
#define ER_SEND_CHECK_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "errand/client.h"

/* Checks one send before anything is encoded: task, args, kwargs and the
 * options (strings, JSON values, numbers). now is the send's wall-clock time
 * and max_payload the store's limit (a lower bound of the encoded size past
 * it stops the walk, so a value that shares its parts cannot make it run
 * long). 0, or ER_EINVAL / ER_ETOOBIG with a one-line reason in why naming
 * where (e.g. "kwargs.x[3]: invalid UTF-8"), without the "send: " prefix.
 * Never recursive: a value nested 100,000 deep is refused on a small stack. */
int er__send_check(const char *task, const json_t *args, const json_t *kwargs,
                   const er_send_opts_t *opts, int64_t now, size_t max_payload, char *why,
                   size_t why_size);

/* Checks one JSON value at where (args, kwargs, context, ...): every string
 * and key valid UTF-8, no key with a NUL byte, nesting at most
 * ER_SEND_MAX_DEPTH, and, adding to *used, no more than max_payload bytes. */
int er__send_check_json(const char *where, const json_t *v, size_t *used, size_t max_payload,
                        char *why, size_t why_size);

#endif
