//! Consistency tokens: the position a write returned, which a read may wait for.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::ids::RegionId;
use crate::stream::StreamId;

/// Names one recorded event so a read can wait until the projection includes it.
///
/// Text form: `<region>:<position>:<sequence>:<stream>`; the stream goes last because it
/// contains `:` itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ConsistencyToken {
    pub region: RegionId,
    pub position: u64,
    pub sequence: u64,
    pub stream: StreamId,
}

impl fmt::Display for ConsistencyToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}:{}",
            self.region, self.position, self.sequence, self.stream
        )
    }
}

impl FromStr for ConsistencyToken {
    type Err = ValidationError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let bad = || ValidationError::new("consistency_token", "is not a token this API issued");
        let mut parts = raw.splitn(4, ':');
        let mut next = || parts.next().ok_or_else(bad);
        let region = RegionId::parse(next()?).map_err(|_| bad())?;
        let position = next()?.parse().map_err(|_| bad())?;
        let sequence = next()?.parse().map_err(|_| bad())?;
        let stream = StreamId::parse(next()?).map_err(|_| bad())?;
        Ok(Self {
            region,
            position,
            sequence,
            stream,
        })
    }
}

impl TryFrom<String> for ConsistencyToken {
    type Error = ValidationError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        raw.parse()
    }
}

impl From<ConsistencyToken> for String {
    fn from(token: ConsistencyToken) -> String {
        token.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ModelId;

    #[test]
    fn token_round_trips_with_colons_in_the_stream() {
        let token = ConsistencyToken {
            region: RegionId::parse("eu-west").unwrap(),
            position: 42,
            sequence: 3,
            stream: StreamId::Availability {
                region: RegionId::parse("us-east").unwrap(),
                model: ModelId::parse("openai/gpt-5").unwrap(),
            },
        };
        let text = token.to_string();
        assert_eq!(text, "eu-west:42:3:availability:us-east:openai/gpt-5");
        assert_eq!(text.parse::<ConsistencyToken>().unwrap(), token);
        assert!("eu-west:x:3:model:a".parse::<ConsistencyToken>().is_err());
        assert!("garbage".parse::<ConsistencyToken>().is_err());
    }
}
