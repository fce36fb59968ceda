//! The catalogue: the read model of every region's models (`catalogue_models`), which regions
//! serve them (`catalogue_availability`) and how far the follower has read each topic
//! (`catalogue_offsets`). This module is the only code that reads or writes those tables.

mod apply;
mod apply_batch;
mod facts;
mod offsets;
mod rows;
mod tally;

pub use apply::apply_to_catalogue;
pub use apply_batch::apply_batch_to_catalogue;
pub use facts::{
    home_region, lifecycle, names, served_but_retired, served_but_retired_among, stream_version,
};
pub use offsets::{TopicOffsets, load_offsets, save_offsets};
pub use rows::{AvailabilityChange, CatalogueRow, ModelFilter, availability_of, get, list};
pub use tally::{ModelTally, served_tally, tally_models};
