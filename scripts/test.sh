#!/usr/bin/env bash
# Configures, builds and runs the test suite.
#
# Usage: scripts/test.sh [--sanitize] [-- <extra ctest args>]
#   --sanitize   ASan+UBSan Debug build in build-asan/ (benchmarks disabled)
#   -- ARGS...   forwarded to ctest, e.g. `scripts/test.sh -- -R echo`
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${repo_root}"

sanitize=0
ctest_args=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --sanitize) sanitize=1; shift ;;
    --) shift; ctest_args=("$@"); break ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "test.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done

bash scripts/setup.sh tools

if [[ ${sanitize} -eq 1 ]]; then
  build_dir=build-asan
  cmake_args=(
    -DBATON_SANITIZE=ON
    -DCMAKE_BUILD_TYPE=Debug
    -DBATON_BUILD_BENCH=OFF
  )
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
else
  build_dir=build
  cmake_args=()
fi

echo "==> configure (${build_dir})"
cmake -S . -B "${build_dir}" -G Ninja "${cmake_args[@]}"

echo "==> build (${build_dir})"
cmake --build "${build_dir}" -j"$(nproc)"

echo "==> test (${build_dir}, default backend: io_uring where the kernel allows)"
ctest --test-dir "${build_dir}" --output-on-failure -j2 --timeout 600 "${ctest_args[@]}"

# The same suites again on the epoll backend (every reactor of every test
# and of every server the tests start), as on hosts that refuse io_uring.
# The install test does not depend on the backend and runs once.
echo "==> test (${build_dir}, BATON_BACKEND=epoll)"
BATON_BACKEND=epoll ctest --test-dir "${build_dir}" --output-on-failure -j2 \
  --timeout 600 -LE install "${ctest_args[@]}"
