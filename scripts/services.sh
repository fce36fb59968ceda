#!/usr/bin/env bash
# Start, stop and inspect the external services the project runs against.
#
#   scripts/services.sh up             start whatever is not running (idempotent)
#   scripts/services.sh down [dev|test]  stop the Nisshi brokers (default: both)
#   scripts/services.sh status         show each service; non-zero if one is down
#
# Services:
#   postgresql  127.0.0.1:5432   the machine's PostgreSQL 15 (trust auth)
#   nisshi-dev  127.0.0.1:9092   dev/demo Kafka broker, sqlite storage: survives restarts
#   nisshi-test 127.0.0.1:19092  test Kafka broker, in-memory storage: fast, lost on restart
#
# Nisshi facts that shaped this script (0.7.0-pre.2, read from its source):
# - Node id: there is no flag; the broker id is the constant 111.
#   Cluster id: --cluster-id (default "nisshi_cluster"). We pin one per broker,
#   because stored data belongs to a cluster id: changing it later would make the
#   dev broker's sqlite data invisible.
# - Flags also read env vars (CLUSTER_ID, LISTENER_URL, ADVERTISED_LISTENER_URL,
#   STORAGE_ENGINE) and the binary loads a .env file from its working directory
#   and its parents; explicit flags win, and we start it in / so no project .env
#   is picked up.
# - The listener host must be an IP literal: a name such as "localhost" fails to
#   parse as a socket address and Nisshi then silently listens on [::] (every
#   interface).
# - sqlite:// paths are resolved against the broker's working directory, even
#   when written as absolute (sqlite:///a/b is cwd + a/b). Starting it in / makes
#   sqlite://<absolute path> mean what it says.
# - Logging uses RUST_LOG (errors only when unset); we set it explicitly so a
#   developer's RUST_LOG=debug for the project doesn't flood the broker logs.
# - A failed start (e.g. a sqlite file it can't open) exits with status 1 and
#   the reason as the last line of its log.
set -euo pipefail

# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PG_HOST=127.0.0.1
PG_PORT=5432
BROKER_HOST=127.0.0.1
BROKERS=(dev test)
START_TIMEOUT="${AIGO_SERVICE_START_TIMEOUT:-30}"
NISSHI_RUST_LOG="${NISSHI_RUST_LOG:-warn}"

broker_dir() { printf '%s/nisshi-%s' "$AIGO_STATE_DIR" "$1"; }

broker_port() {
    case $1 in
        dev) echo 9092 ;;
        test) echo 19092 ;;
        *) die "unknown broker '$1' (expected: ${BROKERS[*]})" ;;
    esac
}

broker_storage() {
    case $1 in
        # mode=direct: a pool of sqlite connections instead of one storage call at a time
        # for every client (docs/BROKER.md, "The sqlite engine").
        dev) echo "sqlite://$(broker_dir dev)/nisshi.db?mode=direct" ;;
        test) echo "memory://nisshi/" ;;
        *) die "unknown broker '$1'" ;;
    esac
}

# ---------------------------------------------------------------- PostgreSQL

ensure_postgres() {
    if port_open "$PG_HOST" "$PG_PORT"; then
        return 0
    fi
    local version
    # The newest installed major version; these machines have exactly one (15).
    version="$(find /etc/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort -V | tail -n 1)"
    [[ -n "$version" ]] || die "PostgreSQL is not installed (/etc/postgresql is empty)"
    log "starting PostgreSQL $version"
    # --skip-systemctl-redirect: no systemd on these machines.
    pg_ctlcluster --skip-systemctl-redirect "$version" main start
    wait_for_port "$PG_HOST" "$PG_PORT" "$START_TIMEOUT" ||
        die "PostgreSQL did not accept connections on $PG_HOST:$PG_PORT within ${START_TIMEOUT}s"
}

# ---------------------------------------------------------------- Kafka probe

# fast_python: print the python3 to run (empty if none). Debian's starts in ~20 ms;
# a pyenv shim on PATH takes ~300 ms, which alone would break the "second `up` is
# instant" goal.
fast_python() {
    if [[ -x /usr/bin/python3 ]]; then
        echo /usr/bin/python3
    else
        command -v python3 || true
    fi
}

# kafka_probe HOST PORT: send a Kafka ApiVersions v0 request and check the
# answer, which proves a Kafka-speaking broker (not just any process) holds the
# port. Prints the number of APIs the broker supports. Needs only python3's
# standard library; without python3 it falls back to the port check.
kafka_probe() {
    local python
    python="$(fast_python)"
    if [[ -z "$python" ]]; then
        port_open "$1" "$2" && echo "port open (python3 missing: protocol not checked)"
        return
    fi
    "$python" - "$1" "$2" <<'PY'
import socket, struct, sys

host, port = sys.argv[1], int(sys.argv[2])
correlation_id, client_id = 0x41494730, b"aigo-probe"
# Request header v1 (api_key=18 ApiVersions, api_version=0, correlation id,
# client id); ApiVersions v0 has an empty body.
request = struct.pack(">hhih", 18, 0, correlation_id, len(client_id)) + client_id
try:
    with socket.create_connection((host, port), timeout=3) as sock:
        sock.settimeout(3)
        sock.sendall(struct.pack(">i", len(request)) + request)

        def read(n):
            buf = b""
            while len(buf) < n:
                chunk = sock.recv(n - len(buf))
                if not chunk:
                    sys.exit("connection closed before a full ApiVersions response")
                buf += chunk
            return buf

        (size,) = struct.unpack(">i", read(4))
        body = read(size)
except OSError as err:
    sys.exit(f"ApiVersions request failed: {err}")
got_id, error_code, count = struct.unpack(">ihi", body[:10])
if got_id != correlation_id or error_code != 0 or count <= 0:
    sys.exit(f"not a Kafka ApiVersions answer: correlation={got_id} error={error_code} apis={count}")
print(f"kafka ok ({count} APIs)")
PY
}

# ---------------------------------------------------------------- brokers

# broker_pid NAME: print the pid of our running broker NAME, or fail. The pid
# file alone is not trusted: the pid must be alive and still be nisshi.
broker_pid() {
    local pidfile pid
    pidfile="$(broker_dir "$1")/nisshi.pid"
    [[ -f "$pidfile" ]] || return 1
    pid="$(<"$pidfile")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    # "*/nisshi*": also matches "/path/nisshi (deleted)" after a reinstall.
    [[ "$(readlink "/proc/$pid/exe" 2>/dev/null)" == */nisshi* ]] || return 1
    echo "$pid"
}

fail_with_log() {
    local name=$1 msg=$2 logfile
    logfile="$(broker_dir "$name")/nisshi.log"
    log "ERROR: $msg; last lines of $logfile:"
    tail -n 30 "$logfile" >&2 || true
    exit 1
}

# launch_broker NAME: start broker NAME in the background, detached from this
# shell (setsid: own session, so a Ctrl-C or closing terminal doesn't stop it).
launch_broker() {
    local name=$1 dir port storage url pid
    dir="$(broker_dir "$name")"
    port="$(broker_port "$name")"
    storage="$(broker_storage "$name")"
    url="tcp://$BROKER_HOST:$port"

    [[ -x "$NISSHI_BIN" ]] || die "$NISSHI_BIN not found; run scripts/install-deps.sh"
    # Nisshi uses the URL's path as the file name without percent-decoding it.
    [[ "$dir" =~ ^[A-Za-z0-9._/-]+$ ]] ||
        die "state dir '$dir' has characters Nisshi's sqlite URL can't carry; set AIGO_STATE_DIR"

    mkdir -p "$dir"
    # Keep the previous run's log for post-mortems; the fresh one only has this run.
    [[ -f "$dir/nisshi.log" ]] && mv -f "$dir/nisshi.log" "$dir/nisshi.log.1"

    log "starting nisshi-$name on $url ($storage)"
    (
        cd /
        # Without job control this subshell is not a process-group leader, so
        # setsid calls setsid(2) without forking: $! below is the broker's pid.
        # NO_COLOR: its tracing output has ANSI colours even into a file otherwise.
        NO_COLOR=1 RUST_LOG="$NISSHI_RUST_LOG" exec setsid nohup "$NISSHI_BIN" broker \
            --cluster-id "aigo-tracker-$name" \
            --listener-url "$url" \
            --advertised-listener-url "$url" \
            --storage-engine "$storage" \
            </dev/null >"$dir/nisshi.log" 2>&1
    ) &
    pid=$!
    echo "$pid" >"$dir/nisshi.pid"
}

# await_broker NAME: wait for the port, then check it speaks Kafka.
await_broker() {
    local name=$1 port pid result
    port="$(broker_port "$name")"
    pid="$(<"$(broker_dir "$name")/nisshi.pid")"
    if ! wait_for_port "$BROKER_HOST" "$port" "$START_TIMEOUT" "$pid"; then
        kill -0 "$pid" 2>/dev/null ||
            fail_with_log "$name" "nisshi-$name (pid $pid) exited during start-up"
        fail_with_log "$name" "nisshi-$name did not accept connections on $BROKER_HOST:$port within ${START_TIMEOUT}s"
    fi
    broker_pid "$name" >/dev/null ||
        fail_with_log "$name" "nisshi-$name (pid $pid) exited after opening its port"
    result="$(kafka_probe "$BROKER_HOST" "$port" 2>&1)" ||
        fail_with_log "$name" "nisshi-$name does not answer Kafka requests: $result"
    log "nisshi-$name up on $BROKER_HOST:$port, pid $pid, $result"
}

cmd_up() {
    ensure_postgres

    local name port started=()
    for name in "${BROKERS[@]}"; do
        port="$(broker_port "$name")"
        if broker_pid "$name" >/dev/null; then
            started+=("$name") # ours; may still be starting, so await it too
        elif port_open "$BROKER_HOST" "$port"; then
            die "$BROKER_HOST:$port is taken by a process services.sh did not start" \
                "(see: ss -ltnp 'sport = :$port'); stop it and rerun"
        else
            launch_broker "$name"
            started+=("$name")
        fi
    done
    # Both brokers start in parallel; waiting afterwards overlaps their start-up.
    for name in "${started[@]}"; do
        await_broker "$name"
        index_broker "$name"
    done
}

# index_broker NAME: a sqlite broker gets the index its fetches lack (see
# nisshi-sqlite-index.py: without it reading a topic slows with its square).
index_broker() {
    local storage
    storage="$(broker_storage "$1")"
    [[ "$storage" == sqlite://* ]] || return 0
    local python
    python="$(fast_python)"
    [[ -n "$python" ]] || fail_with_log "$1" "python3 is missing: run scripts/install-deps.sh"
    local file="${storage#sqlite://}"
    "$python" "$AIGO_ROOT/scripts/nisshi-sqlite-index.py" "${file%%\?*}" ||
        fail_with_log "$1" "indexing nisshi-$1's sqlite file failed"
}

# stop_broker NAME: SIGTERM lets Nisshi shut down cleanly (it allows itself up
# to 5 s); SIGKILL only if it is still there after 15 s.
stop_broker() {
    local name=$1 pid i
    if ! pid="$(broker_pid "$name")"; then
        rm -f "$(broker_dir "$name")/nisshi.pid"
        log "nisshi-$name is not running"
        return 0
    fi
    log "stopping nisshi-$name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "nisshi-$name ignored SIGTERM; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$(broker_dir "$name")/nisshi.pid"
}

# PostgreSQL is the machine's shared server (other work uses it), so `down`
# leaves it alone; it only stops what `up` launched itself.
cmd_down() {
    local name
    (($# > 0)) || set -- "${BROKERS[@]}"
    for name in "$@"; do
        broker_port "$name" >/dev/null # validates the name
        stop_broker "$name"
    done
}

cmd_status() {
    local rc=0 name port pid probe
    if port_open "$PG_HOST" "$PG_PORT"; then
        printf '%-12s %-16s up\n' postgresql "$PG_HOST:$PG_PORT"
    else
        printf '%-12s %-16s DOWN\n' postgresql "$PG_HOST:$PG_PORT"
        rc=1
    fi
    for name in "${BROKERS[@]}"; do
        port="$(broker_port "$name")"
        if pid="$(broker_pid "$name")" && probe="$(kafka_probe "$BROKER_HOST" "$port" 2>&1)"; then
            printf '%-12s %-16s up   pid %-7s %s  %s  log %s\n' "nisshi-$name" "$BROKER_HOST:$port" \
                "$pid" "$probe" "$(broker_storage "$name")" "$(broker_dir "$name")/nisshi.log"
        else
            printf '%-12s %-16s DOWN %s\n' "nisshi-$name" "$BROKER_HOST:$port" "${probe:-}"
            rc=1
        fi
        probe=""
    done
    return "$rc"
}

usage() {
    echo "usage: $0 up | down [dev|test]... | status" >&2
    exit 2
}

(($# > 0)) || usage
command=$1
shift
case $command in
    up) cmd_up ;;
    down) cmd_down "$@" ;;
    status) cmd_status ;;
    *) usage ;;
esac
