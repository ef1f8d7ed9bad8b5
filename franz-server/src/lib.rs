//! The Franz broker: its state, the Kafka listener and the wiring that starts a node.
//!
//! The binary in `main.rs` and the simulation tests in sim-tests start a node through
//! [`server::start`], so the simulation runs this same code on madsim's network, clock
//! and the simulated disk.

pub mod broker;
pub mod config;
pub mod groups;
pub mod grpc;
pub mod kafka;
pub mod server;
pub mod shutdown;
pub mod topic_config;

pub use config::ServerConfig;
pub use server::{start, Node};
