//! Stream identities: a model's stream, or a model's availability stream in one region.

use std::fmt;

use crate::error::ValidationError;
use crate::ids::{ModelId, RegionId};

/// An event stream: the unit of ordering and optimistic concurrency.
///
/// A model's lifecycle lives in `model:<id>` (written by its home region); whether region R
/// serves it lives in `availability:<R>:<id>` (written by R). `:` is outside every slug
/// alphabet, so the textual form parses back unambiguously.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StreamId {
    Model(ModelId),
    Availability { region: RegionId, model: ModelId },
}

impl StreamId {
    pub fn model_id(&self) -> &ModelId {
        match self {
            StreamId::Model(model) | StreamId::Availability { model, .. } => model,
        }
    }

    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let bad = || ValidationError::new("stream", format!("{raw:?} is not a stream id"));
        match raw.split_once(':') {
            Some(("model", id)) => Ok(StreamId::Model(ModelId::parse(id)?)),
            Some(("availability", rest)) => {
                let (region, id) = rest.split_once(':').ok_or_else(bad)?;
                Ok(StreamId::Availability {
                    region: RegionId::parse(region)?,
                    model: ModelId::parse(id)?,
                })
            }
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamId::Model(id) => write!(f, "model:{id}"),
            StreamId::Availability { region, model } => write!(f, "availability:{region}:{model}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_round_trip() {
        let model = ModelId::parse("openai/gpt-5").unwrap();
        for stream in [
            StreamId::Model(model.clone()),
            StreamId::Availability {
                region: RegionId::parse("eu-west").unwrap(),
                model,
            },
        ] {
            assert_eq!(StreamId::parse(&stream.to_string()).unwrap(), stream);
        }
        assert!(StreamId::parse("other:x").is_err());
        assert!(StreamId::parse("availability:eu").is_err());
    }
}
