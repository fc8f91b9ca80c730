#!/usr/bin/env bash
# Builds the libFuzzer fuzzers (fuzz/) under ASan+UBSan with clang and runs
# them (see docs/reliability.md).
#
# Usage: scripts/fuzz.sh [--smoke|--long SECONDS] [FUZZER...]
#   --smoke (default)  each fuzzer until 1,000,000 executions or 60 s, two
#                      at a time; fails on any crash, leak or property
#                      failure (CI runs this)
#   --long SECONDS     each fuzzer for SECONDS, one job per core, in turn
#   FUZZER...          only these (e.g. resp http_parser); default all
#
# Builds in build-fuzz/. Each fuzzer starts from the committed seeds in
# fuzz/corpus/<name>/ and keeps what it finds in build-fuzz/corpus/<name>/
# (not committed); crashing inputs are written to build-fuzz/artifacts/.
# Reproduce one with: build-fuzz/fuzz/<name>_fuzzer <crash file>
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${repo_root}"

mode=smoke
seconds=60
fuzzers=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --smoke) mode=smoke; shift ;;
    --long)
      mode=long
      seconds="${2:?--long needs SECONDS}"
      shift 2
      ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown argument '$1'" >&2; exit 2 ;;
    *) fuzzers+=("$1"); shift ;;
  esac
done
if [[ ${#fuzzers[@]} -eq 0 ]]; then
  fuzzers=(wire_message wire_snapshot wire_listeners http_parser resp address)
fi

bash scripts/setup.sh fuzz

build_dir=build-fuzz
echo "==> configure (${build_dir})"
cmake -S . -B "${build_dir}" -G Ninja \
  -DCMAKE_CXX_COMPILER=clang++-14 \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DBATON_FUZZ=ON -DBUILD_TESTING=OFF -DBATON_BUILD_BENCH=OFF
echo "==> build (${build_dir})"
targets=()
for f in "${fuzzers[@]}"; do targets+=("${f}_fuzzer"); done
cmake --build "${build_dir}" -j"$(nproc)" --target "${targets[@]}"

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
mkdir -p "${build_dir}/artifacts" "${build_dir}/logs"

# run_one NAME LIBFUZZER-ARGS...: fuzzes NAME, output in logs/NAME.log.
run_one() {
  local name="$1"
  shift
  local corpus="${build_dir}/corpus/${name}"
  mkdir -p "${corpus}"
  local rc=0
  "${build_dir}/fuzz/${name}_fuzzer" "$@" \
    -artifact_prefix="${build_dir}/artifacts/${name}-" \
    "${corpus}" "fuzz/corpus/${name}" \
    >"${build_dir}/logs/${name}.log" 2>&1 || rc=$?
  local done_line
  # "Done N runs in S second(s)", or in fork mode the last "#N: cov: ..."
  done_line="$(grep -E '^(Done [0-9]+ runs|#[0-9]+: cov)' \
    "${build_dir}/logs/${name}.log" | tail -1 || true)"
  if [[ ${rc} -eq 0 ]]; then
    echo "fuzz.sh: ${name}: ok: ${done_line}"
  else
    echo "fuzz.sh: ${name}: FAILED (exit ${rc}); last lines of" \
      "${build_dir}/logs/${name}.log:" >&2
    tail -n 40 "${build_dir}/logs/${name}.log" >&2
  fi
  return "${rc}"
}

failed=0
if [[ ${mode} == smoke ]]; then
  echo "==> smoke: ${fuzzers[*]} (1,000,000 runs or 60 s each, 2 at a time)"
  pids=()
  names=()
  for name in "${fuzzers[@]}"; do
    run_one "${name}" -runs=1000000 -max_total_time=60 -timeout=10 \
      -rss_limit_mb=2048 &
    pids+=($!)
    names+=("${name}")
    if [[ ${#pids[@]} -eq 2 ]]; then
      for pid in "${pids[@]}"; do wait "${pid}" || failed=1; done
      pids=()
    fi
  done
  for pid in "${pids[@]}"; do wait "${pid}" || failed=1; done
else
  jobs="$(nproc)"
  echo "==> long: ${fuzzers[*]} (${seconds} s each, ${jobs} jobs)"
  for name in "${fuzzers[@]}"; do
    run_one "${name}" -max_total_time="${seconds}" -timeout=10 \
      -rss_limit_mb=2048 -fork="${jobs}" -ignore_crashes=0 || failed=1
  done
fi

if [[ ${failed} -ne 0 ]]; then
  echo "fuzz.sh: a fuzzer failed; crashing inputs are in" \
    "${build_dir}/artifacts/" >&2
  exit 1
fi
echo "fuzz.sh: all fuzzers passed"
