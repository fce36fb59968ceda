//! The stored form of a block: its events' changes (metric keys written once per block and
//! referred to by index, since a block's events touch few keys) and the counters before it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::CodecError;
use crate::metric::MetricKey;
use crate::state_codec::{self, Format};

/// One logged event of the actor, in log (position) order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockEntry {
    /// The event time in microseconds since the epoch: where the actor's prefix for an
    /// instant ends.
    pub occurred_at_micros: i64,
    /// Whether the event reached the fold (a row that does not decode does not, though its
    /// time still ends prefixes).
    pub counted: bool,
    /// The counter changes it made (none for a duplicate, a skip, or an event held).
    pub changes: Vec<(MetricKey, i32)>,
}

/// A block's events (kind byte 0xB1).
const ENTRIES: Format = Format {
    name: "history block",
    kind: 0xB1,
    version: 1,
};

/// An actor's counters before a block (kind byte 0xB2).
const COUNTERS: Format = Format {
    name: "history counters",
    kind: 0xB2,
    version: 1,
};

/// One entry as stored: (time, counted, [(key index, change)]).
type StoredEntry = (i64, bool, Vec<(u32, i32)>);

#[derive(Serialize, Deserialize)]
struct StoredEntries {
    keys: Vec<MetricKey>,
    entries: Vec<StoredEntry>,
}

pub fn encode_entries(entries: &[BlockEntry]) -> Result<Vec<u8>, CodecError> {
    let mut index: BTreeMap<&MetricKey, u32> = BTreeMap::new();
    let mut keys = Vec::new();
    let mut stored = Vec::with_capacity(entries.len());
    for entry in entries {
        let mut changes = Vec::with_capacity(entry.changes.len());
        for (key, change) in &entry.changes {
            let at = *index.entry(key).or_insert_with(|| {
                keys.push(key.clone());
                u32::try_from(keys.len() - 1).unwrap_or(u32::MAX)
            });
            changes.push((at, *change));
        }
        stored.push((entry.occurred_at_micros, entry.counted, changes));
    }
    state_codec::encode(
        ENTRIES,
        &StoredEntries {
            keys,
            entries: stored,
        },
    )
}

pub fn decode_entries(bytes: &[u8]) -> Result<Vec<BlockEntry>, CodecError> {
    let stored: StoredEntries = state_codec::decode(ENTRIES, bytes)?;
    stored
        .entries
        .into_iter()
        .map(|(occurred_at_micros, counted, changes)| {
            let changes = changes
                .into_iter()
                .map(|(at, change)| {
                    let key = usize::try_from(at)
                        .ok()
                        .and_then(|at| stored.keys.get(at))
                        .ok_or(CodecError::Inconsistent(
                            "a change names a key the block lacks",
                        ))?;
                    Ok((key.clone(), change))
                })
                .collect::<Result<_, CodecError>>()?;
            Ok(BlockEntry {
                occurred_at_micros,
                counted,
                changes,
            })
        })
        .collect()
}

pub fn encode_counters(counters: &BTreeMap<MetricKey, i64>) -> Result<Vec<u8>, CodecError> {
    state_codec::encode(COUNTERS, counters)
}

pub fn decode_counters(bytes: &[u8]) -> Result<BTreeMap<MetricKey, i64>, CodecError> {
    state_codec::decode(COUNTERS, bytes)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use domain::ProviderId;

    use super::*;

    #[test]
    fn entries_and_counters_round_trip() {
        let acme = MetricKey::ProviderTotal(ProviderId::parse("acme").unwrap());
        let entries = vec![
            BlockEntry {
                occurred_at_micros: 1_800_000_000_000_000,
                counted: true,
                changes: vec![(MetricKey::Total, 1), (acme.clone(), 1)],
            },
            BlockEntry {
                occurred_at_micros: 1_800_000_000_000_001,
                counted: false,
                changes: vec![],
            },
            BlockEntry {
                occurred_at_micros: 1_800_000_000_000_002,
                counted: true,
                changes: vec![(acme.clone(), -1)],
            },
        ];
        let bytes = encode_entries(&entries).unwrap();
        assert_eq!(decode_entries(&bytes).unwrap(), entries);
        let counters = BTreeMap::from([(MetricKey::Total, 3), (acme, 0)]);
        assert_eq!(
            decode_counters(&encode_counters(&counters).unwrap()).unwrap(),
            counters
        );
        assert!(decode_counters(&bytes).is_err(), "a block is not counters");
    }
}
