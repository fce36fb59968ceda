#!/usr/bin/env bash
# The soak (issue #15), by hand: three regions (two processes in eu-west) on a durable broker
# and a PostgreSQL server of their own, behind fault-injecting proxies, under a steady mixed
# load while a seeded schedule kills and cuts everything; then the checker (see
# tests/tests/e2e/soak.rs for what it promises). `.ci/run` runs the same test for 75 s with a
# fixed seed; this runs it as long as you ask, on release builds, with a fresh seed.
#
#   scripts/soak.sh DURATION                # e.g. 30m, 90s, 1h
#   SOAK_SEED=123 scripts/soak.sh 30m       # replays a run's load and fault schedule
#   SOAK_WORKERS=32 scripts/soak.sh 30m     # more command workers
#
# The load here is the million-event run's of docs/RELIABILITY.md: 8 command workers and 16
# importers of 1,000-line batches (SOAK_WORKERS, SOAK_IMPORTERS, SOAK_IMPORT_LINES override
# it; the test's own defaults, which CI's short soak uses, are 12, 1 and 200): imports cost far
# less per event than single commands, so a 2-core machine carries the most events this way.
#   SOAK_BROKER=memory scripts/soak.sh 30m  # in-memory broker, frozen instead of SIGKILLed
#   SOAK_PG_SHARED_BUFFERS=2GB scripts/soak.sh 30m  # the soak's PostgreSQL with more buffers
#   SOAK_PG_STATEMENT_STATS=1 scripts/soak.sh 3m     # it loads pg_stat_statements (cost per statement)
#   scripts/cpu-split.py 150                # beside a run: CPU per process name (postgres, nisshi, ...)
#   REGION_NODE_BIN=/old/region-node SOAK_DEPLOY_BINARY=/new/region-node scripts/soak.sh 30m
#                                           # the rolling deploy is an upgrade
#
# The report (every fault with its time, the checker's figures) is printed and kept in
# target/soak/. Bounded: the run is stopped DURATION + 20 minutes after it started (set-up,
# convergence and the checks take a few minutes). Needs nothing running: it installs what is
# missing and starts its own broker and PostgreSQL server on free loopback ports.
set -euo pipefail

# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$AIGO_ROOT"

DURATION=${1:-}
[[ "$DURATION" =~ ^[0-9]+[smh]?$ ]] || die "usage: scripts/soak.sh DURATION (e.g. 30m, 90s, 1h)"
case "$DURATION" in
    *h) seconds=$((${DURATION%h} * 3600)) ;;
    *m) seconds=$((${DURATION%m} * 60)) ;;
    *) seconds=${DURATION%s} ;;
esac

scripts/install-deps.sh
SEED=${SOAK_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
TARGET_DIR=${CARGO_TARGET_DIR:-$AIGO_ROOT/target}
mkdir -p "$TARGET_DIR/soak"
REPORT="$TARGET_DIR/soak/soak-$(date -u +%Y%m%dT%H%M%SZ)-$DURATION-$SEED.log"

log "building the release test binary and region-node"
cargo build --release -p region-node --bin region-node
cargo test --release -p tests --test e2e --no-run

log "soak: $DURATION of faults, seed $SEED; report in $REPORT"
set +e
SOAK_WORKERS=${SOAK_WORKERS:-8} SOAK_IMPORTERS=${SOAK_IMPORTERS:-16} \
    SOAK_IMPORT_LINES=${SOAK_IMPORT_LINES:-1000} \
    SOAK_DURATION=$DURATION SOAK_SEED=$SEED timeout --signal=TERM --kill-after=30 \
    $((seconds + 1200)) \
    cargo test --release -p tests --test e2e -- soak:: --nocapture --test-threads 1 \
    2>&1 | tee "$REPORT"
status=${PIPESTATUS[0]}
set -e
grep '^\[soak\]' "$REPORT" >"$REPORT.summary" || true
if ((status == 0)); then
    log "soak passed; summary in $REPORT.summary"
else
    log "soak FAILED (exit $status); full output in $REPORT (SOAK_SEED=$SEED replays it)"
fi
exit "$status"
