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

# ccache when the machine has it: the presets share most objects between runs (no effect on results).
if command -v ccache >/dev/null 2>&1; then
  export CMAKE_C_COMPILER_LAUNCHER=ccache CMAKE_CXX_COMPILER_LAUNCHER=ccache CCACHE_BASEDIR=$PWD
fi

echo "=== test: make deb: the static agents (amd64, arm64 cross) and a packager's plain Release build"
# scripts/deb.sh builds the static-agent presets, then `cmake -S . -B build/deb
# -DCMAKE_BUILD_TYPE=Release` with no preset (so no -Werror: what a distribution runs) and CPack.
bash scripts/deb.sh
export REXEC_REQUIRE_STATIC_AGENT=1  # the static agents' tests (amd64 and arm64) may not skip here
export REXEC_REQUIRE_DEB=1           # the package tests may not skip here

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
