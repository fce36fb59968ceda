#!/usr/bin/env bash
# Idle CPU of the demo: how much of one core the three region nodes and the dev broker use
# while nothing happens (issue #13: "an idle system must be idle", goal <= 5 % in total).
#
# Uses the demo if its three nodes are ready, else brings it up with scripts/demo.sh (which
# builds and runs the *debug* region-node on the durable sqlite dev broker, 127.0.0.1:9092).
# Lets it settle for SETTLE seconds, then reads utime+stime of each process (all its threads,
# ended ones included) from /proc/<pid>/stat at the start and the end of a SECONDS-long window
# and prints each one's share of one core and the total. Bounded: the demo's start-up has its
# own limits (60 s for each node to become ready; a first install or a build takes longer),
# then SETTLE + SECONDS. What it started, it stops on exit (the nodes with
# `scripts/demo.sh down`, the dev broker with `scripts/services.sh down dev` if it was not
# running before); a demo that was already running is left as it was.
#
#   scripts/bench-idle-cpu.sh [SECONDS=60] [SETTLE=20]
#   IDLE_CPU_KEEP=1 scripts/bench-idle-cpu.sh      # leave what it started running (not AIGO_*:
#                                                  # the nodes read every AIGO_ variable)
#   AIGO_KAFKA__FETCH_WAIT_MS=1000 scripts/bench-idle-cpu.sh   # settings for the nodes it starts
set -euo pipefail

# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$AIGO_ROOT"

WINDOW=${1:-60}
SETTLE=${2:-20}
[[ "$WINDOW" =~ ^[0-9]+$ && "$WINDOW" -gt 0 ]] || die "SECONDS must be a positive integer"
[[ "$SETTLE" =~ ^[0-9]+$ ]] || die "SETTLE must be a non-negative integer"

REGIONS=(eu-west:8081 us-east:8082 ap-northeast:8083)
NODES_DIR="$AIGO_STATE_DIR/nodes"
BROKER_PIDFILE="$AIGO_STATE_DIR/nisshi-dev/nisshi.pid"
TICKS=$(getconf CLK_TCK)

started_nodes=false
started_broker=false

# alive PIDFILE: print the pid recorded there if that process is running.
alive() {
    local pid
    [[ -f "$1" ]] || return 1
    pid=$(<"$1")
    [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
    echo "$pid"
}

demo_ready() {
    local entry
    for entry in "${REGIONS[@]}"; do
        curl -fsS "http://127.0.0.1:${entry##*:}/readyz" >/dev/null 2>&1 || return 1
    done
}

cleanup() {
    [[ "${IDLE_CPU_KEEP:-0}" == 1 ]] && return 0
    if $started_nodes; then
        log "stopping the demo nodes this script started"
        scripts/demo.sh down || true
    fi
    if $started_broker; then
        log "stopping the dev broker this script started"
        scripts/services.sh down dev || true
    fi
}
trap cleanup EXIT

if demo_ready; then
    log "using the running demo"
else
    alive "$BROKER_PIDFILE" >/dev/null || started_broker=true
    started_nodes=true
    log "starting the demo (scripts/demo.sh)"
    scripts/demo.sh >/dev/null
fi

# cpu_ticks PID: utime + stime of the process (all its threads), in clock ticks. The fields
# are counted after the command name's closing parenthesis (a name may contain spaces).
cpu_ticks() {
    local stat rest
    stat=$(<"/proc/$1/stat") || return 1
    rest=${stat##*) }
    # shellcheck disable=SC2086 # split the fields on purpose
    set -- $rest
    # After the name: state=$1 ... utime is field 14 of the line, i.e. $12 here; stime $13.
    echo $((${12} + ${13}))
}

names=()
pids=()
for entry in "${REGIONS[@]}"; do
    region=${entry%%:*}
    pid=$(alive "$NODES_DIR/$region/pid") || die "$region is not running (no live pid in $NODES_DIR/$region/pid)"
    names+=("$region")
    pids+=("$pid")
done
broker=$(alive "$BROKER_PIDFILE") || die "the dev broker is not running ($BROKER_PIDFILE)"
names+=(nisshi-dev)
pids+=("$broker")

log "settling for ${SETTLE} s, then measuring ${WINDOW} s (pids: ${pids[*]})"
sleep "$SETTLE"

before=()
for pid in "${pids[@]}"; do before+=("$(cpu_ticks "$pid")"); done
t0=$(date +%s.%N)
sleep "$WINDOW"
after=()
for pid in "${pids[@]}"; do
    after+=("$(cpu_ticks "$pid")") || die "pid $pid ended during the measurement"
done
t1=$(date +%s.%N)

rows=()
for i in "${!pids[@]}"; do
    rows+=("${names[$i]}" "${pids[$i]}" "$((after[i] - before[i]))")
done
python3 - "$t0" "$t1" "$TICKS" "${rows[@]}" <<'PY'
import sys
t0, t1, ticks = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
rows = sys.argv[4:]
elapsed = t1 - t0
print(f"idle CPU over {elapsed:.1f} s (% of one core; utime+stime from /proc/<pid>/stat)")
print(f"{'process':<14} {'pid':>8} {'cpu s':>8} {'% core':>8}")
total = 0.0
for i in range(0, len(rows), 3):
    name, pid, used = rows[i], rows[i + 1], int(rows[i + 2]) / ticks
    total += used
    print(f"{name:<14} {pid:>8} {used:>8.2f} {100 * used / elapsed:>7.1f}%")
print(f"{'total':<14} {'':>8} {total:>8.2f} {100 * total / elapsed:>7.1f}%")
PY
