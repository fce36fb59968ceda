#!/usr/bin/env bash
# Measures how long three region nodes take to agree on the counts after a burst of commands:
# starts three release-build nodes (ports 8091-8093, fresh databases, topics of their own) on the
# in-memory test broker, sends MODELS registrations + MODELS activations to the first node, then
# polls every node's GET /v1/counts until all report the expected totals.
#
#   scripts/bench-convergence.sh [MODELS=5000] [CONCURRENCY=16]
set -euo pipefail

# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$AIGO_ROOT"

# shellcheck source=bench-cluster.sh source-path=SCRIPTDIR
source scripts/bench-cluster.sh

MODELS=${1:-5000}
CONCURRENCY=${2:-16}
bench_cluster_up

expected=$MODELS
start=$(date +%s.%N)
"$BENCH_BIN" load --target http://127.0.0.1:8091 --token "$TOKEN" --models "$MODELS" --concurrency "$CONCURRENCY"
sent=$(date +%s.%N)
all_agree() {
    local entry counts
    for entry in "${REGIONS[@]}"; do
        counts=$(curl -fsS "http://127.0.0.1:${entry##*:}/v1/counts") || return 1
        [[ $(jq '.total' <<<"$counts") == "$expected" && $(jq '.active' <<<"$counts") == "$expected" ]] || return 1
    done
}
deadline=$((SECONDS + 300))
until all_agree; do
    ((SECONDS < deadline)) || die "nodes did not converge within 300 s"
    sleep 0.02
done
converged=$(date +%s.%N)
python3 - "$start" "$sent" "$converged" "$MODELS" <<'PY'
import sys
start, sent, done, models = map(float, sys.argv[1:])
print(f"{int(2 * models)} commands sent in {sent - start:.2f} s; all three nodes agree on "
      f"total={int(models)} active={int(models)} {done - sent:.3f} s after the last answer "
      f"({done - start:.2f} s after the first command)")
PY
