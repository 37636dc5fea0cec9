/* er_time_parse: RFC 3339 times into ms since the epoch, the one parser
 * behind the HTTP API's eta and errand send --eta. Expected values from
 * Python's datetime, an independent implementation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "errand/common.h"

static int64_t parsed(const char *s) {
  int64_t ms = -1;
  int rc = er_time_parse(s, &ms);
  if (rc) fail_msg("'%s' refused (%d)", s, rc);
  return ms;
}

static void good_times(void **state) {
  assert_int_equal(parsed("2026-12-02T15:41:32.934Z"), 1796226092934LL);
  assert_int_equal(parsed("2026-12-02T15:41:32Z"), 1796226092000LL);
  assert_int_equal(parsed("2026-12-02t15:41:32.934z"), 1796226092934LL);
  assert_int_equal(parsed("2026-12-02T15:41:32.934+00:00"), 1796226092934LL);
  assert_int_equal(parsed("2026-12-02T15:41:32.934-00:00"), 1796226092934LL);
  /* Offsets converted: the same instant. */
  assert_int_equal(parsed("2026-12-02T16:41:32.934+01:00"), 1796226092934LL);
  assert_int_equal(parsed("2026-12-02T10:11:32.934-05:30"), 1796226092934LL);
  assert_int_equal(parsed("2026-12-03T01:41:32.934+10:00"), 1796226092934LL);
  /* Fractions of 1 to 9 digits, kept to the ms (never rounded up). */
  assert_int_equal(parsed("2026-12-02T15:41:32.9Z"), 1796226092900LL);
  assert_int_equal(parsed("2026-12-02T15:41:32.93Z"), 1796226092930LL);
  assert_int_equal(parsed("2026-12-02T15:41:32.934567+00:00"), 1796226092934LL);
  assert_int_equal(parsed("2026-12-02T15:41:32.999999999Z"), 1796226092999LL);
  /* The ends of the range, and leap days. */
  assert_int_equal(parsed("1970-01-01T00:00:00Z"), 0);
  assert_int_equal(parsed("1970-01-01T01:00:00+01:00"), 0);
  assert_int_equal(parsed("2000-02-29T00:00:00Z"), 951782400000LL);
  assert_int_equal(parsed("2024-02-29T12:00:00Z"), 1709208000000LL);
  assert_int_equal(parsed("9999-12-31T23:59:59.999Z"), 253402300799999LL);
  assert_int_equal(parsed("2000-01-01T00:00:00.25Z"), 946684800250LL);
}

static void bad_times(void **state) {
  static const char *const bad[] = {
      "",                          "2026-12-02",                 "2026-12-02T15:41:32",
      "2026-12-02 15:41:32Z",      "2026-12-02T15:41Z",          "2026-12-02T15:41:32.Z",
      "2026-12-02T15:41:32.1234567890Z", "2026-02-30T00:00:00Z", "2025-02-29T00:00:00Z",
      "1900-02-29T00:00:00Z",      "2026-13-01T00:00:00Z",       "2026-00-01T00:00:00Z",
      "2026-12-00T00:00:00Z",      "2026-12-02T24:00:00Z",       "2026-12-02T23:60:00Z",
      "2026-12-02T23:59:60Z",      "2026-12-02T15:41:32+01",     "2026-12-02T15:41:32+0100",
      "2026-12-02T15:41:32+24:00", "2026-12-02T15:41:32+01:60",  "2026-12-02T15:41:32ZZ",
      "2026-12-02T15:41:32Z ",     " 2026-12-02T15:41:32Z",      "+026-12-02T15:41:32Z",
      "1969-12-31T23:59:59Z",      "1970-01-01T00:30:00+01:00",  "9999-12-31T23:59:59-00:01",
      "2026-12-02T15:41:32+01:00:00", "２026-12-02T15:41:32Z",   "2026-12-02T15:41:32.9e3Z",
      NULL};
  for (int i = 0; bad[i]; i++) {
    int64_t ms = 42;
    if (er_time_parse(bad[i], &ms) != ER_EINVAL) fail_msg("'%s' taken", bad[i]);
    assert_int_equal(ms, 42); /* nothing written */
  }
  int64_t ms;
  assert_int_equal(er_time_parse(NULL, &ms), ER_EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(good_times), cmocka_unit_test(bad_times)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
