#!/usr/bin/env bash
# Installs what Sluice needs on Debian 12, only what is missing; silent when all is present.
set -euo pipefail
pkgs=(build-essential cmake ccache pkg-config
      libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
      libssl-dev zlib1g-dev libsqlite3-dev libspdlog-dev libfmt-dev libcli11-dev libgtest-dev
      curl
      chromium)  # the web page's browser tests (driven by playwright-core, never a downloaded browser)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# The web page is built with Node.js and npm: Debian's packages, unless a node
# and npm are already installed (whichever way).
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if command -v node >/dev/null 2>&1 &&
   ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)'; then
  echo "setup: warning: Node.js $(node -v) is older than 20.19, which the web build (Vite 7) needs" >&2
fi
