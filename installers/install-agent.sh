#!/bin/sh
# install-agent.sh: puts rexec-agent on this machine as a systemd service, for the Rexec hub that
# served this script. Run as root:
#   curl -fsSL https://HUB/install-agent.sh -o rexec-install.sh
#   printf '%s\n' "$TOKEN" | sudo sh rexec-install.sh --token-file -
# The enrollment token comes from --token-file FILE, --token-file - (stdin) or REXEC_ENROLL_TOKEN.
# It is never written to a file, put on a command line or passed on in an environment: a first,
# short run of the agent reads it on stdin, enrolls, and leaves the agent's own credential
# (0600 root) behind. The downloaded agent is verified against the hub's .sha256 before anything
# is installed. A second run upgrades in place and keeps the credential (and the shells: the
# restart hands them over, docs/agent-upgrades.md). --uninstall removes everything again.
# The whole script is one function called on the last line: a cut download runs nothing.
set -eu

main() {
  # Filled in by the hub when it serves this file (hub/downloads.h).
  served_by='@REXEC_PUBLIC_URL@'
  bin=/usr/local/bin/rexec-agent
  conf_dir=/etc/rexec
  conf=$conf_dir/agent.conf
  state=/var/lib/rexec-agent
  cred=$state/credential
  unit=/etc/systemd/system/rexec-agent.service

  hub='' name='' user='' ca_file='' token_file='' labels='' no_start=0 uninstall=0
  while [ $# -gt 0 ]; do
    case $1 in
      --hub) need_value "$@"; hub=$2; shift 2 ;;
      --name) need_value "$@"; name=$2; shift 2 ;;
      --label)
        need_value "$@"
        case $2 in
          *=*) ;;
          *) die "--label $2: expected KEY=VALUE" ;;
        esac
        labels="$labels
$2"
        shift 2 ;;
      --user) need_value "$@"; user=$2; shift 2 ;;
      --ca-file) need_value "$@"; ca_file=$2; shift 2 ;;
      --token-file | --enroll-token-file) need_value "$@"; token_file=$2; shift 2 ;;
      --no-start) no_start=1; shift ;;
      --uninstall) uninstall=1; shift ;;
      -h | --help) usage; return 0 ;;
      --token | --token=*) die "the token is not taken on the command line; use --token-file FILE, --token-file - or REXEC_ENROLL_TOKEN" ;;
      *) die "unknown option $1 (see --help)" ;;
    esac
  done
  # The token never goes further than this shell: nothing started from here inherits it.
  env_token=${REXEC_ENROLL_TOKEN:-}
  unset REXEC_ENROLL_TOKEN

  [ "$(id -u)" = 0 ] || die "run as root (sudo sh $0 ...): it installs $bin, $conf and a systemd unit"
  case $served_by in
    @*) served_by='' ;;  # run from a source tree, not served by a hub
  esac
  # An upgrade or uninstall without options keeps talking to the hub the agent has.
  if [ -z "$hub" ] && [ -f "$conf" ]; then hub=$(conf_value hub | ws_to_http); fi
  if [ -z "$ca_file" ] && [ -f "$conf" ]; then ca_file=$(conf_value ca-file); fi
  [ -n "$hub" ] || hub=$served_by
  [ -n "$hub" ] || die "--hub URL is needed (this script was not served by a hub)"
  hub=$(printf '%s' "$hub" | ws_to_http)
  hub=${hub%/}
  case $hub in
    http://*) ws_hub=ws://${hub#http://} ;;
    https://*) ws_hub=wss://${hub#https://} ;;
    *) die "--hub $hub: expected http(s)://HOST[:PORT] or ws(s)://HOST[:PORT]" ;;
  esac

  if [ "$uninstall" = 1 ]; then
    remove_agent
    return
  fi

  has_systemd=0
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then has_systemd=1; fi
  if [ "$has_systemd" = 0 ] && [ "$no_start" = 0 ]; then
    die "systemd is not running here, so the agent cannot be installed as a service. Nothing was
installed. Either run this again with --no-start (installs the agent, enrolls it, does not start
it) and start it yourself with:
  $bin --config $conf --credential-file $cred
or run the agent by hand without installing it (see the hub's README, \"Run an agent\")."
  fi

  arch=$(detect_arch)
  # 0700: the download, the first run's log and the new credential. Beside the binary, not in
  # $TMPDIR: the enrolling first run executes the download, and /tmp is often mounted noexec
  # (hardened servers; Docker's --tmpfs), where that fails with "Permission denied". Where the
  # agent will be installed it can run, and the final mv is a rename on one filesystem.
  [ -d "${bin%/*}" ] || install -d -m 0755 "${bin%/*}"
  tmp=$(mktemp -d "${bin%/*}/.rexec-install.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  trap 'exit 130' INT TERM
  fetch_agent "$arch"

  if [ -s "$cred" ]; then
    say "upgrading in place: keeping the credential in $cred"
  else
    token=$(read_token)
    [ -n "$token" ] || die "no enrollment token: give --token-file FILE, --token-file - (stdin) or REXEC_ENROLL_TOKEN"
    write_conf "$tmp/agent.conf"
    enroll "$token"
    token=''
  fi

  # Everything checked: now install. Each file is replaced by a rename, and only when it changed.
  install -d -m 0755 "$conf_dir"
  install -d -m 0700 "$state"
  write_conf "$tmp/agent.conf.new"
  replace_if_changed "$tmp/agent.conf.new" "$conf" 0644
  if [ -f "$tmp/credential" ]; then
    chmod 0600 "$tmp/credential"
    mv -f "$tmp/credential" "$cred"
  fi
  write_unit "$tmp/unit"
  install -d -m 0755 "${unit%/*}"
  replace_if_changed "$tmp/unit" "$unit" 0644
  upgraded=0
  if [ -f "$bin" ] && cmp -s "$tmp/rexec-agent" "$bin"; then
    say "the agent binary is already this version"
  else
    [ -f "$bin" ] && upgraded=1
    install -m 0755 "$tmp/rexec-agent" "$bin.new"
    mv -f "$bin.new" "$bin"
  fi

  if command -v systemctl >/dev/null 2>&1; then
    [ "$has_systemd" = 1 ] && systemctl daemon-reload
    systemctl enable rexec-agent.service >/dev/null 2>&1 || say "could not enable rexec-agent.service"
  fi
  if [ "$no_start" = 1 ]; then
    say "installed, not started (--no-start). Start it with: systemctl start rexec-agent"
    say "  (or, without systemd: $bin --config $conf --credential-file $cred)"
    return
  fi
  if systemctl is-active --quiet rexec-agent.service && [ "$upgraded" = 1 ]; then
    # The running agent hands its terminals to the new binary through the fd store.
    systemctl restart rexec-agent.service || true
  else
    systemctl start rexec-agent.service || true
  fi
  # Type=notify: start/restart returned once the agent said READY=1, that is connected.
  if systemctl is-active --quiet rexec-agent.service; then
    say "connected as $(agent_name)"
  else
    say "rexec-agent did not come up. Its last words:"
    journalctl -u rexec-agent.service -n 5 -o cat --no-pager 2>/dev/null || systemctl status rexec-agent.service --no-pager || true
    exit 1
  fi
}

usage() {
  cat <<'EOF'
usage: install-agent.sh [--hub URL] [--token-file FILE|-] [--name NAME] [--label KEY=VALUE]...
                        [--user USER] [--ca-file FILE] [--no-start]
       install-agent.sh --uninstall [--hub URL]
  --hub         the hub, http(s)://HOST[:PORT] (default: the hub that served this script)
  --token-file  the one-time enrollment token, from FILE or - (stdin); or set REXEC_ENROLL_TOKEN
  --name        the agent's name on the hub (default: this host's name)
  --label       KEY=VALUE shown with the agent on the hub; repeatable
  --user        run terminals as USER (default: root)
  --ca-file     CA certificate(s) to check an https hub against (default: the system's)
  --no-start    install and enroll, but do not start the service
  --uninstall   stop and remove the agent, its unit, config and credential; remove it on the hub
A second run upgrades the agent in place and keeps its credential.
EOF
}

say() { printf 'rexec-install: %s\n' "$*"; }
die() {
  printf 'rexec-install: %s\n' "$*" >&2
  exit 1
}
need_value() { [ $# -ge 2 ] || die "$1 needs a value"; }

ws_to_http() {
  sed -e 's|^ws://|http://|' -e 's|^wss://|https://|'
}

# The value of `KEY = VALUE` in agent.conf (the first one).
conf_value() {
  sed -n "s/^[[:space:]]*$1[[:space:]]*=[[:space:]]*//p" "$conf" | head -n 1
}

agent_name() {
  if [ -n "$name" ]; then printf '%s' "$name"; elif [ -f "$conf" ] && [ -n "$(conf_value name)" ]; then conf_value name; else hostname 2>/dev/null || cat /etc/hostname; fi
}

detect_arch() {
  m=$(uname -m)
  case $m in
    x86_64 | amd64) echo amd64 ;;
    aarch64 | arm64) echo arm64 ;;
    *) die "this machine is $m; the hub has rexec-agent for x86_64 (amd64) and aarch64 (arm64) only. Nothing was installed." ;;
  esac
}

# download URL FILE
download() {
  if command -v curl >/dev/null 2>&1; then
    if [ -n "$ca_file" ]; then
      curl -fsSL --proto '=http,https' --cacert "$ca_file" -o "$2" "$1"
    else
      curl -fsSL --proto '=http,https' -o "$2" "$1"
    fi
  elif command -v wget >/dev/null 2>&1; then
    if [ -n "$ca_file" ]; then
      wget -q --ca-certificate="$ca_file" -O "$2" "$1"
    else
      wget -q -O "$2" "$1"
    fi
  else
    die "neither curl nor wget is installed; install one of them (apt-get install curl)"
  fi
}

# Downloads the agent for ARCH into $tmp/rexec-agent, verified. Mandatory: no checksum, no install.
fetch_agent() {
  file=rexec-agent-linux-$1
  download "$hub/downloads/$file" "$tmp/$file" || die "could not download $hub/downloads/$file. Nothing was installed."
  download "$hub/downloads/$file.sha256" "$tmp/$file.sha256" ||
    die "could not download $hub/downloads/$file.sha256, so the agent cannot be verified. Nothing was installed."
  read -r want listed <"$tmp/$file.sha256" || true
  [ "${listed:-}" = "$file" ] || die "$file.sha256 does not describe $file. Nothing was installed."
  got=$(sha256sum "$tmp/$file" | cut -d' ' -f1)
  if [ "$got" != "$want" ]; then
    die "checksum mismatch for $file: the hub's $file.sha256 says $want, the download is $got. The file was changed or damaged. Nothing was installed."
  fi
  say "downloaded $file, checksum verified ($got)"
  mv "$tmp/$file" "$tmp/rexec-agent"
  chmod 0755 "$tmp/rexec-agent"
}

# The token, from the first place that has one. read is a builtin: the token is in no argv.
read_token() {
  t=''
  if [ "$token_file" = - ]; then
    IFS= read -r t || true
  elif [ -n "$token_file" ]; then
    [ -r "$token_file" ] || die "cannot read the token file $token_file"
    IFS= read -r t <"$token_file" || true
  else
    t=$env_token
  fi
  printf '%s' "$t" | tr -d '[:space:]'
}

write_conf() {
  {
    echo "# rexec-agent settings, written by install-agent.sh; no secrets here (the credential is"
    echo "# in $cred). Keys are the agent's flags without dashes: rexec-agent --help."
    echo "hub = $ws_hub"
    n=$name
    [ -n "$n" ] || { [ -f "$conf" ] && n=$(conf_value name); } || true
    [ -n "$n" ] && echo "name = $n"
    u=$user
    [ -n "$u" ] || { [ -f "$conf" ] && u=$(conf_value user); } || true
    [ -n "$u" ] && echo "user = $u"
    c=$ca_file
    [ -n "$c" ] || { [ -f "$conf" ] && c=$(conf_value ca-file); } || true
    [ -n "$c" ] && echo "ca-file = $c"
    if [ -n "$labels" ]; then
      printf '%s\n' "$labels" | sed -n 's/^\(..*\)$/label = \1/p'
    elif [ -f "$conf" ]; then
      grep '^label = ' "$conf" || true
    fi
  } >"$1"
}

# replace_if_changed NEW TARGET MODE: an unchanged file is left alone (same inode, same time).
replace_if_changed() {
  if [ -f "$2" ] && cmp -s "$1" "$2"; then return 0; fi
  chmod "$3" "$1"
  mv -f "$1" "$2"
}

write_unit() {
  cat >"$1" <<'REXEC_UNIT'
@REXEC_AGENT_UNIT@
REXEC_UNIT
  grep -q '^ExecStart=' "$1" || die "this copy of the script has no systemd unit in it; use the one the hub serves at /install-agent.sh"
}

# A first run of the new agent, in the foreground: it enrolls with the token on stdin and writes
# its credential to $tmp/credential. Success is its link.up; a refusal is reported with the reason.
enroll() {
  say "enrolling with $ws_hub"
  printf '%s\n' "$1" | "$tmp/rexec-agent" --config "$tmp/agent.conf" --enroll-token-file - \
    --credential-file "$tmp/credential" --shell /bin/false >"$tmp/enroll.log" 2>&1 &
  pid=$!
  i=0
  while [ $i -lt 300 ]; do  # 30 s
    if grep -q 'event=link.up' "$tmp/enroll.log" && [ -s "$tmp/credential" ]; then
      kill -INT "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
      say "enrolled as $(agent_name)"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null || grep -q 'event=link.connect_failed' "$tmp/enroll.log"; then break; fi
    sleep 0.1
    i=$((i + 1))
  done
  kill -INT "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  printf 'rexec-install: the hub did not accept this agent. The agent said:\n' >&2
  sed -n 's/^/  /p' "$tmp/enroll.log" | tail -n 5 >&2
  die "enrollment failed: is the token right, unused and not expired, and is $hub reachable? Nothing was installed."
}

# Tells the hub (DELETE /api/v1/agent/self with the agent's own credential), then removes every file.
remove_agent() {
  if command -v systemctl >/dev/null 2>&1; then
    systemctl disable --now rexec-agent.service >/dev/null 2>&1 || true
  fi
  told=1
  if [ -s "$cred" ]; then
    told=0
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    # The credential goes in a header read from a 0600 file, never on curl's or wget's command line.
    c=$(tr -d '[:space:]' <"$cred")
    (umask 077 && printf 'Authorization: Bearer %s\n' "$c" >"$tmp/header")
    (umask 077 && printf 'header = Authorization: Bearer %s\n' "$c" >"$tmp/wgetrc")
    c=''
    if command -v curl >/dev/null 2>&1; then
      set -- -fsS -X DELETE -H "@$tmp/header" -o /dev/null
      [ -n "$ca_file" ] && set -- "$@" --cacert "$ca_file"
      curl "$@" "$hub/api/v1/agent/self" && told=1
    elif command -v wget >/dev/null 2>&1; then
      set -- -q --config="$tmp/wgetrc" --method=DELETE -O /dev/null
      [ -n "$ca_file" ] && set -- "$@" --ca-certificate="$ca_file"
      wget "$@" "$hub/api/v1/agent/self" && told=1
    fi
    rm -f "$tmp/header" "$tmp/wgetrc"
  fi
  rm -f "$bin" "$bin.new" "$unit" "$conf" "$cred"
  rm -f /etc/systemd/system/multi-user.target.wants/rexec-agent.service
  rmdir "$state" 2>/dev/null || true
  rmdir "$conf_dir" 2>/dev/null || true
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then systemctl daemon-reload; fi
  if [ "$told" = 1 ]; then
    say "removed rexec-agent from this machine and from $hub"
  else
    die "removed rexec-agent from this machine, but could not tell $hub: remove the agent there (dashboard, or DELETE /api/v1/agents/ID)"
  fi
}

main "$@"
