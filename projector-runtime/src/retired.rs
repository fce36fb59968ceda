//! Models the catalogue follower saw retired, handed to the node's withdrawal worker: it checks
//! just those after a batch, instead of searching the whole catalogue after every batch that
//! retired something (a catch-up on a long topic retires models in nearly every batch).

use std::collections::BTreeSet;
use std::sync::{Mutex, PoisonError};

use tokio::sync::Notify;

/// More pending than this (the worker stopped or is far behind): forget them and ask for a
/// whole search, which finds them all.
const PENDING_LIMIT: usize = 10_000;

/// What the worker is to check next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToCheck {
    /// These models, retired since the last take.
    Models(Vec<String>),
    /// Every retired model (too many were pending).
    Everything,
}

#[derive(Debug, Default)]
pub struct RetiredModels {
    pending: Mutex<Pending>,
    notify: Notify,
}

#[derive(Debug, Default)]
struct Pending {
    models: BTreeSet<String>,
    overflowed: bool,
}

impl RetiredModels {
    /// The follower committed the retirement of `models`; wakes the worker if there were any.
    pub fn add<'a>(&self, models: impl IntoIterator<Item = &'a str>) {
        let mut added = false;
        {
            let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            for model in models {
                added = true;
                if pending.overflowed {
                    continue;
                }
                pending.models.insert(model.to_owned());
                if pending.models.len() > PENDING_LIMIT {
                    pending.models.clear();
                    pending.overflowed = true;
                }
            }
        }
        if added {
            self.notify.notify_one();
        }
    }

    /// Until models were added (at once if some were added since the last wait).
    pub async fn added(&self) {
        self.notify.notified().await;
    }

    /// Takes what is pending.
    pub fn take(&self) -> ToCheck {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let taken = std::mem::take(&mut *pending);
        if taken.overflowed {
            ToCheck::Everything
        } else {
            ToCheck::Models(taken.models.into_iter().collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{PENDING_LIMIT, RetiredModels, ToCheck};

    #[tokio::test]
    async fn pending_models_are_taken_once_and_wake_the_worker() {
        let retired = RetiredModels::default();
        retired.add(["acme/b", "acme/a", "acme/b"]);
        // The notification waits for the worker even though it was given before it waited.
        tokio::time::timeout(std::time::Duration::from_secs(1), retired.added())
            .await
            .unwrap();
        assert_eq!(
            retired.take(),
            ToCheck::Models(vec!["acme/a".into(), "acme/b".into()])
        );
        assert_eq!(retired.take(), ToCheck::Models(Vec::new()));
    }

    #[test]
    fn too_many_pending_become_a_whole_search() {
        let retired = RetiredModels::default();
        let many: Vec<String> = (0..=PENDING_LIMIT).map(|i| format!("acme/m-{i}")).collect();
        retired.add(many.iter().map(String::as_str));
        retired.add(["acme/late"]);
        assert_eq!(retired.take(), ToCheck::Everything);
        assert_eq!(
            retired.take(),
            ToCheck::Models(Vec::new()),
            "then back to models"
        );
    }
}
