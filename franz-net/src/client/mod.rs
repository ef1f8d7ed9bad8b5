//! The Rust client library: a producer, a consumer and an admin client that speak the
//! Kafka protocol to Franz or any Kafka-compatible broker.
//!
//! Every client starts from [`ClientConfig`]'s bootstrap list, reads Metadata to find
//! partition leaders, and refreshes it after NOT_LEADER_OR_FOLLOWER, unknown partitions
//! and connection errors, so that the same code works against a cluster. It runs on
//! madsim-tokio, so simulation tests drive it too.

pub mod admin;
pub mod assignment;
pub mod cluster;
pub mod connection;
pub mod consumer;
pub mod error;
pub mod producer;
pub mod records;

pub use cluster::{ClientConfig, Cluster, PartitionInfo, TopicInfo};
pub use error::{ClientError, Result};
