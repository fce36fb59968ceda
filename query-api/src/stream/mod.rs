//! Live push to clients: the hub that numbers and keeps recent events, and the SSE route.

pub mod hub;
pub mod sse;
