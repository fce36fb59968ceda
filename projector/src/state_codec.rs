//! The versioned binary form of persisted and exchanged states.
//!
//! Layout: one kind byte, a big-endian `u16` format version, then the value in bincode 2
//! (serde mode, standard configuration: little-endian varints). Every map inside is a
//! `BTreeMap`, so equal values always encode to equal bytes. Decoding refuses another kind, a
//! version this build does not know, trailing bytes, and bodies over [`MAX_BODY_BYTES`]. A format
//! whose older versions are still read decodes them with [`decode_versioned`].

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::CodecError;

/// Kind byte + version.
pub const HEADER_LEN: usize = 3;

/// The largest body decoding will allocate for.
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// One binary format: what it holds and the version this build writes (and the only one it
/// reads so far).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Format {
    pub name: &'static str,
    pub kind: u8,
    pub version: u16,
}

/// [`crate::ActorState`]: the record on the compacted counter-state topic. Version 2 added the
/// exchange epoch; version 1 is still read, as epoch 0.
pub const ACTOR_STATE: Format = Format {
    name: "actor state",
    kind: 0xA5,
    version: 2,
};

/// The oldest [`ACTOR_STATE`] version this build reads.
pub const ACTOR_STATE_OLDEST: u16 = 1;

/// [`crate::EpochMark`]: the control record `region-node reset-states` publishes on the
/// counter-state topic.
pub const EPOCH_MARK: Format = Format {
    name: "exchange epoch mark",
    kind: 0xE7,
    version: 1,
};

/// [`crate::PartitionFold`] snapshot: the checkpoint stored with the consumed offset.
/// Version 2 added the events held for a missing predecessor.
pub const FOLD_SNAPSHOT: Format = Format {
    name: "fold snapshot",
    kind: 0xF5,
    version: 2,
};

/// The fold snapshot as version 1 wrote it (still read: checkpoints outlive upgrades).
pub const FOLD_SNAPSHOT_V1: Format = Format {
    version: 1,
    ..FOLD_SNAPSHOT
};

/// [`crate::FoldHead`]: a checkpoint's head, stored with the consumed offset; the facts of each
/// stream are stored apart ([`MODEL_FACTS`], [`AVAILABILITY_FACTS`]), so a commit's cost follows
/// what changed rather than the catalogue's size. Replaces [`FOLD_SNAPSHOT`] in checkpoints.
pub const FOLD_HEAD: Format = Format {
    name: "fold checkpoint head",
    kind: 0xF4,
    version: 1,
};

/// [`crate::ModelFacts`] of one lifecycle stream, a row of a checkpoint.
pub const MODEL_FACTS: Format = Format {
    name: "model facts",
    kind: 0xF3,
    version: 1,
};

/// [`crate::AvailabilityFacts`] of one availability stream, a row of a checkpoint.
pub const AVAILABILITY_FACTS: Format = Format {
    name: "availability facts",
    kind: 0xF2,
    version: 1,
};

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_BODY_BYTES>()
}

pub(crate) fn encode<T: Serialize>(format: Format, value: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(256);
    out.push(format.kind);
    out.extend_from_slice(&format.version.to_be_bytes());
    bincode::serde::encode_into_std_write(value, &mut out, config())?;
    Ok(out)
}

pub(crate) fn decode<T: DeserializeOwned>(format: Format, bytes: &[u8]) -> Result<T, CodecError> {
    let (_, body) = decode_versioned(format, format.version, bytes)?;
    decode_body(format, body)
}

/// Checks the header, accepting any version from `oldest` to `format.version`; answers the
/// version found and the body, for the caller to decode with [`decode_body`] in that version's
/// shape.
pub(crate) fn decode_versioned(
    format: Format,
    oldest: u16,
    bytes: &[u8],
) -> Result<(u16, &[u8]), CodecError> {
    let Some((&[kind, high, low], body)) = bytes.split_first_chunk::<HEADER_LEN>() else {
        return Err(CodecError::Truncated {
            expected: format.name,
            len: bytes.len(),
        });
    };
    if kind != format.kind {
        return Err(CodecError::WrongKind {
            expected: format.name,
            expected_byte: format.kind,
            found: kind,
        });
    }
    let version = u16::from_be_bytes([high, low]);
    if !(oldest..=format.version).contains(&version) {
        return Err(CodecError::UnsupportedVersion {
            kind: format.name,
            found: version,
            supported: format.version,
        });
    }
    Ok((version, body))
}

/// Decodes a body whose header [`decode_versioned`] checked; refuses trailing bytes.
pub(crate) fn decode_body<T: DeserializeOwned>(
    format: Format,
    body: &[u8],
) -> Result<T, CodecError> {
    let (value, read) = bincode::serde::decode_from_slice(body, config())?;
    let extra = body.len().saturating_sub(read);
    if extra > 0 {
        return Err(CodecError::TrailingBytes {
            kind: format.name,
            extra,
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_then_body() {
        let bytes = encode(ACTOR_STATE, &7u32).unwrap();
        assert_eq!(bytes, [0xA5, 0, 2, 7]);
        assert_eq!(decode::<u32>(ACTOR_STATE, &bytes).unwrap(), 7);
    }

    #[test]
    fn refuses_what_it_does_not_know() {
        assert!(matches!(
            decode::<u32>(ACTOR_STATE, &[0xA5, 0]),
            Err(CodecError::Truncated { len: 2, .. })
        ));
        assert!(matches!(
            decode::<u32>(FOLD_SNAPSHOT, &[0xA5, 0, 1, 7]),
            Err(CodecError::WrongKind { found: 0xA5, .. })
        ));
        assert!(matches!(
            decode::<u32>(ACTOR_STATE, &[0xA5, 0, 3, 7]),
            Err(CodecError::UnsupportedVersion {
                found: 3,
                supported: 2,
                ..
            })
        ));
        assert!(matches!(
            decode::<u32>(ACTOR_STATE, &[0xA5, 0, 1, 7]),
            Err(CodecError::UnsupportedVersion { found: 1, .. })
        ));
        assert!(matches!(
            decode::<u32>(ACTOR_STATE, &[0xA5, 0, 2, 7, 0]),
            Err(CodecError::TrailingBytes { extra: 1, .. })
        ));
        assert!(matches!(
            decode::<u32>(ACTOR_STATE, &[0xA5, 0, 2]),
            Err(CodecError::Decode(_))
        ));
    }

    #[test]
    fn older_versions_are_read_only_when_asked_for() {
        let (version, body) =
            decode_versioned(ACTOR_STATE, ACTOR_STATE_OLDEST, &[0xA5, 0, 1, 7]).unwrap();
        assert_eq!((version, body), (1, &[7u8][..]));
        assert_eq!(decode_body::<u32>(ACTOR_STATE, body).unwrap(), 7);
        assert!(matches!(
            decode_versioned(ACTOR_STATE, ACTOR_STATE_OLDEST, &[0xA5, 0, 0, 7]),
            Err(CodecError::UnsupportedVersion { found: 0, .. })
        ));
    }
}
