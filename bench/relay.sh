#!/usr/bin/env bash
# Rexec against ttyd (built from ../shared/peers) in one run: throughput, echo latency, memory.
set -euo pipefail
cd "$(dirname "$0")/.."
ttyd=$(bash ../shared/peers/build-ttyd.sh /tmp/ttyd-build | tail -n1)
cmake --preset release >/dev/null && cmake --build --preset release -j "$(nproc)" --target relay-bench rexec-hub
cmake --preset static-agent >/dev/null && cmake --build --preset static-agent -j "$(nproc)"
build/release/bench/relay-bench --ttyd "$ttyd" "$@"
