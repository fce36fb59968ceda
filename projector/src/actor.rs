//! The CRDT actor: one partition of one region's events topic.

use std::fmt;
use std::str::FromStr;

use domain::RegionId;
use serde::{Deserialize, Serialize};

use crate::error::ParseError;

/// A CRDT actor: partition `partition` of region `region`'s events topic.
///
/// Exactly one consumer folds a partition at a time, so the actor's dots are only ever
/// incremented by one process. Text form: `<region>:<partition>` (e.g. `eu-west:3`), the key of
/// the actor's record on the compacted counter-state topic.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ActorId {
    pub region: RegionId,
    pub partition: i32,
}

impl ActorId {
    pub fn new(region: RegionId, partition: i32) -> Self {
        Self { region, partition }
    }
}

impl fmt::Display for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.region, self.partition)
    }
}

impl FromStr for ActorId {
    type Err = ParseError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| ParseError::ActorId {
            raw: raw.to_owned(),
            reason: why.to_owned(),
        };
        let (region, partition) = raw
            .rsplit_once(':')
            .ok_or_else(|| bad("expected <region>:<partition>"))?;
        let region = RegionId::parse(region).map_err(|e| bad(&e.to_string()))?;
        let partition: i32 = partition
            .parse()
            .map_err(|_| bad("the partition is not a number"))?;
        if partition < 0 {
            return Err(bad("the partition must not be negative"));
        }
        Ok(Self { region, partition })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_round_trips() {
        let actor = ActorId::new(RegionId::parse("eu-west").unwrap(), 3);
        assert_eq!(actor.to_string(), "eu-west:3");
        assert_eq!("eu-west:3".parse::<ActorId>().unwrap(), actor);
        assert!("eu-west".parse::<ActorId>().is_err());
        assert!("eu-west:-1".parse::<ActorId>().is_err());
        assert!("EU:1".parse::<ActorId>().is_err());
    }
}
