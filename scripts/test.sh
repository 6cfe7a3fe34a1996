#!/usr/bin/env bash
# The whole test suite, as CI runs it (make test): build the static agent, start dockerd and build
# the container images when needed, build and run every test under the debug preset, run each fuzzer for 60 s, then build and run the whole suite again
# under ASan+UBSan.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
summary=()
total_passed=0

run_suite() {  # run_suite PRESET [ctest args...]
  local preset=$1; shift
  echo "=== test: $preset: configure + build"
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset" -j "$jobs"
  echo "=== test: $preset: ctest"
  local log=build/$preset/ctest.log
  ctest --test-dir "build/$preset" --output-on-failure -j "$jobs" "$@" | tee "$log"
  local line passed
  line=$(grep -E 'tests passed, [0-9]+ tests failed out of [0-9]+' "$log" | tail -n1)
  passed=$(sed -E 's/.*out of ([0-9]+).*/\1/' <<<"$line")
  summary+=("$preset: $line")
  total_passed=$((total_passed + passed))
}

echo "=== test: static-agent: the shipped, fully static rexec-agent"
cmake --preset static-agent >/dev/null
cmake --build --preset static-agent -j "$jobs"
echo "=== test: static-agent-arm64: the same agent cross-built for aarch64 (run under qemu by the tests)"
cmake --preset static-agent-arm64 >/dev/null
cmake --build --preset static-agent-arm64 -j "$jobs"
export REXEC_REQUIRE_STATIC_AGENT=1  # the static agents' tests (amd64 and arm64) may not skip here

echo "=== test: docker: a running daemon and the test images (make images)"
bash scripts/build-images.sh
export REXEC_REQUIRE_DOCKER=1  # container tests may not skip here

run_suite debug
echo "=== test: fuzz: each fuzzer 60 s"
cmake --preset fuzz -DREXEC_FUZZ_SECONDS=60 >/dev/null
cmake --build --preset fuzz -j "$jobs"
ctest --test-dir build/fuzz -L fuzz --output-on-failure -j "$jobs" | tee build/fuzz/ctest.log
fuzz_line=$(grep -E 'tests passed' build/fuzz/ctest.log | tail -n1)
summary+=("fuzz: $fuzz_line")
total_passed=$((total_passed + $(sed -E 's/.*out of ([0-9]+).*/\1/' <<<"$fuzz_line")))
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
run_suite asan

echo
echo "=== test summary"
printf '  %s\n' "${summary[@]}"
# ctest exits non-zero on any failure (set -e stops us before here), so reaching this line means
# every test of every preset passed.
echo "all: $total_passed passed, 0 failed"
