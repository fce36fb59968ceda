//! Partition checkpoints: a fold's snapshot and the next offset to consume, written together.
//! Also the region's source of truth for its own actors' states (see [`actor_states`]).

use std::collections::HashMap;

use domain::RegionId;
use sqlx::{PgConnection, PgExecutor, PgPool};

use projector::CodecError;
use projector::{ActorId, ActorState, PartitionFold};

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("stored checkpoint of {topic}/{partition} is unreadable: {source}")]
    Corrupt {
        topic: String,
        partition: i32,
        #[source]
        source: CodecError,
    },
    #[error(
        "stored checkpoint of {topic}/{partition} is the fold of actor {found}, not of {expected}: \
         it belongs to another partition or region (a copied row or database?)"
    )]
    WrongActor {
        topic: String,
        partition: i32,
        expected: ActorId,
        found: ActorId,
    },
}

/// The fold of `topic`/`partition` as last committed and the offset to resume from. The
/// snapshot must be the fold of actor (`region`, `partition`): resuming another actor's fold
/// would count its events as this partition's.
pub async fn load(
    pool: &PgPool,
    region: &RegionId,
    topic: &str,
    partition: i32,
) -> Result<Option<(PartitionFold, i64)>, CheckpointError> {
    let row: Option<(i64, Vec<u8>)> = sqlx::query_as(
        "SELECT next_offset, state FROM projector_checkpoints WHERE topic = $1 AND partition = $2",
    )
    .bind(topic)
    .bind(partition)
    .fetch_optional(pool)
    .await?;
    let expected = ActorId::new(region.clone(), partition);
    row.map(|(next, bytes)| {
        let fold = restore(topic, &expected, &bytes)?;
        Ok((fold, next))
    })
    .transpose()
}

/// Decodes a stored snapshot and checks it is `expected`'s.
fn restore(
    topic: &str,
    expected: &ActorId,
    bytes: &[u8],
) -> Result<PartitionFold, CheckpointError> {
    let fold = PartitionFold::restore(bytes).map_err(|source| CheckpointError::Corrupt {
        topic: topic.to_owned(),
        partition: expected.partition,
        source,
    })?;
    if fold.actor() != expected {
        return Err(CheckpointError::WrongActor {
            topic: topic.to_owned(),
            partition: expected.partition,
            expected: expected.clone(),
            found: fold.actor().clone(),
        });
    }
    Ok(fold)
}

/// Writes one checkpoint inside the caller's transaction. Never moves a partition backwards:
/// a consumer that lost the partition in a rebalance and commits late cannot undo the newer
/// owner's progress.
pub async fn save(
    conn: &mut PgConnection,
    region: &RegionId,
    topic: &str,
    partition: i32,
    next_offset: i64,
    snapshot: &[u8],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO projector_checkpoints (region, topic, partition, next_offset, state, updated_at)
         VALUES ($1, $2, $3, $4, $5, now())
         ON CONFLICT (topic, partition) DO UPDATE
            SET next_offset = excluded.next_offset, state = excluded.state,
                updated_at = excluded.updated_at
          WHERE projector_checkpoints.next_offset <= excluded.next_offset",
    )
    .bind(region.as_str())
    .bind(topic)
    .bind(partition)
    .bind(next_offset)
    .bind(snapshot)
    .execute(conn)
    .await?;
    Ok(())
}

/// A checkpoint row as stored, its snapshot not decoded (audits report unreadable ones).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredCheckpoint {
    pub partition: i32,
    pub next_offset: i64,
    pub state: Vec<u8>,
}

/// Every checkpoint of `topic`, by partition.
pub async fn stored<'e>(
    db: impl PgExecutor<'e>,
    topic: &str,
) -> Result<Vec<StoredCheckpoint>, sqlx::Error> {
    sqlx::query_as(
        "SELECT partition, next_offset, state FROM projector_checkpoints WHERE topic = $1
          ORDER BY partition",
    )
    .bind(topic)
    .fetch_all(db)
    .await
}

/// Every committed partition of `topic` and its next offset: where assignments start.
pub async fn next_offsets(
    pool: &PgPool,
    topic: &str,
) -> Result<HashMap<(String, i32), i64>, sqlx::Error> {
    let rows: Vec<(i32, i64)> =
        sqlx::query_as("SELECT partition, next_offset FROM projector_checkpoints WHERE topic = $1")
            .bind(topic)
            .fetch_all(pool)
            .await?;
    Ok(rows
        .into_iter()
        .map(|(partition, next)| ((topic.to_owned(), partition), next))
        .collect())
}

/// One own-region actor's committed state, as read by [`actor_states`].
#[derive(Debug)]
pub struct CommittedState {
    pub partition: i32,
    pub next_offset: i64,
    /// `Err` for a checkpoint that cannot be read or is another actor's: never merged.
    pub state: Result<ActorState, CheckpointError>,
}

/// The committed state of every partition of region `region`'s `topic` whose checkpoint moved
/// past `seen` (partition → next offset already read; pass an empty map for all): how a node
/// learns the actors its region's other projector processes fold. Only checkpoints that moved
/// are fetched and decoded.
pub async fn actor_states(
    pool: &PgPool,
    region: &RegionId,
    topic: &str,
    seen: &HashMap<i32, i64>,
) -> Result<Vec<CommittedState>, sqlx::Error> {
    let (partitions, offsets): (Vec<i32>, Vec<i64>) = seen.iter().map(|(p, o)| (*p, *o)).unzip();
    let rows: Vec<(i32, i64, Vec<u8>)> = sqlx::query_as(
        "SELECT c.partition, c.next_offset, c.state
           FROM projector_checkpoints c
           LEFT JOIN unnest($2::int[], $3::bigint[]) AS seen(partition, next_offset)
                  ON seen.partition = c.partition
          WHERE c.topic = $1 AND (seen.next_offset IS NULL OR c.next_offset > seen.next_offset)",
    )
    .bind(topic)
    .bind(&partitions)
    .bind(&offsets)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(partition, next_offset, bytes)| {
            let expected = ActorId::new(region.clone(), partition);
            let state = restore(topic, &expected, &bytes).map(|fold| fold.state());
            CommittedState {
                partition,
                next_offset,
                state,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_of_another_actor_is_refused() {
        let eu = RegionId::parse("eu-west").unwrap();
        let us = RegionId::parse("us-east").unwrap();
        let snapshot = PartitionFold::new(ActorId::new(eu.clone(), 1))
            .snapshot()
            .unwrap();
        assert!(restore("t", &ActorId::new(eu.clone(), 1), &snapshot).is_ok());
        let other_partition = restore("t", &ActorId::new(eu, 2), &snapshot).unwrap_err();
        assert!(
            matches!(
                other_partition,
                CheckpointError::WrongActor { partition: 2, .. }
            ),
            "{other_partition}"
        );
        assert!(
            other_partition
                .to_string()
                .contains("actor eu-west:1, not of eu-west:2")
        );
        let other_region = restore("t", &ActorId::new(us, 1), &snapshot).unwrap_err();
        assert!(matches!(other_region, CheckpointError::WrongActor { .. }));
        assert!(matches!(
            restore(
                "t",
                &ActorId::new(RegionId::parse("eu-west").unwrap(), 1),
                b"junk"
            ),
            Err(CheckpointError::Corrupt { .. })
        ));
    }
}
