//! One line of an import: a command as its HTTP request would carry it, with its own key.

use domain::RegionId;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::Principal;
use crate::headers;
use crate::problem::ApiError;
use crate::service::CommandRequest;
use crate::targets::{Route, json};
use event_store::IdempotencyClaim;

/// A command line of `POST /v1/imports` and of `GET /v1/exports`: the method, path and JSON
/// body of the command's route, and the `Idempotency-Key` that makes re-sending it exact.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportLine<'a> {
    /// Required: re-sending a file after a failure applies each line at most once.
    pub idempotency_key: String,
    #[schema(example = "POST")]
    pub method: String,
    #[schema(example = "/v1/models")]
    pub path: String,
    /// The route's JSON body, if it takes one.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub body: Option<&'a RawValue>,
    /// The stream version the command expects, as `If-Match` would give it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_match: Option<u64>,
}

/// A line understood: its command, the operation's name and the model it is about.
#[derive(Debug)]
pub(crate) struct ParsedLine {
    pub(crate) operation: &'static str,
    pub(crate) request: CommandRequest,
}

/// What an unusable line answers: its key if one could be read, and the problem.
#[derive(Debug)]
pub(crate) struct LineError {
    pub(crate) key: Option<String>,
    pub(crate) error: ApiError,
}

/// Reads one line into the request its HTTP route would build, checked by the same rules.
pub(crate) fn parse_line(
    bytes: &[u8],
    principal: &Principal,
    home: &RegionId,
    correlation_id: Uuid,
) -> Result<ParsedLine, LineError> {
    let line: ImportLine<'_> = json(bytes).map_err(|error| LineError { key: None, error })?;
    let key = line.idempotency_key.clone();
    let fail = |error: ApiError| LineError {
        key: Some(key.clone()),
        error,
    };
    let checked = headers::checked_key(&line.idempotency_key).map_err(|reason| {
        fail(ApiError::Invalid(domain::ValidationError::new(
            "idempotency_key",
            reason,
        )))
    })?;
    let path = percent_encoding::percent_decode_str(&line.path)
        .decode_utf8()
        .map_err(|_| {
            fail(ApiError::Invalid(domain::ValidationError::new(
                "path",
                "the path is not UTF-8 once percent-decoded",
            )))
        })?;
    let route = Route::of(&line.method, &path).map_err(&fail)?;
    let operation = route.name();
    let body = line.body.map_or("", |raw| raw.get());
    let target = route.target(body.as_bytes(), home).map_err(&fail)?;
    Ok(ParsedLine {
        operation,
        request: CommandRequest {
            target,
            if_match: line.if_match,
            idempotency: Some(IdempotencyClaim {
                principal: principal.name.clone(),
                key: checked,
                fingerprint: headers::fingerprint(&line.method, &line.path, body.as_bytes()),
            }),
            actor: principal.name.clone(),
            correlation_id,
        },
    })
}
