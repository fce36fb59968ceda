//! `region-node import FILE --target URL`: sends command lines in chunks, re-sends what failed
//! for a passing reason (the keys make every re-send exact), and tallies the results.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use command_api::ImportOutcome;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::io::{AsyncBufReadExt, BufReader};

use super::BulkError;
use super::tally::ImportSummary;

/// How and what to import.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub file: PathBuf,
    /// The node's base URL, such as `http://127.0.0.1:8081`.
    pub target: String,
    pub token: String,
    /// Command lines per request.
    pub chunk_lines: usize,
    /// How often a chunk (or its lines answered 5xx) is re-sent before the import gives up.
    pub retries: u32,
    pub progress: bool,
    /// Where refused lines' results go (NDJSON); without it, the first few go to stderr.
    pub problems: Option<PathBuf>,
}

/// Refusals shown on stderr when no problems file is given.
const SHOWN_REFUSALS: u64 = 10;

/// Imports `options.file`; `Err` only when a chunk could not be delivered after every retry.
pub async fn import(options: &ImportOptions) -> Result<ImportSummary, BulkError> {
    let read_error = |source| BulkError::Read {
        path: options.file.clone(),
        source,
    };
    let file = tokio::fs::File::open(&options.file)
        .await
        .map_err(read_error)?;
    let size = file.metadata().await.map_err(read_error)?.len();
    let mut reader = BufReader::new(file);
    let mut problems = match &options.problems {
        Some(path) => Some(std::fs::File::create(path).map_err(BulkError::Write)?),
        None => None,
    };
    let bar = progress_bar(size, options.progress)?;
    let client = reqwest::Client::new();
    let url = format!("{}/v1/imports", options.target.trim_end_matches('/'));
    let started = Instant::now();
    let mut summary = ImportSummary::default();
    let mut number = 0u64;
    loop {
        let mut chunk = Vec::new();
        let mut bytes = 0u64;
        while chunk.len() < options.chunk_lines.max(1) {
            let mut line = String::new();
            let read = reader.read_line(&mut line).await.map_err(read_error)?;
            if read == 0 {
                break;
            }
            bytes += read as u64;
            number += 1;
            if !line.trim().is_empty() {
                chunk.push((number, line));
            }
        }
        if chunk.is_empty() && bytes == 0 {
            break;
        }
        summary.lines += chunk.len() as u64;
        for outcome in deliver(&client, &url, options, chunk).await? {
            summary.count(&outcome);
            if outcome.status >= 400 {
                report(&mut problems, &outcome, &summary);
            }
        }
        bar.inc(bytes);
        let elapsed = started.elapsed().as_secs_f64().max(1e-9);
        bar.set_message(format!(
            "{} commands  {:.0}/s",
            summary.lines,
            summary.lines as f64 / elapsed
        ));
    }
    bar.finish_and_clear();
    summary.finish(started.elapsed());
    Ok(summary)
}

/// Sends `lines` until each has a final answer: a chunk that did not arrive whole, and lines
/// answered 5xx, are re-sent with growing pauses, up to `options.retries` times.
async fn deliver(
    client: &reqwest::Client,
    url: &str,
    options: &ImportOptions,
    mut pending: Vec<(u64, String)>,
) -> Result<Vec<ImportOutcome>, BulkError> {
    let mut done = Vec::with_capacity(pending.len());
    let mut attempt = 0;
    while !pending.is_empty() {
        let last_try = attempt >= options.retries;
        match send(client, url, &options.token, &pending).await {
            Ok(outcomes) => {
                let mut again = Vec::new();
                let mut answered = vec![false; pending.len()];
                for mut outcome in outcomes {
                    let index = usize::try_from(outcome.line)
                        .unwrap_or(usize::MAX)
                        .wrapping_sub(1);
                    let Some((number, text)) = pending.get(index) else {
                        continue;
                    };
                    if let Some(seen) = answered.get_mut(index) {
                        *seen = true;
                    }
                    outcome.line = *number;
                    if outcome.status >= 500 && !last_try {
                        again.push((*number, text.clone()));
                    } else {
                        done.push(outcome);
                    }
                }
                // A line without an answer (the stream ended early) goes again, too.
                for (line, seen) in pending.iter().zip(&answered) {
                    if !seen {
                        again.push(line.clone());
                    }
                }
                if again.is_empty() {
                    break;
                }
                if last_try {
                    return Err(BulkError::Refused {
                        url: url.to_owned(),
                        status: 0,
                        detail: format!("{} lines got no answer", again.len()),
                    });
                }
                again.sort_by_key(|(number, _)| *number);
                pending = again;
            }
            Err(error) if !last_try => {
                tracing::warn!(%error, attempt, "import chunk not delivered; re-sending it");
            }
            Err(error) => return Err(error),
        }
        attempt += 1;
        tokio::time::sleep(Duration::from_millis(250 << attempt.min(6))).await;
    }
    done.sort_by_key(|outcome| outcome.line);
    Ok(done)
}

/// One request; its outcomes' line numbers count the lines of this body.
async fn send(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    lines: &[(u64, String)],
) -> Result<Vec<ImportOutcome>, BulkError> {
    let mut body = String::with_capacity(lines.iter().map(|(_, l)| l.len() + 1).sum());
    for (_, line) in lines {
        body.push_str(line.trim_end_matches(['\r', '\n']));
        body.push('\n');
    }
    let http = |source| BulkError::Http {
        url: url.to_owned(),
        source,
    };
    let response = client
        .post(url)
        .bearer_auth(token)
        .header(reqwest::header::CONTENT_TYPE, "application/x-ndjson")
        .body(body)
        .send()
        .await
        .map_err(http)?;
    let status = response.status();
    let text = response.text().await.map_err(http)?;
    if !status.is_success() {
        return Err(BulkError::Refused {
            url: url.to_owned(),
            status: status.as_u16(),
            detail: text,
        });
    }
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            serde_json::from_str(line).map_err(|_| BulkError::Unreadable {
                url: url.to_owned(),
                line: line.chars().take(200).collect(),
            })
        })
        .collect()
}

fn report(problems: &mut Option<std::fs::File>, outcome: &ImportOutcome, summary: &ImportSummary) {
    let line = serde_json::to_string(outcome).unwrap_or_default();
    match problems {
        Some(file) => {
            let _ = writeln!(file, "{line}");
        }
        None if summary.refused_total() + summary.failed <= SHOWN_REFUSALS => {
            eprintln!("{line}");
        }
        None => {}
    }
}

fn progress_bar(length: u64, visible: bool) -> Result<ProgressBar, BulkError> {
    let target = if visible {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(length), target);
    bar.set_style(ProgressStyle::with_template(
        "{bar:40} {binary_bytes}/{binary_total_bytes}  {msg}  elapsed {elapsed}  eta {eta}",
    )?);
    Ok(bar)
}
