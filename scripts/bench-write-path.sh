#!/usr/bin/env bash
# What a command costs on a model with a long history (issue #12: the write path reads less).
#
#   scripts/bench-write-path.sh [HISTORY=10000] [RUNS=300]
#
# One node (release build, port 8098, a fresh database, the in-memory test broker). It gives
# model acme/long HISTORY status changes, then times RUNS more on it and RUNS on acme/short
# (one event), twice. Then the baseline, in the same run on the same data: a trigger makes
# every stream head unusable, so every command folds its model's whole stream as the code
# before the heads did, and the same timings are taken again.
set -euo pipefail

# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$AIGO_ROOT"

HISTORY=${1:-10000}
RUNS=${2:-300}
PORT=8098
TOKEN=bench-admin-token-0123456789
DATABASE="aigo_bench_write_path_$(date +%s)"
ADMIN_URL=postgres://postgres@127.0.0.1:5432/postgres
DIR=$(mktemp -d)
BIN=${BIN:-"${CARGO_TARGET_DIR:-$AIGO_ROOT/target}/release/region-node"}

scripts/services.sh up >/dev/null
[[ -n "${BIN_PREBUILT:-}" ]] || cargo build --release -p region-node --bin region-node

cat >"$DIR/node.toml" <<TOML
region = "eu-west"
[http]
listen = "127.0.0.1:$PORT"
commands_per_second = 100000
command_burst = 100000
[database]
url = "postgres://postgres@127.0.0.1:5432/$DATABASE"
[kafka]
brokers = "127.0.0.1:19092"
topic_prefix = "$DATABASE"
[[tokens]]
name = "admin"
secret = "$TOKEN"
scopes = ["admin"]
TOML

NODE_PID=
cleanup() {
    [[ -n "$NODE_PID" ]] && kill "$NODE_PID" 2>/dev/null && wait "$NODE_PID" 2>/dev/null
    psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $DATABASE WITH (FORCE)" >/dev/null 2>&1
    rm -rf "$DIR"
}
trap cleanup EXIT

"$BIN" --config "$DIR/node.toml" migrate >/dev/null 2>&1
"$BIN" --config "$DIR/node.toml" serve >"$DIR/node.log" 2>&1 &
NODE_PID=$!
wait_for_port 127.0.0.1 "$PORT" 30
for id in acme/long acme/short; do
    curl -fsS -o /dev/null -X POST -H "authorization: Bearer $TOKEN" \
        -H "content-type: application/json" \
        -d "{\"id\":\"$id\",\"provider\":\"acme\",\"name\":{\"en\":\"$id\"}}" \
        "http://127.0.0.1:$PORT/v1/models"
done
log "acme/long: $HISTORY events"
python3 scripts/bench-write-path.py "$PORT" "$TOKEN" acme/long "$HISTORY" >/dev/null

timings() {
    for _ in 1 2; do
        python3 scripts/bench-write-path.py "$PORT" "$TOKEN" acme/long "$RUNS"
        python3 scripts/bench-write-path.py "$PORT" "$TOKEN" acme/short "$RUNS"
    done
}
log "with stream heads"
timings
psql -q "postgres://postgres@127.0.0.1:5432/$DATABASE" <<'SQL'
CREATE FUNCTION unusable_head() RETURNS trigger AS $$
BEGIN NEW.format := 0; RETURN NEW; END $$ LANGUAGE plpgsql;
CREATE TRIGGER unusable BEFORE INSERT OR UPDATE ON stream_heads
    FOR EACH ROW EXECUTE FUNCTION unusable_head();
UPDATE stream_heads SET format = 0;
SQL
log "baseline: every head unusable, every command folds its whole stream"
timings
