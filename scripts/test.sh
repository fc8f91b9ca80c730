#!/usr/bin/env bash
# Configures, builds and runs the test suite.
#
# Usage: scripts/test.sh [--sanitize|--tsan] [-- <extra ctest args>]
#   --sanitize   ASan+UBSan Debug build in build-asan/ (benchmarks disabled)
#   --tsan       ThreadSanitizer RelWithDebInfo build in build-tsan/
#                (benchmarks disabled; suppressions: scripts/tsan.supp)
#   -- ARGS...   forwarded to ctest, e.g. `scripts/test.sh -- -R echo`
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${repo_root}"

sanitize=0
tsan=0
ctest_args=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --sanitize) sanitize=1; shift ;;
    --tsan) tsan=1; shift ;;
    --) shift; ctest_args=("$@"); break ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "test.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done

if [[ ${sanitize} -eq 1 && ${tsan} -eq 1 ]]; then
  echo "test.sh: --sanitize and --tsan cannot be combined" >&2
  exit 2
fi

bash scripts/setup.sh tools

if [[ ${tsan} -eq 1 ]]; then
  build_dir=build-tsan
  cmake_args=(
    -DBATON_TSAN=ON
    -DCMAKE_BUILD_TYPE=RelWithDebInfo
    -DBATON_BUILD_BENCH=OFF
  )
  # Inherited by the server processes the tests start, whose stderr the
  # tests check for "Sanitizer" (tests/support/process.cc).
  export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=${repo_root}/scripts/tsan.supp"
elif [[ ${sanitize} -eq 1 ]]; then
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
