#!/usr/bin/env bash
# Two Sluice nodes sharing one Redis, behind nginx: the tested recipe of
# docs/scaling.md, in one command. Everything listens on 127.0.0.1, on free
# ports, with its files in a temporary directory:
#
#   redis-server   appendonly yes, appendfsync always, no RDB snapshots,
#                  maxmemory-policy noeviction (the persistence docs/scaling.md
#                  prescribes: nothing acknowledged is lost if Redis restarts)
#   node a, b      sluice serve --redis URL --node-id a|b [serve flags]
#   nginx          scripts/nginx-two-nodes.conf.in: round robin over a and b,
#                  SSE buffering off, HTTP/1.1 keep-alive upstreams, WebSocket
#                  upgrade headers, 1 h read timeouts
#
# It prints the URLs, then waits; Ctrl-C (SIGINT), SIGTERM or the end of the
# script stops everything it started (and removes the directory unless
# --keep). A process that dies meanwhile is reported; the others go on (the
# chaos test kills a node on purpose).
#
# Usage: scripts/two-nodes.sh [options] [-- SERVE_FLAGS...]
#   --build DIR          where build/sluice is (default: build, next to scripts/)
#   --sluice PATH        the sluice binary (default: DIR/sluice)
#   --redis-url URL      use this Redis instead of starting one
#   --port PORT          nginx's port (default: a free one)
#   --serve-args "ARGS"  extra `sluice serve` flags for both nodes (word-split)
#   --a-args "ARGS"      extra flags for node a only; --b-args for node b
#   --state-file FILE    once everything is ready, write KEY=VALUE lines there
#                        (DIR, REDIS_URL, REDIS_PID, A_URL, A_PORT, A_PID, B_URL,
#                        B_PORT, B_PID, LB_URL, LB_PORT, NGINX_PID), atomically
#   --dir DIR            use DIR for logs and data instead of a temporary one
#                        (kept on exit)
#   --keep               keep the temporary directory on exit
#   --exit-on-stdin-eof  stop everything when standard input closes (a test
#                        that runs this script gives it a pipe: if the test
#                        dies, so does everything here)
#   --no-wait            start, print, and exit 0 leaving it all running
#                        (you stop it yourself: kill the printed pids)
# Everything after `--` is passed to both nodes too.
# Environment: SLUICE_TWO_NODES_READY_S (30): how long each part may take to
# answer before the script gives up.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$ROOT/build
SLUICE=
REDIS_URL=
LB_PORT=
SERVE_ARGS=()
A_ARGS=()
B_ARGS=()
STATE_FILE=
DIR=
KEEP=0
STDIN_EOF=0
NO_WAIT=0
READY_S=${SLUICE_TWO_NODES_READY_S:-30}

die() { echo "two-nodes: $*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; }

while (($#)); do
  case $1 in
    --build) BUILD=$2; shift 2 ;;
    --sluice) SLUICE=$2; shift 2 ;;
    --redis-url) REDIS_URL=$2; shift 2 ;;
    --port) LB_PORT=$2; shift 2 ;;
    # shellcheck disable=SC2206
    --serve-args) SERVE_ARGS+=($2); shift 2 ;;
    # shellcheck disable=SC2206
    --a-args) A_ARGS+=($2); shift 2 ;;
    # shellcheck disable=SC2206
    --b-args) B_ARGS+=($2); shift 2 ;;
    --state-file) STATE_FILE=$2; shift 2 ;;
    --dir) DIR=$2; KEEP=1; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --exit-on-stdin-eof) STDIN_EOF=1; shift ;;
    --no-wait) NO_WAIT=1; KEEP=1; shift ;;
    -h | --help) usage; exit 0 ;;
    --) shift; SERVE_ARGS+=("$@"); break ;;
    *) die "unknown option '$1' (--help)" ;;
  esac
done
[[ -n $SLUICE ]] || SLUICE=$BUILD/sluice
[[ -x $SLUICE ]] || die "$SLUICE not found: build first (make build)"
command -v nginx >/dev/null || die "nginx is not installed (Debian: apt-get install nginx; scripts/setup.sh test)"
command -v curl >/dev/null || die "curl is required"
if [[ -z $REDIS_URL ]]; then
  command -v redis-server >/dev/null || die "redis-server is not installed (Debian: redis-server)"
  command -v redis-cli >/dev/null || die "redis-cli is not installed (Debian: redis-tools)"
fi

if [[ -z $DIR ]]; then
  DIR=$(mktemp -d "${TMPDIR:-/tmp}/sluice-two-nodes.XXXXXX")
else
  mkdir -p "$DIR"
fi

PIDS=()    # everything we started, in start order
NAMES=()
REDIS_PID= A_PID= B_PID= NGINX_PID=
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if ((NO_WAIT)) && ((rc == 0)); then return; fi
  local i pid
  # Stop in reverse order: nginx, the nodes (SIGTERM: graceful shutdown,
  # SSE responses end and clients resume elsewhere), Redis last (SIGTERM:
  # it writes its AOF and exits).
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    pid=${PIDS[i]}
    kill -0 "$pid" 2>/dev/null && kill -TERM "$pid" 2>/dev/null
  done
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    pid=${PIDS[i]}
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "two-nodes: ${NAMES[i]} (pid $pid) did not stop in 10 s: SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
  if ((KEEP)); then
    echo "two-nodes: logs kept in $DIR" >&2
  else
    rm -rf "$DIR"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A port nothing listens on (a connect is refused), below Linux's ephemeral
# range; pure bash. A port taken between this probe and the bind is retried
# by the callers. (Probing by connecting matters: Sluice binds with
# SO_REUSEPORT, so a second Sluice on a taken port would not fail.)
free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$((20000 + RANDOM % 12000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done
  die "no free port found"
}

# wait_ready NAME PID LOG CHECK...: until CHECK succeeds (bounded), or NAME
# exits (then its log is shown and 1 is returned, so the caller may retry on
# another port).
wait_ready() {
  local name=$1 pid=$2 log=$3
  shift 3
  local deadline=$((SECONDS + READY_S))
  while ((SECONDS < deadline)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "two-nodes: $name exited during start-up; its log:" >&2
      tail -n 20 "$log" >&2 || true
      return 1
    fi
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  tail -n 20 "$log" >&2 || true
  die "$name did not become ready in $READY_S s"
}
healthz() { [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$1/healthz") == 200 ]]; }
redis_ping() { [[ $(redis-cli -p "$1" ping 2>/dev/null) == PONG ]]; }

started() {  # started NAME PID
  PIDS+=("$2")
  NAMES+=("$1")
}

# --- Redis -------------------------------------------------------------------
REDIS_PORT=
if [[ -z $REDIS_URL ]]; then
  mkdir -p "$DIR/redis"
  for attempt in 1 2 3 4 5; do
    REDIS_PORT=$(free_port)
    # The persistence docs/scaling.md prescribes; no RDB snapshots (the AOF is
    # the record), noeviction (a full Redis refuses writes, never drops a
    # stream).
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$DIR/redis" \
      --appendonly yes --appendfsync always --save '' --maxmemory-policy noeviction \
      --daemonize no --logfile "$DIR/redis/redis.log" &
    REDIS_PID=$!
    if wait_ready redis "$REDIS_PID" "$DIR/redis/redis.log" redis_ping "$REDIS_PORT"; then
      started redis "$REDIS_PID"
      break
    fi
    wait "$REDIS_PID" 2>/dev/null || true
    REDIS_PID=
    ((attempt < 5)) || die "redis-server could not start"
  done
  REDIS_URL=redis://127.0.0.1:$REDIS_PORT
fi

# --- the nodes -----------------------------------------------------------------
start_node() {  # start_node NAME EXTRA_ARGS... ; sets NODE_PORT, NODE_PID
  local name=$1
  shift
  local log=$DIR/node-$name.log
  for attempt in 1 2 3 4 5; do
    NODE_PORT=$(free_port)
    echo "+ $SLUICE serve --host 127.0.0.1 --port $NODE_PORT --redis $REDIS_URL --node-id $name $*" >"$log"
    "$SLUICE" serve --host 127.0.0.1 --port "$NODE_PORT" --redis "$REDIS_URL" --node-id "$name" \
      "$@" >>"$log" 2>&1 &
    NODE_PID=$!
    if wait_ready "node $name" "$NODE_PID" "$log" healthz "$NODE_PORT"; then
      started "node-$name" "$NODE_PID"
      return 0
    fi
    wait "$NODE_PID" 2>/dev/null || true
    # A port taken between free_port and the bind is worth another try; a
    # bad flag is not (the log says which).
    grep -qi 'address already in use' "$log" || die "node $name could not start (log: $log)"
  done
  die "node $name could not start"
}
start_node a "${SERVE_ARGS[@]}" "${A_ARGS[@]}"
A_PORT=$NODE_PORT A_PID=$NODE_PID
start_node b "${SERVE_ARGS[@]}" "${B_ARGS[@]}"
B_PORT=$NODE_PORT B_PID=$NODE_PID

# --- nginx -------------------------------------------------------------------
mkdir -p "$DIR/nginx/tmp"
for attempt in 1 2 3 4 5; do
  port=${LB_PORT:-$(free_port)}
  sed -e "s|@PREFIX@|$DIR/nginx|g" -e "s|@PORT_A@|$A_PORT|g" -e "s|@PORT_B@|$B_PORT|g" \
    -e "s|@PORT_LB@|$port|g" "$ROOT/scripts/nginx-two-nodes.conf.in" >"$DIR/nginx/nginx.conf"
  nginx -p "$DIR/nginx" -c "$DIR/nginx/nginx.conf" -e "$DIR/nginx/nginx-error.log" \
    >"$DIR/nginx/stdout.log" 2>&1 &
  NGINX_PID=$!
  if wait_ready nginx "$NGINX_PID" "$DIR/nginx/nginx-error.log" healthz "$port"; then
    started nginx "$NGINX_PID"
    LB_PORT=$port
    break
  fi
  wait "$NGINX_PID" 2>/dev/null || true
  [[ -z $LB_PORT ]] || die "nginx could not listen on port $LB_PORT"
  ((attempt < 5)) || die "nginx could not start"
done

cat <<EOF
two-nodes: ready
  redis   $REDIS_URL${REDIS_PID:+  (pid $REDIS_PID; AOF appendfsync always in $DIR/redis)}
  node a  http://127.0.0.1:$A_PORT  (pid $A_PID, log $DIR/node-a.log)
  node b  http://127.0.0.1:$B_PORT  (pid $B_PID, log $DIR/node-b.log)
  nginx   http://127.0.0.1:$LB_PORT  (pid $NGINX_PID; round robin over a and b)
try:
  curl -N http://127.0.0.1:$B_PORT/v1/streams/demo/events
  curl -H 'Content-Type: application/json' -d '{"hi":1}' http://127.0.0.1:$A_PORT/v1/streams/demo/events
EOF

if [[ -n $STATE_FILE ]]; then
  cat >"$STATE_FILE.tmp" <<EOF
DIR=$DIR
REDIS_URL=$REDIS_URL
REDIS_PID=$REDIS_PID
A_URL=http://127.0.0.1:$A_PORT
A_PORT=$A_PORT
A_PID=$A_PID
B_URL=http://127.0.0.1:$B_PORT
B_PORT=$B_PORT
B_PID=$B_PID
LB_URL=http://127.0.0.1:$LB_PORT
LB_PORT=$LB_PORT
NGINX_PID=$NGINX_PID
EOF
  mv "$STATE_FILE.tmp" "$STATE_FILE"
fi

if ((NO_WAIT)); then
  echo "two-nodes: left running; stop with: kill ${PIDS[*]}; files in $DIR"
  exit 0
fi

if ((STDIN_EOF)); then
  # A reader of our standard input that tells us when it closes.
  exec 3<&0
  ( cat <&3 >/dev/null; kill -TERM $$ 2>/dev/null ) &
  exec 3<&-
fi

echo "two-nodes: Ctrl-C stops everything"
while :; do
  # `wait -n` returns when any child exits (the watcher of standard input is
  # one too), or at once when a trapped signal arrives (the trap then exits).
  done_pid=
  status=0
  wait -n -p done_pid || status=$?
  for i in "${!PIDS[@]}"; do
    [[ ${PIDS[i]} == "$done_pid" ]] && echo "two-nodes: ${NAMES[i]} (pid $done_pid) exited with status $status" >&2
  done
  alive=0
  for pid in "${PIDS[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then alive=$((alive + 1)); fi
  done
  ((alive)) || { echo "two-nodes: everything has exited" >&2; exit 1; }
done
