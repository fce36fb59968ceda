#!/usr/bin/env bash
# Brings the whole system up locally and runs the demo: installs what is missing, starts
# PostgreSQL and the durable dev broker, builds and starts three region nodes on fixed ports,
# then registers 63 models across the three home regions (51 active) and makes them available.
#
#   scripts/demo.sh          # up (idempotent: running nodes are kept, the demo data is not doubled)
#   scripts/demo.sh down     # stop the three nodes (the services stay up)
#   scripts/demo.sh status
#   scripts/demo.sh reset    # stop the nodes and the dev broker, delete their data (a fresh start)
set -euo pipefail

# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$AIGO_ROOT"

# region:port; each region has its own database aigo_<region>.
REGIONS=(eu-west:8081 us-east:8082 ap-northeast:8083)
# The development token: admin scope on every node. Never use it outside a dev box.
DEV_TOKEN="${AIGO_DEV_TOKEN:-dev-admin-token-change-me}"
NODES_DIR="$AIGO_STATE_DIR/nodes"
BIN="${CARGO_TARGET_DIR:-$AIGO_ROOT/target}/debug/region-node"

# Which region registers each provider's models: every node's [ownership] table (a model id
# has exactly one registering region; ids of other providers go by a hash of the id).
PROVIDER_OWNERS=(
    mistral:eu-west google:eu-west acme:eu-west
    openai:us-east anthropic:us-east meta:us-east
    qwen:ap-northeast deepseek:ap-northeast
)

# providers_of REGION: the seeded providers that REGION registers (acme is left for the user).
providers_of() {
    local entry
    for entry in "${PROVIDER_OWNERS[@]}"; do
        [[ "${entry##*:}" == "$1" && "${entry%%:*}" != acme ]] && printf '%s\n' "${entry%%:*}"
    done
}

ownership_table() {
    local entry table=()
    for entry in "${PROVIDER_OWNERS[@]}"; do
        table+=("${entry%%:*} = \"${entry##*:}\"")
    done
    local IFS=,
    printf 'providers = { %s }\n' "${table[*]}"
}

node_config() {
    local region=$1 port=$2
    cat <<TOML
region = "$region"
regions = ["eu-west", "us-east", "ap-northeast"]

[http]
listen = "127.0.0.1:$port"

[database]
url = "postgres://postgres@127.0.0.1:5432/aigo_${region//-/_}"
max_connections = 10
acquire_timeout_ms = 3000

[kafka]
brokers = "127.0.0.1:9092"
topic_prefix = "aigo"
partitions = 3
message_timeout_ms = 10000

[ownership]
$(ownership_table)

[[tokens]]
name = "dev-admin"
secret = "$DEV_TOKEN"
scopes = ["admin"]
TOML
}

start_node() {
    local region=$1 port=$2 dir="$NODES_DIR/$1"
    mkdir -p "$dir"
    if [[ -f "$dir/pid" ]] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
        log "$region already running (pid $(cat "$dir/pid")) on :$port"
        return
    fi
    node_config "$region" "$port" >"$dir/config.toml"
    # MALLOC_ARENA_MAX=2 as deploy/Dockerfile sets it (resident memory; docs/PERFORMANCE.md).
    MALLOC_ARENA_MAX=${MALLOC_ARENA_MAX:-2} setsid nohup "$BIN" --config "$dir/config.toml" serve \
        >"$dir/node.log" 2>&1 </dev/null &
    echo $! >"$dir/pid"
    log "$region starting (pid $!) on :$port, log $dir/node.log"
}

wait_ready() {
    local region=$1 port=$2 deadline=$((SECONDS + 60))
    until curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)) || ! kill -0 "$(cat "$NODES_DIR/$region/pid")" 2>/dev/null; then
            tail -n 30 "$NODES_DIR/$region/node.log" >&2 || true
            die "$region did not become ready"
        fi
        sleep 0.2
    done
}

# command PORT METHOD PATH [BODY]: an idempotent write (the key is derived from the request),
# so running the demo again replays the first answers instead of failing or doubling.
command() {
    local port=$1 method=$2 path=$3 body=${4:-}
    local key
    key="demo-$(printf '%s %s %s' "$method" "$path" "$body" | sha256sum | cut -c1-32)"
    local args=(-sS -o /dev/null -w '%{http_code}' -X "$method"
        -H "Authorization: Bearer $DEV_TOKEN" -H "Idempotency-Key: $key")
    [[ -n "$body" ]] && args+=(-H 'Content-Type: application/json' --data "$body")
    local code
    code=$(curl "${args[@]}" "http://127.0.0.1:$port$path")
    [[ "$code" == 2* ]] || die "$method $path answered $code"
}

seed() {
    local r
    for entry in "${REGIONS[@]}"; do
        local region=${entry%%:*} port=${entry##*:}
        local providers
        mapfile -t providers < <(providers_of "$region")
        for n in $(seq 1 21); do
            local provider=${providers[$((n % ${#providers[@]}))]}
            local id="$provider/${region}-model-$n"
            command "$port" POST /v1/models \
                "{\"id\":\"$id\",\"provider\":\"$provider\",\"name\":{\"en\":\"Model $n ($region)\",\"ko\":\"모델 $n ($region)\"}}"
            # 17 of every region's 21 models are active: 51 of 63 in all.
            ((n <= 17)) && command "$port" POST "/v1/models/$id/activate"
            command "$port" PUT "/v1/regions/$region/models/$id"
        done
    done
    r=$(curl -fsS "http://127.0.0.1:8081/readyz")
    log "seeded 63 models (51 active); eu-west readiness: $r"
}

up() {
    scripts/install-deps.sh
    scripts/services.sh up
    log "building region-node"
    cargo build -p region-node
    for entry in "${REGIONS[@]}"; do start_node "${entry%%:*}" "${entry##*:}"; done
    for entry in "${REGIONS[@]}"; do wait_ready "${entry%%:*}" "${entry##*:}"; done
    seed
    cat <<MSG

AI-GO model tracker is up: three region nodes on the dev broker (127.0.0.1:9092).
  eu-west       http://127.0.0.1:8081/   (live dashboard; API: /v1/..., /metrics, /readyz)
  us-east       http://127.0.0.1:8082/
  ap-northeast  http://127.0.0.1:8083/
Development token (admin on every node): $DEV_TOKEN
Try:  curl -H "Authorization: Bearer $DEV_TOKEN" -H 'Content-Type: application/json' \\
        -d '{"id":"acme/new","provider":"acme","name":{"en":"New"}}' http://127.0.0.1:8081/v1/models
Stop: scripts/demo.sh down
MSG
}

down() {
    for entry in "${REGIONS[@]}"; do
        local region=${entry%%:*} pidfile="$NODES_DIR/${entry%%:*}/pid"
        if [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
            kill -TERM "$(cat "$pidfile")"
            log "$region stopping"
        fi
        rm -f "$pidfile"
    done
}

status() {
    for entry in "${REGIONS[@]}"; do
        local region=${entry%%:*} port=${entry##*:}
        if curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; then
            echo "$region  :$port  ready"
        else
            echo "$region  :$port  down"
        fi
    done
}

reset() {
    down
    sleep 1
    scripts/services.sh down dev || true
    rm -rf "$AIGO_STATE_DIR/nisshi-dev"
    for entry in "${REGIONS[@]}"; do
        local region=${entry%%:*}
        psql -h 127.0.0.1 -U postgres -qAtc "DROP DATABASE IF EXISTS aigo_${region//-/_} WITH (FORCE)"
    done
    log "demo data removed; scripts/demo.sh starts afresh"
}

case "${1:-up}" in
    up) up ;;
    reset) reset ;;
    down) down ;;
    status) status ;;
    *) die "usage: $0 [up|down|status|reset]" ;;
esac
