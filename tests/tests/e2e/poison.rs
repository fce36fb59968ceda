//! Foreign records on a region's events topic, against separate region-node processes on the
//! real broker and PostgreSQL: a record of an unknown schema version makes the node unready
//! within 2 s, naming the topic, partition and offset, and counts stay as they were (policy
//! `fail`, the default); with `dead-letter` it is copied to the dead-letter topic with where it
//! came from and why, and counting goes on; a record without the position header at the end of
//! a partition does not block the outbox relay's reconcile.

use std::collections::HashMap;
use std::time::Duration;

use domain::partition_for;
use outbox_relay::POSITION_HEADER;
use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::support;
use crate::support::cluster::{Cluster, ClusterOptions};
use crate::support::counts::Counts;
use crate::support::kafka::{brokers, read_all};
use crate::support::ownership::id_owned_by;
use crate::support::{EU, US, wait_until};

const PARTITIONS: i32 = 3;

/// An event envelope as a newer build would write it.
fn newer_event(id: &str) -> Vec<u8> {
    json!({
        "event_id": uuid::Uuid::new_v4(),
        "schema_version": 99,
        "stream": format!("model/{id}"),
        "sequence": 1,
        "position": 1,
        "model_id": id,
        "origin_region": EU,
        "occurred_at": "2026-11-30T00:00:00Z",
        "correlation_id": uuid::Uuid::new_v4(),
        "event": { "type": "model_teleported", "to": "mars" },
    })
    .to_string()
    .into_bytes()
}

/// Produces one record to an explicit partition, as another producer would; answers its
/// offset.
async fn produce_foreign(
    topic: &str,
    partition: i32,
    key: &str,
    payload: &[u8],
    position: Option<&str>,
) -> i64 {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("acks", "all")
        .create()
        .unwrap();
    let mut headers = OwnedHeaders::new().insert(Header {
        key: "content-type",
        value: Some("application/json"),
    });
    if let Some(position) = position {
        headers = headers.insert(Header {
            key: POSITION_HEADER,
            value: Some(position),
        });
    }
    let record = FutureRecord::to(topic)
        .partition(partition)
        .key(key)
        .payload(payload)
        .headers(headers);
    let delivery = producer
        .send(record, Duration::from_secs(10))
        .await
        .map_err(|(error, _)| error)
        .unwrap();
    assert_eq!(delivery.partition, partition);
    delivery.offset
}

fn events_topic(cluster: &Cluster, region: &str) -> String {
    format!("{}.events.{region}", cluster.topic_prefix)
}

/// Registers `id` (suffixed, if need be, to an id `region` owns) and answers the id used.
async fn register(cluster: &Cluster, region: &str, id: &str) -> String {
    let regions: Vec<&str> = cluster.regions.iter().map(String::as_str).collect();
    let id = id_owned_by(&regions, region, id);
    let body = json!({ "id": id, "provider": "poison", "name": { "en": id } });
    cluster
        .command(region, Method::POST, "/v1/models", Some(body))
        .await;
    id
}

/// Waits until `region` counts `total` models.
async fn wait_total(cluster: &Cluster, region: &str, total: i64) -> Counts {
    wait_until(&format!("{region} counts {total} models"), || async move {
        let counts = Counts::from_body(&cluster.counts(region).await?)?;
        if counts.total == total {
            Ok(counts)
        } else {
            Err(format!("total {}", counts.total))
        }
    })
    .await
}

async fn readyz(cluster: &Cluster, region: &str) -> (StatusCode, Option<String>, Value) {
    let url = format!("{}/readyz", cluster.node(region).base);
    let response = reqwest::get(url).await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.json().await.unwrap();
    (status, content_type, body)
}

/// The reasons `/readyz` gives while 503 (`Err` while 200).
async fn unready_reasons(cluster: &Cluster, region: &str) -> Result<Vec<String>, String> {
    let (status, _, body) = readyz(cluster, region).await;
    if status != StatusCode::SERVICE_UNAVAILABLE {
        return Err(format!("readyz answered {status}: {body}"));
    }
    Ok(body["reasons"]
        .as_array()
        .unwrap_or_else(|| panic!("no reasons: {body}"))
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect())
}

/// The value of a Prometheus sample `name{labels}` (0 when absent).
async fn metric(cluster: &Cluster, region: &str, sample: &str) -> f64 {
    let text = cluster.get(region, "/metrics", &[]).await.body;
    let text = text.as_str().unwrap_or_default();
    text.lines()
        .find_map(|line| line.strip_prefix(sample)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_schema_version_makes_the_node_unready_naming_the_record() {
    let cluster = Cluster::start(&[EU, US]).await;
    register(&cluster, EU, "poison/before").await;
    let before = wait_total(&cluster, EU, 1).await;
    wait_total(&cluster, US, 1).await;

    let topic = events_topic(&cluster, EU);
    let payload = newer_event("poison/newer");
    // With a position header, as if a newer relay had written it.
    let offset = produce_foreign(&topic, 1, "poison/newer", &payload, Some("999999999")).await;
    let produced = Instant::now();
    let record = format!("undecodable record at {topic} partition 1 offset {offset}");
    let expected = format!(
        "projector: {record}: event schema version 99 is newer than this build understands (1)"
    );
    let reasons = wait_until("eu-west unready naming the record", || async {
        let reasons = unready_reasons(&cluster, EU).await?;
        if reasons.iter().any(|r| r.starts_with(&expected)) {
            Ok(reasons)
        } else {
            Err(format!("{reasons:?}"))
        }
    })
    .await;
    let within = produced.elapsed();
    assert!(
        within < Duration::from_secs(2),
        "unready only after {within:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("fails again at every retry")),
        "the reason says an operator must act: {reasons:?}"
    );
    let (_, content_type, body) = readyz(&cluster, EU).await;
    assert_eq!(content_type.as_deref(), Some("application/problem+json"));
    assert_eq!(body["code"], "not-ready", "{body}");
    assert_eq!(body["status"], 503, "{body}");
    assert!(body["detail"].as_str().unwrap().contains(&record), "{body}");

    // Every node follows every region's topic: us-east's catalogue follower stops there too.
    let follower = format!("catalogue follower: {record}");
    wait_until("us-east unready naming the record", || async {
        let reasons = unready_reasons(&cluster, US).await?;
        if reasons.iter().any(|r| r.starts_with(&follower)) {
            Ok(())
        } else {
            Err(format!("{reasons:?}"))
        }
    })
    .await;

    // Retried with backoff, failing on the same record each time; nothing was counted.
    let failures = r#"aigo_task_failures_total{task="projector"}"#;
    wait_until("the projector restarted and failed again", || async {
        let failed = metric(&cluster, EU, failures).await;
        if failed >= 2.0 {
            Ok(())
        } else {
            Err(format!("{failed} failures"))
        }
    })
    .await;
    let reasons = unready_reasons(&cluster, EU).await.unwrap();
    assert!(
        reasons.iter().any(|r| r.starts_with(&expected)),
        "{reasons:?}"
    );
    let after = Counts::from_body(&cluster.counts(EU).await.unwrap()).unwrap();
    assert_eq!(after, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_dead_letter_undecodable_records_are_copied_and_skipped_and_counting_goes_on() {
    let options = ClusterOptions {
        env: vec![("AIGO_PROJECTOR__UNDECODABLE".into(), "dead-letter".into())],
        ..ClusterOptions::default()
    };
    let cluster = Cluster::start_with(&[EU, US], options).await;
    register(&cluster, EU, "poison/first").await;
    wait_total(&cluster, EU, 1).await;
    wait_total(&cluster, US, 1).await;

    let topic = events_topic(&cluster, EU);
    let newer = newer_event("poison/newer");
    // A newer event without and with the position header, and a record that is not JSON.
    let foreign = [
        (0, newer.clone(), None),
        (2, newer, Some("999999999")),
        (1, b"{not json".to_vec(), None),
    ];
    let mut produced = Vec::new();
    for (partition, payload, position) in &foreign {
        let offset = produce_foreign(&topic, *partition, "poison/x", payload, *position).await;
        produced.push((*partition, offset, payload.clone()));
    }

    // Counting goes on: later commands of both regions are counted by both nodes.
    let second = register(&cluster, EU, "poison/second").await;
    register(&cluster, US, "poison/third").await;
    cluster
        .command(
            EU,
            Method::POST,
            &format!("/v1/models/{second}/activate"),
            None,
        )
        .await;
    for region in [EU, US] {
        let counts = wait_total(&cluster, region, 3).await;
        wait_until(&format!("{region} counts the activation"), || async {
            let counts = Counts::from_body(&cluster.counts(region).await?)?;
            if counts.active == 1 {
                Ok(())
            } else {
                Err(format!("{counts:?}"))
            }
        })
        .await;
        assert_eq!(counts.by_provider["poison"].0, 3);
        cluster.wait_ready(region).await;
    }

    // Each record is on the dead-letter topic, copied by the projector that skipped it (and by
    // each node's catalogue follower), with where it came from and why.
    let dead_letter = format!("{}.dead-letter", cluster.topic_prefix);
    let projector = format!("{}.projector.{EU}", cluster.topic_prefix);
    let copies = wait_until("every record dead-lettered", || async {
        let copies = read_all(&dead_letter, 1).await;
        let by = |consumer: &str| {
            copies
                .iter()
                .filter(|c| c.headers["aigo-dead-letter-consumer"] == consumer.as_bytes())
                .count()
        };
        let followers = [EU, US].map(|r| format!("{}.catalogue.{r}", cluster.topic_prefix));
        if by(&projector) >= 3 && followers.iter().all(|f| by(f) >= 3) {
            Ok(copies)
        } else {
            Err(format!("{} copies", copies.len()))
        }
    })
    .await;
    for (partition, offset, payload) in &produced {
        let header = |copy: &support::kafka::Received, name: &str| {
            String::from_utf8(copy.headers[name].clone()).unwrap()
        };
        let copy = copies
            .iter()
            .find(|c| {
                header(c, "aigo-dead-letter-consumer") == projector
                    && header(c, "aigo-dead-letter-partition") == partition.to_string()
                    && header(c, "aigo-dead-letter-offset") == offset.to_string()
            })
            .unwrap_or_else(|| panic!("{partition}@{offset} not dead-lettered by the projector"));
        assert_eq!(header(copy, "aigo-dead-letter-topic"), topic);
        assert_eq!(&copy.payload, payload);
        assert_eq!(copy.key.as_deref(), Some("poison/x"));
        let error = header(copy, "aigo-dead-letter-error");
        if payload.starts_with(b"{not") {
            assert!(error.starts_with("malformed event"), "{error}");
        } else {
            assert_eq!(
                error,
                "event schema version 99 is newer than this build understands (1)"
            );
        }
    }
    let counted = format!(r#"aigo_dead_lettered_records_total{{consumer="{projector}"}}"#);
    assert_eq!(metric(&cluster, EU, &counted).await, 3.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_keeps_publishing_after_a_foreign_record_ends_a_partition() {
    let cluster = Cluster::start(&[EU, US]).await;
    for i in 0..6 {
        register(&cluster, EU, &format!("poison/relay-{i}")).await;
    }
    wait_total(&cluster, US, 6).await;
    cluster.stop(EU).await;

    // The node's last row, as if it had crashed after sending it but before marking it.
    let pool = cluster.pool(EU).await;
    let (position, key, payload): (i64, String, Vec<u8>) = sqlx::query_as(
        "UPDATE outbox SET published_at = NULL
          WHERE position = (SELECT max(position) FROM outbox)
          RETURNING position, message_key, payload",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    // After it, on its partition: a copy of it without headers (another producer, a mirror).
    // Decodable (a duplicate to the projector), so only the relay is concerned.
    let topic = events_topic(&cluster, EU);
    let partition = partition_for(key.as_bytes(), PARTITIONS);
    produce_foreign(&topic, partition, &key, &payload, None).await;

    // Restarted, the relay reconciles first: the partition's end is the foreign record.
    cluster.restart(EU).await;
    register(&cluster, EU, "poison/after").await;
    wait_total(&cluster, US, 7).await;
    wait_until("every outbox row marked published", || async {
        let unpublished: i64 =
            sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                .fetch_one(&pool)
                .await
                .map_err(|e| e.to_string())?;
        if unpublished == 0 {
            Ok(())
        } else {
            Err(format!("{unpublished} unpublished"))
        }
    })
    .await;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;

    // The unmarked row was found behind the foreign record: marked, not sent again.
    let records = read_all(&topic, PARTITIONS).await;
    let mut sent: HashMap<i64, usize> = HashMap::new();
    for record in records
        .iter()
        .filter(|r| r.headers.contains_key(POSITION_HEADER))
    {
        *sent.entry(record.position()).or_default() += 1;
    }
    assert_eq!(sent.get(&position), Some(&1), "row {position} sent once");
    assert_eq!(
        sent.len(),
        usize::try_from(rows).unwrap(),
        "every row on the topic"
    );
    assert!(
        sent.values().all(|&n| n == 1),
        "no row sent twice: {sent:?}"
    );
    let foreign = "aigo_outbox_foreign_records_total";
    assert_eq!(metric(&cluster, EU, foreign).await, 1.0);
}
