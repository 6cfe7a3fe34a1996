#!/usr/bin/env bash
# Idle agents on one hub (issue #19): 1k, 5k and 10k simulated agents from one epoll process, on
# loopback; connect rates, hub RSS and CPU per idle agent, bytes per idle link. The markdown goes
# to stdout and is appended to bench/results/agents.md. Flags go to agents-bench
# (e.g. --agents 1000,5000,10000 --idle-seconds 60).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --preset release >/dev/null && cmake --build --preset release -j "$(nproc)" --target agents-bench rexec-hub
mkdir -p bench/results
build/release/bench/agents-bench "$@" | tee -a bench/results/agents.md
