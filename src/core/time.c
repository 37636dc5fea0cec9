/* Clocks. CLOCK_MONOTONIC for durations and timers (never jumps), the wall
 * clock for timestamps that are stored or shown. */
#include <stdbool.h>
#include <time.h>

#include "errand/common.h"

uint64_t er_now_mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t er_now_mono_ms(void) { return er_now_mono_ns() / 1000000u; }

int64_t er_now_wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* n digits at s as a number, or -1 when one is not a digit. */
static int digits(const char *s, int n) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (the
 * civil-from-days inverse, in integers: no timegm, which reads no time zone
 * but is not promised to be thread-safe everywhere). */
static int64_t days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

static bool leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int er_time_parse(const char *s, int64_t *ms) {
  static const char form[] = "dddd-dd-ddTdd:dd:dd";
  if (!s) return ER_EINVAL;
  for (size_t i = 0; i < sizeof form - 1; i++) {
    char c = s[i];
    bool ok = form[i] == 'd' ? c >= '0' && c <= '9'
              : form[i] == 'T' ? c == 'T' || c == 't'
                               : c == form[i];
    if (!ok) return ER_EINVAL; /* also stops at the NUL of a short string */
  }
  int y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2);
  int h = digits(s + 11, 2), mi = digits(s + 14, 2), sec = digits(s + 17, 2);
  static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] + (mo == 2 && leap(y)) || h > 23 ||
      mi > 59 || sec > 59)
    return ER_EINVAL;
  const char *p = s + sizeof form - 1;
  int frac = 0, nfrac = 0;
  if (*p == '.') {
    for (p++; *p >= '0' && *p <= '9'; p++, nfrac++)
      if (nfrac < 3) frac = frac * 10 + (*p - '0');
    if (nfrac < 1 || nfrac > 9) return ER_EINVAL;
    for (int i = nfrac; i < 3; i++) frac *= 10;
  }
  int offset_min = 0;
  if (*p == 'Z' || *p == 'z') {
    p++;
  } else if (*p == '+' || *p == '-') {
    int oh = digits(p + 1, 2), om = p[1] && p[2] && p[3] == ':' ? digits(p + 4, 2) : -1;
    if (oh < 0 || oh > 23 || om < 0 || om > 59) return ER_EINVAL;
    offset_min = (*p == '-' ? -1 : 1) * (oh * 60 + om);
    p += 6;
  } else {
    return ER_EINVAL;
  }
  if (*p) return ER_EINVAL;
  int64_t t = (days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - offset_min * 60) *
                  1000 + frac;
  /* 1970 to 9999 in UTC: the offset may carry the local time across. */
  if (t < 0 || t >= days_from_civil(10000, 1, 1) * 86400 * 1000) return ER_EINVAL;
  *ms = t;
  return 0;
}
