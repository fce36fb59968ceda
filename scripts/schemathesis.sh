#!/usr/bin/env bash
# Fuzzes a real region node against its own OpenAPI document with Schemathesis: every documented
# operation (reads and, with an admin token, writes) gets a few generated requests, valid and
# invalid; any 5xx, undocumented status, wrong content type or body that breaks its schema fails.
#
#   scripts/schemathesis.sh [EXTRA SCHEMATHESIS ARGS...]   e.g. --max-examples 50 --seed 1
#
# Starts its own node (debug build, fresh database, topics of its own on the in-memory test
# broker 127.0.0.1:19092) and removes it afterwards. Schemathesis lives in a venv under
# ~/.cache/aigo-tracker/venv-py<version>, installed once. Overrides: SCHEMATHESIS_PORT (18181),
# SCHEMATHESIS_CHECKS (comma-separated, or `all`), SCHEMATHESIS_VENV, SCHEMATHESIS_PYTHON.
set -euo pipefail

# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$AIGO_ROOT"

SCHEMATHESIS_VERSION=4.32.5
PORT=${SCHEMATHESIS_PORT:-18181}
TOKEN=schemathesis-admin-token-0123456789
PREFIX="st-$(date +%s)-$$"
DATABASE="${PREFIX//-/_}"
BIN="${CARGO_TARGET_DIR:-$AIGO_ROOT/target}/debug/region-node"
DIR=$(mktemp -d)

# CPython 3.11 before 3.11.8 (Debian's 3.11.2 and pyenv's 3.11.7 alike) sometimes fails inside
# Hypothesis with "SystemError: AST constructor recursion depth mismatch" (gh-106905), so a
# 3.12 or newer interpreter is preferred where the machine has one; the run below also retries
# a run that only the tool itself broke.
pick_python() {
    local candidate
    # Each candidate must run: a pyenv shim exists for versions it will not run here.
    for candidate in "${SCHEMATHESIS_PYTHON:-}" \
        "$HOME"/.pyenv/versions/3.13*/bin/python3 "$HOME"/.pyenv/versions/3.12*/bin/python3 \
        /usr/bin/python3.13 /usr/bin/python3.12 /usr/bin/python3 python3; do
        if [[ -n "$candidate" ]] && "$candidate" -c 'import sys' >/dev/null 2>&1; then
            command -v "$candidate"
            return
        fi
    done
    die "no python3 found"
}
PYTHON=$(pick_python)
PY_VERSION=$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
VENV="${SCHEMATHESIS_VENV:-$HOME/.cache/aigo-tracker/venv-py$PY_VERSION}"

install_schemathesis() {
    if [[ -x "$VENV/bin/st" ]] && [[ "$("$VENV/bin/st" --version 2>/dev/null)" == *" $SCHEMATHESIS_VERSION" ]]; then
        return
    fi
    log "installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
    "$PYTHON" -m venv --clear "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
}

NODE_PID=
cleanup() {
    if [[ -n "$NODE_PID" ]]; then
        kill -TERM "$NODE_PID" 2>/dev/null || true
        wait "$NODE_PID" 2>/dev/null || true
    fi
    psql -h 127.0.0.1 -U postgres -qAtc "DROP DATABASE IF EXISTS $DATABASE WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$DIR"
}
trap cleanup EXIT

install_schemathesis
scripts/services.sh up >/dev/null
cargo build --quiet -p region-node

# Only what differs from the node's built-in defaults (region-node/src/config.rs). Short waits
# keep the run quick: a generated consistency token that names an event that never comes
# answers 504 after read_wait_ms.
cat >"$DIR/node.toml" <<TOML
region = "eu-west"
regions = ["eu-west", "us-east"]
[http]
listen = "127.0.0.1:$PORT"
read_wait_ms = 200
max_streams = 8
stream_tick_ms = 500
[database]
url = "postgres://postgres@127.0.0.1:5432/$DATABASE"
max_connections = 5
[kafka]
brokers = "127.0.0.1:19092"
topic_prefix = "$PREFIX"
[projector]
heartbeat_ms = 500
withdrawal_interval_ms = 1000
[[tokens]]
name = "schemathesis"
secret = "$TOKEN"
scopes = ["admin"]
TOML

if port_open 127.0.0.1 "$PORT"; then
    die "port $PORT is taken; set SCHEMATHESIS_PORT to a free one"
fi
log "starting a region node on 127.0.0.1:$PORT (log: $DIR/node.log)"
# The node reads AIGO_* variables as configuration: keep the caller's out of it.
mapfile -t inherited < <(compgen -e | grep '^AIGO_' || true)
env "${inherited[@]/#/--unset=}" RUST_LOG=warn "$BIN" --config "$DIR/node.toml" serve >"$DIR/node.log" 2>&1 &
NODE_PID=$!
wait_for_port 127.0.0.1 "$PORT" 60 "$NODE_PID" || { cat "$DIR/node.log" >&2; die "the node did not start"; }
deadline=$((SECONDS + 60))
until curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || { cat "$DIR/node.log" >&2; die "the node did not become ready"; }
    sleep 0.2
done

# /v1/stream is left out: an event stream never ends, so every request to it would only time
# out. The checks are those of "no 5xx and nothing outside the spec"; the ones that judge the
# API's design (e.g. positive_data_acceptance) are not asked for.
log "running schemathesis with $PYTHON (Python $PY_VERSION)"
run_schemathesis() {
    # From the scratch directory: Schemathesis keeps its crash cache (.schemathesis/) where it runs.
    # The hooks (scripts/schemathesis_hooks.py) teach it to send NDJSON bodies (imports).
    (cd "$DIR" && PYTHONPATH="$AIGO_ROOT/scripts" SCHEMATHESIS_HOOKS=schemathesis_hooks "$VENV/bin/st" --config-file "$AIGO_ROOT/scripts/schemathesis.toml" run "http://127.0.0.1:$PORT/openapi.json" \
        --header "Authorization: Bearer $TOKEN" \
        --checks "${SCHEMATHESIS_CHECKS:-not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance}" \
        --exclude-path /v1/stream \
        --phases examples,coverage,fuzzing,stateful \
        --max-examples 25 \
        --workers 2 \
        --request-timeout 10 \
        --generation-database none \
        --no-color \
        "$@")
}
status=0
for attempt in 1 2 3; do
    status=0
    run_schemathesis "$@" 2>&1 | tee "$DIR/schemathesis.out" || status=$?
    ((status == 0)) && break
    # A failed check is the API's fault: stop. Only a run whose sole problems are the tool's
    # own runtime errors (the interpreter bug above) is tried again.
    if grep -q '^Failures:' "$DIR/schemathesis.out" || ! grep -q 'Runtime Error' "$DIR/schemathesis.out"; then
        break
    fi
    log "schemathesis attempt $attempt broke inside the tool, not on the API; trying again"
done
if ((status != 0)); then
    log "schemathesis found problems (node log: its first panic, if any, and last lines below)"
    grep -m1 -A12 'panicked at' "$DIR/node.log" >&2 || true
    tail -n 40 "$DIR/node.log" >&2
    exit "$status"
fi
log "schemathesis: no failures"
