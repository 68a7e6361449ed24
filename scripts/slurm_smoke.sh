#!/usr/bin/env bash
# End-to-end test of the SLURM profile (profiles/slurm) on a real, throwaway single-node SLURM cluster.
#
#   scripts/slurm_smoke.sh        # as root on Debian 12 (SLURM 22.05), with apt and the project's Python
#
# 1. installs what is missing: Debian's SLURM (slurmctld, slurmd, slurmdbd, client), munge and MariaDB
#    (apt), the pinned snakemake-executor-plugin-slurm (pip) and the project itself (pip install -e .);
# 2. starts, all under $SLURM_SMOKE_DIR (default /tmp/leukoreport-slurm-smoke) and bound to 127.0.0.1:
#    munged, a private MariaDB, slurmdbd (accounting, which the plugin reads with `sacct`), slurmctld and
#    one slurmd with all CPUs of this machine; no systemd needed, nothing under /etc is touched (only a
#    link /run/slurm/conf to its configuration while it runs, see RUN_CONF_LINK);
# 3. copies the project (like tests/conftest.py) and runs
#    `snakemake --executor slurm --workflow-profile profiles/slurm --configfile config/smoke.yaml`;
# 4. checks that the run's jobs are in `sacct`, all COMPLETED, as many per rule (from the job comment
#    rule_<rule>_wildcards_...) as the dry run planned, and that results/report/{report,summary}.pdf exist;
# 5. stops everything it started (also on failure or Ctrl-C) and prints one line: PASS or FAIL, with timings.
#
# Re-runnable: installs are skipped when present, leftovers of an earlier run (its daemons, by pid file)
# are stopped and its folder is wiped. On failure the folder is kept (logs in $SLURM_SMOKE_DIR/log).
# Environment: PYTHON (default python), SLURM_SMOKE_DIR, SLURM_SMOKE_PORT (first of four TCP ports,
# default 16817), SLURM_SMOKE_TIMEOUT (workflow limit in seconds, default 1800), SLURM_SMOKE_KEEP=1 (keep
# the folder after a pass).
set -Eeuo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python}
WORK=${SLURM_SMOKE_DIR:-/tmp/leukoreport-slurm-smoke}
PORT=${SLURM_SMOKE_PORT:-16817}
TIMEOUT=${SLURM_SMOKE_TIMEOUT:-1800}
KEEP=${SLURM_SMOKE_KEEP:-0}
CLUSTER=leukosmoke
NODE=localhost
PLUGIN_PINS=(snakemake-executor-plugin-slurm==2.8.0 snakemake-executor-plugin-slurm-jobstep==0.6.1)
APT_PACKAGES=(slurmctld slurmd slurm-client slurmdbd slurm-wlm-basic-plugins slurm-wlm-mysql-plugin
              munge mariadb-server mariadb-client)
PROJECT_FILES=(Snakefile workflow config templates data profiles)

CTLD_PORT=$PORT SLURMD_PORT=$((PORT + 1)) DBD_PORT=$((PORT + 2)) DB_PORT=$((PORT + 3))
DAEMONS=(munged mariadbd slurmdbd slurmctld slurmd)   # start order; stopped in reverse
# snakemake-executor-plugin-slurm-jobstep 0.6.1 starts each job's `srun` with every SLURM_* variable but a
# few removed, SLURM_CONF included, so srun inside a job looks for the configuration where SLURM looks
# without SLURM_CONF: /etc/slurm/slurm.conf, then /run/slurm/conf/slurm.conf (the node-local cache of
# "configless" SLURM). The script links the latter to its configuration folder while the cluster runs.
RUN_CONF_LINK=/run/slurm/conf

T_START=$SECONDS
T_INSTALL=- T_CLUSTER=- T_WORKFLOW=- T_CHECK=-
RESULT="FAIL" MESSAGE="" STARTED=0 JOB_SUMMARY="" SNAKEMAKE_PID=""
export SLURM_CONF=$WORK/etc/slurm.conf

log() { printf '[slurm-smoke %4ds] %s\n' "$((SECONDS - T_START))" "$*"; }

# One-line error naming what failed; with a log file, its last lines (joined) are appended.
fail() {
    local msg=$1 logfile=${2:-}
    if [[ -n $logfile && -s $logfile ]]; then
        msg+=" -- tail of $logfile: $(tail -n "${3:-6}" "$logfile" | tr -s '\n\t' '  ' | cut -c1-1500)"
    fi
    MESSAGE=$msg
    exit 1
}

on_err() {  # an unexpected failing command (set -e): name it and its line
    [[ -n $MESSAGE ]] || MESSAGE="line $1: command failed (exit $2): $3"
}
trap 'on_err "$LINENO" "$?" "$BASH_COMMAND"' ERR

pid_of() { [[ -s $WORK/run/$1.pid ]] && cat "$WORK/run/$1.pid" || true; }

alive() {  # alive NAME PID: the process exists and is the program we started under that name
    local pid=$2
    [[ -n $pid && -r /proc/$pid/cmdline ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$1"
}

stop_daemon() {
    local name=$1 pid i
    pid=$(pid_of "$name")
    alive "$name" "$pid" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 40); do alive "$name" "$pid" || return 0; sleep 0.25; done
    log "$name (pid $pid) did not stop on SIGTERM; killing it"
    kill -KILL "$pid" 2>/dev/null || true
}

stop_snakemake() {  # an interrupted workflow: SIGINT makes snakemake cancel its SLURM jobs
    local i
    [[ -n $SNAKEMAKE_PID ]] && kill -0 "$SNAKEMAKE_PID" 2>/dev/null || return 0
    kill -INT "$SNAKEMAKE_PID" 2>/dev/null
    for i in $(seq 1 60); do kill -0 "$SNAKEMAKE_PID" 2>/dev/null || return 0; sleep 1; done
    pkill -KILL -P "$SNAKEMAKE_PID" 2>/dev/null
    kill -KILL "$SNAKEMAKE_PID" 2>/dev/null
}

stop_cluster() {
    local i name
    if alive slurmctld "$(pid_of slurmctld)"; then  # cancel what is left, so that no job step outlives slurmd
        scancel --clusters="$CLUSTER" --full --user=root >/dev/null 2>&1 || true
        for i in $(seq 1 30); do
            [[ -z $(squeue -h -o %i 2>/dev/null) ]] && break
            sleep 1
        done
    fi
    for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do stop_daemon "${DAEMONS[i]}"; done
}

finish() {
    local rc=$?
    trap - ERR EXIT INT TERM
    set +e
    stop_snakemake
    if ((STARTED)); then
        log "stopping the cluster"
        stop_cluster
    fi
    remove_conf_link
    if [[ $RESULT == PASS && $rc -eq 0 ]]; then
        [[ $KEEP == 1 ]] || rm -rf "$WORK"
        echo "PASS slurm smoke: $JOB_SUMMARY; report.pdf and summary.pdf written;" \
            "install ${T_INSTALL}s, cluster start ${T_CLUSTER}s, workflow ${T_WORKFLOW}s, checks ${T_CHECK}s," \
            "total $((SECONDS - T_START))s"
    else
        [[ -n $MESSAGE ]] || MESSAGE="interrupted or failed (exit $rc)"
        local kept=""
        [[ -d $WORK/log ]] && kept="logs kept in $WORK/log; "
        echo "FAIL slurm smoke: $MESSAGE (${kept}total $((SECONDS - T_START))s)" >&2
        ((rc)) || rc=1
    fi
    exit "$rc"
}
trap finish EXIT
trap 'MESSAGE="interrupted"; exit 130' INT TERM

# ---------------------------------------------------------------------------------------------- install
install_missing() {
    local t0=$SECONDS missing=() cmd
    [[ $(id -u) -eq 0 ]] || fail "must run as root (installs packages and starts the SLURM daemons)"
    for cmd in slurmctld slurmd slurmdbd sbatch sacct sacctmgr munged mungekey mariadbd mariadb-install-db mariadb; do
        command -v "$cmd" >/dev/null || missing+=("$cmd")
    done
    [[ -e /usr/lib/x86_64-linux-gnu/slurm-wlm/accounting_storage_mysql.so ]] ||
        ls /usr/lib/*/slurm-wlm/accounting_storage_mysql.so >/dev/null 2>&1 || missing+=(slurm-wlm-mysql-plugin)
    if ((${#missing[@]})); then
        log "installing ${APT_PACKAGES[*]} (missing: ${missing[*]})"
        # No service may start from the packages' postinst (no systemd here; we start our own daemons).
        local policy_created=0
        if [[ ! -e /usr/sbin/policy-rc.d ]]; then
            printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
            policy_created=1
        fi
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >"$WORK.apt.log" 2>&1 || fail "apt-get update failed" "$WORK.apt.log"
        apt-get install -y -qq --no-install-recommends "${APT_PACKAGES[@]}" >>"$WORK.apt.log" 2>&1 ||
            { if ((policy_created)); then rm -f /usr/sbin/policy-rc.d; fi; fail "apt-get install failed" "$WORK.apt.log"; }
        if ((policy_created)); then rm -f /usr/sbin/policy-rc.d; fi
        rm -f "$WORK.apt.log"
        log "apt packages installed in $((SECONDS - t0))s"
    fi
    # WeasyPrint (the PDF reports) needs Pango, as in .ci/run.
    if ! ldconfig -p | grep 'libpango-1.0.so' >/dev/null; then
        apt-get install -y -qq libpango-1.0-0 libpangoft2-1.0-0 >/dev/null 2>&1 || fail "could not install Pango"
    fi
    if ! "$PYTHON" - "${PLUGIN_PINS[@]}" <<'EOF' 2>/dev/null; then
import sys
from importlib.metadata import version
sys.exit(any(version(name) != want for name, want in (pin.split("==") for pin in sys.argv[1:])))
EOF
        log "pip install ${PLUGIN_PINS[*]}"
        "$PYTHON" -m pip install -q "${PLUGIN_PINS[@]}" >"$WORK.pip.log" 2>&1 || fail "pip install of the SLURM plugin failed" "$WORK.pip.log"
        rm -f "$WORK.pip.log"
    fi
    if ! "$PYTHON" -c 'import leukoreport, snakemake' 2>/dev/null; then
        log "pip install -e $ROOT"
        "$PYTHON" -m pip install -q -e "$ROOT" >"$WORK.pip.log" 2>&1 || fail "pip install -e $ROOT failed" "$WORK.pip.log"
        rm -f "$WORK.pip.log"
    fi
    T_INSTALL=$((SECONDS - t0))
}

# --------------------------------------------------------------------------------------------- cluster
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start NAME COMMAND...: run a daemon in the foreground mode of its own, in the background of this script.
start() {
    local name=$1
    shift
    # own session: a Ctrl-C reaches the script and snakemake, not the daemons, which finish() stops in order
    setsid "$@" >>"$WORK/log/$name.out" 2>&1 </dev/null &
    echo $! >"$WORK/run/$name.pid"
}

# wait_until NAME LOGFILE SECONDS CHECK...: until CHECK succeeds; fails naming NAME if it died or timed out.
wait_until() {
    local name=$1 logfile=$2 limit=$3
    shift 3
    local deadline=$((SECONDS + limit)) check=$WORK/log/$name.check
    while ((SECONDS < deadline)); do
        if timeout 10 "$@" >"$check" 2>&1; then return 0; fi
        if ! alive "$name" "$(pid_of "$name")"; then
            [[ -s $logfile ]] || logfile=$WORK/log/$name.out
            fail "$name did not start (exited)" "$logfile"
        fi
        sleep 0.25
    done
    [[ -s $logfile ]] || logfile=$WORK/log/$name.out
    fail "$name did not become ready within ${limit}s; the check '$*' said: $(tail -n 3 "$check" | tr -s '\n' ' ')" "$logfile" 4
}

cleanup_previous() {  # an earlier run that was killed (SIGKILL) left its cluster running: stop it in order
    local name
    if [[ -d $WORK/run ]]; then
        for name in "${DAEMONS[@]}"; do
            if alive "$name" "$(pid_of "$name")"; then
                log "stopping the cluster left over from an earlier run"
                stop_cluster
                break
            fi
        done
    fi
    remove_conf_link
    rm -rf "$WORK"
}

remove_conf_link() {  # only our own link (into $WORK)
    if [[ -L $RUN_CONF_LINK && $(readlink "$RUN_CONF_LINK") == "$WORK/etc" ]]; then
        rm -f "$RUN_CONF_LINK"
        rmdir "$(dirname "$RUN_CONF_LINK")" 2>/dev/null || true
    fi
}

link_conf() {
    [[ ! -e /etc/slurm/slurm.conf ]] ||
        fail "/etc/slurm/slurm.conf exists (SLURM is configured on this machine): jobs' srun would use it instead of the test cluster's; run this on a machine without SLURM configured"
    [[ ! -e $RUN_CONF_LINK && ! -L $RUN_CONF_LINK ]] ||
        fail "$RUN_CONF_LINK exists (a configless slurmd on this machine?); run this on a machine without SLURM configured"
    mkdir -p "$(dirname "$RUN_CONF_LINK")"
    ln -s "$WORK/etc" "$RUN_CONF_LINK"
}

write_configs() {
    local cpus mem_mb host
    cpus=$(nproc)
    mem_mb=$(awk '/^MemTotal:/ {print int($2 / 1024) - 512}' /proc/meminfo)
    host=$(hostname -s)
    ((cpus >= 2)) || fail "need at least 2 CPUs (the smoke config trains with 2 threads), have $cpus"
    ((mem_mb >= 4000)) || fail "need at least 4.5 GiB of memory (the smoke jobs ask for up to 3000 MB), have $((mem_mb + 512)) MB"

    cat >"$WORK/etc/slurm.conf" <<EOF
# Throwaway single-node cluster of scripts/slurm_smoke.sh (no systemd, no cgroups, everything as root).
ClusterName=$CLUSTER
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$WORK/munge/munge.socket
StateSaveLocation=$WORK/state/slurmctld
SlurmdSpoolDir=$WORK/state/slurmd
SlurmctldPidFile=$WORK/run/slurmctld.daemon.pid
SlurmdPidFile=$WORK/run/slurmd.daemon.pid
SlurmctldLogFile=$WORK/log/slurmctld.log
SlurmdLogFile=$WORK/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SlurmdParameters=config_overrides
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
# Reject at submission (sbatch error, the rule fails at once) a job that could never run here.
EnforcePartLimits=ALL
MinJobAge=300
KillWait=5
InactiveLimit=0
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
# With auth/munge this names the munged socket for talking to slurmdbd (sacct, sacctmgr, slurmctld).
AccountingStoragePass=$WORK/munge/munge.socket
AccountingStoreFlags=job_comment
JobCompType=jobcomp/none
NodeName=$NODE NodeHostname=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF

    cat >"$WORK/etc/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthInfo=socket=$WORK/munge/munge.socket
DbdHost=$host
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
DebugLevel=info
LogFile=$WORK/log/slurmdbd.log
PidFile=$WORK/run/slurmdbd.daemon.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=slurm-smoke
StorageLoc=slurm_acct_db
EOF
    chmod 600 "$WORK/etc/slurmdbd.conf"
}

start_cluster() {
    local t0=$SECONDS port
    for port in "$CTLD_PORT" "$SLURMD_PORT" "$DBD_PORT" "$DB_PORT"; do
        port_free "$port" || fail "TCP port $port on 127.0.0.1 is in use (another SLURM or MariaDB?); set SLURM_SMOKE_PORT to a free range"
    done
    mkdir -p "$WORK"/{etc,run,log,munge,mysql,state/slurmctld,state/slurmd,project}
    chmod 700 "$WORK" "$WORK/munge"
    write_configs
    link_conf
    STARTED=1

    log "starting munged"
    mungekey --create --keyfile="$WORK/munge/munge.key" >"$WORK/log/mungekey.out" 2>&1 ||
        fail "mungekey could not create a key" "$WORK/log/mungekey.out"
    chmod 400 "$WORK/munge/munge.key"
    start munged munged --foreground --force --key-file="$WORK/munge/munge.key" \
        --socket="$WORK/munge/munge.socket" --pid-file="$WORK/run/munged.daemon.pid" \
        --log-file="$WORK/log/munged.log" --seed-file="$WORK/munge/munge.seed"
    wait_until munged "$WORK/log/munged.log" 20 \
        bash -c "munge -n -S '$WORK/munge/munge.socket' | unmunge -S '$WORK/munge/munge.socket'"

    log "starting MariaDB"
    mariadb-install-db --no-defaults --user=root --datadir="$WORK/mysql" --skip-test-db \
        >"$WORK/log/mariadb-install-db.out" 2>&1 ||
        fail "mariadb-install-db failed" "$WORK/log/mariadb-install-db.out"
    start mariadbd mariadbd --no-defaults --user=root --datadir="$WORK/mysql" \
        --socket="$WORK/run/mariadb.sock" --port="$DB_PORT" --bind-address=127.0.0.1 --skip-name-resolve \
        --pid-file="$WORK/run/mariadbd.daemon.pid" --log-error="$WORK/log/mariadb.log" \
        --innodb-buffer-pool-size=256M --innodb-log-file-size=64M --innodb-lock-wait-timeout=900
    wait_until mariadbd "$WORK/log/mariadb.log" 60 \
        mariadb-admin --no-defaults --socket="$WORK/run/mariadb.sock" -u root ping
    mariadb --no-defaults --socket="$WORK/run/mariadb.sock" -u root >"$WORK/log/mariadb-setup.out" 2>&1 <<'EOF' ||
CREATE DATABASE slurm_acct_db;
CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm-smoke';
CREATE USER 'slurm'@'localhost' IDENTIFIED BY 'slurm-smoke';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
EOF
        fail "could not create the accounting database and user in MariaDB" "$WORK/log/mariadb-setup.out"

    log "starting slurmdbd"
    start slurmdbd slurmdbd -D
    wait_until slurmdbd "$WORK/log/slurmdbd.log" 60 sacctmgr -n list cluster
    sacctmgr -i add cluster "$CLUSTER" >"$WORK/log/sacctmgr.out" 2>&1 ||
        fail "sacctmgr could not register cluster $CLUSTER" "$WORK/log/sacctmgr.out"

    log "starting slurmctld"
    start slurmctld slurmctld -D -i
    wait_until slurmctld "$WORK/log/slurmctld.log" 60 bash -c "scontrol ping | grep -q UP"

    log "starting slurmd ($(nproc) CPUs)"
    start slurmd slurmd -D -N "$NODE"
    wait_until slurmd "$WORK/log/slurmd.log" 60 bash -c "sinfo -h -N -n '$NODE' -o %T | grep -qx idle"

    # A trivial job step, so that a broken launch fails here and not in the middle of the workflow.
    timeout 60 srun --job-name=launch-check -n1 -t 1 true >"$WORK/log/srun-check.out" 2>&1 ||
        fail "a trivial 'srun true' failed on the fresh cluster" "$WORK/log/slurmd.log"
    T_CLUSTER=$((SECONDS - t0))
    log "cluster up in ${T_CLUSTER}s: $(sinfo -h -o '%P %D %c CPUs %m MB %T' | head -n1)"
}

# -------------------------------------------------------------------------------------------- workflow
copy_project() {  # like tests/conftest.py's copy_project, plus the profile
    local name
    for name in "${PROJECT_FILES[@]}"; do
        [[ -e $ROOT/$name ]] || fail "$ROOT/$name is missing"
        cp -r "$ROOT/$name" "$WORK/project/$name"
    done
    find "$WORK/project" -name __pycache__ -type d -prune -exec rm -rf {} +
}

# Jobs per rule the dry run plans ('rule count' lines), without `all` (a target without output runs
# locally), as "rule count" lines in $WORK/log/expected.txt.
expected_jobs() {
    (cd "$WORK/project" && "$PYTHON" -m snakemake -n --quiet rules --configfile config/smoke.yaml) \
        >"$WORK/log/dryrun.log" 2>&1 || fail "snakemake dry run failed" "$WORK/log/dryrun.log" 12
    awk '/^job +count/ {on = 1; next} on && /^total/ {exit} on && $1 != "all" && $2 ~ /^[0-9]+$/ {print $1, $2}' \
        "$WORK/log/dryrun.log" | sort >"$WORK/log/expected.txt"
    [[ -s $WORK/log/expected.txt ]] || fail "could not read the planned jobs from the dry run" "$WORK/log/dryrun.log" 12
}

run_workflow() {
    local t0=$SECONDS rc=0
    log "snakemake --executor slurm --workflow-profile profiles/slurm --configfile config/smoke.yaml (log: $WORK/log/snakemake.log)"
    # --max-threads: rules asking for more threads than this node has CPUs would never start (locally
    # --cores caps them, on SLURM nothing does). Polling sacct every few seconds instead of the profile's 40
    # keeps this short. In the background, so that a signal to the script is handled at once.
    (cd "$WORK/project" && exec timeout --foreground -s INT -k 60 "$TIMEOUT" "$PYTHON" -m snakemake \
        --executor slurm --workflow-profile profiles/slurm --configfile config/smoke.yaml --jobs 8 \
        --max-threads "$(nproc)" --slurm-init-seconds-before-status-checks 2 --latency-wait 10) \
        >"$WORK/log/snakemake.log" 2>&1 &
    SNAKEMAKE_PID=$!
    wait "$SNAKEMAKE_PID" || rc=$?
    SNAKEMAKE_PID=""
    T_WORKFLOW=$((SECONDS - t0))
    if ((rc)); then
        local slurm_logs
        slurm_logs=$(find "$WORK/project/.snakemake/slurm_logs" -name '*.log' -size +0 2>/dev/null | head -n 3 | tr '\n' ' ' || true)
        ((rc == 124)) && fail "the workflow did not finish within ${TIMEOUT}s (SLURM_SMOKE_TIMEOUT)" "$WORK/log/snakemake.log" 12
        fail "the workflow failed under SLURM (exit $rc; SLURM job logs kept: ${slurm_logs:-none})" "$WORK/log/snakemake.log" 12
    fi
    log "workflow finished in ${T_WORKFLOW}s"
}

check_results() {
    local t0=$SECONDS run_id expected got i n_jobs bad f
    run_id=$(grep -m1 -oE 'SLURM run ID: [0-9a-zA-Z_-]+' "$WORK/log/snakemake.log" | awk '{print $4}' || true)
    [[ -n $run_id ]] || fail "no 'SLURM run ID' in the snakemake log: did it use the slurm executor?" "$WORK/log/snakemake.log"
    expected=$(cat "$WORK/log/expected.txt")

    # JobName is the run ID; Comment is rule_<rule>[_wildcards_<values>] (stored with AccountingStoreFlags=job_comment).
    local sacct_cmd=(sacct -X --parsable2 --noheader --clusters="$CLUSTER" --starttime=now-1days --name="$run_id"
                     --format=JobID,Comment%200,State,ExitCode,Elapsed,AllocCPUS,ReqMem)
    for i in $(seq 1 20); do  # the last job's end reaches slurmdbd asynchronously
        "${sacct_cmd[@]}" >"$WORK/log/sacct.txt" 2>"$WORK/log/sacct.err" || fail "sacct failed" "$WORK/log/sacct.err"
        got=$(awk -F'|' '$3 == "COMPLETED" {c = $2; sub(/^rule_/, "", c); sub(/_wildcards_.*/, "", c); n[c]++}
                         END {for (r in n) print r, n[r]}' "$WORK/log/sacct.txt" | sort)
        [[ $got == "$expected" ]] && break
        sleep 1
    done
    n_jobs=$(wc -l <"$WORK/log/sacct.txt")
    bad=$(awk -F'|' '$3 != "COMPLETED" {print $1 " " $2 " " $3}' "$WORK/log/sacct.txt" | head -n 5 | tr '\n' ';' || true)
    [[ -z $bad ]] || fail "jobs of run $run_id not COMPLETED in sacct: $bad"
    if [[ $got != "$expected" ]]; then
        fail "sacct's COMPLETED jobs per rule ($(echo $got | tr '\n' ' ')) differ from the dry run's ($(echo $expected | tr '\n' ' '))"
    fi
    echo "sacct (run $run_id, $n_jobs jobs):"
    sacct -X --clusters="$CLUSTER" --starttime=now-1days --name="$run_id" \
        --format=JobID,Comment%55,State,ExitCode,Elapsed,AllocCPUS,ReqMem | sed 's/^/    /'

    for f in report.pdf summary.pdf; do
        f=$WORK/project/results/report/$f
        [[ -s $f ]] || fail "$f was not written"
        [[ $(head -c 5 "$f") == "%PDF-" ]] || fail "$f is not a PDF"
    done
    JOB_SUMMARY="$n_jobs SLURM jobs of $(echo "$expected" | wc -l) rules COMPLETED in sacct"
    T_CHECK=$((SECONDS - t0))
}

cleanup_previous
mkdir -p "$(dirname "$WORK")"
install_missing
start_cluster
copy_project
expected_jobs
run_workflow
check_results
RESULT=PASS
