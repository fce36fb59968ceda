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
