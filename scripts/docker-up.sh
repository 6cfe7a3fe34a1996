#!/usr/bin/env bash
# Makes sure a Docker daemon answers: installs docker.io when dockerd is missing, starts dockerd
# when it is not running (no systemd needed), and waits for it. Says what it does.
set -euo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin  # dockerd lives in sbin
if ! command -v dockerd >/dev/null 2>&1; then
  echo "docker-up: installing docker.io"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io >/dev/null
fi
if docker info >/dev/null 2>&1; then
  exit 0
fi
echo "docker-up: starting dockerd (log: /var/log/rexec-dockerd.log)"
# Its own session: whoever ran this script (a test, make) may go away, dockerd stays.
setsid -f dockerd >/var/log/rexec-dockerd.log 2>&1 </dev/null
for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    echo "docker-up: dockerd is up"
    exit 0
  fi
  sleep 0.5
done
echo "docker-up: dockerd did not come up; see /var/log/rexec-dockerd.log" >&2
tail -20 /var/log/rexec-dockerd.log >&2 || true
exit 1
