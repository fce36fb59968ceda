//! Region node processes whose wall clock is set back, by libfaketime (Debian's `faketime`
//! package, which scripts/install-deps.sh installs) and a shim that makes librdkafka's waits
//! visible to it (`c11_cond_shim.c`, compiled here once per test run with the C compiler the
//! build needs anyway).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::support::process::run_checked;

const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// The environment of a node whose wall clock runs `offset` (libfaketime's syntax: `-10m`)
/// from its start on. Its monotonic clock is left alone: timers and timeouts keep working.
pub fn clock_offset_env(offset: &str) -> Vec<(String, String)> {
    assert!(
        Path::new(LIBFAKETIME).exists(),
        "{LIBFAKETIME} is missing: install Debian's faketime package (scripts/install-deps.sh)"
    );
    let preload = format!("{} {LIBFAKETIME}", shim().display());
    [
        ("LD_PRELOAD", preload.as_str()),
        ("FAKETIME", offset),
        // Parsed once: libfaketime would otherwise parse it again every 10 s, without a lock
        // against the clock readings of the node's other threads.
        ("FAKETIME_CACHE_DURATION", "86400"),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
    ]
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .into()
}

/// The compiled shim, built on first use next to the test binary (the target directory, so it
/// is not left behind in /tmp): compiled aside and renamed into place, so a test run never
/// preloads another run's half-written file.
fn shim() -> &'static Path {
    static SHIM: OnceLock<PathBuf> = OnceLock::new();
    SHIM.get_or_init(|| {
        let source =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/support/c11_cond_shim.c");
        let exe = std::env::current_exe().expect("test executable path");
        let dir = exe.parent().expect("test binary in a directory");
        let library = dir.join("aigo-c11-cond-shim.so");
        let compiled = dir.join(format!("aigo-c11-cond-shim.{}.so", std::process::id()));
        run_checked(
            Command::new("cc")
                .args(["-shared", "-fPIC", "-O2", "-o"])
                .arg(&compiled)
                .arg(&source),
            "compiling the libfaketime shim",
        );
        std::fs::rename(&compiled, &library).expect("moving the libfaketime shim into place");
        library
    })
}
