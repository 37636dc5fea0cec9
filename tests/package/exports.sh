#!/bin/sh
# Usage: exports.sh LIBERRAND.so LIBERRAND.a INCLUDE_DIR
# liberrand.so exports the public API and nothing else:
#   - every symbol it defines dynamically is er_-prefixed, never an er__
#     internal (which programs could otherwise come to depend on);
#   - every function or object liberrand.a defines under a name the public
#     headers use is exported (a public function hidden by mistake).
set -eu
so=$1 a=$2 inc=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
nm -D --defined-only "$so" | awk 'NF == 3 {print $3}' | sed 's/@.*//' | sort -u >"$tmp/exported"
grep -v -E '^(er_[A-Za-z0-9]|_init$|_fini$|_edata$|_end$|__bss_start$)' "$tmp/exported" >"$tmp/leaked" || true
nm -g --defined-only "$a" 2>/dev/null | awk 'NF == 3 {print $3}' | sort -u >"$tmp/defined"
grep -rhoE '\ber_[A-Za-z0-9_]+' "$inc" | sort -u >"$tmp/named"
comm -12 "$tmp/defined" "$tmp/named" | comm -23 - "$tmp/exported" >"$tmp/hidden"
status=0
if [ -s "$tmp/leaked" ]; then
  echo "exports: liberrand.so exports $(wc -l <"$tmp/leaked") non-API symbols:" >&2
  sed 's/^/  /' "$tmp/leaked" >&2
  status=1
fi
if [ -s "$tmp/hidden" ]; then
  echo "exports: public names liberrand.so does not export:" >&2
  sed 's/^/  /' "$tmp/hidden" >&2
  status=1
fi
[ "$status" -eq 0 ] && echo "exports: $(wc -l <"$tmp/exported") symbols, all public API"
exit "$status"
