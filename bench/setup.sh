#!/usr/bin/env bash
# Installs what `make bench` needs beyond the build (Debian 12 packages only):
# the peers (Node.js, nginx + nchan, FastAPI + uvicorn), gnuplot for the
# charts, linux-perf/strace for bench/profile.sh and heaptrack for memory per
# connection (docs/benchmarks.md). Idempotent; run as root.
set -euo pipefail
PACKAGES=(nodejs nginx-light libnginx-mod-nchan python3-fastapi python3-uvicorn gnuplot-nox
          linux-perf strace heaptrack)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "bench/setup.sh: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends "${missing[@]}" ||
    { apt-get update && apt-get install -y --no-install-recommends "${missing[@]}"; }
  # Debian starts nginx on port 80 after installing it; the suite runs its own.
  if [[ " ${missing[*]} " == *" nginx-light "* ]] && command -v systemctl >/dev/null; then
    systemctl disable --now nginx 2>/dev/null || true
  fi
fi
