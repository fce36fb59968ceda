//! Keeps the query planner's statistics current while tables grow fast from (nearly) empty,
//! as when a new node's catalogue follower catches up on a long topic or a catalogue is imported.
//!
//! PostgreSQL plans with the statistics the last `ANALYZE` left: on a table analyzed while it
//! was empty, or never, the plans of multi-row statements (`= ANY($1)`, joins with `UNNEST`)
//! stay sequential scans while the table grows to millions of rows, and every batch gets
//! slower. Autovacuum's analyze comes at most once a `autovacuum_naptime` and after 10 % growth,
//! and can be off (it is on the project's CI machines). So the writer itself looks at its
//! tables each time the rows it wrote reach a threshold, and analyzes those that changed by a
//! tenth of their size since their last analyze (or were never analyzed), as autovacuum would.
//! The threshold doubles after each analyze: `log2(rows / FIRST)` analyzes while a table grows
//! from empty.
//!
//! Only what changed is analyzed: a process that restarts often (the soak restarts one every
//! few seconds) used to analyze every table again after its first 5,000 rows, and an `ANALYZE`
//! reads up to 30,000 pages per table, so its cost grew with the tables (a third of the soak's
//! PostgreSQL time once they held a few hundred thousand rows).
//!
//! One analyze at a time per database: several analyzers watch the same tables (a process's
//! append queue and its catalogue follower both write the catalogue, and a region's processes
//! share a database), so they reach their thresholds together. Two `ANALYZE`s of one table
//! queue on its lock and the second reads the whole sample again, for nothing; an analyzer
//! that finds another one at work skips its turn instead (the soak sampled several at once).
//!
//! An analyzer runs on its writer's task, so a region's appends wait while it analyzes (kept:
//! on a saturated machine the commands that queue meanwhile share the next group commit, and
//! in one sitting the soak carried about 10 % fewer events with the analyzer on a task of its
//! own, docs/RELIABILITY.md "Part seven"). But they must not wait for someone else: an `ANALYZE`
//! waits for any `VACUUM` or other `ANALYZE` of its tables (an operator's `VACUUM events` can
//! take minutes), so the analyzer gives up its turn after [`LOCK_WAIT`].

use sqlx::PgPool;
use tracing::{debug, warn};

/// Rows written before the first look at the tables.
const FIRST: u64 = 5_000;

/// A table is analyzed once the rows changed since its last analyze reach this share of the
/// rows it had then (autovacuum's `autovacuum_analyze_scale_factor`).
const CHANGED_SHARE: f64 = 0.1;

/// How long an analyzer waits for a table that a `VACUUM` or another `ANALYZE` holds before it
/// skips its turn.
const LOCK_WAIT: &str = "100ms";

/// PostgreSQL's `lock_not_available`: `lock_timeout` passed.
const LOCK_NOT_AVAILABLE: &str = "55P03";

/// The advisory lock (per database) held by the one analyzer at work.
const ANALYZE_LOCK: i64 = GrowthAnalyzer::LOCK;

/// Analyzes `tables` as they grow.
#[derive(Debug)]
pub struct GrowthAnalyzer {
    /// The tables (constants of this crate, never input).
    tables: &'static [&'static str],
    since: u64,
    next: u64,
}

impl GrowthAnalyzer {
    /// The advisory lock key an analyzer holds while it analyzes (one at a time per database).
    pub const LOCK: i64 = 0x6169_676f_0005;

    /// For the catalogue follower: the catalogue's tables and the event log.
    pub fn catalogue_and_event_log() -> Self {
        Self::new(&["catalogue_models", "catalogue_availability", "event_log"])
    }

    /// For the append queue: the tables every command writes or reads before it writes.
    pub fn event_store() -> Self {
        Self::new(&[
            "events",
            "outbox",
            "stream_heads",
            "idempotency_keys",
            "catalogue_models",
            "catalogue_availability",
        ])
    }

    fn new(tables: &'static [&'static str]) -> Self {
        Self {
            tables,
            since: 0,
            next: FIRST,
        }
    }

    /// `rows` more were written (committed). At the threshold, analyzes the tables that
    /// changed enough, unless another analyzer of the database is at work (its analyze
    /// refreshes them) or a table is held longer than [`LOCK_WAIT`]; a failure is logged and
    /// tried again at the next call (the writes themselves succeeded).
    pub async fn wrote(&mut self, pool: &PgPool, rows: u64) {
        self.since = self.since.saturating_add(rows);
        if self.since < self.next {
            return;
        }
        match self.analyze_changed(pool).await {
            Ok(Turn::Analyzed(analyzed)) => {
                self.since = 0;
                if analyzed > 0 {
                    self.next = self.next.saturating_mul(2);
                }
            }
            Ok(Turn::Busy) => {
                self.since = 0;
                metrics::counter!("table_analyzes_skipped_total").increment(1);
            }
            Err(error) => {
                warn!(%error, tables = ?self.tables, "could not refresh planner statistics")
            }
        }
    }

    /// Analyzes those of the tables never analyzed, or changed by [`CHANGED_SHARE`] of their
    /// rows since their last analyze, holding [`ANALYZE_LOCK`] (the statistics are read under
    /// it, so what another analyzer just refreshed is not analyzed again).
    async fn analyze_changed(&self, pool: &PgPool) -> Result<Turn, sqlx::Error> {
        // `ANALYZE` (unlike `VACUUM`) runs inside a transaction; the lock ends with it.
        let mut tx = pool.begin().await?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(ANALYZE_LOCK)
            .fetch_one(&mut *tx)
            .await?;
        if !locked {
            return Ok(Turn::Busy);
        }
        sqlx::query(&format!("SET LOCAL lock_timeout = '{LOCK_WAIT}'"))
            .execute(&mut *tx)
            .await?;
        let changed: Vec<String> = sqlx::query_scalar(
            "SELECT s.relname::text FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
              WHERE s.relid = ANY($1::text[]::regclass[])
                AND (c.reltuples < 0 OR s.n_mod_since_analyze >= greatest(1, c.reltuples * $2))",
        )
        .bind(self.tables)
        .bind(CHANGED_SHARE)
        .fetch_all(&mut *tx)
        .await?;
        // Named from the constants, in their order, never from what the query returned.
        let tables: Vec<&str> = self
            .tables
            .iter()
            .copied()
            .filter(|table| changed.iter().any(|name| name == table))
            .collect();
        if tables.is_empty() {
            return Ok(Turn::Analyzed(0));
        }
        let statement = format!("ANALYZE {}", tables.join(", "));
        match sqlx::query(&statement).execute(&mut *tx).await {
            Ok(_) => {}
            // A table held by a VACUUM or an ANALYZE of someone else's: the transaction (and
            // what it analyzed so far) is rolled back, the turn skipped.
            Err(sqlx::Error::Database(error))
                if error.code().as_deref() == Some(LOCK_NOT_AVAILABLE) =>
            {
                return Ok(Turn::Busy);
            }
            Err(error) => return Err(error),
        }
        tx.commit().await?;
        debug!(%statement, "planner statistics refreshed");
        metrics::counter!("table_analyzes_total").increment(1);
        Ok(Turn::Analyzed(tables.len()))
    }
}

/// What an analyzer's turn came to.
enum Turn {
    /// This many tables were analyzed (none needed it: 0).
    Analyzed(usize),
    /// Another analyzer of the database held the lock, or a table was held by a `VACUUM` or
    /// an `ANALYZE` of someone else's.
    Busy,
}
