//! One `region-node --config FILE serve` process, the only way the tests run the binary:
//! started, signalled, killed and restarted, its output appended to one log file.
//!
//! The binary: `tests` is another package than `region-node`, so `CARGO_BIN_EXE_region-node`
//! is not available (artifact dependencies are unstable). Instead, the first process of a test
//! run runs `cargo build -p region-node --bin region-node` into the target directory and
//! profile this test binary was built in (found from `current_exe()`: `<target>/<profile>/deps/
//! <test>`, which honours `CARGO_TARGET_DIR` and `--release`/`--profile`). That build is a
//! no-op when the binary is up to date, and never leaves a stale binary under test.
//! `REGION_NODE_BIN=/path/to/region-node` skips the build and uses that binary.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tokio::time::Instant;

/// Tests that run node processes take turns (the machine is small, and kill timings mean
/// something only on a machine that is not saturated): a cluster holds it while it lives, a
/// test that runs processes of its own holds it for its whole run. Tokio's mutex works across
/// the tests' runtimes.
pub static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A node process (not running until [`NodeProcess::spawn`]); SIGKILLed when dropped.
#[derive(Debug)]
pub struct NodeProcess {
    name: String,
    config: PathBuf,
    log: PathBuf,
    env: Vec<(String, String)>,
    child: Mutex<Option<Child>>,
    starts: Mutex<usize>,
    /// Instead of [`binary`] (a rolling deploy to another build).
    binary: Mutex<Option<PathBuf>>,
}

impl NodeProcess {
    /// `name` appears in the log's start banners and in failures; `env` is added to the
    /// process's environment (after `RUST_LOG=info` unless the test's own `RUST_LOG` is set).
    pub fn new(name: &str, config: PathBuf, log: PathBuf, env: Vec<(String, String)>) -> Self {
        Self {
            name: name.to_owned(),
            config,
            log,
            env,
            child: Mutex::new(None),
            starts: Mutex::new(0),
            binary: Mutex::new(None),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// How many times the process was started.
    pub fn starts(&self) -> usize {
        *self.starts.lock().expect("starts lock")
    }

    pub fn config(&self) -> &Path {
        &self.config
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The environment of the next start.
    pub fn set_env(&mut self, env: Vec<(String, String)>) {
        self.env = env;
    }

    /// The binary of the next start.
    pub fn set_binary(&self, binary: PathBuf) {
        *self.binary.lock().expect("binary lock") = Some(binary);
    }

    /// Starts the process; panics if one is running.
    pub fn spawn(&self) {
        let mut child = self.child.lock().expect("child lock");
        assert!(child.is_none(), "{} is already running", self.name);
        let mut starts = self.starts.lock().expect("starts lock");
        *starts += 1;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("node log file");
        let _ = writeln!(log, "===== {} start {} =====", self.name, *starts);
        let program = self
            .binary
            .lock()
            .expect("binary lock")
            .clone()
            .unwrap_or_else(|| binary().to_path_buf());
        let _ = writeln!(log, "binary: {}", program.display());
        let mut command = Command::new(program);
        command
            .arg("--config")
            .arg(&self.config)
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log);
        // The file is the configuration: nothing from the test's environment overrides it.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("AIGO_") {
                command.env_remove(name);
            }
        }
        if std::env::var_os("RUST_LOG").is_none() {
            command.env("RUST_LOG", "info");
        }
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        *child = Some(command.spawn().expect("spawning region-node"));
    }

    /// `None` while running (or not started), the exit status once it ended.
    pub fn exited(&self) -> Option<ExitStatus> {
        let mut child = self.child.lock().expect("child lock");
        child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// Panics if the process exited by itself (a crash the test did not cause).
    pub fn assert_running(&self) {
        if let Some(status) = self.exited() {
            panic!(
                "{} exited by itself ({status}); see {}:\n{}",
                self.name,
                self.log.display(),
                self.log_tail()
            );
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child
            .lock()
            .expect("child lock")
            .as_ref()
            .map(Child::id)
    }

    /// The log so far (every start of the process).
    pub fn log_text(&self) -> String {
        std::fs::read(&self.log)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// The log's length in bytes: a mark to read what follows it.
    pub fn log_len(&self) -> usize {
        std::fs::read(&self.log).map_or(0, |bytes| bytes.len())
    }

    pub fn log_tail(&self) -> String {
        tail(&self.log, 6000)
    }

    /// Waits for the process to end (after a signal), reaping it.
    pub async fn wait_exit(&self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            {
                let mut child = self.child.lock().expect("child lock");
                let running = child.as_mut()?;
                if let Ok(Some(status)) = running.try_wait() {
                    *child = None;
                    return Some(status);
                }
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: no shutdown hook, no final commit. Nothing if it is not running.
    pub fn kill_now(&self) {
        if let Some(mut child) = self.child.lock().expect("child lock").take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill_now();
    }
}

/// The `region-node` binary, built (or found up to date) once per test run.
pub fn binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        if let Ok(path) = std::env::var("REGION_NODE_BIN") {
            return PathBuf::from(path);
        }
        let exe = std::env::current_exe().expect("test executable path");
        // <target>/<profile dir>/deps/<test binary>
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test binary in <target>/<profile>/deps")
            .to_path_buf();
        let target_dir = profile_dir.parent().expect("target directory");
        let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") => "dev".to_owned(),
            Some(other) => other.to_owned(),
            None => "dev".to_owned(),
        };
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("workspace root");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let status = Command::new(cargo)
            .current_dir(workspace)
            .args([
                "build",
                "--quiet",
                "-p",
                "region-node",
                "--bin",
                "region-node",
            ])
            .args(["--profile", &profile])
            .arg("--target-dir")
            .arg(target_dir)
            .status()
            .expect("running cargo build -p region-node");
        assert!(status.success(), "cargo build -p region-node: {status}");
        let binary = profile_dir.join("region-node");
        assert!(binary.exists(), "{} was not built", binary.display());
        binary
    })
}

/// The last `bytes` of a file, lossily decoded.
fn tail(path: &Path, bytes: u64) -> String {
    let Ok(mut file) = File::open(path) else {
        return String::from("(no log)");
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(bytes)));
    let mut buf = Vec::new();
    let _ = file.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// Runs `command` to completion and fails the test, with its stderr, unless it succeeded.
/// `what` names it in that message.
pub fn run_checked(command: &mut Command, what: &str) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run it: {e}"));
    assert!(
        output.status.success(),
        "{what}: {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}
