//! The node's event log (`event_log`): every event of every region, as the catalogue follower
//! reads it, for history queries that replay events (`GET /v1/counts?at=`, series, a model's
//! history) and the changes feed (`GET /v1/changes`). This module is the only code that
//! reads or writes the table.

mod changes;
mod index_rows;
mod insert;
mod model_page;
mod replay;

pub use changes::{ChangeRow, changes_after, latest_changes};
pub use index_rows::{IndexRow, actor_rows, actors, arrived_out_of_order, max_arrival, rows_after};
pub use insert::{LoggedEvent, insert};
pub use model_page::{ModelPageRow, PageKey, model_page};
pub use replay::{ReplayRow, replay_rows};
