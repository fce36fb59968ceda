//! Stream heads: every command records its stream's state after it, equal to folding the whole
//! stream; a head that is missing, stale or of another format is never trusted.

use domain::{ModelId, RegionId};
use event_store::EventStore;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::{Method, StatusCode};
use sqlx::PgPool;

use crate::support::node::{ADMIN_TOKEN, TestNode};

const MODELS: [&str; 3] = ["acme/a", "acme/b", "acme/c"];
const REGIONS: [&str; 2] = ["eu-west", "us-east"];

/// One random command of any kind on one of a few models; refusals (409, 422) are part of it.
async fn random_command(node: &TestNode, rng: &mut StdRng) -> StatusCode {
    let id = MODELS[rng.random_range(0..MODELS.len())];
    // No retirement here: it is final, every later lifecycle command would be refused.
    let (method, path, body) = match rng.random_range(0..100) {
        0..10 => {
            return node.register(id, "acme").await.status;
        }
        10..30 => (Method::POST, format!("/v1/models/{id}/activate"), None),
        30..50 => (Method::POST, format!("/v1/models/{id}/deactivate"), None),
        50..68 => {
            let status = ["operational", "degraded", "outage"][rng.random_range(0..3)];
            let body = format!(r#"{{"status":"{status}"}}"#);
            (Method::PUT, format!("/v1/models/{id}/status"), Some(body))
        }
        68..84 => {
            let body = format!(r#"{{"name":{{"en":"{id} {}"}}}}"#, rng.random::<u16>());
            let encoded = id.replace('/', "%2F");
            (Method::PATCH, format!("/v1/models/{encoded}"), Some(body))
        }
        _ => {
            let region = REGIONS[rng.random_range(0..REGIONS.len())];
            let method = if rng.random_bool(0.5) {
                Method::PUT
            } else {
                Method::DELETE
            };
            (method, format!("/v1/regions/{region}/models/{id}"), None)
        }
    };
    node.send(method, &path, Some(ADMIN_TOKEN), &[], body.as_deref())
        .await
        .status
}

/// Every stream's loaded state (its head) equals its events folded, and its head row's version
/// is the stream's last sequence.
async fn assert_heads_equal_folds(store: &EventStore, pool: &PgPool) {
    for id in MODELS {
        let id = ModelId::parse(id).unwrap();
        assert_eq!(
            store.load_model(&id).await.unwrap(),
            store.fold_model(&id).await.unwrap(),
            "model {id}"
        );
        for region in REGIONS {
            let region = RegionId::parse(region).unwrap();
            assert_eq!(
                store.load_availability(&region, &id).await.unwrap(),
                store.fold_availability(&region, &id).await.unwrap(),
                "availability of {id} in {region}"
            );
        }
    }
    let stale: Vec<(String, i64, Option<i64>)> = sqlx::query_as(
        "SELECT s.stream, s.last, h.version
           FROM (SELECT stream, max(sequence) AS last FROM events GROUP BY stream) s
           LEFT JOIN stream_heads h ON h.stream = s.stream
          WHERE h.version IS DISTINCT FROM s.last",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(
        stale.is_empty(),
        "streams without a current head: {stale:?}"
    );
}

#[sqlx::test(migrator = "migrations::MIGRATOR")]
async fn every_command_leaves_a_head_equal_to_its_folded_stream(pool: PgPool) {
    let node = TestNode::start(pool.clone(), "eu-west").await;
    let store = EventStore::new(pool.clone(), RegionId::parse("eu-west").unwrap(), "unused");
    let seed: u64 = rand::random();
    println!("seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for _ in 0..300 {
        *statuses
            .entry(random_command(&node, &mut rng).await.as_u16())
            .or_default() += 1;
    }
    let accepted: usize = statuses
        .iter()
        .filter(|(status, _)| (200..300).contains(*status))
        .map(|(_, n)| n)
        .sum();
    assert!(
        accepted > 100,
        "only {accepted} of 300 commands were accepted: {statuses:?}"
    );
    assert_heads_equal_folds(&store, &pool).await;
    // Only an inactive model retires; it may be either now.
    node.lifecycle(MODELS[0], "deactivate").await;
    let retired = node.lifecycle(MODELS[0], "retire").await;
    assert_eq!(retired.status, StatusCode::OK, "{:?}", retired.body);
    assert_heads_equal_folds(&store, &pool).await;
    node.stop().await;
}

#[sqlx::test(migrator = "migrations::MIGRATOR")]
async fn a_head_that_is_missing_stale_or_foreign_is_folded_past_and_rewritten(pool: PgPool) {
    let node = TestNode::start(pool.clone(), "eu-west").await;
    let store = EventStore::new(pool.clone(), RegionId::parse("eu-west").unwrap(), "unused");
    let id = "acme/a";
    assert_eq!(node.register(id, "acme").await.status, StatusCode::CREATED);
    assert_eq!(node.lifecycle(id, "activate").await.status, StatusCode::OK);
    let mut version = 2;
    // As an older binary would leave things: heads that lag their streams, of an unknown format,
    // or none at all. Each time a command with the right If-Match must still be decided on the
    // whole stream (a trusted stale head would answer 412) and leave a current head.
    let damage = [
        "UPDATE stream_heads SET version = version - 1,
                                 state = jsonb_set(state, '{version}', to_jsonb(version - 1))",
        "UPDATE stream_heads SET format = 99",
        "UPDATE stream_heads SET state = '{\"unexpected\": true}'",
        "DELETE FROM stream_heads",
    ];
    for (round, statement) in damage.iter().enumerate() {
        let action = if round % 2 == 0 {
            "deactivate"
        } else {
            "activate"
        };
        let expected = store
            .fold_model(&ModelId::parse(id).unwrap())
            .await
            .unwrap();
        sqlx::query(statement).execute(&pool).await.unwrap();
        let answer = node
            .send(
                Method::POST,
                &format!("/v1/models/{id}/{action}"),
                Some(ADMIN_TOKEN),
                &[("if-match", &format!("\"{version}\""))],
                None,
            )
            .await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "{statement}: {:?}",
            answer.body
        );
        version += 1;
        assert_eq!(expected.version + 1, version);
        assert_heads_equal_folds(&store, &pool).await;
    }
    node.stop().await;
}
