//! The audit's count comparison: the catalogue recounted from its tables, against the fold's
//! merged counts (the saved actor states and this region's checkpoints) and against history as
//! of now (the replay of the event log, what `GET /v1/counts?at=now` answers).
//!
//! The catalogue and the event log are written in one transaction by the catalogue follower, so
//! one snapshot of them always agrees on which events they hold. The fold is a different
//! consumer: when its actors stand at other offsets than the catalogue's and the numbers
//! differ, the comparison is read again (for at most [`SETTLE`]) before anything is reported.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use domain::{Lifecycle, OperationalStatus, ProviderId, RegionId};
use event_store::catalogue::{self, ModelTally};
use projector::{ActorId, ActorState, CountSnapshot, GlobalView};
use projector_runtime::{checkpoint, known_states};
use sqlx::{PgConnection, PgPool};

use crate::config::Settings;

/// Longest the comparison waits for the fold and the catalogue to reach the same offsets (the
/// node saves its merged states every 2 s).
pub const SETTLE: Duration = Duration::from_secs(10);
const RETRY: Duration = Duration::from_millis(250);

/// The side compared with the catalogue's recount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The merged counts of the fold: what `GET /v1/counts` serves.
    Fold,
    /// The replay of the event log as of now: what `GET /v1/counts?at=now` answers.
    History,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Fold => "fold",
            Side::History => "history",
        })
    }
}

/// One number that differs, named as in `GET /v1/counts` (`total`, `by_status.degraded`,
/// `by_provider.<p>.active`, `regions.<r>.available`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountDifference {
    pub number: String,
    pub catalogue: i64,
    pub side: Side,
    pub value: i64,
}

impl fmt::Display for CountDifference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let side = self.side;
        write!(
            f,
            "{}: catalogue {}, {side} {} ({side} - catalogue = {})",
            self.number,
            self.catalogue,
            self.value,
            self.value.saturating_sub(self.catalogue)
        )
    }
}

/// An actor whose fold and catalogue stood at different offsets at the last reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lag {
    pub actor: ActorId,
    pub fold_next: i64,
    pub catalogue_next: i64,
}

/// What the count comparison read and found.
#[derive(Debug)]
pub struct CountsAudit {
    /// The instant of the history replay (`?at=`).
    pub at: DateTime<Utc>,
    pub catalogue: CountSnapshot,
    pub readings: u32,
    pub lagging: Vec<Lag>,
    /// Rows that could not be read (a catalogue row, a saved state): each one a difference.
    pub unreadable: Vec<String>,
    pub differences: Vec<CountDifference>,
}

impl CountsAudit {
    /// Nothing differs and every row was read.
    pub fn agrees(&self) -> bool {
        self.differences.is_empty() && self.unreadable.is_empty()
    }
}

/// Compares until the sides agree, or they disagree at the same offsets, or [`SETTLE`] passed.
pub async fn run(settings: &Settings, pool: &PgPool) -> Result<CountsAudit, sqlx::Error> {
    let topics = topics(settings);
    let own_topic = settings.events_topic(&settings.region);
    let deadline = Instant::now() + SETTLE;
    let mut readings = 0;
    loop {
        readings += 1;
        let mut audit = read(pool, &topics, &settings.region, &own_topic).await?;
        audit.readings = readings;
        if audit.agrees() || audit.lagging.is_empty() || Instant::now() >= deadline {
            return Ok(audit);
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// Each region topic of the deployment and its region.
fn topics(settings: &Settings) -> BTreeMap<String, RegionId> {
    settings
        .all_regions()
        .into_iter()
        .map(|region| (settings.events_topic(&region), region))
        .collect()
}

/// One reading, from one snapshot of the database.
async fn read(
    pool: &PgPool,
    topics: &BTreeMap<String, RegionId>,
    own_region: &RegionId,
    own_topic: &str,
) -> Result<CountsAudit, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let mut unreadable = Vec::new();
    let catalogue = recount(&mut tx, &mut unreadable).await?;
    let (view, fold_next) = fold(&mut tx, own_region, own_topic, &mut unreadable).await?;
    let catalogue_next = catalogue_offsets(&mut tx, topics).await?;
    let at = Utc::now();
    let history = query_api::history::counts_at_points(&mut *tx, &[at], None)
        .await?
        .pop()
        .map(|point| point.counts)
        .unwrap_or_default();
    tx.rollback().await?;

    let fold = view.totals();
    let mut differences = compare(&catalogue, &fold, Side::Fold);
    differences.extend(compare(&catalogue, &history, Side::History));
    let mut lagging: Vec<Lag> = fold_next
        .keys()
        .chain(catalogue_next.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter_map(|actor| {
            let lag = Lag {
                actor: actor.clone(),
                fold_next: fold_next.get(actor).copied().unwrap_or(0),
                catalogue_next: catalogue_next.get(actor).copied().unwrap_or(0),
            };
            (lag.fold_next != lag.catalogue_next).then_some(lag)
        })
        .collect();
    lagging.sort_by(|a, b| a.actor.cmp(&b.actor));
    Ok(CountsAudit {
        at,
        catalogue,
        readings: 1,
        lagging,
        unreadable,
        differences,
    })
}

/// The counts the catalogue tables hold, by the fold's rules: `total`, `by_status` and
/// `by_provider` count non-retired models; `regions.<r>.available` the models `r` serves.
async fn recount(
    conn: &mut PgConnection,
    unreadable: &mut Vec<String>,
) -> Result<CountSnapshot, sqlx::Error> {
    let models = catalogue::tally_models(&mut *conn).await?;
    let served = catalogue::served_tally(&mut *conn).await?;
    let mut counts = CountSnapshot::default();
    for ModelTally {
        provider,
        lifecycle,
        status,
        models: n,
    } in models
    {
        let parsed = (
            ProviderId::parse(&provider),
            Lifecycle::parse(&lifecycle),
            OperationalStatus::parse(&status),
        );
        let (Ok(provider), Ok(lifecycle), Ok(status)) = parsed else {
            unreadable.push(format!(
                "catalogue_models: {n} row(s) with provider {provider:?}, lifecycle {lifecycle:?}, status {status:?}"
            ));
            continue;
        };
        if lifecycle == Lifecycle::Retired {
            counts.retired += n;
            continue;
        }
        counts.total += n;
        *counts.by_status.entry(status).or_default() += n;
        let by_provider = counts.by_provider.entry(provider).or_default();
        by_provider.total += n;
        if lifecycle == Lifecycle::Active {
            counts.active += n;
            by_provider.active += n;
        } else {
            counts.inactive += n;
        }
    }
    for (region, n) in served {
        match RegionId::parse(&region) {
            Ok(region) => counts.regions.entry(region).or_default().available += n,
            Err(_) => unreadable.push(format!(
                "catalogue_availability: {n} served row(s) of region {region:?}"
            )),
        }
    }
    Ok(counts)
}

/// The fold's merged view as the node keeps it (every saved actor state, joined with this
/// region's checkpoints, which can be newer) and each actor's next offset.
async fn fold(
    conn: &mut PgConnection,
    own_region: &RegionId,
    own_topic: &str,
    unreadable: &mut Vec<String>,
) -> Result<(GlobalView, BTreeMap<ActorId, i64>), sqlx::Error> {
    let saved = known_states::saved(&mut *conn).await?;
    let checkpoints =
        checkpoint::actor_states(&mut *conn, own_region, own_topic, &HashMap::new()).await?;
    let mut states: Vec<ActorState> = Vec::new();
    for row in saved {
        match ActorState::decode(&row.state) {
            Ok(state) => states.push(state),
            Err(error) => unreadable.push(format!(
                "known_actor_states: the state of {}:{}: {error}",
                row.region, row.partition
            )),
        }
    }
    for row in checkpoints {
        match row.state {
            Ok(state) => states.push(state),
            // The actor comparison reports it, naming the actor.
            Err(_) => tracing::debug!(
                partition = row.partition,
                "unreadable checkpoint left out of the fold"
            ),
        }
    }
    let mut view = GlobalView::new();
    for state in states {
        view.observe(state);
    }
    let next = view
        .actors()
        .map(|state| {
            let next = state.watermark().offset.map_or(0, |o| o.saturating_add(1));
            (state.actor().clone(), next)
        })
        .collect();
    Ok((view, next))
}

/// Where the catalogue follower stands in each region topic of the deployment.
async fn catalogue_offsets(
    conn: &mut PgConnection,
    topics: &BTreeMap<String, RegionId>,
) -> Result<BTreeMap<ActorId, i64>, sqlx::Error> {
    let rows = catalogue::load_offsets(&mut *conn).await?;
    Ok(rows
        .into_iter()
        .filter(|(_, next)| next.next_offset > 0)
        .filter_map(|((topic, partition), next)| {
            let region = topics.get(&topic)?;
            Some((ActorId::new(region.clone(), partition), next.next_offset))
        })
        .collect())
}

/// Every number of `other` that differs from the catalogue's.
pub fn compare(
    catalogue: &CountSnapshot,
    other: &CountSnapshot,
    side: Side,
) -> Vec<CountDifference> {
    let (ours, theirs) = (numbers(catalogue), numbers(other));
    let names: std::collections::BTreeSet<&String> = ours.keys().chain(theirs.keys()).collect();
    names
        .into_iter()
        .filter_map(|name| {
            let catalogue = ours.get(name).copied().unwrap_or(0);
            let value = theirs.get(name).copied().unwrap_or(0);
            (catalogue != value).then(|| CountDifference {
                number: name.clone(),
                catalogue,
                side,
                value,
            })
        })
        .collect()
}

/// The snapshot's numbers by their name in `GET /v1/counts`, in a stable order.
fn numbers(counts: &CountSnapshot) -> BTreeMap<String, i64> {
    let mut numbers = BTreeMap::from([
        ("total".to_owned(), counts.total),
        ("active".to_owned(), counts.active),
        ("inactive".to_owned(), counts.inactive),
        ("retired".to_owned(), counts.retired),
    ]);
    for (status, n) in &counts.by_status {
        numbers.insert(format!("by_status.{status}"), *n);
    }
    for (provider, c) in &counts.by_provider {
        numbers.insert(format!("by_provider.{provider}.total"), c.total);
        numbers.insert(format!("by_provider.{provider}.active"), c.active);
    }
    for (region, c) in &counts.regions {
        numbers.insert(format!("regions.{region}.available"), c.available);
    }
    numbers
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use projector::ProviderCounts;

    use super::*;

    #[test]
    fn names_each_number_that_differs_with_both_values() {
        let mut catalogue = CountSnapshot {
            total: 1,
            ..CountSnapshot::default()
        };
        catalogue.by_provider.insert(
            ProviderId::parse("twins").unwrap(),
            ProviderCounts {
                total: 1,
                active: 0,
            },
        );
        let mut fold = catalogue.clone();
        assert!(compare(&catalogue, &fold, Side::Fold).is_empty());
        fold.total = 2;
        fold.by_provider.insert(
            ProviderId::parse("twins").unwrap(),
            ProviderCounts {
                total: 2,
                active: 0,
            },
        );
        fold.regions
            .insert(RegionId::parse("eu-west").unwrap(), Default::default());
        let lines: Vec<String> = compare(&catalogue, &fold, Side::Fold)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            lines,
            [
                "by_provider.twins.total: catalogue 1, fold 2 (fold - catalogue = 1)",
                "total: catalogue 1, fold 2 (fold - catalogue = 1)",
            ]
        );
    }
}
