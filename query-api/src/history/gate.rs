//! At most N history reads (`?at=`, series, a model's history) run at once on a node, and at
//! most R start per second; the next is refused at once with 503 and `Retry-After`, so readers
//! queue at their side, never hold the read pool's connections from the cheap reads, and cannot
//! take the machine's CPU from the write path (each read is cheap, so a concurrency cap alone
//! still lets a crowd of clients run thousands a second).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::problem::QueryError;

/// Shared, cheap to clone.
#[derive(Debug, Clone)]
pub struct HistoryGate {
    permits: Arc<Semaphore>,
    limit: usize,
    /// With a history index: how reads use it. `None`: always replay.
    index: Option<IndexUse>,
    /// Reads started per second, node-wide, and that number; `None`: no budget.
    budget: Option<(Arc<DefaultDirectRateLimiter>, u32)>,
}

/// How a read uses the history index.
#[derive(Debug, Clone, Copy)]
pub struct IndexUse {
    /// How long a read waits for the index to hold every logged event.
    pub wait: Duration,
    /// Past the wait, a read replays the log instead only if it holds at most this many
    /// events; beyond, it is refused (503 `index-catching-up`): a replay reads the whole log
    /// (seconds at a million events), and readers arriving while an indexer catches up after a
    /// restart would each start one.
    pub replay_limit: u64,
}

impl HistoryGate {
    pub fn new(limit: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(limit)),
            limit,
            index: None,
            budget: None,
        }
    }

    /// At most `per_second` reads start each second (bursts of as many).
    #[must_use]
    pub fn with_budget(mut self, per_second: NonZeroU32) -> Self {
        let quota = Quota::per_second(per_second);
        self.budget = Some((Arc::new(RateLimiter::direct(quota)), per_second.get()));
        self
    }

    /// Reads counts from the history index, as `index` says.
    #[must_use]
    pub fn with_index(mut self, index: IndexUse) -> Self {
        self.index = Some(index);
        self
    }

    pub fn index(&self) -> Option<IndexUse> {
        self.index
    }

    /// A slot for one history read, held until the permit drops; refused when all are taken.
    pub fn enter(&self) -> Result<OwnedSemaphorePermit, QueryError> {
        let permit = self.permits.clone().try_acquire_owned().map_err(|_| {
            metrics::counter!("history_reads_refused_total", "why" => "concurrency").increment(1);
            QueryError::Busy(self.limit)
        })?;
        if let Some((budget, per_second)) = &self.budget
            && budget.check().is_err()
        {
            metrics::counter!("history_reads_refused_total", "why" => "rate").increment(1);
            return Err(QueryError::OverBudget(*per_second));
        }
        Ok(permit)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_slot_after_the_last_is_refused_until_one_frees_up() {
        let gate = HistoryGate::new(2);
        let first = gate.enter().unwrap();
        let _second = gate.enter().unwrap();
        assert!(matches!(gate.enter(), Err(QueryError::Busy(2))));
        drop(first);
        assert!(gate.enter().is_ok());
    }

    #[test]
    fn past_the_budget_a_read_is_refused_even_with_slots_free() {
        let gate = HistoryGate::new(8).with_budget(NonZeroU32::new(3).unwrap());
        for _ in 0..3 {
            drop(gate.enter().unwrap());
        }
        assert!(matches!(gate.enter(), Err(QueryError::OverBudget(3))));
    }
}
