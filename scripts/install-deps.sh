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
  libcli11-dev           # the rexec CLI parses its commands and flags with CLI11
  libvterm-dev           # the hub replays recordings through a terminal emulator for the player's segments
  libgtest-dev libgmock-dev nlohmann-json3-dev   # JSON: test vectors now, the REST API next
  dpkg-dev                   # make deb: dpkg-shlibdeps finds the hub package's dependencies
  # The arm64 static agent (preset static-agent-arm64): Debian's cross compiler and the arm64
  # static libraries it links (multiarch: dpkg --add-architecture arm64, done below when needed).
  g++-aarch64-linux-gnu libssl-dev:arm64 zlib1g-dev:arm64 libcap-dev:arm64
)
test_pkgs=(
  python3 python3-msgpack    # the independent decoder that checks our test vectors
  file procps iproute2 curl systemd   # systemd-analyze verifies our units
  openssl                    # the TLS test makes its own CA and hub certificate
  chromium fonts-dejavu-core # the dashboard's browser tests (driven by npm playwright-core)
  qemu-user-static           # runs the arm64 agent in the test suite
  shellcheck                 # installers/*.sh stay POSIX and clean (tests/installers)
  asciinema                  # recordings must play in the real asciinema (asciinema cat)
)

case "$what" in
  build) pkgs=("${build_pkgs[@]}") ;;
  test)  pkgs=("${test_pkgs[@]}") ;;
  all)   pkgs=("${build_pkgs[@]}" "${test_pkgs[@]}") ;;
  *) echo "usage: $0 [build|test|all]" >&2; exit 2 ;;
esac

missing=()
native=$(dpkg --print-architecture)
for p in "${pkgs[@]}"; do
  # "install ok installed" only: a removed-but-configured package does not count. A name without
  # ":arch" means the machine's own architecture (or "all"): with arm64 added, dpkg-query lists
  # both instances of a multiarch package, and an arm64 one alone does not count.
  want="($native|all)"
  case "$p" in *:*) want=${p#*:} ;; esac
  if ! dpkg-query -W -f='${Architecture} ${Status}\n' "$p" 2>/dev/null | grep -Eqx "$want install ok installed"; then
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

# Two arm64 files dpkg cannot install beside their amd64 twins (the packages are not co-installable):
# libwebsockets.a of libwebsockets-dev:arm64 (its headers differ from the amd64 ones only in one
# unused path, so /usr/include serves both) for the cross build, and busybox of busybox-static:arm64,
# the aarch64 `uname` of the arm64 agent's test. Unpacked from the Debian packages into
# /usr/local/lib/aarch64-linux-gnu, where CMake's cross build finds the library by itself.
arm64_dir=/usr/local/lib/aarch64-linux-gnu
arm64_files=()  # "package:path-in-package"
case "$what" in build|all) [ -e "$arm64_dir/libwebsockets.a" ] || arm64_files+=("libwebsockets-dev:usr/lib/aarch64-linux-gnu/libwebsockets.a") ;; esac
case "$what" in test|all) [ -e "$arm64_dir/busybox" ] || arm64_files+=("busybox-static:bin/busybox") ;; esac

if [ ${#missing[@]} -eq 0 ] && [ ${#arm64_files[@]} -eq 0 ]; then
  echo "install-deps: all ${#pkgs[@]} packages ($what) already installed"
  exit 0
fi
if [ ${#arm64_files[@]} -gt 0 ] && [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing $arm64_dir files; run as root (or: sudo $0 $what)" >&2
  exit 1
fi

needs_arm64=0
for p in "${missing[@]}" "${arm64_files[@]}"; do
  case "$p" in *:arm64|libwebsockets-dev:*|busybox-static:*) needs_arm64=1 ;; esac
done
if [ $needs_arm64 -eq 1 ] && ! dpkg --print-foreign-architectures | grep -qx arm64; then
  echo "install-deps: adding the arm64 architecture (for the arm64 agent's static libraries)"
  dpkg --add-architecture arm64
fi

apt-get update -qq
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${#missing[@]} missing packages: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if [ ${#arm64_files[@]} -gt 0 ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  if id _apt >/dev/null 2>&1; then chown _apt "$tmp"; fi  # apt downloads as the _apt user
  mkdir -p "$arm64_dir"
  for entry in "${arm64_files[@]}"; do
    pkg=${entry%%:*} path=${entry#*:}
    echo "install-deps: unpacking $path of $pkg:arm64 into $arm64_dir"
    (cd "$tmp" && apt-get download -qq "$pkg:arm64")
    dpkg-deb -x "$tmp/${pkg}_"*_arm64.deb "$tmp/$pkg"
    mode=0644
    [ -x "$tmp/$pkg/$path" ] && mode=0755
    install -m "$mode" "$tmp/$pkg/$path" "$arm64_dir/$(basename "$path")"
  done
fi
echo "install-deps: done"
