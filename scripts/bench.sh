#!/usr/bin/env bash
# make bench: benchmarks under bench/, each side by side in one run with a peer (ttyd, built from
# ../shared/peers) or a baseline, reported as ratios. Not tests: nothing here asserts timings.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d bench ] || [ -z "$(ls bench/*.sh 2>/dev/null)" ]; then
  echo "not yet: no benchmarks; the relay benchmarks arrive with rexec-hub and rexec-agent (issue #4)."
  exit 0
fi
for b in bench/*.sh; do echo "=== $b"; "$b"; done
