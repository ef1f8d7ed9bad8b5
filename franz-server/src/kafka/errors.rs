//! The one place where broker errors become Kafka error codes.

use franz_core::batch::BatchError;
use franz_core::producer::SequenceError;
use franz_core::LogError;
use kafka_protocol::error::ResponseError;

use crate::broker::{AppendError, TopicError};

/// Maps a storage error to the code a client expects.
pub fn log_error_code(error: &LogError) -> ResponseError {
    match error {
        LogError::InvalidBatch { source, .. } => match source {
            BatchError::CrcMismatch { .. } | BatchError::Truncated { .. } | BatchError::LengthTooSmall { .. } => {
                ResponseError::CorruptMessage
            }
            _ => ResponseError::InvalidRecord,
        },
        LogError::RecordTooLarge { .. } => ResponseError::MessageTooLarge,
        LogError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        LogError::Corruption { .. } | LogError::Io { .. } | LogError::Offline { .. } => {
            ResponseError::KafkaStorageError
        }
        LogError::InvalidConfig(_) => ResponseError::InvalidConfig,
    }
}

pub fn append_error_code(error: &AppendError) -> ResponseError {
    match error {
        AppendError::Log(error) => log_error_code(error),
        AppendError::Sequence(SequenceError::InvalidProducerEpoch { .. }) => ResponseError::InvalidProducerEpoch,
        AppendError::Sequence(SequenceError::OutOfOrderSequence { .. }) => ResponseError::OutOfOrderSequenceNumber,
        AppendError::Transactional => ResponseError::InvalidRecord,
    }
}

pub fn topic_error_code(error: &TopicError) -> ResponseError {
    match error {
        TopicError::InvalidName { .. } => ResponseError::InvalidTopicException,
        TopicError::AlreadyExists(_) => ResponseError::TopicAlreadyExists,
        TopicError::NotFound(_) => ResponseError::UnknownTopicOrPartition,
        TopicError::InvalidPartitions(_) => ResponseError::InvalidPartitions,
        TopicError::InvalidReplicationFactor(_) => ResponseError::InvalidReplicationFactor,
        TopicError::InvalidConfig(_) => ResponseError::InvalidConfig,
        TopicError::InvalidRequest(_) => ResponseError::InvalidRequest,
        TopicError::Log(error) => log_error_code(error),
        TopicError::Metadata(_) => ResponseError::KafkaStorageError,
    }
}
