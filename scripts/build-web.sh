#!/usr/bin/env bash
# build-web.sh OUT: the dashboard and embed widget (web/) bundled into OUT by esbuild. The npm
# packages come from web/package-lock.json (npm ci), fetched again only when the lock file changes.
set -euo pipefail
out=${1:?usage: build-web.sh OUTDIR}
web="$(cd "$(dirname "$0")/../web" && pwd)"
stamp="$web/node_modules/.rexec-lock"
if ! cmp -s "$web/package-lock.json" "$stamp" 2>/dev/null; then
  (cd "$web" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$web/package-lock.json" "$stamp"
fi
rm -rf "$out"
node "$web/build.mjs" --out "$out"
