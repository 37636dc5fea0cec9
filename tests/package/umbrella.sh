#!/bin/sh
# Usage: umbrella.sh INCLUDE_DIR
# errand.h includes every public header in errand/, so `#include <errand.h>`
# is the whole API; a header added without its line here fails.
set -eu
inc=$1
status=0
for h in "$inc"/errand/*.h; do
  name=errand/$(basename "$h")
  if ! grep -q "^#include \"$name\"" "$inc/errand.h"; then
    echo "umbrella: errand.h does not include $name" >&2
    status=1
  fi
done
[ "$status" -eq 0 ] && echo "umbrella: errand.h includes all $(ls "$inc"/errand/*.h | wc -l) headers"
exit "$status"
