#!/usr/bin/env bash
# Stop the daemons that start-local-slurm.sh started (and nothing else), newest first, and wait
# until each has exited so that a following start finds none of them running.
set -uo pipefail
STATE=${JMRN_SLURM_STATE:-/tmp/jmrn-slurm}
[ -f "$STATE/pidfiles" ] || exit 0
tac "$STATE/pidfiles" | while read -r pidfile; do
  [ -f "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  kill "$pid" 2>/dev/null || continue
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
done
rm -f "$STATE/pidfiles"
