//! Every bad input gets its documented status and problem document, and changes nothing.

use reqwest::{Method, StatusCode};
use sqlx::PgPool;

use crate::support::node::{ADMIN_TOKEN, EU_TOKEN, TestNode, US_TOKEN};

struct Case {
    what: &'static str,
    method: Method,
    path: String,
    token: Option<&'static str>,
    headers: Vec<(&'static str, &'static str)>,
    body: Option<String>,
    status: StatusCode,
    code: &'static str,
}

fn case(what: &'static str, method: Method, path: &str, body: Option<&str>) -> Case {
    Case {
        what,
        method,
        path: path.to_owned(),
        token: Some(ADMIN_TOKEN),
        headers: Vec::new(),
        body: body.map(str::to_owned),
        status: StatusCode::OK,
        code: "",
    }
}

impl Case {
    fn expect(mut self, status: StatusCode, code: &'static str) -> Self {
        self.status = status;
        self.code = code;
        self
    }
    fn token(mut self, token: Option<&'static str>) -> Self {
        self.token = token;
        self
    }
    fn header(mut self, name: &'static str, value: &'static str) -> Self {
        self.headers.push((name, value));
        self
    }
}

fn register(body: &str) -> Case {
    case("register", Method::POST, "/v1/models", Some(body))
}

fn cases() -> Vec<Case> {
    use StatusCode as S;
    let long_id = "a".repeat(129);
    let long_name = "n".repeat(201);
    let huge = format!(
        r#"{{"id":"acme/huge","provider":"acme","name":{{"en":"{}"}}}}"#,
        "x".repeat(20_000)
    );
    vec![
        register(r#"{"id":"#).expect(S::BAD_REQUEST, "malformed-body"),
        register(r#"{"id":"acme/x","provider":"acme","name":{"en":"X"},"colour":"red"}"#)
            .expect(S::UNPROCESSABLE_ENTITY, "unprocessable-body"),
        register(r#"{"id":"acme/x","provider":"acme","name":"X"}"#)
            .expect(S::UNPROCESSABLE_ENTITY, "unprocessable-body"),
        register(r#"{"id":7,"provider":"acme","name":{"en":"X"}}"#)
            .expect(S::UNPROCESSABLE_ENTITY, "unprocessable-body"),
        register(r#"{"provider":"acme","name":{"en":"X"}}"#)
            .expect(S::UNPROCESSABLE_ENTITY, "unprocessable-body"),
        register(&format!(
            r#"{{"id":"{long_id}","provider":"acme","name":{{"en":"X"}}}}"#
        ))
        .expect(S::UNPROCESSABLE_ENTITY, "invalid-field"),
        register(r#"{"id":"","provider":"acme","name":{"en":"X"}}"#)
            .expect(S::UNPROCESSABLE_ENTITY, "invalid-field"),
        register(r#"{"id":"Acme/Bad Id","provider":"acme","name":{"en":"X"}}"#)
            .expect(S::UNPROCESSABLE_ENTITY, "invalid-field"),
        register(r#"{"id":"acme/x","provider":"ac/me","name":{"en":"X"}}"#)
            .expect(S::UNPROCESSABLE_ENTITY, "invalid-field"),
        register(r#"{"id":"acme/x","provider":"acme","name":{"en":""}}"#)
            .expect(S::UNPROCESSABLE_ENTITY, "invalid-field"),
        register(r#"{"id":"acme/x","provider":"acme","name":{"ko":"모델"}}"#)
            .expect(S::UNPROCESSABLE_ENTITY, "invalid-field"),
        register(&format!(
            r#"{{"id":"acme/x","provider":"acme","name":{{"en":"{long_name}"}}}}"#
        ))
        .expect(S::UNPROCESSABLE_ENTITY, "invalid-field"),
        register(r#"{"id":"acme/x","provider":"acme","name":{"en":"X"},"home_region":"EU"}"#)
            .expect(S::UNPROCESSABLE_ENTITY, "invalid-field"),
        register(&huge).expect(S::PAYLOAD_TOO_LARGE, "payload-too-large"),
        register(r#"{"id":"acme/x","provider":"acme","name":{"en":"X"}}"#)
            .token(None)
            .expect(S::UNAUTHORIZED, "unauthorized"),
        register(r#"{"id":"acme/x","provider":"acme","name":{"en":"X"}}"#)
            .token(Some("not-a-configured-token-at-all"))
            .expect(S::UNAUTHORIZED, "unauthorized"),
        register(r#"{"id":"acme/x","provider":"acme","name":{"en":"X"}}"#)
            .token(Some(US_TOKEN))
            .expect(S::FORBIDDEN, "forbidden"),
        register(r#"{"id":"acme/x","provider":"acme","name":{"en":"X"},"home_region":"us-east"}"#)
            .expect(S::CONFLICT, "wrong-owner"),
        register(r#"{"id":"acme/base","provider":"acme","name":{"en":"Base"}}"#)
            .expect(S::CONFLICT, "already-registered"),
        register(r#"{"id":"acme/x","provider":"acme","name":{"en":"X"}}"#)
            .header("idempotency-key", "has space")
            .expect(S::BAD_REQUEST, "bad-header"),
        case(
            "unknown model",
            Method::POST,
            "/v1/models/acme/nope/activate",
            None,
        )
        .expect(S::NOT_FOUND, "unknown-model"),
        case(
            "illegal transition",
            Method::POST,
            "/v1/models/acme/base/deactivate",
            None,
        )
        .expect(S::CONFLICT, "illegal-transition"),
        case(
            "retired",
            Method::POST,
            "/v1/models/acme/gone/activate",
            None,
        )
        .expect(S::CONFLICT, "model-retired"),
        case(
            "unknown action",
            Method::POST,
            "/v1/models/acme/base/explode",
            None,
        )
        .expect(S::NOT_FOUND, "not-found"),
        case(
            "over-long path id",
            Method::POST,
            &format!("/v1/models/{long_id}/activate"),
            None,
        )
        .expect(S::UNPROCESSABLE_ENTITY, "invalid-field"),
        case(
            "stale If-Match",
            Method::POST,
            "/v1/models/acme/base/activate",
            None,
        )
        .header("if-match", "\"7\"")
        .expect(S::PRECONDITION_FAILED, "version-mismatch"),
        case(
            "malformed If-Match",
            Method::POST,
            "/v1/models/acme/base/activate",
            None,
        )
        .header("if-match", "seven")
        .expect(S::BAD_REQUEST, "bad-header"),
        case(
            "bad status",
            Method::PUT,
            "/v1/models/acme/base/status",
            Some(r#"{"status":"fine"}"#),
        )
        .expect(S::UNPROCESSABLE_ENTITY, "invalid-field"),
        case(
            "same status",
            Method::PUT,
            "/v1/models/acme/base/status",
            Some(r#"{"status":"operational"}"#),
        )
        .expect(S::CONFLICT, "status-unchanged"),
        case(
            "empty patch",
            Method::PATCH,
            "/v1/models/acme/base",
            Some("{}"),
        )
        .expect(S::UNPROCESSABLE_ENTITY, "unprocessable-body"),
        case(
            "patch nothing new",
            Method::PATCH,
            "/v1/models/acme/base",
            Some(r#"{"name":{"en":"acme/base"}}"#),
        )
        .expect(S::CONFLICT, "nothing-changed"),
        case(
            "patch unknown field",
            Method::PATCH,
            "/v1/models/acme/base",
            Some(r#"{"title":{"en":"B"}}"#),
        )
        .expect(S::UNPROCESSABLE_ENTITY, "unprocessable-body"),
        case(
            "serve for another region",
            Method::PUT,
            "/v1/regions/us-east/models/acme/base",
            None,
        )
        .expect(S::CONFLICT, "wrong-owner"),
        case(
            "serve unknown model",
            Method::PUT,
            "/v1/regions/eu-west/models/acme/nope",
            None,
        )
        .expect(S::NOT_FOUND, "unknown-model"),
        case(
            "serve retired model",
            Method::PUT,
            "/v1/regions/eu-west/models/acme/gone",
            None,
        )
        .expect(S::CONFLICT, "model-retired"),
        case(
            "withdraw unserved",
            Method::DELETE,
            "/v1/regions/eu-west/models/acme/base",
            None,
        )
        .expect(S::CONFLICT, "not-served"),
        case(
            "bad region slug",
            Method::PUT,
            "/v1/regions/EU/models/acme/base",
            None,
        )
        .expect(S::UNPROCESSABLE_ENTITY, "invalid-field"),
        case("unknown route", Method::GET, "/v1/nothing-here", None)
            .expect(S::NOT_FOUND, "not-found"),
        case("method not allowed", Method::DELETE, "/v1/models", None)
            .expect(S::METHOD_NOT_ALLOWED, "method-not-allowed"),
    ]
}

/// Everything a command could have changed, as text.
async fn snapshot(pool: &PgPool) -> String {
    sqlx::query_scalar(
        "SELECT concat_ws('|',
            (SELECT string_agg(envelope::text, ',' ORDER BY position) FROM events),
            (SELECT string_agg(position::text, ',' ORDER BY position) FROM outbox),
            (SELECT string_agg(key, ',' ORDER BY key) FROM idempotency_keys),
            (SELECT string_agg(model_id || lifecycle || status || version, ',' ORDER BY model_id)
               FROM catalogue_models),
            (SELECT string_agg(region || model_id || served, ',' ORDER BY model_id)
               FROM catalogue_availability))",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrator = "migrations::MIGRATOR")]
async fn every_bad_input_gets_its_problem_and_changes_nothing(pool: PgPool) {
    let node = TestNode::start(pool, "eu-west").await;
    assert_eq!(
        node.register("acme/base", "acme").await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        node.register("acme/gone", "acme").await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        node.lifecycle("acme/gone", "retire").await.status,
        StatusCode::OK
    );
    let before = snapshot(&node.pool).await;

    let mut failures = Vec::new();
    for case in cases() {
        let answer = node
            .send(
                case.method.clone(),
                &case.path,
                case.token,
                &case.headers,
                case.body.as_deref(),
            )
            .await;
        let content_type = answer
            .headers
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        let ok = answer.status == case.status
            && content_type.as_deref() == Some("application/problem+json")
            && answer.body["status"] == case.status.as_u16()
            && answer.body["code"] == case.code
            && answer.body["type"] == format!("/problems/{}", case.code)
            && answer.body["detail"]
                .as_str()
                .is_some_and(|d| !d.is_empty());
        if !ok {
            failures.push(format!(
                "{} {} ({}): expected {} {}, got {} {:?}",
                case.method,
                case.path,
                case.what,
                case.status,
                case.code,
                answer.status,
                answer.body
            ));
        }
        if case.code == "wrong-owner" {
            // A registration names the id's registry owner: in a one-region deployment, this
            // node; an availability write names the region it is about.
            let owner = if case.what == "register" {
                "eu-west"
            } else {
                "us-east"
            };
            assert_eq!(answer.body["owner_region"], owner, "{}", case.what);
        }
        if case.status == StatusCode::UNAUTHORIZED {
            assert_eq!(answer.headers["www-authenticate"], "Bearer");
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(
        snapshot(&node.pool).await,
        before,
        "bad input changed the store"
    );
}

/// A caller past its command budget gets 429 with `Retry-After`, and nothing is written; other
/// callers keep their own budget.
#[sqlx::test(migrator = "migrations::MIGRATOR")]
async fn a_caller_past_its_budget_gets_429_and_changes_nothing(pool: PgPool) {
    let node = TestNode::start_with(pool, "eu-west", |settings| {
        settings.http.commands_per_second = std::num::NonZeroU32::new(1).unwrap();
        settings.http.command_burst = std::num::NonZeroU32::new(2).unwrap();
    })
    .await;
    // The budget refills one command a second, so how many are accepted before the first
    // refusal depends on how long they take: at least the burst, and a refusal soon after.
    let mut accepted = 0;
    let (refused, before) = loop {
        let before = snapshot(&node.pool).await;
        let answer = node.register(&format!("acme/m{accepted}"), "acme").await;
        if answer.status != StatusCode::CREATED {
            break (answer, before);
        }
        accepted += 1;
        assert!(
            accepted < 10,
            "ten commands in a row were accepted on a budget of one a second"
        );
    };
    assert!(accepted >= 2, "refused within the burst of 2: {accepted}");
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        refused.body
    );
    assert_eq!(refused.body["code"], "too-many-requests");
    assert_eq!(refused.body["type"], "/problems/too-many-requests");
    let retry_after: u64 = refused.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "Retry-After {retry_after}");
    assert_eq!(
        snapshot(&node.pool).await,
        before,
        "a refused command wrote something"
    );
    // Another token has a budget of its own.
    let body = r#"{"id":"acme/d","provider":"acme","name":{"en":"D"}}"#;
    let other = node
        .send(Method::POST, "/v1/models", Some(EU_TOKEN), &[], Some(body))
        .await;
    assert_eq!(other.status, StatusCode::CREATED, "{}", other.body);
}
