//! Kafka and gRPC codecs and transports, and the Rust client library. Nothing here yet:
//! the Kafka listener is the next step after the storage engine.
