//! The consumer group APIs.

use franz_core::Disk;
use kafka_protocol::messages::{RequestKind, ResponseKind};
use tracing::warn;

use super::{Context, Request};

pub async fn dispatch<D: Disk>(_context: &Context<D>, request: &Request, body: RequestKind) -> Option<ResponseKind> {
    warn!(api_key = request.header.request_api_key, "request not served yet");
    drop(body);
    None
}
