#!/usr/bin/env bash
# Runs baton-httpd under wrk load and hot-restarts it (SIGUSR2) every half
# second; prints wrk's output, the server's handoff log lines and the number
# of restarts. Exits non-zero on any socket error or non-2xx response, or if
# a restart does not complete.
#
# Usage: scripts/httpd_restart_under_load.sh [options]
#   --build-dir DIR     build directory holding apps/httpd/baton-httpd
#                       (default: build; configured and built if missing)
#   --duration SECONDS  wrk run time (default 10)
#   --interval SECONDS  time between restarts (default 0.5)
#   --connections N     wrk connections (default 50)
#   --threads N         server reactor threads (default 2)
#   --path PATH         URL path to load (default /plaintext)
#   --pipeline N        requests wrk pipelines per connection (default 1)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

build_dir=build
duration=10
interval=0.5
connections=50
threads=2
path=/plaintext
pipeline=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-dir) build_dir="$2"; shift 2 ;;
    --duration) duration="$2"; shift 2 ;;
    --interval) interval="$2"; shift 2 ;;
    --connections) connections="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --path) path="$2"; shift 2 ;;
    --pipeline) pipeline="$2"; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "httpd_restart_under_load.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done

bin="${build_dir}/apps/httpd/baton-httpd"
if [[ ! -x "${bin}" ]]; then
  bash scripts/setup.sh tools
  cmake -S . -B "${build_dir}" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
  cmake --build "${build_dir}" -j"$(nproc)" --target baton-httpd
fi
if ! command -v wrk >/dev/null 2>&1; then
  echo "wrk is not installed: bash scripts/setup.sh tools" >&2
  exit 1
fi

work="$(mktemp -d)"
server_pid=""
wrk_pid=""
cleanup() {
  [[ -n "${wrk_pid}" ]] && kill "${wrk_pid}" 2>/dev/null || true
  local serving
  serving="$(cat "${work}/pid" 2>/dev/null || true)"
  for pid in ${serving} ${server_pid}; do
    kill -TERM "${pid}" 2>/dev/null || true
  done
  for _ in $(seq 100); do
    if [[ -n "${serving}" ]] && kill -0 "${serving}" 2>/dev/null; then
      sleep 0.05
    else
      break
    fi
  done
  rm -rf "${work}"
}
trap cleanup EXIT

# Waits (up to 10 s) until the pid file names a process other than $1.
wait_for_new_pid() {
  local old="$1"
  for _ in $(seq 1000); do
    local now
    now="$(cat "${work}/pid" 2>/dev/null || true)"
    if [[ -n "${now}" && "${now}" != "${old}" ]]; then
      return 0
    fi
    sleep 0.01
  done
  return 1
}

"${bin}" --listen 127.0.0.1:0 --threads "${threads}" \
  --pid-file "${work}/pid" >"${work}/stdout" 2>"${work}/stderr" &
server_pid=$!
port=""
for _ in $(seq 1000); do
  port="$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' \
    "${work}/stdout" 2>/dev/null || true)"
  [[ -n "${port}" && -s "${work}/pid" ]] && break
  if ! kill -0 "${server_pid}" 2>/dev/null; then
    echo "baton-httpd exited at start-up:" >&2
    cat "${work}/stderr" >&2
    exit 1
  fi
  sleep 0.01
done
if [[ -z "${port}" ]]; then
  echo "baton-httpd did not report its address" >&2
  exit 1
fi
echo "baton-httpd pid $(cat "${work}/pid") on 127.0.0.1:${port}," \
  "${threads} threads; wrk ${connections} connections" \
  "(pipelining ${pipeline}) for ${duration}s," \
  "SIGUSR2 every ${interval}s"

wrk_script=()
if [[ "${pipeline}" -gt 1 ]]; then
  # As wrk's scripts/pipeline.lua: N requests in each write.
  cat >"${work}/pipeline.lua" <<LUA
init = function(args)
  local r = {}
  for i = 1, ${pipeline} do r[i] = wrk.format(nil, "${path}") end
  req = table.concat(r)
end
request = function() return req end
LUA
  wrk_script=(-s "${work}/pipeline.lua")
fi
wrk -t1 -c"${connections}" -d"${duration}s" --latency "${wrk_script[@]}" \
  "http://127.0.0.1:${port}${path}" >"${work}/wrk.out" 2>&1 &
wrk_pid=$!

restarts=0
failed_restart=0
while kill -0 "${wrk_pid}" 2>/dev/null; do
  sleep "${interval}"
  kill -0 "${wrk_pid}" 2>/dev/null || break
  old="$(cat "${work}/pid")"
  kill -USR2 "${old}"
  if ! wait_for_new_pid "${old}"; then
    echo "restart $((restarts + 1)): pid file still names ${old}" >&2
    failed_restart=1
    break
  fi
  restarts=$((restarts + 1))
done
wrk_status=0
wait "${wrk_pid}" || wrk_status=$?
wrk_pid=""

echo
echo "--- wrk ---"
cat "${work}/wrk.out"
echo "--- server handoff log (last 4 lines of ${restarts} restarts) ---"
grep -E 'handoff' "${work}/stderr" | tail -n 4 || true
echo "---"
completed="$(grep -c 'handoff to pid .* complete' "${work}/stderr" || true)"
echo "restarts: ${restarts} (SIGUSR2 -> new pid serving); handoffs logged complete: ${completed}"
# The pause clients saw per handoff (the new process logs it: from the old
# process's freeze to every connection served), and what moved.
grep -o 'clients paused [0-9.]* ms' "${work}/stderr" | awk '{print $3}' | sort -n |
  awk '{v[NR] = $1} END {
    if (NR > 0) printf "paused per handoff: median %.2f ms, max %.2f ms\n",
      v[int((NR + 1) / 2)], v[NR] }'
grep -o 'complete: [0-9]* connections ([0-9]* with unread bytes), [0-9]* inbound bytes, [0-9]* outbound' \
  "${work}/stderr" | awk '{gsub(/\(/, "", $4); c += $2; u += $4; i += $8; o += $11}
    END { if (NR > 0) printf "moved over all handoffs: %d connections (%d with unread bytes), %d unread inbound bytes, %d unsent outbound bytes\n", c, u, i, o }' 
echo "final /stats: $(curl -s "http://127.0.0.1:${port}/stats" 2>/dev/null || echo unavailable)"

status=0
if [[ ${wrk_status} -ne 0 ]]; then
  echo "FAIL: wrk exited with status ${wrk_status}"
  status=1
fi
if [[ ${failed_restart} -ne 0 ]]; then
  echo "FAIL: a restart did not complete"
  status=1
fi
if grep -q 'Socket errors' "${work}/wrk.out"; then
  echo "FAIL: wrk reports socket errors"
  status=1
fi
if grep -q 'Non-2xx or 3xx responses' "${work}/wrk.out"; then
  echo "FAIL: wrk reports non-2xx responses"
  status=1
fi
if ! grep -qE '^ *[1-9][0-9]* requests in' "${work}/wrk.out"; then
  echo "FAIL: no request completed"
  status=1
fi
if grep -q 'rolled back' "${work}/stderr"; then
  echo "FAIL: a handoff rolled back"
  status=1
fi
if [[ ${status} -eq 0 ]]; then
  echo "PASS: ${restarts} restarts under load, no socket errors, every response 2xx"
fi
exit ${status}
