//! Several region nodes, each a separate process of the real binary with its own database, on
//! one set of topics: whatever each region writes, every node converges on the same counts,
//! equal to what the test computes from the commands it sent, also across a retirement and
//! across a node that is killed while the others keep writing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use futures::future::join_all;
use projector::ActorState;
use projector_runtime::exchange::merge_all;
use reqwest::Method;
use serde_json::json;

use crate::support::cluster::{Cluster, WITHDRAWAL_INTERVAL_MS};
use crate::support::counts::Counts;
use crate::support::ownership::id_owned_by;
use crate::support::workload::{Model, expected_counts};
use crate::support::{AP, EU, US, wait_until};

const REGIONS: [&str; 3] = [EU, US, AP];
const PROVIDERS: [&str; 5] = ["openai", "anthropic", "google", "meta", "mistral"];

/// A cluster and the ledger of what was written to it.
struct World {
    cluster: Cluster,
    ledger: Mutex<BTreeMap<String, Model>>,
}

impl World {
    async fn start() -> Self {
        Self {
            cluster: Cluster::start(&REGIONS).await,
            ledger: Mutex::new(BTreeMap::new()),
        }
    }

    fn update(&self, id: &str, change: impl FnOnce(&mut Model)) {
        let mut ledger = self.ledger.lock().unwrap();
        change(ledger.get_mut(id).unwrap());
    }

    fn home(&self, id: &str) -> String {
        self.ledger.lock().unwrap()[id].home.clone()
    }

    async fn register(&self, home: &str, id: &str, provider: &str) {
        let body = json!({
            "id": id,
            "provider": provider,
            "name": { "en": id, "ko": format!("모델 {id}") },
        });
        let answer = self
            .cluster
            .command(home, Method::POST, "/v1/models", Some(body))
            .await;
        assert_eq!(answer["model_id"], id, "{answer}");
        self.ledger.lock().unwrap().insert(
            id.to_owned(),
            Model {
                provider: provider.to_owned(),
                home: home.to_owned(),
                active: false,
                retired: false,
                status: "operational",
                served: BTreeSet::new(),
            },
        );
    }

    async fn lifecycle(&self, id: &str, action: &str) {
        let home = self.home(id);
        let path = format!("/v1/models/{id}/{action}");
        self.cluster.command(&home, Method::POST, &path, None).await;
        self.update(id, |m| match action {
            "activate" => m.active = true,
            "deactivate" => m.active = false,
            "retire" => {
                m.retired = true;
                // Every serving region withdraws it by itself.
                m.served.clear();
            }
            other => panic!("unknown action {other}"),
        });
    }

    async fn set_status(&self, id: &str, status: &'static str) {
        let home = self.home(id);
        let path = format!("/v1/models/{id}/status");
        let body = json!({ "status": status });
        self.cluster
            .command(&home, Method::PUT, &path, Some(body))
            .await;
        self.update(id, |m| m.status = status);
    }

    /// `region` serves `id` (retried until its catalogue knows a model of another region).
    async fn serve(&self, region: &str, id: &str) {
        let path = format!("/v1/regions/{region}/models/{id}");
        self.cluster.command(region, Method::PUT, &path, None).await;
        self.update(id, |m| {
            m.served.insert(region.to_owned());
        });
    }

    async fn withdraw(&self, region: &str, id: &str) {
        let path = format!("/v1/regions/{region}/models/{id}");
        self.cluster
            .command(region, Method::DELETE, &path, None)
            .await;
        self.update(id, |m| {
            m.served.remove(region);
        });
    }

    /// The counts every node must reach, computed from the ledger.
    fn expected(&self) -> Counts {
        let ledger = self.ledger.lock().unwrap();
        expected_counts(&self.cluster.regions, ledger.values())
    }

    /// Waits until every node of `nodes` reports exactly the expected counts, with every region
    /// fresh except those in `down`, which must be reported stale.
    async fn wait_converged(&self, what: &str, nodes: &[&str], down: &[&str]) -> Counts {
        let expected = self.expected();
        let cluster = &self.cluster;
        let wanted = &expected;
        wait_until(what, || async move {
            for node in nodes {
                let body = cluster.counts(node).await?;
                let got = Counts::from_body(&body)?;
                if got != *wanted {
                    return Err(format!("{node} reports {got:?}\nexpected {wanted:?}"));
                }
                for region in &cluster.regions {
                    let stale = &body["regions"][region]["stale"];
                    let want_stale = down.contains(&region.as_str());
                    if stale.as_bool() != Some(want_stale) {
                        return Err(format!(
                            "{node}: {region} stale = {stale}, expected {want_stale}: {}",
                            body["regions"][region]
                        ));
                    }
                }
            }
            Ok(())
        })
        .await;
        expected
    }

    /// `model_withdrawn` events of `id` with reason `model_retired` in `region`'s store.
    async fn retirement_withdrawals(&self, region: &str, id: &str) -> i64 {
        let pool = self.cluster.pool(region).await;
        let count = sqlx::query_scalar(
            "SELECT count(*) FROM events
              WHERE model_id = $1 AND event_type = 'model_withdrawn'
                AND envelope -> 'event' ->> 'reason' = 'model_retired'",
        )
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap();
        pool.close().await;
        count
    }
}

/// The `i`th model homed in `home`: an id that `home` owns (registers) in this cluster.
fn model_id(home: &str, i: usize) -> (String, &'static str) {
    let r = REGIONS.iter().position(|r| *r == home).unwrap();
    let provider = PROVIDERS[(i + r) % PROVIDERS.len()];
    let id = id_owned_by(&REGIONS, home, &format!("{provider}/{home}-m{i:02}"));
    (id, provider)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_regions_converge_on_the_same_counts() {
    let world = World::start().await;
    let world = &world;

    // Every region writes at once: its own models, then what it serves.
    join_all(REGIONS.iter().enumerate().map(|(r, home)| async move {
        for i in 0..21 {
            let (id, provider) = model_id(home, i);
            world.register(home, &id, provider).await;
        }
        for i in 0..18 {
            world.lifecycle(&model_id(home, i).0, "activate").await;
        }
        // One activated and deactivated again: 17 active per region.
        world.lifecycle(&model_id(home, 17).0, "deactivate").await;
        for i in 0..21 {
            let id = model_id(home, i).0;
            match i % 5 {
                1 => world.set_status(&id, "degraded").await,
                3 => world.set_status(&id, "outage").await,
                _ => {}
            }
        }
        // A status that goes and comes back.
        let id = model_id(home, 7).0;
        world.set_status(&id, "outage").await;
        world.set_status(&id, "operational").await;
        for i in 0..21 {
            world.serve(home, &model_id(home, i).0).await;
        }
        world.withdraw(home, &model_id(home, 20).0).await;
        // A few models of the other regions, as soon as this region's catalogue knows them.
        let next = REGIONS[(r + 1) % REGIONS.len()];
        let after = REGIONS[(r + 2) % REGIONS.len()];
        for i in 0..3 {
            world.serve(home, &model_id(next, i).0).await;
        }
        world.serve(home, &model_id(after, 4).0).await;
    }))
    .await;

    let expected = world
        .wait_converged("every node reports the same counts", &REGIONS, &[])
        .await;
    assert_eq!(
        (
            expected.total,
            expected.active,
            expected.inactive,
            expected.retired
        ),
        (63, 51, 12, 0)
    );
    assert_eq!(
        expected.available.values().copied().collect::<Vec<_>>(),
        [24, 24, 24]
    );
    assert_eq!(expected.by_provider.len(), PROVIDERS.len());

    for region in REGIONS {
        let status = world.cluster.stop(region).await;
        assert!(
            status.success(),
            "{region} ended with {status} after SIGTERM"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retirement_withdraws_the_model_everywhere() {
    let world = World::start().await;
    for home in REGIONS {
        for i in 0..2 {
            let (id, provider) = model_id(home, i);
            world.register(home, &id, provider).await;
            world.serve(home, &id).await;
        }
        world.lifecycle(&model_id(home, 0).0, "activate").await;
    }
    let retiree = &id_owned_by(&REGIONS, EU, "acme/retiree");
    world.register(EU, retiree, "acme").await;
    world.lifecycle(retiree, "activate").await;
    world.set_status(retiree, "degraded").await;
    world.serve(EU, retiree).await;
    world.serve(US, retiree).await;
    let before = world
        .wait_converged("the retiree is served by two regions", &REGIONS, &[])
        .await;
    assert_eq!(before.available[EU], 3);
    assert_eq!(before.available[US], 3);

    world.lifecycle(retiree, "deactivate").await;
    world.lifecycle(retiree, "retire").await;
    let after = world
        .wait_converged(
            "every node counts the retirement and both withdrawals",
            &REGIONS,
            &[],
        )
        .await;
    assert_eq!(after.retired, 1);
    assert_eq!(after.total, 6);
    assert_eq!(after.available[EU], 2);
    assert_eq!(after.available[US], 2);
    assert!(!after.by_provider.contains_key("acme"));

    // Give the withdrawal workers a few more passes: a second withdrawal would show up now.
    tokio::time::sleep(Duration::from_millis(4 * WITHDRAWAL_INTERVAL_MS)).await;
    assert_eq!(world.retirement_withdrawals(US, retiree).await, 1);
    assert_eq!(world.retirement_withdrawals(EU, retiree).await, 1);
    assert_eq!(world.retirement_withdrawals(AP, retiree).await, 0);
    let pool = world.cluster.pool(US).await;
    let (stream, actor): (String, Option<String>) = sqlx::query_as(
        "SELECT stream, envelope ->> 'actor' FROM events
          WHERE model_id = $1 AND event_type = 'model_withdrawn'",
    )
    .bind(retiree)
    .fetch_one(&pool)
    .await
    .unwrap();
    pool.close().await;
    assert_eq!(stream, format!("availability:{US}:{retiree}"));
    assert_eq!(actor.as_deref(), Some("system:retirement"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_and_heal() {
    let world = World::start().await;
    let world = &world;
    join_all(REGIONS.iter().map(|home| async move {
        for i in 0..6 {
            let (id, provider) = model_id(home, i);
            world.register(home, &id, provider).await;
            world.serve(home, &id).await;
            if i < 4 {
                world.lifecycle(&id, "activate").await;
            }
        }
    }))
    .await;
    world
        .wait_converged("all three agree before the partition", &REGIONS, &[])
        .await;

    world.cluster.kill(AP);
    // The two others keep writing: new models, lifecycle changes, availability (including of
    // a model whose home is down).
    join_all([EU, US].into_iter().map(|home| async move {
        for i in 6..11 {
            let (id, provider) = model_id(home, i);
            world.register(home, &id, provider).await;
            world.serve(home, &id).await;
            if i < 9 {
                world.lifecycle(&id, "activate").await;
            }
        }
        world.set_status(&model_id(home, 6).0, "degraded").await;
        world.lifecycle(&model_id(home, 1).0, "deactivate").await;
        world.serve(home, &model_id(AP, 2).0).await;
    }))
    .await;
    world.serve(US, &model_id(EU, 7).0).await;
    world
        .wait_converged(
            "the two live nodes agree and report the killed one stale",
            &[EU, US],
            &[AP],
        )
        .await;

    world.cluster.restart(AP).await;
    // Its write path works again after the crash.
    let (id, provider) = model_id(AP, 6);
    world.register(AP, &id, provider).await;
    world.lifecycle(&id, "activate").await;
    world.serve(AP, &model_id(US, 8).0).await;
    let healed = world
        .wait_converged("all three agree after the restart", &REGIONS, &[])
        .await;
    assert_eq!(
        (healed.total, healed.active, healed.inactive),
        (6 * 3 + 5 * 2 + 1, 4 * 3 + 3 * 2 - 2 + 1, 2 * 3 + 2 * 2 + 2)
    );

    // Killed right after its last acknowledged write, before it could publish or fold it:
    // acknowledged means it counts, once, after the restart.
    for i in 7..9 {
        let (id, provider) = model_id(AP, i);
        world.register(AP, &id, provider).await;
        world.serve(AP, &id).await;
    }
    world.lifecycle(&model_id(AP, 8).0, "activate").await;
    world.cluster.kill(AP);
    world.cluster.restart(AP).await;
    let recovered = world
        .wait_converged(
            "all three agree after a crash right after a write",
            &REGIONS,
            &[],
        )
        .await;
    assert_eq!(
        (recovered.total, recovered.active),
        (healed.total + 2, healed.active + 1)
    );
}

/// A node restarted while another region is down starts from the actor states it saved: the
/// down region is still counted (and reported stale) instead of missing until it returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_while_a_region_is_down_still_counts_it() {
    let world = World::start().await;
    let world = &world;
    join_all(REGIONS.iter().map(|home| async move {
        for i in 0..3 {
            let (id, provider) = model_id(home, i);
            world.register(home, &id, provider).await;
            world.serve(home, &id).await;
            if i < 2 {
                world.lifecycle(&id, "activate").await;
            }
        }
    }))
    .await;
    let expected = world.wait_converged("all three agree", &REGIONS, &[]).await;
    let pool = world.cluster.pool(EU).await;
    let pool = &pool;
    let wanted = &expected;
    wait_until("eu-west saved every region's latest state", || async move {
        let saved: Vec<Vec<u8>> = sqlx::query_scalar("SELECT state FROM known_actor_states")
            .fetch_all(pool)
            .await
            .map_err(|e| e.to_string())?;
        let states = saved.iter().map(|bytes| ActorState::decode(bytes).unwrap());
        let totals = merge_all(states).totals();
        if (totals.total, totals.active) == (wanted.total, wanted.active) {
            Ok(())
        } else {
            Err(format!(
                "saved states count {} / {}",
                totals.total, totals.active
            ))
        }
    })
    .await;
    pool.close().await;

    world.cluster.kill(AP);
    world.cluster.stop(EU).await;
    world.cluster.restart(EU).await;
    world
        .wait_converged(
            "eu-west, restarted while ap-northeast is down, still counts ap-northeast",
            &[EU, US],
            &[AP],
        )
        .await;
}
