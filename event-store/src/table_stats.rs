//! Keeps the query planner's statistics current while tables grow fast from (nearly) empty,
//! as when a new node's catalogue follower catches up on a long topic or a catalogue is imported.
//!
//! PostgreSQL plans with the statistics the last `ANALYZE` left: on a table analyzed while it
//! was empty, or never, the plans of multi-row statements (`= ANY($1)`, joins with `UNNEST`)
//! stay sequential scans while the table grows to millions of rows, and every batch gets
//! slower. Autovacuum's analyze comes at most once a `autovacuum_naptime` and after 10 % growth,
//! and can be off (it is on the project's CI machines). So the writer itself analyzes its
//! tables each time the rows it wrote since the last analyze reach a threshold that doubles:
//! `log2(rows / FIRST)` analyzes of bounded cost (`ANALYZE` samples at most 30,000 rows per
//! table at the default statistics target), whatever the size.

use sqlx::PgPool;
use tracing::{debug, warn};

/// Rows written before the first analyze.
const FIRST: u64 = 5_000;

/// Analyzes `tables` as the rows written to them double.
#[derive(Debug)]
pub struct GrowthAnalyzer {
    /// The `ANALYZE` statement, naming the tables (constants of this crate, never input).
    statement: String,
    since: u64,
    next: u64,
}

impl GrowthAnalyzer {
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

    fn new(tables: &[&str]) -> Self {
        Self {
            statement: format!("ANALYZE {}", tables.join(", ")),
            since: 0,
            next: FIRST,
        }
    }

    /// `rows` more were written (committed). Analyzes when the threshold is reached; a failed
    /// analyze is logged and tried again at the next call (the writes themselves succeeded).
    pub async fn wrote(&mut self, pool: &PgPool, rows: u64) {
        self.since = self.since.saturating_add(rows);
        if self.since < self.next {
            return;
        }
        match sqlx::query(&self.statement).execute(pool).await {
            Ok(_) => {
                debug!(statement = %self.statement, rows = self.since, "planner statistics refreshed");
                metrics::counter!("table_analyzes_total").increment(1);
                self.since = 0;
                self.next = self.next.saturating_mul(2);
            }
            Err(error) => {
                warn!(%error, statement = %self.statement, "could not refresh planner statistics")
            }
        }
    }
}
