#!/usr/bin/env bash
# Stop the daemons that start-local-slurm.sh started (and nothing else).
set -uo pipefail
STATE=${JMRN_SLURM_STATE:-/tmp/jmrn-slurm}
[ -f "$STATE/pidfiles" ] || exit 0
tac "$STATE/pidfiles" | while read -r pidfile; do
  [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null
done
rm -f "$STATE/pidfiles"
