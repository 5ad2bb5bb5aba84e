#!/usr/bin/env bash
# Stop the daemons that .ci/slurm-up.sh started (slurmd, slurmctld, munged); idempotent.
set -uo pipefail
for pidfile in /run/slurmd.pid /run/slurmctld.pid; do
  if [ -f "$pidfile" ]; then
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true  # still there after 20 s: it must not block a restart
    rm -f "$pidfile"
  fi
done
pidfile=/run/munge/munged.pid
if [ -f "$pidfile" ]; then
  pid=$(cat "$pidfile")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
fi
echo "slurm-down: stopped"
exit 0
