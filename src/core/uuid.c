/* UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then 12 bits that this
 * process uses as a counter within one millisecond (the RFC's "method 1"), so
 * ids made here sort in creation order, then 62 random bits. */
#include <pthread.h>
#include <string.h>
#include <sys/random.h>

#include "errand/common.h"

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t g_last_ms;
static uint32_t g_counter;

static int fill_random(uint8_t *buf, size_t n) {
  while (n) {
    ssize_t got = getrandom(buf, n, 0);
    if (got < 0) return ER_ESYS;
    buf += got;
    n -= (size_t)got;
  }
  return 0;
}

int er_id_new(er_id_t *out) {
  uint8_t b[16];
  if (fill_random(b, sizeof b) < 0) return ER_ESYS;
  int64_t ms = er_now_wall_ms();
  pthread_mutex_lock(&g_lock);
  if (ms <= g_last_ms) {
    /* Same millisecond (or the clock stepped back): keep the last time and
     * count up; when the 12-bit counter is spent, borrow the next millisecond. */
    ms = g_last_ms;
    if (++g_counter > 0xfff) {
      ms++;
      g_counter = 0;
    }
  } else {
    g_counter = 0;
  }
  g_last_ms = ms;
  uint32_t counter = g_counter;
  pthread_mutex_unlock(&g_lock);

  for (int i = 0; i < 6; i++) b[i] = (uint8_t)((uint64_t)ms >> (40 - 8 * i));
  b[6] = (uint8_t)(0x70 | ((counter >> 8) & 0x0f));
  b[7] = (uint8_t)(counter & 0xff);
  b[8] = (uint8_t)(0x80 | (b[8] & 0x3f));

  static const char hex[] = "0123456789abcdef";
  char *p = out->text;
  for (int i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10) *p++ = '-';
    *p++ = hex[b[i] >> 4];
    *p++ = hex[b[i] & 15];
  }
  *p = '\0';
  return 0;
}

int er_id_valid(const char *s) {
  if (!s || strlen(s) != ER_ID_LEN) return 0;
  for (int i = 0; i < ER_ID_LEN; i++) {
    char c = s[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return 0;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
      return 0;
    }
  }
  return 1;
}
