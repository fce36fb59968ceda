//! Metric keys: what each PN-counter counts.

use std::fmt;
use std::str::FromStr;

use domain::{OperationalStatus, ProviderId, RegionId};
use serde::{Deserialize, Serialize};

use crate::error::ParseError;

/// One counted quantity. Text form (also the serialized form, so the encoding does not depend
/// on variant order): `total`, `active`, `inactive`, `retired`, `status:<status>`,
/// `provider:<provider>:total`, `provider:<provider>:active`, `available:<region>`.
///
/// `total` counts registered, non-retired models; `status:*` counts non-retired models only;
/// `available:<R>` counts the models region R currently serves.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum MetricKey {
    Total,
    Active,
    Inactive,
    Retired,
    Status(OperationalStatus),
    ProviderTotal(ProviderId),
    ProviderActive(ProviderId),
    Available(RegionId),
}

impl fmt::Display for MetricKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetricKey::Total => f.write_str("total"),
            MetricKey::Active => f.write_str("active"),
            MetricKey::Inactive => f.write_str("inactive"),
            MetricKey::Retired => f.write_str("retired"),
            MetricKey::Status(status) => write!(f, "status:{status}"),
            MetricKey::ProviderTotal(provider) => write!(f, "provider:{provider}:total"),
            MetricKey::ProviderActive(provider) => write!(f, "provider:{provider}:active"),
            MetricKey::Available(region) => write!(f, "available:{region}"),
        }
    }
}

impl FromStr for MetricKey {
    type Err = ParseError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let bad = || ParseError::MetricKey(raw.to_owned());
        let key = match raw {
            "total" => MetricKey::Total,
            "active" => MetricKey::Active,
            "inactive" => MetricKey::Inactive,
            "retired" => MetricKey::Retired,
            _ => match raw.split_once(':').ok_or_else(bad)? {
                ("status", status) => {
                    MetricKey::Status(OperationalStatus::parse(status).map_err(|_| bad())?)
                }
                ("available", region) => {
                    MetricKey::Available(RegionId::parse(region).map_err(|_| bad())?)
                }
                ("provider", rest) => {
                    let (provider, which) = rest.split_once(':').ok_or_else(bad)?;
                    let provider = ProviderId::parse(provider).map_err(|_| bad())?;
                    match which {
                        "total" => MetricKey::ProviderTotal(provider),
                        "active" => MetricKey::ProviderActive(provider),
                        _ => return Err(bad()),
                    }
                }
                _ => return Err(bad()),
            },
        };
        Ok(key)
    }
}

impl TryFrom<String> for MetricKey {
    type Error = ParseError;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        raw.parse()
    }
}

impl From<MetricKey> for String {
    fn from(key: MetricKey) -> String {
        key.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_round_trips_through_text() {
        let keys = [
            MetricKey::Total,
            MetricKey::Active,
            MetricKey::Inactive,
            MetricKey::Retired,
            MetricKey::Status(OperationalStatus::Degraded),
            MetricKey::ProviderTotal(ProviderId::parse("openai").unwrap()),
            MetricKey::ProviderActive(ProviderId::parse("meta").unwrap()),
            MetricKey::Available(RegionId::parse("eu-west").unwrap()),
        ];
        for key in keys {
            assert_eq!(key.to_string().parse::<MetricKey>().unwrap(), key);
        }
        assert_eq!(
            MetricKey::ProviderTotal(ProviderId::parse("openai").unwrap()).to_string(),
            "provider:openai:total"
        );
    }

    #[test]
    fn rejects_unknown_keys() {
        for raw in [
            "",
            "totals",
            "status:broken",
            "provider:openai",
            "provider:openai:retired",
            "provider:Open:total",
            "available:",
            "x:y",
        ] {
            assert!(raw.parse::<MetricKey>().is_err(), "{raw}");
        }
    }
}
