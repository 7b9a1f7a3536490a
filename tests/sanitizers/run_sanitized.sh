#!/bin/sh
# Runs one test program of a sanitizer build (see tests/CMakeLists.txt).
# Exit 77 (ctest: skipped) when it was not built: `make test` builds it.
bin="$1"
shift
if [ ! -x "$bin" ]; then
  echo "not built: $bin (make test builds the sanitizer builds)"
  exit 77
fi
exec "$bin" "$@"
