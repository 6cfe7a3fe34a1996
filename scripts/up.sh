#!/usr/bin/env bash
# make up: build, then start a hub (embedded SQLite store in ./data) and a local agent, and print
# where things are. Safe to run again: running processes are kept. Stop with `make down`.
# Environment: REXEC_LISTEN (default 127.0.0.1:8080).
set -euo pipefail
cd "$(dirname "$0")/.."
listen=${REXEC_LISTEN:-127.0.0.1:8080}
data=$PWD/data
mkdir -p "$data"
chmod 700 "$data"

cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)" --target rexec-hub rexec-agent rexec
# The static agent is what container terminals run (mounted read-only into each container).
cmake --preset static-agent >/dev/null
cmake --build --preset static-agent -j "$(nproc)"
# Container terminals: a running dockerd (started here when Docker is installed but not running)
# and the busybox image, built locally in seconds; `make images` adds rexec/debian:12.
containers="ready: rexec/busybox:latest (make images adds rexec/debian:12)"
if ! bash scripts/build-images.sh busybox; then
  containers="unavailable: Docker did not start (see /var/log/rexec-dockerd.log); terminals on agents work"
fi
# What "Add machine" hands out: the static agents (amd64; arm64 too once its preset was built)
# with their checksums, served by the hub at /downloads/ beside /install-agent.sh.
bash scripts/stage-downloads.sh "$data/downloads" >/dev/null
hub=build/release/hub/rexec-hub
agent=build/release/agent/rexec-agent
static_agent=$PWD/build/static-agent/agent/rexec-agent
# The admin token as a curl header read from a pipe: never on a command line.
auth() { printf 'Authorization: Bearer %s\n' "$(cat "$data/admin.token")"; }

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

if alive "$data/hub.pid"; then
  echo "hub: already running (pid $(cat "$data/hub.pid"))"
else
  : > "$data/hub.log"
  nohup "$hub" serve --listen "$listen" --data-dir "$data" --agent-binary "$static_agent" \
    --downloads-dir "$data/downloads" >>"$data/hub.log" 2>&1 &
  echo $! > "$data/hub.pid"
  for _ in $(seq 1 100); do grep -q 'event=hub.listening' "$data/hub.log" && break; sleep 0.1; done
  if ! grep -q 'event=hub.listening' "$data/hub.log"; then
    echo "up: the hub did not start; its log:" >&2
    cat "$data/hub.log" >&2
    exit 1
  fi
fi
url="http://$listen"

if alive "$data/agent.pid"; then
  echo "agent: already running (pid $(cat "$data/agent.pid"))"
else
  enroll=()
  if [ ! -f "$data/agent.credential" ]; then
    # A one-time enrollment token, handed to the agent on stdin (never on its command line).
    token=$(curl -fsS -X POST -H @<(auth) "$url/api/v1/agent-enrollments" -d '{}' |
      sed -n 's/.*"token":"\([^"]*\)".*/\1/p')
    enroll=(--enroll-token-file -)
  fi
  nohup "$agent" --hub "ws://$listen" --credential-file "$data/agent.credential" --name "$(hostname)" "${enroll[@]}" \
    >>"$data/agent.log" 2>&1 <<<"${token:-}" &
  echo $! > "$data/agent.pid"
fi

for _ in $(seq 1 50); do
  curl -fsS -H @<(auth) "$url/api/v1/agents" | grep -q '"online":true' && break
  sleep 0.1
done

cat <<EOT

Rexec is up.
  dashboard:    $url/   (sign in with the admin token)
  admin token:  data/admin.token   (mode 0600; API: Authorization: Bearer \$(cat data/admin.token))
  hub:          API docs/api.md, log data/hub.log
  local agent:  $(hostname), log data/agent.log
  add a server: "Add machine" on the dashboard gives the one line (README: Put an agent on a server)
  containers:   $containers; "New terminal" on the dashboard
  cli:          build/release/cli/rexec login $url < data/admin.token   (then: rexec ls, rexec exec --all -- uname -a)
  stop:         make down
EOT
