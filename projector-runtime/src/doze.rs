//! Idle readers stop fetching. Nisshi 0.7 has no long poll (docs/BROKER.md, "Polling and idle
//! CPU"): a consumer waiting for records makes the broker re-read every partition it asked for
//! several times per fetch wait, so an idle demo kept the broker busy. A reader that got no
//! record for a while unassigns its partitions (it fetches nothing then) and assigns them again,
//! at the offsets it tracks itself, when told records arrived: the projector by its region's
//! relay (`NOTIFY relayed`), the catalogue follower by the actor states the node merges (their
//! watermarks say how far each partition goes), or by the broker's own high watermark when a
//! fetch answered after it fell asleep shows it behind. A wake-up that never comes costs at
//! most [`IdlePolicy::look_every`]: the reader then looks anyway.
//!
//! Unassigning rather than pausing: the reader resumes at the offset it holds, whatever
//! librdkafka fetched or dropped meanwhile.

use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaResult;

use crate::claims::PartitionKey;
use crate::source::{Reader, start_reading};

/// When a reader stops fetching and how often it looks anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdlePolicy {
    /// No record for this long: the reader stops fetching. Zero: it never does.
    pub after: Duration,
    /// A reader that stopped looks this often anyway (a wake-up may be lost: a listener's
    /// reconnection, records written by another tool).
    pub look_every: Duration,
}

impl IdlePolicy {
    /// Readers fetch all the time (the behaviour before idling existed).
    pub const NEVER: Self = Self {
        after: Duration::ZERO,
        look_every: Duration::ZERO,
    };
}

/// How long a reader that looked on its own (no wake-up) fetches before it stops again: a few
/// fetch waits, enough for the broker to answer what is there.
const LOOK_FOR: Duration = Duration::from_millis(150);

/// How long a reader told of records waits for them before it may sleep again. A tip can be
/// wrong (a listener's reconnection wakes the projector to be safe; a region's relay tells
/// every process of the region, each of which owns only some partitions), so the wait is
/// bounded; it outlasts any fetch a working broker answers (Nisshi's sqlite engine took about
/// a second under the soak's load).
const TOLD_PATIENCE: Duration = Duration::from_secs(5);

/// Why a reader started fetching again (the `cause` of `reader_wakeups_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WakeCause {
    /// Told that records arrived.
    Told,
    /// The broker's last high watermark is beyond its position (a fetch answered after it fell
    /// asleep, or one the other gear made).
    Behind,
    /// [`IdlePolicy::look_every`] passed without a wake-up.
    Look,
    /// Its partitions changed (claimed or handed over): it reads again to be sure.
    Assignment,
}

impl WakeCause {
    fn label(self) -> &'static str {
        match self {
            Self::Told => "told",
            Self::Behind => "behind",
            Self::Look => "look",
            Self::Assignment => "assignment",
        }
    }
}

/// One reader's idling: awake (fetching) until it has been idle for the policy's `after`, then
/// asleep (nothing assigned) until woken.
#[derive(Debug)]
pub struct Doze {
    reader: &'static str,
    policy: IdlePolicy,
    /// Awake: it may fall asleep at this instant (pushed on by every record).
    awake_until: Instant,
    /// Asleep since then.
    asleep_since: Option<Instant>,
    /// Woken because records are waiting, and none came yet: it stays awake until one does
    /// (for at most [`TOLD_PATIENCE`]). Sleeping unassigns, which makes librdkafka drop
    /// the answer of the fetch in flight; on a broker slower to answer than `after`, a reader
    /// put back to sleep and woken again each time never received a record (docs/RELIABILITY.md,
    /// "The durable broker's stall").
    expecting_since: Option<Instant>,
}

impl Doze {
    /// `reader` labels its metrics (`projector`, `catalogue`).
    pub fn new(reader: &'static str, policy: IdlePolicy) -> Self {
        metrics::gauge!("reader_asleep", "reader" => reader).set(0.0);
        Self {
            reader,
            policy,
            awake_until: Instant::now() + policy.after,
            asleep_since: None,
            expecting_since: None,
        }
    }

    pub fn is_asleep(&self) -> bool {
        self.asleep_since.is_some()
    }

    /// A record came: stay awake for the policy's `after` from now.
    pub fn stir(&mut self) {
        self.awake_until = Instant::now() + self.policy.after;
        self.expecting_since = None;
    }

    /// Awake and idle long enough to stop fetching (never, with idling off; not while records
    /// it was told of have not come yet).
    pub fn should_sleep(&self) -> bool {
        self.asleep_since.is_none()
            && !self.policy.after.is_zero()
            && Instant::now() >= self.awake_until
            && self
                .expecting_until()
                .is_none_or(|until| Instant::now() >= until)
    }

    /// Until when it waits for the records it was told of.
    fn expecting_until(&self) -> Option<Instant> {
        self.expecting_since.map(|since| since + TOLD_PATIENCE)
    }

    /// Asleep for [`IdlePolicy::look_every`]: time to look anyway.
    pub fn should_look(&self) -> bool {
        self.asleep_since
            .is_some_and(|since| since.elapsed() >= self.policy.look_every)
    }

    /// How long the owner may wait before asking [`Doze::should_sleep`] or
    /// [`Doze::should_look`] again.
    pub fn next_decision(&self) -> Duration {
        match self.asleep_since {
            Some(since) => self.policy.look_every.saturating_sub(since.elapsed()),
            None if self.policy.after.is_zero() => Duration::from_secs(3600),
            None => self
                .awake_until
                .max(self.expecting_until().unwrap_or(self.awake_until))
                .saturating_duration_since(Instant::now()),
        }
    }

    /// Stops fetching: unassigns every partition the consumer reads.
    pub fn sleep(&mut self, consumer: &Reader) -> KafkaResult<()> {
        if self.asleep_since.is_some() {
            return Ok(());
        }
        let assigned = consumer.assignment()?;
        if assigned.count() > 0 {
            consumer.incremental_unassign(&assigned)?;
        }
        self.asleep_since = Some(Instant::now());
        metrics::gauge!("reader_asleep", "reader" => self.reader).set(1.0);
        Ok(())
    }

    /// Fetches again, each partition of `starts` from its offset (the reader's own position:
    /// nothing librdkafka fetched before it slept is trusted). Awake afterwards for the
    /// policy's `after`, or briefly if it only looks.
    pub fn wake(
        &mut self,
        consumer: &Reader,
        starts: &[(PartitionKey, i64)],
        cause: WakeCause,
    ) -> KafkaResult<()> {
        if self.asleep_since.is_none() {
            return Ok(());
        }
        start_reading(consumer, starts)?;
        self.woke(cause);
        Ok(())
    }

    /// The bookkeeping of [`Doze::wake`], once the consumer reads again.
    fn woke(&mut self, cause: WakeCause) {
        self.asleep_since = None;
        self.expecting_since =
            matches!(cause, WakeCause::Told | WakeCause::Behind).then(Instant::now);
        self.awake_until = Instant::now()
            + match cause {
                WakeCause::Look => LOOK_FOR.min(self.policy.after),
                WakeCause::Told | WakeCause::Behind | WakeCause::Assignment => self.policy.after,
            };
        metrics::gauge!("reader_asleep", "reader" => self.reader).set(0.0);
        metrics::counter!("reader_wakeups_total", "reader" => self.reader, "cause" => cause.label())
            .increment(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: IdlePolicy = IdlePolicy {
        after: Duration::from_millis(1),
        look_every: Duration::from_secs(3600),
    };

    fn asleep() -> Doze {
        let mut doze = Doze::new("test", POLICY);
        doze.asleep_since = Some(Instant::now());
        doze
    }

    #[test]
    fn a_reader_told_of_records_stays_awake_until_one_comes() {
        let mut doze = asleep();
        doze.woke(WakeCause::Told);
        std::thread::sleep(Duration::from_millis(5));
        assert!(!doze.should_sleep(), "nothing came yet");
        assert!(doze.next_decision() > Duration::from_secs(4));
        doze.stir();
        std::thread::sleep(Duration::from_millis(5));
        assert!(
            doze.should_sleep(),
            "a record came and then nothing for `after`"
        );
    }

    #[test]
    fn a_tip_that_brings_nothing_is_given_up_after_the_patience() {
        let mut doze = asleep();
        doze.woke(WakeCause::Told);
        doze.expecting_since = Some(Instant::now() - TOLD_PATIENCE);
        std::thread::sleep(Duration::from_millis(5));
        assert!(doze.should_sleep());
    }

    #[test]
    fn a_reader_that_only_looks_or_was_reassigned_expects_nothing() {
        for cause in [WakeCause::Look, WakeCause::Assignment] {
            let mut doze = asleep();
            doze.woke(cause);
            std::thread::sleep(Duration::from_millis(5));
            assert!(doze.should_sleep(), "{cause:?}");
        }
    }
}
