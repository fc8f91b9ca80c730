#!/usr/bin/env bash
# Load benchmarks: baton against honest peers, written up in
# docs/benchmarks.md (plots in docs/img/).
#
# Usage: bench/run.sh [--quick|--full]
#   --quick (default)  R=3 rounds of ~4 s runs; under 5 minutes
#   --full             R=5 rounds of 10 s runs, connection sweep
#                      1/16/64/256/1024, restarts at 1,000 and 10,000
#                      connections
#
# Builds what it needs (Release, build-bench). Servers are pinned to CPU 1,
# clients to CPU 0. Every comparison runs the servers alternately, round by
# round, and reports the median ratio baton/peer with its min and max.
# Installs what it needs first (scripts/setup.sh bench: asio, gnuplot, perf,
# nginx, redis).
set -uo pipefail

mode=quick
case "${1:-}" in
  ""|--quick) mode=quick ;;
  --full) mode=full ;;
  -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
  *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
esac

root="$(cd "$(dirname "$0")/.." && pwd)"
bash "${root}/scripts/setup.sh" bench || exit 1
build="${root}/build-bench"
out="${build}/bench-results"
rm -rf "${out}"
mkdir -p "${out}" "${root}/docs/img"
results="${out}/results.txt"
: > "${results}"
started=$(date +%s)
load_start=$(cut -d" " -f1-3 /proc/loadavg)

if [[ "${mode}" == quick ]]; then
  rounds=3; secs=3; cpu_secs=2.5; sweep=(64); http_secs=3; redis_n=400000
  restart_runs=("light 1000")
else
  rounds=5; secs=10; cpu_secs=8; sweep=(1 16 64 256 1024); http_secs=10
  redis_n=2000000
  restart_runs=("light 1000" "light 10000" "saturating 1000")
fi
idle_conns=10000
server_cpu=1
client_cpu=0
if (( $(nproc) < 2 )); then server_cpu=0; fi

log() { echo "[run.sh $(( $(date +%s) - started ))s] $*" >&2; }
note() { echo "note $*" >> "${results}"; log "note: $*"; }

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# --- Build ----------------------------------------------------------------
log "building (Release, ${build})"
if [[ ! -f "${build}/CMakeCache.txt" ]]; then
  cmake -S "${root}" -B "${build}" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_TESTING=OFF > "${out}/cmake.log" 2>&1 ||
    { cat "${out}/cmake.log"; exit 1; }
fi
targets=(baton-load epoll_echo baton-echo baton-httpd baton-restart-demo
  fiber_benchmark)
[[ -f /usr/include/asio.hpp ]] && targets+=(asio_epoll asio_uring)
[[ -d "${root}/apps/kv" ]] && targets+=(baton-kv)
cmake --build "${build}" --target "${targets[@]}" > "${out}/build.log" 2>&1 ||
  { tail -30 "${out}/build.log"; exit 1; }

load="${build}/bench/load/baton-load"
declare -A server_cmd=(
  [baton]="${build}/apps/echo/baton-echo --threads 1"
  [baton_fiber]="${build}/apps/echo/baton-echo --threads 1 --fibers"
  [baton_epoll]="env BATON_BACKEND=epoll ${build}/apps/echo/baton-echo --threads 1"
  [epoll]="${build}/bench/peers/epoll_echo"
  [asio_epoll]="${build}/bench/peers/asio_epoll"
  [asio_uring]="${build}/bench/peers/asio_uring"
)
servers=(baton baton_fiber baton_epoll epoll)
for s in asio_epoll asio_uring; do
  if [[ -x "${build}/bench/peers/${s}" ]]; then servers+=("${s}");
  else note "peer ${s} not built (libasio-dev missing)"; fi
done

# --- Measuring tools ------------------------------------------------------
syscall_tool=none
if perf stat -e raw_syscalls:sys_enter true > /dev/null 2>&1; then
  syscall_tool=perf
elif command -v strace > /dev/null; then
  syscall_tool=strace
fi
cpu_tool=proc
if perf stat -e task-clock true > /dev/null 2>&1; then cpu_tool=perf; fi
echo "tools syscalls=${syscall_tool} cpu=${cpu_tool}" >> "${results}"

declare -A pid_of addr_of
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "${p}" 2> /dev/null; done
  wait 2> /dev/null
}
trap cleanup EXIT

# Starts "$2..." pinned to the server CPU as server $1; waits for its
# "listening on" line.
start_server() {
  local name="$1"; shift
  taskset -c "${server_cpu}" "$@" --listen 127.0.0.1:0 \
    > "${out}/${name}.out" 2> "${out}/${name}.err" &
  local pid=$!
  pids+=("${pid}")
  local addr=""
  for _ in $(seq 100); do
    addr=$(grep -ho 'listening on [0-9.]*:[0-9]*' "${out}/${name}.out" \
      "${out}/${name}.err" 2> /dev/null | head -1 | awk '{print $3}')
    [[ -n "${addr}" ]] && break
    sleep 0.05
  done
  if [[ -z "${addr}" ]]; then
    log "server ${name} did not start: $(cat "${out}/${name}.err")"
    return 1
  fi
  pid_of[${name}]=${pid}
  addr_of[${name}]=${addr}
}

stop_server() {
  kill "${pid_of[$1]}" 2> /dev/null
  wait "${pid_of[$1]}" 2> /dev/null
}

# A TCP port below the ephemeral range that nobody listens on.
free_port() {
  local p
  while true; do
    p=$(( 20000 + RANDOM % 10000 ))
    ss -Htln "sport = :${p}" | grep -q . || { echo "${p}"; return; }
  done
}

cpu_ticks() {  # utime+stime of every thread, in clock ticks
  awk '{print $14 + $15}' "/proc/$1/stat"
}

# Runs one pingpong load against server $1 with the rest of the arguments
# passed to baton-load, measuring the server's syscalls (and CPU) during the
# measured part; appends one result line tagged with $tag.
run_load() {
  local name="$1" tag="$2"; shift 2
  local pid="${pid_of[${name}]}"
  local warm=0.5 dur="$1"; shift
  taskset -c "${client_cpu}" "${load}" --address "${addr_of[${name}]}" \
    --duration "${dur}s" --warmup "${warm}s" "$@" \
    > "${out}/load.out" 2> "${out}/load.err" &
  local lpid=$!
  sleep "${warm}"
  local sys_count="" cpu_ms=""
  local t0; t0=$(cpu_ticks "${pid}")
  local measure=$(awk -v d="${dur}" 'BEGIN{print d - 0.2}')
  if [[ "${syscall_tool}" == perf ]]; then
    perf stat -x, -e raw_syscalls:sys_enter -e task-clock -p "${pid}" \
      -o "${out}/perf.txt" -- sleep "${measure}" > /dev/null 2>&1
    sys_count=$(awk -F, '/raw_syscalls:sys_enter/{print $1}' "${out}/perf.txt")
    cpu_ms=$(awk -F, '/task-clock/{print $1}' "${out}/perf.txt")
  elif [[ "${syscall_tool}" == strace ]]; then
    timeout -s INT "${measure}" strace -c -f -p "${pid}" -o "${out}/strace.txt" \
      > /dev/null 2>&1
    sys_count=$(awk '/total/{print $3}' "${out}/strace.txt")
  else
    sleep "${measure}"
  fi
  local t1; t1=$(cpu_ticks "${pid}")
  if [[ -z "${cpu_ms}" ]]; then
    cpu_ms=$(awk -v a="${t0}" -v b="${t1}" -v hz="$(getconf CLK_TCK)" \
      'BEGIN{print (b - a) * 1000 / hz}')
  fi
  wait "${lpid}"
  local line; line=$(grep '^msgs=' "${out}/load.out")
  if [[ -z "${line}" ]]; then
    log "baton-load failed against ${name}: $(tail -2 "${out}/load.err")"
    line="msgs=0 secs=${dur} msgs_per_sec=0 p50_us=0 p99_us=0 p999_us=0 errors=1"
  fi
  echo "${tag} server=${name} ${line} measured_secs=${measure}" \
    "syscalls=${sys_count:-na} cpu_ms=${cpu_ms:-na}" >> "${results}"
  log "${tag} ${name}: ${line} syscalls=${sys_count:-na} cpu_ms=${cpu_ms}"
}

# Where a server's CPU goes under load: `perf record -e cpu-clock` on process
# $2 for $3 seconds while "$4..." (a load client) runs, written as
# prof_$1.txt (top symbols) and prof_$1_dso.txt (kernel vs user split).
profile_under_load() {
  local label="$1" pid="$2" secs="$3"; shift 3
  [[ "${syscall_tool}" == perf && -n "${pid}" ]] || return 0
  "$@" > /dev/null 2>&1 &
  local lpid=$!
  sleep 0.5
  perf record -e cpu-clock -F 1999 -g -p "${pid}" \
    -o "${out}/prof_${label}.data" -- sleep "${secs}" > /dev/null 2>&1
  kill "${lpid}" 2> /dev/null  # timeout passes the signal on to the client
  wait "${lpid}" 2> /dev/null
  perf report -i "${out}/prof_${label}.data" --no-children --sort dso,sym \
    --stdio -g none --percent-limit 1.5 2> /dev/null |
    grep -v '^#' | grep -v '^$' | head -16 > "${out}/prof_${label}.txt"
  perf report -i "${out}/prof_${label}.data" --no-children --sort dso \
    --stdio -g none 2> /dev/null |
    grep -v '^#' | grep -v '^$' | head -8 > "${out}/prof_${label}_dso.txt"
  # Inclusive shares of a few kernel paths (kernel stacks need no frame
  # pointers in the server).
  perf report -i "${out}/prof_${label}.data" --children --sort sym \
    --stdio -g none 2> /dev/null |
    grep -wE 'tcp_sendmsg|tcp_recvmsg|net_rx_action|schedule' \
    > "${out}/prof_${label}_paths.txt"
  echo "profile label=${label}" >> "${results}"
  log "profiled ${label}"
}

# --- Echo -------------------------------------------------------------------
for s in "${servers[@]}"; do
  # shellcheck disable=SC2086
  start_server "${s}" ${server_cmd[${s}]} || exit 1
done

for r in $(seq "${rounds}"); do
  for k in 1 16; do
    for s in "${servers[@]}"; do
      run_load "${s}" "echo conns=64 size=64 inflight=${k} round=${r}" \
        "${secs}" --connections 64 --size 64 --inflight "${k}"
    done
  done
done

if [[ "${mode}" == full ]]; then
  for r in $(seq "${rounds}"); do
    for c in "${sweep[@]}"; do
      for s in "${servers[@]}"; do
        run_load "${s}" "sweep conns=${c} size=64 inflight=1 round=${r}" \
          "${secs}" --connections "${c}" --size 64 --inflight 1
      done
    done
  done
fi

# Server CPU per message at a fixed rate: half the slowest server's median
# throughput at 64 connections x 64 B, 1 in flight.
rate=$(python3 - "${results}" << 'PY'
import re, statistics, sys
per = {}
for line in open(sys.argv[1]):
    if line.startswith("echo conns=64 size=64 inflight=1 "):
        kv = dict(re.findall(r"(\w+)=(\S+)", line))
        per.setdefault(kv["server"], []).append(float(kv["msgs_per_sec"]))
print(int(min(statistics.median(v) for v in per.values()) / 2) if per else 10000)
PY
)
echo "fixed_rate ${rate}" >> "${results}"
log "fixed rate for CPU/msg: ${rate} msgs/s"
for r in $(seq "${rounds}"); do
  for s in "${servers[@]}"; do
    run_load "${s}" "cpu conns=64 size=64 rate=${rate} round=${r}" \
      "${cpu_secs}" --connections 64 --size 64 --inflight 16 --rate "${rate}"
  done
done
for s in baton epoll; do
  profile_under_load "echo16_${s}" "${pid_of[${s}]}" 3 timeout 30 \
    taskset -c "${client_cpu}" "${load}" --address "${addr_of[${s}]}" \
    --duration 4s --warmup 0s --connections 64 --size 64 --inflight 16
done
for s in "${servers[@]}"; do stop_server "${s}"; done

# --- Memory per idle connection ----------------------------------------------
rss_kib() { awk '/^VmRSS:/{print $2}' "/proc/$1/status"; }
for s in baton baton_fiber baton_epoll epoll; do
  # shellcheck disable=SC2086
  start_server "idle_${s}" ${server_cmd[${s}]} || continue
  pid="${pid_of[idle_${s}]}"
  sleep 0.3
  before=$(rss_kib "${pid}")
  taskset -c "${client_cpu}" "${load}" --mode idle \
    --address "${addr_of[idle_${s}]}" --connections "${idle_conns}" \
    --duration 60s --warmup 0s > /dev/null 2> "${out}/idle.err" &
  lpid=$!
  for _ in $(seq 300); do
    grep -q '^connected' "${out}/idle.err" && break
    sleep 0.1
  done
  connected=$(awk '/^connected/{print $2}' "${out}/idle.err")
  sleep 1
  established=$(ss -Htn state established "sport = :${addr_of[idle_${s}]##*:}" |
    wc -l)
  after=$(rss_kib "${pid}")
  kill "${lpid}" 2> /dev/null; wait "${lpid}" 2> /dev/null
  echo "idle server=${s} conns=${connected:-0} established=${established}" \
    "rss_before_kib=${before} rss_after_kib=${after}" >> "${results}"
  log "idle ${s}: ${connected:-0} conns, RSS ${before} -> ${after} KiB"
  stop_server "idle_${s}"
done

# --- HTTP: nginx vs baton-httpd ----------------------------------------------
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
if [[ -x "${nginx_bin}" ]] && command -v wrk > /dev/null; then
  ndir="${out}/nginx"; mkdir -p "${ndir}"
  nport=$(free_port)
  cat > "${ndir}/nginx.conf" << EOF
worker_processes 1;
daemon off;
pid ${ndir}/nginx.pid;
error_log ${ndir}/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:${nport} reuseport;
    location /plaintext {
      default_type text/plain;
      return 200 "Hello, World!";
    }
  }
}
EOF
  taskset -c "${server_cpu}" "${nginx_bin}" -c "${ndir}/nginx.conf" \
    -p "${ndir}" > "${out}/nginx.out" 2>&1 &
  pids+=($!); pid_of[nginx]=$!; addr_of[nginx]="127.0.0.1:${nport}"
  http_servers=(httpd nginx)
  haproxy_bin=$(command -v haproxy || echo /usr/sbin/haproxy)
  if [[ -x "${haproxy_bin}" ]]; then
    hport=$(free_port)
    cat > "${ndir}/haproxy.cfg" << EOF
global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout client 60s
  timeout server 60s
  timeout connect 5s
frontend plaintext
  bind 127.0.0.1:${hport}
  http-request return status 200 content-type text/plain string "Hello, World!"
EOF
    taskset -c "${server_cpu}" "${haproxy_bin}" -db -f "${ndir}/haproxy.cfg" \
      > "${out}/haproxy.out" 2>&1 &
    pids+=($!); pid_of[haproxy]=$!; addr_of[haproxy]="127.0.0.1:${hport}"
    http_servers+=(haproxy)
  else
    note "http: haproxy not installed; skipped"
  fi
  start_server httpd "${build}/apps/httpd/baton-httpd" --threads 1 || true
  sleep 0.5
  # The process doing the work: nginx's master forks one worker.
  worker_of() {
    if [[ "$1" == nginx ]]; then
      pgrep -P "${pid_of[nginx]}" | head -1
    else
      echo "${pid_of[$1]}"
    fi
  }
  for r in $(seq "${rounds}"); do
    for s in "${http_servers[@]}"; do
      wpid=$(worker_of "${s}")
      timeout 60 taskset -c "${client_cpu}" wrk -t1 -c64 -d"${http_secs}s" \
        "http://${addr_of[${s}]}/plaintext" > "${out}/wrk.txt" 2> /dev/null &
      wrk_pid=$!
      sys_count=""; cpu_ms=""; measured=""
      if [[ "${syscall_tool}" == perf && -n "${wpid}" ]]; then
        # The middle of the run: skip the first and last half second.
        measured=$(python3 -c "print(max(0.5, ${http_secs} - 1))")
        sleep 0.5
        perf stat -x, -e raw_syscalls:sys_enter -e task-clock -p "${wpid}" \
          -o "${out}/perf_http.txt" -- sleep "${measured}" > /dev/null 2>&1
        sys_count=$(awk -F, '/raw_syscalls:sys_enter/{print $1}' \
          "${out}/perf_http.txt")
        cpu_ms=$(awk -F, '/task-clock/{print $1}' "${out}/perf_http.txt")
      fi
      wait "${wrk_pid}"
      rps=$(awk '/^Requests\/sec/{print $2}' "${out}/wrk.txt")
      echo "http server=${s} round=${r} rps=${rps:-0}" \
        "syscalls=${sys_count:-} cpu_ms=${cpu_ms:-} measured_secs=${measured:-}" \
        >> "${results}"
      log "http ${s} round ${r}: ${rps:-0} req/s"
      if command -v h2load > /dev/null; then
        # Pipelined HTTP/1.1: 16 requests in flight per connection.
        timeout 60 taskset -c "${client_cpu}" h2load --h1 -t 1 -c 64 -m 16 \
          -D "${http_secs}" "http://${addr_of[${s}]}/plaintext" \
          > "${out}/h2load.txt" 2> /dev/null
        h2rps=$(awk '/^finished in/{gsub(",", "", $4); print $4}' \
          "${out}/h2load.txt")
        h2bad=$(awk '/^requests:/{print $10 + $12 + $14}' "${out}/h2load.txt")
        h2non2xx=$(awk '/^status codes:/{print $5 + $7 + $9}' \
          "${out}/h2load.txt" | tr -d ',')
        echo "h2load server=${s} round=${r} rps=${h2rps:-0}" \
          "failed=${h2bad:-na} non2xx=${h2non2xx:-na}" >> "${results}"
        log "h2load ${s} round ${r}: ${h2rps:-0} req/s"
      fi
    done
  done
  command -v h2load > /dev/null ||
    note "http: h2load (nghttp2-client) not installed; pipelined runs skipped"
  for s in httpd nginx; do
    profile_under_load "http_${s}" "$(worker_of "${s}")" 3 timeout 30 \
      taskset -c "${client_cpu}" wrk -t1 -c64 -d4s \
      "http://${addr_of[${s}]}/plaintext"
  done
  # nginx's master forks the worker; stop both.
  kill "$(cat "${ndir}/nginx.pid" 2> /dev/null)" 2> /dev/null
  stop_server nginx; stop_server httpd
  [[ -n "${pid_of[haproxy]:-}" ]] && stop_server haproxy
else
  note "http: nginx or wrk not installed; skipped"
fi

# --- RESP: redis-server vs baton-kv --------------------------------------------
if command -v redis-server > /dev/null && command -v redis-benchmark \
    > /dev/null && [[ -x "${build}/apps/kv/baton-kv" ]]; then
  rport=$(free_port)
  taskset -c "${server_cpu}" redis-server --port "${rport}" --bind 127.0.0.1 \
    --save "" --appendonly no --daemonize no > "${out}/redis.out" 2>&1 &
  pids+=($!); pid_of[redis]=$!; addr_of[redis]="127.0.0.1:${rport}"
  start_server kv "${build}/apps/kv/baton-kv" --threads 1 || true
  for _ in $(seq 50); do
    grep -q "Ready to accept" "${out}/redis.out" && break
    sleep 0.1
  done
  grep -q "Ready to accept" "${out}/redis.out" ||
    note "redis-server did not start: $(tail -1 "${out}/redis.out")"
  for r in $(seq "${rounds}"); do
    for s in kv redis; do
      port="${addr_of[${s}]##*:}"
      timeout 60 taskset -c "${client_cpu}" redis-benchmark -h 127.0.0.1 -p "${port}" \
        -P 16 -t set,get -n "${redis_n}" -c 50 -q 2> /dev/null |
        tr '\r' '\n' | awk -v s="${s}" -v r="${r}" \
          '/^(SET|GET): [0-9.]+ requests per second/{
             sub(":", "", $1); printf "resp server=%s round=%d op=%s rps=%s\n",
             s, r, $1, $2 }' >> "${results}"
      log "resp ${s} round ${r} done"
    done
  done
  for s in kv redis; do
    profile_under_load "resp_${s}" "${pid_of[${s}]}" 3 timeout 30 \
      taskset -c "${client_cpu}" redis-benchmark -h 127.0.0.1 \
      -p "${addr_of[${s}]##*:}" -P 16 -t get -n 100000000 -c 50 -q
  done
  stop_server redis; stop_server kv
else
  note "resp: redis-server, redis-benchmark or baton-kv missing; skipped"
fi

# --- Restart ---------------------------------------------------------------------
# The restart demo (2 server threads, sharing both CPUs with its client).
# "light": every connection writes one chunk of up to 512 B per second and
# waits for its echo, so a client's longest wait is the handoff's own pause;
# "saturating": the demo's default, every connection streaming as fast as its
# 64 KiB window allows (the pause then includes the backlog of a loaded
# server).
for run in "${restart_runs[@]}"; do
  read -r kind conns <<< "${run}"
  if [[ "${kind}" == light ]]; then
    demo_args=(--max_write 512 --write_interval 1s --interval 1s --restarts 5)
  else
    demo_args=(--restarts 5 --interval 500ms)
  fi
  log "restart demo: ${conns} connections, ${kind} load"
  timeout 300 "${build}/apps/restart_demo/baton-restart-demo" \
    --connections "${conns}" "${demo_args[@]}" \
    > "${out}/restart_${kind}_${conns}.txt" 2> "${out}/restart.err"
  echo "restart rc=$? kind=${kind} conns=${conns}" \
    "args=$(IFS=,; echo "${demo_args[*]}")" >> "${results}"
done

# --- Fiber micro-benchmarks (Google Benchmark) -----------------------------------
log "fiber micro-benchmarks"
taskset -c "${server_cpu}" "${build}/bench/fiber_benchmark" \
  --benchmark_repetitions=3 --benchmark_report_aggregates_only=true \
  --benchmark_format=json > "${out}/fiber_benchmark.json" \
  2> "${out}/fiber_benchmark.err" || note "fiber_benchmark failed"

# --- Report ----------------------------------------------------------------------
elapsed=$(( $(date +%s) - started ))
# BATON_BENCH_DOC / BATON_BENCH_IMG: write the report elsewhere (a quick
# run beside a full one kept in docs/).
doc="${BATON_BENCH_DOC:-${root}/docs/benchmarks.md}"
img="${BATON_BENCH_IMG:-${root}/docs/img}"
mkdir -p "${img}"
python3 "${root}/bench/report.py" --results "${results}" --out "${out}" \
  --doc "${doc}" --img "${img}" \
  --mode "${mode}" --command "bash bench/run.sh --${mode}" \
  --elapsed "${elapsed}" --load-start "${load_start:-}" ||
  { log "report failed"; exit 1; }
log "wrote ${doc} in ${elapsed}s"
