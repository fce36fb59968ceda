//! Folds the indexer resumes from: each actor's, at the end of one of its blocks, saved in
//! parts (a head in `history_folds`, one row per stream's facts in `history_fold_facts`).

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredFold {
    pub region: String,
    pub partition: i32,
    /// The last event folded: a block's last.
    pub position: i64,
    /// Events that reached the fold so far.
    pub events: i64,
    /// The latest event time folded.
    pub reach: DateTime<Utc>,
    /// The newest arrival folded.
    pub through_arrival: i64,
    /// The fold's head (`PartitionFold::checkpoint_parts`), or, saved before resume points
    /// came in parts, a whole `PartitionFold::snapshot`.
    pub fold: Vec<u8>,
}

/// One stream's facts as saved with a fold's head.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct FoldFactsRow {
    pub stream: String,
    pub facts: Vec<u8>,
}

/// A resume point to write: the head, the facts rows changed since the actor's last one, and
/// whether the actor's stored rows are to be dropped first (a fold not resumed from its rows:
/// built from nothing, or from a whole snapshot, writes every row it has).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoldSave {
    pub fold: StoredFold,
    pub changed: Vec<FoldFactsRow>,
    pub replace_facts: bool,
}

/// Rows per multi-row upsert of facts.
const FACTS_CHUNK: usize = 5_000;

/// Writes resume points inside the caller's transaction.
pub async fn save_folds(conn: &mut PgConnection, saves: &[FoldSave]) -> Result<(), sqlx::Error> {
    for save in saves {
        let fold = &save.fold;
        if save.replace_facts {
            sqlx::query("DELETE FROM history_fold_facts WHERE region = $1 AND partition = $2")
                .bind(&fold.region)
                .bind(fold.partition)
                .execute(&mut *conn)
                .await?;
        }
        sqlx::query(
            "INSERT INTO history_folds (region, partition, position, events, reach,
                                        through_arrival, fold)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (region, partition) DO UPDATE
                SET position = excluded.position, events = excluded.events,
                    reach = excluded.reach, through_arrival = excluded.through_arrival,
                    fold = excluded.fold",
        )
        .bind(&fold.region)
        .bind(fold.partition)
        .bind(fold.position)
        .bind(fold.events)
        .bind(fold.reach)
        .bind(fold.through_arrival)
        .bind(&fold.fold)
        .execute(&mut *conn)
        .await?;
        for chunk in save.changed.chunks(FACTS_CHUNK) {
            let (streams, facts): (Vec<&str>, Vec<&[u8]>) = chunk
                .iter()
                .map(|row| (row.stream.as_str(), row.facts.as_slice()))
                .unzip();
            sqlx::query(
                "INSERT INTO history_fold_facts (region, partition, stream, facts)
                 SELECT $1, $2, stream, facts
                   FROM UNNEST($3::text[], $4::bytea[]) AS r(stream, facts)
                 ON CONFLICT (region, partition, stream) DO UPDATE SET facts = excluded.facts",
            )
            .bind(&fold.region)
            .bind(fold.partition)
            .bind(&streams)
            .bind(&facts)
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}

pub async fn load_folds<'e>(db: impl PgExecutor<'e>) -> Result<Vec<StoredFold>, sqlx::Error> {
    sqlx::query_as(
        "SELECT region, partition, position, events, reach, through_arrival, fold
           FROM history_folds ORDER BY region, partition",
    )
    .fetch_all(db)
    .await
}

/// The facts rows saved with one actor's fold, by stream.
pub async fn load_fold_facts<'e>(
    db: impl PgExecutor<'e>,
    region: &str,
    partition: i32,
) -> Result<Vec<FoldFactsRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT stream, facts FROM history_fold_facts
          WHERE region = $1 AND partition = $2 ORDER BY stream",
    )
    .bind(region)
    .bind(partition)
    .fetch_all(db)
    .await
}
