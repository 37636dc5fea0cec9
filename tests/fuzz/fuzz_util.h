/* What both fuzz targets need: a SQLite row and a Redis HGETALL reply made
 * from fields, each handed to the store's own record decoder. */
#ifndef ER_FUZZ_UTIL_H
#define ER_FUZZ_UTIL_H

#include <sqlite3.h>
#include <stddef.h>

#include "store/redis_internal.h"
#include "store/sqlite_internal.h"

/* Binds the row's ER_SQ_TASK_NCOLS parameters (1-based) of st. */
typedef void (*fz_bind_fn)(sqlite3_stmt *st, void *ud);

/* Decodes one row, its columns bound by bind, with er__sq_read_rec. Its
 * answer; *out as er__sq_read_rec leaves it. */
int fz_sqlite_decode(fz_bind_fn bind, void *ud, er_task_rec_t **out);

/* Decodes an HGETALL-shaped reply of n strings (s[i], len[i]; NUL-terminated
 * copies are made, as hiredis gives them) with er__rd_read_rec; array false
 * makes it a reply of another shape. */
int fz_redis_decode(const char *const *s, const size_t *len, size_t n, bool array,
                    er_task_rec_t **out);

/* Aborts (a finding) unless rc is an answer a decoder may give. */
void fz_check_answer(int rc);

#endif
