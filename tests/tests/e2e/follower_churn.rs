//! A region never stops learning: eu-west runs two `region-node` processes (their projectors
//! share the region's partitions, their catalogue followers every region's), SIGKILLed or
//! stopped and started again, one after the other, for a minute while us-east registers
//! models. When the processes shared partitions through the broker's consumer groups, such a
//! burst left Nisshi 0.7's two-member groups rebalancing forever (every SyncGroup answered
//! REBALANCE_IN_PROGRESS, docs/BROKER.md): the region stopped learning other regions' models
//! and counting its own events, which is what the soak saw (docs/RELIABILITY.md). Now they
//! share them through advisory locks in the region's database, and once the churn ends
//! eu-west must learn every model us-east acknowledged. The test prints how long that took
//! and the longest time eu-west's catalogue trailed us-east.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::json;
use sqlx::PgPool;
use tokio::time::Instant;

use crate::support::cluster::{Cluster, ClusterOptions, unlimited_commands};
use crate::support::diagnosis::catalogue_diagnosis;
use crate::support::seed_from_env;
use crate::support::workload::home_region;
use crate::support::{EU, US};

/// How long the processes keep dying.
const CHURN: Duration = Duration::from_secs(60);
/// How long eu-west may take to learn the rest once the churn ended: a restarted process is
/// ready in seconds, so this is generous.
const CATCH_UP: Duration = Duration::from_secs(60);

fn seed() -> u64 {
    seed_from_env("CHURN_SEED", "the same kills")
}

/// Models us-east acknowledged, in order, with when.
#[derive(Default)]
struct Registered {
    models: Mutex<Vec<(String, Instant)>>,
}

/// How many us-east models eu-west's catalogue holds.
async fn known_in_eu(pool: &PgPool) -> Option<usize> {
    let known: i64 =
        sqlx::query_scalar("SELECT count(*) FROM catalogue_models WHERE home_region = $1")
            .bind(US)
            .fetch_one(pool)
            .await
            .ok()?;
    usize::try_from(known).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_whose_processes_keep_dying_learns_every_model() {
    let seed = seed();
    let mut cluster = Cluster::start_with(
        &[EU, US],
        ClusterOptions {
            env: unlimited_commands(),
            ..ClusterOptions::default()
        },
    )
    .await;
    let second = cluster.add_process(EU).await;
    let cluster = &cluster;
    let pool = cluster.pool(EU).await;
    let registered = Registered::default();
    let stop = AtomicBool::new(false);

    let register = async {
        let mut n = 0_usize;
        while !stop.load(Ordering::SeqCst) {
            n += 1;
            let id = format!("openai/churn-{seed}-{n}");
            if home_region(&id, &cluster.regions) != US {
                continue;
            }
            let body = json!({ "id": id, "provider": "openai", "name": { "en": id } });
            cluster
                .command(US, Method::POST, "/v1/models", Some(body))
                .await;
            registered.models.lock().unwrap().push((id, Instant::now()));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let churn = async {
        let mut rng = StdRng::seed_from_u64(seed);
        let processes = [EU.to_owned(), second.clone()];
        let (mut kills, mut stops) = (0, 0);
        let started = Instant::now();
        while started.elapsed() < CHURN {
            let name = &processes[rng.random_range(0..processes.len())];
            if cluster.running(name) {
                if rng.random_bool(0.7) {
                    cluster.kill(name);
                    kills += 1;
                } else {
                    cluster.stop(name).await;
                    stops += 1;
                }
                tokio::time::sleep(Duration::from_millis(rng.random_range(0..2000))).await;
                cluster.spawn(name);
            }
            tokio::time::sleep(Duration::from_millis(rng.random_range(1000..3000))).await;
        }
        eprintln!("churn: {kills} SIGKILLs and {stops} graceful stops in {CHURN:?}");
        for name in &processes {
            if !cluster.running(name) {
                cluster.spawn(name);
            }
        }
        stop.store(true, Ordering::SeqCst);
    };
    // The longest time the oldest us-east model eu-west did not know had been acknowledged.
    let watch = async {
        let mut longest = Duration::ZERO;
        while !stop.load(Ordering::SeqCst) {
            if let Some(known) = known_in_eu(&pool).await {
                let oldest_unknown = registered.models.lock().unwrap().get(known).map(|m| m.1);
                if let Some(acked) = oldest_unknown {
                    longest = longest.max(acked.elapsed());
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        longest
    };
    let ((), (), longest) = tokio::join!(register, churn, watch);
    let total = registered.models.lock().unwrap().len();
    eprintln!("{total} models registered in us-east; eu-west trailed by up to {longest:?}");

    let churn_ended = Instant::now();
    loop {
        let known = known_in_eu(&pool).await.unwrap_or(0);
        if known == total {
            eprintln!(
                "eu-west knew all {total} models {:?} after the churn ended",
                churn_ended.elapsed()
            );
            return;
        }
        if churn_ended.elapsed() > CATCH_UP {
            let readyz = cluster.get(EU, "/readyz", &[]).await;
            panic!(
                "eu-west knows {known} of us-east's {total} models {CATCH_UP:?} after the churn \
                 ended and /readyz answers {} {}; {}\neu-west log tail:\n{}",
                readyz.status,
                readyz.body,
                catalogue_diagnosis(cluster).await,
                cluster.node(EU).process.log_tail(),
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
