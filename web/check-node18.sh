#!/usr/bin/env bash
# Builds and tests web/ under Debian 12's own Node.js 18 and npm 9, whatever
# Node this machine has installed: the Debian .debs (nodejs, libnode108, npm and
# the node-* packages npm is made of, plus the shared libraries node links) are
# downloaded with `apt-get download`, unpacked with `dpkg -x` into a temporary
# directory and put first on PATH / LD_LIBRARY_PATH. Debian's node loads a few
# built-in modules from /usr/share/nodejs (cjs-module-lexer, undici, acorn), so
# the unpacked /usr/share and /usr/lib are overlaid on the real ones inside a
# private mount namespace (unshare -m as root, unshare -rm otherwise): nothing
# outside this script's processes sees them.
#
# Then, in a copy of web/ (and the Makefile, docs/ for the e2e corpus):
#   make's web rules (npm ci + build of web/client and web/app, npm ci of web/e2e)
#   web/client unit tests (vitest), web/app unit tests (node --test),
#   web/e2e browser tests (node --test, Debian chromium) against build/sluice.
#
# Not run by `make test` (it downloads ~350 .debs). Usage:
#   web/check-node18.sh            # needs build/sluice (make build) for the e2e
#   KEEP=1 web/check-node18.sh     # keep the temporary directory
#   SKIP_E2E=1 web/check-node18.sh
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)

if [ "${1:-}" != "--inside" ]; then
  work=$(mktemp -d /tmp/sluice-node18.XXXXXX)
  echo "node18: working in $work"
  # 1. Download Debian's Node 18 and npm 9 with what they need to run.
  version=$(apt-cache madison nodejs | awk -F'|' '$2 ~ /dfsg/ { gsub(/ /, "", $2); print $2; exit }')
  [ -n "$version" ] || { echo "node18: no Debian nodejs in the apt lists (apt-get update?)" >&2; exit 1; }
  pkgs=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
           --no-replaces --no-enhances --no-pre-depends npm "nodejs=$version" libnode108 2>/dev/null |
         grep -v '^ ' | grep -E '^(node-|libjs-)' | sort -u)
  mkdir -p "$work/debs" "$work/root"
  (cd "$work/debs" && apt-get download -q "nodejs=$version" libnode108 npm \
      libuv1 libc-ares2 libicu72 libnghttp2-14 libbrotli1 libssl3 zlib1g $pkgs >/dev/null)
  for d in "$work"/debs/*.deb; do dpkg -x "$d" "$work/root"; done
  echo "node18: unpacked $(ls "$work"/debs/*.deb | wc -l) Debian packages"

  # 2. The tree to build: a copy, so this machine's own node_modules stay as they are.
  mkdir -p "$work/repo"
  (cd "$repo" && git ls-files -z -- web Makefile docs | tar --null -T - -cf -) | (cd "$work/repo" && tar -xf -)

  if [ "$(id -u)" = 0 ]; then ns=(unshare -m); else ns=(unshare -rm); fi
  REPO="$repo" exec "${ns[@]}" bash "$0" --inside "$work"
fi

# ---- inside the private mount namespace ----
work=$2
[ -n "${KEEP:-}" ] || trap 'cd /; rm -rf "$work"' EXIT
root=$work/root
mount -t overlay overlay -o "lowerdir=$root/usr/share:/usr/share" /usr/share
mount -t overlay overlay -o "lowerdir=$root/usr/lib:/usr/lib" /usr/lib
export PATH="$root/usr/bin:$PATH"
export LD_LIBRARY_PATH="$root/usr/lib/x86_64-linux-gnu"
export npm_config_cache="$work/npm-cache" NO_COLOR=1
echo "node18: node $(node -v) ($(command -v node)), npm $(npm -v) ($(command -v npm))"
case "$(node -v)" in v18.*) ;; *) echo "node18: not Node 18" >&2; exit 1 ;; esac

cd "$work/repo"
echo "node18: make web/app/dist/index.html web/e2e/node_modules/.sluice-npm-ci"
make web/app/dist/index.html web/e2e/node_modules/.sluice-npm-ci
echo "node18: web/client unit tests"
(cd web/client && npm test 2>&1 | tail -n 6)
echo "node18: web/app unit tests"
node --test web/app/test/ 2>&1 | tail -n 8
if [ -z "${SKIP_E2E:-}" ]; then
  echo "node18: web/e2e browser tests"
  SLUICE_BIN="${SLUICE_BIN:-$REPO/build/sluice}" SLUICE_WEB_ROOT="$work/repo/web/app/dist" \
    node --test --test-reporter=spec web/e2e/page.test.mjs 2>&1 | tail -n 40
fi
echo "node18: done"
