/*
 * errand/common.h: the core layer. Error codes, allocation hooks, ids, time and
 * logging, used by every other layer and by programs built on errand.
 *
 * Conventions that hold for the whole library:
 *   - A function that can fail returns int: 0 on success, a negative ER_E* code
 *     otherwise. Codes are never renumbered; new ones are added at the end.
 *   - Handles are opaque; a *_close or *_free function accepts NULL.
 *   - Unless a header says otherwise, a function may be called from any thread,
 *     but a handle is used by one thread at a time.
 */
#ifndef ERRAND_COMMON_H
#define ERRAND_COMMON_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ER_API_BEGIN / ER_API_END: every public header wraps its declarations in
 * this pair. The library is compiled with -fvisibility=hidden, so only what
 * the public headers declare (the er_ API) is exported from liberrand.so; the
 * internal er__ functions stay inside it. In a program that includes the
 * headers the pair changes nothing. */
#if defined(__GNUC__) && __GNUC__ >= 4
#define ER_API_BEGIN _Pragma("GCC visibility push(default)")
#define ER_API_END _Pragma("GCC visibility pop")
#else
#define ER_API_BEGIN
#define ER_API_END
#endif

ER_API_BEGIN

#define ER_VERSION_MAJOR 0
#define ER_VERSION_MINOR 1
#define ER_VERSION_PATCH 0
#define ER_VERSION_STRING "0.1.0"

#if defined(__GNUC__)
#define ER_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define ER_NODISCARD __attribute__((warn_unused_result))
#else
#define ER_PRINTF(fmt, args)
#define ER_NODISCARD
#endif

/* ---- Errors ---------------------------------------------------------------
 * One table: the code's name, its number and its message. The numbers are part
 * of the ABI and of what the command prints; they never change.
 */
#define ER_ERROR_TABLE(X)                                                      \
  X(OK, 0, "success")                                                          \
  X(ENOMEM, -1, "out of memory")                                               \
  X(EINVAL, -2, "invalid argument")                                            \
  X(EALREADY, -3, "already done")                                              \
  X(EDEADLK, -4, "deadlock: the loop ran dry while a future was pending")      \
  X(EEOF, -5, "end of queue")                                                  \
  X(ESTATE, -6, "not allowed in this state")                                   \
  X(ENOTFUTURE, -7, "not a future")                                            \
  X(ENOTASKLET, -8, "only allowed inside a tasklet")                           \
  X(ECANCELED, -9, "cancelled")                                                \
  X(ETIMEDOUT, -10, "timed out")                                               \
  X(EIO, -11, "input/output error")                                            \
  X(ENOENT, -12, "not found")                                                  \
  X(EEXIST, -13, "already exists")                                             \
  X(ETOMBSTONED, -14, "name was used recently (tombstoned)")                   \
  X(EUNAVAILABLE, -15, "store unavailable")                                    \
  X(ETOOBIG, -16, "payload too large")                                         \
  X(EPARSE, -17, "malformed input")                                            \
  X(EFENCED, -18, "lease lost: another attempt owns this task")               \
  X(ECORRUPT, -19, "store is corrupt")                                         \
  X(EBUSY, -20, "resource busy")                                               \
  X(ESYS, -21, "system call failed")                                           \
  X(EFAIL, -22, "failed")                                                      \
  X(ESTACK, -23, "tasklet stack overflow")                                     \
  X(EUNKNOWN_TASK, -24, "unknown task")                                        \
  X(ERETRY, -25, "retry requested")                                            \
  X(EREVOKED, -26, "revoked")                                                  \
  X(EAUTH, -27, "not authorised")                                              \
  X(EINTERNAL, -28, "internal error")                                          \
  X(ENOTSUP, -29, "not supported by this store")

enum {
#define ER__ENUM(name, num, msg) ER_##name = (num),
  ER_ERROR_TABLE(ER__ENUM)
#undef ER__ENUM
};

/* The message for a code ("out of memory"); never NULL. Unknown codes give
 * "unknown error". The string is static. */
const char *er_strerror(int code);

/* The code's name without its prefix ("ENOMEM"); never NULL ("EUNKNOWN" for
 * codes outside the table). The string is static. */
const char *er_err_name(int code);

/* ---- Allocation -----------------------------------------------------------
 * Every allocation errand makes goes through these hooks. Set them before any
 * other errand call, from one thread; they are process-wide. Passing NULLs
 * restores the C library's functions. Used by tests to inject failures.
 */
typedef struct er_allocator {
  void *(*malloc_fn)(size_t size);
  void *(*realloc_fn)(void *ptr, size_t size);
  void (*free_fn)(void *ptr);
} er_allocator_t;

void er_set_allocator(const er_allocator_t *a);
void *er_malloc(size_t size);
void *er_calloc(size_t n, size_t size);
void *er_realloc(void *ptr, size_t size);
void er_free(void *ptr);
char *er_strdup(const char *s);

/* ---- Ids -------------------------------------------------------------------
 * UUIDv7 as 36 characters of lower-case text plus NUL. Ids made by one process
 * sort in the order they were made (a counter breaks ties within a millisecond).
 * Thread-safe. Returns 0, or ER_ESYS when the system has no randomness.
 */
#define ER_ID_LEN 36
/* The shortest callback secret of a worker's or server's own
 * (er_worker_opts_t.secret, er_http_opts_t.secret), in bytes. */
#define ER_SECRET_MIN_LEN 16
typedef struct er_id {
  char text[ER_ID_LEN + 1];
} er_id_t;

int er_id_new(er_id_t *out);
/* 1 when s is a well-formed UUID of any version in text form, else 0. */
int er_id_valid(const char *s);

/* ---- Time -------------------------------------------------------------------
 * Monotonic time for durations and timers, wall time for what is stored. */
uint64_t er_now_mono_ns(void);
uint64_t er_now_mono_ms(void);
int64_t er_now_wall_ms(void);
/* Parses an RFC 3339 (ISO 8601) time into *ms, ms since the epoch:
 * YYYY-MM-DDTHH:MM:SS (T or t), an optional fraction of 1 to 9 digits (kept
 * to the millisecond, the rest dropped), then Z (or z) or an offset +HH:MM
 * or -HH:MM, converted to UTC: 2026-12-02T15:41:32.934Z,
 * 2026-12-02T16:41:32+01:00. The time, in UTC, must lie from 1970 to 9999.
 * 0, or ER_EINVAL (nothing written) for anything else: no offset, a date
 * that does not exist (Feb 30), 24:00, a leap second (:60), spaces. Pure;
 * any thread. */
int er_time_parse(const char *s, int64_t *ms);

/* ---- Logging -----------------------------------------------------------------
 * Levels, lowest first. The initial level comes from ERRAND_LOG
 * (error|warn|info|debug|trace), default warn. The default sink writes one line
 * per message to stderr. Thread-safe.
 */
typedef enum er_log_level {
  ER_LOG_ERROR = 0,
  ER_LOG_WARN,
  ER_LOG_INFO,
  ER_LOG_DEBUG,
  ER_LOG_TRACE
} er_log_level_t;

typedef void (*er_log_sink_fn)(er_log_level_t level, const char *line, void *ud);

void er_log_set_level(er_log_level_t level);
er_log_level_t er_log_get_level(void);
/* A NULL sink restores the default. */
void er_log_set_sink(er_log_sink_fn sink, void *ud);
void er_log(er_log_level_t level, const char *fmt, ...) ER_PRINTF(2, 3);
void er_vlog(er_log_level_t level, const char *fmt, va_list ap);
const char *er_log_level_name(er_log_level_t level);

ER_API_END
#ifdef __cplusplus
}
#endif
#endif
