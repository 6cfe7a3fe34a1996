#!/usr/bin/env bash
# make down: stops what `make up` started (the data in ./data stays).
set -uo pipefail
cd "$(dirname "$0")/.."
for p in agent hub; do
  f=data/$p.pid
  if [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null; then
    kill "$(cat "$f")" && echo "stopped $p (pid $(cat "$f"))"
  fi
  rm -f "$f"
done
