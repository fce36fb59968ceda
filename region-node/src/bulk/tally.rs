//! Counting an import's results: accepted lines, refusals by problem code, lines to re-send.

use std::collections::BTreeMap;
use std::time::Duration;

use command_api::ImportOutcome;
use serde::Serialize;

/// What an import did, printed at its end (JSON on stdout).
#[derive(Debug, Default, Clone, Serialize)]
pub struct ImportSummary {
    /// Command lines sent (blank lines not counted).
    pub lines: u64,
    /// Lines answered 2xx: applied now, or by an earlier run with the same key.
    pub accepted: u64,
    /// Lines refused for good (4xx), by problem code.
    pub refused: BTreeMap<String, u64>,
    /// Lines still failing with 5xx after every retry: re-send the file.
    pub failed: u64,
    pub seconds: f64,
    pub commands_per_second: f64,
}

impl ImportSummary {
    pub(crate) fn count(&mut self, outcome: &ImportOutcome) {
        match outcome.status {
            200..=299 => self.accepted += 1,
            400..=499 => {
                let code = outcome
                    .problem
                    .as_ref()
                    .and_then(|p| p.get("code"))
                    .and_then(|c| c.as_str())
                    .unwrap_or("unknown");
                *self.refused.entry(code.to_owned()).or_default() += 1;
            }
            _ => self.failed += 1,
        }
    }

    pub(crate) fn finish(&mut self, elapsed: Duration) {
        self.seconds = elapsed.as_secs_f64();
        self.commands_per_second = if self.seconds > 0.0 {
            self.lines as f64 / self.seconds
        } else {
            0.0
        };
    }

    pub fn refused_total(&self) -> u64 {
        self.refused.values().sum()
    }
}
