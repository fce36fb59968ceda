//! Bulk work on the write side: importing NDJSON command lines (`POST /v1/imports`) and
//! exporting the catalogue as such lines (`GET /v1/exports`), so a catalogue round-trips.

pub(crate) mod export;
pub(crate) mod import;
mod line;
mod outcome;
mod waves;

pub(crate) use export::export;
pub(crate) use import::{IMPORT_BODY_LIMIT_BYTES, import};
pub use line::ImportLine;
pub use outcome::ImportOutcome;
