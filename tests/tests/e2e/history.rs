//! History by replay on two region nodes (separate processes, real PostgreSQL and broker): a
//! scripted timeline of registrations, activations, status changes, serves, retirements and
//! withdrawals. `GET /v1/counts?at=` equals the expected counts at every recorded instant on
//! both nodes, and `region-node replay --until` from the Kafka topics agrees; every series point
//! equals `?at=` at its instant; a model's history lists every event, in order, with who and
//! which command; bad parameters are refused with problem documents.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support;
use crate::support::cli::region_node;
use crate::support::cluster::{ADMIN_TOKEN, Cluster, ClusterOptions};
use crate::support::{EU, US, wait_until};

const A: &str = "openai/hist-a";
const B: &str = "meta/hist-b";
const C: &str = "openai/hist-c";

/// The test's own bookkeeping of what the counts must be (independent of the projector).
#[derive(Debug, Clone, Default)]
struct Expected {
    models: BTreeMap<&'static str, ModelFacts>,
}

#[derive(Debug, Clone)]
struct ModelFacts {
    provider: &'static str,
    home: &'static str,
    lifecycle: &'static str,
    status: &'static str,
    served: BTreeSet<&'static str>,
}

impl Expected {
    fn register(&mut self, id: &'static str, provider: &'static str, home: &'static str) {
        let facts = ModelFacts {
            provider,
            home,
            lifecycle: "inactive",
            status: "operational",
            served: BTreeSet::new(),
        };
        self.models.insert(id, facts);
    }

    fn model(&mut self, id: &str) -> &mut ModelFacts {
        self.models.get_mut(id).unwrap()
    }

    /// The counts as `?at=` reports them.
    fn counts(&self) -> Value {
        self.counts_of(None)
    }

    /// With `only`: region `only`'s own view (the models it is home to, what it serves).
    fn counts_of(&self, only: Option<&str>) -> Value {
        let models = || {
            self.models
                .values()
                .filter(move |m| only.is_none_or(|r| m.home == r))
        };
        let live = || models().filter(|m| m.lifecycle != "retired");
        let count = |lifecycle: &str| models().filter(|m| m.lifecycle == lifecycle).count();
        let mut by_status = BTreeMap::from([("operational", 0), ("degraded", 0), ("outage", 0)]);
        let mut by_provider: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        for model in live() {
            *by_status.get_mut(model.status).unwrap() += 1;
            let entry = by_provider.entry(model.provider).or_default();
            entry.0 += 1;
            entry.1 += usize::from(model.lifecycle == "active");
        }
        let regions: BTreeMap<&str, Value> = [EU, US]
            .into_iter()
            .filter(|r| only.is_none_or(|only| only == *r))
            .map(|r| {
                let available = self
                    .models
                    .values()
                    .filter(|m| m.served.contains(r))
                    .count();
                (r, json!({ "available": available }))
            })
            .collect();
        json!({
            "total": live().count(),
            "active": count("active"),
            "inactive": count("inactive"),
            "retired": count("retired"),
            "by_status": by_status,
            "by_provider": by_provider.into_iter()
                .map(|(p, (total, active))| (p, json!({"total": total, "active": active})))
                .collect::<BTreeMap<_, _>>(),
            "regions": regions,
        })
    }
}

/// The fields of a counts answer that the expectation covers.
fn counts_only(answer: &Value) -> Value {
    let keys = [
        "total",
        "active",
        "inactive",
        "retired",
        "by_status",
        "by_provider",
        "regions",
    ];
    keys.into_iter()
        .map(|k| (k.to_owned(), answer[k].clone()))
        .collect()
}

fn instant(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

struct Script<'a> {
    cluster: &'a Cluster,
    client: reqwest::Client,
    expected: Expected,
    /// Recorded instants and the counts expected at each: global, eu-west's and us-east's view.
    timeline: Vec<(DateTime<Utc>, Value)>,
    regional: Vec<[Value; 2]>,
    /// (idempotency key, correlation id) sent for each command, by model.
    sent: BTreeMap<&'static str, Vec<(String, String)>>,
}

impl Script<'_> {
    /// A write that must succeed, with its own idempotency key and correlation id; retried
    /// while the node does not know the model yet (its catalogue lags the home region).
    async fn write(
        &mut self,
        region: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
        model: &'static str,
    ) {
        let key = format!("hist-{}", uuid::Uuid::new_v4().simple());
        let correlation = uuid::Uuid::new_v4().to_string();
        let url = format!("{}{path}", self.cluster.node(region).base);
        let url = url.as_str();
        let (client, key_ref, corr_ref, body_ref) = (&self.client, &key, &correlation, &body);
        let method_ref = &method;
        wait_until(&format!("{region}: {method} {path}"), || async move {
            let mut request = client
                .request(method_ref.clone(), url)
                .bearer_auth(ADMIN_TOKEN)
                .header("idempotency-key", key_ref)
                .header("correlation-id", corr_ref);
            if let Some(body) = body_ref {
                request = request.json(body);
            }
            let response = request.send().await.map_err(|e| e.to_string())?;
            let status = response.status();
            let answer: Value = response.json().await.unwrap_or(Value::Null);
            if status.is_success() {
                Ok(())
            } else if status == StatusCode::NOT_FOUND && answer["code"] == "unknown-model"
                || status == StatusCode::SERVICE_UNAVAILABLE
            {
                Err(format!("{status} {answer}"))
            } else {
                panic!("{region}: {method_ref} {path} refused: {status} {answer}")
            }
        })
        .await;
        self.sent.entry(model).or_default().push((key, correlation));
    }

    /// Records "now" as an instant whose counts are the current expectation.
    async fn record(&mut self) {
        tokio::time::sleep(Duration::from_millis(5)).await;
        self.timeline.push((Utc::now(), self.expected.counts()));
        self.regional.push([
            self.expected.counts_of(Some(EU)),
            self.expected.counts_of(Some(US)),
        ]);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    async fn get(&self, region: &str, path: &str, query: &[(&str, &str)]) -> (StatusCode, Value) {
        let url = format!("{}{path}", self.cluster.node(region).base);
        let response = self.client.get(url).query(query).send().await.unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body: Value = response.json().await.unwrap();
        if !status.is_success() {
            assert_eq!(content_type, "application/problem+json", "{path}: {body}");
        }
        (status, body)
    }

    async fn at(&self, region: &str, at: &str) -> Value {
        let (status, body) = self.get(region, "/v1/counts", &[("at", at)]).await;
        assert_eq!(status, StatusCode::OK, "?at={at}: {body}");
        body
    }
}

/// A bad request: path, query, expected status and problem code.
type BadCase<'a> = (&'a str, Vec<(&'a str, &'a str)>, StatusCode, &'a str);

fn serve_path(region: &str, model: &str) -> String {
    format!("/v1/regions/{region}/models/{model}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_by_replay_matches_the_timeline_on_every_node() {
    support::init_tracing();
    let options = ClusterOptions {
        extra_toml: format!("[ownership]\nproviders = {{ openai = \"{EU}\", meta = \"{US}\" }}\n"),
        ..ClusterOptions::default()
    };
    let cluster = Cluster::start_with(&[EU, US], options).await;
    let mut s = Script {
        cluster: &cluster,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        expected: Expected::default(),
        timeline: Vec::new(),
        regional: Vec::new(),
        sent: BTreeMap::new(),
    };
    let register =
        |id: &str, provider: &str| json!({"id": id, "provider": provider, "name": {"en": id}});

    s.record().await; // t0: nothing yet
    s.write(
        EU,
        Method::POST,
        "/v1/models",
        Some(register(A, "openai")),
        A,
    )
    .await;
    s.expected.register(A, "openai", EU);
    s.record().await;
    s.write(US, Method::POST, "/v1/models", Some(register(B, "meta")), B)
        .await;
    s.expected.register(B, "meta", US);
    s.record().await;
    s.write(
        EU,
        Method::POST,
        &format!("/v1/models/{A}/activate"),
        None,
        A,
    )
    .await;
    s.expected.model(A).lifecycle = "active";
    s.record().await;
    s.write(EU, Method::PUT, &serve_path(EU, A), None, A).await;
    s.expected.model(A).served.insert(EU);
    s.record().await;
    s.write(US, Method::PUT, &serve_path(US, A), None, A).await;
    s.expected.model(A).served.insert(US);
    s.record().await;
    s.write(
        EU,
        Method::POST,
        "/v1/models",
        Some(register(C, "openai")),
        C,
    )
    .await;
    s.expected.register(C, "openai", EU);
    s.write(
        EU,
        Method::PUT,
        &format!("/v1/models/{A}/status"),
        Some(json!({"status": "degraded"})),
        A,
    )
    .await;
    s.expected.model(A).status = "degraded";
    s.record().await;
    s.write(
        US,
        Method::POST,
        &format!("/v1/models/{B}/activate"),
        None,
        B,
    )
    .await;
    s.expected.model(B).lifecycle = "active";
    s.write(US, Method::PUT, &serve_path(US, B), None, B).await;
    s.expected.model(B).served.insert(US);
    s.record().await;
    s.write(
        EU,
        Method::POST,
        &format!("/v1/models/{A}/deactivate"),
        None,
        A,
    )
    .await;
    s.expected.model(A).lifecycle = "inactive";
    s.record().await;
    s.write(EU, Method::POST, &format!("/v1/models/{A}/retire"), None, A)
        .await;
    s.expected.model(A).lifecycle = "retired";
    // Each serving region withdraws a retired model by itself; the instant after both did:
    let history_path = format!("/v1/models/{A}/history");
    wait_until("both regions withdrew the retired model", || {
        let s = &s;
        let path = history_path.as_str();
        async move {
            let (status, body) = s.get(EU, path, &[]).await;
            let withdrawn = body["events"].as_array().map_or(0, |events| {
                events
                    .iter()
                    .filter(|e| e["type"] == "model_withdrawn")
                    .count()
            });
            if status == StatusCode::OK && withdrawn == 2 {
                Ok(())
            } else {
                Err(format!("{status}: {withdrawn} withdrawals logged"))
            }
        }
    })
    .await;
    s.expected.model(A).served.clear();
    s.record().await;
    s.write(US, Method::DELETE, &serve_path(US, B), None, B)
        .await;
    s.expected.model(B).served.remove(US);
    s.record().await;
    s.write(
        EU,
        Method::PUT,
        &format!("/v1/models/{C}/status"),
        Some(json!({"status": "outage"})),
        C,
    )
    .await;
    s.expected.model(C).status = "outage";
    s.write(
        EU,
        Method::POST,
        &format!("/v1/models/{C}/activate"),
        None,
        C,
    )
    .await;
    s.expected.model(C).lifecycle = "active";
    s.record().await;

    // Every node's event log holds every event of both regions.
    let mut all_events = 0_i64;
    for region in [EU, US] {
        let pool = cluster.pool(region).await;
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        all_events += n;
    }
    let far_future = "2999-01-01T00:00:00Z";
    for region in [EU, US] {
        let s = &s;
        wait_until(
            &format!("{region}'s event log holds all {all_events} events"),
            || async move {
                let body = s.at(region, far_future).await;
                let replayed = body["events_replayed"].as_i64().unwrap();
                (replayed == all_events)
                    .then_some(())
                    .ok_or(format!("{replayed} logged"))
            },
        )
        .await;
    }

    // ?at= at every recorded instant: the expected counts, on both nodes, and the same as a
    // replay of the Kafka topics cut at that instant.
    let mut previous_replayed = -1;
    for (i, (at, expected)) in s.timeline.iter().enumerate() {
        let at = instant(*at);
        let eu = s.at(EU, &at).await;
        let us = s.at(US, &at).await;
        assert_eq!(eu["at"], json!(at));
        assert_eq!(counts_only(&eu), *expected, "step {i}: {EU} ?at={at}");
        assert_eq!(eu, us, "step {i}: both nodes answer the same history");
        let ran = region_node(
            cluster.node(EU).config_path(),
            &["replay", "--quiet", "--until", &at],
        )
        .await;
        assert!(ran.success, "replay --until {at} failed: {}", ran.stderr);
        let replayed: Value = serde_json::from_str(&ran.stdout).unwrap();
        assert_eq!(
            counts_only(&replayed),
            *expected,
            "step {i}: replay --until {at}"
        );
        assert_eq!(
            replayed["events_replayed"], eu["events_replayed"],
            "step {i}: events folded"
        );
        // Each region's own view as of the instant (the replay of its events only).
        for (region, expected) in [EU, US].into_iter().zip(&s.regional[i]) {
            let path = format!("/v1/regions/{region}/counts");
            let (status, view) = s.get(US, &path, &[("at", &at)]).await;
            assert_eq!(status, StatusCode::OK, "{path}?at={at}: {view}");
            assert_eq!(counts_only(&view), *expected, "step {i}: {region}'s view");
        }
        let n = eu["events_replayed"].as_i64().unwrap();
        assert!(
            n > previous_replayed || i == 0,
            "step {i}: every step adds events"
        );
        previous_replayed = n;
    }
    assert_eq!(s.timeline[0].1["total"], 0);

    // A full replay (no cut) equals the live counts once the projection has caught up.
    let ran = region_node(cluster.node(US).config_path(), &["replay", "--quiet"]).await;
    assert!(ran.success, "replay failed: {}", ran.stderr);
    let full: Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(full["events_replayed"].as_i64(), Some(all_events));
    assert_eq!(counts_only(&full), s.timeline.last().unwrap().1);

    // Series: every point equals ?at= at its instant; 1 s steps over the whole timeline.
    let (from, to) = (
        instant(s.timeline[0].0),
        instant(s.timeline.last().unwrap().0),
    );
    let (status, series) = s
        .get(
            US,
            "/v1/counts/series",
            &[("from", &from), ("to", &to), ("step", "1s")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{series}");
    assert_eq!(series["step_seconds"], 1);
    let points = series["points"].as_array().unwrap();
    assert!(!points.is_empty());
    assert_eq!(points[0]["at"], json!(from));
    assert_eq!(counts_only(&points[0]), s.timeline[0].1);
    for point in points {
        let at = s.at(US, point["at"].as_str().unwrap()).await;
        assert_eq!(*point, at, "series point at {}", point["at"]);
    }
    // A series whose points are exactly the recorded instants 1 and 2 (1 ms step apart is
    // impossible: whole seconds), so check a point at each recorded instant instead.
    for (at, expected) in &s.timeline {
        let (from, to) = (instant(*at), instant(*at + chrono::TimeDelta::seconds(10)));
        let (status, series) = s
            .get(
                EU,
                "/v1/counts/series",
                &[("from", &from), ("to", &to), ("step", "5s")],
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{series}");
        assert_eq!(series["points"].as_array().unwrap().len(), 3);
        assert_eq!(
            counts_only(&series["points"][0]),
            *expected,
            "series from {from}"
        );
    }

    // A model's history: every event from both regions, in order, with who and which command.
    let (status, eu_history) = s.get(EU, &history_path, &[]).await;
    assert_eq!(status, StatusCode::OK, "{eu_history}");
    let (_, us_history) = s
        .get(
            US,
            &format!("/v1/models/{}/history", A.replace('/', "%2F")),
            &[],
        )
        .await;
    assert_eq!(eu_history, us_history, "both nodes hold the same history");
    let events = eu_history["events"].as_array().unwrap();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "model_registered",
            "model_activated",
            "model_served",
            "model_served",
            "model_status_changed",
            "model_deactivated",
            "model_retired",
            "model_withdrawn",
            "model_withdrawn",
        ]
    );
    let times: Vec<DateTime<Utc>> = events
        .iter()
        .map(|e| e["occurred_at"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "ordered by time: {times:?}"
    );
    let sent = &s.sent[A];
    assert_eq!(sent.len(), 7);
    for (event, (key, correlation)) in events.iter().zip(sent) {
        assert_eq!(event["idempotency_key"], json!(key), "{event}");
        assert_eq!(event["correlation_id"], json!(correlation), "{event}");
        assert_eq!(event["actor"], json!("cluster-admin"), "{event}");
        assert_eq!(event["schema_version"], 1);
        assert!(event["event_id"].is_string() && event["position"].is_u64());
    }
    assert_eq!(events[0]["payload"]["provider"], "openai");
    assert_eq!(events[0]["stream"], json!(format!("model:{A}")));
    assert_eq!(events[3]["stream"], json!(format!("availability:{US}:{A}")));
    assert_eq!(
        events[3]["region"], US,
        "availability in us-east is us-east's event"
    );
    for withdrawal in &events[7..] {
        assert_eq!(withdrawal["actor"], "system:retirement");
        assert_eq!(withdrawal["payload"]["reason"], "model_retired");
        assert_eq!(
            withdrawal["idempotency_key"],
            json!(format!("retirement-withdrawal:{A}"))
        );
    }
    let regions: BTreeSet<&str> = events[7..]
        .iter()
        .map(|e| e["region"].as_str().unwrap())
        .collect();
    assert_eq!(regions, BTreeSet::from([EU, US]));

    // Bad input: precise problem documents, 4xx.
    let now = instant(Utc::now());
    let before = instant(Utc::now() - chrono::TimeDelta::hours(1));
    let year_ago = instant(Utc::now() - chrono::TimeDelta::days(365));
    let cases: Vec<BadCase> = vec![
        (
            "/v1/counts",
            vec![("at", "yesterday")],
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-instant",
        ),
        (
            "/v1/counts",
            vec![("at", "")],
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-instant",
        ),
        (
            "/v1/counts",
            vec![("at", "2026-02-30T00:00:00Z")],
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-instant",
        ),
        (
            "/v1/counts/series",
            vec![("from", &now), ("to", &before), ("step", "1m")],
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-series",
        ),
        (
            "/v1/counts/series",
            vec![("from", &now), ("to", &now), ("step", "1m")],
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-series",
        ),
        (
            "/v1/counts/series",
            vec![("from", &before), ("to", &now), ("step", "0")],
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-series",
        ),
        (
            "/v1/counts/series",
            vec![("from", &before), ("to", &now), ("step", "-5m")],
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-series",
        ),
        (
            "/v1/counts/series",
            vec![("from", &before), ("to", &now), ("step", "1w")],
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-series",
        ),
        (
            "/v1/counts/series",
            vec![("from", &year_ago), ("to", &now), ("step", "1h")],
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-series",
        ),
        (
            "/v1/counts/series",
            vec![("from", &before), ("step", "1h")],
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-series",
        ),
        (
            "/v1/counts/series",
            vec![("from", "soon"), ("to", &now), ("step", "1h")],
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-series",
        ),
        (
            "/v1/models/openai/never-registered/history",
            vec![],
            StatusCode::NOT_FOUND,
            "unknown-model",
        ),
        (
            "/v1/models/Not A Model/history",
            vec![],
            StatusCode::NOT_FOUND,
            "unknown-model",
        ),
    ];
    for (path, query, status, code) in cases {
        let (got, body) = s.get(EU, path, &query).await;
        assert_eq!(
            (got, body["code"].as_str()),
            (status, Some(code)),
            "{path} {query:?}: {body}"
        );
        assert_eq!(body["status"], status.as_u16());
        assert_eq!(body["type"], json!(format!("/problems/{code}")));
        assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()));
    }
    let (_, too_many) = s
        .get(
            EU,
            "/v1/counts/series",
            &[("from", &year_ago), ("to", &now), ("step", "1h")],
        )
        .await;
    assert!(
        too_many["detail"]
            .as_str()
            .unwrap()
            .contains("at most 2000"),
        "{too_many}"
    );
}
