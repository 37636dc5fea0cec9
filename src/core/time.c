/* Clocks. CLOCK_MONOTONIC for durations and timers (never jumps), the wall
 * clock for timestamps that are stored or shown. */
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
