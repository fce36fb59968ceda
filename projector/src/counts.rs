//! Plain counts read out of merged counters: what the query API serves.

use std::collections::BTreeMap;

use domain::{OperationalStatus, ProviderId, RegionId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::counters::Counters;
use crate::metric::MetricKey;

/// One provider's models: non-retired and active.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProviderCounts {
    pub total: i64,
    pub active: i64,
}

/// One region: the models it currently serves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RegionCounts {
    pub available: i64,
}

/// The count fields every answer about counts shares (live, as of an instant, replayed):
/// flattened into each, next to its own region and freshness fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Totals {
    pub total: i64,
    pub active: i64,
    pub inactive: i64,
    pub retired: i64,
    /// Non-retired models per operational status.
    #[schema(value_type = BTreeMap<OperationalStatus, i64>)]
    pub by_status: BTreeMap<OperationalStatus, i64>,
    #[schema(value_type = BTreeMap<String, ProviderCounts>)]
    pub by_provider: BTreeMap<ProviderId, ProviderCounts>,
}

/// Counts summed over a set of actors. `by_status` always lists every status; providers and
/// regions whose counts are all zero are left out, so the snapshot depends on the current
/// state only, not on history. Never negative for states produced by a `PartitionFold`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountSnapshot {
    pub total: i64,
    pub active: i64,
    pub inactive: i64,
    pub retired: i64,
    pub by_status: BTreeMap<OperationalStatus, i64>,
    pub by_provider: BTreeMap<ProviderId, ProviderCounts>,
    pub regions: BTreeMap<RegionId, RegionCounts>,
}

impl Default for CountSnapshot {
    fn default() -> Self {
        Self {
            total: 0,
            active: 0,
            inactive: 0,
            retired: 0,
            by_status: OperationalStatus::ALL.into_iter().map(|s| (s, 0)).collect(),
            by_provider: BTreeMap::new(),
            regions: BTreeMap::new(),
        }
    }
}

impl CountSnapshot {
    /// The shared count fields, and the per-region counts apart.
    pub fn split(self) -> (Totals, BTreeMap<RegionId, RegionCounts>) {
        let totals = Totals {
            total: self.total,
            active: self.active,
            inactive: self.inactive,
            retired: self.retired,
            by_status: self.by_status,
            by_provider: self.by_provider,
        };
        (totals, self.regions)
    }

    /// Sums the counters of several actors.
    pub fn sum<'a>(counters: impl IntoIterator<Item = &'a Counters>) -> Self {
        Self::from_values(counters.into_iter().flat_map(Counters::iter))
    }

    /// Sums counter values (a key may come several times, once per actor).
    pub fn from_values<'a>(values: impl IntoIterator<Item = (&'a MetricKey, i64)>) -> Self {
        let mut snapshot = Self::default();
        for (key, value) in values {
            snapshot.add(key, value);
        }
        snapshot
            .by_provider
            .retain(|_, counts| *counts != ProviderCounts::default());
        snapshot
            .regions
            .retain(|_, counts| *counts != RegionCounts::default());
        snapshot
    }

    fn add(&mut self, key: &MetricKey, value: i64) {
        let slot = match key {
            MetricKey::Total => &mut self.total,
            MetricKey::Active => &mut self.active,
            MetricKey::Inactive => &mut self.inactive,
            MetricKey::Retired => &mut self.retired,
            MetricKey::Status(status) => self.by_status.entry(*status).or_default(),
            MetricKey::ProviderTotal(provider) => {
                &mut self.by_provider.entry(provider.clone()).or_default().total
            }
            MetricKey::ProviderActive(provider) => {
                &mut self.by_provider.entry(provider.clone()).or_default().active
            }
            MetricKey::Available(region) => {
                &mut self.regions.entry(region.clone()).or_default().available
            }
        };
        *slot = slot.saturating_add(value);
    }
}
