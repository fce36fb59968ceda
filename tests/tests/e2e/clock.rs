//! A writer whose clock steps back 10 minutes (the region nodes restart under libfaketime, 10
//! minutes behind): history still replays each region's events in log order, so
//! `GET /v1/counts?at=` now and the last point of a series equal the live counts, event times
//! never go backwards along a region's positions, and `region-node audit` passes on every node.
//!
//! The clock steps at a restart, not mid-run: libfaketime takes a changed setting from a file it
//! re-reads without a lock against the other threads' clock readings, which now and then handed
//! a thread the clock without its offset. A process started behind is behind on every reading.
//! (Before, the nodes' Kafka clients failed whenever the clock was off: see
//! `support/c11_cond_shim.c`; a CI failure of 2026-12-06.)
//!
//! Needs Debian's `faketime` package (scripts/install-deps.sh installs it).

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support;
use crate::support::cli::region_node;
use crate::support::cluster::Cluster;
use crate::support::counts::{Counts, with_every_status};
use crate::support::faketime::clock_offset_env;
use crate::support::ownership::id_owned_by;
use crate::support::{EU, US, wait_until};

/// Models each region registers before the step, and after it.
const BEFORE: usize = 8;
const AFTER: usize = 4;

/// The test's own bookkeeping of the counts (independent of the node).
#[derive(Debug, Default)]
struct Expected {
    /// id → (provider, lifecycle, status, served by its home region).
    models: BTreeMap<String, (String, &'static str, &'static str, bool)>,
}

impl Expected {
    fn counts(&self, home: &BTreeMap<String, &'static str>) -> Counts {
        let live = || self.models.values().filter(|m| m.1 != "retired");
        let mut by_status = BTreeMap::new();
        let mut by_provider: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        for (provider, lifecycle, status, _) in live() {
            *by_status.entry((*status).to_owned()).or_insert(0) += 1;
            let entry = by_provider.entry(provider.clone()).or_default();
            entry.0 += 1;
            entry.1 += i64::from(*lifecycle == "active");
        }
        let available = [EU, US]
            .into_iter()
            .map(|region| {
                let served = self
                    .models
                    .iter()
                    .filter(|(id, m)| m.3 && home[id.as_str()] == region)
                    .count();
                (region.to_owned(), served as i64)
            })
            .collect();
        let count = |lifecycle: &str| self.models.values().filter(|m| m.1 == lifecycle).count();
        Counts {
            total: live().count() as i64,
            active: count("active") as i64,
            inactive: count("inactive") as i64,
            retired: count("retired") as i64,
            by_status: with_every_status(by_status),
            by_provider,
            available,
        }
    }
}

struct Script<'a> {
    cluster: &'a Cluster,
    expected: Expected,
    home: BTreeMap<String, &'static str>,
}

impl Script<'_> {
    async fn register(&mut self, region: &'static str, id: &str, provider: &str) {
        let body = json!({"id": id, "provider": provider, "name": {"en": id}});
        self.cluster
            .command(region, Method::POST, "/v1/models", Some(body))
            .await;
        self.expected.models.insert(
            id.to_owned(),
            (provider.to_owned(), "inactive", "operational", false),
        );
        self.home.insert(id.to_owned(), region);
    }

    async fn lifecycle(&mut self, id: &str, action: &str, lifecycle: &'static str) {
        let region = self.home[id];
        self.cluster
            .command(
                region,
                Method::POST,
                &format!("/v1/models/{id}/{action}"),
                None,
            )
            .await;
        self.expected.models.get_mut(id).unwrap().1 = lifecycle;
    }

    async fn status(&mut self, id: &str, status: &'static str) {
        let region = self.home[id];
        let body = json!({ "status": status });
        self.cluster
            .command(
                region,
                Method::PUT,
                &format!("/v1/models/{id}/status"),
                Some(body),
            )
            .await;
        self.expected.models.get_mut(id).unwrap().2 = status;
    }

    async fn serve(&mut self, id: &str, served: bool) {
        let region = self.home[id];
        let method = if served { Method::PUT } else { Method::DELETE };
        self.cluster
            .command(
                region,
                method,
                &format!("/v1/regions/{region}/models/{id}"),
                None,
            )
            .await;
        self.expected.models.get_mut(id).unwrap().3 = served;
    }
}

fn instant(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

async fn get(cluster: &Cluster, region: &str, path: &str, query: &[(&str, String)]) -> Value {
    let url = format!("{}{path}", cluster.node(region).base);
    let response = reqwest::Client::new()
        .get(url)
        .query(query)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{path} {query:?}: {body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_step_back_leaves_history_equal_to_the_live_counts() {
    support::init_tracing();
    let mut cluster = Cluster::start(&[EU, US]).await;
    let mut s = Script {
        cluster: &cluster,
        expected: Expected::default(),
        home: BTreeMap::new(),
    };

    // Before the step: each region registers, activates and serves its own models.
    for region in [EU, US] {
        for i in 0..BEFORE {
            let id = id_owned_by(&[EU, US], region, &format!("clock/{region}-{i}"));
            s.register(region, &id, &format!("p{}", i % 2)).await;
            if i % 2 == 0 {
                s.lifecycle(&id, "activate", "active").await;
            }
            if i % 3 == 0 {
                s.serve(&id, true).await;
            }
        }
    }

    // Where each region's log stands, then both nodes restart 10 minutes behind.
    let mut before_step = BTreeMap::new();
    for region in [EU, US] {
        let pool = cluster.pool(region).await;
        let last: (i64, DateTime<Utc>) = sqlx::query_as(
            "SELECT position, occurred_at FROM events ORDER BY position DESC LIMIT 1",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        pool.close().await;
        before_step.insert(region, last);
    }
    let Script { expected, home, .. } = s;
    for region in [EU, US] {
        cluster.stop(region).await;
        cluster.set_env(region, clock_offset_env("-10m"));
        cluster.restart(region).await;
    }
    let mut s = Script {
        cluster: &cluster,
        expected,
        home,
    };

    // After the step: changes to models registered before it, and new models.
    for region in [EU, US] {
        for i in 0..BEFORE {
            let id = id_owned_by(&[EU, US], region, &format!("clock/{region}-{i}"));
            if i % 2 == 0 {
                s.lifecycle(&id, "deactivate", "inactive").await;
            } else {
                s.lifecycle(&id, "activate", "active").await;
            }
            if i == 2 {
                s.lifecycle(&id, "retire", "retired").await;
            }
            if i == 3 {
                s.status(&id, "degraded").await;
                s.serve(&id, false).await;
            }
        }
        for j in 0..AFTER {
            let id = id_owned_by(&[EU, US], region, &format!("clock/{region}-after-{j}"));
            s.register(region, &id, "p-after").await;
            if j % 2 == 0 {
                s.lifecycle(&id, "activate", "active").await;
            }
            if j == 0 {
                s.serve(&id, true).await;
            }
        }
    }
    let expected = s.expected.counts(&s.home);

    // Event times never go backwards along a region's positions, although the clock did.
    let mut all_events = 0_i64;
    for region in [EU, US] {
        let pool = cluster.pool(region).await;
        let times: Vec<(i64, DateTime<Utc>)> =
            sqlx::query_as("SELECT position, occurred_at FROM events ORDER BY position")
                .fetch_all(&pool)
                .await
                .unwrap();
        pool.close().await;
        // The clock really stepped: the writer's clock stays behind the last time before the
        // step for the rest of the run, so later events are stamped with their predecessor's
        // time, every one of them.
        let (last_position, _) = before_step[region];
        let after: Vec<&[(i64, DateTime<Utc>)]> = times
            .windows(2)
            .filter(|pair| pair[1].0 > last_position)
            .collect();
        let clamped = after.iter().filter(|pair| pair[1].1 == pair[0].1).count();
        assert!(
            !after.is_empty() && clamped == after.len(),
            "{region}: {clamped} of {} events after the step were stamped with their \
             predecessor's time: the clock did not step back",
            after.len()
        );
        for pair in times.windows(2) {
            assert!(
                pair[1].1 >= pair[0].1,
                "{region}: position {} occurred at {}, before position {} ({})",
                pair[1].0,
                pair[1].1,
                pair[0].0,
                pair[0].1
            );
        }
        all_events += times.len() as i64;
    }

    for region in [EU, US] {
        // The live counts: what the test wrote.
        wait_until(&format!("{region}'s live counts"), || async {
            let live = Counts::from_body(&cluster.counts(region).await?)?;
            (live == expected)
                .then_some(())
                .ok_or(format!("live {live:?}\nexpected {expected:?}"))
        })
        .await;
        // The node's event log holds every event of both regions.
        let far_future = "2999-01-01T00:00:00Z".to_owned();
        wait_until(&format!("{region}'s event log"), || async {
            let body = get(
                &cluster,
                region,
                "/v1/counts",
                &[("at", far_future.clone())],
            )
            .await;
            let replayed = body["events_replayed"].as_i64().unwrap_or(-1);
            (replayed == all_events)
                .then_some(())
                .ok_or(format!("{replayed} of {all_events} events logged"))
        })
        .await;

        // ?at=now (the test's clock, which did not step) equals the live counts.
        let now = Utc::now();
        let at = get(&cluster, region, "/v1/counts", &[("at", instant(now))]).await;
        let live = Counts::from_body(&cluster.counts(region).await.unwrap()).unwrap();
        assert_eq!(live, expected);
        assert_eq!(
            Counts::from_body(&at).unwrap(),
            live,
            "{region}: ?at={} differs from the live counts",
            instant(now)
        );
        assert_eq!(at["events_replayed"], json!(all_events), "{region}");

        // So does the last point of a series ending now.
        let series = get(
            &cluster,
            region,
            "/v1/counts/series",
            &[
                ("from", instant(now - TimeDelta::minutes(30))),
                ("to", instant(now)),
                ("step", "1m".to_owned()),
            ],
        )
        .await;
        let points = series["points"].as_array().unwrap();
        let last = points.last().unwrap();
        assert_eq!(last["at"], json!(instant(now)), "{region}");
        assert_eq!(
            Counts::from_body(last).unwrap(),
            live,
            "{region}: the series' last point differs from the live counts"
        );
    }

    // The audit compares the catalogue, the fold and history: all agree.
    for region in [EU, US] {
        let ran = region_node(cluster.node(region).config_path(), &["audit", "--quiet"]).await;
        eprintln!("audit of {region}:\n{}", ran.stdout);
        assert!(
            ran.success,
            "audit of {region} failed:\n{}\n{}",
            ran.stdout, ran.stderr
        );
        assert!(
            ran.stdout
                .contains("the catalogue, the fold and history agree"),
            "{}",
            ran.stdout
        );
    }
}
