//! The numbers of a counts answer, as the tests compare them.

use std::collections::BTreeMap;

use serde_json::Value;

/// Every operational status; one without models counts 0.
pub const STATUSES: [&str; 3] = ["operational", "degraded", "outage"];

/// Totals, statuses, providers and each region's availability.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub total: i64,
    pub active: i64,
    pub inactive: i64,
    pub retired: i64,
    /// Every status, 0 when none.
    pub by_status: BTreeMap<String, i64>,
    /// provider → (total, active); providers with nothing left are absent.
    pub by_provider: BTreeMap<String, (i64, i64)>,
    /// region → models it serves, for every region the answer lists.
    pub available: BTreeMap<String, i64>,
}

pub fn int(value: &Value, what: &str) -> Result<i64, String> {
    value
        .as_i64()
        .ok_or_else(|| format!("{what} is not an integer: {value}"))
}

/// `by_status` with every status present.
pub fn with_every_status(mut by_status: BTreeMap<String, i64>) -> BTreeMap<String, i64> {
    for status in STATUSES {
        by_status.entry(status.to_owned()).or_insert(0);
    }
    by_status
}

impl Counts {
    /// From a body of `GET /v1/counts` (or a stream's `snapshot` / `counts` event).
    pub fn from_body(body: &Value) -> Result<Self, String> {
        let by_status = body["by_status"]
            .as_object()
            .ok_or("no by_status")?
            .iter()
            .map(|(s, n)| Ok((s.clone(), int(n, s)?)))
            .collect::<Result<_, String>>()?;
        let by_provider = body["by_provider"]
            .as_object()
            .ok_or("no by_provider")?
            .iter()
            .map(|(p, c)| Ok((p.clone(), (int(&c["total"], p)?, int(&c["active"], p)?))))
            .collect::<Result<_, String>>()?;
        let available = body["regions"]
            .as_object()
            .ok_or("no regions")?
            .iter()
            .map(|(r, f)| Ok((r.clone(), int(&f["available"], r)?)))
            .collect::<Result<_, String>>()?;
        Ok(Self {
            total: int(&body["total"], "total")?,
            active: int(&body["active"], "active")?,
            inactive: int(&body["inactive"], "inactive")?,
            retired: int(&body["retired"], "retired")?,
            by_status: with_every_status(by_status),
            by_provider,
            available,
        })
    }

    /// Adds `other`'s models to these (availability included).
    pub fn add(&mut self, other: &Self) {
        self.total += other.total;
        self.active += other.active;
        self.inactive += other.inactive;
        self.retired += other.retired;
        for (status, n) in &other.by_status {
            *self.by_status.entry(status.clone()).or_default() += n;
        }
        for (provider, (total, active)) in &other.by_provider {
            let entry = self.by_provider.entry(provider.clone()).or_default();
            entry.0 += total;
            entry.1 += active;
        }
        for (region, n) in &other.available {
            *self.available.entry(region.clone()).or_default() += n;
        }
    }
}
