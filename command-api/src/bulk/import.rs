//! `POST /v1/imports`: NDJSON command lines applied in order, in batches, answered by one
//! NDJSON result line per command as each batch completes.

use std::convert::Infallible;

use axum::body::Body;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, Bytes, BytesMut};
use domain::RegionId;
use futures::StreamExt;
use futures::future::join_all;
use tracing::{Instrument, info_span};
use uuid::Uuid;

use super::line::{LineError, ParsedLine, parse_line};
use super::outcome::ImportOutcome;
use super::waves::waves;
use crate::auth::Principal;
use crate::body::accept_bytes;
use crate::command_error::CommandError;
use crate::problem::ApiError;
use crate::routes::{BODY_LIMIT_BYTES, CommandState};
use crate::service::{CommandService, answer_recorded};

/// One request's file: larger imports are sent as several requests (the CLI does).
pub(crate) const IMPORT_BODY_LIMIT_BYTES: usize = 64 * 1024 * 1024;
/// Lines decided and committed before their results are sent.
const BATCH_LINES: usize = 4096;
/// Commands run at once: about one group commit.
const WAVE_MAX: usize = 512;
const NDJSON: &str = "application/x-ndjson";

/// Import command lines (NDJSON, one command per line, each with its own idempotency key).
#[utoipa::path(
    post, path = "/v1/imports", tag = "commands", operation_id = "import",
    security(("bearer" = [])),
    request_body(content = super::ImportLine, content_type = "application/x-ndjson",
        description = "One command per line; blank lines are skipped."),
    responses(
        (status = 200, description = "One result per command line, in line order, streamed as \
            batches complete", body = ImportOutcome, content_type = "application/x-ndjson"),
        crate::openapi::Unauthorized, crate::openapi::Forbidden, crate::openapi::PayloadTooLarge,
        crate::openapi::UnsupportedMediaType,
    ),
)]
pub(crate) async fn import(
    State(state): State<CommandState>,
    principal: Principal,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let region = state.service.region().clone();
    if !principal.may_write_as(&region) {
        return ApiError::Forbidden(region.to_string()).into_response();
    }
    if !is_ndjson(&headers) {
        return ApiError::UnsupportedMediaType(NDJSON).into_response();
    }
    let body = match accept_bytes(body) {
        Ok(body) => body,
        Err(error) => return error.into_response(),
    };
    let job = Import {
        service: state.service.clone(),
        principal,
        home: region,
        correlation_id: Uuid::now_v7(),
        lines: numbered_lines(&body),
        next: 0,
    };
    metrics::counter!("import_requests_total").increment(1);
    // Fused: the body may be polled once more after its end.
    let results = futures::stream::unfold(job, |job| job.next_batch()).fuse();
    let mut response = Response::new(Body::from_stream(results));
    *response.status_mut() = StatusCode::OK;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(NDJSON));
    response
}

fn is_ndjson(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().trim())
        .is_some_and(|mime| mime.eq_ignore_ascii_case(NDJSON))
}

/// The body's non-blank lines with their 1-based line numbers.
fn numbered_lines(body: &Bytes) -> Vec<(u64, Bytes)> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut number = 0;
    while start < body.len() {
        let end = body
            .get(start..)
            .and_then(|rest| rest.iter().position(|b| *b == b'\n'))
            .map_or(body.len(), |at| start + at);
        number += 1;
        let line = body.slice(start..end);
        if !line.iter().all(u8::is_ascii_whitespace) {
            lines.push((number, line));
        }
        start = end + 1;
    }
    lines
}

/// An import in progress: the lines still to apply.
struct Import {
    service: CommandService,
    principal: Principal,
    home: RegionId,
    correlation_id: Uuid,
    lines: Vec<(u64, Bytes)>,
    next: usize,
}

/// A line of the batch being applied, and then its outcome.
struct Entry {
    line: u64,
    key: Option<String>,
    state: EntryState,
}

enum EntryState {
    Ready(ParsedLine),
    Done(ImportOutcome),
}

impl Import {
    /// Applies the next batch and renders its result lines; `None` once every line is done.
    async fn next_batch(mut self) -> Option<(Result<Bytes, Infallible>, Self)> {
        let batch = self
            .lines
            .get(self.next..)?
            .get(..BATCH_LINES.min(self.lines.len() - self.next))?;
        if batch.is_empty() {
            return None;
        }
        self.next += batch.len();
        let span = info_span!(
            "import_batch",
            lines = batch.len(),
            first_line = batch.first().map(|(n, _)| *n)
        );
        let mut entries: Vec<Entry> = batch
            .iter()
            .map(|(number, bytes)| self.parse(*number, bytes))
            .collect();
        self.apply(&mut entries).instrument(span).await;

        let mut out = BytesMut::new();
        for entry in entries {
            if let EntryState::Done(outcome) = entry.state {
                out.put_slice(&outcome.to_line());
            }
        }
        Some((Ok(out.freeze()), self))
    }

    fn parse(&self, line: u64, bytes: &[u8]) -> Entry {
        if bytes.len() > BODY_LIMIT_BYTES {
            let error = ApiError::PayloadTooLarge(format!(
                "an import line holds one command of at most {BODY_LIMIT_BYTES} bytes"
            ));
            return done(line, None, &error);
        }
        match parse_line(bytes, &self.principal, &self.home, self.correlation_id) {
            Ok(parsed) => Entry {
                line,
                key: parsed.request.idempotency.as_ref().map(|c| c.key.clone()),
                state: EntryState::Ready(parsed),
            },
            Err(LineError { key, error }) => {
                count(UNREAD_LINE, &error);
                done(line, key, &error)
            }
        }
    }

    /// Runs the batch's commands wave by wave: each model's lines in order, others at once.
    async fn apply(&self, entries: &mut [Entry]) {
        let models: Vec<Option<String>> = entries
            .iter()
            .map(|entry| match &entry.state {
                EntryState::Ready(parsed) => Some(parsed.request.target.model().to_string()),
                EntryState::Done(_) => None,
            })
            .collect();
        let models: Vec<Option<&str>> = models.iter().map(Option::as_deref).collect();
        for wave in waves(&models, WAVE_MAX) {
            let Some(entries) = entries.get_mut(wave) else {
                continue;
            };
            // One query for the wave's keys instead of one per line: a line already applied
            // (a re-sent file) is answered from its record without deciding anything again.
            let keys: Vec<String> = entries
                .iter()
                .filter_map(|entry| match &entry.state {
                    EntryState::Ready(parsed) => {
                        parsed.request.idempotency.as_ref().map(|c| c.key.clone())
                    }
                    EntryState::Done(_) => None,
                })
                .collect();
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            let recorded = match self
                .service
                .store()
                .recorded_answers(&self.principal.name, &keys)
                .await
            {
                Ok(recorded) => recorded,
                Err(error) => {
                    let error = ApiError::from(CommandError::from(error));
                    for entry in entries.iter_mut() {
                        if let EntryState::Ready(parsed) = &entry.state {
                            count(parsed.operation, &error);
                            entry.state = EntryState::Done(ImportOutcome::refused(
                                entry.line,
                                entry.key.clone(),
                                &error,
                            ));
                        }
                    }
                    continue;
                }
            };
            let recorded = &recorded;
            let runs = entries.iter_mut().map(|entry| async move {
                let EntryState::Ready(parsed) = &entry.state else {
                    return;
                };
                let operation = parsed.operation;
                let claim = parsed.request.idempotency.as_ref();
                let result = match claim.and_then(|c| recorded.get(&c.key).map(|r| (c, r))) {
                    Some((claim, answer)) => answer_recorded(claim, answer.clone()),
                    None => self.service.execute_unrecorded(parsed.request.clone()).await,
                };
                let outcome = match result {
                    Ok(accepted) => {
                        metrics::counter!("commands_total", "command" => operation, "outcome" => "accepted").increment(1);
                        ImportOutcome::accepted(entry.line, entry.key.clone(), &accepted)
                    }
                    Err(error) => {
                        let error = ApiError::from(error);
                        count(operation, &error);
                        ImportOutcome::refused(entry.line, entry.key.clone(), &error)
                    }
                };
                entry.state = EntryState::Done(outcome);
            });
            join_all(runs).await;
        }
    }
}

fn done(line: u64, key: Option<String>, error: &ApiError) -> Entry {
    Entry {
        line,
        key: key.clone(),
        state: EntryState::Done(ImportOutcome::refused(line, key, error)),
    }
}

/// How a line refused before its operation was known is counted in `commands_total`.
const UNREAD_LINE: &str = "import_line";

fn count(operation: &'static str, error: &ApiError) {
    metrics::counter!("commands_total", "command" => operation, "outcome" => error.code())
        .increment(1);
}
