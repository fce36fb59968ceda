//! `region-node audit` compares the live projection's checkpoints with a replay of the region's
//! topic, and the catalogue's recount with the fold's merged counts and with history as of now:
//! it passes after a normal run; a catalogue row tampered with in the database (a model the log
//! never registered, a changed provider) makes it fail naming each number and both values; and
//! after a deliberate corruption of a stored checkpoint it fails, naming the actor and the
//! counter.

use domain::{
    EventEnvelope, EventPayload, LocalizedText, ModelId, OperationalStatus, ProviderId, RegionId,
    StreamId,
};
use event_store::ReadPoint;
use projector::MetricKey;
use projector_runtime::checkpoint;
use reqwest::Method;
use serde_json::json;

use crate::support;
use crate::support::cli::region_node;
use crate::support::cluster::Cluster;
use crate::support::{EU, wait_until};

/// A registration the region never made: what a double-counting projection would have folded.
fn ghost_registration(position: u64) -> EventEnvelope {
    let id = ModelId::parse("ghost/not-in-the-log").unwrap();
    EventEnvelope {
        event_id: uuid::Uuid::now_v7(),
        schema_version: domain::CURRENT_SCHEMA_VERSION,
        stream: StreamId::Model(id.clone()),
        sequence: 1,
        position,
        model_id: id.clone(),
        origin_region: RegionId::parse(EU).unwrap(),
        occurred_at: chrono::Utc::now(),
        correlation_id: uuid::Uuid::now_v7(),
        causation_id: None,
        idempotency_key: None,
        actor: None,
        event: EventPayload::ModelRegistered {
            id,
            provider: ProviderId::parse("ghost").unwrap(),
            home_region: RegionId::parse(EU).unwrap(),
            name: LocalizedText::english("Ghost"),
            description: None,
            status: OperationalStatus::Operational,
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_passes_then_names_the_actor_and_counter_of_a_corrupted_checkpoint() {
    support::init_tracing();
    let cluster = Cluster::start(&[EU]).await;
    for i in 0..12 {
        let id = format!("audit/model-{i}");
        let body = json!({"id": id, "provider": format!("p{}", i % 3), "name": {"en": id}});
        cluster
            .command(EU, Method::POST, "/v1/models", Some(body))
            .await;
        if i % 2 == 0 {
            cluster
                .command(EU, Method::POST, &format!("/v1/models/{id}/activate"), None)
                .await;
        }
        if i % 3 == 0 {
            cluster
                .command(
                    EU,
                    Method::PUT,
                    &format!("/v1/regions/{EU}/models/{id}"),
                    None,
                )
                .await;
        }
    }
    cluster
        .command(EU, Method::POST, "/v1/models/audit/model-1/retire", None)
        .await;
    wait_until("the projection folded everything", || async {
        let counts = cluster.counts(EU).await?;
        let got = (
            counts["total"].clone(),
            counts["active"].clone(),
            counts["retired"].clone(),
        );
        (got == (json!(11), json!(6), json!(1)))
            .then_some(())
            .ok_or(format!("{got:?}"))
    })
    .await;

    let config = cluster.node(EU).config_path();
    let ran = region_node(config, &["audit", "--quiet"]).await;
    eprintln!("audit of a normal run:\n{}", ran.stdout);
    assert!(
        ran.success,
        "audit of a normal run failed:\n{}\n{}",
        ran.stdout, ran.stderr
    );
    assert!(
        ran.stdout
            .contains("OK: the live projection equals the replay"),
        "{}",
        ran.stdout
    );
    assert!(ran.stdout.contains("actor eu-west:"), "{}", ran.stdout);
    assert!(
        ran.stdout
            .contains("catalogue recount: total 11, active 6, retired 1"),
        "{}",
        ran.stdout
    );

    // A registered model in the catalogue that no event registered: the catalogue counts it,
    // the fold and history do not.
    let pool = cluster.pool(EU).await;
    sqlx::query(
        "INSERT INTO catalogue_models (model_id, provider, home_region, name, lifecycle, status,
                                       version, updated_at)
         VALUES ('tampered/extra', 'tampered', $1, '{\"en\": \"Extra\"}', 'active',
                 'operational', 1, now())",
    )
    .bind(EU)
    .execute(&pool)
    .await
    .unwrap();
    let ran = region_node(config, &["audit", "--quiet"]).await;
    eprintln!("audit with an extra catalogue row:\n{}", ran.stdout);
    assert_eq!(ran.code, Some(1), "{}\n{}", ran.stdout, ran.stderr);
    assert_differences(
        &ran.stdout,
        &[
            "active: catalogue 7, fold 6 (fold - catalogue = -1)",
            "by_provider.tampered.active: catalogue 1, fold 0 (fold - catalogue = -1)",
            "by_provider.tampered.total: catalogue 1, fold 0 (fold - catalogue = -1)",
            "by_status.operational: catalogue 12, fold 11 (fold - catalogue = -1)",
            "total: catalogue 12, fold 11 (fold - catalogue = -1)",
            "active: catalogue 7, history 6 (history - catalogue = -1)",
            "by_provider.tampered.active: catalogue 1, history 0 (history - catalogue = -1)",
            "by_provider.tampered.total: catalogue 1, history 0 (history - catalogue = -1)",
            "by_status.operational: catalogue 12, history 11 (history - catalogue = -1)",
            "total: catalogue 12, history 11 (history - catalogue = -1)",
        ],
    );
    sqlx::query("DELETE FROM catalogue_models WHERE model_id = 'tampered/extra'")
        .execute(&pool)
        .await
        .unwrap();

    // A model moved to another provider: the totals agree, the providers do not.
    sqlx::query("UPDATE catalogue_models SET provider = 'moved' WHERE model_id = 'audit/model-0'")
        .execute(&pool)
        .await
        .unwrap();
    let ran = region_node(config, &["audit", "--quiet"]).await;
    eprintln!("audit with a changed provider:\n{}", ran.stdout);
    assert_eq!(ran.code, Some(1), "{}\n{}", ran.stdout, ran.stderr);
    assert_differences(
        &ran.stdout,
        &[
            "by_provider.moved.active: catalogue 1, fold 0 (fold - catalogue = -1)",
            "by_provider.moved.total: catalogue 1, fold 0 (fold - catalogue = -1)",
            "by_provider.p0.active: catalogue 1, fold 2 (fold - catalogue = 1)",
            "by_provider.p0.total: catalogue 3, fold 4 (fold - catalogue = 1)",
            "by_provider.moved.active: catalogue 1, history 0 (history - catalogue = -1)",
            "by_provider.moved.total: catalogue 1, history 0 (history - catalogue = -1)",
            "by_provider.p0.active: catalogue 1, history 2 (history - catalogue = 1)",
            "by_provider.p0.total: catalogue 3, history 4 (history - catalogue = 1)",
        ],
    );
    sqlx::query("UPDATE catalogue_models SET provider = 'p0' WHERE model_id = 'audit/model-0'")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let ran = region_node(config, &["audit", "--quiet"]).await;
    assert!(
        ran.success,
        "audit after the catalogue was put back:\n{}\n{}",
        ran.stdout, ran.stderr
    );

    // Stop the node (its last commit lands), then corrupt one stored checkpoint: fold a
    // registration that is not in the log into it, as a double-counting bug would.
    cluster.stop(EU).await;
    let topic = format!("{}.events.{EU}", cluster.topic_prefix);
    let pool = cluster.pool(EU).await;
    let eu = RegionId::parse(EU).unwrap();
    let stored = checkpoint::stored(&pool, &eu, &topic).await.unwrap();
    let (partition, next, mut fold) = stored
        .into_iter()
        .map(|row| (row.partition, row.next_offset, row.fold.unwrap()))
        .find(|(_, _, fold)| fold.counters().value(&MetricKey::Total) > 0)
        .expect("a checkpoint that counted models");
    let before = fold.counters().value(&MetricKey::Total);
    fold.track_changes(false);
    fold.apply(next, &ghost_registration(1_000_000));
    assert_eq!(fold.counters().value(&MetricKey::Total), before + 1);
    let mut conn = pool.acquire().await.unwrap();
    let parts = fold.checkpoint_parts().unwrap();
    assert_eq!(parts.changed.len(), 1, "the ghost's facts row");
    let saved = checkpoint::save(
        &mut conn,
        &eu,
        &topic,
        partition,
        ReadPoint::at(next),
        &parts,
    )
    .await
    .unwrap();
    assert!(saved);
    drop(conn);
    pool.close().await;

    let ran = region_node(config, &["audit", "--quiet"]).await;
    eprintln!("audit after the corruption:\n{}{}", ran.stdout, ran.stderr);
    assert!(
        !ran.success,
        "audit passed a corrupted checkpoint:\n{}",
        ran.stdout
    );
    assert_eq!(ran.code, Some(1), "differences exit with status 1");
    let expected = format!(
        "actor {EU}:{partition}: counter total: live {}, replay {before}",
        before + 1
    );
    assert!(
        ran.stdout.contains(&expected),
        "no line {expected:?} in:\n{}",
        ran.stdout
    );
    assert!(
        ran.stdout.contains(&format!(
            "actor {EU}:{partition}: counter provider:ghost:total"
        )),
        "{}",
        ran.stdout
    );
    assert!(ran.stdout.contains("FAILED"), "{}", ran.stdout);
    // The fold's merged counts include the corrupted checkpoint: it counts one model more than
    // the catalogue. History and the catalogue still agree.
    assert!(
        ran.stdout
            .contains("DIFFERENCE total: catalogue 11, fold 12 (fold - catalogue = 1)"),
        "{}",
        ran.stdout
    );
    for line in ran.stdout.lines().filter(|l| l.starts_with("DIFFERENCE")) {
        assert!(
            line.contains(&format!("actor {EU}:{partition}:")) || line.contains(", fold "),
            "only the corrupted actor and the fold differ: {line}"
        );
    }
}

/// The audit's DIFFERENCE lines are exactly `expected`, in order.
fn assert_differences(stdout: &str, expected: &[&str]) {
    let found: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("DIFFERENCE "))
        .collect();
    assert_eq!(found, expected, "{stdout}");
    assert!(stdout.contains("FAILED"), "{stdout}");
}
