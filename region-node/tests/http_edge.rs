//! The HTTP edge in process, without a broker or a database (a pool that never connects):
//! every request here is answered before the store would be asked, so each answer is exactly
//! what the edge decides. Fast, so the whole problem vocabulary of both sides is covered.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use command_api::TokenConfig;
use domain::RegionId;
use region_node::{Application, Settings};
use serde_json::{Value, json};
use sqlx::postgres::PgPoolOptions;
use tower::ServiceExt;

const ADMIN: &str = "edge-admin-token-0123456789";

/// The eu-west node of a two-region deployment whose database is unreachable.
async fn edge() -> Router {
    let mut settings = Settings::load(None).unwrap();
    settings.region = RegionId::parse("eu-west").unwrap();
    settings.regions = vec![RegionId::parse("us-east").unwrap()];
    settings.http.listen = "127.0.0.1:0".parse().unwrap();
    // Both pools give up on the unreachable database at once (the read pool takes this).
    settings.database.acquire_timeout = Duration::from_millis(200);
    settings.tokens = vec![TokenConfig {
        name: "admin".into(),
        secret: ADMIN.into(),
        scopes: vec!["admin".into()],
    }];
    // Port 1 on loopback: nothing listens, and nothing here should try.
    let pool = PgPoolOptions::new()
        .acquire_timeout(settings.database.acquire_timeout)
        .connect_lazy("postgres://nobody@127.0.0.1:1/none")
        .unwrap();
    Application::build_with_pool(&settings, pool, None)
        .await
        .unwrap()
        .router()
}

struct Answer {
    status: StatusCode,
    content_type: String,
    www_authenticate: Option<String>,
    body: Value,
}

async fn send(
    router: Router,
    method: Method,
    uri: &str,
    token: Option<&str>,
    content_type: &str,
    body: &str,
) -> Answer {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = request
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body.to_owned()))
        .unwrap();
    let response = router.oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    Answer {
        status,
        content_type: headers
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default(),
        www_authenticate: headers
            .get(header::WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap().to_owned()),
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

async fn get(router: Router, uri: &str) -> Answer {
    send(router, Method::GET, uri, None, "application/json", "").await
}

/// A problem document with this status and code, in the shape both sides share.
fn assert_problem(answer: &Answer, status: StatusCode, code: &str) {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert_eq!(answer.content_type, "application/problem+json");
    assert_eq!(answer.body["code"], code, "{}", answer.body);
    assert_eq!(answer.body["type"], format!("/problems/{code}"));
    assert_eq!(answer.body["status"], status.as_u16());
    assert!(answer.body["title"].is_string(), "{}", answer.body);
    assert!(answer.body["detail"].is_string(), "{}", answer.body);
}

#[tokio::test]
async fn writes_without_a_valid_token_are_refused() {
    let router = edge().await;
    let body = r#"{"id":"acme/a","provider":"acme","name":{"en":"A"}}"#;
    let answer = send(
        router.clone(),
        Method::POST,
        "/v1/models",
        None,
        "application/json",
        body,
    )
    .await;
    assert_problem(&answer, StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(answer.www_authenticate.as_deref(), Some("Bearer"));
    let answer = send(
        router,
        Method::POST,
        "/v1/models",
        Some("not-a-token-of-this-node"),
        "application/json",
        body,
    )
    .await;
    assert_problem(&answer, StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test]
async fn malformed_commands_get_the_write_sides_codes() {
    let router = edge().await;
    let cases = [
        (
            Method::POST,
            "/v1/models",
            "text/plain",
            "{}",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
        ),
        (
            Method::POST,
            "/v1/models",
            "application/json",
            "{not json",
            StatusCode::BAD_REQUEST,
            "malformed-body",
        ),
        (
            Method::POST,
            "/v1/models",
            "application/json",
            r#"{"id":"Not An Id","provider":"acme","name":{"en":"A"}}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-field",
        ),
        (
            Method::POST,
            "/v1/models/%FF/activate",
            "application/json",
            "",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-field",
        ),
        (
            Method::POST,
            "/v1/models/acme/a/promote",
            "application/json",
            "",
            StatusCode::NOT_FOUND,
            "not-found",
        ),
    ];
    for (method, uri, content_type, body, status, code) in cases {
        let answer = send(
            router.clone(),
            method.clone(),
            uri,
            Some(ADMIN),
            content_type,
            body,
        )
        .await;
        assert_problem(&answer, status, code);
    }
}

#[tokio::test]
async fn a_registration_for_another_regions_id_names_the_owner() {
    // With two regions and no pinned providers, rendezvous hashing gives some ids to us-east.
    let regions = [
        RegionId::parse("eu-west").unwrap(),
        RegionId::parse("us-east").unwrap(),
    ];
    let table = domain::Ownership::new(regions, Default::default()).unwrap();
    let provider = domain::ProviderId::parse("acme").unwrap();
    let id = (0..)
        .map(|i| format!("acme/edge-{i}"))
        .find(|id| {
            table
                .owner(&domain::ModelId::parse(id).unwrap(), &provider)
                .as_str()
                == "us-east"
        })
        .unwrap();
    let body = json!({"id": id, "provider": "acme", "name": {"en": "A"}}).to_string();
    let answer = send(
        edge().await,
        Method::POST,
        "/v1/models",
        Some(ADMIN),
        "application/json",
        &body,
    )
    .await;
    assert_problem(&answer, StatusCode::CONFLICT, "wrong-owner");
    assert_eq!(answer.body["owner_region"], "us-east");
}

#[tokio::test]
async fn bad_reads_get_the_read_sides_codes() {
    let router = edge().await;
    let cases = [
        (
            "/v1/models/%FF",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-parameter",
        ),
        (
            "/v1/models?limit=0",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-parameter",
        ),
        (
            "/v1/regions/mars/counts",
            StatusCode::NOT_FOUND,
            "unknown-region",
        ),
        (
            "/v1/counts?at=yesterday",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-instant",
        ),
        (
            "/v1/counts/series?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z&step=1h",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-series",
        ),
        (
            "/v1/counts/series?from=x",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-series",
        ),
        ("/no/such/route", StatusCode::NOT_FOUND, "not-found"),
    ];
    for (uri, status, code) in cases {
        let answer = get(router.clone(), uri).await;
        assert_problem(&answer, status, code);
        if code == "invalid-parameter" {
            assert!(answer.body["field"].is_string(), "{}", answer.body);
        }
    }
}

#[tokio::test]
async fn live_counts_need_no_database_and_carry_every_count_field() {
    let answer = get(edge().await, "/v1/counts").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    for field in ["total", "active", "inactive", "retired"] {
        assert_eq!(answer.body[field], 0, "{field}: {}", answer.body);
    }
    assert_eq!(answer.body["by_status"]["operational"], 0);
    assert_eq!(answer.body["by_provider"], json!({}));
    assert_eq!(answer.body["node_region"], "eu-west");
    let regions = answer.body["regions"].as_object().unwrap();
    assert_eq!(
        regions.keys().collect::<Vec<_>>(),
        ["eu-west", "us-east"],
        "{}",
        answer.body
    );
}

#[tokio::test]
async fn readiness_is_a_problem_document_until_the_node_is_ready() {
    let answer = get(edge().await, "/readyz").await;
    assert_problem(&answer, StatusCode::SERVICE_UNAVAILABLE, "not-ready");
    assert!(
        !answer.body["reasons"].as_array().unwrap().is_empty(),
        "{}",
        answer.body
    );
}
