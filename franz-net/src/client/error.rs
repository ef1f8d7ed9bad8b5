//! Errors of the client library.

use kafka_protocol::error::ResponseError;

/// A failed client operation.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connecting to {address} failed: {source}; check that a broker listens there")]
    Connect { address: String, source: std::io::Error },
    #[error("no broker of {bootstrap:?} could be reached: {last_error}")]
    NoBroker { bootstrap: Vec<String>, last_error: String },
    #[error("connection to {address} failed: {source}")]
    Io { address: String, source: std::io::Error },
    #[error("the broker at {address} sent an invalid response to {api}: {message}")]
    Protocol {
        address: String,
        api: &'static str,
        message: String,
    },
    #[error("the broker at {address} does not support {api} in versions {min}-{max} that this client speaks")]
    UnsupportedApi {
        address: String,
        api: &'static str,
        min: i16,
        max: i16,
    },
    #[error("{operation} failed with {error} ({code}){}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Broker {
        operation: String,
        error: ResponseError,
        code: i16,
        message: Option<String>,
    },
    #[error("topic {0:?} does not exist")]
    UnknownTopic(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{operation} timed out after {timeout_ms} ms")]
    Timeout { operation: String, timeout_ms: u64 },
}

impl ClientError {
    /// Builds the error for a non-zero Kafka error code.
    pub fn broker(operation: impl Into<String>, code: i16, message: Option<String>) -> ClientError {
        ClientError::Broker {
            operation: operation.into(),
            error: ResponseError::try_from_code(code).unwrap_or(ResponseError::UnknownServerError),
            code,
            message,
        }
    }

    /// Returns whether retrying the operation may succeed: connection failures and the
    /// error codes Kafka marks retriable.
    pub fn is_retriable(&self) -> bool {
        match self {
            ClientError::Connect { .. } | ClientError::NoBroker { .. } | ClientError::Io { .. } => true,
            ClientError::Timeout { .. } => true,
            ClientError::Broker { error, .. } => error.is_retriable(),
            _ => false,
        }
    }

    /// Returns the Kafka error, when the broker returned one.
    pub fn kafka_error(&self) -> Option<ResponseError> {
        match self {
            ClientError::Broker { error, .. } => Some(*error),
            _ => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, ClientError>;

/// Turns a Kafka error code into `Ok` or a [`ClientError::Broker`].
pub fn check(operation: impl FnOnce() -> String, code: i16, message: Option<String>) -> Result<()> {
    if code == 0 {
        Ok(())
    } else {
        Err(ClientError::broker(operation(), code, message))
    }
}
