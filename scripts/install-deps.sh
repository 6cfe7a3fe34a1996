#!/usr/bin/env bash
# Installs, from Debian's apt, only the packages Rexec's build, tests and benchmarks need and the
# machine lacks. Safe to run again and again: with nothing missing it does nothing and says so.
# Usage: scripts/install-deps.sh [build|test|all]   (default: all)
set -euo pipefail

what=${1:-all}

build_pkgs=(
  build-essential cmake ninja-build pkg-config git
  clang-14 libfuzzer-14-dev libclang-rt-14-dev   # fuzz targets (libFuzzer needs clang)
  libwebsockets-dev libwebsockets-evlib-uv libuv1-dev libssl-dev zlib1g-dev libcap-dev
  libmsgpack-cxx-dev libfmt-dev libsqlite3-dev libsystemd-dev
  libcurl4-openssl-dev   # the hub talks to Docker's unix socket through libcurl
  libgtest-dev libgmock-dev nlohmann-json3-dev   # JSON: test vectors now, the REST API next
)
test_pkgs=(
  python3 python3-msgpack    # the independent decoder that checks our test vectors
  file procps iproute2 curl systemd   # systemd-analyze verifies our units
  openssl                    # the TLS test makes its own CA and hub certificate
  chromium fonts-dejavu-core # the dashboard's browser tests (driven by npm playwright-core)
)

case "$what" in
  build) pkgs=("${build_pkgs[@]}") ;;
  test)  pkgs=("${test_pkgs[@]}") ;;
  all)   pkgs=("${build_pkgs[@]}" "${test_pkgs[@]}") ;;
  *) echo "usage: $0 [build|test|all]" >&2; exit 2 ;;
esac

missing=()
for p in "${pkgs[@]}"; do
  # "install ok installed" only: a removed-but-configured package does not count.
  if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}" >&2
  echo "install-deps: run as root (or: sudo $0 $what)" >&2
  exit 1
fi

# The dashboard (web/) is bundled with npm at build time. The machine's own Node.js is used when
# there is one (Debian's nodejs conflicts with it); only a machine without any gets Debian's.
if [ "$what" != test ] && ! command -v npm >/dev/null 2>&1; then
  missing+=(nodejs npm)
fi

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#pkgs[@]} packages ($what) already installed"
  exit 0
fi

echo "install-deps: installing ${#missing[@]} missing packages: ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install-deps: done"
