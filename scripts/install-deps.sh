#!/usr/bin/env bash
# Install what building and testing the workspace needs, and nothing else.
# Idempotent and fast once done: every step checks first and only then installs.
set -euo pipefail

# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Debian packages the build needs. rdkafka 0.39 (features: libz, tokio, ssl, gssapi)
# builds its bundled librdkafka with mklove's ./configure && make libs, linked
# against Debian's OpenSSL (TLS, SASL/SCRAM) and Cyrus SASL (SASL/GSSAPI):
#   build-essential  gcc, g++ (configure requires a C++ compiler), make, libc headers
#   pkg-config       how libz-sys, openssl-sys and sasl2-sys find the system libraries
#   zlib1g-dev       system zlib, so libz-sys and librdkafka don't build their own
#   libssl-dev       OpenSSL for librdkafka's TLS and SCRAM
#   libsasl2-dev     Cyrus SASL for librdkafka's SASL/GSSAPI (sasl2-sys)
#   python3          librdkafka's Makefile runs lds-gen.py for its linker script
#   openssl          the CLI: tests make their own CA and certificates
# Not needed: cmake (only with rdkafka's cmake-build feature), libcurl (the curl
# feature is off), libpq (sqlx speaks the PostgreSQL protocol itself, TLS by rustls).
# The same set also builds Nisshi (libsql and aws-lc-sys use the cc crate).
BUILD_PACKAGES=(build-essential pkg-config zlib1g-dev libssl-dev libsasl2-dev python3 openssl curl jq)

# What the test command runs besides cargo (named so a machine without them gets them):
#   python3-venv       scripts/schemathesis.sh's venv when no newer Python is at hand
#   postgresql-client  psql, with which scripts create and drop their databases
#   postgresql         the server: services.sh starts it; pg_restart.rs runs a private one
#                      from /usr/lib/postgresql/15/bin (initdb, pg_ctl)
#   faketime           libfaketime, which sets a test node's clock back (tests/tests/e2e/clock.rs,
#                      with support/c11_cond_shim.c, compiled by the test with cc)
#   socat              a TLS-terminating proxy in front of the test broker (tests/tests/e2e/secured.rs)
#   procps             kill and pgrep: tests signal nodes, the broker and PostgreSQL's processes
#                      (the soak SIGKILLs a postmaster and its backends)
#   gdb                scripts/stall-watchdog.sh prints the stacks of a test that hangs
TEST_PACKAGES=(python3-venv postgresql-client postgresql faketime socat procps gdb)

# Browser tests: the dashboard's end-to-end test drives Debian's headless
# Chromium through chromedriver (/usr/bin/chromium, /usr/bin/chromedriver).
# fonts-nanum: a Korean font, so the page's Korean locale renders in screenshots.
BROWSER_PACKAGES=(chromium chromium-driver fonts-nanum)

install_browser_deps() {
    ((${#BROWSER_PACKAGES[@]} > 0)) || return 0
    ensure_debian_packages "${BROWSER_PACKAGES[@]}"
}

# nisshi_installed: true if NISSHI_BIN reports exactly the pinned version
# (`nisshi --version` prints "nisshi 0.7.0-pre.2").
nisshi_installed() {
    [[ -x "$NISSHI_BIN" ]] || return 1
    local version
    version="$("$NISSHI_BIN" --version 2>/dev/null)" || return 1
    [[ "$version" == "nisshi $NISSHI_VERSION" ]]
}

# ensure_nisshi: build the broker once (12-15 min on 2 cores) and reuse it.
ensure_nisshi() {
    nisshi_installed && return 0

    local cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin/nisshi"
    if [[ "$NISSHI_BIN" != "$cargo_bin" ]]; then
        die "NISSHI_BIN=$NISSHI_BIN is not nisshi $NISSHI_VERSION; fix it or unset NISSHI_BIN"
    fi

    # Two test runs starting at once must not both spend 15 minutes building:
    # the second waits for the first, then finds the binary in place.
    mkdir -p "$AIGO_STATE_DIR"
    exec 9>"$AIGO_STATE_DIR/nisshi-install.lock"
    flock 9
    if ! nisshi_installed; then
        log "installing nisshi $NISSHI_VERSION (takes 12-15 minutes on 2 cores)"
        # dynostore gives memory://, libsql gives sqlite://; the default build has
        # no storage engine at all and fails at start with FeatureNotEnabled.
        cargo install "nisshi@$NISSHI_VERSION" --locked --features dynostore,libsql
        nisshi_installed || die "nisshi installed, but '$NISSHI_BIN --version' is not nisshi $NISSHI_VERSION"
    fi
    exec 9>&-
}

# cargo-deny checks the dependency tree (licenses, bans, sources, advisories) in the test
# command. Pinned: newer releases may need a newer rustc than 1.95.
CARGO_DENY_VERSION=0.20.2

cargo_deny_installed() {
    local version
    version="$(cargo deny --version 2>/dev/null)" || return 1
    [[ "$version" == "cargo-deny $CARGO_DENY_VERSION" ]]
}

ensure_cargo_deny() {
    cargo_deny_installed && return 0
    mkdir -p "$AIGO_STATE_DIR"
    exec 8>"$AIGO_STATE_DIR/cargo-deny-install.lock"
    flock 8
    if ! cargo_deny_installed; then
        log "installing cargo-deny $CARGO_DENY_VERSION (takes several minutes on 2 cores, once)"
        cargo install "cargo-deny@$CARGO_DENY_VERSION" --locked
        cargo_deny_installed || die "cargo-deny installed, but 'cargo deny --version' is not $CARGO_DENY_VERSION"
    fi
    exec 8>&-
}

ensure_debian_packages "${BUILD_PACKAGES[@]}" "${TEST_PACKAGES[@]}"
install_browser_deps
ensure_nisshi
ensure_cargo_deny
