#!/usr/bin/env bash
# Runs redis-benchmark against baton-kv while the server is hot-restarted
# (SIGUSR2) over and over, then checks that nothing went wrong.
#
# Usage: scripts/kv_restart_under_load.sh [options]
#   --binary PATH      baton-kv to run (default: build/apps/kv/baton-kv)
#   --threads N        server reactor threads (default 2)
#   --requests N       redis-benchmark -n (default 1000000)
#   --clients N        redis-benchmark -c (default 50)
#   --pipeline N       redis-benchmark -P (default 16)
#   --tests LIST       redis-benchmark -t (default set,get,incr,lpush,mset)
#   --interval-ms N    time between restarts (default 400)
#   --min-restarts N   fail unless at least N restarts happened (default 5)
#
# Prints redis-benchmark's results, the restart count and the handoff
# pauses. Exits non-zero if redis-benchmark fails or reports an error, a
# restart does not complete, a key written before the restarts is gone
# afterwards, or fewer than --min-restarts restarts happened.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
binary="${repo_root}/build/apps/kv/baton-kv"
threads=2
requests=1000000
clients=50
pipeline=16
tests="set,get,incr,lpush,mset"
interval_ms=400
min_restarts=5

while [[ $# -gt 0 ]]; do
  case "$1" in
    --binary) binary="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --requests) requests="$2"; shift 2 ;;
    --clients) clients="$2"; shift 2 ;;
    --pipeline) pipeline="$2"; shift 2 ;;
    --tests) tests="$2"; shift 2 ;;
    --interval-ms) interval_ms="$2"; shift 2 ;;
    --min-restarts) min_restarts="$2"; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "kv_restart_under_load: unknown argument '$1'" >&2; exit 2 ;;
  esac
done

for tool in redis-benchmark redis-cli; do
  if ! command -v "${tool}" >/dev/null 2>&1; then
    echo "kv_restart_under_load: ${tool} not found (bash scripts/setup.sh tools)" >&2
    exit 2
  fi
done
if [[ ! -x "${binary}" ]]; then
  echo "kv_restart_under_load: ${binary} not built" >&2
  exit 2
fi

work="$(mktemp -d -t baton-kv-load.XXXXXX)"
server_pid=""
bench_pid=""

# Alive and not a zombie (a process that took over is not our child).
alive() {
  [[ -r "/proc/$1/stat" ]] && ! grep -q '^[0-9]* (.*) Z' "/proc/$1/stat"
}

# SIGTERM to whichever process serves now; waits (10 s at most) for it.
stop_server() {
  local pid=""
  [[ -s "${work}/kv.pid" ]] && pid="$(cat "${work}/kv.pid")"
  [[ -z "${pid}" ]] && pid="${server_pid}"
  [[ -z "${pid}" ]] && return 0
  kill -TERM "${pid}" 2>/dev/null || true
  local deadline=$(( $(date +%s%3N) + 10000 ))
  while alive "${pid}" && (( $(date +%s%3N) < deadline )); do sleep 0.02; done
  if alive "${pid}"; then kill -KILL "${pid}" 2>/dev/null || true; fi
  server_pid=""
  rm -f "${work}/kv.pid"
}

cleanup() {
  if [[ -n "${bench_pid}" ]]; then
    kill "${bench_pid}" 2>/dev/null || true
    wait "${bench_pid}" 2>/dev/null || true
  fi
  stop_server
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  echo "--- server log (last 20 lines, ${work}/server.err) ---" >&2
  tail -n 20 "${work}/server.err" >&2 || true
  trap - EXIT
  cleanup
  exit 1
}

now_ms() { date +%s%3N; }

"${binary}" --listen 127.0.0.1:0 --threads "${threads}" \
  --pid-file "${work}/kv.pid" >"${work}/server.out" 2>"${work}/server.err" &
server_pid=$!

port=""
deadline=$(( $(now_ms) + 10000 ))
while [[ -z "${port}" ]]; do
  port="$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "${work}/server.out")"
  [[ -n "${port}" ]] && break
  kill -0 "${server_pid}" 2>/dev/null || fail "baton-kv exited at start-up"
  (( $(now_ms) < deadline )) || fail "baton-kv did not print its address"
  sleep 0.02
done
while [[ ! -s "${work}/kv.pid" ]]; do
  (( $(now_ms) < deadline )) || fail "baton-kv did not write its pid file"
  sleep 0.02
done

cli() { redis-cli -p "${port}" "$@"; }
marker="baton:marker:$$"
[[ "$(cli set "${marker}" before-restarts EX 3600)" == "OK" ]] \
  || fail "cannot write ${marker}"

echo "baton-kv on 127.0.0.1:${port} (${threads} threads), pid $(cat "${work}/kv.pid")"
echo "redis-benchmark -p ${port} -t ${tests} -P ${pipeline} -c ${clients} -n ${requests} -q"
redis-benchmark -p "${port}" -t "${tests}" -P "${pipeline}" -c "${clients}" \
  -n "${requests}" -q >"${work}/bench.out" 2>&1 &
bench_pid=$!

restarts=0
while kill -0 "${bench_pid}" 2>/dev/null; do
  sleep "$(awk "BEGIN { print ${interval_ms} / 1000 }")"
  kill -0 "${bench_pid}" 2>/dev/null || break
  old="$(cat "${work}/kv.pid")"
  kill -USR2 "${old}"
  deadline=$(( $(now_ms) + 10000 ))
  while [[ "$(cat "${work}/kv.pid" 2>/dev/null)" == "${old}" || -z "$(cat "${work}/kv.pid" 2>/dev/null)" ]]; do
    (( $(now_ms) < deadline )) || fail "restart $((restarts + 1)) did not complete within 10 s"
    sleep 0.005
  done
  restarts=$((restarts + 1))
done
bench_status=0
wait "${bench_pid}" || bench_status=$?
bench_pid=""

# redis-benchmark redraws its progress with \r: keep the final lines.
tr '\r' '\n' <"${work}/bench.out" | grep -v 'rps=' | grep -v '^\s*$' \
  >"${work}/bench.txt" || true
echo "--- redis-benchmark ---"
cat "${work}/bench.txt"
echo "--- restarts ---"
echo "restarts (SIGUSR2 -> new pid serving): ${restarts}"
awk '/handoff to pid .* complete:/ {
       n++
       if (match($0, /complete: [0-9]+ connections/)) c += substr($0, RSTART + 10, RLENGTH - 22)
       if (match($0, /[0-9]+ inbound bytes/)) ib += substr($0, RSTART, RLENGTH - 14)
       if (match($0, /app state [0-9]+ bytes/)) st += substr($0, RSTART + 10, RLENGTH - 16)
       if (match($0, /freeze [0-9.]+ ms/)) fr += substr($0, RSTART + 7, RLENGTH - 10)
       if (match($0, /transfer [0-9.]+ ms/)) tr += substr($0, RSTART + 9, RLENGTH - 12)
     }
     /handoff: took over/ {
       # The new process logs the pause: old freeze -> everything served here.
       if (match($0, /clients paused [0-9.]+ ms/)) { p = substr($0, RSTART + 15, RLENGTH - 18) + 0; sum += p; if (p > max) max = p }
     }
     END {
       if (!n) exit
       printf "handoffs logged: %d\n", n
       printf "per restart: %.1f connections moved, %.0f unread inbound bytes moved, app state %.0f bytes\n", c / n, ib / n, st / n
       printf "clients paused: avg %.2f ms (of which freeze %.2f, transfer %.2f), max %.2f ms\n", sum / n, fr / n, tr / n, max
     }' \
  "${work}/server.err"
status=0
if [[ ${bench_status} -ne 0 ]]; then
  echo "FAIL: redis-benchmark exited with status ${bench_status}" >&2
  status=1
fi
if grep -qi 'error' "${work}/bench.txt"; then
  echo "FAIL: redis-benchmark reported errors:" >&2
  grep -i 'error' "${work}/bench.txt" | head -5 >&2
  status=1
fi
if ! grep -q 'requests per second' "${work}/bench.txt"; then
  echo "FAIL: redis-benchmark printed no results" >&2
  status=1
fi
if [[ "$(cli get "${marker}")" != "before-restarts" ]]; then
  echo "FAIL: ${marker}, written before the restarts, did not survive them" >&2
  status=1
fi
ttl="$(cli ttl "${marker}")"
if (( ttl <= 0 || ttl > 3600 )); then
  echo "FAIL: ${marker} has TTL ${ttl} after the restarts (want 1..3600)" >&2
  status=1
fi
if (( restarts < min_restarts )); then
  echo "FAIL: only ${restarts} restarts (want at least ${min_restarts}); raise --requests" >&2
  status=1
fi
if grep -q 'rolled back' "${work}/server.err"; then
  echo "FAIL: a handoff rolled back:" >&2
  grep 'rolled back' "${work}/server.err" | head -3 >&2
  status=1
fi
echo "key written before the restarts: $(cli get "${marker}") (TTL ${ttl} s)"
echo "keys now: $(cli dbsize)"
stop_server
if [[ ${status} -eq 0 ]]; then
  echo "PASS: ${restarts} restarts under load, redis-benchmark saw no errors"
  rm -rf "${work}"
else
  echo "logs kept in ${work}" >&2
fi
exit ${status}
