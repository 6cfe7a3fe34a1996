#!/usr/bin/env bash
# systemd/*.service must pass systemd-analyze verify. The units name the installed binaries
# (/usr/local/bin); the test points copies of them at the freshly built ones instead.
set -euo pipefail
units=$1
build=$2
build=$(cd "$build" && pwd)  # systemd wants absolute paths
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for unit in "$units"/*.service; do
  sed -e "s|/usr/local/bin/rexec-hub|$build/hub/rexec-hub|" \
      -e "s|/usr/local/bin/rexec-agent|$build/agent/rexec-agent|" \
      -e "s|^EnvironmentFile=.*|EnvironmentFile=$tmp/agent.env|" "$unit" > "$tmp/$(basename "$unit")"
done
echo "REXEC_HUB=ws://127.0.0.1:8080" > "$tmp/agent.env"
out=$(SYSTEMD_LOG_LEVEL=warning systemd-analyze verify "$tmp"/*.service 2>&1 || true)
# In a container without a running systemd, verify may mention the missing manager; any line
# about our units is a real finding.
if grep -E "rexec-(hub|agent)\.service" <<<"$out"; then
  echo "verify_units: systemd-analyze found problems above"
  exit 1
fi
echo "verify_units: $(ls "$tmp"/*.service | wc -l) units verified"
grep -q "Type=notify" "$units/rexec-hub.service"
grep -q "RestartPreventExitStatus=2 3" "$units/rexec-agent.service"
! grep -Eq "rx[eak]_" "$units"/*.service  # no token in a unit, ever
