#!/usr/bin/env bash
# The project's test command (CI runs it through .ci/run): installs what is
# missing, starts the services, then runs format check, lints and all tests.
set -euo pipefail

# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$AIGO_ROOT"

scripts/install-deps.sh
scripts/services.sh up

# Tests always use the machine's PostgreSQL and the in-memory test broker, never
# the durable dev broker on 9092, whatever the caller's environment says.
export DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres
export KAFKA_BROKERS=127.0.0.1:19092

# A clean clone in CI would otherwise rebuild every dependency (rdkafka's
# bundled librdkafka alone takes minutes on 2 cores): share one target dir.
if [[ -z "${CARGO_TARGET_DIR:-}" && "${CI:-}" == true ]]; then
    export CARGO_TARGET_DIR="${AIGO_CARGO_TARGET_DIR:-$HOME/.cache/aigo-tracker/target}"
    mkdir -p "$CARGO_TARGET_DIR"
    log "CARGO_TARGET_DIR=$CARGO_TARGET_DIR"
fi

log "cargo deny (licenses, bans, sources)"
cargo deny --all-features check --hide-inclusion-graph bans licenses sources
# The RustSec database lives on GitHub, which some machines (this project's CI among them)
# cannot reach: advisories are checked against a checkout of it when one is given
# (AIGO_ADVISORY_DB=/path/to/advisory-db), and the log says so when none is.
if [[ -n "${AIGO_ADVISORY_DB:-}" && -d "$AIGO_ADVISORY_DB" ]]; then
    log "cargo deny advisories (RustSec database: $AIGO_ADVISORY_DB)"
    dbs="$(mktemp -d)"
    # cargo-deny's directory name for https://github.com/rustsec/advisory-db.
    ln -s "$(realpath "$AIGO_ADVISORY_DB")" "$dbs/advisory-db-3157b0e258782691"
    sed "s|^db-path = .*|db-path = \"$dbs\"|" deny.toml >"$dbs/deny.toml"
    cargo deny --offline --config "$dbs/deny.toml" check advisories
    rm -rf "$dbs"
else
    log "NOTE: advisories not checked: no RustSec database at hand (set AIGO_ADVISORY_DB to a checkout)"
fi
log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
# A test that hangs fails within AIGO_TEST_STALL_MINUTES (default 30; the longest test binary,
# e2e, takes about 8 on 2 cores) with its stacks printed, instead of holding CI to its limit.
scripts/stall-watchdog.sh "${CARGO_TARGET_DIR:-$AIGO_ROOT/target}" "${AIGO_TEST_STALL_MINUTES:-30}" &
watchdog=$!
trap 'kill "$watchdog" 2>/dev/null' EXIT
log "cargo test"
cargo test --workspace
# The optional OTLP span export (feature `otlp`): linted and tested on its own build.
log "cargo clippy + test, region-node with the otlp feature"
cargo clippy -p region-node --features otlp --all-targets -- -D warnings
cargo test -p region-node --features otlp --test otlp_export
log "schemathesis"
scripts/schemathesis.sh
