//! Page cursors: opaque to clients (hex of the last item's key), parsed back by each listing.

use crate::problem::QueryError;

/// Longest key a cursor carries.
const MAX_KEY: usize = 256;

/// `key` as a cursor.
pub fn encode(key: &str) -> String {
    key.bytes().map(|b| format!("{b:02x}")).collect()
}

/// The key a cursor carries; 422 (`cursor`) for anything this API did not issue.
pub fn decode(raw: &str) -> Result<String, QueryError> {
    let bad = || QueryError::invalid("cursor", "is not a cursor this API issued");
    if raw.is_empty() || !raw.len().is_multiple_of(2) || raw.len() > 2 * MAX_KEY {
        return Err(bad());
    }
    let bytes = (0..raw.len())
        .step_by(2)
        .map(|i| {
            raw.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(bad)?;
    String::from_utf8(bytes).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_garbage_is_refused() {
        let cursor = encode("openai/gpt-5");
        assert_eq!(decode(&cursor).unwrap(), "openai/gpt-5");
        for bad in ["", "0", "zz", "ff", &"41".repeat(300)] {
            assert!(decode(bad).is_err(), "{bad:?} accepted");
        }
    }
}
