#!/usr/bin/env bash
# Watches the test binaries under a cargo target dir and turns a hang into a diagnosable
# failure: a test process still running after STALL_MINUTES gets every thread's stack printed
# (gdb) and is then killed, so `cargo test` fails at once, naming the binary, instead of
# holding CI silently until its time limit. Runs until killed; scripts/test.sh starts it.
#
#   scripts/stall-watchdog.sh TARGET_DIR [STALL_MINUTES]
set -uo pipefail

# shellcheck shell=bash source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

target_dir="$(realpath -m "${1:?usage: stall-watchdog.sh TARGET_DIR [STALL_MINUTES]}")"
limit_seconds=$((${2:-30} * 60))
# Only this run's tests: the caller's process group (a script runs its children in its own),
# never another run sharing the target dir, such as a 30-minute scripts/soak.sh.
own_group="$(ps -o pgid= -p $$ | tr -d ' ')"

while sleep 20; do
    for exe_link in /proc/[0-9]*/exe; do
        pid="${exe_link#/proc/}"
        pid="${pid%/exe}"
        exe="$(readlink "$exe_link" 2>/dev/null)" || continue
        # Test binaries only (target/debug/deps/NAME-HASH), never rustc or build scripts.
        [[ "$exe" == "$target_dir"/*/deps/* ]] || continue
        [[ "$(ps -o pgid= -p "$pid" 2>/dev/null | tr -d ' ')" == "$own_group" ]] || continue
        age="$(ps -o etimes= -p "$pid" 2>/dev/null | tr -d ' ')" || continue
        [[ -n "$age" && "$age" -ge "$limit_seconds" ]] || continue
        log "STALLED: test process $pid ($exe) has run ${age}s; its threads' stacks follow, then it is killed"
        if command -v gdb >/dev/null; then
            timeout 120 gdb -p "$pid" -batch -ex 'thread apply all bt 30' 2>&1 |
                grep -E '^(Thread|#)' | head -n 1500 >&2
        else
            log "gdb is not installed: no stacks"
        fi
        kill -s KILL "$pid" 2>/dev/null
    done
done
