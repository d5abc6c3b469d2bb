#!/usr/bin/env bash
# A Slurm on this (Debian, root, no systemd) machine, for developers and CI: a single node on the
# host (the default), or several real nodes, each in its own network and UTS namespace.
#
#   scripts/dev-slurm.sh up        install if missing, configure, start munged/slurmctld/slurmd
#   scripts/dev-slurm.sh status    show what runs and what sinfo says
#   scripts/dev-slurm.sh down      stop only the daemons this script started
#
#   scripts/dev-slurm.sh up --nodes N [--gpus-per-node G] [--constrain-devices]
#                                  N nodes dgn1..dgnN (own network namespace, hostname, slurmd)
#                                  on a bridge this script creates, slurmctld in a namespace of
#                                  its own, G fake GPUs per node (gres on /dev/dggpu*), and with
#                                  --constrain-devices cgroup v1 device confinement
#                                  (ConstrainDevices=yes). Use it with
#                                  `export SLURM_CONF=/etc/disagg-slurm-mn/slurm.conf`.
#   scripts/dev-slurm.sh status --multinode
#   scripts/dev-slurm.sh down --multinode
#                                  stops its daemons (by pid file), kills what is left in its
#                                  namespaces (by pid), and removes every namespace, link,
#                                  device, cgroup folder and /etc/hosts line it made
#
# Both can run at once: the multi-node Slurm has its own config, state, munge socket, and its
# ports live inside its namespaces. Idempotent: `up` twice is `up` once. What we started is
# recorded in pid files, so `down` never stops a daemon someone else runs.
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
  # belong to some other process by now. A daemon removes its pid file as it stops, so a
  # missing file is a stopped daemon.
  [[ -s $1 ]] || return 1
  local pid; pid=$(cat "$1" 2>/dev/null) || return 1
  pid_alive "$pid" "$2"
}

pid_alive() { # pid_alive PID NAME
  [[ -n $1 ]] && kill -0 "$1" 2>/dev/null && [[ $(cat "/proc/$1/comm" 2>/dev/null) == "$2" ]] || return 1
  # A killed daemon stays a zombie until something reaps it, and a zombie still answers kill -0.
  local stat; stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
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

# ---------------------------------------------------------------------------------------------
# Multi-node mode: N nodes on this machine. Every name starts with "dg" so it cannot be mistaken
# for anything else; these are the only addresses the tests may send traffic to besides loopback.
MN_CONF_DIR=/etc/disagg-slurm-mn
MN_CONF=$MN_CONF_DIR/slurm.conf
MN_RUN=/run/disagg-slurm-mn             # pid files, the munge socket
MN_SPOOL=/var/spool/disagg-slurm-mn
MN_LOGS=/var/log/disagg-slurm-mn
MN_MUNGE=$MN_RUN/munge
MN_BRIDGE=dgbr0
MN_NET=10.213.0                          # host .1, slurmctld .2, node i at .(10+i)
MN_HOSTS_BEGIN="# BEGIN disagg dev-slurm multinode"
MN_HOSTS_END="# END disagg dev-slurm multinode"
MN_GPU_DEV=/dev/dggpu                    # fake GPUs: char 195:g, nvidia's major, no driver
MN_CTL=dgctl
# Each node's own temporary folder (Slurm's TmpFS): the same path on every node, a different
# folder behind it (a bind mount in the node's mount namespace), as on real nodes. PMIx puts a
# folder per step there, named by job and step only, so a shared one would collide.
MN_NODE_TMP=/var/tmp/disagg-slurm-mn-node

mn_node() { echo "dgn$1"; }

mn_need() {
  install_packages   # slurm-wlm and munge, as in single-node mode
  # --mpi=pmix steps: Slurm's pmix plugin opens the unversioned libpmix.so, which only
  # libpmix-dev ships; iproute2 and util-linux give ip, nsenter and unshare.
  local pkg missing=()
  for pkg in iproute2 util-linux libpmix2 libpmix-dev; do
    [[ $(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null) == "install ok installed" ]] || missing+=("$pkg")
  done
  if ((${#missing[@]})); then
    say "installing ${missing[*]}"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "${missing[@]}"; } >&2 \
      || die "apt-get failed installing ${missing[*]}"
  fi
  ip netns list >/dev/null 2>&1 || die "network namespaces are not available here (needs root in a VM, not an unprivileged container)"
}

# mn_in_ns NETNS HOST CMD...: CMD in the namespace's network, under its own hostname, with its
# own $MN_NODE_TMP. Everything else (/tmp, /dev, /sys, the munge socket) stays shared, like a
# cluster with a shared filesystem; host mounts made later still show (slave propagation).
mn_in_ns() {
  local ns=$1 host=$2; shift 2
  mkdir -p "$MN_NODE_TMP" "$MN_SPOOL/tmp-$host"
  nsenter --net="/run/netns/$ns" unshare --uts --mount --propagation slave -- /bin/sh -c \
    'hostname "$0" && mount --bind "$1" "$2" && shift 2 && exec "$@"' \
    "$host" "$MN_SPOOL/tmp-$host" "$MN_NODE_TMP" "$@"
}

mn_net_up() { # mn_net_up N
  local n=$1 i
  if ! ip link show "$MN_BRIDGE" >/dev/null 2>&1; then
    ip link add "$MN_BRIDGE" type bridge
  fi
  local have; have=$(ip -4 addr show dev "$MN_BRIDGE")
  [[ $have == *" $MN_NET.1/24 "* ]] || ip addr add "$MN_NET.1/24" dev "$MN_BRIDGE"
  ip link set "$MN_BRIDGE" up
  # Frames crossing the bridge must not meet the host's firewall (br_netfilter).
  local nf=/proc/sys/net/bridge/bridge-nf-call-iptables
  if [[ -w $nf ]]; then echo 0 >"$nf" 2>/dev/null || true; fi
  mn_link "$MN_CTL" dgv0 2
  for ((i = 1; i <= n; i++)); do mn_link "$(mn_node "$i")" "dgv$i" $((10 + i)); done
}

mn_link() { # mn_link NETNS HOST_END LAST_OCTET
  local ns=$1 veth=$2 octet=$3 have
  [[ -e /run/netns/$ns ]] || ip netns add "$ns"
  if ! ip link show "$veth" >/dev/null 2>&1; then
    ip link add "$veth" type veth peer name eth0 netns "$ns"
  fi
  ip link set "$veth" master "$MN_BRIDGE"
  ip link set "$veth" up
  ip -n "$ns" link set lo up
  ip -n "$ns" link set eth0 up
  # Captured first: `ip ... | grep -q` under pipefail can fail on SIGPIPE.
  have=$(ip -n "$ns" -4 addr show dev eth0)
  [[ $have == *" $MN_NET.$octet/24 "* ]] || ip -n "$ns" addr add "$MN_NET.$octet/24" dev eth0
}

mn_hosts_up() { # node names resolve everywhere (all namespaces share /etc/hosts)
  local n=$1 i tmp; tmp=$(mktemp)
  sed "/^$MN_HOSTS_BEGIN\$/,/^$MN_HOSTS_END\$/d" /etc/hosts >"$tmp"
  {
    echo "$MN_HOSTS_BEGIN"
    echo "$MN_NET.2 $MN_CTL"
    for ((i = 1; i <= n; i++)); do echo "$MN_NET.$((10 + i)) $(mn_node "$i")"; done
    echo "$MN_HOSTS_END"
  } >>"$tmp"
  # Rewritten in place: /etc/hosts may be a bind mount, whose inode must stay.
  cmp -s "$tmp" /etc/hosts || cat "$tmp" >/etc/hosts
  rm -f "$tmp"
}

mn_gpus_up() {
  local g=$1 i
  for ((i = 0; i < g; i++)); do
    [[ -c $MN_GPU_DEV$i ]] || mknod -m 666 "$MN_GPU_DEV$i" c 195 "$i"
  done
}

mn_munge_up() {
  mkdir -p "$MN_MUNGE" /var/lib/munge /var/log/munge
  if [[ ! -s /etc/munge/munge.key ]]; then
    mkdir -p /etc/munge
    if command -v mungekey >/dev/null; then mungekey --create --force >/dev/null
    else dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none; fi
    chown munge:munge /etc/munge/munge.key; chmod 0400 /etc/munge/munge.key
  fi
  chown munge:munge "$MN_MUNGE" /var/lib/munge /var/log/munge
  chmod 0755 "$MN_MUNGE"
  alive "$MN_MUNGE/munged.pid" munged && return
  runuser -u munge -- /usr/sbin/munged --socket="$MN_MUNGE/munge.socket" \
    --pid-file="$MN_MUNGE/munged.pid" --log-file=/var/log/munge/disagg-mn-munged.log \
    --seed-file=/var/lib/munge/disagg-mn-munged.seed
  local i; for i in $(seq 50); do alive "$MN_MUNGE/munged.pid" munged && return; sleep 0.1; done
  die "munged (multi-node) did not start; see /var/log/munge/disagg-mn-munged.log"
}

mn_write_config() { # mn_write_config N G CONSTRAIN -> 0 if the config changed
  local n=$1 g=$2 constrain=$3 i tmp proctrack=proctrack/linuxproc task=task/none
  if [[ $constrain == 1 ]]; then proctrack=proctrack/cgroup; task=task/cgroup; fi
  mkdir -p "$MN_CONF_DIR" "$MN_SPOOL/ctld" "$MN_LOGS" "$MN_RUN"
  tmp=$(mktemp -d)
  {
    echo "$MARK (multi-node: $n nodes, $g GPUs each, constrain devices: $constrain)"
    cat <<CONF
ClusterName=disaggmn
SlurmctldHost=$MN_CTL($MN_NET.2)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MN_MUNGE/munge.socket
SlurmctldPort=6817
SlurmdPort=6818
SlurmctldPidFile=$MN_RUN/slurmctld.pid
SlurmdPidFile=$MN_RUN/slurmd-%n.pid
SlurmctldLogFile=$MN_LOGS/slurmctld.log
SlurmdLogFile=$MN_LOGS/slurmd-%n.log
StateSaveLocation=$MN_SPOOL/ctld
SlurmdSpoolDir=$MN_SPOOL/d-%n
TmpFS=$MN_NODE_TMP
SwitchType=switch/none
MpiDefault=none
ProctrackType=$proctrack
TaskPlugin=$task
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
GresTypes=gpu
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
# Finished jobs are followed with scontrol (no accounting), so they are kept a day.
JobCompType=jobcomp/none
MinJobAge=86400
ReturnToService=2
InactiveLimit=0
KillWait=5
MessageTimeout=10
SlurmdTimeout=60
MailProg=/bin/true
# More CPUs than this machine has cores, so the steps of a few jobs fit at once.
SlurmdParameters=config_overrides
CONF
    for ((i = 1; i <= n; i++)); do
      echo "NodeName=$(mn_node "$i") NodeHostname=$(mn_node "$i") NodeAddr=$MN_NET.$((10 + i)) CPUs=16 Gres=gpu:$g State=UNKNOWN"
    done
    echo "PartitionName=dg Nodes=ALL Default=YES MaxTime=INFINITE State=UP"
  } >"$tmp/slurm.conf"
  {
    for ((i = 1; i <= n; i++)); do
      if ((g == 1)); then echo "NodeName=$(mn_node "$i") Name=gpu File=${MN_GPU_DEV}0"
      else echo "NodeName=$(mn_node "$i") Name=gpu File=$MN_GPU_DEV[0-$((g - 1))]"; fi
    done
  } >"$tmp/gres.conf"
  cat >"$tmp/cgroup.conf" <<CONF
CgroupPlugin=cgroup/v1
CgroupAutomount=no
ConstrainDevices=yes
ConstrainCores=no
ConstrainRAMSpace=no
CONF
  local f changed=1
  for f in slurm.conf gres.conf cgroup.conf; do
    if ! cmp -s "$tmp/$f" "$MN_CONF_DIR/$f"; then cp "$tmp/$f" "$MN_CONF_DIR/$f"; changed=0; fi
  done
  rm -rf "$tmp"
  return $changed
}

mn_stop() { # mn_stop PIDFILE NAME: TERM, up to 10 s, then KILL; waits on the process itself
  local pidfile=$1 name=$2 pid i
  if alive "$pidfile" "$name"; then
    pid=$(cat "$pidfile" 2>/dev/null) || pid=""
    if [[ -n $pid ]]; then
      kill -TERM "$pid" 2>/dev/null || true
      for i in $(seq 100); do pid_alive "$pid" "$name" || break; sleep 0.1; done
      if pid_alive "$pid" "$name"; then kill -KILL "$pid" 2>/dev/null || true; fi
      say "stopped $name ($pid)"
    fi
  fi
  rm -f "$pidfile"
}

mn_daemons_up() { # mn_daemons_up N
  local n=$1 i node
  if ! alive "$MN_RUN/slurmctld.pid" slurmctld; then
    # -c: a cold start; jobs of an earlier cluster of the same name are not ours to resume.
    mn_in_ns "$MN_CTL" "$MN_CTL" slurmctld -f "$MN_CONF" -c \
      || die "slurmctld failed; see $MN_LOGS/slurmctld.log"
  fi
  for ((i = 1; i <= n; i++)); do
    node=$(mn_node "$i")
    alive "$MN_RUN/slurmd-$node.pid" slurmd && continue
    mkdir -p "$MN_SPOOL/d-$node"
    mn_in_ns "$node" "$node" slurmd -f "$MN_CONF" -N "$node" \
      || die "slurmd $node failed; see $MN_LOGS/slurmd-$node.log"
  done
}

mn_wait_idle() { # mn_wait_idle N
  local n=$1 out deadline=$((SECONDS + UP_TIMEOUT)) node
  while ((SECONDS < deadline)); do
    out=$(SLURM_CONF=$MN_CONF timeout 5 sinfo -h -N -o '%N %T' 2>/dev/null || true)
    if [[ $(grep -cE ' (idle|mixed|allocated)' <<<"$out") -ge $n ]]; then
      say "multi-node Slurm up: $(tr '\n' ' ' <<<"$out")"
      return 0
    fi
    for node in $(awk '$2 ~ /^(down|drain)/ {print $1}' <<<"$out"); do
      SLURM_CONF=$MN_CONF scontrol update nodename="$node" state=resume 2>/dev/null || true
    done
    sleep 0.2
  done
  die "the nodes were not idle after ${UP_TIMEOUT}s: ${out:-no answer} (see $MN_LOGS/)"
}

mn_up() {
  local n=$1 g=$2 constrain=$3
  ((n >= 1 && n <= 32)) || die "--nodes must be 1..32"
  ((g >= 0 && g <= 16)) || die "--gpus-per-node must be 0..16"
  if [[ $constrain == 1 && ! -d /sys/fs/cgroup/devices ]]; then
    die "--constrain-devices needs the cgroup v1 devices controller at /sys/fs/cgroup/devices"
  fi
  ((g >= 1)) || g=1   # gres needs one device at least; 0 would leave GresTypes without a file
  mn_need
  # A cluster of another size: its extra nodes must go, so start from nothing.
  local existing; existing=$(ip netns list 2>/dev/null | awk '{print $1}' | grep -cE '^dgn[0-9]+$' || true)
  if ((existing > n)); then say "shrinking from $existing nodes: taking the old cluster down first"; mn_down; fi
  mn_net_up "$n"
  mn_hosts_up "$n"
  mn_gpus_up "$g"
  mn_munge_up
  if mn_write_config "$n" "$g" "$constrain"; then
    local f
    for f in "$MN_RUN"/slurmd-*.pid; do [[ -e $f ]] && mn_stop "$f" slurmd; done
    mn_stop "$MN_RUN/slurmctld.pid" slurmctld
  fi
  mn_daemons_up "$n"
  mn_wait_idle "$n"
  echo "export SLURM_CONF=$MN_CONF"
}

# Processes whose network namespace is NETNS (orphaned steps, for instance).
mn_ns_pids() {
  local want pid; want=$(stat -L -c %i "/run/netns/$1" 2>/dev/null) || return 0
  for pid in /proc/[0-9]*; do
    pid=${pid#/proc/}
    [[ $(stat -L -c %i "/proc/$pid/ns/net" 2>/dev/null) == "$want" ]] && echo "$pid"
  done
  return 0
}

mn_down() {
  local f ns pids l d
  if [[ -e $MN_CONF ]] && alive "$MN_RUN/slurmctld.pid" slurmctld; then
    SLURM_CONF=$MN_CONF timeout 10 scancel --user=root 2>/dev/null || true
  fi
  for f in "$MN_RUN"/slurmd-*.pid; do [[ -e $f ]] && mn_stop "$f" slurmd; done
  mn_stop "$MN_RUN/slurmctld.pid" slurmctld
  mn_stop "$MN_MUNGE/munged.pid" munged
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^dg(ctl|n[0-9]+)$' || true); do
    pids=$(mn_ns_pids "$ns")
    if [[ -n $pids ]]; then
      say "killing what is left in $ns: $(echo $pids)"
      kill -KILL $pids 2>/dev/null || true
    fi
    ip netns del "$ns"
  done
  for l in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E '^dgv[0-9]+$' || true); do
    ip link del "$l" 2>/dev/null || true
  done
  if ip link show "$MN_BRIDGE" >/dev/null 2>&1; then ip link del "$MN_BRIDGE"; fi
  if grep -qF "$MN_HOSTS_BEGIN" /etc/hosts; then
    local tmp; tmp=$(mktemp)
    sed "/^$MN_HOSTS_BEGIN\$/,/^$MN_HOSTS_END\$/d" /etc/hosts >"$tmp"
    cat "$tmp" >/etc/hosts; rm -f "$tmp"
  fi
  rm -f "$MN_GPU_DEV"[0-9]*
  # cgroup v1 folders of task/cgroup and proctrack/cgroup, one per node; rmdir (deepest first)
  # removes only empty ones, so nothing with a process in it is touched.
  for d in /sys/fs/cgroup/*/slurm_dgn[0-9]*; do
    [[ -d $d ]] || continue
    find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    [[ -d $d ]] && say "could not remove $d (processes still in it?)"
  done
  rm -rf "$MN_RUN"
  say "multi-node Slurm down"
}

mn_status() {
  local rc=0 f name
  if alive "$MN_MUNGE/munged.pid" munged; then echo "munged: running (pid $(cat "$MN_MUNGE/munged.pid"))"
  else echo "munged: not running"; rc=1; fi
  if alive "$MN_RUN/slurmctld.pid" slurmctld; then echo "slurmctld: running (pid $(cat "$MN_RUN/slurmctld.pid"))"
  else echo "slurmctld: not running"; rc=1; fi
  for f in "$MN_RUN"/slurmd-*.pid; do
    [[ -e $f ]] || continue
    name=${f##*/slurmd-}; name=${name%.pid}
    if alive "$f" slurmd; then echo "slurmd $name: running (pid $(cat "$f"))"
    else echo "slurmd $name: not running"; rc=1; fi
  done
  SLURM_CONF=$MN_CONF sinfo -N -o '%N %T %G' 2>&1 || rc=1
  echo "export SLURM_CONF=$MN_CONF"
  return $rc
}

usage() {
  cat >&2 <<USAGE
usage: $0 up [--nodes N [--gpus-per-node G] [--constrain-devices]]
       $0 down [--multinode]
       $0 status [--multinode]
USAGE
  exit 2
}

main() {
  local cmd=${1:-}; shift || true
  local nodes="" gpus=4 constrain=0 multinode=0
  while (($#)); do
    case $1 in
      --nodes) nodes=${2:-}; shift 2 || usage ;;
      --nodes=*) nodes=${1#*=}; shift ;;
      --gpus-per-node) gpus=${2:-}; shift 2 || usage ;;
      --gpus-per-node=*) gpus=${1#*=}; shift ;;
      --constrain-devices) constrain=1; shift ;;
      --multinode) multinode=1; shift ;;
      *) say "unknown option $1"; usage ;;
    esac
  done
  [[ -z $nodes || $nodes =~ ^[0-9]+$ ]] || die "--nodes takes a number"
  [[ $gpus =~ ^[0-9]+$ ]] || die "--gpus-per-node takes a number"
  case $cmd in
    # The single-node commands talk to their own controller, whatever SLURM_CONF says.
    up) if [[ -n $nodes ]]; then mn_up "$nodes" "$gpus" "$constrain"; else SLURM_CONF=$CONF cmd_up; fi ;;
    down) if [[ $multinode == 1 || -n $nodes ]]; then mn_down; else SLURM_CONF=$CONF cmd_down; fi ;;
    status) if [[ $multinode == 1 || -n $nodes ]]; then mn_status; else SLURM_CONF=$CONF cmd_status; fi ;;
    *) usage ;;
  esac
}

main "$@"
