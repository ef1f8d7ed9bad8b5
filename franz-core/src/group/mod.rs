//! Consumer groups. [`offsets`] stores committed offsets and defines their record format
//! in `__consumer_offsets`.

pub mod offsets;
