#!/usr/bin/env bash
# Start a single-node SLURM (munge + slurmctld + slurmd, no systemd) for tests/cluster.
# Idempotent: installs slurm-wlm/munge only when missing, writes the config only when it
# differs, and starts only the daemons that are not running. Needs root (CI runs as root).
# Waits (bounded) until `sinfo` shows the node idle; exits non-zero if it never does.
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then echo "slurm-up: needs root" >&2; exit 1; fi

# --- packages (Debian) ---
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
  t0=$(date +%s)
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends slurm-wlm munge >/dev/null
  echo "slurm-up: installed slurm-wlm and munge in $(( $(date +%s) - t0 )) s"
fi

# --- munge ---
mkdir -p /etc/munge /var/lib/munge /var/log/munge /run/munge
if [ ! -s /etc/munge/munge.key ]; then
  if command -v mungekey >/dev/null; then mungekey --create --force --keyfile=/etc/munge/munge.key
  else dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none; fi
fi
chown -R munge:munge /etc/munge /var/lib/munge /var/log/munge /run/munge
chmod 0700 /etc/munge; chmod 0400 /etc/munge/munge.key
munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }
if ! munge_ok; then
  # not running, or a stale/dying one: wait for it to go, then start afresh
  if [ -f /run/munge/munged.pid ]; then  # ours from an earlier start: stop it by its pid
    pid=$(cat /run/munge/munged.pid); kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  fi
  rm -f /run/munge/munged.pid /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock
  runuser -u munge -- /usr/sbin/munged
  for _ in $(seq 1 20); do munge_ok && break; sleep 0.5; done
  munge_ok || { echo "slurm-up: munged does not answer" >&2; exit 1; }
fi

# --- slurm.conf (one node: this machine as "localhost") ---
cpus=$(nproc)
mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2 ))
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
conf=$(cat <<CONF
# written by .ci/slurm-up.sh
ClusterName=geolabel-ci
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
KillWait=30
MinJobAge=30
NodeName=localhost NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${mem} State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
)
if [ ! -f /etc/slurm/slurm.conf ] || [ "$(cat /etc/slurm/slurm.conf)" != "$conf" ]; then
  printf '%s\n' "$conf" > /etc/slurm/slurm.conf
fi
pgrep -x slurmctld >/dev/null || slurmctld
pgrep -x slurmd >/dev/null || slurmd -N localhost

# --- wait until the node is idle (bounded) ---
for _ in $(seq 1 60); do
  state=$(timeout 5 sinfo -h -n localhost -o %t 2>/dev/null || true)
  case "$state" in
    idle|mix|alloc) echo "slurm-up: node localhost is $state"; exit 0 ;;  # "idle*": not responding yet
    down*|drain*|inval*) scontrol update nodename=localhost state=resume 2>/dev/null || true ;;
  esac
  sleep 1
done
echo "slurm-up: node never became idle (state: ${state:-none}); see /var/log/slurm/" >&2
exit 1
