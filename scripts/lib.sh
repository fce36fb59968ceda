# shellcheck shell=bash
# Shared helpers for the project's scripts. Source it; don't run it:
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# The variables below are used by the scripts that source this file.
# shellcheck disable=SC2034

# Repository root, so callers work from any current directory.
AIGO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Everything the services keep between runs (pid files, logs, the dev broker's
# database) lives outside the work tree, so a clean clone or `git clean` keeps it.
AIGO_STATE_DIR="${AIGO_STATE_DIR:-$HOME/.local/state/aigo-tracker}"

# The one Nisshi release this project is tested with; newer releases need a newer
# rustc than these machines have (see ARCHITECTURE.md, "Broker facts").
NISSHI_VERSION="0.7.0-pre.2"
NISSHI_BIN="${NISSHI_BIN:-${CARGO_HOME:-$HOME/.cargo}/bin/nisshi}"

# log MESSAGE...: timestamped, on stderr so stdout stays usable for data.
log() {
    printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2
}

# die MESSAGE...: log and stop the script.
die() {
    log "ERROR: $*"
    exit 1
}

# port_open HOST PORT: true if something accepts TCP connections there.
# bash's /dev/tcp needs no extra tools; `timeout` guards against a host that
# drops packets (loopback refuses at once, so this is normally a few ms).
port_open() {
    local host=$1 port=$2
    # shellcheck disable=SC2016 # $1/$2 expand in the inner bash, on purpose
    timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$host" "$port" 2>/dev/null
}

# wait_for_port HOST PORT TIMEOUT_SECONDS [PID]: poll until the port accepts
# connections. With PID, give up as soon as that process has died, instead of
# waiting out the whole timeout for a server that crashed at start.
wait_for_port() {
    local host=$1 port=$2 timeout=$3 pid=${4:-}
    local deadline=$((SECONDS + timeout))
    until port_open "$host" "$port"; do
        if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
            return 1
        fi
        if ((SECONDS >= deadline)); then
            return 1
        fi
        sleep 0.2
    done
}

# bench_python: the python of a venv with confluent-kafka (the client of the broker
# benchmarks, scripts/bench-sqlite-*.sh), created under ~/.cache/aigo-tracker on first use.
bench_python() {
    local venv="$HOME/.cache/aigo-tracker/venv-bench" version=2.16.2
    if ! "$venv/bin/python" -c "import confluent_kafka" 2>/dev/null; then
        log "creating $venv with confluent-kafka $version"
        python3 -m venv --clear "$venv" >&2
        "$venv/bin/pip" install --quiet "confluent-kafka==$version" >&2
    fi
    echo "$venv/bin/python"
}

# start_bench_broker PORT [QUERY]: a private Nisshi on the sqlite engine at 127.0.0.1:PORT,
# its file `$bench_broker_dir/nisshi.db` (QUERY appended to its URL, e.g. ?mode=direct) in a
# fresh directory; sets bench_broker_dir and bench_broker_pid. stop_bench_broker ends it.
bench_broker_dir=""
bench_broker_pid=""
start_bench_broker() {
    local port=$1 query=${2:-}
    [[ -x "$NISSHI_BIN" ]] || die "$NISSHI_BIN not found; run scripts/install-deps.sh"
    port_open 127.0.0.1 "$port" && die "port $port is taken"
    bench_broker_dir="$(mktemp -d /tmp/aigo-bench-broker.XXXXXX)"
    # Started in /: Nisshi resolves sqlite paths against its working directory.
    (cd / && RUST_LOG=error exec "$NISSHI_BIN" broker --cluster-id bench \
        --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
        --storage-engine "sqlite://$bench_broker_dir/nisshi.db$query" \
        >"$bench_broker_dir/log" 2>&1) &
    bench_broker_pid=$!
    wait_for_port 127.0.0.1 "$port" 30 "$bench_broker_pid" ||
        die "the broker did not start: $(tail -3 "$bench_broker_dir/log")"
}

# stop_bench_broker: kills the broker start_bench_broker started and removes its directory
# (safe to call again, e.g. from an EXIT trap).
stop_bench_broker() {
    if [[ -n "$bench_broker_pid" ]]; then
        kill -s KILL -- "$bench_broker_pid" 2>/dev/null || true
        wait "$bench_broker_pid" 2>/dev/null || true
    fi
    if [[ -n "$bench_broker_dir" ]]; then
        rm -rf "$bench_broker_dir"
    fi
    bench_broker_pid="" bench_broker_dir=""
}

# Run as root directly, otherwise through sudo (developer machines).
as_root() {
    if ((EUID == 0)); then
        "$@"
    else
        sudo "$@"
    fi
}

# ensure_debian_packages PKG...: install the missing ones; `apt-get update` only
# when something is missing, so a machine that has everything never touches the
# network here.
ensure_debian_packages() {
    local pkg missing=()
    for pkg in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$pkg")
        fi
    done
    ((${#missing[@]} > 0)) || return 0

    log "installing Debian packages: ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}"
}
