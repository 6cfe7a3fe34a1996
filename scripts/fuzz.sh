#!/usr/bin/env bash
# Builds the libFuzzer targets (preset "fuzz": clang-14, ASan+UBSan) and runs each for N seconds
# through ctest, seeded from the corpora in the tree (protocol/testdata, protocol/fuzz/seeds,
# hub/fuzz/corpus). Usage: scripts/fuzz.sh [SECONDS]   (default 60)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
cmake --preset fuzz -DREXEC_FUZZ_SECONDS="$seconds" >/dev/null
cmake --build --preset fuzz
echo "fuzz: running each fuzzer for ${seconds}s"
ctest --test-dir build/fuzz -L fuzz --output-on-failure
