//! The node's OpenAPI 3.1 document, `GET /openapi.json`: the command side's and the query
//! side's documents merged, rendered once at start-up.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::{Map, Value};
use utoipa::OpenApi;

/// The document's own route and what the two sides do not describe.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "AI-GO Model Tracker",
        description = "How many AI models exist, how many are active, per provider and per \
            region, derived from one event-sourced log and pushed the moment it changes. Every \
            error is an `application/problem+json` document with a stable `code`. Model ids \
            contain `/`: in a path, give them as they are or with `/` encoded as `%2F`.",
    ),
    paths(openapi_json)
)]
struct NodeDoc;

/// Both sides' operations and schemas in one document. The command side goes first so that its
/// `Problem` schema (a superset of the read side's: it adds `owner_region` and
/// `current_version`) is the one kept.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = NodeDoc::openapi();
    doc.merge(command_api::ApiDoc::openapi());
    doc.merge(query_api::ApiDoc::openapi());
    doc
}

/// The document as served.
pub fn json() -> Value {
    let mut json = serde_json::to_value(document()).unwrap_or_else(|error| {
        tracing::error!(%error, "the OpenAPI document did not serialize");
        Value::Object(Map::new())
    });
    camel_case_links(&mut json);
    json
}

/// utoipa 5.5 writes a link's `operation_id`, `operation_ref` and `request_body` in snake case;
/// OpenAPI (and every client that follows links, Schemathesis's stateful tests among them)
/// reads `operationId`, `operationRef`, `requestBody`.
fn camel_case_links(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    let links = paths
        .values_mut()
        .filter_map(Value::as_object_mut)
        .flat_map(|item| item.values_mut())
        .filter_map(|operation| operation.get_mut("responses")?.as_object_mut())
        .flat_map(|responses| responses.values_mut())
        .filter_map(|response| response.get_mut("links")?.as_object_mut())
        .flat_map(|links| links.values_mut())
        .filter_map(Value::as_object_mut);
    for link in links {
        for (from, to) in [
            ("operation_id", "operationId"),
            ("operation_ref", "operationRef"),
            ("request_body", "requestBody"),
        ] {
            if let Some(value) = link.remove(from) {
                link.insert(to.to_owned(), value);
            }
        }
    }
}

/// `GET /openapi.json`.
pub fn router() -> Router {
    let json = serde_json::to_vec(&json()).unwrap_or_default();
    Router::new()
        .route("/openapi.json", get(openapi_json))
        .with_state(Bytes::from(json))
}

/// This document.
#[utoipa::path(
    get, path = "/openapi.json", tag = "operations", operation_id = "openapi",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object)),
)]
async fn openapi_json(State(json): State<Bytes>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], json)
}
