//! Kafka and gRPC codecs and transports, and the Rust client library.
//!
//! The Kafka codec here is sans-io apart from [`frame`], which reads and writes
//! length-prefixed frames on any async stream. It handles the wire format and nothing of
//! what a broker does with a request.

pub mod alloc;
pub mod client;
pub mod codec;
pub mod fetch_encoding;
pub mod frame;
pub mod grpc;
pub mod partitioner;
