//! Keeps the node's long-running tasks running. A task that returns an error, panics or ends
//! before the node stops is logged at error with its error chain, counted
//! (`task_failures_total{task}`), reported to `/readyz` (the node is unready with the reason)
//! and restarted in-process with exponential backoff; the reason is cleared once the restarted
//! task is healthy again. A stop request ends every task gracefully and restarts none.

use std::any::Any;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use query_api::TaskHealth;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{error, info};

/// How often a failed task's health is looked at while its restart runs.
const HEALTH_POLL: Duration = Duration::from_millis(100);

/// Delays between restarts: `first`, doubling up to `max`; back to `first` after a run that
/// was healthy (lasted `healthy_run`, or recovered).
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
    pub healthy_run: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            first: Duration::from_millis(200),
            max: Duration::from_secs(30),
            healthy_run: Duration::from_secs(10),
        }
    }
}

/// When a restarted task counts as healthy again (and the node as ready, as far as it goes).
#[derive(Clone)]
pub enum Recovery {
    /// Once it has run this long without failing.
    After(Duration),
    /// Once this answers true (the projector: caught up with its partitions again).
    When(Arc<dyn Fn() -> bool + Send + Sync>),
}

impl Recovery {
    fn is_healthy(&self, running_for: Duration) -> bool {
        match self {
            Self::After(after) => running_for >= *after,
            Self::When(check) => check(),
        }
    }
}

impl std::fmt::Debug for Recovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::After(after) => f.debug_tuple("After").field(after).finish(),
            Self::When(_) => f.write_str("When(..)"),
        }
    }
}

/// The node's stop request, as a task sees it.
#[derive(Debug, Clone)]
pub struct Stopping(watch::Receiver<bool>);

impl Stopping {
    /// Resolves once the node is stopping (or whoever could stop it is gone).
    pub async fn wait(mut self) {
        let _ = self.0.wait_for(|stopping| *stopping).await;
    }

    pub fn is_stopping(&self) -> bool {
        *self.0.borrow()
    }
}

/// Runs tasks under supervision; cheap to clone, one per node.
#[derive(Debug, Clone)]
pub struct Supervisor {
    health: TaskHealth,
    stopping: Stopping,
    backoff: Backoff,
}

impl Supervisor {
    /// `stop` turning true stops every supervised task; failures are reported to `health`.
    pub fn new(health: TaskHealth, stop: watch::Receiver<bool>) -> Self {
        Self {
            health,
            stopping: Stopping(stop),
            backoff: Backoff::default(),
        }
    }

    #[must_use]
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// How long a task without a health check must run to count as healthy again.
    pub fn healthy_run(&self) -> Duration {
        self.backoff.healthy_run
    }

    pub fn stopping(&self) -> Stopping {
        self.stopping.clone()
    }

    /// Runs the task named `task` until the node stops: `start` makes one run of it, given the
    /// stop request, and is called again for every restart.
    pub async fn run<F, Fut>(&self, task: &'static str, recovery: Recovery, mut start: F)
    where
        F: FnMut(Stopping) -> Fut,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let mut restarts = Restarts::new(self.backoff);
        loop {
            if self.stopping.is_stopping() {
                return;
            }
            let started = Instant::now();
            // Its own tokio task, so a panic ends this run only.
            let mut attempt = tokio::spawn(start(self.stopping()));
            let mut recovered = false;
            let ended = loop {
                tokio::select! {
                    ended = &mut attempt => break ended,
                    () = tokio::time::sleep(HEALTH_POLL), if self.health.is_failing(task) => {
                        if recovery.is_healthy(started.elapsed()) && self.health.recover(task) {
                            info!(task, "task healthy again after its restart");
                            recovered = true;
                        }
                    }
                }
            };
            let failure = match ended {
                Ok(Ok(())) if self.stopping.is_stopping() => {
                    info!(task, "stopped");
                    return;
                }
                Ok(Ok(())) => anyhow::anyhow!("ended while the node was running"),
                Ok(Err(error)) => error,
                Err(join) if join.is_panic() => {
                    anyhow::anyhow!("panicked: {}", panic_message(join.into_panic()))
                }
                Err(join) => anyhow::anyhow!("aborted: {join}"),
            };
            let delay = restarts.failed(started.elapsed(), recovered);
            let failures = restarts.failures;
            let reason = error_chain(&failure);
            metrics::counter!("task_failures_total", "task" => task).increment(1);
            if self.stopping.is_stopping() {
                error!(task, error = %reason, "failed while stopping");
                return;
            }
            error!(task, error = %reason, failures, retry_in_ms = delay.as_millis(),
                   "task failed; restarting");
            self.health.fail(
                task,
                format!("{reason} [failed {failures} time(s) in a row; restarting with backoff]"),
            );
            tokio::select! {
                () = self.stopping().wait() => return,
                () = tokio::time::sleep(delay) => {}
            }
        }
    }
}

/// The restart bookkeeping of one task.
#[derive(Debug)]
struct Restarts {
    backoff: Backoff,
    next_delay: Duration,
    /// Failures since the last healthy run.
    failures: u32,
}

impl Restarts {
    fn new(backoff: Backoff) -> Self {
        Self {
            backoff,
            next_delay: backoff.first,
            failures: 0,
        }
    }

    /// A run failed after `ran_for` (`recovered`: it had been healthy again meanwhile):
    /// answers how long to wait before the next run.
    fn failed(&mut self, ran_for: Duration, recovered: bool) -> Duration {
        if recovered || ran_for >= self.backoff.healthy_run {
            self.next_delay = self.backoff.first;
            self.failures = 0;
        }
        self.failures = self.failures.saturating_add(1);
        let delay = self.next_delay;
        self.next_delay = delay.saturating_mul(2).min(self.backoff.max);
        delay
    }
}

/// Every message of the error's chain, `: `-separated, leaving out a cause whose text its
/// wrapper already spelled out (`#[error("kafka: {0}")]` with `#[from]`).
pub fn error_chain(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let cause = cause.to_string();
        if text.contains(&cause) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&cause);
    }
    text
}

fn panic_message(payload: Box<dyn Any + Send>) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "(no message)".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    use super::*;

    const TASK: &str = "projector";
    /// Bounds a hang only.
    const DEADLINE: Duration = Duration::from_secs(10);

    #[test]
    fn backoff_doubles_up_to_its_cap_and_starts_over_after_a_healthy_run() {
        let mut restarts = Restarts::new(Backoff::default());
        let quick = Duration::from_millis(5);
        let delays: Vec<u128> = (0..10)
            .map(|_| restarts.failed(quick, false).as_millis())
            .collect();
        assert_eq!(
            delays,
            [200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000]
        );
        assert_eq!(restarts.failures, 10);
        // A run as long as `healthy_run`, or one that recovered, starts the series over.
        assert_eq!(
            restarts.failed(Duration::from_secs(10), false).as_millis(),
            200
        );
        assert_eq!(restarts.failures, 1);
        assert_eq!(restarts.failed(quick, false).as_millis(), 400);
        assert_eq!(restarts.failed(quick, true).as_millis(), 200);
        assert_eq!(restarts.failures, 1);
    }

    fn fast() -> (Supervisor, TaskHealth, watch::Sender<bool>) {
        let health = TaskHealth::new();
        let (stop, stopped) = watch::channel(false);
        let backoff = Backoff {
            first: Duration::from_millis(1),
            max: Duration::from_millis(4),
            healthy_run: Duration::from_secs(3600),
        };
        let supervisor = Supervisor::new(health.clone(), stopped).with_backoff(backoff);
        (supervisor, health, stop)
    }

    async fn until(what: &str, mut check: impl FnMut() -> bool) {
        tokio::time::timeout(DEADLINE, async {
            while !check() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for: {what}"));
    }

    #[tokio::test]
    async fn a_failed_task_is_restarted_and_reported_until_its_restart_is_healthy() {
        let (supervisor, health, stop) = fast();
        let runs = Arc::new(AtomicU32::new(0));
        let caught_up = Arc::new(AtomicBool::new(false));
        let running = tokio::spawn({
            let (runs, caught_up) = (runs.clone(), caught_up.clone());
            let recovery = Recovery::When(Arc::new(move || caught_up.load(Ordering::SeqCst)));
            async move {
                supervisor
                    .run(TASK, recovery, move |stopping| {
                        let run = runs.fetch_add(1, Ordering::SeqCst);
                        async move {
                            // Three runs fail on the same record; the fourth gets past it.
                            if run < 3 {
                                let cause = anyhow::anyhow!("schema version 99 is newer");
                                return Err(cause.context("undecodable record at offset 17"));
                            }
                            stopping.wait().await;
                            Ok(())
                        }
                    })
                    .await;
            }
        });
        until("the fourth run", || runs.load(Ordering::SeqCst) == 4).await;
        // Restarted, not healthy yet: still unready, with the last failure's whole chain.
        assert_eq!(
            health.reasons(),
            [
                "projector: undecodable record at offset 17: schema version 99 is newer \
              [failed 3 time(s) in a row; restarting with backoff]"
            ]
        );
        caught_up.store(true, Ordering::SeqCst);
        until("ready again", || health.reasons().is_empty()).await;

        stop.send(true).unwrap();
        tokio::time::timeout(DEADLINE, running)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            runs.load(Ordering::SeqCst),
            4,
            "nothing restarted after the stop"
        );
    }

    #[tokio::test]
    async fn a_task_without_a_check_is_healthy_after_running_long_enough() {
        let (supervisor, health, stop) = fast();
        let runs = Arc::new(AtomicU32::new(0));
        let counted = runs.clone();
        let running = tokio::spawn(async move {
            let recovery = Recovery::After(Duration::from_millis(300));
            supervisor
                .run(TASK, recovery, move |stopping| {
                    let run = counted.fetch_add(1, Ordering::SeqCst);
                    async move {
                        anyhow::ensure!(run > 0, "database unavailable at start");
                        stopping.wait().await;
                        Ok(())
                    }
                })
                .await;
        });
        until("the restart", || runs.load(Ordering::SeqCst) == 2).await;
        assert_eq!(health.reasons().len(), 1, "{:?}", health.reasons());
        until("ready again", || health.reasons().is_empty()).await;
        stop.send(true).unwrap();
        tokio::time::timeout(DEADLINE, running)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn a_panic_or_an_early_end_is_a_failure() {
        let (supervisor, health, stop) = fast();
        let runs = Arc::new(AtomicU32::new(0));
        // The reasons listed when each run starts.
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (counted, observed, reasons) = (runs.clone(), seen.clone(), health.clone());
        let running = tokio::spawn(async move {
            let recovery = Recovery::After(Duration::from_secs(3600));
            supervisor
                .run(TASK, recovery, move |stopping| {
                    let run = counted.fetch_add(1, Ordering::SeqCst);
                    observed.lock().unwrap().push(reasons.reasons());
                    async move {
                        assert!(run > 0, "corrupt checkpoint");
                        if run > 1 {
                            stopping.wait().await;
                        }
                        Ok(())
                    }
                })
                .await;
        });
        until("the third run", || runs.load(Ordering::SeqCst) == 3).await;
        let seen = seen.lock().unwrap().clone();
        assert!(seen[0].is_empty(), "{seen:?}");
        assert!(
            seen[1][0].contains("panicked: corrupt checkpoint"),
            "{seen:?}"
        );
        assert!(
            seen[2][0].contains("ended while the node was running"),
            "{seen:?}"
        );
        stop.send(true).unwrap();
        tokio::time::timeout(DEADLINE, running)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn a_stop_cuts_the_backoff_short_and_restarts_nothing() {
        let (supervisor, health, stop) = fast();
        let supervisor = supervisor.with_backoff(Backoff {
            first: Duration::from_secs(3600),
            max: Duration::from_secs(3600),
            healthy_run: Duration::from_secs(3600),
        });
        let runs = Arc::new(AtomicU32::new(0));
        let counted = runs.clone();
        let running = tokio::spawn(async move {
            let recovery = Recovery::After(Duration::from_secs(3600));
            supervisor
                .run(TASK, recovery, move |_| {
                    counted.fetch_add(1, Ordering::SeqCst);
                    async { anyhow::bail!("broker unreachable") }
                })
                .await;
        });
        until("the failure reported", || !health.reasons().is_empty()).await;
        stop.send(true).unwrap();
        tokio::time::timeout(DEADLINE, running)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn the_chain_leaves_out_causes_already_spelled_out() {
        let inner = anyhow::anyhow!("connection refused");
        let error = inner
            .context("kafka: connection refused")
            .context("projector");
        assert_eq!(error_chain(&error), "projector: kafka: connection refused");
    }
}
