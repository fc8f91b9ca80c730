#!/usr/bin/env bash
# Installs a baton build tree into a fresh temporary prefix and uses it the
# way a project outside baton's tree would:
#   1. checks the install: every framework/baton/**/*.h plus the generated
#      baton/version.h, and no path into the source or build tree;
#   2. builds tests/install/consumer/ with find_package(baton 0.1) and
#      -DCMAKE_PREFIX_PATH=<prefix> (the target baton::app);
#   3. builds the same main.cc with plain g++ and
#      `pkg-config --cflags --libs baton` (PKG_CONFIG_PATH=<prefix>/...);
#   4. runs each binary: --listen 127.0.0.1:0, reads "listening on HOST:PORT",
#      sends bytes and checks they come back exactly, SIGTERM, exit status 0.
# Nothing installed on the machine under baton's name is used: package
# registries are off, and the baton headers a compile reads must all come
# from the temporary prefix.
#
# Usage: consumer_test.sh --build-dir DIR [--cmake CMAKE] [--cxx CXX]
#          [--generator GEN] [--cxxflags "FLAGS"] [--keep]
#   --build-dir  the configured and built baton tree to install
#   --cxxflags   extra compile and link flags for both consumers (the ASan
#                build passes its -fsanitize flags: a sanitized libbaton.a
#                needs them)
#   --keep       keep the temporary directory (its path is printed)
# Run by ctest as the test "install_consumer" (label "install").
set -euo pipefail
export LC_ALL=C

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source_dir="$(cd "${here}/../.." && pwd)"

build_dir=""
cmake_bin="cmake"
cxx="c++"
generator=""
cxxflags=""
keep=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-dir) build_dir="$2"; shift 2 ;;
    --cmake) cmake_bin="$2"; shift 2 ;;
    --cxx) cxx="$2"; shift 2 ;;
    --generator) generator="$2"; shift 2 ;;
    --cxxflags) cxxflags="$2"; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "consumer_test.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
if [[ -z "${build_dir}" || ! -f "${build_dir}/CMakeCache.txt" ]]; then
  echo "consumer_test.sh: --build-dir must name a configured baton build" >&2
  exit 2
fi
build_dir="$(cd "${build_dir}" && pwd)"
read -r -a extra_flags <<<"${cxxflags}"

work="$(mktemp -d "${TMPDIR:-/tmp}/baton-consumer-test.XXXXXX")"
server_pid=""
cleanup() {
  if [[ -n "${server_pid}" ]]; then
    kill -KILL "${server_pid}" 2>/dev/null || true
    wait "${server_pid}" 2>/dev/null || true
  fi
  if [[ ${keep} -eq 1 ]]; then
    echo "consumer_test.sh: kept ${work}"
  else
    rm -rf "${work}"
  fi
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

step() { echo "==> $*"; }

prefix="${work}/prefix"

step "install ${build_dir} into ${prefix}"
"${cmake_bin}" --install "${build_dir}" --prefix "${prefix}" \
  >"${work}/install.log" 2>&1 || {
  cat "${work}/install.log" >&2
  fail "cmake --install failed"
}

# --- 1. what the install holds ------------------------------------------
config="$(find "${prefix}" -path '*/cmake/baton/batonConfig.cmake' | head -n1)"
[[ -n "${config}" ]] || fail "no batonConfig.cmake under ${prefix}"
[[ -f "$(dirname "${config}")/batonConfigVersion.cmake" ]] ||
  fail "no batonConfigVersion.cmake beside ${config}"
pc="$(find "${prefix}" -path '*/pkgconfig/baton.pc' | head -n1)"
[[ -n "${pc}" ]] || fail "no pkgconfig/baton.pc under ${prefix}"

missing=0
while IFS= read -r header; do
  if [[ ! -f "${prefix}/include/baton/${header}" ]]; then
    echo "not installed: include/baton/${header}" >&2
    missing=1
  fi
done < <(cd "${source_dir}/framework/baton" && find . -name '*.h' |
           sed 's|^\./||' | sort; echo version.h)
[[ ${missing} -eq 0 ]] || fail "public headers missing from the install"

if grep -rlF -e "${source_dir}" -e "${build_dir}" \
     "${prefix}/include" "$(dirname "${config}")" "${pc}"; then
  fail "installed files above name the source or build tree"
fi
echo "headers, batonConfig.cmake, batonConfigVersion.cmake, baton.pc: ok"

# Both compiles run with -H (g++ lists every header it reads on stderr): no
# baton header may come from anywhere but the prefix (not the source tree,
# not /usr/local/include).
check_headers_from_prefix() {
  local log="$1" headers stray
  headers="$(sed -n 's/^\.\+ //p' "${log}")"
  stray="$(grep '/baton/.*\.h$' <<<"${headers}" |
           grep -v "^${prefix}/include/baton/" || true)"
  [[ -z "${stray}" ]] ||
    fail "baton headers read from outside the prefix: ${stray}"
  grep -qxF "${prefix}/include/baton/app/server_main.h" <<<"${headers}" ||
    fail "${log}: the compile did not read" \
      "${prefix}/include/baton/app/server_main.h"
}

# --- 2. find_package(baton) ----------------------------------------------
step "build tests/install/consumer with find_package(baton)"
cmake_args=(
  -S "${here}/consumer" -B "${work}/consumer-cmake"
  -DCMAKE_PREFIX_PATH="${prefix}"
  -DCMAKE_CXX_COMPILER="${cxx}"
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
  -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF
  -DCMAKE_CXX_FLAGS="-H ${cxxflags}"
  -DCMAKE_EXE_LINKER_FLAGS="${cxxflags}"
)
if [[ -n "${generator}" ]]; then
  cmake_args+=(-G "${generator}")
fi
# A clean environment: only the temporary prefix may provide baton.
env -u CMAKE_PREFIX_PATH -u baton_DIR -u PKG_CONFIG_PATH \
  "${cmake_bin}" "${cmake_args[@]}" >"${work}/consumer-configure.log" 2>&1 || {
  cat "${work}/consumer-configure.log" >&2
  fail "configuring the find_package consumer failed"
}
found_dir="$(sed -n 's/^baton_DIR:PATH=//p' \
  "${work}/consumer-cmake/CMakeCache.txt")"
[[ "${found_dir}" == "$(dirname "${config}")" ]] ||
  fail "find_package(baton) found '${found_dir}', not $(dirname "${config}")"
"${cmake_bin}" --build "${work}/consumer-cmake" \
  >"${work}/consumer-build.log" 2>&1 || {
  cat "${work}/consumer-build.log" >&2
  fail "building the find_package consumer failed"
}
cmake_bin_out="${work}/consumer-cmake/consumer_echo"
check_headers_from_prefix "${work}/consumer-build.log"
echo "built ${cmake_bin_out} (baton from ${found_dir})"

# --- 3. pkg-config ---------------------------------------------------------
step "build the same main.cc with g++ and pkg-config --cflags --libs baton"
export PKG_CONFIG_PATH
PKG_CONFIG_PATH="$(dirname "${pc}")"
pc_prefix="$(pkg-config --variable=prefix baton)" ||
  fail "pkg-config cannot read baton.pc"
[[ "${pc_prefix}" == "${prefix}" ]] ||
  fail "pkg-config found baton with prefix '${pc_prefix}', not ${prefix}"
read -r -a pc_flags < <(pkg-config --cflags --libs baton) ||
  fail "pkg-config --cflags --libs baton failed"
pc_libdir="$(pkg-config --variable=libdir baton)"
pc_bin_out="${work}/consumer-pkgconfig/consumer_echo"
mkdir -p "$(dirname "${pc_bin_out}")"
# shellcheck disable=SC2054 # the commas are in -Wl,-rpath,DIR
pc_cmd=("${cxx}" -std=c++20 -Wall -Wextra "${extra_flags[@]}"
  -H
  "${here}/consumer/main.cc" -o "${pc_bin_out}"
  "${pc_flags[@]}" -Wl,-rpath,"${pc_libdir}")
echo "${pc_cmd[*]}"
"${pc_cmd[@]}" >"${work}/consumer-pkgconfig.log" 2>&1 || {
  cat "${work}/consumer-pkgconfig.log" >&2
  fail "building with pkg-config failed"
}
check_headers_from_prefix "${work}/consumer-pkgconfig.log"
echo "built ${pc_bin_out}"

# --- 4. run each binary ----------------------------------------------------
# Waits (at most $2 s) for the line "listening on HOST:PORT" in file $1 from
# the server ${server_pid}; prints HOST:PORT.
wait_listening() {
  local out="$1" deadline=$((SECONDS + $2)) line state
  while ((SECONDS < deadline)); do
    line="$(grep -m1 '^listening on ' "${out}" || true)"
    if [[ -n "${line}" ]]; then
      echo "${line#listening on }"
      return 0
    fi
    # A zombie (state Z) or a vanished process will never print it.
    state="Z"
    if [[ -r "/proc/${server_pid}/stat" ]]; then
      read -r _ _ state _ <"/proc/${server_pid}/stat" || state="Z"
    fi
    [[ "${state}" != "Z" ]] || return 1
    sleep 0.05
  done
  return 1
}

run_echo_check() {
  local name="$1" bin="$2" out="${work}/${1}.out" address host port
  step "run ${name}: ${bin} --listen 127.0.0.1:0"
  # timeout(1) bounds the server's whole life, forwards our SIGTERM to it
  # and exits with its status; -k: SIGKILL if it ignores the SIGTERM.
  # --foreground: signal only the server, not timeout's process group (else
  # timeout reports the SIGTERM it sent itself: status 143).
  timeout --foreground -k 10 120 "${bin}" --listen 127.0.0.1:0 --threads 2 \
    >"${out}" 2>&1 &
  server_pid=$!
  if ! address="$(wait_listening "${out}" 60)"; then
    cat "${out}" >&2
    fail "${name}: no 'listening on' line within 60 s"
  fi
  host="${address%:*}"
  port="${address##*:}"
  [[ "${host}" == "127.0.0.1" && "${port}" =~ ^[0-9]+$ && ${port} -gt 0 ]] ||
    fail "${name}: bad listening address '${address}'"
  echo "${name} listening on ${host}:${port}"

  # Two connections, each sending ~48 KiB of text (lines of base64) and
  # reading back exactly as many bytes, 20 s at most.
  local i payload reply
  for i in 1 2; do
    payload="$(head -c 36000 /dev/urandom | base64)"$'\n'"end of ${name} ${i}"
    exec 3<>"/dev/tcp/${host}/${port}" ||
      fail "${name}: cannot connect to ${host}:${port}"
    printf '%s' "${payload}" >&3
    reply=""
    IFS= read -r -d '' -N "${#payload}" -t 20 -u 3 reply || true
    exec 3>&-
    if [[ "${reply}" != "${payload}" ]]; then
      cat "${out}" >&2
      fail "${name}: connection ${i} sent ${#payload} bytes, got back" \
        "${#reply} (or different ones)"
    fi
    echo "${name}: connection ${i}: ${#payload} bytes echoed back exactly"
  done

  kill -TERM "${server_pid}"
  local status=0
  wait "${server_pid}" || status=$?
  server_pid=""
  if [[ ${status} -ne 0 ]]; then
    cat "${out}" >&2
    fail "${name}: exit status ${status} after SIGTERM (expected 0)"
  fi
  echo "${name}: SIGTERM -> exit status 0"
}

run_echo_check find_package "${cmake_bin_out}"
run_echo_check pkg-config "${pc_bin_out}"

echo "PASS: installed baton works through find_package(baton) and pkg-config"
