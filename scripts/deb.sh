#!/usr/bin/env bash
# make deb: the rexec-hub and rexec-agent .deb packages (CPack, cmake/packaging.cmake) in
# build/deb/. The hub and everything else is built the way a packager builds it — a plain
# `cmake -DCMAKE_BUILD_TYPE=Release`, no preset, so no -Werror — with the static agents of the
# static-agent presets inside.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
for preset in static-agent static-agent-arm64; do
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset" -j "$jobs"
done
cmake -S . -B build/deb -DCMAKE_BUILD_TYPE=Release -DREXEC_TESTS=OFF \
  -DREXEC_STATIC_AGENT_AMD64="$PWD/build/static-agent/agent/rexec-agent" \
  -DREXEC_STATIC_AGENT_ARM64="$PWD/build/static-agent-arm64/agent/rexec-agent" >/dev/null
cmake --build build/deb -j "$jobs"
(cd build/deb && cpack -G DEB >/dev/null)
ls -l build/deb/*.deb
