//! Bulk import and export: bad lines refused one by one, an import killed halfway and sent
//! again counting every model exactly once, and a catalogue round-tripped between deployments.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::support::cli::region_node;
use crate::support::cluster::{ADMIN_TOKEN as CLUSTER_TOKEN, Cluster};
use crate::support::node::{ADMIN_TOKEN, TestNode, US_TOKEN};
use crate::support::process::binary;
use crate::support::wait_until;

fn line(key: &str, method: &str, path: &str, body: Option<Value>) -> String {
    let mut line = json!({ "idempotency_key": key, "method": method, "path": path });
    if let Some(body) = body {
        line["body"] = body;
    }
    line.to_string()
}

fn register(id: &str) -> String {
    line(
        &format!("register-{id}"),
        "POST",
        "/v1/models",
        Some(json!({ "id": id, "provider": "acme", "name": { "en": id } })),
    )
}

/// `POST /v1/imports` with `body`; the status and the result lines.
async fn post_import(
    node: &TestNode,
    token: Option<&str>,
    content_type: &str,
    body: String,
) -> (StatusCode, Vec<Value>, String) {
    let mut request = reqwest::Client::new()
        .post(format!("{}/v1/imports", node.base))
        .header("content-type", content_type)
        .body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    let lines = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    (status, lines, text)
}

#[sqlx::test(migrator = "migrations::MIGRATOR")]
async fn bad_lines_get_their_own_problem_and_change_nothing(pool: PgPool) {
    let node = TestNode::start(pool.clone(), "eu-west").await;
    let long_name = "x".repeat(20_000);
    let lines = [
        register("acme/good-1"),                                   // 1
        "{\"idempotency_key\": \"k2\", \"method\": ".to_owned(),   // 2 malformed
        line("", "POST", "/v1/models/acme/good-1/activate", None), // 3 empty key
        json!({ "method": "POST", "path": "/v1/models/acme/good-1/activate" }).to_string(), // 4 no key
        line(
            "k5",
            "POST",
            "/v1/models",
            Some(json!({ "id": "NOT VALID", "provider": "acme", "name": { "en": "x" } })),
        ), // 5
        line("k6", "POST", "/v1/nowhere", None), // 6 no route
        line("k7", "GET", "/v1/models", None),   // 7 not a command
        json!({ "idempotency_key": "k8", "method": "POST", "path": "/v1/models", "extra": 1 })
            .to_string(), // 8 unknown field
        line(
            "k9",
            "POST",
            "/v1/models",
            Some(json!({ "id": "acme/long", "provider": "acme", "name": { "en": long_name } })),
        ), // 9 over-long line
        line("k10", "POST", "/v1/models/acme/unknown/activate", None), // 10 unknown model
        String::new(),                           // 11 blank: skipped
        line("k12", "POST", "/v1/models/acme%2Fgood-1/activate", None), // 12 encoded id, fine
        register("acme/good-2"),                 // 13
        line(
            "k14",
            "PUT",
            "/v1/models/acme/good-2/status",
            Some(json!({ "status": "broken" })),
        ), // 14
    ];
    let (status, results, text) = post_import(
        &node,
        Some(ADMIN_TOKEN),
        "application/x-ndjson",
        lines.join("\n"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let by_line: BTreeMap<u64, &Value> = results
        .iter()
        .map(|r| (r["line"].as_u64().unwrap(), r))
        .collect();
    let expected: [(u64, u16, Option<&str>); 13] = [
        (1, 201, None),
        (2, 400, Some("malformed-body")),
        (3, 422, Some("invalid-field")),
        (4, 422, Some("unprocessable-body")),
        (5, 422, Some("invalid-field")),
        (6, 404, Some("not-found")),
        (7, 405, Some("method-not-allowed")),
        (8, 422, Some("unprocessable-body")),
        (9, 413, Some("payload-too-large")),
        (10, 404, Some("unknown-model")),
        (12, 200, None),
        (13, 201, None),
        (14, 422, Some("invalid-field")),
    ];
    assert_eq!(by_line.len(), expected.len(), "{text}");
    for (number, status, code) in expected {
        let result = by_line
            .get(&number)
            .unwrap_or_else(|| panic!("no result for line {number}: {text}"));
        assert_eq!(result["status"], status, "line {number}: {result}");
        assert_eq!(
            result["problem"]["code"].as_str(),
            code,
            "line {number}: {result}"
        );
    }
    assert_eq!(by_line[&12]["version"], 2);
    // Only the three good lines wrote anything.
    assert_eq!(node.event_count().await, 3);

    // The whole request: its own token rules and content type, nothing written.
    let body = register("acme/never");
    let (status, _, _) = post_import(&node, None, "application/x-ndjson", body.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) =
        post_import(&node, Some(US_TOKEN), "application/x-ndjson", body.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, text) = post_import(&node, Some(ADMIN_TOKEN), "application/json", body).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{text}");
    assert_eq!(node.event_count().await, 3);

    // Sent again, the good lines answer as before and append nothing.
    let (_, again, _) = post_import(
        &node,
        Some(ADMIN_TOKEN),
        "application/x-ndjson",
        lines.join("\n"),
    )
    .await;
    for number in [1u64, 12, 13] {
        let first = by_line[&number];
        let second = again.iter().find(|r| r["line"] == number).unwrap();
        assert_eq!(first, second, "line {number}");
    }
    assert_eq!(node.event_count().await, 3);
    node.stop().await;
}

/// 10,000 commands: 4,000 registrations, 3,000 activations, 2,000 serves, 1,000 status changes.
fn ten_thousand_commands(dir: &Path) -> std::path::PathBuf {
    let mut lines = Vec::with_capacity(10_000);
    for i in 0..4000 {
        lines.push(register(&format!("acme/bulk-{i}")));
    }
    for i in 0..3000 {
        lines.push(line(
            &format!("activate-{i}"),
            "POST",
            &format!("/v1/models/acme/bulk-{i}/activate"),
            None,
        ));
    }
    for i in 0..2000 {
        lines.push(line(
            &format!("serve-{i}"),
            "PUT",
            &format!("/v1/regions/eu-west/models/acme/bulk-{i}"),
            None,
        ));
    }
    for i in 0..1000 {
        lines.push(line(
            &format!("status-{i}"),
            "PUT",
            &format!("/v1/models/acme/bulk-{i}/status"),
            Some(json!({ "status": "degraded" })),
        ));
    }
    let path = dir.join("import.ndjson");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

fn import_command(file: &Path, target: &str, token: &str) -> Command {
    let mut command = Command::new(binary());
    command
        .args([
            "import",
            "--quiet",
            "--chunk-lines",
            "500",
            "--retries",
            "0",
            "--target",
            target,
        ])
        .arg(file)
        .env("AIGO_TOKEN", token)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

#[tokio::test]
async fn an_import_killed_halfway_and_sent_again_counts_every_model_exactly_once() {
    let cluster = Cluster::start(&["eu-west"]).await;
    let node = cluster.node("eu-west");
    let dir = tempfile_dir();
    let file = ten_thousand_commands(&dir);
    let pool = cluster.pool("eu-west").await;

    // First run: the node is killed once about a third of the commands are in.
    let child = import_command(&file, &node.base, CLUSTER_TOKEN)
        .spawn()
        .unwrap();
    wait_until("3,000 events appended", || async {
        let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&pool)
            .await
            .unwrap();
        if events >= 3000 {
            Ok(())
        } else {
            Err(format!("{events} events"))
        }
    })
    .await;
    cluster.kill("eu-west");
    let first = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        first.status.code(),
        Some(1),
        "the interrupted import must fail: {}",
        String::from_utf8_lossy(&first.stderr)
    );
    let events_at_kill: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        events_at_kill < 10_000,
        "the kill came too late to test anything ({events_at_kill} events)"
    );

    // Second run: the same file, whole.
    cluster.restart("eu-west").await;
    let second = tokio::task::spawn_blocking({
        let mut command = import_command(&file, &node.base, CLUSTER_TOKEN);
        move || command.output()
    })
    .await
    .unwrap()
    .unwrap();
    let summary: Value = serde_json::from_slice(&second.stdout).unwrap_or(Value::Null);
    assert_eq!(
        second.status.code(),
        Some(0),
        "{summary} {}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert_eq!(summary["lines"], 10_000, "{summary}");
    assert_eq!(summary["accepted"], 10_000, "{summary}");

    // Every command is in exactly one event, every model registered once.
    let (events, keys, registered): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT envelope->>'idempotency_key'),
                count(*) FILTER (WHERE event_type = 'model_registered')
           FROM events",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((events, keys, registered), (10_000, 10_000, 4000));

    // The counts equal a recount of the catalogue, and the audit finds no difference.
    let expected = (4000, 3000);
    wait_until("counts of the import", || async {
        let counts = cluster.counts("eu-west").await?;
        let got = (
            counts["total"].as_i64().unwrap_or(-1),
            counts["active"].as_i64().unwrap_or(-1),
        );
        if got == expected {
            Ok(())
        } else {
            Err(format!("{got:?}: {counts}"))
        }
    })
    .await;
    let recount: (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE lifecycle = 'active') FROM catalogue_models",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(recount, expected);
    let audit = region_node(node.config_path(), &["audit", "--quiet"]).await;
    assert!(audit.success, "audit: {}\n{}", audit.stdout, audit.stderr);
    pool.close().await;
    let _ = std::fs::remove_dir_all(dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("aigo-import-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A catalogue row: id, provider, home, name, description, lifecycle, status, served in.
type CatalogueEntry = (
    String,
    String,
    String,
    Value,
    Option<Value>,
    String,
    String,
    Vec<String>,
);

/// The catalogue as compared between deployments: everything but versions and times.
async fn catalogue(pool: &PgPool) -> Vec<CatalogueEntry> {
    sqlx::query_as(
        "SELECT m.model_id, m.provider, m.home_region, m.name, m.description, m.lifecycle, m.status,
                ARRAY(SELECT a.region FROM catalogue_availability a
                       WHERE a.model_id = m.model_id AND a.served ORDER BY a.region)
           FROM catalogue_models m ORDER BY m.model_id",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn an_export_imported_into_a_fresh_deployment_gives_the_same_counts_and_catalogue() {
    let regions = ["eu-west", "us-east"];
    let dir = tempfile_dir();
    let export = dir.join("export.ndjson");
    let (counts, original) = {
        let cluster = Cluster::start_with(&regions, ownership_by_provider()).await;
        // A catalogue with history: renames, status changes, retirements, serving in both regions.
        for i in 0..30 {
            let (home, provider) = if i % 2 == 0 {
                ("eu-west", "acme")
            } else {
                ("us-east", "globex")
            };
            let id = format!("{provider}/m-{i}");
            let description =
                (i % 3 == 0).then(|| json!({ "en": "described", "de": "beschrieben" }));
            let mut body =
                json!({ "id": id, "provider": provider, "name": { "en": format!("Model {i}") } });
            if let Some(description) = description {
                body["description"] = description;
            }
            cluster
                .command(home, Method::POST, "/v1/models", Some(body))
                .await;
            if i % 5 != 0 {
                cluster
                    .command(
                        home,
                        Method::POST,
                        &format!("/v1/models/{id}/activate"),
                        None,
                    )
                    .await;
            }
            if i % 4 == 1 {
                cluster
                    .command(
                        home,
                        Method::PUT,
                        &format!("/v1/models/{id}/status"),
                        Some(json!({ "status": "outage" })),
                    )
                    .await;
            }
            if i % 6 == 2 {
                cluster
                    .command(
                        home,
                        Method::PATCH,
                        &format!("/v1/models/{id}"),
                        Some(json!({ "name": { "en": format!("Renamed {i}") } })),
                    )
                    .await;
            }
            // A retired model is withdrawn everywhere in the background: not served here.
            for region in regions {
                if i % 10 != 0 && (i + region.len()) % 3 != 0 {
                    cluster
                        .command(
                            region,
                            Method::PUT,
                            &format!("/v1/regions/{region}/models/{id}"),
                            None,
                        )
                        .await;
                }
            }
            if i % 10 == 0 {
                cluster
                    .command(home, Method::POST, &format!("/v1/models/{id}/retire"), None)
                    .await;
            }
        }
        let counts = settled_counts(&cluster, &regions).await;
        let ran = export_to(&cluster, "eu-west", &export).await;
        assert!(
            ran.status.success(),
            "export: {}",
            String::from_utf8_lossy(&ran.stderr)
        );
        let pool = cluster.pool("eu-west").await;
        let original = catalogue(&pool).await;
        pool.close().await;
        (counts, original)
    };
    assert_eq!(original.len(), 30);

    let cluster = Cluster::start_with(&regions, ownership_by_provider()).await;
    // Each node takes the lines its region owns; serves of models homed elsewhere wait for the
    // catalogue to know them, so the file is sent again until only other regions' lines remain.
    wait_until("the export imported everywhere", || async {
        let mut left = BTreeMap::new();
        for region in regions {
            let ran = import_to(&cluster, region, &export).await;
            let summary: Value = serde_json::from_slice(&ran.stdout).unwrap_or(Value::Null);
            for (code, n) in summary["refused"].as_object().cloned().unwrap_or_default() {
                if code != "wrong-owner" {
                    left.insert(format!("{region}: {code}"), n);
                }
            }
            if summary["failed"] != 0 {
                left.insert(format!("{region}: failed"), summary["failed"].clone());
            }
        }
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("{left:?}"))
        }
    })
    .await;
    // Every command is stored once the imports answer; folding them can take a moment longer.
    wait_until(
        "the fresh deployment counts what the original did",
        || async {
            let now = counts_seen(&cluster, &regions).await?;
            if now.iter().all(|seen| *seen == counts) {
                Ok(())
            } else {
                Err(format!("{now:?}, expected {counts:?}"))
            }
        },
    )
    .await;
    for region in regions {
        let pool = cluster.pool(region).await;
        wait_until(&format!("{region}'s catalogue equal"), || async {
            let imported = catalogue(&pool).await;
            if imported == original {
                Ok(())
            } else {
                Err(format!(
                    "{} rows differ",
                    imported
                        .iter()
                        .zip(&original)
                        .filter(|(a, b)| a != b)
                        .count()
                ))
            }
        })
        .await;
        pool.close().await;
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Registry ownership by provider: acme's ids belong to eu-west, globex's to us-east.
fn ownership_by_provider() -> crate::support::cluster::ClusterOptions {
    crate::support::cluster::ClusterOptions {
        extra_toml: "[ownership]\nproviders = { acme = \"eu-west\", globex = \"us-east\" }\n"
            .into(),
        ..Default::default()
    }
}

/// Counts once every node agrees on them (`total`, `active`, per-provider and per-region
/// figures) and a second look at every node 300 ms later finds the same: a check of `total` and
/// `active` alone passed while availability commands just imported were still being folded
/// (both nodes behind by the same relay batch).
async fn settled_counts(cluster: &Cluster, regions: &[&str]) -> Value {
    wait_until("every node agrees", || async {
        let first = counts_seen(cluster, regions).await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let again = counts_seen(cluster, regions).await?;
        if first.iter().chain(&again).all(|s| *s == first[0]) {
            Ok(first[0].clone())
        } else {
            Err(format!("{first:?} then {again:?}"))
        }
    })
    .await
}

/// Every node's counts, in the shape [`settled_counts`] compares.
async fn counts_seen(cluster: &Cluster, regions: &[&str]) -> Result<Vec<Value>, String> {
    let mut seen = Vec::new();
    for region in regions {
        let counts = cluster.counts(region).await?;
        let available: BTreeMap<String, Value> = counts["regions"]
            .as_object()
            .map(|regions| {
                regions
                    .iter()
                    .map(|(region, c)| (region.clone(), c["available"].clone()))
                    .collect()
            })
            .unwrap_or_default();
        seen.push(json!({
            "total": counts["total"],
            "active": counts["active"],
            "by_provider": counts["by_provider"],
            "available": available,
        }));
    }
    Ok(seen)
}

async fn export_to(cluster: &Cluster, region: &str, file: &Path) -> std::process::Output {
    let mut command = Command::new(binary());
    command
        .args([
            "export",
            "--quiet",
            "--target",
            &cluster.node(region).base,
            "--output",
        ])
        .arg(file)
        .env("AIGO_TOKEN", CLUSTER_TOKEN);
    tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap()
}

async fn import_to(cluster: &Cluster, region: &str, file: &Path) -> std::process::Output {
    let mut command = import_command(file, &cluster.node(region).base, CLUSTER_TOKEN);
    tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap()
}

/// Regression: with `Accept-Encoding: gzip` the compression layer polls a streamed body once
/// more after its end; an unfused stream then panicked and the connection died mid-answer.
#[sqlx::test(migrator = "migrations::MIGRATOR")]
async fn compressed_import_and_export_answers_end_cleanly(pool: PgPool) {
    let node = TestNode::start(pool.clone(), "eu-west").await;
    let client = reqwest::Client::new();
    for _ in 0..3 {
        let import = client
            .post(format!("{}/v1/imports", node.base))
            .bearer_auth(ADMIN_TOKEN)
            .header("content-type", "application/x-ndjson")
            .header("accept-encoding", "gzip")
            .body([register("acme/gz-1"), register("acme/gz-2")].join("\n"))
            .send()
            .await
            .unwrap();
        assert_eq!(import.status(), StatusCode::OK);
        assert_eq!(import.headers()["content-encoding"], "gzip");
        let body = import
            .bytes()
            .await
            .expect("the whole compressed import answer");
        assert!(body.starts_with(&[0x1f, 0x8b]), "not gzip");
        let export = client
            .get(format!("{}/v1/exports", node.base))
            .bearer_auth(ADMIN_TOKEN)
            .header("accept-encoding", "gzip")
            .send()
            .await
            .unwrap();
        assert_eq!(export.status(), StatusCode::OK);
        let body = export.bytes().await.expect("the whole compressed export");
        assert!(body.starts_with(&[0x1f, 0x8b]), "not gzip");
    }
    node.stop().await;
}
