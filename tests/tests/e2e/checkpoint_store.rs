//! The checkpoint store in PostgreSQL (a head and one facts row per stream): a checkpoint
//! stored whole by an older build is read and replaced by parts at the next commit; a former
//! owner's late commit writes neither its head nor its rows and keeps its changes pending; a
//! commit writes only the rows of the streams that changed; a checkpoint in a new incarnation
//! of the topic (offsets from zero again) is ahead of any offset of the old one.

use event_store::ReadPoint;
use projector::{ActorId, PartitionFold, is_whole_snapshot};
use projector_runtime::checkpoint;
use sqlx::PgPool;

use crate::support::database::{drop_database, scratch_database};
use crate::support::events::Generator;

const TOPIC: &str = "aigo.events.eu-west";

/// Folds `events` into `fold` from offset `from`.
fn fold_from(fold: &mut PartitionFold, from: usize, events: &[domain::EventEnvelope]) {
    for (offset, event) in events.iter().enumerate().skip(from) {
        fold.apply(offset as i64, event);
    }
}

async fn save(pool: &PgPool, fold: &PartitionFold, next: i64) -> bool {
    save_at(pool, fold, ReadPoint::at(next)).await
}

async fn save_at(pool: &PgPool, fold: &PartitionFold, next: ReadPoint) -> bool {
    let mut tx = pool.begin().await.unwrap();
    let parts = fold.checkpoint_parts().unwrap();
    let saved = checkpoint::save(&mut tx, &fold.actor().region, TOPIC, 0, next, &parts)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    saved
}

/// Every facts row of partition 0, by stream.
async fn rows(pool: &PgPool) -> Vec<(String, Vec<u8>)> {
    sqlx::query_as(
        "SELECT stream, facts FROM projector_checkpoint_facts WHERE topic = $1 AND partition = 0
          ORDER BY stream",
    )
    .bind(TOPIC)
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn head(pool: &PgPool) -> Vec<u8> {
    sqlx::query_scalar("SELECT state FROM projector_checkpoints WHERE topic = $1 AND partition = 0")
        .bind(TOPIC)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_checkpoint_stored_whole_is_read_then_replaced_by_parts() {
    let (name, pool) = scratch_database().await;
    let mut generator = Generator::new("eu-west", 41);
    let events = generator.take(1_000);
    let actor = ActorId::new(generator.region().clone(), 0);
    let mut expected = PartitionFold::new(actor.clone());
    fold_from(&mut expected, 0, &events);

    // What a build from before parts stored after 600 events: the whole snapshot, no rows.
    let mut old = PartitionFold::new(actor.clone());
    fold_from(&mut old, 0, &events[..600]);
    sqlx::query(
        "INSERT INTO projector_checkpoints (region, topic, partition, next_offset, state, updated_at)
         VALUES ('eu-west', $1, 0, 600, $2, now())",
    )
    .bind(TOPIC)
    .bind(old.snapshot().unwrap())
    .execute(&pool)
    .await
    .unwrap();

    let (mut fold, next) = checkpoint::load(&pool, &actor.region, TOPIC, 0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next, ReadPoint::at(600));
    assert_eq!(fold.snapshot().unwrap(), old.snapshot().unwrap());
    fold_from(&mut fold, 600, &events);
    let streams = fold.facts().model_count() + fold.facts().availability_count();
    assert_eq!(
        fold.checkpoint_parts().unwrap().changed.len(),
        streams,
        "the first commit after a whole snapshot writes every stream's row"
    );
    assert!(save(&pool, &fold, 1_000).await);
    fold.mark_checkpointed();
    assert!(!is_whole_snapshot(&head(&pool).await));
    assert_eq!(rows(&pool).await.len(), streams);

    let (loaded, next) = checkpoint::load(&pool, &actor.region, TOPIC, 0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next, ReadPoint::at(1_000));
    assert_eq!(loaded.snapshot().unwrap(), expected.snapshot().unwrap());
    drop_database(&name, pool).await;
}

#[tokio::test]
async fn a_former_owners_late_commit_writes_nothing_and_keeps_its_changes() {
    let (name, pool) = scratch_database().await;
    let mut generator = Generator::new("eu-west", 42);
    let events = generator.take(1_200);
    let actor = ActorId::new(generator.region().clone(), 0);

    // The partition's new owner is ahead; the former one commits late, further behind.
    let mut owner = PartitionFold::new(actor.clone());
    owner.track_changes(false);
    fold_from(&mut owner, 0, &events[..1_000]);
    assert!(save(&pool, &owner, 1_000).await);
    owner.mark_checkpointed();
    let (head_before, rows_before) = (head(&pool).await, rows(&pool).await);

    let mut former = PartitionFold::new(actor.clone());
    former.track_changes(false);
    fold_from(&mut former, 0, &events[..600]);
    let pending = former.checkpoint_parts().unwrap().changed.len();
    assert!(pending > 0);
    assert!(
        !save(&pool, &former, 600).await,
        "a commit behind the stored one is refused"
    );
    assert_eq!(head(&pool).await, head_before, "head untouched");
    assert_eq!(rows(&pool).await, rows_before, "rows untouched");
    // Refused: nothing marked, so its changes are still pending.
    assert_eq!(former.checkpoint_parts().unwrap().changed.len(), pending);

    // The owner's next commit writes only what changed since its last one.
    fold_from(&mut owner, 1_000, &events[..1_010]);
    let parts = owner.checkpoint_parts().unwrap();
    assert!(
        (1..=10).contains(&parts.changed.len()),
        "{} rows for 10 events",
        parts.changed.len()
    );
    assert!(save(&pool, &owner, 1_010).await);
    let (loaded, _) = checkpoint::load(&pool, &actor.region, TOPIC, 0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(loaded.snapshot().unwrap(), owner.snapshot().unwrap());
    drop_database(&name, pool).await;
}

#[tokio::test]
async fn a_new_incarnation_is_ahead_of_every_offset_of_the_old_one() {
    let (name, pool) = scratch_database().await;
    let mut generator = Generator::new("eu-west", 43);
    let events = generator.take(300);
    let actor = ActorId::new(generator.region().clone(), 0);
    let mut fold = PartitionFold::new(actor.clone());
    fold.track_changes(false);
    fold_from(&mut fold, 0, &events[..200]);
    let mut old = ReadPoint::at(0);
    old.consumed(199, Some(1_700_000_000_000));
    assert!(save_at(&pool, &fold, old).await);
    fold.mark_checkpointed();

    // The topic was created again: the fold starts over at offset 0 and reads 10 records.
    fold.start_new_incarnation();
    let mut new = old.next_incarnation();
    new.consumed(9, Some(1_700_000_100_000));
    assert!(
        save_at(&pool, &fold, new).await,
        "offset 10 of the new incarnation is written over offset 200 of the old one"
    );
    let (_, loaded) = checkpoint::load(&pool, &actor.region, TOPIC, 0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(loaded, new);

    // A former owner still reading the old incarnation commits late, far ahead in offsets.
    let mut late = old;
    late.consumed(299, Some(1_700_000_050_000));
    assert!(
        !save_at(&pool, &fold, late).await,
        "a commit of the old incarnation is refused"
    );
    let (_, loaded) = checkpoint::load(&pool, &actor.region, TOPIC, 0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(loaded, new, "the new incarnation's read point stays");
    drop_database(&name, pool).await;
}
