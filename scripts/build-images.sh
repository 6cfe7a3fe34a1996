#!/usr/bin/env bash
# make images: builds the local images container terminals run (rexec/busybox, rexec/debian:12).
set -euo pipefail
echo "not yet: container images arrive with cloud terminals (issue #6)."
