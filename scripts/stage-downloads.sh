#!/usr/bin/env bash
# stage-downloads.sh DIR [BUILD_ROOT]: fills DIR with what the hub's GET /downloads/ serves
# (hub/api/downloads.h) from the static agent builds: rexec-agent-linux-amd64 from build/static-agent,
# rexec-agent-linux-arm64 from build/static-agent-arm64, each beside its checksum in the exact
# `sha256sum` format. The checksum is written here, when the binary is placed, and never
# recomputed by the hub: a binary changed afterwards no longer matches it. An arch that was not
# built is left out (the hub then answers 404 naming it). Use: rexec-hub serve --downloads-dir DIR.
set -euo pipefail
dir=$1
root=${2:-$(cd "$(dirname "$0")/.." && pwd)/build}
mkdir -p "$dir"
staged=0
for pair in amd64:static-agent arm64:static-agent-arm64; do
  arch=${pair%%:*}
  src=$root/${pair#*:}/agent/rexec-agent
  name=rexec-agent-linux-$arch
  if [ ! -f "$src" ]; then
    echo "stage-downloads: no $arch agent at $src (cmake --build --preset ${pair#*:}); not served"
    rm -f "$dir/$name" "$dir/$name.sha256"
    continue
  fi
  # Binary first, checksum last, each by a rename: the pair is never seen half-written.
  install -m 0644 "$src" "$dir/.$name.tmp"
  mv -f "$dir/.$name.tmp" "$dir/$name"
  (cd "$dir" && sha256sum "$name" > ".$name.sha256.tmp" && mv -f ".$name.sha256.tmp" "$name.sha256")
  staged=$((staged + 1))
done
echo "stage-downloads: $staged agent(s) in $dir"
