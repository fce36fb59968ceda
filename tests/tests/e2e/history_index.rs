//! The history index answers exactly what a full replay of the event log answers, at every
//! step of a scripted history: three regions, every kind of event, a clock that steps back, an
//! undecodable row, a region cut off while the others go on and later healed (its events
//! logged late, stamped before what the index already holds), an indexer restart resuming from
//! its saved folds (heads and facts rows), the index dropped while facts rows of the old one
//! stay behind, and a row logged out of its actor's order (the actor is rebuilt).

use std::collections::BTreeSet;

use chrono::{DateTime, TimeDelta, Utc};
use domain::{
    CURRENT_SCHEMA_VERSION, EventEnvelope, EventPayload, LocalizedText, ModelId, OperationalStatus,
    ProviderId, RegionId, StreamId, WithdrawReason,
};
use event_store::event_log::{self, LoggedEvent};
use event_store::history_index;
use projector::{ChangeFeed, FoldHead};
use query_api::history::counts_at_points;
use query_api::history::index::{BlockPolicy, counts_from_index, run_indexer};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::PgPool;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::support::{AP, EU, US, wait_until};

const REGIONS: [&str; 3] = [EU, US, AP];
const PARTITIONS: i32 = 3;
const STEPS: usize = 420;

/// Small blocks and frequent resume points, so a short history crosses many of each.
const POLICY: BlockPolicy = BlockPolicy {
    block_events: 4,
    fold_every_events: 8,
};

/// One scripted event, with the step that made it.
struct Scripted {
    step: usize,
    logged: LoggedEvent,
}

/// What the script knows of a model.
struct Model {
    home: usize,
    lifecycle: u64,
    retired: bool,
    /// Per region: availability stream sequence and whether it serves the model.
    served: [(u64, bool); 3],
}

/// A deterministic history of `STEPS` commands across the regions.
fn script(t0: DateTime<Utc>) -> Vec<Scripted> {
    let mut rng = StdRng::seed_from_u64(12);
    let mut models: Vec<(ModelId, Model)> = Vec::new();
    let mut positions = [0_u64; 3];
    let mut out = Vec::new();
    for step in 0..STEPS {
        let r = rng.random_range(0..3);
        let region = RegionId::parse(REGIONS[r]).unwrap();
        // eu-west's clock steps back 40 s at step 200 (the clamp a real store applies is
        // left out on purpose: history must not depend on it).
        let skew = if r == 0 && step >= 200 { -40 } else { 0 };
        let at = t0 + TimeDelta::seconds(step as i64 + skew) + TimeDelta::milliseconds(r as i64);
        let own: Vec<usize> = (0..models.len())
            .filter(|i| models[*i].1.home == r && !models[*i].1.retired)
            .collect();
        let (stream, sequence, event, model_id) = if own.is_empty() || rng.random_bool(0.3) {
            let id = ModelId::parse(&format!("p{}/m-{step}", step % 4)).unwrap();
            let event = EventPayload::ModelRegistered {
                id: id.clone(),
                provider: ProviderId::parse(&format!("p{}", step % 4)).unwrap(),
                home_region: region.clone(),
                name: LocalizedText::english(id.as_str()),
                description: None,
                status: OperationalStatus::Operational,
            };
            models.push((
                id.clone(),
                Model {
                    home: r,
                    lifecycle: 1,
                    retired: false,
                    served: [(0, false); 3],
                },
            ));
            (StreamId::Model(id.clone()), 1, event, id)
        } else if rng.random_bool(0.35) {
            // Serve or withdraw any model in this region.
            let i = rng.random_range(0..models.len());
            let (id, model) = &mut models[i];
            let (sequence, serving) = &mut model.served[r];
            *sequence += 1;
            *serving = !*serving;
            let event = if *serving {
                EventPayload::ModelServed {
                    region: region.clone(),
                }
            } else {
                EventPayload::ModelWithdrawn {
                    region: region.clone(),
                    reason: WithdrawReason::Manual,
                }
            };
            let stream = StreamId::Availability {
                region: region.clone(),
                model: id.clone(),
            };
            (stream, *sequence, event, id.clone())
        } else {
            let i = own[rng.random_range(0..own.len())];
            let (id, model) = &mut models[i];
            model.lifecycle += 1;
            let event = match rng.random_range(0..10) {
                0..=3 => EventPayload::ModelActivated,
                4..=5 => EventPayload::ModelDeactivated,
                6..=8 => EventPayload::ModelStatusChanged {
                    status: [
                        OperationalStatus::Degraded,
                        OperationalStatus::Outage,
                        OperationalStatus::Operational,
                    ][rng.random_range(0..3)],
                },
                _ => {
                    model.retired = true;
                    EventPayload::ModelRetired
                }
            };
            (
                StreamId::Model(id.clone()),
                model.lifecycle,
                event,
                id.clone(),
            )
        };
        positions[r] += 1;
        let partition = domain::partition_for(model_id.as_str().as_bytes(), PARTITIONS);
        out.push(Scripted {
            step,
            logged: LoggedEvent {
                partition,
                offset: positions[r] as i64,
                envelope: EventEnvelope {
                    event_id: uuid::Uuid::now_v7(),
                    schema_version: CURRENT_SCHEMA_VERSION,
                    stream,
                    sequence,
                    position: positions[r],
                    model_id,
                    origin_region: region,
                    occurred_at: at,
                    correlation_id: uuid::Uuid::nil(),
                    causation_id: None,
                    idempotency_key: None,
                    actor: None,
                    event,
                },
            },
        });
    }
    out
}

/// A running indexer and the way to stop it.
struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

fn start_indexer(pool: &PgPool) -> Running {
    let (stop, stopped) = oneshot::channel::<()>();
    let pool = pool.clone();
    let task = tokio::spawn(async move {
        run_indexer(pool, ChangeFeed::new(), POLICY, async {
            let _ = stopped.await;
        })
        .await
        .expect("the indexer failed");
    });
    Running { stop, task }
}

async fn stop_indexer(running: Running) {
    let _ = running.stop.send(());
    running.task.await.unwrap();
}

async fn log(pool: &PgPool, events: &[&Scripted]) {
    let batch: Vec<LoggedEvent> = events.iter().map(|s| clone_logged(&s.logged)).collect();
    let mut conn = pool.acquire().await.unwrap();
    event_log::insert(&mut conn, &batch).await.unwrap();
}

fn clone_logged(logged: &LoggedEvent) -> LoggedEvent {
    LoggedEvent {
        partition: logged.partition,
        offset: logged.offset,
        envelope: logged.envelope.clone(),
    }
}

/// Every instant where an answer can change (each event time, a microsecond either side), and
/// a moment before and after everything.
fn instants(script: &[Scripted]) -> Vec<DateTime<Utc>> {
    let mut set = BTreeSet::new();
    for s in script {
        let at = s.logged.envelope.occurred_at;
        set.extend([
            at - TimeDelta::microseconds(1),
            at,
            at + TimeDelta::microseconds(1),
        ]);
    }
    let (first, last) = (*set.first().unwrap(), *set.last().unwrap());
    set.extend([first - TimeDelta::hours(1), last + TimeDelta::hours(1)]);
    set.into_iter().collect()
}

/// Waits for the index to hold every logged event, then compares it with a full replay at
/// every instant, for the deployment and for each region's own view.
async fn index_equals_replay(pool: &PgPool, points: &[DateTime<Utc>], when: &str) {
    wait_until(&format!("the index caught up ({when})"), || async move {
        let through = history_index::indexed_through(pool)
            .await
            .map_err(|e| e.to_string())?;
        let logged = event_log::max_arrival(pool)
            .await
            .map_err(|e| e.to_string())?;
        if through >= logged {
            Ok(())
        } else {
            Err(format!("indexed through {through} of {logged}"))
        }
    })
    .await;
    let only: Vec<Option<RegionId>> = std::iter::once(None)
        .chain(REGIONS.iter().map(|r| Some(RegionId::parse(r).unwrap())))
        .collect();
    for region in &only {
        let indexed = counts_from_index(pool, points, region.as_ref())
            .await
            .unwrap()
            .unwrap_or_else(|coverage| panic!("the index was complete ({when}): {coverage:?}"));
        let replayed = counts_at_points(pool, points, region.as_ref())
            .await
            .unwrap();
        assert_eq!(indexed.len(), replayed.len());
        for (i, r) in indexed.iter().zip(&replayed) {
            assert_eq!(
                (i.at, &i.counts, i.events_replayed),
                (r.at, &r.counts, r.events_replayed),
                "{when}, region {region:?}: the index differs from the replay at {}",
                r.at
            );
        }
    }
}

#[sqlx::test(migrator = "migrations::MIGRATOR")]
async fn the_index_answers_what_a_full_replay_answers_at_every_step(pool: PgPool) {
    let t0 = Utc::now() - TimeDelta::days(2);
    let script = script(t0);
    let points = instants(&script);
    let us = |s: &&Scripted| s.logged.envelope.origin_region.as_str() == US;
    // One ap-northeast event is held back until the very end: logged after its successors.
    let held_back = script
        .iter()
        .filter(|s| s.logged.envelope.origin_region.as_str() == AP && s.step > 300)
        .nth(2)
        .map(|s| s.step)
        .unwrap();

    let mut indexer = start_indexer(&pool);
    // Phase 1: every region, in order, in batches.
    let phase1: Vec<&Scripted> = script.iter().filter(|s| s.step < 150).collect();
    for batch in phase1.chunks(25) {
        log(&pool, batch).await;
        index_equals_replay(&pool, &points, "before the cut").await;
    }
    // An undecodable row (a newer build's event type): it ends prefixes, it does not count.
    sqlx::query(
        "UPDATE event_log SET envelope = jsonb_set(envelope, '{event,type}', '\"from_the_future\"')
          WHERE region = $1 AND position = 3",
    )
    .bind(EU)
    .execute(&pool)
    .await
    .unwrap();
    stop_indexer(indexer).await;
    // Dropping the index (as an operator may; here forgetting `history_fold_facts`, whose stale
    // rows the first resume points replace): it is built again from the log.
    sqlx::raw_sql(
        "TRUNCATE history_blocks, history_folds; UPDATE history_index_state SET indexed_through = 0",
    )
    .execute(&pool)
    .await
    .unwrap();
    indexer = start_indexer(&pool);
    index_equals_replay(&pool, &points, "an undecodable row, rebuilt").await;

    // Phase 2: us-east is cut off; the others go on. The indexer restarts midway.
    let phase2: Vec<&Scripted> = script
        .iter()
        .filter(|s| (150..300).contains(&s.step) && !us(s))
        .collect();
    for (n, batch) in phase2.chunks(30).enumerate() {
        log(&pool, batch).await;
        if n == 2 {
            stop_indexer(indexer).await;
            indexer = start_indexer(&pool);
        }
        index_equals_replay(&pool, &points, "during the cut").await;
    }
    // Phase 3: healed. us-east's events come late, stamped before what is indexed.
    let healed: Vec<&Scripted> = script
        .iter()
        .filter(|s| (150..300).contains(&s.step) && us(s))
        .collect();
    for batch in healed.chunks(20) {
        log(&pool, batch).await;
        index_equals_replay(&pool, &points, "healing").await;
    }
    let rest: Vec<&Scripted> = script
        .iter()
        .filter(|s| s.step >= 300 && s.step != held_back)
        .collect();
    for batch in rest.chunks(40) {
        log(&pool, batch).await;
        index_equals_replay(&pool, &points, "after the cut").await;
    }
    // Phase 4: the held-back event, out of its actor's order: that actor is rebuilt.
    let late: Vec<&Scripted> = script.iter().filter(|s| s.step == held_back).collect();
    log(&pool, &late).await;
    index_equals_replay(&pool, &points, "an event out of log order").await;

    // The index really is in use: blocks for every actor, resume points saved.
    let blocks: i64 = sqlx::query_scalar("SELECT count(*) FROM history_blocks")
        .fetch_one(&pool)
        .await
        .unwrap();
    let folds: i64 = sqlx::query_scalar("SELECT count(*) FROM history_folds")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        blocks >= (STEPS / POLICY.block_events) as i64,
        "{blocks} blocks"
    );
    assert!(folds > 0, "no resume point saved");
    // Every resume point is whole in its parts: as many facts rows as its head counts streams
    // (a resume point missing rows would be dropped and its actor folded again from nothing).
    let saved: Vec<(String, i32, Vec<u8>, i64)> = sqlx::query_as(
        "SELECT f.region, f.partition, f.fold,
                (SELECT count(*) FROM history_fold_facts AS r
                  WHERE r.region = f.region AND r.partition = f.partition)
           FROM history_folds AS f",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    for (region, partition, head, rows) in saved {
        let head = FoldHead::decode(&head).expect("a resume point saved in parts");
        assert_eq!(
            head.streams(),
            u64::try_from(rows).unwrap(),
            "{region}/{partition}: facts rows against the head's streams"
        );
    }
    stop_indexer(indexer).await;
}
