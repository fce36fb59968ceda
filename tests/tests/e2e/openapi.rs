//! `GET /openapi.json` of a running node: it parses, covers every route of the contract on both
//! sides, and documents how each operation fails. Schemathesis (scripts/schemathesis.sh) checks
//! that the node's answers agree with it.

use reqwest::{Method, StatusCode};
use serde_json::Value;
use sqlx::PgPool;

use crate::support::node::{ADMIN_TOKEN, TestNode};

/// Every route of the contract (ARCHITECTURE.md) built so far, with its methods.
const CONTRACT: &[(&str, &[&str])] = &[
    // Write side.
    ("/v1/models", &["post", "get"]),
    ("/v1/models/{id}/activate", &["post"]),
    ("/v1/models/{id}/deactivate", &["post"]),
    ("/v1/models/{id}/retire", &["post"]),
    ("/v1/models/{id}/status", &["put"]),
    ("/v1/models/{id}", &["patch", "get"]),
    ("/v1/regions/{region}/models/{id}", &["put", "delete"]),
    // Read side.
    ("/v1/counts", &["get"]),
    ("/v1/counts/series", &["get"]),
    ("/v1/models/{id}/history", &["get"]),
    ("/v1/regions/{region}/counts", &["get"]),
    ("/v1/stream", &["get"]),
    ("/openapi.json", &["get"]),
    ("/", &["get"]),
    ("/assets/dashboard.js", &["get"]),
    ("/assets/dashboard.css", &["get"]),
    ("/assets/favicon.svg", &["get"]),
    ("/metrics", &["get"]),
    ("/healthz", &["get"]),
    ("/readyz", &["get"]),
];

/// Operations that cannot fail on a client's input: nothing to refuse, so no 4xx.
const NO_CLIENT_ERRORS: &[&str] = &[
    "/openapi.json",
    "/metrics",
    "/healthz",
    "/readyz",
    "/",
    "/assets/dashboard.js",
    "/assets/dashboard.css",
    "/assets/favicon.svg",
];

const METHODS: &[&str] = &["get", "put", "post", "delete", "patch", "head", "options"];

async fn served_document(pool: PgPool) -> Value {
    let node = TestNode::start(pool, "eu-west").await;
    let answer = node
        .send(Method::GET, "/openapi.json", None, &[], None)
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    let content_type = answer
        .headers
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap();
    assert_eq!(content_type, "application/json");
    assert!(
        answer.body.is_object(),
        "not a JSON document: {}",
        answer.body
    );
    node.stop().await;
    answer.body
}

/// `(path, method, operation)` for every documented operation.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut all = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            if METHODS.contains(&method.as_str()) {
                all.push((path.clone(), method.clone(), operation.clone()));
            }
        }
    }
    all
}

/// Follows a local `$ref` (`#/components/...`) once.
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value["$ref"].as_str() {
        Some(reference) => doc
            .pointer(reference.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("dangling $ref {reference}")),
        None => value,
    }
}

#[sqlx::test(migrator = "migrations::MIGRATOR")]
async fn the_document_is_openapi_3_1_and_lists_every_route_of_the_contract(pool: PgPool) {
    let doc = served_document(pool).await;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    assert!(doc["info"]["title"].is_string());
    for (path, methods) in CONTRACT {
        let item = &doc["paths"][path];
        assert!(item.is_object(), "{path} is not documented");
        for method in *methods {
            let operation = &item[method];
            assert!(
                operation.is_object(),
                "{} {path} is not documented",
                method.to_uppercase()
            );
            assert!(
                operation["operationId"].is_string(),
                "{method} {path} has no operationId"
            );
            assert!(
                operation["responses"]
                    .as_object()
                    .unwrap()
                    .keys()
                    .any(|status| status.starts_with('2')),
                "{method} {path} documents no success"
            );
        }
    }
    let mut ids: Vec<_> = operations(&doc)
        .into_iter()
        .map(|(_, _, op)| op["operationId"].as_str().unwrap().to_owned())
        .collect();
    let count = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), count, "operationIds must be unique");
}

#[sqlx::test(migrator = "migrations::MIGRATOR")]
async fn every_operation_documents_its_failures_as_problem_documents(pool: PgPool) {
    let doc = served_document(pool).await;
    let problem = &doc["components"]["schemas"]["Problem"];
    let required: Vec<&str> = problem["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    for field in ["type", "title", "status", "detail", "code"] {
        assert!(required.contains(&field), "Problem lacks {field}");
    }
    for field in ["field", "owner_region", "current_version"] {
        assert!(
            problem["properties"][field].is_object(),
            "Problem lacks {field}"
        );
    }

    for (path, method, operation) in operations(&doc) {
        let responses = operation["responses"].as_object().unwrap();
        let failures: Vec<_> = responses
            .iter()
            .filter(|(status, _)| status.starts_with('4') || status.starts_with('5'))
            .collect();
        if !NO_CLIENT_ERRORS.contains(&path.as_str()) {
            assert!(
                failures.iter().any(|(status, _)| status.starts_with('4')),
                "{method} {path} documents no 4xx"
            );
        }
        for (status, response) in failures {
            let response = resolve(&doc, response);
            let content = response["content"].as_object().unwrap();
            if path == "/readyz" {
                continue; // its 503 is the readiness body, not a problem
            }
            let schema = &content
                .get("application/problem+json")
                .unwrap_or_else(|| panic!("{method} {path} {status} is not a problem document"))["schema"];
            assert_eq!(
                schema["$ref"], "#/components/schemas/Problem",
                "{method} {path} {status}"
            );
        }
    }
}

#[sqlx::test(migrator = "migrations::MIGRATOR")]
async fn writes_need_a_bearer_token_and_take_idempotency_and_concurrency_headers(pool: PgPool) {
    let doc = served_document(pool).await;
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"]
            .as_str()
            .map(str::to_lowercase)
            .as_deref(),
        Some("bearer")
    );
    let writes = operations(&doc)
        .into_iter()
        .filter(|(_, method, _)| method != "get");
    let mut seen = 0;
    for (path, method, operation) in writes {
        seen += 1;
        assert!(
            operation["security"]
                .as_array()
                .is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some())),
            "{method} {path} does not require the bearer token"
        );
        if path == "/v1/imports" {
            // Keys and versions travel per line; the request itself is a bulk upload.
            for status in ["401", "403", "413", "415"] {
                assert!(
                    operation["responses"][status].is_object(),
                    "{method} {path} does not document {status}"
                );
            }
            continue;
        }
        let headers: Vec<&str> = operation["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["in"] == "header")
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        for header in ["Idempotency-Key", "If-Match"] {
            assert!(headers.contains(&header), "{method} {path} lacks {header}");
        }
        for status in ["401", "403", "422"] {
            assert!(
                operation["responses"][status].is_object(),
                "{method} {path} does not document {status}"
            );
        }
    }
    assert_eq!(seen, 9, "eight write operations and the import");
}

#[sqlx::test(migrator = "migrations::MIGRATOR")]
async fn reads_document_their_parameters_and_headers(pool: PgPool) {
    let doc = served_document(pool).await;
    let names = |path: &str| -> Vec<String> {
        doc["paths"][path]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                format!(
                    "{}:{}",
                    p["in"].as_str().unwrap(),
                    p["name"].as_str().unwrap()
                )
            })
            .collect()
    };
    let expect = [
        (
            "/v1/counts",
            &[
                "query:after",
                "header:Consistency-Token",
                "header:If-None-Match",
            ][..],
        ),
        (
            "/v1/models",
            &[
                "query:provider",
                "query:region",
                "query:state",
                "query:status",
                "query:locale",
                "query:limit",
                "query:cursor",
                "query:after",
                "header:Accept-Language",
            ][..],
        ),
        (
            "/v1/models/{id}",
            &["path:id", "query:locale", "header:Accept-Language"][..],
        ),
        ("/v1/stream", &["query:region", "header:Last-Event-ID"][..]),
    ];
    for (path, wanted) in expect {
        let documented = names(path);
        for name in wanted {
            assert!(
                documented.iter().any(|d| d == name),
                "{path} lacks {name}: {documented:?}"
            );
        }
    }
    // A parameter is absent or a string; "null" would be sent as text.
    for (path, method, operation) in operations(&doc) {
        for parameter in operation["parameters"].as_array().into_iter().flatten() {
            let kinds = &parameter["schema"]["type"];
            assert!(
                !kinds
                    .as_array()
                    .is_some_and(|k| k.iter().any(|t| t == "null")),
                "{method} {path}: parameter {} is nullable",
                parameter["name"]
            );
        }
    }
    let counts = &doc["paths"]["/v1/counts"]["get"]["responses"];
    assert!(counts["304"].is_object());
    assert!(counts["200"]["headers"]["ETag"].is_object());
    let stream = &doc["paths"]["/v1/stream"]["get"]["responses"]["200"]["content"];
    assert!(stream["text/event-stream"].is_object());
    let metrics = &doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"];
    assert!(metrics["text/plain"].is_object());
}

/// Inputs the fuzzer found (or cannot send) that were once answered outside the document: a
/// NUL in a name was a 503 (PostgreSQL refused it), a path that is not UTF-8 a plain-text 400.
#[sqlx::test(migrator = "migrations::MIGRATOR")]
async fn inputs_found_by_fuzzing_get_documented_problem_documents(pool: PgPool) {
    let node = TestNode::start(pool, "eu-west").await;
    let nul = r#"{"id":"acme/nul","provider":"acme","name":{"en":"a\u0000b"}}"#;
    let answer = node
        .send(
            Method::POST,
            "/v1/models",
            Some(ADMIN_TOKEN),
            &[],
            Some(nul),
        )
        .await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        answer.body
    );
    assert_eq!(answer.body["code"], "invalid-field");
    assert_eq!(answer.body["field"], "name");
    assert_eq!(node.event_count().await, 0);

    let cases = [
        (Method::GET, "/v1/models/%FF", None, "invalid-parameter"),
        (
            Method::GET,
            "/v1/regions/%FF/counts",
            None,
            "invalid-parameter",
        ),
        (
            Method::POST,
            "/v1/models/%FF/activate",
            Some(ADMIN_TOKEN),
            "invalid-field",
        ),
        (
            Method::PUT,
            "/v1/regions/%FF/models/acme/x",
            Some(ADMIN_TOKEN),
            "invalid-field",
        ),
    ];
    for (method, path, token, code) in cases {
        let answer = node.send(method.clone(), path, token, &[], None).await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{method} {path}"
        );
        let content_type = answer.headers.get("content-type").unwrap();
        assert_eq!(content_type, "application/problem+json", "{method} {path}");
        assert_eq!(answer.body["code"], code, "{method} {path}");
    }
    node.stop().await;
}
