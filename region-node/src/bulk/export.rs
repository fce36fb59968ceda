//! `region-node export --target URL`: saves a node's catalogue as import lines.

use std::path::PathBuf;

use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::io::AsyncWriteExt;

use super::BulkError;

/// Where from and where to.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    pub target: String,
    pub token: String,
    /// Standard output without one.
    pub output: Option<PathBuf>,
    pub progress: bool,
}

/// Writes the export and answers how many lines it holds. The node ends a failed export's
/// body early, which arrives here as an error: the file is then incomplete and said so.
pub async fn export(options: &ExportOptions) -> Result<u64, BulkError> {
    let url = format!("{}/v1/exports", options.target.trim_end_matches('/'));
    let http = |source| BulkError::Http {
        url: url.clone(),
        source,
    };
    let response = reqwest::Client::new()
        .get(&url)
        .bearer_auth(&options.token)
        .send()
        .await
        .map_err(http)?;
    let status = response.status();
    if !status.is_success() {
        let detail = response.text().await.unwrap_or_default();
        return Err(BulkError::Refused {
            url,
            status: status.as_u16(),
            detail,
        });
    }
    let mut out: Box<dyn tokio::io::AsyncWrite + Unpin + Send> = match &options.output {
        Some(path) => Box::new(
            tokio::fs::File::create(path)
                .await
                .map_err(BulkError::Write)?,
        ),
        None => Box::new(tokio::io::stdout()),
    };
    let target = if options.progress {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(None, target);
    bar.set_style(ProgressStyle::with_template(
        "{spinner} {human_pos} lines  {binary_bytes}  {per_sec}  elapsed {elapsed}",
    )?);
    let mut lines = 0u64;
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(http)?;
        let count = chunk.iter().filter(|b| **b == b'\n').count() as u64;
        lines += count;
        bar.inc(count);
        out.write_all(&chunk).await.map_err(BulkError::Write)?;
    }
    out.flush().await.map_err(BulkError::Write)?;
    bar.finish_and_clear();
    Ok(lines)
}
