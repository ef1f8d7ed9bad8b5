//! Kafka request decoding and response encoding on top of the kafka-protocol crate.
//!
//! The decoder never trusts the frame. It checks the header's length before reading it,
//! and it reports an unknown API key with the correlation id so that the caller can
//! respond. Every decoding failure, including a panic inside the crate, becomes a
//! [`DecodeError`].

use std::panic::{catch_unwind, AssertUnwindSafe};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};

/// Bytes of the fields every request header starts with: API key, API version and
/// correlation id.
const HEADER_PREFIX_LEN: usize = 8;

/// The three fields that every request header version starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestPrefix {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
}

/// A request whose header is decoded and whose body is still bytes.
#[derive(Debug, Clone)]
pub struct RequestFrame {
    pub api_key: ApiKey,
    pub header: RequestHeader,
    pub body: Bytes,
}

/// A request that could not be decoded, and the reason.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("request of {len} bytes is shorter than the 8-byte header prefix")]
    TooShort { len: usize },
    #[error("unknown API key {}", prefix.api_key)]
    UnknownApiKey { prefix: RequestPrefix },
    #[error("malformed {api_key:?} v{} request header: {message}", prefix.api_version)]
    MalformedHeader {
        prefix: RequestPrefix,
        api_key: ApiKey,
        message: String,
    },
    #[error("malformed {api_key:?} v{version} request body: {message}")]
    MalformedBody {
        api_key: ApiKey,
        version: i16,
        message: String,
    },
}

/// Reads the API key, version and correlation id without decoding anything else.
pub fn request_prefix(payload: &[u8]) -> Result<RequestPrefix, DecodeError> {
    if payload.len() < HEADER_PREFIX_LEN {
        return Err(DecodeError::TooShort { len: payload.len() });
    }
    let mut prefix = &payload[..HEADER_PREFIX_LEN];
    Ok(RequestPrefix {
        api_key: prefix.get_i16(),
        api_version: prefix.get_i16(),
        correlation_id: prefix.get_i32(),
    })
}

/// Decodes the request header of `payload`, one frame without its size prefix.
pub fn decode_header(payload: Bytes) -> Result<RequestFrame, DecodeError> {
    let prefix = request_prefix(&payload)?;
    let api_key = ApiKey::try_from(prefix.api_key).map_err(|_| DecodeError::UnknownApiKey { prefix })?;
    let header_version = api_key.request_header_version(prefix.api_version);
    let mut body = payload;
    let header = guarded(|| RequestHeader::decode(&mut body, header_version)).map_err(|message| {
        DecodeError::MalformedHeader {
            prefix,
            api_key,
            message,
        }
    })?;
    Ok(RequestFrame { api_key, header, body })
}

/// Decodes a request body. The caller checks first that the version is one it serves.
///
/// Bytes left over after the body are ignored, because real clients send them:
/// confluent-kafka 2.16.1 sends Metadata v12 requests three bytes longer than the schema.
pub fn decode_body(api_key: ApiKey, version: i16, body: Bytes) -> Result<RequestKind, DecodeError> {
    let mut body = body;
    guarded(|| RequestKind::decode(api_key, &mut body, version)).map_err(|message| DecodeError::MalformedBody {
        api_key,
        version,
        message,
    })
}

/// Encodes a response frame payload (without the size prefix): the response header for
/// `api_key` at `version`, then the body.
pub fn encode_response(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    response: &ResponseKind,
) -> anyhow::Result<BytesMut> {
    let mut payload = BytesMut::new();
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header.encode(&mut payload, api_key.response_header_version(version))?;
    response.encode(&mut payload, version)?;
    Ok(payload)
}

/// Encodes the response to a request whose API key the broker does not serve: the
/// correlation id, then the error code UNSUPPORTED_VERSION (35). Every Kafka response
/// body that carries a top-level error code starts with it, so a client that sent a key
/// it believed supported reads a clear error.
pub fn encode_unknown_api_response(correlation_id: i32) -> BytesMut {
    let mut payload = BytesMut::with_capacity(6);
    payload.put_i32(correlation_id);
    payload.put_i16(kafka_protocol::error::ResponseError::UnsupportedVersion.code());
    payload
}

/// Runs a decoder, turning both its error and a panic inside it into a message.
fn guarded<T>(decode: impl FnOnce() -> anyhow::Result<T>) -> Result<T, String> {
    match catch_unwind(AssertUnwindSafe(decode)) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(format!("{error:#}")),
        Err(_) => Err("the decoder panicked".to_string()),
    }
}
