//! Runs `region-node` subcommands (replay, audit, ...) on a cluster node's configuration.

use std::path::Path;
use std::process::{Command, Output};

use super::process::binary;

/// What a subcommand printed and how it ended.
#[derive(Debug)]
pub struct Ran {
    pub success: bool,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// `region-node --config <config> <args>`, with no `AIGO_*` variable from the test's
/// environment overriding the file. Runs on a blocking thread.
pub async fn region_node(config: &Path, args: &[&str]) -> Ran {
    let mut command = Command::new(binary());
    command.arg("--config").arg(config).args(args);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("AIGO_") {
            command.env_remove(name);
        }
    }
    command.env("RUST_LOG", "warn");
    let output: Output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("the subcommand thread")
        .expect("running region-node");
    Ran {
        success: output.status.success(),
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}
