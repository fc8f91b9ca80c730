#!/usr/bin/env bash
# Installs the Debian packages needed to build (and optionally test) baton.
#
# Usage: scripts/setup.sh [build|tools|bench|fuzz]
#   build (default)  compiler, build tools and library dependencies
#   tools            everything from "build" plus runtime tools used by tests
#   fuzz             everything from "build" plus clang 14 and its libFuzzer
#                    and sanitizer runtimes (scripts/fuzz.sh)
#   bench            everything from "tools" plus the peers and tools of
#                    bench/run.sh (Asio, nginx, haproxy, redis, h2load,
#                    perf, gnuplot)
#
# Idempotent: when everything is already installed it only runs dpkg-query.
set -euo pipefail

group="${1:-build}"

build_pkgs=(
  cmake
  g++
  ninja-build
  pkg-config
  clang-format
  liburing-dev
  libboost-context-dev
  libabsl-dev
  libbenchmark-dev
  libgtest-dev
  libgmock-dev
)

tool_pkgs=(
  redis-tools
  wrk
  curl
  netcat-openbsd
  lsof
  iproute2
)

fuzz_pkgs=(
  clang-14
  libclang-rt-14-dev
)

bench_pkgs=(
  libasio-dev
  nginx-light
  nghttp2-client
  haproxy
  redis-server
  linux-perf
  strace
  gnuplot-nox
  python3
)

case "${group}" in
  build) pkgs=("${build_pkgs[@]}") ;;
  tools) pkgs=("${build_pkgs[@]}" "${tool_pkgs[@]}") ;;
  bench) pkgs=("${build_pkgs[@]}" "${tool_pkgs[@]}" "${bench_pkgs[@]}") ;;
  fuzz) pkgs=("${build_pkgs[@]}" "${fuzz_pkgs[@]}") ;;
  -h|--help)
    sed -n '2,12p' "$0"
    exit 0
    ;;
  *)
    echo "setup.sh: unknown group '${group}' (expected 'build', 'tools', 'bench' or 'fuzz')" >&2
    exit 2
    ;;
esac

missing=()
for pkg in "${pkgs[@]}"; do
  status="$(dpkg-query -W -f='${db:Status-Status}' "${pkg}" 2>/dev/null || true)"
  if [[ "${status}" != "installed" ]]; then
    missing+=("${pkg}")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "setup.sh: all '${group}' packages already installed"
  exit 0
fi

echo "setup.sh: installing missing packages: ${missing[*]}"

if [[ "$(id -u)" -eq 0 ]]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo)
else
  echo "setup.sh: not root and sudo is unavailable; please install: ${missing[*]}" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
echo "setup.sh: done"
