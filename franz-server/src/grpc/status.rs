//! The one place where broker errors become gRPC status codes.
//!
//! Bad input is INVALID_ARGUMENT and an unknown topic NOT_FOUND. A storage failure that
//! a retry may get past (an IO error such as a full disk, a failed metadata write) is
//! UNAVAILABLE. A log that went offline or is corrupt stays so until the broker
//! restarts, so it is FAILED_PRECONDITION: clients should not retry it blindly.

use franz_core::LogError;
use tonic::Status;

use crate::broker::{AppendError, TopicError};

pub fn from_topic_error(error: &TopicError) -> Status {
    let message = error.to_string();
    match error {
        TopicError::InvalidName { .. }
        | TopicError::InvalidPartitions(_)
        | TopicError::InvalidReplicationFactor(_)
        | TopicError::InvalidConfig(_)
        | TopicError::InvalidRequest(_) => Status::invalid_argument(message),
        TopicError::AlreadyExists(_) => Status::already_exists(message),
        TopicError::NotFound(_) => Status::not_found(message),
        TopicError::Log(error) => from_log_error(error),
        TopicError::Metadata(_) => Status::unavailable(format!("writing the cluster metadata failed: {message}")),
    }
}

pub fn from_log_error(error: &LogError) -> Status {
    let message = error.to_string();
    match error {
        LogError::InvalidBatch { .. } | LogError::RecordTooLarge { .. } | LogError::InvalidConfig(_) => {
            Status::invalid_argument(message)
        }
        LogError::OffsetOutOfRange { .. } => Status::out_of_range(message),
        LogError::Io { .. } => Status::unavailable(message),
        LogError::Offline { .. } | LogError::Corruption { .. } => Status::failed_precondition(message),
    }
}

pub fn from_append_error(error: &AppendError) -> Status {
    match error {
        AppendError::Log(error) => from_log_error(error),
        // The gRPC API writes batches without a producer id, so the producer state never
        // rejects them; these come only from a broken invariant.
        AppendError::Sequence(_) | AppendError::Transactional => Status::internal(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn topic_errors_map_to_codes() {
        let cases = [
            (
                TopicError::InvalidName {
                    name: "a b".into(),
                    reason: "space".into(),
                },
                Code::InvalidArgument,
            ),
            (TopicError::AlreadyExists("t".into()), Code::AlreadyExists),
            (TopicError::NotFound("t".into()), Code::NotFound),
            (TopicError::InvalidPartitions("-1".into()), Code::InvalidArgument),
            (TopicError::InvalidConfig("retention.ms".into()), Code::InvalidArgument),
            (
                TopicError::Log(LogError::Offline { reason: "EIO".into() }),
                Code::FailedPrecondition,
            ),
        ];
        for (error, code) in cases {
            let status = from_topic_error(&error);
            assert_eq!(status.code(), code, "{error}");
            assert_eq!(status.message(), error.to_string());
        }
    }

    #[test]
    fn offset_out_of_range_is_out_of_range() {
        let error = LogError::OffsetOutOfRange {
            offset: 9,
            log_start_offset: 0,
            log_end_offset: 3,
        };
        assert_eq!(from_log_error(&error).code(), Code::OutOfRange);
    }
}
