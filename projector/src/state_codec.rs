//! The versioned binary form of persisted and exchanged states.
//!
//! Layout: one kind byte, a big-endian `u16` format version, then the value in bincode 2
//! (serde mode, standard configuration: little-endian varints). Every map inside is a
//! `BTreeMap`, so equal values always encode to equal bytes. Decoding refuses another kind, a
//! version this build does not know, trailing bytes, and bodies over [`MAX_BODY_BYTES`].

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

/// [`crate::ActorState`]: the record on the compacted counter-state topic.
pub const ACTOR_STATE: Format = Format {
    name: "actor state",
    kind: 0xA5,
    version: 1,
};

/// [`crate::PartitionFold`] snapshot: the checkpoint stored with the consumed offset.
pub const FOLD_SNAPSHOT: Format = Format {
    name: "fold snapshot",
    kind: 0xF5,
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
    if version != format.version {
        return Err(CodecError::UnsupportedVersion {
            kind: format.name,
            found: version,
            supported: format.version,
        });
    }
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
        assert_eq!(bytes, [0xA5, 0, 1, 7]);
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
            decode::<u32>(ACTOR_STATE, &[0xA5, 0, 2, 7]),
            Err(CodecError::UnsupportedVersion {
                found: 2,
                supported: 1,
                ..
            })
        ));
        assert!(matches!(
            decode::<u32>(ACTOR_STATE, &[0xA5, 0, 1, 7, 0]),
            Err(CodecError::TrailingBytes { extra: 1, .. })
        ));
        assert!(matches!(
            decode::<u32>(ACTOR_STATE, &[0xA5, 0, 1]),
            Err(CodecError::Decode(_))
        ));
    }
}
