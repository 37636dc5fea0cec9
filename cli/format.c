/* How the command writes times, durations and JSON for people to read. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

char *cli_esc(const char *s, char *buf, size_t size) {
  /* Names come from whoever sent the task or wrote the heartbeat: a raw
   * newline would forge output lines, an ESC would drive the terminal. */
  size_t o = 0;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    char e[8] = {(char)*p, 0};
    if (*p == '\n')
      strcpy(e, "\\n");
    else if (*p == '\t')
      strcpy(e, "\\t");
    else if (*p < 0x20 || *p == 0x7f)
      snprintf(e, sizeof e, "\\x%02x", *p);
    size_t n = strlen(e);
    if (o + n + 4 > size) { /* room for "..." and the NUL */
      memcpy(buf + o, "...", 4);
      return buf;
    }
    memcpy(buf + o, e, n);
    o += n;
  }
  buf[o] = 0;
  return buf;
}

char *cli_iso_time(int64_t ms, char buf[32]) {
  time_t secs = (time_t)(ms / 1000);
  struct tm tm;
  if (ms < 0 || !gmtime_r(&secs, &tm)) {
    snprintf(buf, 32, "%lld", (long long)ms);
    return buf;
  }
  size_t n = strftime(buf, 32, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf + n, 32 - n, ".%03dZ", (int)(ms % 1000));
  return buf;
}

int64_t cli_ago(int64_t now, int64_t then) {
  /* then comes from a heartbeat anyone may have written: INT64_MIN must not
   * overflow the subtraction. */
  if (then >= now) return 0;
  return then < now - INT64_MAX / 2 ? INT64_MAX / 2 : now - then;
}

char *cli_duration(int64_t ms, char buf[32]) {
  if (ms < 0) ms = 0;
  int64_t tenths = (ms + 50) / 100, s = ms / 1000;
  if (ms < 1000)
    snprintf(buf, 32, "%lld ms", (long long)ms);
  else if (tenths < 600 && tenths % 10)
    snprintf(buf, 32, "%lld.%lld s", (long long)(tenths / 10), (long long)(tenths % 10));
  else if (tenths < 600)
    snprintf(buf, 32, "%lld s", (long long)(tenths / 10));
  else if (s < 3600)
    snprintf(buf, 32, s % 60 ? "%lld min %lld s" : "%lld min", (long long)(s / 60),
             (long long)(s % 60));
  else if (s < 86400)
    snprintf(buf, 32, s / 60 % 60 ? "%lld h %lld min" : "%lld h", (long long)(s / 3600),
             (long long)(s / 60 % 60));
  else
    snprintf(buf, 32, s / 3600 % 24 ? "%lld d %lld h" : "%lld d", (long long)(s / 86400),
             (long long)(s / 3600 % 24));
  return buf;
}

/* The fewest significant digits %g needs for v to read back as v. */
static int shortest_digits(double v) {
  char tmp[40];
  for (int p = 1; p < 17; p++) {
    snprintf(tmp, sizeof tmp, "%.*g", p, v);
    if (strtod(tmp, NULL) == v) return p;
  }
  return 17;
}

/* The most digits any real in j needs. */
static int max_digits(const json_t *j) {
  int most = 1;
  if (json_is_real(j)) return shortest_digits(json_real_value(j));
  if (json_is_array(j)) {
    size_t i;
    const json_t *v;
    json_array_foreach(j, i, v) {
      int d = max_digits(v);
      most = d > most ? d : most;
    }
  } else if (json_is_object(j)) {
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)j, k, v) {
      int d = max_digits(v);
      most = d > most ? d : most;
    }
  }
  return most;
}

char *cli_json_text(const json_t *j, size_t flags) {
  /* Jansson prints every real of a document with one precision, 17 digits by
   * default, which shows 0.45 as 0.45000000000000001. The precision that
   * round-trips the most demanding real prints the others as written too
   * (%g drops trailing zeros), unless one real really needs 16-17 digits. */
  return json_dumps(j, flags | JSON_ENCODE_ANY | JSON_REAL_PRECISION(max_digits(j)));
}
