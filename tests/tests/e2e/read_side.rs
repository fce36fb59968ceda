//! The read side against real region-node processes: read-your-writes with consistency tokens
//! on every node, live SSE across regions with resumption, locales, cursor pagination, ETags,
//! and precise refusals of bad reads.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::cluster::{Cluster, ClusterOptions, MAX_STREAMS};
use crate::support::sse::{Opened, SseClient};
use crate::support::{AP, EU, US, wait_until};

const REGIONS: [&str; 3] = [EU, US, AP];
const EVENT_WITHIN: Duration = Duration::from_secs(30);

/// The part of a counts body the tests compare: totals, statuses and per-region availability.
fn counts_of(body: &Value) -> Value {
    let available: serde_json::Map<String, Value> = REGIONS
        .iter()
        .map(|r| ((*r).to_owned(), body["regions"][r]["available"].clone()))
        .collect();
    json!({
        "total": body["total"],
        "active": body["active"],
        "inactive": body["inactive"],
        "retired": body["retired"],
        "by_status": body["by_status"],
        "by_provider": body["by_provider"],
        "available": available,
    })
}

fn expected(total: i64, active: i64, retired: i64, degraded: i64, served_us: i64) -> Value {
    json!({
        "total": total,
        "active": active,
        "inactive": total - active,
        "retired": retired,
        "by_status": { "operational": total - degraded, "degraded": degraded, "outage": 0 },
        "by_provider": if total > 0 { json!({ "acme": { "total": total, "active": active } }) } else { json!({}) },
        "available": { EU: 0, US: served_us, AP: 0 },
    })
}

/// Nodes on which `pins` name the region that registers each provider's models.
fn pinned(pins: &[(&str, &str)]) -> ClusterOptions {
    let table: Vec<String> = pins.iter().map(|(p, r)| format!("{p} = \"{r}\"")).collect();
    ClusterOptions {
        extra_toml: format!("[ownership]\nproviders = {{ {} }}\n", table.join(", ")),
        ..ClusterOptions::default()
    }
}

fn token(answer: &Value) -> String {
    answer["consistency_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no consistency token in {answer}"))
        .to_owned()
}

fn encode(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// After each kind of command, the very next read with its token shows the result, on the
/// node that took it and on every other node (query parameter and header alike).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_kind_is_read_back_with_its_token_on_every_node() {
    let cluster = Cluster::start_with(&REGIONS, pinned(&[("acme", EU)])).await;
    let id = "acme/rw-1";
    let steps: Vec<(&str, Method, String, Option<Value>, Value)> = vec![
        (
            EU,
            Method::POST,
            "/v1/models".into(),
            Some(
                json!({"id": id, "provider": "acme", "name": {"en": "RW one", "ko": "알더블유 일"}}),
            ),
            expected(1, 0, 0, 0, 0),
        ),
        (
            EU,
            Method::POST,
            format!("/v1/models/{id}/activate"),
            None,
            expected(1, 1, 0, 0, 0),
        ),
        (
            EU,
            Method::PUT,
            format!("/v1/models/{id}/status"),
            Some(json!({"status": "degraded"})),
            expected(1, 1, 0, 1, 0),
        ),
        (
            EU,
            Method::PATCH,
            format!("/v1/models/{id}"),
            Some(json!({"name": {"en": "RW One", "ko": "새 이름"}})),
            expected(1, 1, 0, 1, 0),
        ),
        (
            US,
            Method::PUT,
            format!("/v1/regions/{US}/models/{id}"),
            None,
            expected(1, 1, 0, 1, 1),
        ),
        (
            US,
            Method::DELETE,
            format!("/v1/regions/{US}/models/{id}"),
            None,
            expected(1, 1, 0, 1, 0),
        ),
        (
            EU,
            Method::POST,
            format!("/v1/models/{id}/deactivate"),
            None,
            expected(1, 0, 0, 1, 0),
        ),
        (
            EU,
            Method::POST,
            format!("/v1/models/{id}/retire"),
            None,
            expected(0, 0, 1, 0, 0),
        ),
    ];
    for (step, (region, method, path, body, want)) in steps.into_iter().enumerate() {
        let answer = cluster.command(region, method.clone(), &path, body).await;
        let token = token(&answer);
        for (n, reader) in REGIONS.iter().enumerate() {
            // Alternate between the two ways of passing the token.
            let read = if (step + n) % 2 == 0 {
                cluster
                    .get(reader, &format!("/v1/counts?after={}", encode(&token)), &[])
                    .await
            } else {
                cluster
                    .get(reader, "/v1/counts", &[("consistency-token", &token)])
                    .await
            };
            assert_eq!(
                read.status,
                StatusCode::OK,
                "{method} {path} read at {reader}: {}",
                read.body
            );
            assert_eq!(
                counts_of(&read.body),
                want,
                "after {method} {path}, read at {reader}"
            );
            // The catalogue waits for the same token.
            let model = cluster
                .get(
                    reader,
                    &format!("/v1/models/{id}?locale=ko&after={}", encode(&token)),
                    &[],
                )
                .await;
            assert_eq!(model.status, StatusCode::OK, "{}", model.body);
            assert!(model.body["version"].as_i64().is_some());
        }
    }
    let model = cluster
        .get(AP, &format!("/v1/models/{id}?locale=ko"), &[])
        .await;
    assert_eq!(model.body["name"], "새 이름", "{}", model.body);
    assert_eq!(model.body["lifecycle"], "retired");
    assert_eq!(model.body["regions"][US]["served"], false);
    assert!(
        model.body["regions"][US]["since"].is_string(),
        "{}",
        model.body
    );
}

/// A client of one region sees a command sent to another region arrive; after reconnecting
/// with `Last-Event-ID` it gets exactly what it missed, in order, and nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_shows_other_regions_changes_and_resumes_without_gaps() {
    let cluster = Cluster::start_with(&REGIONS, pinned(&[("acme", EU), ("globex", AP)])).await;
    let stream_url = format!("{}/v1/stream", cluster.node(US).base);
    let mut client = SseClient::connect(&stream_url, None).await;
    let snapshot = client
        .next_named(&["snapshot"], EVENT_WITHIN)
        .await
        .expect("a snapshot first");
    assert_eq!(snapshot.data["total"], 0, "{:?}", snapshot);
    let snapshot_id = snapshot.id.expect("the snapshot has an id");

    cluster
        .command(
            EU,
            Method::POST,
            "/v1/models",
            Some(json!({"id": "acme/live-1", "provider": "acme", "name": {"en": "Live"}})),
        )
        .await;
    // The change (from the catalogue) and the counts (from the exchange) travel different
    // paths, so either may come first.
    let (mut change, mut counted) = (None, None);
    while change.is_none() || counted.is_none() {
        let event = client
            .next_named(&["change", "counts"], EVENT_WITHIN)
            .await
            .unwrap_or_else(|| panic!("change {change:?}, counts with total 1 {counted:?}"));
        if event.event == "change" {
            change = Some(event);
        } else if event.data["total"] == 1 {
            counted = Some(event);
        }
    }
    let (change, counted) = (change.unwrap(), counted.unwrap());
    assert_eq!(change.data["model_id"], "acme/live-1");
    assert_eq!(change.data["type"], "model_registered");
    assert_eq!(change.data["region"], EU);
    assert_eq!(change.data["name"]["en"], "Live");
    assert!(change.id.unwrap() > snapshot_id);
    let last_seen = change.id.unwrap().max(counted.id.unwrap());
    drop(client);

    // While disconnected: two more commands in another region.
    let answer = cluster.command(AP, Method::POST, "/v1/models",
        Some(json!({"id": "acme/live-2", "provider": "globex", "name": {"en": "Live 2"}, "home_region": AP}))).await;
    let answer2 = cluster
        .command(AP, Method::POST, "/v1/models/acme/live-2/activate", None)
        .await;
    let read = cluster
        .get(US, "/v1/counts", &[("consistency-token", &token(&answer2))])
        .await;
    assert_eq!(read.body["active"], 1, "{}", read.body);
    assert!(answer["consistency_token"].is_string());
    // Wait until the node's catalogue has both events, so the feed has them too.
    let caught_up = cluster
        .get(
            US,
            &format!("/v1/models/acme/live-2?after={}", encode(&token(&answer2))),
            &[],
        )
        .await;
    assert_eq!(caught_up.body["lifecycle"], "active");

    let mut resumed = SseClient::connect(&stream_url, Some(last_seen)).await;
    let mut seen_types = Vec::new();
    let mut previous = last_seen;
    while seen_types.len() < 2 {
        let event = resumed
            .next_named(&["change", "counts", "snapshot"], EVENT_WITHIN)
            .await
            .unwrap_or_else(|| panic!("missed events after {last_seen}; got {seen_types:?}"));
        assert_ne!(event.event, "snapshot", "a resumable client got a snapshot");
        let id = event.id.expect("every change has an id");
        assert!(id > previous, "ids must increase: {id} after {previous}");
        previous = id;
        if event.event == "change" {
            assert_eq!(event.data["model_id"], "acme/live-2", "{:?}", event);
            seen_types.push(event.data["type"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(seen_types, ["model_registered", "model_activated"]);

    // An id the node cannot resume from gets a fresh snapshot with the current counts.
    let mut fresh = SseClient::connect(&stream_url, Some(12)).await;
    let first = fresh
        .next_named(&["snapshot", "counts", "change"], EVENT_WITHIN)
        .await
        .unwrap();
    assert_eq!(first.event, "snapshot");
    assert_eq!(first.data["total"], 2);
    assert_eq!(first.data["active"], 1);
}

/// `?region=` narrows a stream to one region; the stream sends freshness ticks; past the cap
/// a stream is refused with a problem document; bad parameters are refused precisely.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_filter_by_region_tick_and_are_capped() {
    let cluster = Cluster::start_with(&[EU, US], pinned(&[("acme", EU)])).await;
    let base = &cluster.node(EU).base;
    let mut us_only = SseClient::connect(&format!("{base}/v1/stream?region={US}"), None).await;
    let snapshot = us_only
        .next_named(&["snapshot"], EVENT_WITHIN)
        .await
        .unwrap();
    assert!(
        snapshot.data["regions"].get(EU).is_none(),
        "{:?}",
        snapshot.data
    );
    assert!(
        snapshot.data["regions"].get(US).is_some(),
        "{:?}",
        snapshot.data
    );
    let tick = us_only
        .next_named(&["freshness"], EVENT_WITHIN)
        .await
        .unwrap();
    assert!(
        tick.data["regions"][US]["stale"].is_boolean(),
        "{:?}",
        tick.data
    );

    // A change homed in eu-west is not about us-east until us-east serves it.
    cluster
        .command(
            EU,
            Method::POST,
            "/v1/models",
            Some(json!({"id": "acme/filtered", "provider": "acme", "name": {"en": "F"}})),
        )
        .await;
    cluster
        .command(
            US,
            Method::PUT,
            &format!("/v1/regions/{US}/models/acme/filtered"),
            None,
        )
        .await;
    let change = us_only.next_named(&["change"], EVENT_WITHIN).await.unwrap();
    assert_eq!(change.data["type"], "model_served", "{:?}", change.data);
    assert_eq!(change.data["served_region"], US);

    let mut open = Vec::new();
    for _ in 1..MAX_STREAMS {
        open.push(SseClient::connect(&format!("{base}/v1/stream"), None).await);
    }
    match SseClient::open(&format!("{base}/v1/stream"), None).await {
        Opened::Refused(status, body) => {
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(body["code"], "too-many-streams");
        }
        Opened::Stream(_) => panic!("stream {} was admitted past the cap", MAX_STREAMS + 1),
    }
    open.clear();
    drop(us_only);
    wait_until("a slot is free again", || async {
        match SseClient::open(&format!("{base}/v1/stream"), None).await {
            Opened::Stream(_) => Ok(()),
            Opened::Refused(status, _) => Err(status.to_string()),
        }
    })
    .await;

    for (path, status, code) in [
        ("/v1/stream?region=mars", 404, "unknown-region"),
        ("/v1/regions/mars/counts", 404, "unknown-region"),
        (
            "/v1/counts?after=nonsense",
            422,
            "invalid-consistency-token",
        ),
        (
            "/v1/counts?after=mars:1:1:model:acme/x",
            422,
            "invalid-consistency-token",
        ),
        ("/v1/models?limit=0", 422, "invalid-parameter"),
        ("/v1/models?limit=abc", 422, "invalid-parameter"),
        ("/v1/models?limit=501", 422, "invalid-parameter"),
        ("/v1/models?cursor=zz", 422, "invalid-parameter"),
        ("/v1/models?state=dormant", 422, "invalid-parameter"),
        ("/v1/models?status=fine", 422, "invalid-parameter"),
        ("/v1/models?region=mars", 422, "invalid-parameter"),
        (
            "/v1/models?provider=Not%20A%20Slug",
            422,
            "invalid-parameter",
        ),
        ("/v1/models?locale=not%20a%20tag", 422, "invalid-parameter"),
        ("/v1/models/acme/none-such", 404, "unknown-model"),
        ("/v1/models/NOT%20AN%20ID", 404, "unknown-model"),
    ] {
        let answer = cluster.get(EU, path, &[]).await;
        assert_eq!(answer.status.as_u16(), status, "{path}: {}", answer.body);
        assert_eq!(answer.body["code"], code, "{path}: {}", answer.body);
        assert_eq!(answer.body["type"], format!("/problems/{code}"), "{path}");
        assert!(
            answer.body["detail"]
                .as_str()
                .is_some_and(|d| !d.is_empty()),
            "{path}"
        );
    }
    // A token for an event that never happens: the bounded wait ends in 504, not a hang.
    let far = "eu-west:999999:1:model:acme/filtered";
    let answer = cluster
        .get(EU, "/v1/counts", &[("consistency-token", far)])
        .await;
    assert_eq!(
        answer.status,
        StatusCode::GATEWAY_TIMEOUT,
        "{}",
        answer.body
    );
    assert_eq!(answer.body["code"], "consistency-timeout");
}

/// Locale changes names, never counts; pagination over 1,000 models visits each exactly once
/// while more are being added; ETags change exactly when the counts do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locales_pagination_and_etags() {
    let cluster = Cluster::start(&[EU]).await;
    let register = |n: usize, ko: bool| {
        let mut name = json!({"en": format!("Model {n:04}")});
        if ko {
            name["ko"] = json!(format!("모델 {n:04}"));
        }
        json!({"id": format!("acme/m-{n:04}"), "provider": if n.is_multiple_of(2) { "acme" } else { "globex" }, "name": name})
    };
    for chunk in (0..1000).collect::<Vec<_>>().chunks(25) {
        let answers = futures::future::join_all(chunk.iter().map(|n| {
            cluster.command(
                EU,
                Method::POST,
                "/v1/models",
                Some(register(*n, n % 3 != 0)),
            )
        }))
        .await;
        assert!(answers.iter().all(|a| a["consistency_token"].is_string()));
    }
    // A token covers its own event, not every earlier write of other models (they live in
    // other partitions): wait for the whole batch instead.
    let en = wait_until("all 1,000 models counted", || async {
        let read = cluster
            .get(EU, "/v1/counts", &[("accept-language", "en")])
            .await;
        if read.body["total"] == 1000 {
            Ok(read)
        } else {
            Err(format!("total {}", read.body["total"]))
        }
    })
    .await;
    let ko = cluster
        .get(EU, "/v1/counts", &[("accept-language", "ko-KR")])
        .await;
    assert_eq!(counts_of(&en.body)["total"], 1000);
    assert_eq!(counts_of(&en.body), counts_of(&ko.body));

    let page_en = cluster
        .get(EU, "/v1/models?limit=3&provider=acme", &[])
        .await;
    let page_ko = cluster
        .get(
            EU,
            "/v1/models?limit=3&provider=acme",
            &[("accept-language", "ko;q=0.9, en;q=0.1")],
        )
        .await;
    assert_eq!(page_ko.body["locale"], "ko");
    let names = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        names(&page_en.body),
        ["Model 0000", "Model 0002", "Model 0004"]
    );
    // 0000 has no Korean name: it falls back to English; the others are Korean.
    assert_eq!(
        names(&page_ko.body),
        ["Model 0000", "모델 0002", "모델 0004"]
    );

    // ETag: unchanged counts answer 304, a change gives a new tag.
    let etag = en.headers["etag"].to_str().unwrap().to_owned();
    let same = cluster
        .get(EU, "/v1/counts", &[("if-none-match", &etag)])
        .await;
    assert_eq!(same.status, StatusCode::NOT_MODIFIED);
    // Weak: the freshness fields move under one version of the counts.
    assert!(etag.starts_with("W/\""), "{etag}");

    // One model: its name in the best language it has among those the client accepts, said
    // in Content-Language; a strong ETag that answers 304 until it changes.
    let accept = [("accept-language", "fr, ko;q=0.8, en;q=0.5")];
    let model = cluster.get(EU, "/v1/models/acme/m-0002", &accept).await;
    assert_eq!(model.status, StatusCode::OK, "{}", model.body);
    assert_eq!(model.body["name"], "모델 0002", "{}", model.body);
    assert_eq!(model.headers["content-language"], "ko");
    assert!(
        model.headers["vary"]
            .to_str()
            .unwrap()
            .contains("accept-language")
    );
    let english_only = cluster.get(EU, "/v1/models/acme/m-0000", &accept).await;
    assert_eq!(english_only.body["name"], "Model 0000");
    assert_eq!(english_only.headers["content-language"], "en");
    let model_tag = model.headers["etag"].to_str().unwrap().to_owned();
    assert!(!model_tag.starts_with("W/"), "{model_tag}");
    let unchanged = cluster
        .get(
            EU,
            "/v1/models/acme/m-0002",
            &[accept[0], ("if-none-match", model_tag.as_str())],
        )
        .await;
    assert_eq!(unchanged.status, StatusCode::NOT_MODIFIED);
    let in_english = cluster
        .get(
            EU,
            "/v1/models/acme/m-0002",
            &[("if-none-match", model_tag.as_str())],
        )
        .await;
    assert_eq!(
        in_english.status,
        StatusCode::OK,
        "another language, other bytes"
    );

    // Compressed when the client accepts it.
    let page = cluster
        .get(EU, "/v1/models?limit=200", &[("accept-encoding", "gzip")])
        .await;
    assert_eq!(page.headers["content-encoding"], "gzip");

    // Page through everything while 100 more models are registered concurrently.
    let writer = async {
        for n in 1000..1100 {
            cluster
                .command(EU, Method::POST, "/v1/models", Some(register(n, true)))
                .await;
        }
    };
    let reader = async {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/v1/models?limit=37&cursor={c}"),
                None => "/v1/models?limit=37".to_owned(),
            };
            let page = cluster.get(EU, &path, &[]).await;
            assert_eq!(page.status, StatusCode::OK, "{}", page.body);
            for item in page.body["items"].as_array().unwrap() {
                seen.push(item["id"].as_str().unwrap().to_owned());
            }
            match page.body["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        seen
    };
    let ((), seen) = tokio::join!(writer, reader);
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "a model was listed twice");
    for n in 0..1000 {
        assert!(
            unique.contains(&format!("acme/m-{n:04}")),
            "model {n} was skipped"
        );
    }
    let changed = cluster
        .get(EU, "/v1/counts", &[("if-none-match", &etag)])
        .await;
    assert_eq!(changed.status, StatusCode::OK);
    assert_ne!(changed.headers["etag"].to_str().unwrap(), etag);
    assert!(counts_of(&changed.body)["total"].as_i64().unwrap() > 1000);
}
