#!/usr/bin/env bash
# Installs what Sluice needs on Debian 12, only what is missing; silent when
# all is present.
#
# Usage: bash scripts/setup.sh [PROFILE...]      (default: all)
#   build  the compiler, Ninja, lld and libraries for the server (`make
#          build`; hiredis for the Redis layer's protocol reader)
#   web    + Node.js >= 18 and npm for the page (`make run`)
#   test   + web, GoogleTest, curl, Chromium (the page's browser tests),
#          redis-server + redis-tools (the Redis tests start their own server)
#          and nginx (the two-node tests run scripts/two-nodes.sh) (`make test`)
#   fuzz   + clang and its libFuzzer runtime (`make fuzz`)
#   bench  + curl, redis-server and redis-tools (redis-benchmark) (`make bench`)
#   all    every profile above
# The Makefile passes the profiles its goals need.
#
# Runs as root (sudo is not needed, nor required to be installed) or as a
# user with sudo (asked only when something is missing).
set -euo pipefail

profiles=("$@")
((${#profiles[@]})) || profiles=(all)
want_web=0 want_test=0 want_fuzz=0 want_bench=0
for p in "${profiles[@]}"; do
  case $p in
    build) ;;
    web) want_web=1 ;;
    test) want_web=1 want_test=1 ;;
    fuzz) want_fuzz=1 ;;
    bench) want_bench=1 ;;
    all) want_web=1 want_test=1 want_fuzz=1 want_bench=1 ;;
    *)
      echo "setup: unknown profile '$p' (build, web, test, fuzz, bench, all)" >&2
      exit 2
      ;;
  esac
done

pkgs=(build-essential cmake ccache pkg-config
      ninja-build lld  # the build's generator and linker (CMakeLists.txt, docs/testing.md)
      libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
      libssl-dev zlib1g-dev libsqlite3-dev libspdlog-dev libfmt-dev libcli11-dev
      libhiredis-dev)  # the Redis layer's RESP reader (src/redis)
if ((want_test)); then
  pkgs+=(libgtest-dev curl
         chromium  # the web page's browser tests (driven by playwright-core, never a downloaded browser)
         redis-server redis-tools  # tests/redis start a real redis-server; redis-cli
         nginx)  # the load balancer of scripts/two-nodes.sh (tests/two_nodes)
fi
if ((want_bench)) && ! ((want_test)); then
  pkgs+=(curl redis-server redis-tools)  # redis-benchmark for the Redis ceiling
fi
if ((want_fuzz)); then
  pkgs+=(clang libclang-rt-14-dev)  # libFuzzer and the sanitizer runtimes
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# The web page is built with Node.js and npm: Debian's packages, unless a node
# and npm are already installed (whichever way).
if ((want_web)); then
  command -v node >/dev/null 2>&1 || missing+=(nodejs)
  command -v npm >/dev/null 2>&1 || missing+=(npm)
fi

if ((${#missing[@]})); then
  as_root=()
  if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
      echo "setup: these Debian packages are missing: ${missing[*]}" >&2
      echo "setup: run this script as root, or install sudo, to install them" >&2
      exit 1
    fi
    as_root=(sudo)
  fi
  echo "setup: installing ${missing[*]}"
  # `env` passes the variable through sudo, which resets the environment.
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian 12's nodejs is 18.20, which the page's build supports; older ones do not.
if ((want_web)) &&
   ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>18||(a===18&&b>=18)?0:1)'; then
  echo "setup: Node.js $(node -v) is too old: the web page needs Node.js 18.18 or later" >&2
  exit 1
fi
