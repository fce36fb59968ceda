//! What keeps the node from being ready: each background task that failed, with the reason,
//! written by the node's supervisor and listed by `/readyz`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Shared by the supervisor (writes) and the readiness route (reads); cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct TaskHealth {
    failing: Arc<Mutex<BTreeMap<String, String>>>,
}

impl TaskHealth {
    pub fn new() -> Self {
        Self::default()
    }

    /// `task` failed (or is restarting after a failure) because of `reason`.
    pub fn fail(&self, task: &str, reason: impl Into<String>) {
        self.lock().insert(task.to_owned(), reason.into());
    }

    /// `task` is healthy again; true if it had been failing.
    pub fn recover(&self, task: &str) -> bool {
        self.lock().remove(task).is_some()
    }

    pub fn is_failing(&self, task: &str) -> bool {
        self.lock().contains_key(task)
    }

    /// Every failing task as `<task>: <reason>`, by task name.
    pub fn reasons(&self) -> Vec<String> {
        self.lock()
            .iter()
            .map(|(task, reason)| format!("{task}: {reason}"))
            .collect()
    }

    // A panic while holding the lock leaves a map that is still consistent (one insert or
    // remove), so a poisoned lock is used as is.
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, String>> {
        self.failing.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_listed_until_recovered() {
        let health = TaskHealth::new();
        assert!(health.reasons().is_empty());
        health.fail("projector", "undecodable record");
        health.fail("catalogue follower", "database down");
        health.fail("projector", "undecodable record again");
        assert_eq!(
            health.reasons(),
            [
                "catalogue follower: database down",
                "projector: undecodable record again"
            ]
        );
        assert!(health.recover("projector"));
        assert!(!health.recover("projector"));
        assert!(!health.is_failing("projector"));
        assert_eq!(health.reasons(), ["catalogue follower: database down"]);
    }
}
