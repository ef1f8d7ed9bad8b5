//! Franz's storage engine and broker state machines. No sockets: the network lives in
//! franz-net and franz-server.
//!
//! Files go through [`disk::Disk`] and time through [`clock::Clock`], so the same code runs
//! on real files and inside the deterministic simulation.

pub mod batch;
pub mod clock;
pub mod disk;
pub mod group;
pub mod log;
pub mod metadata;
pub mod producer;

pub use clock::{Clock, ManualClock, SystemClock};
pub use disk::{Disk, RealDisk, SimDisk, SimDiskFaults};
pub use log::{
    AppendInfo, FlushPolicy, Log, LogConfig, LogError, PendingAppend, ReadInfo, RetentionOutcome, TimestampOffset,
};
