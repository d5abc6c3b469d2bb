#!/usr/bin/env bash
# A single-node Slurm on this (Debian, root, no systemd) machine, for developers and CI.
#
#   scripts/dev-slurm.sh up      install if missing, configure, start munged/slurmctld/slurmd
#   scripts/dev-slurm.sh status  show what runs and what sinfo says
#   scripts/dev-slurm.sh down    stop only the daemons this script started
#
# Idempotent: `up` twice is `up` once. What we started is recorded under $STATE, so `down`
# never stops a daemon someone else runs.
set -euo pipefail

STATE=/run/disagg-slurm                 # markers: which daemons we started
CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
MARK="# written by disagg scripts/dev-slurm.sh"
SPOOL=/var/spool/disagg-slurm
LOGS=/var/log/disagg-slurm
# More CPUs than the machine has cores, so several steps of a few jobs fit at once; slurmd
# accepts it because of SlurmdParameters=config_overrides.
CPUS=${DISAGG_SLURM_CPUS:-32}
UP_TIMEOUT=${DISAGG_SLURM_UP_TIMEOUT:-60}

say() { printf 'dev-slurm: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

[[ $(id -u) == 0 ]] || die "must run as root (it installs packages and starts daemons)"

node_name() { hostname -s; }

alive() { # alive PIDFILE NAME -> 0 if the pid in it is a live process called NAME
  # The name check matters after a reboot or a killed session: a stale pid file's number may
  # belong to some other process by now.
  [[ -s $1 ]] || return 1
  local pid; pid=$(cat "$1")
  kill -0 "$pid" 2>/dev/null && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$2" ]] || return 1
  # A killed daemon stays a zombie until something reaps it, and a zombie still answers kill -0.
  local stat; stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != Z ]]
}

install_packages() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
     && command -v munged >/dev/null && command -v sinfo >/dev/null; then
    return
  fi
  say "installing slurm-wlm and munge from Debian packages"
  # Keep the packages' maintainer scripts from starting services: we start them ourselves.
  local policy=/usr/sbin/policy-rc.d created_policy=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod +x "$policy"; created_policy=1
  fi
  local rc=0
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends slurm-wlm munge; } >&2 || rc=$?
  [[ $created_policy == 1 ]] && rm -f "$policy"
  [[ $rc == 0 ]] || die "apt-get failed (exit $rc)"
}

ensure_hostname_resolves() {
  local h; h=$(node_name)
  if ! getent hosts "$h" >/dev/null; then
    say "adding $h to /etc/hosts"
    printf '127.0.0.1 %s\n' "$h" >>/etc/hosts
  fi
}

write_config() {
  local h; h=$(node_name)
  mkdir -p "$CONF_DIR" "$SPOOL/ctld" "$SPOOL/d" "$LOGS" "$STATE"
  if [[ -e $CONF ]] && ! grep -qF "$MARK" "$CONF"; then
    die "$CONF exists and was not written by this script; not touching it"
  fi
  local tmp; tmp=$(mktemp)
  cat >"$tmp" <<CONF
$MARK
ClusterName=disagg
SlurmctldHost=$h(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
StateSaveLocation=$SPOOL/ctld
SlurmdSpoolDir=$SPOOL/d
SwitchType=switch/none
MpiDefault=none
# No cgroups here: track processes by pid and bind nothing.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
# No accounting storage: jobs are followed with scontrol, which needs the finished job kept.
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=86400
ReturnToService=2
InactiveLimit=0
KillWait=5
SlurmdParameters=config_overrides
NodeName=$h NodeAddr=127.0.0.1 CPUs=$CPUS State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
  if [[ -e $CONF ]] && cmp -s "$tmp" "$CONF"; then rm -f "$tmp"; return 1; fi
  mv "$tmp" "$CONF"; chmod 644 "$CONF"
  return 0
}

start_munge() {
  local pidfile=/run/munge/munged.pid
  if alive "$pidfile" munged || munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then return; fi
  mkdir -p /run/munge /var/lib/munge /var/log/munge /etc/munge
  if [[ ! -s /etc/munge/munge.key ]]; then
    say "creating a munge key"
    if command -v mungekey >/dev/null; then mungekey --create --force >/dev/null
    else dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none; fi
  fi
  chown -R munge:munge /run/munge /var/lib/munge /var/log/munge /etc/munge
  chmod 0700 /etc/munge; chmod 0400 /etc/munge/munge.key
  chmod 0755 /run/munge
  runuser -u munge -- /usr/sbin/munged
  touch "$STATE/munged.started"
  local i; for i in $(seq 50); do alive "$pidfile" munged && return; sleep 0.1; done
  die "munged did not start"
}

start_slurmctld() {
  if alive "$STATE/slurmctld.pid" slurmctld; then return; fi
  slurmctld -f "$CONF" || die "slurmctld failed; see $LOGS/slurmctld.log"
  touch "$STATE/slurmctld.started"
}

start_slurmd() {
  if alive "$STATE/slurmd.pid" slurmd; then return; fi
  slurmd -f "$CONF" || die "slurmd failed; see $LOGS/slurmd.log"
  touch "$STATE/slurmd.started"
}

wait_idle() {
  local h state deadline=$((SECONDS + UP_TIMEOUT)); h=$(node_name)
  # Bounded in wall time: a sinfo that cannot reach the controller can take seconds itself.
  while ((SECONDS < deadline)); do
    state=$(timeout 5 sinfo -h -N -n "$h" -o '%T' 2>/dev/null || true)
    case $state in
      idle*|mixed*|allocated*) say "node $h is $state"; return 0 ;;
      down*|drain*) scontrol update nodename="$h" state=resume 2>/dev/null || true ;;
    esac
    sleep 0.2
  done
  die "node $h not idle after ${UP_TIMEOUT}s (last state: ${state:-none}); see $LOGS/"
}

stop_one() { # stop_one NAME PIDFILE
  local name=$1 pidfile=$2 pid i
  [[ -e $STATE/$name.started ]] || { say "$name: not started by this script; left alone"; return; }
  if alive "$pidfile" "$name"; then
    pid=$(cat "$pidfile"); kill -TERM "$pid"
    for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    say "$name stopped"
  fi
  rm -f "$STATE/$name.started"
}

cmd_up() {
  install_packages
  ensure_hostname_resolves
  mkdir -p "$STATE"
  local changed=0; write_config && changed=1
  start_munge
  start_slurmctld
  start_slurmd
  if [[ $changed == 1 ]]; then scontrol reconfigure 2>/dev/null || true; fi
  wait_idle
}

cmd_down() {
  stop_one slurmd "$STATE/slurmd.pid"
  stop_one slurmctld "$STATE/slurmctld.pid"
  stop_one munged /run/munge/munged.pid
}

cmd_status() {
  local name pidfile rc=0
  for name in munged slurmctld slurmd; do
    pidfile=$STATE/$name.pid; [[ $name == munged ]] && pidfile=/run/munge/munged.pid
    if alive "$pidfile" "$name"; then echo "$name: running (pid $(cat "$pidfile"))"
    else echo "$name: not running"; rc=1; fi
  done
  sinfo 2>&1 || rc=1
  return $rc
}

case ${1:-} in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
