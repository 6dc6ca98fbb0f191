#!/usr/bin/env bash
# Start a one-node SLURM cluster on this machine (Debian, root) for the `slurm` tests, with
# job accounting like real clusters (slurmdbd + MariaDB, so `sacct` answers), two partitions
# (`cpu`, the default, and `gpu`), 2 fake GPUs, and jobs killed when they use more memory than
# they asked for (OverMemoryKill, sampled every second; state OUT_OF_MEMORY). Installs what is missing (apt), writes the
# configs, starts the daemons it needs and waits until the node is idle. Records what it started
# in $JMRN_SLURM_STATE so that stop-local-slurm.sh stops only that. Safe to run twice.
set -euo pipefail
STATE=${JMRN_SLURM_STATE:-/tmp/jmrn-slurm}
mkdir -p "$STATE"

need=()
for cmd in slurmctld slurmd slurmdbd munged mariadbd; do command -v "$cmd" >/dev/null || need+=("$cmd"); done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing slurm, slurmdbd, munge and mariadb-server (apt; missing: ${need[*]})"
  # Another apt (unattended upgrades, a second checkout's start) may hold dpkg's lock: wait for
  # it (up to 10 minutes) instead of failing at once.
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q slurmctld slurmd slurmdbd slurm-client munge \
    mariadb-server >/dev/null
fi

# munge: authentication between the SLURM daemons and clients.
mkdir -p /etc/munge /run/munge /var/lib/munge /var/log/munge
if [ ! -s /etc/munge/munge.key ]; then
  mungekey --create --keyfile /etc/munge/munge.key 2>/dev/null \
    || dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
fi
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
chmod 0700 /etc/munge /var/lib/munge /var/log/munge
chmod 0400 /etc/munge/munge.key
chmod 0755 /run/munge
if ! munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
  su -s /bin/sh munge -c "/usr/sbin/munged --pid-file=/run/munge/munged.pid"
  echo /run/munge/munged.pid >> "$STATE/pidfiles"
  for _ in $(seq 50); do munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
fi

# MariaDB for slurmdbd: local socket and 127.0.0.1 only, one database user for SLURM.
DB_PASS=jmrn-test-accounting
mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
if [ ! -d /var/lib/mysql/mysql ]; then
  mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
fi
if ! mariadb-admin ping >/dev/null 2>&1; then
  mariadbd --user=mysql --bind-address=127.0.0.1 --pid-file=/run/mysqld/jmrn-mariadb.pid \
    --socket=/run/mysqld/mysqld.sock >/var/log/jmrn-mariadb.log 2>&1 &
  echo /run/mysqld/jmrn-mariadb.pid >> "$STATE/pidfiles"
  for _ in $(seq 100); do mariadb-admin ping >/dev/null 2>&1 && break; sleep 0.1; done
fi
mariadb -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '${DB_PASS}';
  GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"

# One node: this host, its CPUs and memory as slurmd sees them, 2 fake GPUs so GPU rules schedule.
HOST=$(hostname -s)
NODE=$(slurmd -C | head -n 1 | sed -e 's/UpTime=.*//')
mkdir -p /etc/slurm /run/slurm /var/lib/slurm/slurmd /var/lib/slurm/slurmctld /var/lib/slurm/fakegpu /var/log/slurm
for i in 0 1; do [ -e "/var/lib/slurm/fakegpu/nvidia$i" ] || mknod "/var/lib/slurm/fakegpu/nvidia$i" c 1 3; done
if [ ! -f /etc/slurm/slurm.conf ] || grep -q "^# written by jmrn" /etc/slurm/slurm.conf; then
  old_conf=$(cat /etc/slurm/slurm.conf 2>/dev/null || true)
  cat > /etc/slurm/slurm.conf <<CONF
# written by jmrn tests/slurm/start-local-slurm.sh
ClusterName=jmrn-test
SlurmctldHost=${HOST}(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherParams=OverMemoryKill
JobAcctGatherFrequency=task=1
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageTRES=gres/gpu
AccountingStoreFlags=job_comment
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
DefMemPerCPU=1000
MinJobAge=300
ReturnToService=2
MailProg=/bin/true
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmdSpoolDir=/var/lib/slurm/slurmd
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
GresTypes=gpu
${NODE} NodeAddr=127.0.0.1 Gres=gpu:fake:2 State=UNKNOWN
PartitionName=cpu Nodes=ALL Default=YES MaxTime=2-00:00:00 State=UP
PartitionName=gpu Nodes=ALL MaxTime=2-00:00:00 State=UP
CONF
  cat > /etc/slurm/slurmdbd.conf <<CONF
# written by jmrn tests/slurm/start-local-slurm.sh
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=${DB_PASS}
StorageLoc=slurm_acct_db
PidFile=/run/slurm/slurmdbd.pid
LogFile=/var/log/slurm/slurmdbd.log
CONF
  chmod 600 /etc/slurm/slurmdbd.conf
  cat > /etc/slurm/gres.conf <<CONF
AutoDetect=off
Name=gpu Type=fake File=/var/lib/slurm/fakegpu/nvidia[0-1]
CONF
fi

# Daemons already running from an older version of this file: make them read the new one.
if [ -n "${old_conf:-}" ] && [ "$old_conf" != "$(cat /etc/slurm/slurm.conf)" ] \
    && scontrol ping 2>/dev/null | grep -q "is UP"; then
  scontrol reconfigure && echo "slurm.conf changed: slurmctld and slurmd reconfigured"
fi
if ! pgrep -x slurmdbd >/dev/null; then
  slurmdbd
  echo /run/slurm/slurmdbd.pid >> "$STATE/pidfiles"
  for _ in $(seq 100); do sacctmgr -n show cluster >/dev/null 2>&1 && break; sleep 0.1; done
fi
if ! scontrol ping 2>/dev/null | grep -q "is UP"; then
  slurmctld
  echo /run/slurm/slurmctld.pid >> "$STATE/pidfiles"
fi
if ! pgrep -x slurmd >/dev/null; then
  slurmd
  echo /run/slurm/slurmd.pid >> "$STATE/pidfiles"
fi
for _ in $(seq 100); do
  if sinfo -h -o "%t" 2>/dev/null | grep -qE "^idle"; then
    if sacct -n -X -S now >/dev/null 2>&1; then
      echo "local SLURM is up, with accounting: $(sinfo -h -o '%P %N %c CPUs %m MB %G %l %t' | tr '\n' ' ')"
      exit 0
    fi
  fi
  scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true
  sleep 0.2
done
echo "SLURM node did not become idle; see /var/log/slurm/" >&2
sinfo >&2 || true
exit 1
