/* Reading the command line: options, and numbers and times strictly, each in
 * its documented range (docs/cli.md). A number past its range is refused,
 * never wrapped or clamped: a countdown of 2^63 s multiplied to ms and added
 * to now would otherwise come out in the past. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cli_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts) {
  /* getopt's own messages name the command as the program ("send:
   * unrecognized option") and the usage followed: one line instead, saying
   * where the options are listed. */
  opterr = 0;
  int c = getopt_long(argc, argv, shortopts, longopts, NULL);
  if (c != '?' && c != ':') return c;
  /* A long option is named by the word given (optopt holds its short code
   * when it lacks its value); a short one by optopt (the word may be a
   * cluster, "-qZ"). */
  char shortname[3] = {'-', (char)optopt, 0};
  const char *word = optind > 0 && optind <= argc ? argv[optind - 1] : "";
  const char *arg = !strncmp(word, "--", 2) || !optopt ? word : shortname;
  int len = (int)strcspn(arg, "="); /* "--bogus=1" names --bogus */
  if (c == ':')
    cli_error("option '%.*s' needs a value; see 'errand %s --help'", len, arg, argv[0]);
  else
    cli_error("unknown option '%.*s'; see 'errand %s --help'", len, arg, argv[0]);
  return '?';
}

bool cli_int_opt(const char *opt, const char *s, int min, int max, int *out) {
  /* atoi took "high" as 0 and "7abc" as 7: every character is checked, then
   * the range (strtoll reports overflow in errno). */
  const char *d = s + (*s == '-' || *s == '+');
  bool digits = *d != 0;
  for (const char *p = d; *p; p++) digits = digits && *p >= '0' && *p <= '9';
  if (!digits) {
    cli_error("%s takes an integer from %d to %d, not '%s'", opt, min, max, s);
    return false;
  }
  errno = 0;
  long long v = strtoll(s, NULL, 10);
  if (errno || v < min || v > max) {
    cli_error("%s: %s is out of range (%d..%d)", opt, s, min, max);
    return false;
  }
  *out = (int)v;
  return true;
}

/* ms as seconds, as few digits as it takes: 100 -> "0.1", 30000 -> "30". */
static const char *secs_text(int64_t ms, char buf[32]) {
  int n = snprintf(buf, 32, "%lld.%03lld", (long long)(ms / 1000), (long long)(ms % 1000));
  while (buf[n - 1] == '0') buf[--n] = 0;
  if (buf[n - 1] == '.') buf[n - 1] = 0;
  return buf;
}

bool cli_seconds_opt(const char *opt, const char *s, int64_t min_ms, int64_t max_ms,
                     int64_t *ms) {
  /* Plain decimals only: strtod would also take signs, spaces, hex, "nan"
   * and "inf", none of which is a number of seconds. */
  size_t ndig = 0, ndot = 0;
  for (const char *p = s; *p; p++) {
    if (*p >= '0' && *p <= '9')
      ndig++;
    else if (*p == '.')
      ndot++;
    else
      ndot = 2;
  }
  if (!ndig || ndot > 1) {
    cli_error("%s takes seconds (like 30 or 1.5), not '%s'", opt, s);
    return false;
  }
  /* Compared as a double first: any count of digits fits one (at worst as
   * inf), where the ms as an integer could overflow. */
  double v = strtod(s, NULL) * 1000.0 + 0.5;
  if (!(v >= (double)min_ms && v < (double)max_ms + 1.0)) {
    char lo[32], hi[32];
    cli_error("%s: %s is out of range (%s..%s seconds)", opt, s, secs_text(min_ms, lo),
              secs_text(max_ms, hi));
    return false;
  }
  *ms = (int64_t)v;
  return true;
}

bool cli_time_opt(const char *opt, const char *s, int64_t *ms) {
  /* One parser for every door in (er_time_parse): what the HTTP API takes
   * as an eta, this takes too. */
  if (er_time_parse(s, ms) == 0) return true;
  cli_error("%s takes a time like 2026-12-02T11:40:00Z or 2026-12-02T12:40:00.250+01:00 "
            "(from 1970), not '%s'", opt, s);
  return false;
}

bool cli_secret_opt(int c, const char *arg, const char **secret) {
  if (c == 'x') {
    *secret = arg;
    return true;
  }
  /* The file's first line, as --store-file reads a URL: a buffer of its own,
   * since a command may take both. */
  static char buf[4096];
  FILE *f = fopen(arg, "r");
  bool ok = f && fgets(buf, sizeof buf, f);
  int err = f ? (ferror(f) ? errno : 0) : errno;
  if (f) fclose(f);
  if (ok) buf[strcspn(buf, "\r\n")] = 0;
  if (!ok || !*buf) {
    cli_error("--secret-file %s: %s", arg, err ? strerror(err) : "no secret in its first line");
    return false;
  }
  *secret = buf;
  return true;
}

bool cli_secret_env(const char **secret) {
  const char *env = getenv("ERRAND_SECRET");
  if (!*secret && env && *env) *secret = env;
  if (*secret && strlen(*secret) < ER_SECRET_MIN_LEN) {
    cli_error("the callback secret (--secret, --secret-file or $ERRAND_SECRET) is %zu bytes: "
              "it takes at least %d", strlen(*secret), ER_SECRET_MIN_LEN);
    return false;
  }
  return true;
}
