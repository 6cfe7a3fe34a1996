#!/usr/bin/env bash
# Container card-to-prompt against a bare `docker run --rm IMAGE true`, in one run (needs Docker
# and the images: it starts dockerd and runs make images when needed).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build-images.sh >/dev/null
cmake --preset release >/dev/null && cmake --build --preset release -j "$(nproc)" --target card-bench rexec-hub
cmake --preset static-agent >/dev/null && cmake --build --preset static-agent -j "$(nproc)"
for image in rexec/busybox:latest rexec/debian:12; do
  build/release/bench/card-bench --image "$image" "$@"
done
