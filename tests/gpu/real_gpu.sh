#!/bin/sh
# GPU sharing (issue 15) against a real NVIDIA GPU: not part of `make test`, for a machine that has one.
# Starts this build's rexec-hub and rexec-agent (the agent with the machine's real nvidia-smi),
# grants a second user `use`, leases GPU 0 through the API, checks the leased environment in an
# exec, and, when PyTorch with CUDA (or REXEC_CUDA_CMD) is there, runs a real CUDA process and
# checks the agent reports it on GPU 0 with the right holder and violation flag.
#
#   tests/gpu/real_gpu.sh [BUILD_DIR]        (default: build/debug)
#   REXEC_CUDA_CMD='...'  a shell command that keeps a CUDA context on the GPU it is given for
#                         at least 30 s (used instead of PyTorch)
# Exit: 0 all checks passed, 1 a check failed, 77 skipped (no nvidia-smi or no GPU).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-$root/build/debug}
hub_bin=$build/hub/rexec-hub
agent_bin=$build/agent/rexec-agent

skip() { echo "real_gpu.sh: SKIP: $*" >&2; exit 77; }
fail() { echo "real_gpu.sh: FAIL: $*" >&2; exit 1; }
note() { echo "real_gpu.sh: $*"; }

smi=$(command -v nvidia-smi 2>/dev/null || true)
[ -n "$smi" ] || skip "no nvidia-smi on PATH: this machine has no NVIDIA driver"
"$smi" -L >/dev/null 2>&1 || skip "nvidia-smi -L fails: no usable NVIDIA GPU here"
for tool in curl python3; do
  command -v "$tool" >/dev/null 2>&1 || fail "$tool is needed"
done
for bin in "$hub_bin" "$agent_bin"; do
  [ -x "$bin" ] || fail "no $bin (build first, or pass the build dir)"
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rexec-real-gpu.XXXXXX")
hub_pid=''
agent_pid=''
cuda_pid=''
exec_pid=''
cleanup() {
  for pid in $cuda_pid $exec_pid $agent_pid $hub_pid; do
    kill "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# JSON from stdin: `py EXPR` prints EXPR evaluated with d = the parsed document ('' for None).
py() {
  python3 -c 'import json, sys
d = json.load(sys.stdin)
v = eval(sys.argv[1])
print("" if v is None else (json.dumps(v) if isinstance(v, (dict, list, bool)) else v))' "$1"
}

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base=http://127.0.0.1:$port

# api TOKEN METHOD PATH [BODY]: the body goes to $tmp/body, the status is printed.
api() {
  if [ $# -ge 4 ]; then
    curl -sS -o "$tmp/body" -w '%{http_code}' -X "$2" -H "Authorization: Bearer $1" \
      -H 'Content-Type: application/json' --data "$4" "$base$3"
  else
    curl -sS -o "$tmp/body" -w '%{http_code}' -X "$2" -H "Authorization: Bearer $1" "$base$3"
  fi
}
expect() {  # expect STATUS TOKEN METHOD PATH [BODY]
  want=$1
  shift
  got=$(api "$@")
  [ "$got" = "$want" ] || fail "$2 $3: $got (wanted $want): $(cat "$tmp/body")"
}
body() { cat "$tmp/body"; }
# The agent's GPU entry INDEX as the admin's GET /api/v1/agents shows it.
gpu() {
  api "$admin" GET /api/v1/agents >/dev/null
  body | py "next((g for a in d['agents'] if a['name'] == 'realgpu' for g in a['gpus'] if g['index'] == $1), None)"
}
# until_gpu SECONDS PYTHON-CONDITION-ON-g: polls GPU 0's entry.
until_gpu() {
  deadline=$(( $(date +%s) + $1 ))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    g=$(gpu 0)
    if printf '%s' "$g" | python3 -c 'import json, sys
g = json.load(sys.stdin)
sys.exit(0 if eval(sys.argv[1]) else 1)' "$2" 2>/dev/null; then
      return 0
    fi
    sleep 1
  done
  return 1
}

note "hub and agent from $build, nvidia-smi $smi"
"$hub_bin" serve --listen "127.0.0.1:$port" --data-dir "$tmp/data" --rate-requests 0 >"$tmp/hub.log" 2>&1 &
hub_pid=$!
i=0
until grep -q 'event=hub.listening' "$tmp/hub.log" 2>/dev/null; do
  i=$((i + 1))
  [ "$i" -lt 100 ] || fail "the hub did not start: $(cat "$tmp/hub.log")"
  sleep 0.2
done
admin=$(cat "$tmp/data/admin.token")

expect 201 "$admin" POST /api/v1/agent-enrollments '{}'
enroll=$(body | py "d['token']")
printf '%s\n' "$enroll" | "$agent_bin" --hub "ws://127.0.0.1:$port" --enroll-token-file - \
  --credential-file "$tmp/agent.credential" --name realgpu --nvidia-smi "$smi" >"$tmp/agent.log" 2>&1 &
agent_pid=$!
i=0
until [ "$(api "$admin" GET /api/v1/agents)" = 200 ] &&
  [ "$(body | py "any(a['name'] == 'realgpu' and a['online'] for a in d['agents'])")" = true ]; do
  i=$((i + 1))
  [ "$i" -lt 100 ] || fail "the agent did not come online: $(cat "$tmp/agent.log")"
  sleep 0.2
done
agent=$(body | py "next(a['id'] for a in d['agents'] if a['name'] == 'realgpu')")

g0=$(gpu 0)
[ -n "$g0" ] || fail "the agent reports no GPU 0: $(body)"
uuid=$(printf '%s' "$g0" | py "d['uuid']")
smi_uuid=$("$smi" --query-gpu=uuid --format=csv,noheader -i 0 | tr -d ' ')
[ "$uuid" = "$smi_uuid" ] || fail "GPU 0's uuid is $uuid, nvidia-smi says $smi_uuid"
note "GPU 0: $(printf '%s' "$g0" | py "d.get('model')") $uuid"

# A second user with a use grant.
expect 201 "$admin" POST /api/v1/users '{"name":"gputester"}'
tester=$(body | py "d['token']")
expect 404 "$tester" GET "/api/v1/agents/$agent"
expect 201 "$admin" POST "/api/v1/agents/$agent/grants" '{"user":"gputester","role":"use"}'
expect 200 "$tester" GET "/api/v1/agents/$agent"

# The leased environment in an exec.
expect 200 "$tester" POST /api/v1/exec \
  "{\"targets\":[\"$agent\"],\"argv\":[\"sh\",\"-c\",\"echo \$CUDA_VISIBLE_DEVICES \$CUDA_DEVICE_ORDER \$NVIDIA_VISIBLE_DEVICES\"],\"gpus\":[0],\"timeout_s\":30}"
out=$(body | py "d['results'][0]['stdout'].strip()")
[ "$out" = "0 PCI_BUS_ID $uuid" ] || fail "exec with gpus [0] saw '$out' (wanted '0 PCI_BUS_ID $uuid'): $(body)"
until_gpu 5 "g['holder'] is None" || fail "GPU 0 still held after the exec: $(gpu 0)"
note "ok: exec with gpus [0] sees CUDA_VISIBLE_DEVICES=0, NVIDIA_VISIBLE_DEVICES=$uuid; freed after"

# A lease through a terminal, and someone else's request for it.
expect 201 "$tester" POST /api/v1/terminals '{"kind":"agent","agent":"realgpu","gpus":[0]}'
terminal=$(body | py "d['id']")
until_gpu 5 "g['holder'] and g['holder']['user'] == 'gputester'" || fail "GPU 0 not shown held by gputester: $(gpu 0)"
expect 409 "$admin" POST /api/v1/terminals '{"kind":"agent","agent":"realgpu","gpus":[0]}'
[ "$(body | py "d['code']")" = gpu_busy ] || fail "wanted gpu_busy: $(body)"
note "ok: terminal $terminal holds GPU 0; the admin's request is 409 gpu_busy"

# A real CUDA process: python with torch, or REXEC_CUDA_CMD.
cuda_cmd=${REXEC_CUDA_CMD:-}
if [ -z "$cuda_cmd" ] && python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  pybin=$(python3 -c 'import sys; print(sys.executable)')
  cuda_cmd="$pybin -c 'import time, torch; x = torch.ones(1 << 24, device=\"cuda\"); time.sleep(40)'"
fi
if [ -z "$cuda_cmd" ]; then
  note "no PyTorch with CUDA and no REXEC_CUDA_CMD: the real CUDA process checks are skipped"
  exit 0
fi

# Started here, outside any terminal, on GPU 0 which gputester holds: a violation.
CUDA_VISIBLE_DEVICES=0 sh -c "$cuda_cmd" >"$tmp/cuda-outside.log" 2>&1 &
cuda_pid=$!
until_gpu 30 "any(p.get('violation') for p in g['processes'])" ||
  fail "a CUDA process outside the holder's lease never showed as a violation: $(gpu 0)"
g=$(gpu 0)
[ "$(printf '%s' "$g" | py "d['violation']")" = true ] || fail "GPU 0's violation flag is not set: $g"
note "ok: a CUDA process outside gputester's lease is a violation: $(printf '%s' "$g" | py "d['processes']")"
kill "$cuda_pid" 2>/dev/null || true
wait "$cuda_pid" 2>/dev/null || true
cuda_pid=''
until_gpu 30 "not g['processes']" || fail "the stopped CUDA process is still listed: $(gpu 0)"

# The holder's own: gputester gives the terminal's lease back, then runs it in an exec with gpus [0].
expect 200 "$tester" DELETE "/api/v1/terminals/$terminal/gpus"
args=$(python3 -c 'import json, sys; print(json.dumps(["sh", "-c", sys.argv[1]]))' "$cuda_cmd")
curl -sS -o "$tmp/exec.body" -X POST -H "Authorization: Bearer $tester" -H 'Content-Type: application/json' \
  --data "{\"targets\":[\"$agent\"],\"argv\":$args,\"gpus\":[0],\"timeout_s\":120}" "$base/api/v1/exec" &
exec_pid=$!
until_gpu 30 "g['holder'] and g['holder']['user'] == 'gputester' and any(p.get('user') == 'gputester' for p in g['processes'])" ||
  fail "gputester's own CUDA process never showed on GPU 0 as gputester's: $(gpu 0)"
g=$(gpu 0)
printf '%s' "$g" | py "[p for p in d['processes'] if p.get('user') == 'gputester']" >"$tmp/own"
[ "$(py "all(not p['violation'] for p in d)" <"$tmp/own")" = true ] || fail "the holder's own process is flagged: $g"
[ "$(printf '%s' "$g" | py "d['violation']")" = false ] || fail "GPU 0 flagged although only its holder uses it: $g"
note "ok: gputester's CUDA process on GPU 0: $(cat "$tmp/own"), no violation"
wait "$exec_pid" || true
exec_pid=''
note "all checks passed"
