#!/usr/bin/env bash
# make images: the local images container terminals run, built without any registry:
#   rexec/busybox:latest  busybox-static and a minimal /etc
#   rexec/debian:12       debootstrap minbase + bash, procps, less, ca-certificates, through the
#                         apt mirror this machine is configured with
#   rexec/debian-curl:12  the same + curl (the installer test's "fresh server")
# Idempotent: an image that exists is kept (REBUILD=1 rebuilds). Shows what it does.
# `build-images.sh busybox` builds only the busybox image (seconds; what make up needs).
set -euo pipefail
only=${1:-all}
cd "$(dirname "$0")/.."
bash scripts/docker-up.sh
for p in busybox-static debootstrap; do
  if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]; then
    echo "images: installing $p"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$p" >/dev/null
  fi
done

have() { [ -z "${REBUILD:-}" ] && docker image inspect "$1" >/dev/null 2>&1; }
work=$(mktemp -d /tmp/rexec-images.XXXXXX)
trap 'rm -rf "$work"' EXIT

if have rexec/busybox:latest; then
  echo "images: rexec/busybox:latest is there"
else
  echo "images: building rexec/busybox:latest"
  root=$work/busybox
  mkdir -p "$root"/{bin,etc,root,tmp,home}
  cp /bin/busybox "$root/bin/busybox"
  for applet in $("$root/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
  done
  echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
  echo 'root:x:0:' >"$root/etc/group"
  printf 'NAME="BusyBox"\nID=busybox\nPRETTY_NAME="Rexec BusyBox (busybox-static)"\n' >"$root/etc/os-release"
  chmod 1777 "$root/tmp"
  tar -C "$root" -c . | docker import -c 'CMD ["/bin/sh"]' -c 'ENV PATH=/bin' -c 'ENV HOME=/root' - rexec/busybox:latest >/dev/null
  echo "images: rexec/busybox:latest built"
fi

# The first Debian mirror apt is configured with (deb822 sources or the classic list).
mirror() {
  local m=""
  if ls /etc/apt/sources.list.d/*.sources >/dev/null 2>&1; then
    m=$(grep -h '^URIs:' /etc/apt/sources.list.d/*.sources | grep -v security | head -n1 | awk '{print $2}')
  fi
  if [ -z "$m" ] && [ -f /etc/apt/sources.list ]; then
    m=$(grep -E '^deb ' /etc/apt/sources.list | grep -v security | head -n1 | awk '{print $2}')
  fi
  echo "${m:-http://deb.debian.org/debian}"
}

if [ "$only" = busybox ]; then
  :
elif have rexec/debian:12; then
  echo "images: rexec/debian:12 is there"
else
  m=$(mirror)
  echo "images: building rexec/debian:12 with debootstrap from $m (a few minutes)"
  root=$work/debian
  debootstrap --variant=minbase --include=bash,procps,less,ca-certificates bookworm "$root" "$m" \
    >"$work/debootstrap.log" 2>&1 || { tail -30 "$work/debootstrap.log" >&2; exit 1; }
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . | docker import -c 'CMD ["/bin/bash", "-l"]' \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' -c 'ENV LANG=C.UTF-8' \
    - rexec/debian:12 >/dev/null
  echo "images: rexec/debian:12 built"
fi
# derive TAG CMD PACKAGES...: TAG is rexec/debian:12 plus PACKAGES, installed with apt through
# the mirror this machine uses, with CMD as its command.
derive() {
  local tag=$1 cmd=$2; shift 2
  if have "$tag"; then
    echo "images: $tag is there"
    return
  fi
  echo "images: building $tag (rexec/debian:12 + $*)"
  local box=rexec-build-${tag//[^a-z0-9]/-}
  docker rm -f "$box" >/dev/null 2>&1 || true
  docker run --name "$box" --network host rexec/debian:12 sh -c \
    "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $* && rm -rf /var/lib/apt/lists/*" \
    >"$work/$box.log" 2>&1 || { tail -30 "$work/$box.log" >&2; exit 1; }
  docker commit -c "CMD $cmd" "$box" "$tag" >/dev/null
  docker rm "$box" >/dev/null
  echo "images: $tag built"
}
if [ "$only" != busybox ]; then
  # The installer tests' fresh server (tests/installers/): Debian 12 with curl, as a server that
  # runs `curl ... | sh` has it.
  derive rexec/debian-curl:12 '["/bin/bash", "-l"]' curl
  # The tests under a real systemd (upgrade_test, install_agent_test): systemd as PID 1, and curl.
  derive rexec/debian-systemd:12 '["/lib/systemd/systemd"]' systemd systemd-sysv curl
fi
docker image ls --format '  {{.Repository}}:{{.Tag}}  {{.Size}}' | grep '^  rexec/' || true
