//! Live push to clients: the hub that numbers and keeps recent events, who may hold a stream,
//! and the SSE route.

pub mod hub;
pub mod slots;
pub mod sse;
